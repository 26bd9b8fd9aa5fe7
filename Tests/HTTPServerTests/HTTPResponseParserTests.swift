import HTTPTypes
import Testing

@testable import HTTPServer

/// A response as the parser saw it, after feeding `wire` in pieces of `step` bytes and then end of file.
private struct ParsedResponse: Equatable {
    var status: Int
    var fields: [String]
    var contentLength: Int64?
    var keepAlive: Bool
    var body: String
}

private func parseResponse(_ wire: String, step: Int = .max, isHeadRequest: Bool = false, closeAtEnd: Bool = true)
    throws(HTTPResponseError) -> ParsedResponse?
{
    var parser = HTTPResponseParser(isHeadRequest: isHeadRequest)
    let bytes = Array(wire.utf8)
    var buffer: [UInt8] = []
    var start = 0
    var result: ParsedResponse?
    var ended = false
    func take(_ event: HTTPResponseParser.Event) {
        switch event {
        case .head(let head):
            result = ParsedResponse(
                status: head.response.status.code,
                fields: head.response.headerFields.map { "\($0.name.canonicalName)=\($0.value)" },
                contentLength: head.contentLength, keepAlive: head.keepAlive, body: "")
        case .body(let chunk): result?.body += String(decoding: chunk, as: UTF8.self)
        case .end: ended = true
        }
    }
    var offset = 0
    while offset < bytes.count && !ended {
        let end = offset + min(step, bytes.count - offset)
        buffer += bytes[offset..<end]
        offset = end
        while !ended {
            let (event, consumed) = try parser.parse(buffer[start...])
            start += consumed
            guard let event else { break }
            take(event)
        }
    }
    if !ended && closeAtEnd { take(try parser.finish()) }
    return ended ? result : nil
}

@Suite("HTTP response parser")
struct HTTPResponseParserTests {
    @Test("a Content-Length response parses the same whatever the fragment size", arguments: [1, 2, 7, 64, Int.max])
    func contentLength(step: Int) throws {
        let parsed = try parseResponse(
            "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 5\r\n\r\nhello", step: step, closeAtEnd: false)
        #expect(
            parsed
                == ParsedResponse(
                    status: 200, fields: ["content-type=video/mp4", "content-length=5"], contentLength: 5, keepAlive: true,
                    body: "hello"))
    }

    @Test("a chunked body is decoded by the request parser's chunked decoder, trailers dropped", arguments: [1, 3, Int.max])
    func chunked(step: Int) throws {
        let parsed = try parseResponse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            step: step, closeAtEnd: false)
        #expect(parsed?.body == "hello world")
        #expect(parsed?.contentLength == nil)
    }

    @Test("interim 100 Continue answers are skipped")
    func interim() throws {
        let parsed = try parseResponse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        #expect(parsed?.status == 503)
        #expect(parsed?.body == "")
    }

    @Test("without framing the body runs until the server closes, and the connection cannot be reused")
    func untilClose() throws {
        let parsed = try parseResponse("HTTP/1.0 200 OK\r\n\r\nall of it", step: 4)
        #expect(parsed?.body == "all of it")
        #expect(parsed?.keepAlive == false)
    }

    @Test("the answer to HEAD and a 204 have no body whatever Content-Length says")
    func noBody() throws {
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", isHeadRequest: true, closeAtEnd: false)?.body == "")
        #expect(try parseResponse("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", closeAtEnd: false)?.status == 204)
    }

    @Test("Connection: close is reported")
    func connectionClose() throws {
        let parsed = try parseResponse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", closeAtEnd: false)
        #expect(parsed?.keepAlive == false)
    }

    @Test(
        "broken responses are errors",
        arguments: [
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  // closed mid-body
            "HTTP/1.1 200 OK\r\nContent-Le",  // closed mid-head
            "",  // closed before anything
            "HTTP/2 200 OK\r\n\r\n",  // not HTTP/1.x
            "HTTP/1.1 2000 OK\r\n\r\n",  // bad status code
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",  // field validation shared with requests
            "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",  // obs-fold
            "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",  // differing lengths
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  // bad chunk size
        ])
    func broken(wire: String) {
        #expect(throws: HTTPResponseError.self) { _ = try parseResponse(wire) }
    }
}
