/// A body nobody reads: the answer is held while the loop reads the body and drops it (`BodyDiscard`), and goes
/// out once the body is complete, so the connection and the requests pipelined behind it go on. A broken framing
/// gets 400 in its place, as an upload's would; a body past `maxDiscardBytes` gets the answer at once, with
/// `Connection: close`.
extension Connection {
    /// Called with an exchange's whole (not streamed) answer while its body is unread. True when the answer is held
    /// until the body has been dropped; false when it must go out now, and the connection close after it.
    func holdWhileDiscarding(_ response: ServerResponse, _ ex: Exchange) -> Bool {
        guard !ex.discardTried else { return false }
        ex.discardTried = true
        // The handler has answered: whatever it did not read of its body, it will not.
        ex.body?.fail(.cancelled)
        ex.bodyDemand = false
        dropSplice()
        // A client that waits for `100 Continue` has not sent the body and will not unless asked: asking now would
        // only have it send bytes nobody reads. It gets the answer at once, and the connection closes.
        if closing || (ex.expectContinue && !ex.continueSent) { return false }
        guard let discard = BodyDiscard(parser: parser, bound: context.configuration.maxDiscardBytes) else {
            return false
        }
        ex.discard = discard
        ex.held = response
        ex.bodyDemand = true  // the socket is read, and the body timeouts run, as for a handler's pull
        needsDrive = true
        return true
    }

    /// Reads what is buffered of a discarded body. True when the body is done with (complete, or past the bound) and
    /// the held answer has been written; false when more bytes are needed, or the framing broke and the error
    /// answer has taken the exchange's place.
    func discardInbound(_ ex: Exchange) -> Bool {
        guard var discard = ex.discard else { return false }
        let dropped = discard.dropped
        let progress: BodyDiscard.Progress
        do throws(HTTPRequestError) {
            let (step, consumed) = try discard.consume(inbound[inboundStart...], with: &parser)
            consumeInbound(consumed)
            progress = step
        } catch {
            respondError(error)
            return false
        }
        bodyReceived += UInt64(discard.dropped - dropped)
        if progress == .needsMore {
            ex.discard = discard
            return false
        }
        ex.discard = nil
        ex.bodyDemand = false
        ex.bodyComplete = progress == .complete
        let held = ex.held!
        ex.held = nil
        writeResponse(held, ex)
        return true
    }
}

extension Connection.Exchange {
    /// Releases a held answer that will never be sent (the exchange failed): its file descriptor.
    func dropHeld() {
        if let held {
            Connection.dispose(held)
            self.held = nil
        }
    }
}
