import CLinux
import Glibc

/// A POSIX error number with names for the cases the server reacts to.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let interrupted = Errno(rawValue: EINTR)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let tooManyOpenFilesInSystem = Errno(rawValue: ENFILE)
    public static let connectionAborted = Errno(rawValue: ECONNABORTED)
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let noBufferSpace = Errno(rawValue: ENOBUFS)
    public static let outOfMemory = Errno(rawValue: ENOMEM)

    public var description: String { String(cString: strerror(rawValue)) + " (errno \(rawValue))" }
}

/// A failed system call: which call, and why.
public struct IOError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Errno
    public var description: String { "\(call): \(errno)" }
}

/// The result of a non-blocking call: done, or the kernel asked us to come back later.
public enum IOResult<Value> {
    case processed(Value)
    case wouldBlock
}

/// The only place that reads `errno`: retries EINTR, turns EAGAIN into `.wouldBlock`, throws the rest typed.
@inline(__always)
public func syscall<T: FixedWidthInteger>(
    _ call: StaticString, _ body: () -> T
) throws(IOError) -> IOResult<T> {
    while true {
        let result = body()
        guard result == -1 else { return .processed(result) }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return .wouldBlock }
        throw IOError(call: "\(call)", errno: Errno(rawValue: code))
    }
}

/// For calls on descriptors that never block (epoll_ctl, bind, …): `.wouldBlock` cannot happen.
@inline(__always)
public func syscallValue<T: FixedWidthInteger>(_ call: StaticString, _ body: () -> T) throws(IOError) -> T {
    switch try syscall(call, body) {
    case .processed(let value): return value
    case .wouldBlock: throw IOError(call: "\(call)", errno: .wouldBlock)
    }
}

/// close(2) is not retried on EINTR: on Linux the descriptor is released either way, and a retry could close a
/// descriptor another thread has just been given.
@inline(__always)
func closeDescriptor(_ fd: Int32) {
    _ = Glibc.close(fd)
}

enum Sys {
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscall("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// recv(2) rather than read(2) on a socket: it skips the VFS layer (file position lock, access checks).
    static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscall("recv") { Glibc.recv(fd, buffer.baseAddress, buffer.count, 0) }
    }

    static func send(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(fd, buffer.baseAddress, buffer.count, clinux_msg_nosignal()) }
    }

    static func sendfile(_ out: Int32, _ input: Int32, offset: inout Int64, count: Int) throws(IOError) -> IOResult<Int> {
        var off = off_t(offset)
        let result = try syscall("sendfile") { CLinux.sendfile(out, input, &off, count) }
        offset = Int64(off)
        return result
    }

    /// Accepted sockets are non-blocking and close-on-exec from birth: no window where they leak into a child.
    static func accept(_ fd: Int32) throws(IOError) -> IOResult<Int32> {
        try syscall("accept4") { clinux_accept4(fd) }
    }

    /// Moves up to `count` bytes from `from` to `to` inside the kernel; one end must be a pipe.
    static func splice(from: Int32, to: Int32, count: Int) throws(IOError) -> IOResult<Int> {
        try syscall("splice") { clinux_splice_nonblock(from, to, count) }
    }

    static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(IOError) {
        var v = value
        _ = try syscallValue("setsockopt") {
            Glibc.setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    static func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Nanoseconds on the monotonic clock: timeouts must not jump with wall-clock changes.
    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}

/// Lifts the soft RLIMIT_NOFILE to the hard one, as nginx's worker_rlimit_nofile or Go's runtime do: the soft limit
/// (often 1024) exists for old select() users, and a server of ten thousand connections (or a load generator with
/// as many clients) needs more. Process-wide, so executables call it once at start. Returns the limit now in force.
@discardableResult
public func raiseDescriptorLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
    if limit.rlim_cur < limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
    }
    return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
}
