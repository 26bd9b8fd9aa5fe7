import HTTPTypes
import SystemSupport

/// Turning a handler's answer into queued bytes: whole responses, files, and streams pulled at the socket's pace.
extension Connection {
    func responseReady(_ id: UInt64, _ response: ServerResponse) {
        guard let ex = exchange, ex.id == id, !ex.responseStarted, !closed else {
            Self.dispose(response)
            return
        }
        writeResponse(response, ex)
        drive()
    }

    func beginStream(
        _ id: UInt64, _ head: HTTPResponse, _ annotation: (any Sendable)?, _ done: CheckedContinuation<Bool, Never>
    ) {
        guard let ex = exchange, ex.id == id, !ex.responseStarted, !closed else {
            done.resume(returning: false)
            return
        }
        let allowsBody = ResponseWriter.statusAllowsBody(head.status) && !ex.isHEAD
        let framing: ResponseWriter.BodyFraming =
            !ResponseWriter.statusAllowsBody(head.status) ? .bodiless : ex.isHTTP10 ? .untilClose : .chunked
        queueHead(head, status: head.status, framing: framing, ex, forceClose: ex.isHTTP10)
        if let observer = context.observer {
            notify(
                observer, ex.requestLine, head.status, bodyBytes: allowsBody ? nil : 0, annotation: annotation,
                forwardedFor: ex.forwardedFor)
        }
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
        if ex.isHTTP10 { outbound.append(bytes) } else { ResponseWriter.chunk(bytes, into: &outbound) }
        flushOutput()
        if closed { done.resume(returning: false); return }
        if pendingBytes <= Self.highWater { done.resume(returning: true) } else { streamWaiter = StreamWaiter(done) }
        drive()
    }

    func endStream(_ id: UInt64) {
        guard let ex = exchange, ex.id == id, ex.responseStarted, !ex.responseEnded, !closed else { return }
        if !ex.isHTTP10 { outbound.append(ResponseWriter.lastChunk) }
        ex.responseEnded = true
        finishExchangeIfDone()
        drive()
    }

    // MARK: Responses

    /// Runs in the handler's task: hands a response to the loop, pulling a stream body at the socket's pace.
    func send(_ response: ServerResponse, for id: UInt64) async {
        let response = Self.sanitized(response)
        guard case .streamed(let stream) = response.body else {
            loop.execute { self.responseReady(id, response) }
            return
        }
        let wanted = await withCheckedContinuation { done in
            loop.execute { self.beginStream(id, response.head, response.annotation, done) }
        }
        guard wanted else { return }
        for await chunk in stream.chunks where !chunk.isEmpty {
            let more = await withCheckedContinuation { done in
                loop.execute { self.streamChunk(id, chunk, done) }
            }
            if !more { return }
        }
        loop.execute { self.endStream(id) }
    }

    /// A handler cannot end an exchange with an interim (1xx) status: the client would wait for a final one. The
    /// observer still gets the handler's annotation with the 500.
    static func sanitized(_ response: ServerResponse) -> ServerResponse {
        guard response.status.kind == .informational else { return response }
        dispose(response)
        var problem = ServerResponse.problem(.internalServerError, detail: "the handler answered with an interim status")
        problem.annotation = response.annotation
        return problem
    }

    func writeResponse(_ response: ServerResponse, _ ex: Exchange) {
        let status = response.status
        if case .streamed = response.body {
            let id = ex.id
            ex.task = Task { [self] in await self.send(response, for: id) }
            return
        }
        if status.kind == .informational {
            writeResponse(Self.sanitized(response), ex)
            return
        }
        if !ex.bodyComplete && holdWhileDiscarding(response, ex) { return }
        ex.responseStarted = true
        let queued = queueWhole(
            response, status: status, isHEAD: ex.isHEAD, isHTTP10: ex.isHTTP10,
            close: closeAfterResponse(ex, forceClose: false))
        ex.closeAfter = queued.close
        if let observer = context.observer {
            notify(
                observer, ex.requestLine, status, bodyBytes: queued.bodyBytes, annotation: response.annotation,
                forwardedFor: ex.forwardedFor)
        }
        ex.responseEnded = true
        finishExchangeIfDone()
    }

    /// A fast-path answer to a bodyless request that needs no exchange object: a whole response in memory, queued
    /// at once. Returns false, having done nothing, for any other response.
    func writeImmediately(_ response: ServerResponse, to head: borrowing HTTPParser.Head) -> Bool {
        switch response.body {
        case .empty, .bytes: break
        case .file, .fileRegion, .streamed: return false
        }
        let status = response.status
        guard status.kind != .informational else { return false }
        let queued = queueWhole(
            response, status: status, isHEAD: head.method == .head, isHTTP10: head.isHTTP10,
            close: !head.keepAlive || closing || !context.keepsAlive)
        if let observer = context.observer {
            notify(
                observer, head.requestLine, status, bodyBytes: queued.bodyBytes, annotation: response.annotation,
                forwardedFor: forwardedFor(head))
        }
        exchangeEnded(closing: queued.close)
        return true
    }

    /// Queues the head and body of a response that is not streamed; returns whether the connection closes after it,
    /// and the body bytes that go out (none for HEAD).
    private func queueWhole(
        _ response: ServerResponse, status: HTTPResponse.Status, isHEAD: Bool, isHTTP10: Bool, close: Bool
    ) -> (close: Bool, bodyBytes: Int64) {
        let allowsBody = ResponseWriter.statusAllowsBody(status)
        var framing = ResponseWriter.BodyFraming.bodiless
        if allowsBody {
            switch response.body {
            case .empty: framing = .length(0)
            case .bytes(let bytes): framing = .length(Int64(bytes.count))
            case .file(_, let length), .fileRegion(_, _, let length): framing = .length(max(0, length))
            case .streamed: break
            }
        }
        let closeAfter: Bool
        if let prepared = response.preparedHead {
            outbound.append(prepared.bytes)
            closeAfter = ResponseWriter.serverFields(
                framing: framing, close: close || prepared.asksClose, keepAliveFor10: isHTTP10,
                dateLine: loop.dateCache.current(), serverLine: context.serverLine, into: &outbound)
        } else {
            closeAfter = ResponseWriter.head(
                response.head, status: status, framing: framing, close: close, keepAliveFor10: isHTTP10,
                dateLine: loop.dateCache.current(), serverLine: context.serverLine, into: &outbound)
        }
        var bodyBytes: Int64 = 0
        switch response.body {
        case .bytes(let bytes) where allowsBody && !isHEAD:
            outbound.append(bytes)
            bodyBytes = Int64(bytes.count)
        case .file(let fd, let length) where allowsBody && !isHEAD && length > 0:
            pendingFile = (fd, 0, length)
            bodyBytes = length
        case .fileRegion(let fd, let offset, let length) where allowsBody && !isHEAD && length > 0:
            pendingFile = (fd, offset, length)
            bodyBytes = length
        case .file(let fd, _), .fileRegion(let fd, _, _):
            closeDescriptor(fd)
        default:
            break
        }
        return (closeAfter, bodyBytes)
    }

    func queueHead(
        _ head: HTTPResponse, status: HTTPResponse.Status, framing: ResponseWriter.BodyFraming, _ ex: Exchange,
        forceClose: Bool
    ) {
        ex.responseStarted = true
        ex.closeAfter = ResponseWriter.head(
            head, status: status, framing: framing, close: closeAfterResponse(ex, forceClose: forceClose),
            keepAliveFor10: ex.isHTTP10, dateLine: loop.dateCache.current(), serverLine: context.serverLine,
            into: &outbound)
    }

    /// Whether the connection closes after this exchange's response, whatever the response itself asks.
    private func closeAfterResponse(_ ex: Exchange, forceClose: Bool) -> Bool {
        // A body left unread (past the discard bound, or under a streamed answer) would be parsed as the next
        // request: close instead.
        forceClose || !ex.keepAlive || !ex.bodyComplete || closing || !context.keepsAlive
    }

    /// Releases what a response that will never be sent owns: its file descriptor.
    static func dispose(_ response: ServerResponse) {
        switch response.body {
        case .file(let fd, _), .fileRegion(let fd, _, _): closeDescriptor(fd)
        default: break
        }
    }
}
