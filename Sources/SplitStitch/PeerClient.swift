import Glibc
import SystemSupport

/// The balancer in front of the replicas (`--cluster-url`): an `http://host:port` address, nothing else.
public struct ClusterURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// Nil unless `text` is `http://host[:port][/]`.
    public init?(_ text: String) {
        guard text.hasPrefix("http://") else { return nil }
        var rest = Substring(text.dropFirst("http://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("@") else { return nil }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, !parts[0].isEmpty else { return nil }
        host = String(parts[0])
        if parts.count == 2 {
            guard let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
            self.port = port
        } else {
            port = 80
        }
    }

    public var description: String { "http://\(host):\(port)" }
}

/// Ends a segment request from another thread: its connection is shut down, so the blocked exchange fails at once
/// and the peer, seeing its client gone, cancels the segment's job as it would any upload's.
final class PeerCancellation: Sendable {
    // `Locked`, not `Mutex`: TSan does not see a contended `Mutex` taken (SystemSupport's Locked says why), and
    // reported cancel() against attach() as a race.
    private let state = Locked<(socket: Int32?, cancelled: Bool)>((nil, false))

    func cancel() {
        state.withLock { state in
            state.cancelled = true
            if let socket = state.socket { shutdown(socket, Int32(SHUT_RDWR)) }
        }
    }

    /// Registers the connection (false: already cancelled, do not start), or with nil forgets it before it closes.
    func attach(_ socket: Int32?) -> Bool {
        state.withLock { state in
            state.socket = socket
            return !state.cancelled
        }
    }
}

/// What a peer answered to one segment request.
enum PeerAnswer {
    /// 200 with a body of the declared length, written to the output descriptor; its response headers.
    case ok(headers: [String: String], length: Int64)
    /// A status that means "elsewhere or later" (5xx, 408, 429), with the Retry-After it gave, if any.
    case retry(String, retryAfter: Int?)
    /// A status that means the segment itself is refused (4xx): the whole job fails with it.
    case refused(status: Int, detail: String)
}

/// A blocking HTTP/1.1 client for one request on one connection, on our own sockets: it sends the cut segment's
/// bytes from its descriptor and writes the answer's body into another. Every failure to talk (refused, reset,
/// timed out, an answer that is not HTTP) is thrown as `PeerError`, which the caller treats as "try elsewhere".
enum PeerClient {
    struct PeerError: Error, CustomStringConvertible {
        var description: String
    }

    static func post(
        _ url: ClusterURL, path: String, headers: [(String, String)], body: Int32, bodyLength: Int64, answer: Int32,
        timeoutSeconds: Int, cancellation: PeerCancellation, headSent: () -> Void = {}
    ) throws(PeerError) -> PeerAnswer {
        let socket = try connect(url, timeoutSeconds: timeoutSeconds)
        defer {
            _ = cancellation.attach(nil)
            closeDescriptor(socket)
        }
        guard cancellation.attach(socket) else { throw PeerError(description: "cancelled") }
        var head = "POST \(path) HTTP/1.1\r\nHost: \(url.host):\(url.port)\r\nContent-Length: \(bodyLength)\r\n"
        head += "Content-Type: video/mp4\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        try send(Array(head.utf8), to: socket)
        // The balancer queues the request from its head on, before it reads the body.
        headSent()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var offset: Int64 = 0
        while offset < bodyLength {
            let count = buffer.withUnsafeMutableBytes { pread(body, $0.baseAddress, min($0.count, Int(bodyLength - offset)), off_t(offset)) }
            guard count > 0 else { throw PeerError(description: "reading the segment: \(count == 0 ? "EOF" : "errno \(errno)")") }
            try send(Array(buffer[0..<count]), to: socket)
            offset += Int64(count)
        }

        var received: [UInt8] = []
        var status = 0
        var fields: [String: String] = [:]
        // Interim 1xx answers are skipped until the final head.
        repeat {
            let end = try readHead(socket, into: &received)
            let text = String(decoding: received[0..<end], as: UTF8.self)
            received.removeFirst(end + 4)
            var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
            let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
            guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let code = Int(statusLine[1]),
                (100...599).contains(code)
            else { throw PeerError(description: "not an HTTP answer") }
            status = code
            fields = [:]
            for line in lines {
                guard let colon = line.firstIndex(of: ":") else { throw PeerError(description: "a malformed header") }
                fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].drop { $0 == " " }.description
            }
        } while status < 200
        guard let lengthText = fields["content-length"], let length = Int64(lengthText), length >= 0 else {
            throw PeerError(description: "an answer without a Content-Length")
        }
        guard ftruncate(answer, 0) == 0 else { throw PeerError(description: "truncating the answer file: errno \(errno)") }
        var written: Int64 = 0
        var errorBody: [UInt8] = []
        func take(_ bytes: ArraySlice<UInt8>) throws(PeerError) {
            let bytes = bytes.prefix(Int(length - written))
            if status == 200 {
                let done = bytes.withUnsafeBytes { pwrite(answer, $0.baseAddress, $0.count, off_t(written)) }
                guard done == bytes.count else { throw PeerError(description: "writing the answer: errno \(errno)") }
            } else if errorBody.count < 4096 {
                errorBody += bytes.prefix(4096 - errorBody.count)
            }
            written += Int64(bytes.count)
        }
        try take(received[...])
        while written < length {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw PeerError(description: count == 0 ? "the answer ended early" : "reading the answer: errno \(errno)") }
            try take(buffer[0..<count])
        }
        switch status {
        case 200: return .ok(headers: fields, length: length)
        case 408, 429, 500...599:
            return .retry("\(status)", retryAfter: fields["retry-after"].flatMap { Int($0) })
        default:
            return .refused(status: status, detail: problemDetail(errorBody) ?? "status \(status)")
        }
    }

    /// The `detail` of a problem+json body, without a JSON library: the service writes it as one flat object.
    static func problemDetail(_ body: [UInt8]) -> String? {
        let text = String(decoding: body, as: UTF8.self)
        guard let key = text.range(of: "\"detail\":\"") else { return nil }
        var detail = ""
        var escaped = false
        for character in text[key.upperBound...] {
            if escaped { detail.append(character); escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { return detail } else { detail.append(character) }
        }
        return nil
    }

    private static func connect(_ url: ClusterURL, timeoutSeconds: Int) throws(PeerError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(url.host, String(url.port), &hints, &list) == 0, let first = list else {
            throw PeerError(description: "cannot resolve \(url.host)")
        }
        defer { freeaddrinfo(list) }
        var failure = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry {
            entry = address.pointee.ai_next
            let fd = socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            // A peer that stops talking is as good as gone: bounded waits on every send and receive.
            var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            if Glibc.connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 { return fd }
            failure = "connect: errno \(errno)"
            closeDescriptor(fd)
        }
        throw PeerError(description: "cannot reach \(url): \(failure)")
    }

    private static func send(_ bytes: [UInt8], to socket: Int32) throws(PeerError) {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw PeerError(description: "sending: errno \(errno)") }
            sent += count
        }
    }

    /// Reads until a blank line; answers where it starts. Heads over 64 KiB are not HTTP from our replicas.
    private static func readHead(_ socket: Int32, into received: inout [UInt8]) throws(PeerError) -> Int {
        let marker: [UInt8] = [13, 10, 13, 10]
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            if received.count >= 4 {
                for i in 0...(received.count - 4) where received[i..<i + 4].elementsEqual(marker) { return i }
            }
            guard received.count < 64 * 1024 else { throw PeerError(description: "an answer head over 64 KiB") }
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw PeerError(description: count == 0 ? "the connection closed" : "reading: errno \(errno)") }
            received += buffer[0..<count]
        }
    }
}
