import Dispatch
import Glibc
import HTTPTypes
import SystemSupport
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
    fastPath: FastPath? = nil,
    observer: ResponseObserver? = nil,
    handler: @escaping HTTPHandler = { request, _ in
        ServerResponse(status: .ok, body: .bytes(Array((request.path ?? "").utf8)))
    },
    _ body: (Int, Server) async throws -> Void
) async throws {
    let server = Server(configuration: configuration, fastPath: fastPath, observer: observer, handler: handler)
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
    private let storage: Locked<[Value]>
    init() { storage = Locked([]) }
    func add(_ value: Value) { storage.withLock { $0.append(value) } }
    var values: [Value] { storage.withLock { $0 } }
}

/// A handler that reads the whole body (up to `limit` bytes), records the error the body throws if it does, and
/// answers 200; `started`, if given, learns of each call first.
func collectingBody(_ errors: Recorder<String>, limit: Int = 1 << 20, started: Recorder<Bool>? = nil) -> HTTPHandler {
    { _, body in
        started?.add(true)
        do { _ = try await body.collect(upTo: limit) } catch { errors.add("\(error)") }
        return ServerResponse(status: .ok)
    }
}

@Suite("Server over real sockets", .serialized)
struct ServerTests {
    static let get = "GET /about HTTP/1.1\r\nHost: t\r\n\r\n"

    @Test("keep-alive: several requests on one connection, with Date and Content-Length, and no Server by default")
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
                    #expect(response.header("Server") == nil)
                    #expect(response.header("Date")?.hasSuffix(" GMT") == true)
                    #expect(response.header("Connection") == nil)
                }
            }
        }
    }

    @Test("a configured server name is sent in Server, with control characters dropped")
    func serverName() async throws {
        try await withServer(ServerConfiguration(serverName: "svc\r\nX-Injected: 1")) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                let response = try client.readResponse()
                #expect(response.header("Server") == "svcX-Injected: 1")
                #expect(response.header("X-Injected") == nil)
            }
        }
    }

    @Test("10 pipelined requests are answered in order", arguments: [false, true])
    func pipelined(fastPath: Bool) async throws {
        let echo: FastPath = { request in
            ServerResponse(status: .ok, body: .bytes(Array(request.path.utf8)))
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
        try await withServer(ServerConfiguration(serverName: "svc"), handler: { _, _ in
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
                #expect(response.headers.filter { $0.0.lowercased() == "server" }.map(\.1) == ["svc"])
                #expect(response.header("X-Kept") == "1")
                try client.send(Self.get)
                #expect(try client.readResponse().text == "abc")
            }
        }
    }

    @Test("a prepared response goes out as its unprepared twin; a new body keeps it, a changed head drops it")
    func preparedResponse() async throws {
        let plain = ServerResponse(
            status: .accepted, headerFields: [.contentType: "text/plain", .contentLength: "999", .init("X-Kept")!: "1"],
            body: .bytes(Array("abc".utf8)))
        let prepared = plain.prepared()
        var newBody = prepared
        newBody.body = .bytes(Array("longer body".utf8))
        var newHead = prepared
        newHead.head.status = .notFound
        var closing = prepared
        closing.head.headerFields[.connection] = "close"
        let fast: FastPath = { [newBody, newHead, closing] request in
            switch request.path {
            case "/plain": plain
            case "/prepared": prepared
            case "/new-body": newBody
            case "/new-head": newHead
            case "/closing": closing.prepared()
            default: nil
            }
        }
        try await withServer(fastPath: fast) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                func get(_ path: String) throws -> TestClient.Response {
                    try client.send("GET \(path) HTTP/1.1\r\nHost: t\r\n\r\n")
                    return try client.readResponse()
                }
                func withoutDate(_ response: TestClient.Response) -> [String] {
                    response.headers.filter { $0.0.lowercased() != "date" }.map { "\($0.0): \($0.1)" }
                }
                let a = try get("/plain")
                let b = try get("/prepared")
                #expect(b.status == 202 && b.text == "abc")
                #expect(withoutDate(a) == withoutDate(b))
                #expect(b.header("Content-Length") == "3")
                let c = try get("/new-body")
                #expect(c.text == "longer body")
                #expect(c.header("Content-Length") == "11")
                #expect(try get("/new-head").status == 404)
                let d = try get("/closing")
                #expect(d.status == 202)
                #expect(d.headers.filter { $0.0.lowercased() == "connection" }.map(\.1) == ["close"])
                #expect(client.isClosedByPeer())
                // HTTP/1.0 without keep-alive: answered from the fast path, then closed; HEAD: the length, no body.
                let old = try TestClient(port: port)
                try old.send("HEAD /prepared HTTP/1.0\r\n\r\n")
                let e = try old.readResponse(head: true)
                #expect(e.status == 202 && e.header("Content-Length") == "3" && e.body.isEmpty)
                #expect(old.isClosedByPeer())
            }
        }
    }

    @Test("a handler answering with an interim status gets a 500 in its place")
    func interimStatus() async throws {
        try await withServer(handler: { _, _ in ServerResponse(status: .continue) }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                let response = try client.readResponse()
                #expect(response.status == 500)
                #expect(response.interim.isEmpty, "the handler's 100 never reaches the wire")
                #expect(response.header("Content-Type") == "application/problem+json")
            }
        }
    }

    @Test("mutated requests over the wire: every connection gets an answer or a close, and nothing leaks")
    func wireMutations() async throws {
        let baseline = await stableDescriptorCount()
        var configuration = ServerConfiguration(maxBodySize: 100)
        // Short, so that connections the mutation left waiting (a cut head, a short body, keep-alive) end soon.
        configuration.headerTimeout = .milliseconds(150)
        configuration.bodyIdleTimeout = .milliseconds(150)
        configuration.keepAliveTimeout = .milliseconds(50)
        try await withServer(configuration, handler: { request, body in
            let bytes = (try? await body.collect(upTo: 1000)) ?? []
            return ServerResponse(status: .ok, body: .bytes(Array("\(request.path ?? "") \(bytes.count)".utf8)))
        }) { port, server in
            try await blocking {
                var generator = SplitMix(seed: 0xF00D)
                let alphabet = Array("\r\n :;,0123456789abcdefABCDEF\t\u{0}\u{7f}GETPOSTHTTP/1.1".utf8)
                for _ in 0..<200 {
                    let sources = HTTPParserTests.validRequests
                    var request = Array(sources[Int(generator.next() % UInt64(sources.count))].utf8)
                    for _ in 0..<(1 + generator.next() % 3) {
                        let position = Int(generator.next() % UInt64(request.count))
                        switch generator.next() % 3 {
                        case 0: request[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                        case 1: request.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
                        default: request.remove(at: position)
                        }
                    }
                    let client = try TestClient(port: port, receiveTimeoutSeconds: 3)
                    try? client.send(request)
                    // Whatever came of it (answers, an error document, a timeout), the server must end it:
                    // read until it closes. A hang here would be a connection the server forgot.
                    var answered = 0
                    while let response = try? client.readResponse() {
                        #expect(response.status > 0)
                        answered += 1
                        if answered > 8 { break }
                    }
                    #expect(client.isClosedByPeer())
                }
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(openDescriptorCount() == baseline)
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

    @Test("a client that resets during sendfile neither kills the process (SIGPIPE) nor leaks the file")
    func resetDuringSendfile() async throws {
        let path = "/tmp/http-server-reset-\(getpid()).bin"
        let out = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        let block = [UInt8](repeating: 0x5A, count: 1 << 20)
        for _ in 0..<32 { block.withUnsafeBytes { _ = write(out, $0.baseAddress, $0.count) } }
        close(out)
        defer { unlink(path) }
        let baseline = await stableDescriptorCount()
        try await withServer(handler: { _, _ in
            ServerResponse(status: .ok, body: .file(descriptor: open(path, O_RDONLY | O_CLOEXEC), length: 32 << 20))
        }) { port, server in
            for _ in 0..<3 {
                try await blocking {
                    let client = try TestClient(port: port)
                    try client.send(Self.get)
                    var buffer = [UInt8](repeating: 0, count: 65536)
                    _ = buffer.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, $0.count, 0) }
                    client.reset()
                }
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(openDescriptorCount() == baseline)
    }
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
}
