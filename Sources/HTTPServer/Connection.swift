import Glibc
import HTTPTypes

/// One client socket. Loop-confined: handler tasks reach it only through `loop.execute`, which is why the
/// `Sendable` conformance is unchecked.
///
/// Requests are served one at a time, in order: the next head is parsed only once the current response is queued,
/// so pipelined responses can never overtake each other. A handler that returns before its body was read to the
/// end gets its response sent, and then the connection closes (the unread remainder is never drained).
final class Connection: Selectable, @unchecked Sendable {
    private let loop: EventLoop
    private let context: ServerContext
    private var parser: HTTPParser

    private var inbound: [UInt8] = []
    private var inboundStart = 0
    private var outbound: [UInt8] = []
    private var outboundStart = 0
    private var pendingFile: (descriptor: Int32, offset: Int64, remaining: Int64)?
    /// The task streaming a response, waiting for the socket to take more.
    private var streamWaiter: CheckedContinuation<Bool, Never>?

    private var exchange: Exchange?
    private var nextExchangeID: UInt64 = 0
    private var servedAny = false
    /// No more requests: close once the queued output is out.
    private var closing = false
    /// Output is out and our side is shut down; reading and discarding until the peer closes, so that unread
    /// request bytes do not turn our close into a reset that destroys the response in flight.
    private var lingering = false
    private(set) var closed = false

    private var driving = false
    private var needsDrive = false
    private var timer = TimerKind.none

    private enum TimerKind { case none, header, keepAlive, body, write, linger }

    /// The request being served.
    private final class Exchange {
        let id: UInt64
        let head: HTTPParser.Head
        let body: BodySource?
        var bodyComplete: Bool
        var bodyDemand = false
        var continueSent = false
        var task: Task<Void, Never>?
        var responseStarted = false
        var responseEnded = false
        var closeAfter = false
        var isHEAD: Bool { head.request.method == .head }

        init(id: UInt64, head: HTTPParser.Head, body: BodySource?, bodyComplete: Bool) {
            self.id = id
            self.head = head
            self.body = body
            self.bodyComplete = bodyComplete
        }
    }

    private static let highWater = 256 * 1024
    private static let lowWater = 64 * 1024

    init(descriptor: Int32, loop: EventLoop, context: ServerContext) {
        self.loop = loop
        self.context = context
        parser = HTTPParser(limits: context.configuration.parserLimits)
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
            // Not reading (a handler is running or output is backed up) and the peer has gone.
            abort()
            return
        }
        drive()
    }

    override func deadlineReached() {
        let kind = timer
        timer = .none
        switch kind {
        case .none: return
        case .keepAlive, .write, .linger: abort()
        case .header: respondError(HTTPRequestError(.requestTimeout, "request head not received in time"))
        case .body:
            exchange?.body?.fail(.timeout)
            respondError(HTTPRequestError(.requestTimeout, "request body stalled"))
        }
        drive()
    }

    // MARK: From handler tasks (already hopped onto the loop)

    func bodyDemanded(_ id: UInt64) {
        guard let ex = exchange, ex.id == id, !ex.bodyComplete, !closed, !closing else { return }
        ex.bodyDemand = true
        if ex.head.expectContinue && !ex.continueSent && !ex.responseStarted {
            ex.continueSent = true
            outbound.append(contentsOf: ResponseWriter.continueLine)
        }
        drive()
    }

    func responseReady(_ id: UInt64, _ response: ServerResponse) {
        guard let ex = exchange, ex.id == id, !ex.responseStarted, !closed else {
            Self.dispose(response)
            return
        }
        writeResponse(response, ex)
        drive()
    }

    func beginStream(_ id: UInt64, _ head: HTTPResponse, _ done: CheckedContinuation<Bool, Never>) {
        guard let ex = exchange, ex.id == id, !ex.responseStarted, !closed else {
            done.resume(returning: false)
            return
        }
        let allowsBody = ResponseWriter.statusAllowsBody(head.status) && !ex.isHEAD
        let framing: ResponseWriter.BodyFraming =
            !ResponseWriter.statusAllowsBody(head.status) ? .bodiless : ex.head.isHTTP10 ? .untilClose : .chunked
        queueHead(head, framing: framing, ex, forceClose: ex.head.isHTTP10)
        if !allowsBody { ex.responseEnded = true }
        done.resume(returning: allowsBody)
        finishExchangeIfDone()
        drive()
    }

    func streamChunk(_ id: UInt64, _ bytes: [UInt8], _ done: CheckedContinuation<Bool, Never>) {
        guard let ex = exchange, ex.id == id, ex.responseStarted, !ex.responseEnded, !closed else {
            done.resume(returning: false)
            return
        }
        if ex.head.isHTTP10 { outbound.append(contentsOf: bytes) } else { ResponseWriter.chunk(bytes, into: &outbound) }
        flushOutput()
        if closed { done.resume(returning: false); return }
        if pendingBytes <= Self.highWater { done.resume(returning: true) } else { streamWaiter = done }
        drive()
    }

    func endStream(_ id: UInt64) {
        guard let ex = exchange, ex.id == id, ex.responseStarted, !ex.responseEnded, !closed else { return }
        if !ex.head.isHTTP10 { outbound.append(contentsOf: ResponseWriter.lastChunk) }
        ex.responseEnded = true
        finishExchangeIfDone()
        drive()
    }

    // MARK: The driver

    /// Makes all the progress possible now: flush, parse, dispatch. Re-entrant calls only ask for another round.
    private func drive() {
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

    private func parseInbound() {
        while !closed && !closing {
            if let ex = exchange {
                guard !ex.bodyComplete, ex.bodyDemand, inboundStart < inbound.count else { return }
                guard let event = nextEvent() else { return }
                switch event {
                case .body(let bytes):
                    ex.bodyDemand = false
                    if timer == .body { loop.setDeadline(self, after: context.bodyIdleTimeout) }
                    ex.body?.deliver(Array(bytes))
                    // A Content-Length body ends with its last byte: finish now rather than on the next pull.
                    if parser.isAtEndOfMessage {
                        _ = try? parser.parse([])
                        ex.bodyComplete = true
                        ex.body?.finish()
                        finishExchangeIfDone()
                    }
                case .end:
                    ex.bodyComplete = true
                    ex.bodyDemand = false
                    ex.body?.finish()
                    finishExchangeIfDone()
                case .head:
                    preconditionFailure("head inside a body")
                }
            } else {
                guard pendingBytes < Self.lowWater, pendingFile == nil, inboundStart < inbound.count else { return }
                guard let event = nextEvent() else { return }
                guard case .head(let head) = event else { preconditionFailure("body outside a request") }
                startExchange(head)
            }
        }
    }

    private func nextEvent() -> HTTPParser.Event? {
        while true {
            do throws(HTTPRequestError) {
                let (event, consumed) = try parser.parse(inbound[inboundStart...])
                inboundStart += consumed
                if inboundStart == inbound.count {
                    inbound.removeAll(keepingCapacity: true)
                    inboundStart = 0
                }
                if let event { return event }
                if inboundStart >= inbound.count { return nil }
            } catch {
                if let ex = exchange {
                    ex.body?.fail(error.status == .contentTooLarge ? .tooLarge : .malformed(error.detail))
                }
                respondError(error)
                return nil
            }
        }
    }

    private func startExchange(_ head: HTTPParser.Head) {
        servedAny = true
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
        if bodyless, let fastPath = context.fastPath, let response = fastPath(head.request) {
            let ex = Exchange(id: id, head: head, body: nil, bodyComplete: true)
            exchange = ex
            writeResponse(response, ex)
            return
        }
        let source = bodyless ? nil : BodySource(onDemand: { [loop, self] in loop.execute { self.bodyDemanded(id) } })
        let expected: Int64? = if case .length(let n) = head.framing { n } else if bodyless { 0 } else { nil }
        let body = RequestBody(expectedLength: expected, source: source)
        let ex = Exchange(id: id, head: head, body: source, bodyComplete: bodyless)
        exchange = ex
        let handler = context.handler
        ex.task = Task { [self] in
            let response = await handler(head.request, body)
            await self.send(response, for: id)
        }
    }

    // MARK: Responses

    /// Runs in the handler's task: hands a response to the loop, pulling a stream body at the socket's pace.
    private func send(_ response: ServerResponse, for id: UInt64) async {
        guard case .stream(let stream) = response.body else {
            loop.execute { self.responseReady(id, response) }
            return
        }
        let wanted = await withCheckedContinuation { done in
            loop.execute { self.beginStream(id, response.head, done) }
        }
        guard wanted else { return }
        for await chunk in stream where !chunk.isEmpty {
            let more = await withCheckedContinuation { done in
                loop.execute { self.streamChunk(id, chunk, done) }
            }
            if !more { return }
        }
        loop.execute { self.endStream(id) }
    }

    private func writeResponse(_ response: ServerResponse, _ ex: Exchange) {
        if case .stream = response.body {
            let id = ex.id
            ex.task = Task { [self] in await self.send(response, for: id) }
            return
        }
        let status = response.head.status
        let allowsBody = ResponseWriter.statusAllowsBody(status)
        var framing = ResponseWriter.BodyFraming.bodiless
        if allowsBody {
            switch response.body {
            case .empty: framing = .length(0)
            case .bytes(let bytes): framing = .length(Int64(bytes.count))
            case .file(_, let length): framing = .length(length)
            case .stream: break
            }
        }
        queueHead(response.head, framing: framing, ex, forceClose: false)
        switch response.body {
        case .bytes(let bytes) where allowsBody && !ex.isHEAD:
            outbound.append(contentsOf: bytes)
        case .file(let fd, let length) where allowsBody && !ex.isHEAD && length > 0:
            pendingFile = (fd, 0, length)
        case .file(let fd, _):
            closeDescriptor(fd)
        default:
            break
        }
        ex.responseEnded = true
        finishExchangeIfDone()
    }

    private func queueHead(_ head: HTTPResponse, framing: ResponseWriter.BodyFraming, _ ex: Exchange, forceClose: Bool) {
        let askedClose = head.headerFields[.connection].map {
            HTTPParser.listElements([ArraySlice($0.utf8)]).contains { HTTPParser.equalsIgnoringCase($0, "close") }
        } ?? false
        // A body left unread would be parsed as the next request: close instead.
        ex.closeAfter = forceClose || askedClose || !ex.head.keepAlive || !ex.bodyComplete || closing
        ex.responseStarted = true
        ResponseWriter.head(
            head, framing: framing, close: ex.closeAfter, keepAliveFor10: ex.head.isHTTP10,
            dateLine: loop.dateCache.current(), serverLine: context.serverLine, into: &outbound)
    }

    /// Once a response is fully queued (a file fully sent), the exchange is over; queued bytes keep their order.
    private func finishExchangeIfDone() {
        guard let ex = exchange, ex.responseEnded, pendingFile == nil else { return }
        exchange = nil
        timer = .none  // re-arm: keep-alive idleness counts from the end of this exchange
        if ex.closeAfter || !ex.bodyComplete {
            closing = true
            ex.body?.fail(.cancelled)
        }
        needsDrive = true
    }

    /// An error the server answers itself; the framing can no longer be trusted, so the connection closes after.
    private func respondError(_ error: HTTPRequestError) {
        if let ex = exchange {
            exchange = nil
            ex.task?.cancel()
            ex.body?.fail(.cancelled)
            if ex.responseStarted {
                abort()
                return
            }
        }
        let response = ResponseWriter.problem(error.status, detail: error.detail)
        guard case .bytes(let body) = response.body else { return }
        ResponseWriter.head(
            response.head, framing: .length(Int64(body.count)), close: true, keepAliveFor10: false,
            dateLine: loop.dateCache.current(), serverLine: context.serverLine, into: &outbound)
        outbound.append(contentsOf: body)
        closing = true
        needsDrive = true
    }

    static func dispose(_ response: ServerResponse) {
        if case .file(let fd, _) = response.body { closeDescriptor(fd) }
    }

    // MARK: Socket I/O

    private var pendingBytes: Int { outbound.count - outboundStart }

    private func readSocket() {
        let buffer = loop.readBuffer
        let result: IOResult<Int>
        do {
            result = try Sys.read(descriptor, buffer)
        } catch {
            abort()
            return
        }
        guard case .processed(let count) = result else { return }
        if count == 0 {
            // EOF. While lingering it is what we wait for; otherwise the client went away or is done.
            abort()
            return
        }
        if lingering { return }
        if let ex = exchange, timer == .body, ex.bodyDemand {
            loop.setDeadline(self, after: context.bodyIdleTimeout)
        }
        inbound.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }

    private func flushOutput() {
        guard !closed else { return }
        var progressed = false
        while true {
            if outboundStart < outbound.count {
                let result: IOResult<Int>
                do {
                    result = try outbound.withUnsafeBytes { raw throws(IOError) in
                        try Sys.send(descriptor, UnsafeRawBufferPointer(rebasing: raw[outboundStart...]))
                    }
                } catch {
                    abort()
                    return
                }
                guard case .processed(let sent) = result else { break }
                outboundStart += sent
                progressed = true
            } else if let file = pendingFile {
                var offset = file.offset
                let result: IOResult<Int>
                do {
                    result = try Sys.sendfile(
                        descriptor, file.descriptor, offset: &offset, count: Int(min(file.remaining, 1 << 30)))
                } catch {
                    abort()
                    return
                }
                guard case .processed(let sent) = result else { break }
                if sent == 0 {
                    abort()  // the file is shorter than promised: the framing is broken
                    return
                }
                progressed = true
                let remaining = file.remaining - Int64(sent)
                if remaining == 0 {
                    closeDescriptor(file.descriptor)
                    pendingFile = nil
                    finishExchangeIfDone()
                } else {
                    pendingFile = (file.descriptor, offset, remaining)
                }
            } else {
                outbound.removeAll(keepingCapacity: outbound.capacity <= 1 << 20)
                outboundStart = 0
                break
            }
        }
        if progressed && timer == .write { loop.setDeadline(self, after: context.writeTimeout) }
        if let waiter = streamWaiter, pendingBytes <= Self.lowWater {
            streamWaiter = nil
            waiter.resume(returning: true)
        }
        if closing && !lingering && pendingBytes == 0 && pendingFile == nil {
            Sys.shutdownWrite(descriptor)
            lingering = true
        }
    }

    private func updateInterest() {
        var interest: EpollEvents = [.readHangup]
        if lingering {
            interest.insert(.read)
        } else if let ex = exchange {
            if ex.bodyDemand && !ex.bodyComplete { interest.insert(.read) }
        } else if !closing && pendingBytes < Self.lowWater && pendingFile == nil {
            interest.insert(.read)
        }
        if pendingBytes > 0 || pendingFile != nil { interest.insert(.write) }
        loop.setInterest(self, interest)
    }

    private func updateTimer() {
        let kind: TimerKind
        if lingering {
            kind = .linger
        } else if pendingBytes > 0 || pendingFile != nil {
            kind = .write
        } else if let ex = exchange {
            kind = ex.bodyDemand && !ex.bodyComplete ? .body : .none
        } else if closing {
            kind = .write
        } else {
            kind = parser.isIdle && servedAny ? .keepAlive : .header
        }
        guard kind != timer else { return }
        timer = kind
        let nanos: UInt64? =
            switch kind {
            case .none: nil
            case .header: context.headerTimeout
            case .keepAlive: context.keepAliveTimeout
            case .body: context.bodyIdleTimeout
            case .write: context.writeTimeout
            case .linger: min(context.headerTimeout, 2_000_000_000)
            }
        loop.setDeadline(self, after: nanos)
    }

    /// Closes now, whatever is in flight: the handler is cancelled and its body throws.
    func abort() {
        guard !closed else { return }
        closed = true
        loop.deregister(self)
        closeDescriptor(descriptor)
        if let ex = exchange {
            exchange = nil
            ex.task?.cancel()
            ex.body?.fail(.clientDisconnected)
        }
        streamWaiter?.resume(returning: false)
        streamWaiter = nil
        if let file = pendingFile {
            closeDescriptor(file.descriptor)
            pendingFile = nil
        }
        context.connectionClosed()
    }
}
