import Dispatch
import Glibc
import HTTPTypes
import Synchronization
import TestSupport
import Testing

@testable import HTTPServer

/// Runs blocking socket code off Swift's cooperative pool, so handlers never wait behind a test's recv().
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

func withServer(
    _ configuration: ServerConfiguration = .init(),
    fastPath: (@Sendable (HTTPRequest) -> ServerResponse?)? = nil,
    handler: @escaping HTTPHandler = { request, _ in
        ServerResponse(status: .ok, body: .bytes(Array((request.path ?? "").utf8)))
    },
    _ body: (Int, Server) async throws -> Void
) async throws {
    let server = Server(configuration: configuration, fastPath: fastPath, handler: handler)
    let port = try server.start()
    defer { server.shutdown() }
    try await body(port, server)
}

/// Polls `condition` for up to `seconds`; for state that settles asynchronously (connection counts).
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// The descriptor count once Dispatch's own descriptors (its queues and the timerfd behind `Task.sleep`, all
/// opened on first use) exist.
func stableDescriptorCount() async -> Int {
    _ = try? await blocking { 0 }
    try? await Task.sleep(for: .milliseconds(1))
    return openDescriptorCount()
}

func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0
    var resident = 0
    _ = withUnsafeMutablePointer(to: &size) { s in
        withUnsafeMutablePointer(to: &resident) { r in
            withVaList([s, r]) { vfscanf(file, "%ld %ld", $0) }
        }
    }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}

final class Recorder<Value: Sendable>: Sendable {
    private let storage: Mutex<[Value]>
    init() { storage = Mutex([]) }
    func add(_ value: Value) { storage.withLock { $0.append(value) } }
    var values: [Value] { storage.withLock { $0 } }
}

@Suite("Server over real sockets", .serialized)
struct ServerTests {
    static let get = "GET /about HTTP/1.1\r\nHost: t\r\n\r\n"

    @Test("keep-alive: several requests on one connection, with Date, Server and Content-Length")
    func keepAlive() async throws {
        try await withServer { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                for i in 0..<3 {
                    try client.send("GET /r\(i) HTTP/1.1\r\nHost: t\r\n\r\n")
                    let response = try client.readResponse()
                    #expect(response.status == 200)
                    #expect(response.text == "/r\(i)")
                    #expect(response.header("Content-Length") == "3")
                    #expect(response.header("Server") == "ffmpeg-processor")
                    #expect(response.header("Date")?.hasSuffix(" GMT") == true)
                    #expect(response.header("Connection") == nil)
                }
            }
        }
    }

    @Test("10 pipelined requests are answered in order", arguments: [false, true])
    func pipelined(fastPath: Bool) async throws {
        let echo: @Sendable (HTTPRequest) -> ServerResponse? = { request in
            ServerResponse(status: .ok, body: .bytes(Array((request.path ?? "").utf8)))
        }
        let fast = fastPath ? echo : nil
        try await withServer(fastPath: fast) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                var all = ""
                for i in 0..<10 { all += "GET /p\(i) HTTP/1.1\r\nHost: t\r\n\r\n" }
                try client.send(all)
                for i in 0..<10 {
                    #expect(try client.readResponse().text == "/p\(i)")
                }
            }
        }
    }

    @Test("Connection: close and HTTP/1.0 close after the response; HTTP/1.0 keep-alive persists")
    func closing() async throws {
        try await withServer { port, _ in
            try await blocking {
                let a = try TestClient(port: port)
                try a.send("GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                #expect(try a.readResponse().header("Connection") == "close")
                #expect(a.isClosedByPeer())

                let b = try TestClient(port: port)
                try b.send("GET /b HTTP/1.0\r\n\r\n")
                #expect(try b.readResponse().text == "/b")
                #expect(b.isClosedByPeer())

                let c = try TestClient(port: port)
                try c.send("GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                let first = try c.readResponse()
                #expect(first.header("Connection") == "keep-alive")
                try c.send("GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                #expect(try c.readResponse().text == "/d")
            }
        }
    }

    @Test("a handler's own Connection: close is honoured, and written once")
    func handlerCloses() async throws {
        try await withServer(handler: { _, _ in ServerResponse(status: .ok, headerFields: [.connection: "close"]) }) {
            port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                let response = try client.readResponse()
                #expect(response.headers.filter { $0.0.lowercased() == "connection" }.map(\.1) == ["close"])
                #expect(client.isClosedByPeer())
            }
        }
    }

    @Test("framing fields a handler sets are replaced by the server's own")
    func ownedFields() async throws {
        try await withServer(handler: { _, _ in
            ServerResponse(
                status: .ok, headerFields: [.contentLength: "999", .transferEncoding: "gzip", .server: "x", .init("X-Kept")!: "1"],
                body: .bytes(Array("abc".utf8)))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                let response = try client.readResponse()
                let names = response.headers.map { $0.0.lowercased() }
                #expect(response.header("Content-Length") == "3")
                #expect(!names.contains("transfer-encoding"))
                #expect(names.filter { $0 == "server" }.count == 1)
                #expect(response.header("X-Kept") == "1")
                try client.send(Self.get)
                #expect(try client.readResponse().text == "abc")
            }
        }
    }

    @Test("HEAD gets the headers without the body")
    func head() async throws {
        try await withServer(handler: { _, _ in ServerResponse(status: .ok, body: .bytes(Array(repeating: 65, count: 1000))) }) {
            port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n")
                let response = try client.readResponse(head: true)
                #expect(response.header("Content-Length") == "1000")
                // Were a body sent, it would be read as the next response's status line.
                try client.send("GET /h HTTP/1.1\r\nHost: t\r\n\r\n")
                let next = try client.readResponse()
                #expect(next.status == 200)
                #expect(next.body.count == 1000)
            }
        }
    }

    @Test("a body from a file descriptor goes out with sendfile, and the descriptor is closed")
    func sendfile() async throws {
        let path = "/tmp/http-server-test-\(getpid()).bin"
        let content = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        let out = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        content.withUnsafeBytes { _ = write(out, $0.baseAddress, $0.count) }
        close(out)
        defer { unlink(path) }
        let baseline = await stableDescriptorCount()
        try await withServer(handler: { _, _ in
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            return ServerResponse(status: .ok, body: .file(descriptor: fd, length: Int64(content.count)))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("GET /f HTTP/1.1\r\nHost: t\r\n\r\n")
                let response = try client.readResponse()
                #expect(response.header("Content-Length") == "\(content.count)")
                #expect(response.body == content)
                try client.send("HEAD /f HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try client.readResponse(head: true).status == 200)
            }
        }
        #expect(openDescriptorCount() == baseline)
    }

    @Test("a streamed response goes out chunked")
    func stream() async throws {
        try await withServer(handler: { _, _ in
            let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
            Task {
                for i in 0..<5 { continuation.yield(Array("part\(i);".utf8)) }
                continuation.finish()
            }
            return ServerResponse(status: .ok, body: .stream(stream))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                let response = try client.readResponse()
                #expect(response.header("Transfer-Encoding") == "chunked")
                #expect(response.text == "part0;part1;part2;part3;part4;")
                try client.send(Self.get)
                #expect(try client.readResponse().status == 200)
            }
        }
    }

    @Test("a 50 MB chunked upload streams through with bounded memory")
    func largeChunkedUpload() async throws {
        let total = 50 * 1024 * 1024
        let peak = Mutex(0)
        let before = residentBytes()
        try await withServer(handler: { _, body in
            var received = 0
            do {
                for try await chunk in body {
                    received += chunk.count
                    if received % (4 << 20) < chunk.count { let now = residentBytes(); peak.withLock { $0 = max($0, now) } }
                }
            } catch {
                return ServerResponse(status: .badRequest)
            }
            return ServerResponse(status: .ok, body: .bytes(Array("\(received)".utf8)))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
                try client.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                let chunk = [UInt8](repeating: 0x61, count: 100_000)
                var sent = 0
                while sent < total {
                    let n = min(chunk.count, total - sent)
                    try client.send(Array(String(n, radix: 16).utf8) + [13, 10] + chunk[..<n] + [13, 10])
                    sent += n
                }
                try client.send("0\r\n\r\n")
                let response = try client.readResponse()
                #expect(response.status == 200)
                #expect(response.text == "\(total)")
            }
        }
        // The body is never held whole: growth stays far below its 50 MB.
        #expect(peak.withLock { $0 } - before < 20 * 1024 * 1024)
    }

    @Test("backpressure: while the handler holds a chunk, the server reads no more and the client's sends stall")
    func uploadBackpressure() async throws {
        let release = AsyncStream<Void>.makeStream()
        try await withServer(handler: { _, body in
            var iterator = body.makeAsyncIterator()
            _ = try? await iterator.next()
            for await _ in release.stream { break }  // hold the first chunk until the test says so
            var total = 0
            while let chunk = try? await iterator.next() { total += chunk.count }
            return ServerResponse(status: .ok, body: .bytes(Array("\(total)".utf8)))
        }) { port, _ in
            let length = 64 << 20
            let accepted = try await blocking { () -> Int in
                let client = try TestClient(port: port)
                var timeout = timeval(tv_sec: 1, tv_usec: 0)
                setsockopt(client.fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \(length)\r\n\r\n")
                let chunk = [UInt8](repeating: 9, count: 1 << 20)
                var sent = 0
                while sent < length {
                    let n = chunk.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { break }  // SO_SNDTIMEO: the server stopped reading
                    sent += n
                }
                return sent
            }
            // Only the socket buffers (a few MB on loopback) and one chunk sit between client and handler.
            #expect(accepted < 24 << 20, "\(accepted) bytes accepted")
            #expect(accepted > 1 << 20, "\(accepted): the connection stayed open and took the first chunk")
            release.continuation.yield()
        }
    }

    @Test("a slow handler does not hold up other connections")
    func slowHandlerDoesNotBlock() async throws {
        try await withServer(handler: { request, _ in
            if request.path == "/slow" { try? await Task.sleep(for: .seconds(3)) }
            return ServerResponse(status: .ok, body: .bytes(Array((request.path ?? "").utf8)))
        }) { port, _ in
            let slow = try TestClient(port: port)
            try slow.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            let started = ContinuousClock.now
            let fast = try await blocking { () -> String in
                let client = try TestClient(port: port)
                try client.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
                return try client.readResponse().text
            }
            #expect(fast == "/fast")
            #expect(ContinuousClock.now - started < .seconds(2))
            _ = slow
        }
    }

    @Test("Expect: 100-continue is answered with 100 when the handler pulls the body")
    func expectAccepted() async throws {
        try await withServer(handler: { _, body in
            let bytes = (try? await body.collect(upTo: 1000)) ?? []
            return ServerResponse(status: .ok, body: .bytes(Array("got \(bytes.count)".utf8)))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("PUT /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
                #expect(try client.readInterim() == "HTTP/1.1 100 Continue")
                try client.send("hello")
                #expect(try client.readResponse().text == "got 5")
            }
        }
    }

    @Test("Expect: 100-continue refused by the handler: no 100, the answer, then close")
    func expectRefused() async throws {
        try await withServer(handler: { _, _ in ServerResponse(status: .contentTooLarge) }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("PUT /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n")
                let response = try client.readResponse()
                #expect(response.status == 413)
                #expect(response.header("Connection") == "close")
                #expect(client.isClosedByPeer())
            }
        }
    }

    @Test("errors the server produces are problem+json and close the connection")
    func problemDocuments() async throws {
        let cases: [(String, Int)] = [
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: t\r\nExpect: nothing\r\nContent-Length: 1\r\n\r\n", 417),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n", 413),
            ("GET /\(String(repeating: "x", count: 9000)) HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        ]
        var configuration = ServerConfiguration()
        configuration.maxBodySize = 1000
        try await withServer(configuration) { port, _ in
            try await blocking {
                for (request, status) in cases {
                    let client = try TestClient(port: port)
                    try client.send(request)
                    let response = try client.readResponse()
                    #expect(response.status == status)
                    #expect(response.header("Content-Type") == "application/problem+json")
                    #expect(response.text.contains("\"status\":\(status)"))
                    #expect(client.isClosedByPeer())
                }
            }
        }
    }

    @Test("a chunked body growing past maxBodySize gets 413 and the handler's body throws")
    func chunkedTooLarge() async throws {
        var configuration = ServerConfiguration()
        configuration.maxBodySize = 100
        let errors = Recorder<String>()
        try await withServer(configuration, handler: { _, body in
            do { _ = try await body.collect(upTo: 1 << 20) } catch { errors.add("\(error)") }
            return ServerResponse(status: .ok)
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n\(String(repeating: "a", count: 80))\r\n50\r\n")
                #expect(try client.readResponse().status == 413)
                #expect(client.isClosedByPeer())
            }
        }
        #expect(await eventually { errors.values == ["tooLarge"] })
    }

    @Test("more connections than maxConnections: the excess gets 503 and is closed")
    func connectionLimit() async throws {
        var configuration = ServerConfiguration()
        configuration.maxConnections = 2
        try await withServer(configuration) { port, server in
            try await blocking {
                let a = try TestClient(port: port)
                let b = try TestClient(port: port)
                try a.send(Self.get)
                try b.send(Self.get)
                _ = try a.readResponse()
                _ = try b.readResponse()
                let c = try TestClient(port: port)
                let refused = try c.readResponse()
                #expect(refused.status == 503)
                #expect(refused.header("Content-Type") == "application/problem+json")
                #expect(c.isClosedByPeer())
                #expect(server.openConnections == 2)
            }
        }
    }

    static func shortTimeouts() -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.headerTimeout = .milliseconds(300)
        configuration.bodyIdleTimeout = .milliseconds(300)
        configuration.keepAliveTimeout = .milliseconds(300)
        configuration.writeTimeout = .milliseconds(300)
        return configuration
    }

    @Test("header timeout: a slow request head gets 408 and the connection closes")
    func headerTimeout() async throws {
        try await withServer(Self.shortTimeouts()) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("GET / HTTP/1.1\r\nHost: t\r\n")
                let response = try client.readResponse()
                #expect(response.status == 408)
                #expect(client.isClosedByPeer())
            }
            #expect(await eventually { server.openConnections == 0 })
        }
    }

    @Test("keep-alive timeout: an idle connection is closed after its response")
    func keepAliveTimeout() async throws {
        try await withServer(Self.shortTimeouts()) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                #expect(try client.readResponse().status == 200)
                #expect(client.isClosedByPeer())
            }
            #expect(await eventually { server.openConnections == 0 })
        }
    }

    @Test("keep-alive timeout counts from the last response, not from the first")
    func keepAliveRefreshed() async throws {
        try await withServer(Self.shortTimeouts()) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                for _ in 0..<8 {
                    try client.send(Self.get)
                    #expect(try client.readResponse().status == 200)
                    usleep(100_000)
                }
            }
        }
    }

    @Test("body idle timeout: the handler's body throws, the client gets 408, the connection closes")
    func bodyTimeout() async throws {
        let errors = Recorder<String>()
        try await withServer(Self.shortTimeouts(), handler: { _, body in
            do { _ = try await body.collect(upTo: 1000) } catch { errors.add("\(error)") }
            return ServerResponse(status: .ok)
        }) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
                #expect(try client.readResponse().status == 408)
                #expect(client.isClosedByPeer())
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(await eventually { errors.values == ["timeout"] })
    }

    @Test("write timeout: a client that never reads a large response is disconnected")
    func writeTimeout() async throws {
        let big = [UInt8](repeating: 0x62, count: 64 << 20)
        try await withServer(Self.shortTimeouts(), handler: { _, _ in ServerResponse(status: .ok, body: .bytes(big)) }) {
            port, server in
            let client = try TestClient(port: port)
            try client.send(Self.get)
            #expect(await eventually { server.openConnections == 1 })
            #expect(await eventually { server.openConnections == 0 })
            _ = client
        }
    }

    @Test("a client closing mid-body: the handler's body throws, nothing leaks")
    func clientGoneMidBody() async throws {
        let errors = Recorder<String>()
        let started = Recorder<Bool>()
        let baseline = await stableDescriptorCount()
        try await withServer(handler: { _, body in
            started.add(true)
            do { _ = try await body.collect(upTo: 1 << 20) } catch { errors.add("\(error)") }
            return ServerResponse(status: .ok)
        }) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
                try client.send([UInt8](repeating: 1, count: 5000))
            }
            #expect(await eventually { started.values.count == 1 })
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(await eventually { errors.values.count == 1 })
        #expect(["clientDisconnected", "cancelled"].contains(errors.values.first ?? ""))
        #expect(openDescriptorCount() == baseline, "\(describeDescriptors())")
    }

    @Test("a peer that goes away while its handler runs cancels the handler's task")
    func cancellation() async throws {
        let cancelled = Recorder<Bool>()
        let started = Recorder<Bool>()
        try await withServer(handler: { _, _ in
            started.add(true)
            try? await Task.sleep(for: .seconds(30))
            cancelled.add(Task.isCancelled)
            return ServerResponse(status: .ok)
        }) { port, server in
            do {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                #expect(await eventually { started.values.count == 1 })
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(await eventually { cancelled.values == [true] })
    }

    @Test("1000 concurrent connections are all served, and descriptors return to baseline")
    func thousandConnections() async throws {
        let baseline = await stableDescriptorCount()
        try await withServer(fastPath: { _ in ServerResponse(status: .ok, body: .bytes(Array("ok".utf8))) }) {
            port, server in
            try await blocking {
                var clients: [TestClient] = []
                for _ in 0..<1000 { clients.append(try TestClient(port: port)) }
                for client in clients { try client.send(Self.get) }
                var served = 0
                for client in clients where try client.readResponse().text == "ok" { served += 1 }
                #expect(served == 1000)
                #expect(server.openConnections == 1000)
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(openDescriptorCount() == baseline)
    }

    @Test("the async handler also serves 1000 concurrent connections")
    func thousandHandlerConnections() async throws {
        let baseline = await stableDescriptorCount()
        try await withServer { port, server in
            try await blocking {
                var clients: [TestClient] = []
                for _ in 0..<1000 { clients.append(try TestClient(port: port)) }
                for (i, client) in clients.enumerated() { try client.send("GET /\(i) HTTP/1.1\r\nHost: t\r\n\r\n") }
                for (i, client) in clients.enumerated() { #expect(try client.readResponse().text == "/\(i)") }
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(openDescriptorCount() == baseline)
    }

    @Test("stopAccepting closes the listener but lets open connections finish")
    func stopAccepting() async throws {
        try await withServer { port, server in
            let client = try TestClient(port: port)
            try client.send(Self.get)
            _ = try client.readResponse()
            server.stopAccepting()
            try await Task.sleep(for: .milliseconds(100))
            #expect(throws: TestClient.Closed.self) { _ = try TestClient(port: port) }
            try client.send(Self.get)
            #expect(try client.readResponse().status == 200)
        }
    }

    @Test("a server dropped without shutdown stops its loops and releases its descriptors")
    func deinitStops() async throws {
        let baseline = await stableDescriptorCount()
        do {
            let server = Server(configuration: .init(eventLoopThreads: 2), handler: { _, _ in ServerResponse(status: .ok) })
            let port = try server.start()
            let client = try TestClient(port: port)
            try client.send(Self.get)
            #expect(try client.readResponse().status == 200)
        }
        #expect(await eventually { openDescriptorCount() == baseline })
    }

    @Test("shutdown is idempotent and the server's own descriptors are released")
    func shutdownReleases() async throws {
        let baseline = await stableDescriptorCount()
        let server = Server(configuration: .init(eventLoopThreads: 2), handler: { _, _ in ServerResponse(status: .ok) })
        let port = try server.start()
        let client = try TestClient(port: port)
        try client.send(Self.get)
        #expect(try client.readResponse().status == 200)
        server.shutdown()
        server.shutdown()
        #expect(client.isClosedByPeer())
        #expect(openDescriptorCount() == baseline + 1)
    }

    @Test("out of descriptors (EMFILE): the listener backs off without spinning, then serves again")
    func descriptorExhaustion() async throws {
        _ = await stableDescriptorCount()
        try await withServer { port, server in
            // Client sockets are made first: once the limit is lowered only the server's accept needs one.
            let sockets = (0..<5).map { _ in socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
            defer { for fd in sockets { close(fd) } }
            var original = rlimit()
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &original)
            var lowered = original
            lowered.rlim_cur = rlim_t(openDescriptorCount() + 1)  // opendir in the count needs one
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lowered)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            for fd in sockets {
                let rc = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                #expect(rc == 0)
            }
            // Plain sleep: nothing in the test process may need a new descriptor while the limit is down.
            let before = cpuSeconds()
            usleep(500_000)
            let spent = cpuSeconds() - before
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &original)
            // A listener spinning on EMFILE would burn the whole half second.
            #expect(spent < 0.25)
            #expect(await eventually { server.openConnections == 5 })
            let request = Array(Self.get.utf8)
            for fd in sockets { _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
            var buffer = [UInt8](repeating: 0, count: 4096)
            for fd in sockets {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                #expect(n > 0 && String(decoding: buffer[..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
            }
        }
    }

    @Test("a handler that returns without reading the body: its response goes out, then the connection closes")
    func unreadBody() async throws {
        try await withServer(handler: { _, _ in ServerResponse(status: .accepted) }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
                try client.send([UInt8](repeating: 7, count: 1000))
                let response = try client.readResponse()
                #expect(response.status == 202)
                #expect(response.header("Connection") == "close")
                #expect(client.isClosedByPeer())
            }
        }
    }

    @Test("a fully read body keeps the connection alive")
    func readBodyKeepsAlive() async throws {
        try await withServer(handler: { _, body in
            let bytes = (try? await body.collect(upTo: 1 << 20)) ?? []
            return ServerResponse(status: .ok, body: .bytes(Array("\(bytes.count)".utf8)))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                for size in [0, 1, 70_000] {
                    try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n")
                    try client.send([UInt8](repeating: 7, count: size))
                    let response = try client.readResponse()
                    #expect(response.text == "\(size)")
                    #expect(response.header("Connection") == nil)
                }
            }
        }
    }

    @Test("a streamed response to HTTP/1.0 is delimited by closing the connection")
    func streamTo10() async throws {
        try await withServer(handler: { _, _ in
            ServerResponse(status: .ok, body: .stream(AsyncStream { continuation in
                continuation.yield(Array("one,".utf8))
                continuation.yield(Array("two".utf8))
                continuation.finish()
            }))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("GET / HTTP/1.0\r\n\r\n")
                let response = try client.readResponse()
                #expect(response.header("Transfer-Encoding") == nil)
                #expect(response.text == "one,two")
            }
        }
    }

    @Test("several event-loop threads share the listener and serve every connection")
    func severalLoops() async throws {
        let baseline = await stableDescriptorCount()
        try await withServer(ServerConfiguration(eventLoopThreads: 4)) { port, server in
            try await blocking {
                var clients: [TestClient] = []
                for _ in 0..<200 { clients.append(try TestClient(port: port)) }
                for (i, client) in clients.enumerated() { try client.send("GET /\(i) HTTP/1.1\r\nHost: t\r\n\r\n") }
                for (i, client) in clients.enumerated() { #expect(try client.readResponse().text == "/\(i)") }
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(openDescriptorCount() == baseline)
    }

    @Test("RequestBody.bytes feeds a handler without a socket")
    func inMemoryBody() async throws {
        let body = RequestBody.bytes(Array(repeating: 3, count: 100), chunkSize: 30)
        var sizes: [Int] = []
        for try await chunk in body { sizes.append(chunk.count) }
        #expect(sizes == [30, 30, 30, 10])
        #expect(body.expectedLength == 100)
    }
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
}
