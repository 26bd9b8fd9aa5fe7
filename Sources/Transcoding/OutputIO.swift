import CFFmpeg
import Glibc
import SystemSupport

/// A write-and-seek AVIOContext over a descriptor the caller owns: the muxer writes the MP4 through it and, for
/// `+faststart`, reads its own output back through a reader this object opens over the same descriptor. Nothing is
/// opened by name, so a process whose system-call filter forbids opening files (the service's worker) can write it.
final class OutputIO {
    private(set) var context: UnsafeMutablePointer<AVIOContext>!
    private let fd: Int32
    private var offset: Int64 = 0
    private let control: JobControl
    /// The readers the muxer asked for through `io_open` and has not closed yet.
    private var readers: [InputIO] = []

    init(fd: Int32, control: JobControl) throws(TranscodeError) {
        self.fd = fd
        self.control = control
        context = try DescriptorAVIO.context(
            opaque: Unmanaged.passUnretained(self).toOpaque(), writable: true, read: nil,
            write: { opaque, buf, size in
                Unmanaged<OutputIO>.fromOpaque(opaque!).takeUnretainedValue().write(UnsafeRawPointer(buf!), Int(size))
            },
            seek: { opaque, offset, whence in
                Unmanaged<OutputIO>.fromOpaque(opaque!).takeUnretainedValue().seek(offset, whence)
            })
    }

    deinit {
        readers.removeAll()
        DescriptorAVIO.free(context)
    }

    /// Writes what libav still buffers; a failed write anywhere before is reported here.
    func flush() -> Int32 {
        avio_flush(context)
        return context.pointee.error
    }

    /// `io_open` for the muxer's second pass: a read-only view of what was written so far.
    func openReader(_ pb: UnsafeMutablePointer<UnsafeMutablePointer<AVIOContext>?>, flags: Int32) -> Int32 {
        guard flags & AVIO_FLAG_WRITE == 0 else { return shim_averror(EPERM) }
        do {
            let reader = try InputIO(.fileDescriptor(fd), control: control)
            readers.append(reader)
            pb.pointee = reader.context
            return 0
        } catch {
            return shim_averror(ENOMEM)
        }
    }

    /// `io_close2` for a reader `openReader` made.
    func closeReader(_ pb: UnsafeMutablePointer<AVIOContext>?) -> Int32 {
        readers.removeAll { $0.context == pb }
        return 0
    }

    private func write(_ buffer: UnsafeRawPointer, _ size: Int) -> Int32 {
        var done = 0
        while done < size {
            do {
                done += try syscallValue("pwrite") { pwrite(fd, buffer + done, size - done, off_t(offset) + off_t(done)) }
            } catch {
                return shim_averror(error.errno.rawValue)
            }
        }
        offset += Int64(size)
        return Int32(size)
    }

    private func seek(_ target: Int64, _ whence: Int32) -> Int64 {
        // What is written but still in the context's buffer counts towards the size.
        DescriptorAVIO.seek(fd, offset: &offset, to: target, whence: whence, sizeAtLeast: offset)
    }
}
