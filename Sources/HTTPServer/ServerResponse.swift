import HTTPTypes

/// What a handler answers: a head and a body. The server sets `Content-Length` / `Transfer-Encoding`,
/// `Date`, `Server` and `Connection` itself.
public struct ServerResponse: Sendable {
    public var head: HTTPResponse {
        didSet { preparedHead = nil }
    }
    public var body: ResponseBody
    /// What the handler wants the `ResponseObserver` to know of this exchange (an id, timings): handed to it with
    /// the response, never written to the wire.
    public var annotation: (any Sendable)?
    /// `head` as wire bytes, when `prepared()` made them; any change to `head` drops them.
    private(set) var preparedHead: PreparedHead?

    public init(head: HTTPResponse, body: ResponseBody = .empty) {
        self.head = head
        self.body = body
    }

    /// The same response with its status line and fields turned into bytes now, once, rather than each time it is
    /// sent. For a response kept and answered many times (a fast-path answer); the body can still be replaced.
    public func prepared() -> ServerResponse {
        var copy = self
        copy.preparedHead = PreparedHead(head)
        return copy
    }

    /// The status, read from the prepared bytes' record when there is one (`HTTPResponse.status` parses its
    /// pseudo-field on every read).
    public var status: HTTPResponse.Status { preparedHead?.status ?? head.status }

    public init(status: HTTPResponse.Status, headerFields: HTTPFields = [:], body: ResponseBody = .empty) {
        self.init(head: HTTPResponse(status: status, headerFields: headerFields), body: body)
    }

    /// An RFC 9457 problem document (`application/problem+json`): the status, its title and the reason in words.
    /// The server answers its own errors with these; applications can too.
    public static func problem(_ status: HTTPResponse.Status, detail: String, headerFields: HTTPFields = [:]) -> ServerResponse {
        let body = "{\"type\":\"about:blank\",\"title\":\(jsonString(status.reasonPhrase)),"
            + "\"status\":\(status.code),\"detail\":\(jsonString(detail))}"
        var fields = headerFields
        fields[.contentType] = "application/problem+json"
        return ServerResponse(status: status, headerFields: fields, body: .bytes(Array(body.utf8)))
    }
}

/// A JSON string literal for `text`, escaped as RFC 8259 requires.
public func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

public enum ResponseBody: Sendable {
    case empty
    case bytes([UInt8])
    /// Sent with sendfile(2) from the descriptor's current offset 0. The server owns the descriptor from here on
    /// and closes it when done or on any error, including when the response is never sent.
    case file(descriptor: Int32, length: Int64)
    /// `length` bytes of the descriptor from `offset` (a byte range), sent and owned as `.file` is.
    case fileRegion(descriptor: Int32, offset: Int64, length: Int64)
    /// Sent with the chunked transfer coding (close-delimited to an HTTP/1.0 client); made by `stream(_:)`.
    case streamed(ResponseStream)

    /// The server pulls the next chunk only when the socket has taken the previous ones; a producer that must not
    /// run ahead of a slow client should be pull-based (`AsyncStream(unfolding:)`), since `yield` on a continuation
    /// buffers without limit.
    public static func stream(_ chunks: AsyncStream<[UInt8]>) -> ResponseBody { .streamed(ResponseStream(chunks)) }
}

/// A stream body, boxed: `AsyncStream`'s layout is only known at run time (it lives in a resilient library), and as a
/// bare payload it would make every copy of every `ResponseBody` and `ServerResponse` go through runtime calls.
public final class ResponseStream: Sendable {
    public let chunks: AsyncStream<[UInt8]>

    public init(_ chunks: AsyncStream<[UInt8]>) { self.chunks = chunks }
}

/// The handler's `async` entry point: the request head and a lazily pulled body. It runs as a Swift task; when
/// the client goes away the task is cancelled and the body throws. A handler that returns without reading its
/// body to the end has the rest read and dropped by the server before its response goes out (up to
/// `ServerConfiguration.maxDiscardBytes`; past that, or when the client still waits for `100 Continue`, the
/// response goes out at once and the connection closes after it).
/// The `Host` field of the request is in `request.authority`, not in `headerFields`.
public typealias HTTPHandler = @Sendable (HTTPRequest, RequestBody) async -> ServerResponse

/// What the fast path sees of a request: its method and its path (with the query, as sent). Nothing else is
/// made for it, so answering on the fast path costs no `HTTPRequest`; an answer that depends on header fields
/// belongs in the handler.
public struct RequestLine: Sendable, Equatable {
    public var method: HTTPRequest.Method
    public var path: String

    public init(method: HTTPRequest.Method, path: String) {
        self.method = method
        self.path = path
    }
}

/// Called on the event loop for each request; a non-nil response is written directly, with no task hop. It must
/// not block. A request with a body has the body read and dropped first (`ServerConfiguration.maxDiscardBytes`),
/// so an answer here is for requests whose body does not matter: return nil for those the handler must read.
public typealias FastPath = @Sendable (RequestLine) -> ServerResponse?
