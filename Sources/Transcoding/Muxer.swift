import CFFmpeg
import Glibc

/// The output file, opened through the `file` protocol only, with its index at the front so that a player can start
/// and seek before it has the whole file: MP4 with `+faststart` (moov before mdat), WebM with `cues_to_front`.
final class Muxer {
    let context: UnsafeMutablePointer<AVFormatContext>
    let container: Container
    private var closed = false
    /// The opaque of the context's interrupt callback. libav calls it until the end, `avio_closep` in deinit included,
    /// so the muxer keeps it alive rather than trusting the caller to outlive it.
    private let control: JobControl
    /// The descriptor's writer, when the output is a descriptor rather than a path.
    private let output: OutputIO?

    init(_ location: MediaLocation, container: Container, control: JobControl) throws(TranscodeError) {
        self.control = control
        self.container = container
        // A descriptor is written through OutputIO, which opens nothing by name: the worker process may not.
        if case .fileDescriptor(let fd) = location { output = try OutputIO(fd: fd, control: control) } else { output = nil }
        var allocated: UnsafeMutablePointer<AVFormatContext>? = nil
        let url = location.writableURL
        try check(avformat_alloc_output_context2(&allocated, nil, container.rawValue, url), "allocating the muxer")
        guard let allocated else { throw .allocationFailed("avformat_alloc_output_context2") }
        context = allocated
        // The muxer reopens its own output to move the moov box or the cues; nothing but a plain file may be opened.
        context.pointee.protocol_whitelist = av_strdup("file")
        context.pointee.interrupt_callback = control.interruptCallback
        if let output {
            context.pointee.pb = output.context
            // `+faststart` and `cues_to_front` read the output back through `io_open`; OutputIO serves it from the same descriptor.
            context.pointee.opaque = Unmanaged.passUnretained(output).toOpaque()
            context.pointee.io_open = { context, pb, _, flags, _ in
                Unmanaged<OutputIO>.fromOpaque(context!.pointee.opaque).takeUnretainedValue().openReader(pb!, flags: flags)
            }
            context.pointee.io_close2 = { context, pb in
                Unmanaged<OutputIO>.fromOpaque(context!.pointee.opaque).takeUnretainedValue().closeReader(pb)
            }
            return
        }
        var callback = control.interruptCallback
        var options: OpaquePointer? = nil
        defer { av_dict_free(&options) }
        av_dict_set(&options, "protocol_whitelist", "file", 0)
        let status = avio_open2(&context.pointee.pb, url, AVIO_FLAG_WRITE, &callback, &options)
        if status < 0 { throw control.error(status, "opening the output") }
    }

    deinit {
        if output != nil {
            // OutputIO frees its own context; libav must not close it as if it had opened it.
            context.pointee.pb = nil
        } else if !closed, context.pointee.pb != nil {
            avio_closep(&context.pointee.pb)
        }
        avformat_free_context(context)
    }

    var needsGlobalHeader: Bool { context.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 }

    /// A new output stream carrying the encoder's parameters.
    func addStream(for encoder: CodecContext) throws(TranscodeError) -> UnsafeMutablePointer<AVStream> {
        guard let stream = avformat_new_stream(context, nil) else {
            throw .allocationFailed("avformat_new_stream")
        }
        try check(avcodec_parameters_from_context(stream.pointee.codecpar, encoder.pointer), "copying encoder parameters")
        stream.pointee.time_base = encoder.pointer.pointee.time_base
        return stream
    }

    /// A new output stream carrying an input stream's parameters, for packets copied as they are; `extradata`
    /// replaces the input's.
    func addStream(
        copying parameters: UnsafePointer<AVCodecParameters>, timeBase: AVRational, extradata: [UInt8]? = nil
    ) throws(TranscodeError) -> UnsafeMutablePointer<AVStream> {
        guard let stream = avformat_new_stream(context, nil) else {
            throw .allocationFailed("avformat_new_stream")
        }
        let output = stream.pointee.codecpar!
        try check(avcodec_parameters_copy(output, parameters), "copying stream parameters")
        // The input container's tag (AVI's, Matroska's) means nothing here; the muxer picks its own.
        output.pointee.codec_tag = 0
        if let extradata {
            av_freep(&output.pointee.extradata)
            output.pointee.extradata_size = 0
            guard let buffer = av_mallocz(extradata.count + Int(AV_INPUT_BUFFER_PADDING_SIZE)) else {
                throw .allocationFailed("av_mallocz")
            }
            buffer.copyMemory(from: extradata, byteCount: extradata.count)
            output.pointee.extradata = buffer.assumingMemoryBound(to: UInt8.self)
            output.pointee.extradata_size = Int32(extradata.count)
        }
        stream.pointee.time_base = timeBase
        return stream
    }

    func writeHeader(control: JobControl) throws(TranscodeError) {
        var options: OpaquePointer? = nil
        defer { av_dict_free(&options) }
        switch container {
        case .mp4: av_dict_set(&options, "movflags", "+faststart", 0)
        // Written at the end, then the clusters shifted after them: the size of the cues is not known before.
        case .webm: av_dict_set(&options, "cues_to_front", "1", 0)
        }
        let status = avformat_write_header(context, &options)
        if status < 0 { throw control.error(status, "writing the \(container.rawValue) header") }
    }

    /// Rescales the packet from its encoder's time base to the stream's and hands it to the interleaver.
    func write(
        _ packet: UnsafeMutablePointer<AVPacket>, from timeBase: AVRational, to stream: UnsafeMutablePointer<AVStream>,
        control: JobControl
    ) throws(TranscodeError) {
        av_packet_rescale_ts(packet, timeBase, stream.pointee.time_base)
        packet.pointee.stream_index = stream.pointee.index
        let status = av_interleaved_write_frame(context, packet)
        if status < 0 { throw control.error(status, "writing a packet") }
    }

    /// Writes the trailer (and the rewrite that moves the index to the front), then closes the file so a full disk is reported here.
    func finish(control: JobControl) throws(TranscodeError) {
        let status = av_write_trailer(context)
        if status < 0 { throw control.error(status, "writing the \(container.rawValue) trailer") }
        closed = true
        let closing = output?.flush() ?? avio_closep(&context.pointee.pb)
        if closing < 0 { throw control.error(closing, "closing the output") }
    }
}
