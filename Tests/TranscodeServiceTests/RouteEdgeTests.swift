import Foundation
import TestSupport
import Testing
import TranscodeService

/// The service's routes at the edges of HTTP: bodies sent where no route reads them (RFC 9112 §6), and OPTIONS
/// (RFC 9110 §9.3.7), for the server as a whole and for each path.
@Suite("the routes' edges: unread bodies and OPTIONS")
struct RouteEdgeTests {
    struct Unread: Sendable, CustomTestStringConvertible {
        var method: String
        var target: String
        var status: Int
        var testDescription: String { "\(method) \(target) → \(status)" }
    }

    /// Every answer that leaves a request's body unread: the fast path's, the other routes', the refusals made
    /// before an upload's body is read.
    static let unread: [Unread] = [
        .init(method: "GET", target: "/about", status: 200),
        .init(method: "HEAD", target: "/about", status: 200),
        .init(method: "GET", target: "/metrics", status: 200),
        .init(method: "DELETE", target: "/about", status: 405),
        .init(method: "GET", target: "/clip-7", status: 405),
        .init(method: "GET", target: "/", status: 404),
        .init(method: "POST", target: "/..", status: 400),
        .init(method: "POST", target: "/about", status: 400),
        .init(method: "POST", target: "/jobs", status: 400),
        .init(method: "POST", target: "/a/b", status: 400),
        .init(method: "POST", target: "/clip?crf=99", status: 400),
        .init(method: "POST", target: "/clip?color=red", status: 400),
    ]

    static let bodies = [
        "Content-Length: 5\r\n\r\nhello",
        "Transfer-Encoding: chunked\r\n\r\n5;ext=\"q\"\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
    ]

    @Test("a body no route reads is read and dropped: the answer keeps the connection, and the next request is served",
          arguments: unread, bodies)
    func unreadBodyKeepsConnection(_ c: Unread, body: String) async throws {
        let (first, next, completed) = try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            let client = try TestClient(port: running.port, receiveTimeoutSeconds: 30)
            try client.send("\(c.method) \(c.target) HTTP/1.1\r\nHost: t\r\n\(body)GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
            let first = try client.readResponse(head: c.method == "HEAD")
            return (first, try client.readResponse(), try running.about()["completed"] as? Int)
        }
        #expect(first.status == c.status, "\(first.text)")
        #expect(first.header("Connection") == nil)
        #expect(next.status == 200 && next.text.contains("\"status\":\"ok\""))
        #expect(completed == 0, "no job ran")
    }

    @Test("a broken chunked body where no route reads it is a 400 and a close",
          arguments: ["GET /about", "DELETE /about", "GET /", "POST /..", "POST /clip?crf=99"],
          ["0x5\r\nhello\r\n0\r\n\r\n", "5\r\nhello world\r\n0\r\n\r\n", "5\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n"])
    func brokenBodyIsRefused(_ requestLine: String, chunks: String) async throws {
        let (response, closed) = try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            let client = try TestClient(port: running.port, receiveTimeoutSeconds: 30)
            try client.send("\(requestLine) HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\(chunks)"
                + "GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
            let response = try client.readResponse()
            return (response, client.isClosedByPeer())
        }
        #expect(response.status == 400, "\(response.text)")
        // A bad id or query is a 400 of its own: the framing's must be the one that answers.
        #expect(response.text.contains("chunk"), "the route answered, not the framing check: \(response.text)")
        #expect(response.header("Connection") == "close")
        #expect(closed)
    }

    /// Every method some route serves, and OPTIONS.
    static var serverWide: Set<String> {
        Set(Routes.table.flatMap { $0.methods.map(\.rawValue) } + ["OPTIONS"])
    }

    static func methods(_ allow: String?) -> Set<String> {
        Set((allow ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    /// Sends each request on one connection of a new service and reads each answer.
    static func exchanges(_ requests: [String]) async throws -> [TestClient.Response] {
        try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            let client = try TestClient(port: running.port, receiveTimeoutSeconds: 30)
            return try requests.map { request in
                try client.send(request)
                return try client.readResponse()
            }
        }
    }

    @Test("OPTIONS * gets 204 with every method the route table serves, and the connection stays open")
    func optionsAsterisk() async throws {
        let answers = try await Self.exchanges(["OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", "GET /about HTTP/1.1\r\nHost: t\r\n\r\n"])
        #expect(answers[0].status == 204)
        #expect(Self.methods(answers[0].header("Allow")) == Self.serverWide)
        #expect(answers[1].status == 200)
    }

    @Test("OPTIONS on a route gets 204 with the route's own Allow; on a path that names nothing, 404",
          arguments: [("/about", "/about"), ("/about?x=1", "/about"), ("/metrics", "/metrics"), ("/clip-7", "/{video_id}"),
                      ("/", nil), ("/a/b", nil), ("/no%20such", nil), ("/..", nil)])
    func optionsOnAPath(_ target: String, template: String?) async throws {
        let response = try await Self.exchanges(["OPTIONS \(target) HTTP/1.1\r\nHost: t\r\n\r\n"])[0]
        guard let template else {
            #expect(response.status == 404)
            return
        }
        let route = try #require(Routes.table.first { $0.template == template })
        #expect(response.status == 204)
        #expect(Self.methods(response.header("Allow")) == Set(route.methods.map(\.rawValue) + ["OPTIONS"]))
    }

    @Test("a 405's Allow names OPTIONS too", arguments: ["DELETE /about", "PUT /metrics", "GET /clip-7"])
    func refusalAllowsOptions(_ requestLine: String) async throws {
        let response = try await Self.exchanges(["\(requestLine) HTTP/1.1\r\nHost: t\r\n\r\n"])[0]
        #expect(response.status == 405)
        #expect(Self.methods(response.header("Allow")).contains("OPTIONS"))
    }
}
