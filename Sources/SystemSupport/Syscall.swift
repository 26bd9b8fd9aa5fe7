import Glibc
@_exported import struct SystemPackage.Errno

/// A failed system call: which call, and why.
public struct IOError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Errno

    public init(call: String, errno: Errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(errno) (errno \(errno.rawValue))" }
}

/// The result of a non-blocking call: done, or the kernel asked us to come back later.
public enum IOResult<Value> {
    case processed(Value)
    case wouldBlock
}

/// The only place that reads `errno`: retries EINTR, turns EAGAIN into `.wouldBlock`, throws the rest typed.
///
/// EBADF and EFAULT stop the process, as in SwiftNIO's System.swift: they mean this program passed a descriptor it
/// does not own or memory it does not have, and carrying on could read or write someone else's file.
@inline(__always)
public func syscall<T: FixedWidthInteger>(
    _ call: StaticString, _ body: () -> T
) throws(IOError) -> IOResult<T> {
    while true {
        let result = body()
        guard result == -1 else { return .processed(result) }
        let code = Errno(rawValue: Glibc.errno)
        switch code {
        case .interrupted: continue
        case .wouldBlock, .resourceTemporarilyUnavailable: return .wouldBlock
        case .badFileDescriptor, .badAddress: preconditionFailure("\(call): \(code), a programming error")
        default: throw IOError(call: "\(call)", errno: code)
        }
    }
}

/// For calls that never answer EAGAIN (blocking descriptors, epoll_ctl, bind, …): `.wouldBlock` is an error too.
@inline(__always)
public func syscallValue<T: FixedWidthInteger>(_ call: StaticString, _ body: () -> T) throws(IOError) -> T {
    switch try syscall(call, body) {
    case .processed(let value): return value
    case .wouldBlock: throw IOError(call: "\(call)", errno: .wouldBlock)
    }
}

/// Writes all of `bytes` to `descriptor` (a blocking one); the errno of the failure, or nil.
public func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> Errno? {
    var done = 0
    while done < bytes.count {
        do {
            done += try syscallValue("write") { Glibc.write(descriptor, bytes.baseAddress! + done, bytes.count - done) }
        } catch {
            return error.errno
        }
    }
    return nil
}

/// `line` and a newline on standard error, in one write where it fits: no Foundation, no locks, so a sandboxed
/// worker process can use it too.
public func printToStandardError(_ line: String) {
    var text = line + "\n"
    _ = text.withUTF8 { writeAll(UnsafeRawBufferPointer($0), to: STDERR_FILENO) }
}

/// close(2) is not retried on EINTR: on Linux the descriptor is released either way, and a retry could close a
/// descriptor another thread has just been given.
@inline(__always)
public func closeDescriptor(_ fd: Int32) {
    _ = Glibc.close(fd)
}

extension Errno {
    /// ENOSPC or EDQUOT: the disk (or this user's share of it) is full. The service answers 507.
    public var isDiskFull: Bool { self == .noSpace || self == .diskQuotaExceeded }
}
