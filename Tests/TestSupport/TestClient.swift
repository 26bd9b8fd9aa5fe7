import Glibc
import SystemSupport

/// A blocking test client on a raw socket, so tests see exactly the bytes on the wire. Shared by the HTTP server's,
/// the service's and the transcoding tests.
public final class TestClient {
    public let fd: Int32
    private var buffer: [UInt8] = []

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]
        /// The status codes of the interim (1xx) answers read before this one, in order: a test that claims no
        /// `100 Continue` was sent, or that the body was never asked for, checks this is empty.
        public var interim: [Int] = []
        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Why a read or write did not complete, so that a failing test says which (a timeout on a loaded machine reads
    /// differently from a server that closed).
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case closed
        case reset(Errno)
        case timedOut(seconds: Int)
        case malformed(String)
        case connect(Errno)

        public var description: String {
            switch self {
            case .closed: "the server closed the connection"
            case .reset(let errno): "the connection failed: \(errno)"
            case .timedOut(let seconds): "no bytes from the server within \(seconds) s"
            case .malformed(let line): "not HTTP: \(line.prefix(80).debugDescription)"
            case .connect(let errno): "connect failed: \(errno)"
            }
        }
    }

    /// The receive timeout: long enough for a transcode on a loaded 2-core machine, since tests assert what comes
    /// back, not how fast. A test that waits for silence passes its own shorter one.
    public let receiveTimeoutSeconds: Int

    /// Connects to `host` (an IPv4 or IPv6 literal, 127.0.0.1 unless told) at `port`.
    public init(port: Int, host: String = "127.0.0.1", receiveTimeoutSeconds: Int = 30) throws {
        self.receiveTimeoutSeconds = receiveTimeoutSeconds
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let family = inet_pton(AF_INET, host, &v4.sin_addr) == 1 ? AF_INET : AF_INET6
        guard family == AF_INET || inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 else {
            throw Failure.connect(Errno(rawValue: EINVAL))
        }
        fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.connect(Errno(rawValue: errno)) }
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_port = UInt16(port).bigEndian
        v6.sin6_family = sa_family_t(AF_INET6)
        v6.sin6_port = UInt16(port).bigEndian
        let rc = family == AF_INET
            ? withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            : withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        guard rc == 0 else {
            let failure = Errno(rawValue: errno)
            close(fd)
            throw Failure.connect(failure)
        }
        var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// True when a byte of an answer (or the peer's close) is waiting to be read; does not consume it.
    public var hasIncoming: Bool {
        if !buffer.isEmpty { return true }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    public func send(_ string: String) throws { try send(Array(string.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 { throw Failure.reset(Errno(rawValue: errno)) }
            offset += n
        }
    }

    /// Reads more bytes into the buffer; false on EOF.
    private func fill() throws(Failure) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let result = Result { () throws(IOError) in
            try syscall("recv") { chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
        }
        switch result {
        case .success(.processed(0)): return false
        case .success(.processed(let count)):
            buffer += chunk[..<count]
            return true
        case .success(.wouldBlock): throw .timedOut(seconds: receiveTimeoutSeconds)  // SO_RCVTIMEO passed
        case .failure(let error): throw .reset(error.errno)
        }
    }

    private func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return line.hasSuffix("\r") ? String(line.dropLast()) : line
            }
            guard try fill() else { throw Failure.closed }
        }
    }

    private func readBytes(_ count: Int) throws -> [UInt8] {
        while buffer.count < count { guard try fill() else { throw Failure.closed } }
        defer { buffer.removeFirst(count) }
        return Array(buffer[..<count])
    }

    /// Reads one final response; the interim 1xx answers before it (`100 Continue`) are listed in its `interim`.
    /// `head` skips the body (for HEAD requests).
    public func readResponse(head: Bool = false) throws -> Response {
        var response = try readHead()
        if head || response.status == 204 || response.status == 304 { return response }
        if let length = response.header("Content-Length").flatMap({ Int($0) }) {
            response.body = try readBytes(length)
        } else if response.header("Transfer-Encoding") == "chunked" {
            while let chunk = try readChunk() { response.body += chunk }
        } else {
            while try fill() {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    /// Reads the head of one final response (the interim answers before it in its `interim`) and leaves the body
    /// unread: a stream that never ends, such as Server-Sent Events, is then read a piece at a time (`readChunk`).
    public func readHead() throws -> Response {
        var interim: [Int] = []
        var response: Response
        while true {
            let statusLine = try readLine()
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2 else { throw Failure.malformed(statusLine) }
            response = Response(status: Int(parts[1]) ?? 0, headers: [], body: [])
            while true {
                let line = try readLine()
                if line.isEmpty { break }
                guard let colon = line.firstIndex(of: ":") else { throw Failure.malformed(line) }
                response.headers.append(
                    (String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " })))
            }
            guard (100..<200).contains(response.status), response.status != 101 else { break }
            interim.append(response.status)
        }
        response.interim = interim
        return response
    }

    /// The next chunk of a chunked body, as it arrives; nil after the last one (and its trailer).
    public func readChunk() throws -> [UInt8]? {
        let line = try readLine()
        guard let size = Int(line.split(separator: ";").first ?? "", radix: 16) else { throw Failure.malformed(line) }
        if size == 0 {
            while try !readLine().isEmpty {}
            return nil
        }
        let chunk = try readBytes(size)
        _ = try readLine()
        return chunk
    }

    /// Reads one status line and the blank line after it (an interim `100 Continue`).
    public func readInterim() throws -> String {
        let line = try readLine()
        _ = try readLine()
        return line
    }

    /// True when the server has closed the connection (EOF or reset) within the receive timeout.
    public func isClosedByPeer() -> Bool {
        if !buffer.isEmpty { return false }
        var byte: UInt8 = 0
        switch Result(catching: { () throws(IOError) in try syscall("recv") { recv(fd, &byte, 1, 0) } }) {
        case .success(.processed(0)): return true
        case .success(.processed): buffer.append(byte); return false
        case .success(.wouldBlock): return false  // the receive timeout passed with the connection still open
        case .failure: return true  // reset
        }
    }

    /// Ends the connection with a reset, like a client that is gone, while the descriptor stays ours until deinit.
    /// shutdown(2) would send a FIN, which the server must read as a half-close (a client that still listens);
    /// connect(2) to AF_UNSPEC disconnects a TCP socket with an RST (Linux's tcp_disconnect).
    public func reset() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        var unspecified = sockaddr()
        unspecified.sa_family = sa_family_t(AF_UNSPEC)
        _ = connect(fd, &unspecified, socklen_t(MemoryLayout<sockaddr>.size))
    }
}

/// Open descriptors of this process (or of `pid`): connection-heavy tests check they return to the baseline.
public func openDescriptorCount(pid: Int32? = nil) -> Int {
    guard let dir = opendir("/proc/\(pid.map(String.init) ?? "self")/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while readdir(dir) != nil { count += 1 }
    return count - 3  // ".", ".." and the directory stream itself
}

/// What each open descriptor (below 200) points at, for a failing descriptor-count expectation's message.
public func describeDescriptors(pid: Int32? = nil) -> [String] {
    let folder = "/proc/\(pid.map(String.init) ?? "self")/fd"
    var out: [String] = []
    for fd in 0..<200 {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { readlink("\(folder)/\(fd)", $0.baseAddress!.assumingMemoryBound(to: CChar.self), 255) }
        if n > 0 { out.append("\(fd)=\(String(decoding: buffer[..<n], as: UTF8.self))") }
    }
    return out
}

/// Polls `condition` every 20 ms for up to `seconds`, from blocking code (the async tests have `eventually`).
public func waitUntil(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
