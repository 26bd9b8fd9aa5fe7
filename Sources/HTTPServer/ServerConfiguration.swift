import HTTPTypes

/// Everything the server can be tuned by, with the defaults in this one initializer.
public struct ServerConfiguration: Sendable {
    /// Address to bind (IPv4 or IPv6 literal).
    public var host: String
    /// Port to bind; 0 asks the kernel for an ephemeral port (`Server.start()` returns it).
    public var port: Int
    /// listen(2) backlog.
    public var backlog: Int32
    /// Event-loop threads; they share the listener (EPOLLEXCLUSIVE) and each owns its connections.
    public var eventLoopThreads: Int
    /// Open connections at most. At the limit a newcomer takes the place of the oldest idle connection (silent
    /// since accepted, or between keep-alive requests); with none idle it gets a 503 and is closed.
    public var maxConnections: Int
    /// Largest request body: a Content-Length above it gets 413 before any body byte is read, a chunked body
    /// growing past it gets 413 and the connection closes.
    public var maxBodySize: Int64
    /// Longest request line (414 beyond).
    public var maxRequestLine: Int
    /// Largest header block, request line excluded (431 beyond).
    public var maxHeaderBytes: Int
    /// Most header fields (431 beyond).
    public var maxHeaderCount: Int
    /// From the first byte of a request to the end of its head (slowloris); 408 and close when exceeded.
    public var headerTimeout: Duration
    /// Longest wait for the next body bytes while the handler is asking for them; the body throws and the
    /// connection answers 408 and closes.
    public var bodyIdleTimeout: Duration
    /// The slowest body accepted, bytes per second, averaged over the time spent waiting for it (time the handler
    /// takes to ask for more does not count); 0 disables. A client trickling a few bytes now and then never trips
    /// the idle timeout, yet holds an admitted upload's place (slowhttptest's slow body); below this rate it gets 408.
    public var minBodyRate: Int
    /// Waiting a body may take before `minBodyRate` applies: a connection's slow start, a client's first stall.
    public var bodyRateGrace: Duration
    /// How long an idle keep-alive connection stays open between requests.
    public var keepAliveTimeout: Duration
    /// Longest time without write progress while the peer's receive window is full; the connection is closed.
    public var writeTimeout: Duration
    /// The `Server` response field; nil sends none. The application names itself here (RFC 9110 §10.2.4).
    public var serverName: String?
    /// Hand each request's X-Forwarded-For to the observer (`ObservedResponse.forwardedFor`): for an application
    /// behind proxies it trusts. Off, no request pays for the lookup.
    public var observesForwardedFor: Bool
    /// The most bytes of a request body nobody reads (a fast-path answer, a handler that answered before reading
    /// its body to the end) that the server reads and drops, framing included, so that the connection and the
    /// requests pipelined behind it go on (RFC 9112 §6, §9.3). The answer waits until the body is in, and a body
    /// with broken framing gets 400 instead. Past the bound the answer goes out at once with `Connection: close`.
    /// 256 KiB by default: any small body sent where it is not read (a form, a JSON document, a probe) fits, while
    /// a video sent to the wrong route is not read for nothing; Go's net/http reads the same 256 KiB after a
    /// handler (`maxPostHandlerReadBytes`). nginx bounds its discard by time instead (`lingering_time` 30 s);
    /// here the body timeouts bound the time. 0 never discards: every unread body closes the connection. What the
    /// client still sends after such an answer (or a 413) is read and dropped while the connection lingers, as long
    /// as bytes keep coming within 2 s of each other and for at most 30 s (nginx's lingering close), so that a
    /// client that sends its whole body before it reads gets to read the answer rather than a reset.
    public var maxDiscardBytes: Int64
    /// The methods the application serves on some resource: the `Allow` of the server's own 204 to `OPTIONS *`
    /// (RFC 9110 §9.3.7), with OPTIONS added. The asterisk form names no resource, so no route sees it; only the
    /// application knows its methods, and it declares them here.
    public var allowedMethods: [HTTPRequest.Method]

    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        backlog: Int32 = 1024,
        eventLoopThreads: Int = 1,
        maxConnections: Int = 10_000,
        maxBodySize: Int64 = 1 << 30,
        maxRequestLine: Int = 8192,
        maxHeaderBytes: Int = 16384,
        maxHeaderCount: Int = 100,
        headerTimeout: Duration = .seconds(10),
        bodyIdleTimeout: Duration = .seconds(30),
        minBodyRate: Int = 1024,
        bodyRateGrace: Duration = .seconds(10),
        keepAliveTimeout: Duration = .seconds(60),
        writeTimeout: Duration = .seconds(30),
        serverName: String? = nil,
        observesForwardedFor: Bool = false,
        maxDiscardBytes: Int64 = 256 << 10,
        allowedMethods: [HTTPRequest.Method] = []
    ) {
        self.host = host
        self.port = port
        self.backlog = backlog
        self.eventLoopThreads = eventLoopThreads
        self.maxConnections = maxConnections
        self.maxBodySize = maxBodySize
        self.maxRequestLine = maxRequestLine
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.headerTimeout = headerTimeout
        self.bodyIdleTimeout = bodyIdleTimeout
        self.minBodyRate = minBodyRate
        self.bodyRateGrace = bodyRateGrace
        self.keepAliveTimeout = keepAliveTimeout
        self.writeTimeout = writeTimeout
        self.serverName = serverName
        self.observesForwardedFor = observesForwardedFor
        self.maxDiscardBytes = maxDiscardBytes
        self.allowedMethods = allowedMethods
    }

    var parserLimits: HTTPParser.Limits {
        HTTPParser.Limits(
            maxRequestLine: maxRequestLine, maxHeaderBytes: maxHeaderBytes, maxHeaderCount: maxHeaderCount,
            maxBodySize: maxBodySize)
    }
}
