import CLinux
import Glibc

/// Why a temp file could not be made or written.
public enum TempFileError: Error, Equatable, Sendable {
    /// ENOSPC or EDQUOT: the service answers 507.
    case diskFull
    case io(errno: Int32)
}

/// An anonymous file in the temp directory: created with O_TMPFILE (or unlinked at once where the filesystem lacks
/// it), so it has no name and vanishes with its last descriptor, even when the process is killed. Nothing about it
/// is ever named from a request.
public final class TempFile: @unchecked Sendable {
    // One task uses a TempFile at a time (it is handed over, never shared), hence @unchecked.
    private(set) var descriptor: Int32
    public private(set) var size: Int64 = 0

    public init(directory: String) throws(TempFileError) {
        var fd = retrying { open(directory, clinux_o_tmpfile() | O_RDWR | O_CLOEXEC, 0o600) }
        if fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
            var template = Array((directory + "/.ffmpeg-processor-XXXXXX").utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            if fd >= 0 {
                template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        guard fd >= 0 else { throw TempFile.error(errno) }
        descriptor = fd
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Appends all of `bytes`, however many write calls that takes.
    public func write(_ bytes: [UInt8]) throws(TempFileError) {
        precondition(descriptor >= 0, "TempFile used after take()")
        let failure: Int32? = bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = retrying { Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset) }
                if n < 0 { return errno }
                offset += n
            }
            return nil
        }
        if let failure { throw TempFile.error(failure) }
        size += Int64(bytes.count)
    }

    /// Hands the descriptor over (to the HTTP server, which closes it after sending); this object forgets it.
    public func take() -> Int32 {
        defer { descriptor = -1 }
        return descriptor
    }

    /// The descriptor, still owned by this object.
    public var borrowedDescriptor: Int32 { descriptor }

    private static func error(_ code: Int32) -> TempFileError {
        code == ENOSPC || code == EDQUOT ? .diskFull : .io(errno: code)
    }
}

/// The one place this target retries system calls interrupted by a signal.
@inline(__always)
func retrying<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result < 0 && errno == EINTR { continue }
        return result
    }
}
