import Foundation
import Glibc
import Jobs
import SystemSupport
import TestSupport
import Testing
import TranscodeService

/// A webhook receiver on 127.0.0.1: reads each request whole, records it, and answers with the next status of
/// `statuses` (200 once they run out).
final class WebhookReceiver: @unchecked Sendable {
    struct Delivery: Sendable {
        var headers: [String: String]
        var body: [UInt8]
    }

    let port: Int
    private let fd: Int32
    private let state: Locked<(statuses: [Int], deliveries: [Delivery])>

    init(statuses: [Int]) throws {
        state = Locked((statuses, []))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw AsyncTestError("the receiver cannot listen")
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// Makes accept fail, which ends the loop; the loop closes the listener. Closing it here let a parallel test's
    /// new listener take its number while the loop was between two accepts, and the loop then answered that test's
    /// deliveries (CI: a retried delivery answered 200 by a finished test's receiver).
    func stop() { shutdown(fd, Int32(SHUT_RDWR)) }

    var deliveries: [Delivery] { state.withLock { $0.deliveries } }

    private func serve() {
        defer { close(fd) }
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            if let delivery = read(client) {
                let status = state.withLock { state -> Int in
                    state.deliveries.append(delivery)
                    return state.statuses.isEmpty ? 200 : state.statuses.removeFirst()
                }
                let answer = "HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                _ = answer.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            }
            close(client)
        }
    }

    private func read(_ client: Int32) -> Delivery? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        func more() -> Bool {
            let n = recv(client, &buffer, buffer.count, 0)
            guard n > 0 else { return false }
            bytes += buffer.prefix(n)
            return true
        }
        let separator = Array("\r\n\r\n".utf8)
        var end: Int?
        while end == nil {
            guard more() else { return nil }
            end = (0...max(bytes.count - 4, 0)).first { bytes.count >= 4 && Array(bytes[$0..<$0 + 4]) == separator }
        }
        var headers: [String: String] = [:]
        for line in String(decoding: bytes[..<end!], as: UTF8.self).split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop { $0 == " " })
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while bytes.count < end! + 4 + length { guard more() else { return nil } }
        return Delivery(headers: headers, body: Array(bytes[(end! + 4)..<(end! + 4 + length)]))
    }
}

@Suite("Signed webhooks for async jobs, on real sockets")
struct WebhookTests {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    func service(allow: String = "127.0.0.1") throws -> RunningService {
        try RunningService { config in
            config.callbackAllow = CallbackAllowList(parsing: allow)!
            config.callbackSecret = Self.secret
            config.callbackFirstRetry = 0.05
        }
    }

    @Test("every state change is POSTed signed; a receiver that answers 500 twice gets the event a third time, same id")
    func retriedWithTheSameID() async throws {
        try await onThread {
            let receiver = try WebhookReceiver(statuses: [500, 500])
            defer { receiver.stop() }
            let running = try service()
            defer { running.stop() }
            let location = try running.submitJob(
                "/hooked?callback=" + "http://127.0.0.1:\(receiver.port)/hook%3Fx=1", body: Clips.small.bytes)
            #expect(waitUntil(60) { receiver.deliveries.contains { String(decoding: $0.body, as: UTF8.self).contains("succeeded") } })
            let deliveries = receiver.deliveries
            try #require(deliveries.count >= 5, "\(deliveries.map(\.headers))")
            let first = deliveries.prefix(3).map { $0.headers["webhook-id"] }
            #expect(Set(first).count == 1 && first[0] != nil, "\(first)")
            #expect(deliveries[3].headers["webhook-id"] != first[0])
            let signer = try #require(WebhookSigner(secret: Self.secret))
            for delivery in deliveries {
                let id = try #require(delivery.headers["webhook-id"])
                let timestamp = try #require(Int(delivery.headers["webhook-timestamp"] ?? ""))
                #expect(delivery.headers["webhook-signature"] == signer.signature(id: id, timestamp: timestamp, body: delivery.body))
                #expect(abs(Double(timestamp) - Date().timeIntervalSince1970) < 600)
                let document = try JSONSerialization.jsonObject(with: Data(delivery.body)) as? [String: Any]
                #expect(document?["id"] as? String == String(location.dropFirst("/jobs/".count)))
            }
            #expect(String(decoding: deliveries[0].body, as: UTF8.self).contains("\"state\":\"queued\""))
        }
    }

    @Test("a callback outside --callback-allow, not http, or without Prefer: respond-async is 400, and nothing is sent",
          arguments: [
              ("http://10.1.2.3:9/hook", "respond-async"), ("https://127.0.0.1/hook", "respond-async"),
              ("http://user@127.0.0.1/hook", "respond-async"), ("http://127.0.0.1/hook", "handling=strict"),
          ])
    func refused(callback: String, prefer: String) async throws {
        try await onThread {
            let receiver = try WebhookReceiver(statuses: [])
            defer { receiver.stop() }
            let running = try service()
            defer { running.stop() }
            let response = try running.post(
                "/refused", body: Clips.small.bytes, extraHeaders: "Prefer: \(prefer)\r\nCallback-URL: \(callback)\r\n")
            #expect(response.status == 400, "\(response.text)")
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(running.service.jobs.countsByState.values.reduce(0, +) == 0)
            #expect(receiver.deliveries.isEmpty)
        }
    }
}
