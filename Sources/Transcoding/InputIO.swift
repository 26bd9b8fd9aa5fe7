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
        context = try DescriptorAVIO.context(
            opaque: Unmanaged.passUnretained(self).toOpaque(), writable: false,
            read: { opaque, buf, size in Unmanaged<InputIO>.fromOpaque(opaque!).takeUnretainedValue().read(buf!, Int(size)) },
            write: nil,
            seek: { opaque, offset, whence in
                Unmanaged<InputIO>.fromOpaque(opaque!).takeUnretainedValue().seek(offset, whence)
            })
    }

    deinit {
        if context != nil { DescriptorAVIO.free(context) }
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
        return Int32(n)
    }

    private func seek(_ target: Int64, _ whence: Int32) -> Int64 {
        DescriptorAVIO.seek(fd, offset: &offset, to: target, whence: whence)
    }
}
