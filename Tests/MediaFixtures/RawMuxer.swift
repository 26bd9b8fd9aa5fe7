import CFFmpeg
import Transcoding

/// A plain muxer on a path, for generated files (the transcoder's own `Muxer` is MP4 and faststart only).
final class RawMuxer {
    let context: UnsafeMutablePointer<AVFormatContext>

    init(path: String, format: String) throws(TranscodeError) {
        var allocated: UnsafeMutablePointer<AVFormatContext>? = nil
        try check(avformat_alloc_output_context2(&allocated, nil, format, path), "allocating the \(format) muxer")
        context = allocated!
        let status = avio_open(&context.pointee.pb, path, AVIO_FLAG_WRITE)
        if status < 0 { throw libavError(status, "opening \(path)") }
    }

    deinit {
        if context.pointee.pb != nil { avio_closep(&context.pointee.pb) }
        avformat_free_context(context)
    }

    var needsGlobalHeader: Bool { context.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 }
}
