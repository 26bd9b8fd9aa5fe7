import Glibc
import SystemSupport

/// Reading and writing the socket, and choosing what epoll should watch and which timeout runs.
extension Connection {
    // MARK: Socket I/O

    var pendingBytes: Int { outbound.count - outboundStart }

    func readSocket() {
        if bodySplice != nil, !lingering, spliceFromSocket() { return }
        let buffer = loop.readBuffer
        let result: IOResult<Int>
        do {
            result = try Sys.receive(descriptor, buffer)
        } catch {
            abort()
            return
        }
        guard case .processed(let count) = result else { return }
        if count == 0 {
            // EOF. While lingering it is what we wait for; mid-body, a body cut short; otherwise the client went
            // away or is done.
            if lingering || !bodyCutShort() { abort() }
            return
        }
        if lingering {
            // Bytes keep coming: another idle period, within the total.
            if timer == .linger { loop.setDeadline(self, after: lingerTimeout(now: loop.now)) }
            return
        }
        bodyProgressed()
        inbound.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }

    func flushOutput() {
        guard !closed else { return }
        var progressed = false
        while true {
            if outboundStart < outbound.count {
                let result: IOResult<Int>
                do {
                    result = try outbound.withUnsafeBytes(from: outboundStart) { raw throws(IOError) in
                        try Sys.send(descriptor, raw)
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
                outbound.removeAll(keepingCapacityUpTo: 1 << 20)
                outboundStart = 0
                break
            }
        }
        if progressed && timer == .write { loop.setDeadline(self, after: context.writeTimeout) }
        if let waiter = streamWaiter, pendingBytes <= Self.lowWater {
            streamWaiter = nil
            waiter.continuation.resume(returning: true)
        }
        if closing && !lingering && pendingBytes == 0 && pendingFile == nil {
            Sys.shutdownWrite(descriptor)
            lingering = true
            lingerEnds = loop.now &+ (lingersLong ? Self.lingerTotal : lingerIdle)
        }
    }

    /// The handler wants body bytes the client has yet to send. Not while a splice waits for the file writer: that
    /// wait is the disk's, and counts neither as the client's stall nor against its rate.
    private var waitsForBody: Bool {
        guard let ex = exchange, ex.bodyDemand, !ex.bodyComplete else { return false }
        return bodySplice?.paused != true
    }

    func updateInterest() {
        var interest: EpollEvents = peerHalfClosed ? [] : [.readHangup]
        if lingering {
            interest.insert(.read)
        } else if exchange != nil {
            if waitsForBody { interest.insert(.read) }
        } else if !closing && pendingBytes < Self.lowWater && pendingFile == nil {
            interest.insert(.read)
        }
        if pendingBytes > 0 || pendingFile != nil { interest.insert(.write) }
        loop.setInterest(self, interest)
    }

    func updateTimer() {
        let kind: TimerKind
        if lingering {
            kind = .linger
        } else if pendingBytes > 0 || pendingFile != nil {
            kind = .write
        } else if exchange != nil {
            kind = waitsForBody ? .body : .none
        } else if closing {
            kind = .write
        } else {
            kind = parser.isIdle && servedAny ? .keepAlive : .header
        }
        if (kind == .header || kind == .keepAlive) && parser.isIdle && inboundStart == inbound.count {
            loop.reusable.insert(self)
        } else {
            loop.reusable.remove(self)
        }
        guard kind != timer else { return }
        let now = loop.now
        if timer == .body { bodyWaited &+= now &- bodyWaitStart }
        if kind == .body { bodyWaitStart = now }
        timer = kind
        let nanos: UInt64? =
            switch kind {
            case .none: nil
            case .header: context.headerTimeout
            case .keepAlive: context.keepAliveTimeout
            case .body: bodyTimeout(now: now)
            case .write: context.writeTimeout
            case .linger: lingerTimeout(now: now)
            }
        loop.setDeadline(self, after: nanos)
    }

    // MARK: Body pace

    /// Time spent waiting for the body so far, the running wait included.
    private func bodyWaitedSoFar(now: UInt64) -> UInt64 {
        bodyWaited &+ (timer == .body ? now &- bodyWaitStart : 0)
    }

    /// What the average rate allows the body to have waited so far.
    private var bodyWaitAllowed: UInt64 {
        guard context.minBodyRate > 0 else { return .max }
        let (earned, overflow) = bodyReceived.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : context.bodyRateGrace &+ earned / context.minBodyRate
    }

    /// Body bytes arrived: the body timer (if it runs) counts again from now, and from what the rate now allows.
    func bodyProgressed() {
        if timer == .body { loop.setDeadline(self, after: bodyTimeout(now: loop.now)) }
    }

    /// Until the next body deadline: the idle timeout, or sooner the moment the average rate falls under the minimum.
    func bodyTimeout(now: UInt64) -> UInt64 {
        let waited = bodyWaitedSoFar(now: now)
        let allowed = bodyWaitAllowed
        return min(context.bodyIdleTimeout, allowed > waited ? allowed - waited : 0)
    }

    func bodyTooSlow(now: UInt64) -> Bool { bodyWaitedSoFar(now: now) >= bodyWaitAllowed }

    /// How long lingering waits for the peer's next bytes (or its close), as nginx's `lingering_timeout`: 2 s, or
    /// the header timeout if shorter.
    var lingerIdle: UInt64 { min(context.headerTimeout, 2_000_000_000) }

    /// The linger timer from `now`: an idle period, never past `lingerEnds`.
    func lingerTimeout(now: UInt64) -> UInt64 {
        min(lingerIdle, lingerEnds > now ? lingerEnds - now : 0)
    }
}
