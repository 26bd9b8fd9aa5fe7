import HTTPTypes

/// What a handler answers: a head and a body. The server sets `Content-Length` / `Transfer-Encoding`,
/// `Date`, `Server` and `Connection` itself.
public struct ServerResponse: Sendable {
    public var head: HTTPResponse
    public var body: ResponseBody

    public init(head: HTTPResponse, body: ResponseBody = .empty) {
        self.head = head
        self.body = body
    }

    public init(status: HTTPResponse.Status, headerFields: HTTPFields = [:], body: ResponseBody = .empty) {
        self.init(head: HTTPResponse(status: status, headerFields: headerFields), body: body)
    }
}

public enum ResponseBody: Sendable {
    case empty
    case bytes([UInt8])
    /// Sent with sendfile(2) from the descriptor's current offset 0. The server owns the descriptor from here on
    /// and closes it when done or on any error, including when the response is never sent.
    case file(descriptor: Int32, length: Int64)
    /// Sent with the chunked transfer coding (close-delimited to an HTTP/1.0 client).
    case stream(AsyncStream<[UInt8]>)
}

/// The handler's `async` entry point: the request head and a lazily pulled body.
public typealias HTTPHandler = @Sendable (HTTPRequest, RequestBody) async -> ServerResponse
