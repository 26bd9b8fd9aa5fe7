import CFFmpeg
import Glibc
import SystemSupport

/// What `InputIO` and `OutputIO` share: an AVIOContext over one of our descriptors, made and freed in one way, and
/// its seek callback's arithmetic on the descriptor's position.
enum DescriptorAVIO {
    static let bufferSize: Int32 = 64 * 1024

    /// A context over a fresh libav buffer; `opaque` is the owning object, which frees the context with `free`.
    static func context(
        opaque: UnsafeMutableRawPointer, writable: Bool,
        read: (@convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt8>?, Int32) -> Int32)?,
        write: (@convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt8>?, Int32) -> Int32)?,
        seek: @convention(c) (UnsafeMutableRawPointer?, Int64, Int32) -> Int64
    ) throws(TranscodeError) -> UnsafeMutablePointer<AVIOContext> {
        guard let buffer = av_malloc(Int(bufferSize)) else {
            throw .allocationFailed("av_malloc")
        }
        guard let io = avio_alloc_context(
            buffer.assumingMemoryBound(to: UInt8.self), bufferSize, writable ? 1 : 0, opaque, read, write, seek)
        else {
            av_free(buffer)
            throw .allocationFailed("avio_alloc_context")
        }
        return io
    }

    /// libav may have swapped the buffer for a larger one: whichever it holds now is freed with the context.
    static func free(_ context: UnsafeMutablePointer<AVIOContext>) {
        av_freep(&context.pointee.buffer)
        var io: UnsafeMutablePointer<AVIOContext>? = context
        avio_context_free(&io)
    }

    /// The seek callback on `fd`: moves `offset` and answers the new position, or with AVSEEK_SIZE the size (at
    /// least `sizeAtLeast`, for a file whose last bytes may still be in the context's buffer); a negative AVERROR
    /// on failure.
    static func seek(_ fd: Int32, offset: inout Int64, to target: Int64, whence: Int32, sizeAtLeast: Int64 = 0) -> Int64 {
        if whence & AVSEEK_SIZE != 0 { return (try? fileSize(of: fd)).map { max($0, sizeAtLeast) } ?? Int64(shim_averror(EIO)) }
        let base: Int64
        switch whence & ~AVSEEK_FORCE {
        case SEEK_SET: base = 0
        case SEEK_CUR: base = offset
        case SEEK_END:
            guard let end = try? fileSize(of: fd) else { return Int64(shim_averror(EIO)) }
            base = end
        default: return Int64(shim_averror(EINVAL))
        }
        let (position, overflow) = base.addingReportingOverflow(target)
        guard !overflow, position >= 0 else { return Int64(shim_averror(EINVAL)) }
        offset = position
        return position
    }
}
