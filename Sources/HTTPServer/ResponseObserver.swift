import HTTPTypes

/// One response the server queued, with what it knows of its exchange: what a `ResponseObserver` receives.
public struct ObservedResponse: Sendable {
    /// The request's method and target as sent; nil when no request line was understood (a garbled or overlong
    /// one, a head that never came in time, the overload answer at accept).
    public var method: HTTPRequest.Method?
    public var target: String?
    public var status: HTTPResponse.Status
    /// Request body bytes received (after chunked decoding) when the response was queued.
    public var requestBodyBytes: Int64
    /// Response body bytes queued, or to be sent from a file; 0 for the answer to HEAD and for a bodiless status;
    /// nil for a streamed body, whose length is not known when its head is queued.
    public var responseBodyBytes: Int64?
    /// From the first byte of the request head (from accept, when no byte came) to the response being queued, on
    /// the event loop's clock (read once per wake-up).
    public var elapsed: Duration
    /// The handler's `ServerResponse.annotation`; nil for the answers the server gives itself.
    public var annotation: (any Sendable)?
    /// The client's address as the socket gives it (a proxy's, behind one).
    public var peer: PeerAddress?
    /// The request's X-Forwarded-For field as it came, when `ServerConfiguration.observesForwardedFor` asks for it.
    /// Anyone can send one: only a peer the application trusts as a proxy makes it worth believing.
    public var forwardedFor: String?

    public init(
        method: HTTPRequest.Method?, target: String?, status: HTTPResponse.Status, requestBodyBytes: Int64,
        responseBodyBytes: Int64?, elapsed: Duration, annotation: (any Sendable)?, peer: PeerAddress? = nil,
        forwardedFor: String? = nil
    ) {
        self.method = method
        self.target = target
        self.status = status
        self.requestBodyBytes = requestBodyBytes
        self.responseBodyBytes = responseBodyBytes
        self.elapsed = elapsed
        self.annotation = annotation
        self.peer = peer
        self.forwardedFor = forwardedFor
    }
}

/// Called once for every response the server sends: the handler's, the fast path's, and those the server gives
/// itself (a malformed request, a timeout, a limit, an interim status replaced by a 500, the overload 503 at
/// accept). A request whose client closed the connection before its answer was queued is observed too, as 499
/// (nginx's "client closed request", never sent), without an annotation; one cut off by `Server.shutdown()` is
/// not. It runs on an event loop thread when the response is queued, so it must not block; the one place for
/// access logs and request metrics, like a middleware around every responder.
public typealias ResponseObserver = @Sendable (ObservedResponse) -> Void

extension Connection {
    /// Tells `observer` of a response just queued. Callers make the call only once they know there is an observer
    /// (`if let observer = context.observer`): with none, not even the method and target are copied. Never inlined,
    /// so that it does not weigh on the code of the paths that call it.
    @inline(never)
    func notify(
        _ observer: ResponseObserver, _ request: RequestLine?, _ status: HTTPResponse.Status, bodyBytes: Int64?,
        annotation: (any Sendable)?, forwardedFor: String?
    ) {
        observer(ObservedResponse(
            method: request?.method, target: request?.path, status: status, requestBodyBytes: Int64(bodyReceived),
            responseBodyBytes: bodyBytes, elapsed: .nanoseconds(Int64(loop.now &- exchangeStarted)),
            annotation: annotation, peer: peer, forwardedFor: forwardedFor))
    }
}
