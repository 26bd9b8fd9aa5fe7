import CLinux
import Glibc
import HTTPServer
import HTTPTypes
import SystemSupport

/// Why a request did not produce a valid video. `httpStatus` and `invalidOutput` mean the service answered.
public enum FailureCause: Hashable, Sendable, Comparable, CustomStringConvertible {
    case connect
    case timeout
    /// The connection broke before a whole response came back (reset, or closed mid-message).
    case connectionLost
    case httpStatus(Int)
    case invalidOutput

    public var description: String {
        switch self {
        case .connect: "connect"
        case .timeout: "timeout"
        case .connectionLost: "connection lost"
        case .httpStatus(let code): "http \(code)"
        case .invalidOutput: "invalid output"
        }
    }
}

struct Failure: Error {
    var cause: FailureCause
    var detail: String
    /// The connection was lost before any byte of an answer came.
    var beforeAnswer = false
}

/// A whole response, its body in an anonymous file.
struct Answer {
    var status: Int
    var fields: HTTPFields
    var contentLength: Int64?
    var bodyBytes: Int64
    var body: AnonymousFile
    /// The server ends the connection after this answer (`Connection: close`, or a body delimited by the close).
    var closes = false
}

/// One thread's HTTP/1.1 client: the upload streamed from the input file in fixed-size pieces and the answer
/// streamed to a temp file, so memory stays the same whatever the video sizes. Blocking in spirit (one exchange at a
/// time) but on a non-blocking socket, so that every wait honours the job's deadline and an early answer (a 503
/// before the body is read) is seen while uploading.
///
/// A fresh connection per job, or with `keepAlive` one connection for job after job until the server closes it, as
/// a client of a Kubernetes Service keeps its connections (kube-proxy leaves established ones on a terminating pod).
/// Each connection goes to the next of `endpoints` after the one the last connection went to.
final class UploadClient {
    private let endpoints: [Endpoint]
    private let keepAlive: Bool
    private var current: Int
    /// The connection kept from the last job, and the endpoint it goes to.
    private var kept: Int32?
    private let temporaryDirectory: String
    private var buffer: [UInt8]
    /// Connections opened so far.
    private(set) var connections = 0

    init(
        endpoints: [Endpoint], first: Int = 0, keepAlive: Bool = false,
        temporaryDirectory: String = AnonymousFile.defaultDirectory, bufferSize: Int = 64 << 10
    ) {
        precondition(!endpoints.isEmpty)
        self.endpoints = endpoints
        self.keepAlive = keepAlive
        // One step back: the first connection moves on to `first`.
        current = (first + endpoints.count - 1) % endpoints.count
        self.temporaryDirectory = temporaryDirectory
        buffer = [UInt8](repeating: 0, count: bufferSize)
    }

    deinit { if let kept { close(kept) } }

    private var endpoint: Endpoint { endpoints[current] }

    /// How one exchange ended.
    enum Outcome {
        case answered(Answer)
        case failed(Failure)
        /// Walked away from on purpose (`disconnect`).
        case abandoned
    }

    /// POSTs `size` bytes of `input` (read with pread, so threads share one descriptor per file) to `target`; with
    /// a `disconnect`, gives up at its moment instead of reading the answer. `fields`: more header lines, each
    /// ending in CRLF.
    func post(
        target: String, input: Int32, size: Int64, deadline: UInt64, disconnect: Disconnect? = nil, fields: String = ""
    ) -> Outcome {
        let (fd, reused): (Int32, Bool)
        switch connection(deadline: deadline) {
        case .success(let connected): (fd, reused) = connected
        case .failure(let failure): return .failed(failure)
        }
        var keep = false
        defer { if keep { kept = fd } else { close(fd) } }
        do throws(Failure) {
            let head = "POST \(target) HTTP/1.1\r\nHost: \(endpoint.hostField)\r\nContent-Type: application/octet-stream\r\n"
                + "Content-Length: \(size)\r\n\(fields)" + (keepAlive ? "" : "Connection: close\r\n") + "\r\n"
            var sendOnly = size
            if case .uploading(let bytes)? = disconnect?.moment { sendOnly = min(bytes, size) }
            let uploadError = try upload(fd, head: Array(head.utf8), input: input, size: sendOnly, deadline: deadline)
            var readOnly: Int64?
            switch disconnect?.moment {
            case nil: break
            case .uploading?:
                return abandon(fd, reset: disconnect!.reset)
            case .waiting(let milliseconds)?:
                usleep(UInt32(milliseconds) * 1000)
                return abandon(fd, reset: disconnect!.reset)
            case .receiving(let bytes)?:
                readOnly = bytes
            }
            guard let answer = try receive(fd, deadline: deadline, uploadError: uploadError, readOnly: readOnly) else {
                return abandon(fd, reset: disconnect!.reset)
            }
            keep = keepAlive && !answer.closes && uploadError == nil
            return .answered(answer)
        } catch {
            // A kept connection the server closed as this request went out (a drain closes idle ones): the request
            // was not processed, and is sent once more on a new connection, as curl does (RFC 9112, 9.3.1).
            if reused && error.cause == .connectionLost && error.beforeAnswer && disconnect == nil {
                return post(target: target, input: input, size: size, deadline: deadline, fields: fields)
            }
            return .failed(error)
        }
    }

    /// The kept connection if the server has not closed it meanwhile (an idle connection turns readable only with
    /// its EOF), or a new one to the next endpoint that takes it; and which of the two.
    private func connection(deadline: UInt64) -> Result<(fd: Int32, reused: Bool), Failure> {
        if let fd = kept {
            kept = nil
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if (try? syscallValue("poll") { poll(&entry, 1, 0) }) == 0 { return .success((fd, true)) }
            close(fd)
        }
        var failure = Failure(cause: .connect, detail: "no endpoint")
        // Each endpoint once: one refusing (a replica past its drain, or restarting) sends the job to the next.
        for _ in endpoints.indices {
            current = (current + 1) % endpoints.count
            let fd: Int32
            do {
                fd = try syscallValue("socket") {
                    socket(endpoint.family, Int32(SOCK_STREAM.rawValue) | clinux_sock_nonblock() | clinux_sock_cloexec(), 0)
                }
            } catch {
                return .failure(Failure(cause: .connect, detail: "\(error)"))
            }
            connections += 1
            do throws(Failure) {
                try connect(fd, deadline: deadline)
                return .success((fd, false))
            } catch {
                close(fd)
                failure = error
                if error.cause == .timeout { break }
            }
        }
        return .failure(failure)
    }

    /// GETs `target`, its whole answer (an event stream is read until the server ends it).
    func get(target: String, deadline: UInt64) -> Outcome { request("GET", target: target, deadline: deadline) }

    /// A request without a body (GET, DELETE), and its whole answer.
    func request(_ method: String, target: String, deadline: UInt64) -> Outcome {
        let fd: Int32
        do {
            fd = try syscallValue("socket") {
                socket(endpoint.family, Int32(SOCK_STREAM.rawValue) | clinux_sock_nonblock() | clinux_sock_cloexec(), 0)
            }
        } catch {
            return .failed(Failure(cause: .connect, detail: "\(error)"))
        }
        defer { close(fd) }
        do throws(Failure) {
            try connect(fd, deadline: deadline)
            let head = "\(method) \(target) HTTP/1.1\r\nHost: \(endpoint.hostField)\r\nConnection: close\r\n\r\n"
            _ = try upload(fd, head: Array(head.utf8), input: -1, size: 0, deadline: deadline)
            guard let answer = try receive(fd, deadline: deadline, uploadError: nil) else {
                return .failed(Failure(cause: .connectionLost, detail: "no answer"))
            }
            return .answered(answer)
        } catch {
            return .failed(error)
        }
    }

    /// The close that follows is a reset with SO_LINGER 0, like a crashed client's.
    private func abandon(_ fd: Int32, reset: Bool) -> Outcome {
        if reset {
            var option = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        }
        return .abandoned
    }

    private func connect(_ fd: Int32, deadline: UInt64) throws(Failure) {
        do {
            _ = try syscallValue("connect") {
                endpoint.address.withUnsafeBytes {
                    Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
                }
            }
        } catch where [.nowInProgress, .alreadyInProcess, .socketIsConnected].contains(error.errno) {
            // Non-blocking: the handshake goes on, and poll says when it is done.
        } catch {
            throw Failure(cause: .connect, detail: "\(error)")
        }
        _ = try wait(fd, for: Int16(POLLOUT), deadline: deadline, phase: "connecting")
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        if error != 0 { throw Failure(cause: .connect, detail: "connect: \(String(cString: strerror(error)))") }
    }

    /// Sends the head and the body. A send error is returned, not thrown: the server may have answered before
    /// closing (413, 503 without reading the body), and that answer is what the report should count.
    private func upload(_ fd: Int32, head: [UInt8], input: Int32, size: Int64, deadline: UInt64) throws(Failure) -> String? {
        var offset: Int64 = 0
        var start = 0
        var end = head.count
        buffer.replaceSubrange(0..<head.count, with: head)
        while true {
            if start == end {
                if offset == size { return nil }
                let n: Int
                do {
                    n = try syscallValue("pread") {
                        buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, min($0.count, Int(size - offset)), off_t(offset)) }
                    }
                } catch {
                    throw Failure(cause: .connectionLost, detail: "reading the input: \(error)")
                }
                guard n > 0 else { throw Failure(cause: .connectionLost, detail: "reading the input: file shrank") }
                offset += Int64(n)
                start = 0
                end = n
            }
            let ready = try wait(fd, for: Int16(POLLOUT | POLLIN), deadline: deadline, phase: "uploading")
            // Nothing is due from the server before the whole body is sent (no Expect: 100-continue), so readable
            // means an early final answer; stop sending before a reset could discard it.
            if ready & Int16(POLLIN | POLLHUP | POLLERR) != 0 { return "answered early" }
            let result: IOResult<Int>
            do {
                result = try syscall("send") {
                    buffer[start..<end].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, clinux_msg_nosignal()) }
                }
            } catch {
                return error.description
            }
            if case .processed(let n) = result { start += n }
        }
    }

    /// The whole answer; nil once `readOnly` bytes came in first (a planned disconnect).
    private func receive(_ fd: Int32, deadline: UInt64, uploadError: String?, readOnly: Int64? = nil)
        throws(Failure) -> Answer?
    {
        var parser = HTTPResponseParser()
        var head: HTTPResponseParser.Head?
        let body: AnonymousFile
        do { body = try AnonymousFile(directory: temporaryDirectory) } catch {
            throw Failure(cause: .invalidOutput, detail: error.description)
        }
        var bodyBytes: Int64 = 0
        var received: Int64 = 0
        var closedByServer = false
        func lost(_ detail: String) -> Failure {
            Failure(
                cause: .connectionLost, detail: uploadError.map { "\(detail) (upload: \($0))" } ?? detail,
                beforeAnswer: received == 0)
        }
        func consume(_ event: HTTPResponseParser.Event) throws(Failure) -> Bool {
            switch event {
            case .head(let h): head = h
            case .body(let bytes):
                do { try body.write(bytes) } catch {
                    throw Failure(cause: .invalidOutput, detail: error.description)
                }
                bodyBytes += Int64(bytes.count)
            case .end: return true
            }
            return false
        }
        while true {
            let result: IOResult<Int>
            do {
                result = try syscall("recv") { buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            } catch {
                throw lost("receiving: \(error.errno)")
            }
            switch result {
            case .wouldBlock:
                _ = try wait(fd, for: Int16(POLLIN), deadline: deadline, phase: head == nil ? "waiting for the answer" : "receiving")
                continue
            case .processed(0):
                let event: HTTPResponseParser.Event
                do { event = try parser.finish() } catch { throw lost(error.detail) }
                _ = try consume(event)
                closedByServer = true
            case .processed(let n):
                received += Int64(n)
                if let readOnly, received >= readOnly { return nil }
                var input = buffer[0..<n]
                var finished = false
                while !finished {
                    let step: (event: HTTPResponseParser.Event?, consumed: Int)
                    do { step = try parser.parse(input) } catch {
                        throw Failure(cause: .invalidOutput, detail: "malformed response: \(error.detail)")
                    }
                    input = input.dropFirst(step.consumed)
                    guard let event = step.event else { break }
                    finished = try consume(event)
                }
                if !finished { continue }
            }
            guard let head else { throw lost("no response") }
            let asksClose = head.response.headerFields[.connection].map { $0.lowercased().contains("close") } ?? false
            return Answer(
                status: head.response.status.code, fields: head.response.headerFields, contentLength: head.contentLength,
                bodyBytes: bodyBytes, body: body, closes: closedByServer || asksClose)
        }
    }

    /// Polls until `events` or the deadline; returns the revents.
    private func wait(_ fd: Int32, for events: Int16, deadline: UInt64, phase: String) throws(Failure) -> Int16 {
        while true {
            let now = monotonicNanos()
            guard now < deadline else { throw Failure(cause: .timeout, detail: "timed out \(phase)") }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let milliseconds = Int32(min((deadline - now + 999_999) / 1_000_000, 60_000))
            let n: Int32
            do { n = try syscallValue("poll") { poll(&entry, 1, milliseconds) } } catch {
                throw Failure(cause: .connectionLost, detail: "\(error)")
            }
            if n > 0 { return entry.revents }
        }
    }
}
