import Glibc
import HTTPTypes
import TestSupport
import Testing

@testable import HTTPServer

/// A request body that nobody reads (RFC 9112 §6, §7.1): the fast path's answer, a handler's 404 or 405, a handler
/// that answers after reading part of it. The server reads and drops it, as strictly framed as an upload, before it
/// answers, so that the connection and the requests pipelined behind it go on.
@Suite("a body nobody reads is discarded", .serialized)
struct ServerDiscardTests {
    /// Where a request with a body goes, and what it is answered.
    enum Route: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// `GET /about`, answered on the loop.
        case fastPath
        /// The handler's 404, the body never touched.
        case notFound
        /// The handler's 405 with Allow, the body never touched.
        case methodNotAllowed
        /// The handler reads the first piece of the body and answers.
        case partlyRead

        var testDescription: String { rawValue }

        var requestLine: String {
            switch self {
            case .fastPath: "GET /about HTTP/1.1"
            case .notFound: "GET /missing HTTP/1.1"
            case .methodNotAllowed: "DELETE /about HTTP/1.1"
            case .partlyRead: "POST /partly HTTP/1.1"
            }
        }

        var status: Int {
            switch self {
            case .fastPath: 200
            case .notFound: 404
            case .methodNotAllowed: 405
            case .partlyRead: 202
            }
        }
    }

    static let about = ServerResponse(status: .ok, body: .bytes(Array("about".utf8))).prepared()

    static let fastPath: FastPath = { request in
        guard request.path == "/about", request.method == .get || request.method == .head else { return nil }
        return about
    }

    /// Serves what the fast path does not take; `/about` by GET too, as the service's routes do.
    static let handler: HTTPHandler = { request, body in
        switch (request.method, request.path ?? "") {
        case (.get, "/about"), (.head, "/about"): return about
        case (_, "/about"): return .problem(.methodNotAllowed, detail: "GET or HEAD", headerFields: [.allow: "GET, HEAD"])
        case (.post, "/partly"):
            var iterator = body.makeAsyncIterator()
            _ = try? await iterator.next()
            return ServerResponse(status: .accepted)
        default: return .problem(.notFound, detail: "no such resource")
        }
    }

    /// A body, by its framing fields and its bytes.
    struct Body: Sendable, CustomTestStringConvertible {
        var name: String
        var fields: String
        var bytes: String
        var testDescription: String { name }

        static func chunked(_ name: String, _ bytes: String) -> Body {
            Body(name: name, fields: "Transfer-Encoding: chunked\r\n", bytes: bytes)
        }
    }

    /// Valid framings of every kind the parser accepts (RFC 9112 §6.3, §7.1): each must be read to its end and
    /// leave the connection usable.
    static let valid: [Body] = [
        Body(name: "Content-Length", fields: "Content-Length: 5\r\n", bytes: "hello"),
        Body(name: "Content-Length list of identical values", fields: "Content-Length: 5, 5\r\n", bytes: "hello"),
        Body(name: "Content-Length twice, identical", fields: "Content-Length: 5\r\nContent-Length: 5\r\n", bytes: "hello"),
        Body(name: "Transfer-Encoding in upper case", fields: "TRANSFER-ENCODING: CHUNKED\r\n", bytes: "5\r\nhello\r\n0\r\n\r\n"),
        Body(name: "Transfer-Encoding with OWS", fields: "Transfer-Encoding: \t chunked \t\r\n", bytes: "5\r\nhello\r\n0\r\n\r\n"),
        .chunked("one chunk", "5\r\nhello\r\n0\r\n\r\n"),
        .chunked("several chunks, upper-case hex", "A\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n"),
        .chunked("leading zeros in a chunk size", "0005\r\nhello\r\n000\r\n\r\n"),
        .chunked("an empty chunked body", "0\r\n\r\n"),
        .chunked("chunk extensions", "5;name=value;flag\r\nhello\r\n0;last=1\r\n\r\n"),
        .chunked("a quoted chunk extension", "5;name=\"a; b \\\"c\\\"\"\r\nhello\r\n0\r\n\r\n"),
        .chunked("whitespace before a chunk extension", "5 \t;x=1\r\nhello\r\n0\r\n\r\n"),
        .chunked("trailers", "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:\t1 \r\n\r\n"),
    ]

    /// Broken chunked framings (RFC 9112 §7.1): each gets 400 and a close, like an upload's.
    static let malformed: [Body] = [
        .chunked("a chunk size that is not hex", "zz\r\nhello\r\n0\r\n\r\n"),
        .chunked("a 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
        .chunked("a negative chunk size", "-5\r\nhello\r\n0\r\n\r\n"),
        .chunked("a signed chunk size", "+5\r\nhello\r\n0\r\n\r\n"),
        .chunked("whitespace before the chunk size", " 5\r\nhello\r\n0\r\n\r\n"),
        .chunked("no chunk size", "\r\nhello\r\n0\r\n\r\n"),
        .chunked("a chunk size that overflows", "1ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        .chunked("a chunk longer than its size", "5\r\nhello world\r\n0\r\n\r\n"),
        .chunked("a chunk shorter than its size", "5\r\nhey\r\n0\r\n\r\n"),
        .chunked("a bare LF after the chunk size", "5\nhello\r\n0\r\n\r\n"),
        .chunked("a bare CR after the chunk size", "5\rhello\r\n0\r\n\r\n"),
        .chunked("a bare LF after the chunk data", "5\r\nhello\n0\r\n\r\n"),
        .chunked("a bare LF after the last chunk", "5\r\nhello\r\n0\n\r\n"),
        .chunked("a bare LF ending the trailers", "5\r\nhello\r\n0\r\n\n"),
        .chunked("a missing last chunk (the next request follows)", "5\r\nhello\r\n"),
        .chunked("a control character in a chunk extension", "5;a\u{01}b\r\nhello\r\n0\r\n\r\n"),
        .chunked("a trailer without a colon", "0\r\nno colon\r\n\r\n"),
        .chunked("a folded trailer", "0\r\nX-A: 1\r\n folded\r\n\r\n"),
    ]

    static let next = "GET /about HTTP/1.1\r\nHost: t\r\n\r\n"

    static func request(_ route: Route, _ body: Body, extra: String = "") -> String {
        "\(route.requestLine)\r\nHost: t\r\n\(extra)\(body.fields)\r\n\(body.bytes)"
    }

    /// What a client saw: the answers it read, in order, and whether the server then closed the connection.
    struct Seen: Sendable {
        var responses: [TestClient.Response] = []
        var closed = false
        /// An answer that arrived before the request was whole.
        var early = false
    }

    @Test("a valid body on a route that does not read it is read to its end; the answer keeps the connection, and the pipelined request behind it is answered",
          arguments: Route.allCases, valid)
    func validBodyKeepsConnection(route: Route, body: Body) async throws {
        try await withServer(fastPath: Self.fastPath, handler: Self.handler) { port, _ in
            let seen = try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.request(route, body) + Self.next)
                var seen = Seen()
                seen.responses = [try client.readResponse(), try client.readResponse()]
                try client.send(Self.next)
                seen.responses.append(try client.readResponse())
                return seen
            }
            #expect(seen.responses[0].status == route.status)
            #expect(seen.responses[0].header("Connection") == nil)
            #expect(seen.responses[1...].allSatisfy { $0.status == 200 && $0.text == "about" })
        }
    }

    @Test("a body with broken chunked framing on a route that does not read it gets 400 and a close, and nothing behind it is answered",
          arguments: Route.allCases, malformed)
    func malformedBodyIsRefused(route: Route, body: Body) async throws {
        try await withServer(fastPath: Self.fastPath, handler: Self.handler) { port, _ in
            let seen = try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.request(route, body) + Self.next)
                return Seen(responses: [try client.readResponse()], closed: client.isClosedByPeer())
            }
            let response = seen.responses[0]
            #expect(response.status == 400, "\(response.text)")
            #expect(response.header("Connection") == "close")
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(seen.closed, "the request behind the broken body was answered")
        }
    }

    @Test("no answer goes out before the discarded body is complete; sent in pieces, it is read to its end",
          arguments: Route.allCases)
    func answerWaitsForTheBody(route: Route) async throws {
        try await withServer(fastPath: Self.fastPath, handler: Self.handler) { port, _ in
            let seen = try await blocking {
                let client = try TestClient(port: port)
                var seen = Seen()
                try client.send("\(route.requestLine)\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                for piece in ["5\r\nhel", "lo\r\n", "3;x=\"y\"\r\nabc\r", "\n0\r\nX-T: 1\r\n"] {
                    try client.send(piece)
                    usleep(50_000)
                    if client.hasIncoming { seen.early = true }
                }
                try client.send("\r\n" + Self.next)
                seen.responses = [try client.readResponse(), try client.readResponse()]
                return seen
            }
            #expect(!seen.early, "answered before the body was complete")
            #expect(seen.responses[0].status == route.status && seen.responses[0].header("Connection") == nil)
            #expect(seen.responses[1].text == "about")
        }
    }

    @Test("a body larger than the discard bound: the answer carries Connection: close and the connection closes",
          arguments: Route.allCases, [true, false])
    func overTheBound(route: Route, chunked: Bool) async throws {
        // Past the default bound (256 KiB); the first 1000 bytes are what `.partlyRead` reads.
        let size = 300_000
        try await withServer(fastPath: Self.fastPath, handler: Self.handler) { port, _ in
            let seen = try await blocking {
                let client = try TestClient(port: port)
                if chunked {
                    try client.send("\(route.requestLine)\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                    try client.send("3e8\r\n" + String(repeating: "x", count: 1000) + "\r\n")
                    let chunk = "4000\r\n" + String(repeating: "x", count: 0x4000) + "\r\n"
                    for _ in 0..<(size / 0x4000 + 1) { try client.send(chunk) }
                } else {
                    try client.send("\(route.requestLine)\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n")
                    try client.send(String(repeating: "x", count: 1000))
                }
                return Seen(responses: [try client.readResponse()], closed: client.isClosedByPeer())
            }
            #expect(seen.responses[0].status == route.status)
            #expect(seen.responses[0].header("Connection") == "close")
            #expect(seen.closed)
        }
    }

    @Test("a client that sends all of a body past the bound before it reads, for longer than one linger period, can send it all and then read its answer")
    func lingerWhileTheClientSends() async throws {
        // 16 pieces of 128 KiB, 250 ms apart: 4 s of sending, where an idle linger period is 2 s.
        let piece = String(repeating: "x", count: 128 << 10)
        try await withServer(fastPath: Self.fastPath, handler: Self.handler) { port, _ in
            let response = try await blocking {
                let client = try TestClient(port: port)
                try client.send("\(Route.notFound.requestLine)\r\nHost: t\r\nContent-Length: \(16 * piece.utf8.count)\r\n\r\n")
                for _ in 0..<16 {
                    try client.send(piece)
                    usleep(250_000)
                }
                return try client.readResponse()
            }
            #expect(response.status == Route.notFound.status)
            #expect(response.header("Connection") == "close")
        }
    }

    @Test("Expect: 100-continue on a route that does not read the body: the answer comes at once, with no 100, and closes",
          arguments: [Route.fastPath, .notFound, .methodNotAllowed])
    func expectContinueUnread(route: Route) async throws {
        try await withServer(fastPath: Self.fastPath, handler: Self.handler) { port, _ in
            let seen = try await blocking {
                let client = try TestClient(port: port)
                try client.send("\(route.requestLine)\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
                return Seen(responses: [try client.readResponse()], closed: client.isClosedByPeer())
            }
            let response = seen.responses[0]
            #expect(response.status == route.status)
            #expect(response.interim.isEmpty, "a 100 Continue asked for a body nobody reads")
            #expect(response.header("Connection") == "close")
            #expect(seen.closed)
        }
    }

    /// Requests the server refuses itself, named by their request line, each with a HEAD method.
    static let refusedHeads: [(String, Int)] = [
        ("HEAD /about HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
        ("HEAD /about HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n", 400),
        ("HEAD /about HTTP/1.1\r\nHost: t\r\n" + (0...100).map { "X-\($0): v\r\n" }.joined() + "\r\n", 431),
        ("HEAD /about HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("HEAD /about HTTP/1.2\r\nHost: t\r\n\r\n", 505),
        ("HEAD /about HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ]

    @Test("the server's own error answer to HEAD has its length but no body", arguments: refusedHeads)
    func errorToHeadHasNoBody(request: String, status: Int) async throws {
        try await withServer(fastPath: Self.fastPath, handler: Self.handler) { port, _ in
            let seen = try await blocking {
                let client = try TestClient(port: port)
                try client.send(request)
                return Seen(responses: [try client.readResponse(head: true)], closed: client.isClosedByPeer())
            }
            #expect(seen.responses[0].status == status)
            #expect(Int(seen.responses[0].header("Content-Length") ?? "") ?? 0 > 0, "the length of the GET answer")
            #expect(seen.closed, "a body followed the head")
        }
    }
}
