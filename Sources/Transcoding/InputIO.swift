import CFFmpeg
import Glibc
import SystemSupport

/// A read-only AVIOContext over a descriptor. libav never opens anything by name for input: no protocols, no
/// nested files from playlists, only these bytes.
final class InputIO {
    private(set) var context: UnsafeMutablePointer<AVIOContext>!
    private let fd: Int32
    /// Set when this object opened the file (from a path) and so must close it.
    private let opened: OwnedDescriptor?
    private var offset: Int64 = 0
    private let control: JobControl
    /// Bytes handed to libav, for the report.
    private(set) var bytesRead: Int64 = 0

    init(_ location: MediaLocation, control: JobControl) throws(TranscodeError) {
        switch location {
        case .path(let path):
            let file: OwnedDescriptor
            do {
                file = OwnedDescriptor(taking: try syscallValue("open") { open(path, O_RDONLY | O_CLOEXEC) })
            } catch {
                throw .io(error.errno)
            }
            fd = file.rawValue
            opened = consume file
        case .fileDescriptor(let fd):
            self.fd = fd
            opened = nil
        }
        self.control = control
        // From here `self` is whole, so a throw runs deinit, which closes what was opened.
        let bufferSize: Int32 = 64 * 1024
        guard let buffer = av_malloc(Int(bufferSize)) else {
            throw .internal(averror: shim_averror(ENOMEM), message: "av_malloc")
        }
        guard let io = avio_alloc_context(
            buffer.assumingMemoryBound(to: UInt8.self), bufferSize, 0, Unmanaged.passUnretained(self).toOpaque(),
            { opaque, buf, size in Unmanaged<InputIO>.fromOpaque(opaque!).takeUnretainedValue().read(buf!, Int(size)) },
            nil,
            { opaque, offset, whence in
                Unmanaged<InputIO>.fromOpaque(opaque!).takeUnretainedValue().seek(offset, whence)
            }
        ) else {
            av_free(buffer)
            throw .internal(averror: shim_averror(ENOMEM), message: "avio_alloc_context")
        }
        context = io
    }

    deinit {
        // libav may have swapped the buffer for a larger one; free whichever it holds now.
        if context != nil {
            av_freep(&context.pointee.buffer)
            var io: UnsafeMutablePointer<AVIOContext>? = context
            avio_context_free(&io)
        }
    }

    private func read(_ buffer: UnsafeMutablePointer<UInt8>, _ size: Int) -> Int32 {
        if control.shouldStop() != nil { return shim_averror_exit() }
        let n: Int
        do {
            n = try syscallValue("pread") { pread(fd, buffer, size, off_t(offset)) }
        } catch {
            return shim_averror(error.errno.rawValue)
        }
        if n == 0 { return shim_averror_eof() }
        offset += Int64(n)
        bytesRead += Int64(n)
        return Int32(n)
    }

    private func seek(_ target: Int64, _ whence: Int32) -> Int64 {
        if whence & AVSEEK_SIZE != 0 {
            var info = stat()
            return fstat(fd, &info) == 0 ? Int64(info.st_size) : Int64(shim_averror(errno))
        }
        let base: Int64
        switch whence & ~AVSEEK_FORCE {
        case SEEK_SET: base = 0
        case SEEK_CUR: base = offset
        case SEEK_END:
            var info = stat()
            guard fstat(fd, &info) == 0 else { return Int64(shim_averror(errno)) }
            base = Int64(info.st_size)
        default: return Int64(shim_averror(EINVAL))
        }
        let (position, overflow) = base.addingReportingOverflow(target)
        guard !overflow, position >= 0 else { return Int64(shim_averror(EINVAL)) }
        offset = position
        return position
    }
}
