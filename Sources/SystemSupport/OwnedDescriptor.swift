import CLinux
import Glibc

/// A descriptor that this value alone closes: when the value ends, or earlier with `close()`. `release()` hands the
/// number on to an owner that is not a Swift value (the HTTP server's sendfile, which closes it after the last byte).
public struct OwnedDescriptor: ~Copyable, Sendable {
    public let rawValue: Int32

    public init(taking rawValue: Int32) {
        precondition(rawValue >= 0, "not a descriptor: \(rawValue)")
        self.rawValue = rawValue
    }

    deinit { closeDescriptor(rawValue) }

    public consuming func close() {}

    /// Stops owning the descriptor without closing it; whoever receives the number must close it.
    public consuming func release() -> Int32 {
        let descriptor = rawValue
        discard self
        return descriptor
    }

    /// How `anonymousFile` makes its file; tests force the fallback to check that it leaves no name behind.
    public enum AnonymousMethod: Sendable {
        /// O_TMPFILE where the filesystem has it, else `.unlinkedName`.
        case tmpfile
        /// mkstemp, then unlink before the descriptor is handed out.
        case unlinkedName
    }

    /// A read-write file with no name in `directory`: it vanishes with its last descriptor, even when the process is
    /// killed, and nothing about it is ever named from outside. Close-on-exec, so no child process keeps it.
    public static func anonymousFile(in directory: String, method: AnonymousMethod = .tmpfile) throws(IOError) -> OwnedDescriptor {
        if method == .tmpfile {
            do {
                return OwnedDescriptor(taking: try syscallValue("open") {
                    open(directory, clinux_o_tmpfile() | O_RDWR | O_CLOEXEC, 0o600)
                })
            } catch where [.notSupportedOnSocket, .notSupported, .isDirectory, .invalidArgument].contains(error.errno) {
                // EOPNOTSUPP (or EISDIR, EINVAL on old kernels): this filesystem has no O_TMPFILE.
            }
        }
        var template = Array((directory + "/.anonymous-XXXXXX").utf8CString)
        let file = OwnedDescriptor(taking: try syscallValue("mkstemp") {
            template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        })
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = try syscallValue("fcntl") { fcntl(file.rawValue, F_SETFD, FD_CLOEXEC) }
        return file
    }
}
