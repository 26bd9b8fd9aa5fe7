import CLinux
import Glibc
import HTTPServer

/// Why a temp file could not be made or written.
public enum TempFileError: Error, Equatable, Sendable {
    /// ENOSPC or EDQUOT: the service answers 507.
    case diskFull
    case io(errno: Int32)

    public init(errno code: Int32) {
        self = code == ENOSPC || code == EDQUOT ? .diskFull : .io(errno: code)
    }
}

/// An anonymous file in the temp directory: created with O_TMPFILE (or unlinked at once where the filesystem lacks
/// it), so it has no name and vanishes with its last descriptor, even when the process is killed. Nothing about it
/// is ever named from a request.
public final class TempFile: @unchecked Sendable {
    // One task uses a TempFile at a time (it is handed over, never shared), hence @unchecked.
    private(set) var descriptor: Int32
    public private(set) var size: Int64 = 0

    public init(directory: String) throws(TempFileError) {
        do {
            descriptor = try TempFile.openAnonymous(in: directory)
        } catch {
            throw TempFileError(errno: error.errno.rawValue)
        }
    }

    private static func openAnonymous(in directory: String) throws(IOError) -> Int32 {
        do {
            return try syscallValue("open") { open(directory, clinux_o_tmpfile() | O_RDWR | O_CLOEXEC, 0o600) }
        } catch where [EOPNOTSUPP, EISDIR, EINVAL].contains(error.errno.rawValue) {
            // No O_TMPFILE on this filesystem: a named file, unlinked before anyone can see it.
            var template = Array((directory + "/.ffmpeg-processor-XXXXXX").utf8CString)
            let fd = try syscallValue("mkstemp") { template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) } }
            template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            return fd
        }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Counts `count` bytes appended through the descriptor (the server writes the upload; see Routes).
    public func appended(_ count: Int64) { size += count }

    /// Hands the descriptor over (to the HTTP server, which closes it after sending); this object forgets it.
    public func take() -> Int32 {
        defer { descriptor = -1 }
        return descriptor
    }

    /// The descriptor, still owned by this object.
    public var borrowedDescriptor: Int32 { descriptor }
}
