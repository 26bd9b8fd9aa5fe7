import Foundation
import SplitStitch
import Glibc
import Synchronization
import SystemSupport
import TestSupport
import Testing
import Transcoding

/// A replica that misbehaves in one way, on 127.0.0.1 at an ephemeral port: it reads each request whole, then
/// answers as `behaviour` says. Counts the requests it got.
final class FakePeer: Sendable {
    enum Behaviour: Sendable { case unavailable, reset, garbage, unprocessable }
    let port: Int
    private let listener: Int32
    private let count = Counter()
    private let exited = DispatchSemaphore(value: 0)
    private let heads = Locked<[String]>([])
    var requests: Int { count.value.load(ordering: .relaxed) }
    /// Each request's X-Segment value, in the order the connections were accepted.
    var segmentHeaders: [String] { heads.withLock { $0 } }

    private final class Counter: Sendable { let value = Atomic<Int>(0) }

    init(_ behaviour: Behaviour) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && listen(listener, 16) == 0
                    && getsockname(listener, pointer, &length) == 0
            }
        }
        guard bound else { throw DocumentedFailure("the fake peer cannot listen") }
        port = Int(UInt16(bigEndian: address.sin_port))
        let (count, exited, heads) = (count, exited, heads)
        Thread {
            defer { exited.signal() }
            while true {
                let connection = accept(listener, nil, nil)
                if connection < 0 {
                    // A connection reset before it was accepted (the `.reset` peer's own clients) is not the end;
                    // ending here on it left the listener closed, and stop()'s shutdown then hit whatever socket
                    // took its number next (once a worker's channel: CI, make test).
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                count.value.add(1, ordering: .relaxed)
                FakePeer.serve(connection, behaviour) { head in heads.withLock { $0.append(head) } }
            }
        }.start()
    }

    /// Makes accept fail, waits for the thread to end, and only then closes the listener: its number is reused by
    /// the next socket anyone opens, and no call of ours may follow the close.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        // A thread still stuck in a connection keeps the descriptor: a leak in a test beats a stray close.
        if exited.wait(timeout: .now() + 30) == .success { close(listener) }
    }

    private static func serve(_ connection: Int32, _ behaviour: Behaviour, record: (String) -> Void) {
        defer { close(connection) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var expected: Int? = nil
        while expected.map({ received.count < $0 }) ?? true {
            let n = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            received += buffer[0..<n]
            if expected == nil, let end = String(decoding: received, as: UTF8.self).range(of: "\r\n\r\n") {
                let head = String(decoding: received, as: UTF8.self)[..<end.lowerBound]
                func field(_ name: String) -> String? {
                    head.split(separator: "\r\n").first { $0.lowercased().hasPrefix(name + ":") }
                        .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
                }
                expected = head.utf8.count + 4 + (field("content-length").flatMap { Int($0) } ?? 0)
                record(field("x-segment") ?? "")
            }
        }
        let answer: String
        switch behaviour {
        case .unavailable:
            answer = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
        case .garbage:
            answer = "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 64\r\n\r\n"
                + String(repeating: "not a video. ", count: 5).prefix(64)
        case .unprocessable:
            let body = #"{"type":"about:blank","title":"Unprocessable Content","status":422,"detail":"corrupt input: a test says so"}"#
            answer = "HTTP/1.1 422 Unprocessable Content\r\nContent-Type: application/problem+json\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
        case .reset:
            // Half an answer, then a reset (SO_LINGER 0): the connection dies mid-answer.
            _ = Array("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nhalf".utf8).withUnsafeBytes {
                send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(connection, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            return
        }
        _ = Array(answer.utf8).withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

struct DocumentedFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@Suite("split through the balancer (--cluster-url): peers that fail are tried again, then the own pool; a 4xx fails the job")
struct ClusterSplitTests {
    static func coordinator(cluster port: Int) throws -> RunningService {
        try RunningService(workers: 2, queue: 4) {
            $0.split.segmentSeconds = 2
            $0.split.minimumSeconds = 3
            $0.clusterURL = ClusterURL("http://127.0.0.1:\(port)")
        }
    }

    @Test("a peer that answers 503, resets mid-answer or answers garbage: every segment tried 3 times, then run here",
          arguments: [FakePeer.Behaviour.unavailable, .reset, .garbage])
    func failingPeer(_ behaviour: FakePeer.Behaviour) async throws {
        let long = SplitServiceTests.long
        try await onThread {
            let peer = try FakePeer(behaviour)
            defer { peer.stop() }
            let service = try Self.coordinator(cluster: peer.port)
            defer { service.stop() }
            let answer = try service.post("/long", body: long.bytes)
            #expect(answer.status == 200, "\(answer.text.prefix(300))")
            let segments = try #require(answer.header("X-Video-Segments").flatMap { Int($0) })
            #expect(try Clips.probe(answer.body).video?.frameCount == long.frames)
            #expect(peer.requests == segments * 3)
            #expect(try service.metric("ffmpeg_processor_segments_total{event=\"retried\"}") == Double(segments * 3))
            #expect(try service.metric("ffmpeg_processor_segments_total{event=\"fallback\"}") == Double(segments))
            #expect(try service.metric("ffmpeg_processor_segments_total{event=\"sent\"}") == Double(segments))
        }
    }

    @Test("segments reach the balancer longest first: each request goes once the one before is out")
    func sentInOrder() async throws {
        let peer = try FakePeer(.unavailable)
        defer { peer.stop() }
        let runner = ClusterSegmentRunner(
            url: ClusterURL("http://127.0.0.1:\(peer.port)")!, fallback: Refusing(), attempts: 1)
        let turns = SegmentTurn.sequence(count: 12)
        let scratch = try Scratch()
        try Data(repeating: 0x2a, count: 4096).write(to: URL(fileURLWithPath: scratch.path("cut")))
        let input = open(scratch.path("cut"), O_RDONLY | O_CLOEXEC)
        let output = open(scratch.path("answer"), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        defer { close(input); close(output) }
        try #require(input >= 0 && output >= 0)
        // Launched in an order of their own, as the task group's tasks start: the turns, not the launch, order them.
        await withTaskGroup(of: Void.self) { group in
            for turn in turns.shuffled() {
                var options = TranscodeOptions()
                options.segment = .init(
                    timeBase: Rational(1, 1000), frameRate: Rational(25, 1), start: Int64(turn.rank) * 1000,
                    end: Int64(turn.rank + 1) * 1000, shift: 0, origin: 0)
                group.addTask {
                    _ = await runner.encode(
                        input: input, output: output, options: options, bytes: 4096, parent: "ordered",
                        turn: turn)
                }
            }
        }
        let starts = peer.segmentHeaders.map { try? SegmentHeader(parsing: $0) { _ in true }.window.start }
        #expect(starts == (0..<12).map { Int64($0) * 1000 }, "\(peer.segmentHeaders)")
    }

    /// The fallback of `sentInOrder`: the test is about the requests, not where the segments end up.
    struct Refusing: SegmentRunner {
        func encode(
            input: Int32, output: Int32, options: TranscodeOptions, bytes: Int64, parent: String, turn: SegmentTurn
        ) async -> SegmentAnswer {
            .failed(DocumentedFailure("not run here"))
        }
    }

    @Test("a peer's 422 fails the job with that status and reason")
    func refusingPeer() async throws {
        let long = SplitServiceTests.long
        try await onThread {
            let peer = try FakePeer(.unprocessable)
            defer { peer.stop() }
            let service = try Self.coordinator(cluster: peer.port)
            defer { service.stop() }
            let answer = try service.post("/long", body: long.bytes)
            #expect(answer.status == 422)
            #expect(answer.text.contains("corrupt input: a test says so"), "\(answer.text)")
        }
    }

    @Test("the client leaves: no segment is still running on the peer or the coordinator within seconds")
    func clientLeaves() async throws {
        let long = SplitServiceTests.long
        try await onThread {
            let peer = try RunningService(workers: 1, queue: 16)
            defer { peer.stop() }
            let service = try Self.coordinator(cluster: peer.port)
            defer { service.stop() }
            let client = try TestClient(port: service.port)
            // veryslow keeps each segment busy long enough to leave while the peer works on one.
            try client.send("POST /long?preset=veryslow HTTP/1.1\r\nHost: t\r\nContent-Length: \(long.bytes.count)\r\n\r\n")
            try client.send(long.bytes)
            #expect(try peer.wait(seconds: 60) { ($0["running"] as? Int ?? 0) >= 1 })
            client.reset()
            // Bounds for a loaded 2-core machine: a job notices cancellation within a frame.
            #expect(try peer.wait(seconds: 20) { ($0["running"] as? Int) == 0 && ($0["queued"] as? Int) == 0 })
            #expect(try service.wait(seconds: 20) { ($0["running"] as? Int) == 0 && ($0["queued"] as? Int) == 0 })
            // The peer saw its coordinator leave mid-segment (nginx's 499), rather than finishing a segment nobody wants.
            #expect(try peer.get("/metrics").text.contains("status=\"499\""))
        }
    }

    @Test("segments through a real replica: it receives them all and the answer is whole")
    func realPeer() async throws {
        let long = SplitServiceTests.long
        try await onThread {
            let peer = try RunningService(workers: 2, queue: 16)
            defer { peer.stop() }
            let service = try Self.coordinator(cluster: peer.port)
            defer { service.stop() }
            let answer = try service.post("/long", body: long.bytes)
            #expect(answer.status == 200, "\(answer.text.prefix(300))")
            let segments = try #require(answer.header("X-Video-Segments").flatMap { Int($0) })
            #expect(try Clips.probe(answer.body).video?.frameCount == long.frames)
            #expect(try peer.metric("ffmpeg_processor_segments_total{event=\"received\"}") == Double(segments))
            #expect(try service.metric("ffmpeg_processor_segments_total{event=\"sent\"}") == nil)
        }
    }
}
