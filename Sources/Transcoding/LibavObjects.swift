import CFFmpeg

// One owning class per libav object: `deinit` frees it exactly once, so every error path is also a cleanup path.
// Packet, Frame and CodecContext are `package`: the generated test clips (MediaFixtures) encode with them.

package final class Packet {
    package let pointer: UnsafeMutablePointer<AVPacket>

    package init() throws(TranscodeError) {
        guard let packet = av_packet_alloc() else { throw .allocationFailed("av_packet_alloc") }
        pointer = packet
    }

    deinit {
        var packet: UnsafeMutablePointer<AVPacket>? = pointer
        av_packet_free(&packet)
    }
}

package final class Frame {
    package let pointer: UnsafeMutablePointer<AVFrame>

    package init() throws(TranscodeError) {
        guard let frame = av_frame_alloc() else { throw .allocationFailed("av_frame_alloc") }
        pointer = frame
    }

    deinit {
        var frame: UnsafeMutablePointer<AVFrame>? = pointer
        av_frame_free(&frame)
    }
}

package final class CodecContext {
    package let pointer: UnsafeMutablePointer<AVCodecContext>
    let codec: UnsafePointer<AVCodec>

    package init(_ codec: UnsafePointer<AVCodec>) throws(TranscodeError) {
        guard let context = avcodec_alloc_context3(codec) else {
            throw .allocationFailed("avcodec_alloc_context3")
        }
        self.codec = codec
        pointer = context
    }

    deinit {
        var context: UnsafeMutablePointer<AVCodecContext>? = pointer
        avcodec_free_context(&context)
    }

    /// Opens the codec with private options (e.g. x264's preset and crf); options it did not take are an error.
    package func open(options: [String: String] = [:]) throws(TranscodeError) {
        var dictionary: OpaquePointer? = nil
        defer { av_dict_free(&dictionary) }
        for (key, value) in options { av_dict_set(&dictionary, key, value, 0) }
        let status = avcodec_open2(pointer, codec, &dictionary)
        // Opening starts the codec's frame or slice threads, and pthread_create answers EAGAIN when a thread's stack
        // does not fit in the address space left.
        if status == shim_averror_eagain() && JobMemory.declaredLimit != nil { throw .limitExceeded(.memory) }
        try check(status, "opening \(String(cString: codec.pointee.name))")
    }
}

final class BitstreamFilter {
    let pointer: UnsafeMutablePointer<AVBSFContext>

    /// `name` set up for packets of a stream with these parameters and time base.
    init(_ name: String, parameters: UnsafePointer<AVCodecParameters>, timeBase: AVRational) throws(TranscodeError) {
        guard let filter = av_bsf_get_by_name(name) else {
            throw .internal(averror: shim_averror(ENOSYS), message: "the \(name) bitstream filter is not available")
        }
        var allocated: UnsafeMutablePointer<AVBSFContext>? = nil
        try check(av_bsf_alloc(filter, &allocated), "allocating \(name)")
        guard let allocated else { throw .allocationFailed("av_bsf_alloc") }
        pointer = allocated
        try check(avcodec_parameters_copy(pointer.pointee.par_in, parameters), "copying \(name) parameters")
        pointer.pointee.time_base_in = timeBase
        try check(av_bsf_init(pointer), "initialising \(name)")
    }

    deinit {
        var context: UnsafeMutablePointer<AVBSFContext>? = pointer
        av_bsf_free(&context)
    }
}

final class Resampler {
    let pointer: OpaquePointer

    init(
        inputLayout: inout AVChannelLayout, inputFormat: AVSampleFormat, inputRate: Int32,
        outputLayout: inout AVChannelLayout, outputFormat: AVSampleFormat, outputRate: Int32
    ) throws(TranscodeError) {
        var context: OpaquePointer? = nil
        try check(
            swr_alloc_set_opts2(
                &context, &outputLayout, outputFormat, outputRate, &inputLayout, inputFormat, inputRate, 0, nil),
            "swr_alloc_set_opts2")
        guard let context else { throw .allocationFailed("swr_alloc_set_opts2") }
        pointer = context
        try check(swr_init(context), "swr_init")
    }

    deinit {
        var context: OpaquePointer? = pointer
        swr_free(&context)
    }
}

final class AudioFifo {
    let pointer: OpaquePointer

    init(format: AVSampleFormat, channels: Int32) throws(TranscodeError) {
        guard let fifo = av_audio_fifo_alloc(format, channels, 4096) else {
            throw .allocationFailed("av_audio_fifo_alloc")
        }
        pointer = fifo
    }

    deinit { av_audio_fifo_free(pointer) }

    var count: Int32 { av_audio_fifo_size(pointer) }
}
