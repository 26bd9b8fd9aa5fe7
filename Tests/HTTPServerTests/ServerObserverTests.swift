import Glibc
import HTTPTypes
import SystemSupport
import TestSupport
import Testing

@testable import HTTPServer

/// The one observation point: every response the server sends reaches the observer once, whoever made it.
@Suite("the response observer", .serialized)
struct ServerObserverTests {
    /// What a test compares of an observation (the closure's value is not Equatable: it carries an annotation).
    struct Seen: Equatable, CustomStringConvertible {
        var method: String?
        var target: String?
        var status: Int
        var bytesIn: Int64
        var bytesOut: Int64?
        var annotation: String?

        init(_ method: String?, _ target: String?, _ status: Int, in bytesIn: Int64 = 0, out bytesOut: Int64?,
             annotation: String? = nil) {
            (self.method, self.target, self.status, self.bytesIn, self.bytesOut, self.annotation) =
                (method, target, status, bytesIn, bytesOut, annotation)
        }

        init(_ observed: ObservedResponse) {
            self.init(
                observed.method?.rawValue, observed.target, observed.status.code, in: observed.requestBodyBytes,
                out: observed.responseBodyBytes, annotation: observed.annotation as? String)
        }

        var description: String {
            "\(method ?? "-") \(target ?? "-") \(status) in=\(bytesIn) out=\(bytesOut.map(String.init) ?? "-") \(annotation ?? "")"
        }
    }

    static let fastAnswer = ServerResponse(status: .ok, body: .bytes(Array("fast".utf8))).prepared()

    /// A fast path for `/fast`, and a handler that reads its body and answers 201 with its length, annotated.
    static func observed(_ seen: Recorder<Seen>, _ configuration: ServerConfiguration = .init(),
                         _ body: @escaping @Sendable (Int) throws -> Void) async throws {
        try await withServer(
            configuration,
            fastPath: { $0.path.hasPrefix("/fast") ? fastAnswer : nil },
            observer: { seen.add(Seen($0)) },
            handler: { request, body in
                let bytes = (try? await body.collect(upTo: 1 << 20)) ?? []
                var response = ServerResponse(status: .created, body: .bytes(Array("\(bytes.count)".utf8)))
                response.annotation = "job of \(request.path ?? "")"
                return response
            }
        ) { port, _ in try await blocking { try body(port) } }
    }

    @Test("the fast path's answer, the handler's and a server-own error each reach the observer with status, method and target")
    func everyOrigin() async throws {
        let seen = Recorder<Seen>()
        try await Self.observed(seen) { port in
            let client = try TestClient(port: port)
            try client.send("GET /fast?x=1 HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try client.readResponse().text == "fast")
            try client.send("HEAD /fast HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try client.readResponse(head: true).status == 200)
            try client.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
            let created = try client.readResponse()
            #expect(created.status == 201 && created.text == "7")
            #expect(!created.headers.contains { $0.1.contains("job of") }, "the annotation stays off the wire")
            try client.send("GET /broken HTTP/1.1\r\nHost: t\r\nBad Field: x\r\n\r\n")
            #expect(try client.readResponse().status == 400)
        }
        let problemLength = Int64(ServerResponse.problem(.badRequest, detail: "invalid character in field name").bodyLength)
        #expect(seen.values == [
            Seen("GET", "/fast?x=1", 200, out: 4),
            Seen("HEAD", "/fast", 200, out: 0),
            Seen("POST", "/upload", 201, in: 7, out: 1, annotation: "job of /upload"),
            Seen("GET", "/broken", 400, out: problemLength),
        ])
    }

    @Test("a head refused or timed out after its request line is named by it; one garbled or cut short before is not",
          arguments: [
            ("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n", Seen("POST", "/big", 413, out: nil)),
            ("GET /many HTTP/1.1\r\n" + String(repeating: "X-A: b\r\n", count: 101) + "\r\n", Seen("GET", "/many", 431, out: nil)),
            ("PUT /slow HTTP/1.1\r\nHost: t\r\n", Seen("PUT", "/slow", 408, out: nil)),
            ("GET /sl", Seen(nil, nil, 408, out: nil)),
            ("GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\n\r\n", Seen(nil, nil, 414, out: nil)),
            ("GET / HTTP/2.0\r\nHost: t\r\n\r\n", Seen(nil, nil, 505, out: nil)),
            ("NONSENSE\r\n\r\n", Seen(nil, nil, 400, out: nil)),
          ])
    func refusedHeads(request: String, expected: Seen) async throws {
        var configuration = ServerConfiguration()
        configuration.maxBodySize = 1000
        configuration.headerTimeout = .milliseconds(300)
        let seen = Recorder<Seen>()
        try await Self.observed(seen, configuration) { port in
            let client = try TestClient(port: port)
            try? client.send(request)
            #expect(try client.readResponse().status == expected.status)
        }
        #expect(seen.values.count == 1)
        var observed = try #require(seen.values.first)
        #expect(observed.bytesOut ?? 0 > 0, "the problem document's length")
        observed.bytesOut = nil
        #expect(observed == expected)
    }

    @Test("the 503 at the connection limit reaches the observer with no request")
    func overload() async throws {
        var configuration = ServerConfiguration()
        configuration.maxConnections = 1
        let seen = Recorder<Seen>()
        let entered = Recorder<Bool>()
        try await withServer(configuration, observer: { seen.add(Seen($0)) }, handler: collectingBody(Recorder(), started: entered)) { port, _ in
            try await blocking {
                // Inside its handler, waiting for the rest of its body: never closed to make room.
                let holder = try TestClient(port: port)
                try holder.send("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
                #expect(waitUntil { entered.values.count == 1 })
                let refused = try TestClient(port: port)
                #expect(try refused.readResponse().status == 503)
                #expect(waitUntil { seen.values.count == 1 })
                // The holder leaves before the server stops, so that what it is observed as does not race that.
                holder.reset()
                #expect(waitUntil { seen.values.count == 2 })
            }
        }
        let problemLength = Int64(ServerResponse.problem(.serviceUnavailable, detail: "too many connections").bodyLength)
        #expect(seen.values.first == Seen(nil, nil, 503, out: problemLength))
        #expect(seen.values.dropFirst().map { "\($0.method ?? "-") \($0.target ?? "-") \($0.status)" } == ["POST /hold 499"])
    }

    @Test("a client that leaves before its answer is observed once, as 499 with its request; one cut off by the server's shutdown is not")
    func clientLeft() async throws {
        let seen = Recorder<Seen>()
        let entered = Recorder<Bool>()
        let kept = Locked<Int32>(-1)
        try await withServer(observer: { seen.add(Seen($0)) }, handler: collectingBody(Recorder(), started: entered)) { port, _ in
            try await blocking {
                let leaving = try TestClient(port: port)
                try leaving.send("POST /gone HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
                #expect(waitUntil { entered.values.count == 1 })
                leaving.reset()
                #expect(waitUntil { seen.values.count == 1 })
                // In its handler when the server shuts down: a duplicate of its descriptor keeps it open past this
                // closure, which the client object does not.
                let staying = try TestClient(port: port)
                try staying.send("POST /cut HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
                #expect(waitUntil { entered.values.count == 2 })
                kept.withLock { $0 = dup(staying.fd) }
            }
        }
        kept.withLock { _ = close($0) }
        #expect(seen.values.map(\.status) == [499], "\(seen.values)")
        #expect(seen.values.first?.method == "POST")
        #expect(seen.values.first?.target == "/gone")
        #expect(seen.values.first?.annotation == nil)
    }

    @Test("an interim status from the handler is observed as the 500 that is sent, with the handler's annotation")
    func interimReplaced() async throws {
        let seen = Recorder<Seen>()
        try await withServer(observer: { seen.add(Seen($0)) }, handler: { _, _ in
            var response = ServerResponse(status: .continue)
            response.annotation = "mine"
            return response
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("GET /interim HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try client.readResponse().status == 500)
            }
        }
        #expect(seen.values.map(\.status) == [500])
        #expect(seen.values.first?.annotation == "mine")
        #expect(seen.values.first?.target == "/interim")
    }

    @Test("a streamed answer is observed once, when its head is queued, with its length unknown")
    func streamed() async throws {
        let seen = Recorder<Seen>()
        try await withServer(observer: { seen.add(Seen($0)) }, handler: { _, _ in
            ServerResponse(status: .ok, body: .stream(AsyncStream { continuation in
                continuation.yield(Array("one".utf8))
                continuation.finish()
            }))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try client.readResponse().text == "one")
            }
        }
        #expect(seen.values == [Seen("GET", "/stream", 200, out: nil)])
    }
}

extension ServerResponse {
    /// The length of an in-memory body (a problem document's).
    var bodyLength: Int {
        if case .bytes(let bytes) = body { return bytes.count }
        return 0
    }
}
