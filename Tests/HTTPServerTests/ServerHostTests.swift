import TestSupport
import Testing

@testable import HTTPServer

/// Host (RFC 9112 §3.2, RFC 3986 §3.2.2): an HTTP/1.1 request needs exactly one, and its value must be a
/// `uri-host [":" port]`; anything else is a 400 and a close.
@Suite("the Host field is checked", .serialized)
struct ServerHostTests {
    struct Host: Sendable, CustomTestStringConvertible {
        var value: String
        var why: String
        var testDescription: String { "\(why): \(value.debugDescription)" }
    }

    static let valid: [Host] = [
        // reg-name
        .init(value: "example.com", why: "a name"),
        .init(value: "EXAMPLE.com", why: "a name in mixed case"),
        .init(value: "a", why: "one letter"),
        .init(value: "xn--bcher-kva.example", why: "an IDNA name"),
        .init(value: "a-b_c~d.e", why: "every unreserved character"),
        .init(value: "a!$&'()*+,;=b", why: "sub-delims"),
        .init(value: "ex%41mple.com", why: "percent-encoding"),
        .init(value: "999.1.1.1", why: "digits that are no IPv4 address, yet a reg-name"),
        .init(value: "", why: "empty (a target URI without authority)"),
        // IPv4
        .init(value: "127.0.0.1", why: "IPv4"),
        // IP-literal
        .init(value: "[::1]", why: "IPv6 loopback"),
        .init(value: "[::]", why: "IPv6 unspecified"),
        .init(value: "[2001:db8::8a2e:370:7334]", why: "IPv6 compressed"),
        .init(value: "[2001:DB8:0:0:0:0:2:1]", why: "IPv6 in full, upper-case hex"),
        .init(value: "[1::]", why: "IPv6 compressed at the end"),
        .init(value: "[::ffff:192.0.2.1]", why: "IPv6 with an IPv4 tail"),
        .init(value: "[1:2:3:4:5:6:1.2.3.4]", why: "IPv6 in full with an IPv4 tail"),
        .init(value: "[v1.fe80::a+en1]", why: "IPvFuture"),
        // port
        .init(value: "example.com:8080", why: "a name and a port"),
        .init(value: "127.0.0.1:80", why: "IPv4 and a port"),
        .init(value: "[::1]:65535", why: "IPv6 and the highest port"),
        .init(value: "example.com:0", why: "port 0"),
        .init(value: "example.com:", why: "an empty port"),
    ]

    static let invalid: [Host] = [
        // whitespace and control characters
        .init(value: "exa mple.com", why: "a space"),
        .init(value: "exa\tmple.com", why: "a tab"),
        .init(value: "exa\u{01}mple.com", why: "a control character"),
        .init(value: "exa\u{7f}mple.com", why: "DEL"),
        .init(value: "ex\u{e4}mple.com", why: "a byte past ASCII"),
        // characters outside reg-name
        .init(value: "user@example.com", why: "userinfo"),
        .init(value: "example.com/path", why: "a path"),
        .init(value: "example.com?q", why: "a query"),
        .init(value: "example.com#f", why: "a fragment"),
        .init(value: "exa\\mple.com", why: "a backslash"),
        .init(value: "\"example.com\"", why: "quotes"),
        .init(value: "<example.com>", why: "angle brackets"),
        .init(value: "ex%4", why: "a cut percent-encoding"),
        .init(value: "ex%zzmple.com", why: "a percent not followed by hex"),
        // port
        .init(value: "example.com:abc", why: "a port that is not digits"),
        .init(value: "example.com:-1", why: "a negative port"),
        .init(value: "example.com:+80", why: "a signed port"),
        .init(value: "example.com:65536", why: "a port past 65535"),
        .init(value: "example.com:000000080", why: "a port of too many digits"),
        .init(value: "example.com:80:80", why: "two ports"),
        .init(value: "example.com: 80", why: "a space before the port"),
        // IP-literal
        .init(value: "[::1", why: "an unclosed bracket"),
        .init(value: "::1]", why: "a closing bracket alone"),
        .init(value: "::1", why: "IPv6 without brackets"),
        .init(value: "[]", why: "empty brackets"),
        .init(value: "[::1]x", why: "something after the bracket"),
        .init(value: "[:::]", why: "three colons"),
        .init(value: "[1::2::3]", why: "two ::"),
        .init(value: "[12345::]", why: "a group of five digits"),
        .init(value: "[1:2:3:4:5:6:7:8:9]", why: "nine groups"),
        .init(value: "[1:2:3:4:5:6:7]", why: "seven groups without ::"),
        .init(value: "[1:2:3:4:5:6:7::8]", why: ":: standing for no group"),
        .init(value: "[:1:2:3:4:5:6:7]", why: "a leading single colon"),
        .init(value: "[g::1]", why: "a non-hex group"),
        .init(value: "[::1%25eth0]", why: "a zone identifier"),
        .init(value: "[::ffff:1.2.3]", why: "an IPv4 tail of three parts"),
        .init(value: "[::ffff:1.2.3.256]", why: "an IPv4 tail past 255"),
        .init(value: "[::ffff:1.2.3.04]", why: "an IPv4 tail with a leading zero"),
        .init(value: "[1.2.3.4]", why: "IPv4 in brackets"),
        .init(value: "[v1.]", why: "IPvFuture without an address"),
        .init(value: "[vx.a]", why: "IPvFuture without a hex version"),
        .init(value: "example[1].com", why: "brackets inside a name"),
    ]

    static func get(host: String) -> String { "GET /h HTTP/1.1\r\nHost: \(host)\r\n\r\n" }

    /// One request on a new connection: the answer, and whether the server then closed.
    static func exchange(_ request: String, port: Int) async throws -> (TestClient.Response, closed: Bool) {
        try await blocking {
            let client = try TestClient(port: port)
            try client.send(request)
            let response = try client.readResponse()
            return (response, response.header("Connection") == "close" && client.isClosedByPeer())
        }
    }

    @Test("a valid Host is served, and the connection stays open", arguments: valid)
    func validHost(_ host: Host) async throws {
        try await withServer { port, _ in
            let (response, _) = try await Self.exchange(Self.get(host: host.value), port: port)
            #expect(response.status == 200, "\(response.text)")
            #expect(response.header("Connection") == nil)
        }
    }

    @Test("an invalid Host value is a 400 and a close", arguments: invalid)
    func invalidHost(_ host: Host) async throws {
        try await withServer { port, _ in
            let (response, closed) = try await Self.exchange(Self.get(host: host.value), port: port)
            #expect(response.status == 400, "\(response.text)")
            #expect(closed)
        }
    }

    static let missingOrRepeated = [
        "GET /h HTTP/1.1\r\n\r\n",
        "GET /h HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        "GET /h HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
        "GET http://a/h HTTP/1.1\r\n\r\n",
        // An absolute-form target's authority is checked like Host (RFC 9112 §3.2.2).
        "GET http://user@a/h HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a:port/h HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://[::1/h HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:///h HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://:80/h HTTP/1.1\r\nHost: a\r\n\r\n",
    ]

    @Test("a missing or repeated Host, or an invalid authority in the target, is a 400 and a close",
          arguments: missingOrRepeated)
    func missingOrRepeatedHost(_ request: String) async throws {
        try await withServer { port, _ in
            let (response, closed) = try await Self.exchange(request, port: port)
            #expect(response.status == 400, "\(response.text)")
            #expect(closed)
        }
    }

    @Test("the reg-name byte masks accept exactly RFC 3986's unreserved and sub-delims")
    func regNameMasks() {
        let listed = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=".utf8))
        for byte in UInt8.min...UInt8.max {
            #expect(URIHost.isRegNameByte(byte) == listed.contains(byte), "byte \(byte)")
            #expect(URIHost.isRegNameByte(byte) == (URIHost.isUnreserved(byte) || URIHost.isSubDelim(byte)))
        }
    }

    @Test("an HTTP/1.0 request needs no Host, but one it sends is checked",
          arguments: [("GET /h HTTP/1.0\r\n\r\n", 200), ("GET /h HTTP/1.0\r\nHost: a b\r\n\r\n", 400)])
    func http10(_ request: String, status: Int) async throws {
        try await withServer { port, _ in
            let (response, _) = try await Self.exchange(request, port: port)
            #expect(response.status == status)
        }
    }
}
