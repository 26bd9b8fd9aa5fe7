import Glibc
import HTTPTypes
import SystemSupport

/// One client socket. Loop-confined: handler tasks reach it only through `loop.execute`, which is why the
/// `Sendable` conformance is unchecked. Its state is module-internal only so that its responses
/// (ConnectionResponses.swift) and socket I/O (ConnectionIO.swift) can live in files of their own.
///
/// Requests are served one at a time, in order: the next head is parsed only once the current response is queued,
/// so pipelined responses can never overtake each other. A body nobody reads (the fast path answered, or a handler
/// returned before reading it to its end) is read and dropped before the answer goes out, up to
/// `maxDiscardBytes` (BodyDiscard.swift, ConnectionDiscard.swift); past that the answer closes the connection.
final class Connection: Selectable, @unchecked Sendable {
    let loop: EventLoop
    let context: ServerContext
    var parser: HTTPParser

    var inbound: [UInt8] = []
    var inboundStart = 0
    var outbound = ByteBuffer()
    var outboundStart = 0
    var pendingFile: (descriptor: Int32, offset: Int64, remaining: Int64)?
    /// The task streaming a response, waiting for the socket to take more. Boxed, because checking an optional
    /// `CheckedContinuation` (a resilient type) for nil is a runtime call, and it is checked on every flush.
    var streamWaiter: StreamWaiter?

    final class StreamWaiter {
        let continuation: CheckedContinuation<Bool, Never>
        init(_ continuation: CheckedContinuation<Bool, Never>) { self.continuation = continuation }
    }

    var exchange: Exchange?
    var nextExchangeID: UInt64 = 0
    var servedAny = false
    /// No more requests: close once the queued output is out.
    var closing = false
    /// Output is out and our side is shut down; reading and discarding until the peer closes, so that unread
    /// request bytes do not turn our close into a reset that destroys the response in flight.
    var lingering = false
    /// The answer left a request body unread (past the discard bound, or 413): its client may be sending it all
    /// before it reads, so lingering goes on while the bytes keep coming, up to nginx's `lingering_time` (30 s), and
    /// the client gets to the answer rather than a reset. Any other close (a timeout, a malformed request) lingers
    /// one idle period at most, so that a slowloris gains nothing by trickling on.
    var lingersLong = false
    /// When lingering ends however steadily the peer sends.
    var lingerEnds: UInt64 = 0
    static let lingerTotal: UInt64 = 30_000_000_000
    var closed = false
    /// The peer shut its sending side (a FIN) mid-body; epoll stops reporting it, which it would do on every turn.
    var peerHalfClosed = false

    var driving = false
    var needsDrive = false
    var timer = TimerKind.none

    /// The body being spliced into the handler's file, if it asked for that.
    var bodySplice: BodySplice?

    /// Membership of the loop's `ReusableConnections` (which alone changes these). `olderReusable` is unowned: the
    /// list holds every member strongly and clears the link when one leaves, and a weak reference would cost atomic
    /// side-table traffic on every request of a keep-alive connection.
    var isReusable = false
    unowned(unsafe) var olderReusable: Connection?
    var newerReusable: Connection?

    enum TimerKind { case none, header, keepAlive, body, write, linger }

    /// The current request body's pace: bytes delivered, and nanoseconds spent waiting for the client (the `.body`
    /// timer's running time), for `minBodyRate`.
    var bodyReceived: UInt64 = 0
    var bodyWaited: UInt64 = 0
    var bodyWaitStart: UInt64 = 0
    /// When the current request's head began to arrive (the connection's accept until a byte came): what the
    /// observer's `elapsed` counts from; kept only when there is an observer. `headBegun` says the head being
    /// parsed has had its first byte: a flag, because asking the parser whether it is idle costs more.
    var exchangeStarted: UInt64
    var headBegun = false
    /// The client's address, as accept gave it.
    let peer: PeerAddress?

    /// The request being served: only what the connection needs of it (the request itself goes to the handler).
    final class Exchange {
        let id: UInt64
        /// The method and target, for the observer.
        let requestLine: RequestLine
        /// The request's X-Forwarded-For, for the observer, when the configuration asks for it.
        var forwardedFor: String?
        let isHTTP10: Bool
        let keepAlive: Bool
        let expectContinue: Bool
        let isHEAD: Bool
        let body: BodySource?
        var bodyComplete: Bool
        var bodyDemand = false
        var continueSent = false
        var task: Task<Void, Never>?
        var responseStarted = false
        var responseEnded = false
        var closeAfter = false
        /// The answer held back while the body nobody reads is read and dropped, and that reading's progress.
        var held: ServerResponse?
        var discard: BodyDiscard?
        /// Discarding was considered: a second answer (the held one, sent) must not consider it again.
        var discardTried = false

        init(
            id: UInt64, head: borrowing HTTPParser.Head, requestLine: RequestLine, body: BodySource?, bodyComplete: Bool
        ) {
            self.id = id
            self.requestLine = requestLine
            isHTTP10 = head.isHTTP10
            keepAlive = head.keepAlive
            expectContinue = head.expectContinue
            isHEAD = head.method == .head
            self.body = body
            self.bodyComplete = bodyComplete
        }
    }

    static let highWater = 256 * 1024
    static let lowWater = 64 * 1024

    init(descriptor: Int32, loop: EventLoop, context: ServerContext, peer: PeerAddress? = nil) {
        self.loop = loop
        self.context = context
        self.peer = peer
        parser = HTTPParser(limits: context.configuration.parserLimits)
        exchangeStarted = loop.now
        super.init(descriptor: descriptor)
    }

    func start() { drive() }

    // MARK: Events from the loop

    override func handle(_ events: EpollEvents) {
        if !events.isDisjoint(with: [.error, .hangup]) {
            abort()
            return
        }
        if events.contains(.write) { flushOutput() }
        if closed { return }
        if events.contains(.read) {
            readSocket()
        } else if events.contains(.readHangup) {
            // Not reading (a handler is running or output is backed up) and the peer has shut its side. Mid-body,
            // what it sent before may still wait unread: its end is found when the body is read on.
            guard awaitsRestOfBody else {
                abort()
                return
            }
            peerHalfClosed = true
        }
        drive()
    }

    override func deadlineReached() {
        let kind = timer
        let tooSlow = kind == .body && bodyTooSlow(now: loop.now)
        timer = .none
        switch kind {
        case .none: return
        case .keepAlive, .write, .linger: abort()
        case .header:
            respondError(
                HTTPRequestError(.requestTimeout, "request head not received in time"),
                requestLine: parser.partialRequestLine)
        case .body:
            exchange?.body?.fail(.timeout)
            respondError(HTTPRequestError(
                .requestTimeout,
                tooSlow ? "request body slower than \(context.minBodyRate) bytes/s" : "request body stalled"))
        }
        drive()
    }

    // MARK: From handler tasks (already hopped onto the loop)

    func bodyDemanded(_ id: UInt64) {
        guard let ex = exchange, ex.id == id, !ex.bodyComplete, !closed, !closing else { return }
        ex.bodyDemand = true
        if ex.expectContinue && !ex.continueSent && !ex.responseStarted {
            ex.continueSent = true
            outbound.append(ResponseWriter.continueLine)
        }
        drive()
    }

    // MARK: The driver

    /// Makes all the progress possible now: flush, parse, dispatch. Re-entrant calls only ask for another round.
    func drive() {
        if driving { needsDrive = true; return }
        driving = true
        repeat {
            needsDrive = false
            flushOutput()
            if closed { break }
            parseInbound()
            flushOutput()
        } while needsDrive && !closed
        driving = false
        if !closed {
            updateInterest()
            updateTimer()
        }
    }

    func parseInbound() {
        while !closed && !closing {
            if let ex = exchange {
                if ex.discard != nil {
                    guard discardInbound(ex) else { return }
                    continue
                }
                guard !ex.bodyComplete, ex.bodyDemand, inboundStart < inbound.count else { return }
                guard let event = nextEvent() else { return }
                switch event {
                case .body(let bytes):
                    bodyReceived += UInt64(bytes.count)
                    bodyProgressed()
                    if let splice = bodySplice {
                        // Demand stays on: the splice wants everything.
                        spliceBuffered(bytes, splice)
                    } else {
                        ex.bodyDemand = false
                        ex.body?.deliver(Array(bytes))
                    }
                    // A Content-Length body ends with its last byte: finish now rather than on the next pull.
                    if parser.isAtEndOfMessage {
                        _ = try? parser.parse([])
                        ex.bodyComplete = true
                        ex.bodyDemand = false
                        finishBody(ex)
                    }
                case .end:
                    ex.bodyComplete = true
                    ex.bodyDemand = false
                    finishBody(ex)
                case .head:
                    preconditionFailure("head inside a body")
                }
            } else {
                guard pendingBytes < Self.lowWater, pendingFile == nil, inboundStart < inbound.count else { return }
                if !headBegun && context.observer != nil {
                    // The first byte of a request: what the observer's `elapsed` counts from.
                    headBegun = true
                    exchangeStarted = loop.now
                }
                guard let event = nextEvent() else { return }
                guard case .head(let head) = event else { preconditionFailure("body outside a request") }
                startExchange(head)
            }
        }
    }

    func nextEvent() -> HTTPParser.Event? {
        while true {
            do throws(HTTPRequestError) {
                let (event, consumed) = try parser.parse(inbound[inboundStart...])
                consumeInbound(consumed)
                if let event { return event }
                if inboundStart >= inbound.count { return nil }
            } catch {
                if let ex = exchange {
                    ex.body?.fail(error.status == .contentTooLarge ? .tooLarge : .malformed(error.detail))
                }
                respondError(error, requestLine: exchange == nil ? parser.partialRequestLine : nil)
                return nil
            }
        }
    }

    /// Drops `count` parsed bytes from the front of the inbound buffer.
    @inline(__always)
    func consumeInbound(_ count: Int) {
        inboundStart += count
        if inboundStart == inbound.count {
            inbound.removeAll(keepingCapacity: true)
            inboundStart = 0
        }
    }

    func startExchange(_ head: HTTPParser.Head) {
        servedAny = true
        headBegun = false
        nextExchangeID += 1
        let id = nextExchangeID
        let bodyless: Bool
        switch head.framing {
        case .none, .length(0):
            bodyless = true
            _ = try? parser.parse([])  // the `.end` of a bodyless message consumes nothing
        default:
            bodyless = false
        }
        let requestLine = head.requestLine
        // The server's own `OPTIONS *`, or the fast path's answer; one to a request with a body is held until the
        // body has been read and dropped (`writeResponse`).
        if let response = head.isAsteriskForm ? context.optionsAsterisk : context.fastPath?(requestLine) {
            if bodyless && writeImmediately(response, to: head) { return }
            let ex = Exchange(id: id, head: head, requestLine: requestLine, body: nil, bodyComplete: bodyless)
            ex.forwardedFor = forwardedFor(head)
            exchange = ex
            writeResponse(response, ex)
            return
        }
        let source =
            bodyless
            ? nil
            : BodySource(
                onDemand: { [loop, self] in loop.execute { self.bodyDemanded(id) } },
                onSplice: { [loop, self] descriptor in loop.execute { self.spliceRequested(id, into: descriptor) } },
                writer: loop.fileWriter)
        let expected: Int64? = if case .length(let n) = head.framing { n } else if bodyless { 0 } else { nil }
        let body = RequestBody(expectedLength: expected, source: source)
        let ex = Exchange(id: id, head: head, requestLine: requestLine, body: source, bodyComplete: bodyless)
        ex.forwardedFor = forwardedFor(head)
        exchange = ex
        let handler = context.handler
        ex.task = Task { [self] in
            let response = await handler(head.request, body)
            await self.send(response, for: id)
        }
    }

    /// The request's X-Forwarded-For for the observer, only when the configuration asks for it (and there is an
    /// observer): a lookup among the fields no other request pays for.
    func forwardedFor(_ head: borrowing HTTPParser.Head) -> String? {
        guard context.observesForwardedFor else { return nil }
        return head.headerFields[Self.forwardedForField]
    }

    static let forwardedForField = HTTPField.Name("X-Forwarded-For")!
    /// Never sent: the status under which a request whose client left before its answer is observed.
    static let clientClosedRequest = HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request")

    /// Once a response is fully queued (a file fully sent), the exchange is over; queued bytes keep their order.
    func finishExchangeIfDone() {
        guard let ex = exchange, ex.responseEnded, pendingFile == nil else { return }
        exchange = nil
        dropSplice()
        let close = ex.closeAfter || !ex.bodyComplete
        if close { ex.body?.fail(.cancelled) }
        if !ex.bodyComplete { lingersLong = true }
        exchangeEnded(closing: close)
    }

    /// A request is answered (its response fully queued): keep-alive idleness counts from now, and the connection
    /// closes after the output if `close`.
    func exchangeEnded(closing close: Bool) {
        // Observed with its answer already: the next request's body, or none, counts from zero.
        bodyReceived = 0
        bodyWaited = 0
        timer = .none  // re-arm
        if close { closing = true }
        needsDrive = true
    }
}
