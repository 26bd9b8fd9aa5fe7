import HTTPTypes
import TestSupport
import Testing

@testable import HTTPServer

/// What a parser made of a byte stream, in a form tests can compare.
struct Parsed: Equatable {
    struct Message: Equatable {
        var method: String
        var path: String
        var authority: String?
        var fields: [String]
        var framing: HTTPParser.Framing
        var keepAlive: Bool
        var expectContinue: Bool
        var body: [UInt8] = []
        var ended = false
    }
    var messages: [Message] = []
}

func parse(_ fragments: [[UInt8]], limits: HTTPParser.Limits = .init()) throws(HTTPRequestError) -> Parsed {
    var parser = HTTPParser(limits: limits)
    var parsed = Parsed()
    var buffer: [UInt8] = []
    var start = 0
    for fragment in fragments {
        buffer += fragment
        while true {
            let (event, consumed) = try parser.parse(buffer[start...])
            start += consumed
            guard let event else { break }
            switch event {
            case .head(let head):
                parsed.messages.append(
                    .init(
                        method: head.request.method.rawValue, path: head.request.path ?? "",
                        authority: head.request.authority,
                        fields: head.request.headerFields.map { "\($0.name.canonicalName)=\($0.value)" },
                        framing: head.framing, keepAlive: head.keepAlive, expectContinue: head.expectContinue))
            case .body(let bytes):
                parsed.messages[parsed.messages.count - 1].body += bytes
            case .end:
                parsed.messages[parsed.messages.count - 1].ended = true
            }
        }
    }
    return parsed
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

func status(of request: String, limits: HTTPParser.Limits = .init()) -> Int? {
    do {
        _ = try parse([bytes(request)], limits: limits)
        return nil
    } catch {
        return error.status.code
    }
}

@Suite("HTTPParser")
struct HTTPParserTests {
    static let validRequests: [String] = [
        "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET /about?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nUser-Agent: t/1\r\n\r\n",
        "POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
        "POST /v2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1;q=\"x\"\r\nhello\r\n6 \r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: v\r\n\r\n",
        "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
        "GET /old HTTP/1.0\r\n\r\n",
        "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "\r\nGET /after-crlf HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nPOST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGET /4 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Tab:\tvalue with\ttabs \t\r\nX-Obs: caf\u{e9}\r\nX-Empty:\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n",
    ]

    @Test("a request split at every byte boundary parses the same as whole", arguments: validRequests)
    func everySplit(request: String) throws {
        let whole = try parse([bytes(request)])
        #expect(!whole.messages.isEmpty)
        #expect(whole.messages.allSatisfy { $0.ended })
        let all = bytes(request)
        for cut in 0...all.count {
            #expect(try parse([Array(all[..<cut]), Array(all[cut...])]) == whole, "split at \(cut)")
        }
        #expect(try parse(all.map { [$0] }) == whole, "byte by byte")
    }

    @Test("chunked body with extensions and trailers is decoded")
    func chunked() throws {
        let parsed = try parse([bytes(Self.validRequests[4])])
        #expect(parsed.messages.count == 1)
        #expect(parsed.messages[0].body == bytes("hello world0123456789"))
        #expect(parsed.messages[0].framing == .chunked)
    }

    @Test("pipelined messages come out in order with their bodies")
    func pipelined() throws {
        let parsed = try parse([bytes(Self.validRequests[10])])
        #expect(parsed.messages.map(\.path) == ["/1", "/2", "/3", "/4"])
        #expect(parsed.messages[2].body == bytes("ok"))
    }

    @Test("Host becomes the authority; other fields are kept")
    func fields() throws {
        let parsed = try parse([bytes(Self.validRequests[1])])
        let message = parsed.messages[0]
        #expect(message.authority == "a")
        #expect(message.fields == ["accept=*/*", "user-agent=t/1"])
    }

    @Test("an absolute-form target sets scheme, authority and path; its authority wins over Host")
    func absoluteForm() throws {
        var parser = HTTPParser(limits: .init())
        let input = bytes("GET HTTP://example.org:8080?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        guard case .head(let head)? = try parser.parse(input[...]).event else {
            Issue.record("no head")
            return
        }
        #expect(head.request.scheme == "http")
        #expect(head.request.authority == "example.org:8080")
        #expect(head.request.path == "/?q=1")
    }

    @Test("field values are trimmed of surrounding whitespace")
    func trimming() throws {
        let parsed = try parse([bytes(Self.validRequests[11])])
        #expect(parsed.messages[0].fields.first == "x-tab=value with\ttabs")
    }

    @Test("keep-alive defaults: 1.1 persists, 1.0 only when asked, close honoured")
    func keepAlive() throws {
        #expect(try parse([bytes(Self.validRequests[0])]).messages[0].keepAlive)
        #expect(try !parse([bytes(Self.validRequests[6])]).messages[0].keepAlive)
        #expect(try parse([bytes(Self.validRequests[7])]).messages[0].keepAlive)
        #expect(try !parse([bytes(Self.validRequests[8])]).messages[0].keepAlive)
    }

    @Test("Expect: 100-continue is flagged for an HTTP/1.1 request with a body only")
    func expectContinue() throws {
        #expect(try parse([bytes(Self.validRequests[9])]).messages[0].expectContinue)
        let http10 = "PUT /e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
        #expect(try !parse([bytes(http10)]).messages[0].expectContinue)
        let bodyless = "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n"
        #expect(try !parse([bytes(bodyless)]).messages[0].expectContinue)
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        var name: String
        var request: String
        var status: Int
        var testDescription: String { "\(name) → \(status)" }
    }

    static let small = HTTPParser.Limits(maxRequestLine: 64, maxHeaderBytes: 128, maxHeaderCount: 4, maxBodySize: 10)

    static let malformed: [Malformed] = [
        .init(name: "request line too long", request: "GET /\(String(repeating: "a", count: 80)) HTTP/1.1\r\nHost: a\r\n\r\n", status: 414),
        .init(name: "header block too large", request: "GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "b", count: 200))\r\n\r\n", status: 431),
        .init(name: "too many fields", request: "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n", status: 431),
        .init(name: "HTTP/1.1 without Host", request: "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", status: 400),
        .init(name: "several Host fields", request: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400),
        .init(name: "a space in Host", request: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400),
        .init(name: "a bad port in Host", request: "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", status: 400),
        .init(name: "a bad IPv6 literal in Host", request: "GET / HTTP/1.1\r\nHost: [1::2::3]\r\n\r\n", status: 400),
        .init(name: "userinfo in an absolute-form target", request: "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "the asterisk form with GET", request: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "whitespace before colon", request: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", status: 400),
        .init(name: "obs-fold", request: "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", status: 400),
        .init(name: "control character in value", request: "GET / HTTP/1.1\r\nHost: a\r\nX: b\u{01}c\r\n\r\n", status: 400),
        .init(name: "DEL in value", request: "GET / HTTP/1.1\r\nHost: a\r\nX: b\u{7f}c\r\n\r\n", status: 400),
        .init(name: "bare CR in value", request: "GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n", status: 400),
        .init(name: "bare LF", request: "GET / HTTP/1.1\nHost: a\r\n\r\n", status: 400),
        .init(name: "invalid token in field name", request: "GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n", status: 400),
        .init(name: "invalid token in method", request: "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "missing target", request: "GET  HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "space in target", request: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "malformed version", request: "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "lowercase version", request: "GET / http/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "HTTP/2.0", request: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505),
        .init(name: "HTTP/1.2", request: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", status: 505),
        .init(name: "Content-Length not digits", request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1a\r\n\r\n", status: 400),
        .init(name: "Content-Length negative", request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", status: 400),
        .init(name: "Content-Length plus sign", request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", status: 400),
        .init(name: "Content-Length overflow", request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", status: 400),
        .init(name: "Content-Length list differs", request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", status: 400),
        .init(name: "Content-Length fields differ", request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", status: 400),
        .init(name: "Content-Length empty", request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", status: 400),
        .init(name: "Content-Length over the limit", request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", status: 413),
        .init(name: "Transfer-Encoding gzip", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", status: 501),
        .init(name: "Transfer-Encoding gzip, chunked", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 501),
        .init(name: "Transfer-Encoding with Content-Length", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", status: 400),
        .init(name: "Transfer-Encoding in HTTP/1.0", request: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400),
        .init(name: "chunk size bad hex", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", status: 400),
        .init(name: "chunk size missing", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", status: 400),
        .init(name: "chunk size overflow", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n", status: 400),
        .init(name: "chunk data without CRLF", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", status: 400),
        .init(name: "chunked body over the limit", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n", status: 413),
        .init(name: "chunk extension with control character", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a\u{01}\r\n", status: 400),
        .init(name: "malformed trailer", request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", status: 400),
        .init(name: "Expect other than 100-continue", request: "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", status: 417),
    ]

    @Test("malformed requests are refused with their status", arguments: malformed)
    func refused(_ c: Malformed) {
        #expect(status(of: c.request, limits: Self.small) == c.status)
    }

    @Test("a malformed request is refused the same way when split at every boundary", arguments: malformed)
    func refusedSplit(_ c: Malformed) {
        let all = bytes(c.request)
        for cut in 0...all.count {
            var code: Int?
            do { _ = try parse([Array(all[..<cut]), Array(all[cut...])], limits: Self.small) } catch { code = error.status.code }
            #expect(code == c.status, "split at \(cut)")
        }
    }

    @Test("mutated requests never crash the parser: each is parsed or refused with a status")
    func mutations() {
        var generator = SplitMix(seed: 0x5EED)
        let alphabet = Array("\r\n :;,0123456789abcdefABCDEF\t\u{0}\u{7f}\u{80}GETPOSTHTTP/1.1".utf8)
        for _ in 0..<3000 {
            var request = bytes(Self.validRequests[Int(generator.next() % UInt64(Self.validRequests.count))])
            for _ in 0..<(1 + generator.next() % 4) {
                let position = Int(generator.next() % UInt64(request.count))
                switch generator.next() % 3 {
                case 0: request[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                case 1: request.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
                default: request.remove(at: position)
                }
            }
            let cut = Int(generator.next() % UInt64(request.count + 1))
            do {
                _ = try parse([Array(request[..<cut]), Array(request[cut...])], limits: Self.small)
            } catch {
                #expect([400, 413, 414, 417, 431, 501, 505].contains(error.status.code))
            }
        }
    }
}
