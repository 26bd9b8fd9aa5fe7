import SystemSupport

/// Why a temp file could not be made or written.
public enum TempFileError: Error, Equatable, Sendable {
    /// ENOSPC or EDQUOT: the service answers 507.
    case diskFull
    case io(Errno)

    public init(_ errno: Errno) {
        self = errno.isDiskFull ? .diskFull : .io(errno)
    }
}

/// An anonymous file in the temp directory (`OwnedDescriptor.anonymousFile`): it has no name and vanishes with its
/// last descriptor, even when the process is killed. Nothing about it is ever named from a request.
public final class TempFile: @unchecked Sendable {
    // One task uses a TempFile at a time (it is handed over, never shared), hence @unchecked.
    private var file: OwnedDescriptor?
    public private(set) var size: Int64 = 0

    public init(directory: String) throws(TempFileError) {
        do {
            file = try OwnedDescriptor.anonymousFile(in: directory)
        } catch {
            throw TempFileError(error.errno)
        }
    }

    /// Counts `count` bytes appended through the descriptor (the server writes the upload; see Routes).
    public func appended(_ count: Int64) { size += count }

    /// Hands the descriptor over (to the HTTP server, which closes it after sending); this object forgets it.
    public func take() -> Int32 {
        guard let file = file.take() else { preconditionFailure("TempFile.take() twice") }
        return file.release()
    }

    /// The descriptor, still owned by this object.
    public var borrowedDescriptor: Int32 {
        guard let descriptor = file?.rawValue else { preconditionFailure("TempFile used after take()") }
        return descriptor
    }
}
