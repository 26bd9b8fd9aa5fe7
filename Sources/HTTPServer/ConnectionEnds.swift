import HTTPTypes
import SystemSupport

/// How a connection ends other than after an answer: an error the server answers itself, a close whatever is in
/// flight, a client that half-closes mid-body, and the idle connections a draining server closes.
extension Connection {
    /// An error the server answers itself; the framing can no longer be trusted, so the connection closes after.
    /// `requestLine` names a head refused before it became an exchange.
    func respondError(_ error: HTTPRequestError, requestLine: RequestLine? = nil) {
        dropSplice()
        var refused = requestLine
        var forwardedFor: String?
        var isHEAD = parser.partialRequestIsHEAD
        if let ex = exchange {
            exchange = nil
            ex.task?.cancel()
            ex.body?.fail(.cancelled)
            ex.dropHeld()
            isHEAD = ex.isHEAD
            if ex.responseStarted {
                abort()
                return
            }
            refused = ex.requestLine
            forwardedFor = ex.forwardedFor
        }
        let bodyBytes = ResponseWriter.closingProblem(
            error.status, detail: error.detail, isHEAD: isHEAD, dateLine: loop.dateCache.current(),
            serverLine: context.serverLine, into: &outbound)
        if let observer = context.observer {
            notify(observer, refused, error.status, bodyBytes: bodyBytes, annotation: nil, forwardedFor: forwardedFor)
        }
        if error.status == .contentTooLarge { lingersLong = true }
        closing = true
        needsDrive = true
    }

    /// Closes now, whatever is in flight: the handler is cancelled and its body throws. A request still waiting for
    /// its answer is observed as 499, nginx's "client closed request", since no response will carry its record:
    /// unless `byServer` (the server is shutting down), when nothing was the client's doing.
    func abort(byServer: Bool = false) {
        guard !closed else { return }
        closed = true
        loop.reusable.remove(self)
        loop.deregister(self)
        closeDescriptor(descriptor)
        dropSplice()
        if let ex = exchange {
            exchange = nil
            if !ex.responseStarted, !byServer, let observer = context.observer {
                notify(
                    observer, ex.requestLine, Self.clientClosedRequest, bodyBytes: 0, annotation: nil,
                    forwardedFor: ex.forwardedFor)
            }
            ex.task?.cancel()
            ex.body?.fail(.clientDisconnected)
            ex.dropHeld()
        }
        streamWaiter?.continuation.resume(returning: false)
        streamWaiter = nil
        if let file = pendingFile {
            closeDescriptor(file.descriptor)
            pendingFile = nil
        }
        context.connectionClosed()
    }

    /// An exchange whose body has not all arrived and whose answer has not begun: the end of the client's side now
    /// would cut the body short, not end the conversation.
    var awaitsRestOfBody: Bool {
        guard let ex = exchange else { return false }
        return !ex.bodyComplete && !ex.responseStarted
    }

    /// The client shut its sending side (a FIN, read as EOF) before the end of its body. It can still read, as a
    /// client that uploads and then half-closes does, so it gets an answer, and is observed under it, rather than
    /// the 499 of a client that is gone: nginx logs such a request as 400 too ("client prematurely closed
    /// connection"), though it sends nothing. The handler's answer held while its body was being dropped goes out as
    /// it is. A client that resets the connection is aborted before this, as 499; one that closed entirely without
    /// a reset cannot be told from a half-close until it resets our answer. False, having done nothing, when no body
    /// was expected.
    func bodyCutShort() -> Bool {
        guard awaitsRestOfBody, let ex = exchange else { return false }
        peerHalfClosed = true
        if let held = ex.held {
            ex.held = nil
            ex.discard = nil
            ex.bodyDemand = false
            writeResponse(held, ex)  // with `Connection: close`: the body is incomplete
            needsDrive = true
            return true
        }
        let buffered = Int64(inbound.count - inboundStart)
        let missing = parser.lengthBodyRemaining.map { " (\($0 - buffered) bytes missing)" } ?? ""
        respondError(HTTPRequestError(
            .badRequest, "the request body was cut short: the client closed its side before its end\(missing)"))
        return true
    }

    /// Closes the connection if it sits idle after an answer, waiting for a next request that a draining server
    /// would only refuse (`Server.closeIdleConnections`). The close is the lingering one: our FIN first, then the
    /// socket read until the client's, so that a request already on its way is dropped rather than answered with a
    /// reset.
    func closeIfIdle() {
        guard isReusable, servedAny, !closed, !closing else { return }
        closing = true
        drive()
    }
}
