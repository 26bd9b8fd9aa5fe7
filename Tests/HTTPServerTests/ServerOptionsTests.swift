import HTTPTypes
import TestSupport
import Testing

@testable import HTTPServer

/// The asterisk form (RFC 9112 §3.2.4): only `OPTIONS *` may use it, and it asks about the server as a whole
/// (RFC 9110 §9.3.7), so the server answers it itself, from the methods the application declared.
@Suite("OPTIONS * is the server's", .serialized)
struct ServerOptionsTests {
    /// A handler that would answer anything with 200, so that an answer that is not 204 shows who answered.
    static let handler: HTTPHandler = { request, _ in
        ServerResponse(status: .ok, body: .bytes(Array("handler \(request.path ?? "")".utf8)))
    }

    static let requests: [String] = [
        "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
        "OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody",
        "OPTIONS * HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
    ]

    @Test("OPTIONS * gets 204 with Allow, without the handler, and the connection stays open", arguments: requests)
    func optionsAsterisk(_ request: String) async throws {
        try await withServer(handler: Self.handler) { port, _ in
            let (response, next) = try await blocking {
                let client = try TestClient(port: port)
                try client.send(request + "GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
                return (try client.readResponse(), try client.readResponse())
            }
            #expect(response.status == 204, "\(response.text)")
            #expect(response.header("Allow") == "OPTIONS")
            #expect(response.header("Content-Length") == nil)
            #expect(next.text == "handler /next")
        }
    }

    @Test("Allow lists the methods the application declared, once each, and OPTIONS",
          arguments: [([], "OPTIONS"), ([.get, .post], "GET, POST, OPTIONS"), ([.options, .get, .get], "OPTIONS, GET")]
            as [([HTTPRequest.Method], String)])
    func allowedMethods(_ methods: [HTTPRequest.Method], allow: String) async throws {
        try await withServer(ServerConfiguration(allowedMethods: methods), handler: Self.handler) { port, _ in
            let response = try await blocking {
                let client = try TestClient(port: port)
                try client.send("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
                return try client.readResponse()
            }
            #expect(response.status == 204)
            #expect(response.header("Allow") == allow)
        }
    }

    @Test("any other method with the asterisk form is a 400 and a close",
          arguments: ["GET", "HEAD", "POST", "DELETE", "PUT", "TRACE", "CONNECT"])
    func asteriskWithOtherMethods(_ method: String) async throws {
        try await withServer(handler: Self.handler) { port, _ in
            let (response, closed) = try await blocking {
                let client = try TestClient(port: port)
                try client.send("\(method) * HTTP/1.1\r\nHost: t\r\n\r\n")
                return (try client.readResponse(head: method == "HEAD"), client.isClosedByPeer())
            }
            #expect(response.status == 400)
            #expect(closed)
        }
    }

    @Test("OPTIONS on a path is the application's: it reaches the handler")
    func optionsOnAPath() async throws {
        try await withServer(handler: Self.handler) { port, _ in
            let response = try await blocking {
                let client = try TestClient(port: port)
                try client.send("OPTIONS /thing HTTP/1.1\r\nHost: t\r\n\r\n")
                return try client.readResponse()
            }
            #expect(response.text == "handler /thing")
        }
    }
}
