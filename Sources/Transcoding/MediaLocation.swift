/// Where a transcode reads or writes: a path, or an open descriptor (the service passes anonymous temp files).
public enum MediaLocation: Sendable, Equatable {
    case path(String)
    /// A descriptor the caller keeps owning; it is read with `pread`, or reopened through `/proc/self/fd` to write.
    case fileDescriptor(Int32)

    /// The URL libav's `file` protocol opens for writing (the muxer reopens it to move the moov box first).
    var writableURL: String {
        switch self {
        case .path(let path): "file:" + path
        case .fileDescriptor(let fd): "file:/proc/self/fd/\(fd)"
        }
    }
}
