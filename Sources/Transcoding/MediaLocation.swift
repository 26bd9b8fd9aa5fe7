/// Where a transcode reads or writes: a path, or an open descriptor (the service passes anonymous temp files).
public enum MediaLocation: Sendable, Equatable {
    case path(String)
    /// A descriptor the caller keeps owning, opened for reading (input) or reading and writing (output); it is
    /// read with `pread` and written with `pwrite`, never reopened by name.
    case fileDescriptor(Int32)

    /// The URL libav's `file` protocol opens for writing (the muxer reopens it to move the moov box first); a
    /// descriptor's is only a name for the logs, since nothing opens it.
    var writableURL: String {
        switch self {
        case .path(let path): "file:" + path
        case .fileDescriptor(let fd): "fd:\(fd)"
        }
    }
}
