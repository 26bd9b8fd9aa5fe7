import CLinux
import Foundation
import Glibc
import Jobs
import SystemSupport

/// Sends a job's state changes to its callback: each `state` event POSTed as the status document, signed as the
/// Standard Webhooks specification asks (`webhook-id`, `webhook-timestamp`, `webhook-signature`). Delivery is at
/// least once: a failed attempt (no connection, no answer, a status other than 2xx) is retried with a doubling
/// backoff for `retryWindow`, under the same `webhook-id`. A job's events go one at a time, in order. Waiting costs a
/// task, never a thread: the socket is non-blocking and the task sleeps between looks at it.
final class WebhookSender: Sendable {
    let signer: WebhookSigner
    /// The first retry's delay; each next one doubles, up to a minute.
    let firstRetry: Double
    /// How long one event is retried.
    let retryWindow: Double
    /// Seconds one attempt may take, connection to status line.
    let attemptTimeout = 10.0
    private let observe: @Sendable (_ delivered: Bool) -> Void

    init(signer: WebhookSigner, firstRetry: Double, retryWindow: Double, observe: @escaping @Sendable (Bool) -> Void) {
        self.signer = signer
        self.firstRetry = firstRetry
        self.retryWindow = retryWindow
        self.observe = observe
    }

    /// Follows the job's events until its final state has been delivered (or given up on).
    func follow(_ job: String, to callback: CallbackTarget, in jobs: JobRegistry) {
        guard let events = jobs.events(job, after: nil) else { return }
        Task {
            for await event in events where event.name == "state" {
                await deliver(event, id: "\(job).\(event.id)", to: callback)
            }
        }
    }

    private func deliver(_ event: JobEvent, id: String, to callback: CallbackTarget) async {
        let start = ContinuousClock.now
        var delay = firstRetry
        while true {
            let timestamp = Int(Date().timeIntervalSince1970)
            let head = "POST \(callback.target) HTTP/1.1\r\nHost: \(callback.hostField)\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(event.data.count)\r\n"
                + "webhook-id: \(id)\r\nwebhook-timestamp: \(timestamp)\r\n"
                + "webhook-signature: \(signer.signature(id: id, timestamp: timestamp, body: event.data))\r\n"
                + "Connection: close\r\n\r\n"
            let status = await post(Array(head.utf8) + event.data, to: callback)
            if let status, (200..<300).contains(status) {
                observe(true)
                return
            }
            observe(false)
            guard (ContinuousClock.now - start).seconds + delay <= retryWindow else { return }
            try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
            delay = min(delay * 2, 60)
        }
    }

    /// One attempt: the status code of the answer, or nil when there was none.
    private func post(_ request: [UInt8], to callback: CallbackTarget) async -> Int? {
        guard let address = Self.resolve(callback.host, port: callback.port) else { return nil }
        let deadline = ContinuousClock.now + .milliseconds(Int64(attemptTimeout * 1000))
        guard let fd = try? syscallValue("socket", {
            Glibc.socket(Int32(address.family), Int32(SOCK_STREAM.rawValue) | clinux_sock_nonblock() | clinux_sock_cloexec(), 0)
        }) else { return nil }
        let connection = OwnedDescriptor(taking: fd)
        do throws(IOError) {
            _ = try syscallValue("connect") {
                address.bytes.withUnsafeBytes {
                    Glibc.connect(connection.rawValue, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
                }
            }
        } catch where error.errno == .nowInProgress {
            // Non-blocking: the handshake goes on, and the wait below says when it is done.
        } catch {
            return nil
        }
        guard await Self.wait(connection.rawValue, for: Int16(POLLOUT), until: deadline) else { return nil }
        var sent = 0
        while sent < request.count {
            let result = try? syscall("send") {
                request[sent...].withUnsafeBytes { Glibc.send(connection.rawValue, $0.baseAddress, $0.count, clinux_msg_nosignal()) }
            }
            switch result {
            case .processed(let n)?: sent += n
            case .wouldBlock?:
                guard await Self.wait(connection.rawValue, for: Int16(POLLOUT), until: deadline) else { return nil }
            case nil: return nil
            }
        }
        // Only the status line matters; the rest of the answer is not read.
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while !received.contains(0x0a) && received.count < 4096 {
            let result = try? syscall("recv") { buffer.withUnsafeMutableBytes { recv(connection.rawValue, $0.baseAddress, $0.count, 0) } }
            switch result {
            case .processed(let n)? where n > 0: received += buffer.prefix(n)
            case .wouldBlock?:
                guard await Self.wait(connection.rawValue, for: Int16(POLLIN), until: deadline) else { return nil }
            default: return nil
            }
        }
        let line = String(decoding: received.prefix { $0 != 0x0d && $0 != 0x0a }, as: UTF8.self).split(separator: " ")
        guard line.count >= 2, line[0].hasPrefix("HTTP/1."), line[1].count == 3 else { return nil }
        return Int(line[1])
    }

    /// Looks at the socket every 10 ms, sleeping in between, until it is ready or the deadline passes.
    private static func wait(_ fd: Int32, for events: Int16, until deadline: ContinuousClock.Instant) async -> Bool {
        while ContinuousClock.now < deadline {
            var entry = pollfd(fd: fd, events: events, revents: 0)
            if poll(&entry, 1, 0) > 0 {
                return entry.revents & Int16(POLLERR | POLLNVAL) == 0 || entry.revents & events != 0
            }
            guard (try? await Task.sleep(for: .milliseconds(10))) != nil else { return false }
        }
        return false
    }

    /// The first address of `host` (an address, or a name the allow list holds; its lookup blocks briefly).
    private static func resolve(_ host: String, port: Int) -> (family: Int32, bytes: [UInt8])? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(list) }
        let bytes = Array(UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        return (first.pointee.ai_family, bytes)
    }
}
