import CFFmpeg

/// Decode → swresample to the encoder's format → the container's audio (AAC, or Opus in WebM) in frames of the
/// encoder's size, keeping the channel layout.
final class AudioPipeline {
    let input: UnsafeMutablePointer<AVStream>
    let output: UnsafeMutablePointer<AVStream>
    private let decoder: CodecContext
    private let encoder: CodecContext
    private let fifo: AudioFifo
    private let decoded: Frame
    private let chunk: Frame
    private let packet: Packet
    private let startOffset: Int64
    private var resampler: Resampler?
    private var resamplerKey: ResamplerKey?
    /// The next output sample's timestamp, in 1/sample_rate; set by the first decoded frame.
    private var nextPts: Int64?
    private(set) var samplesEncoded: Int64 = 0
    /// Frames the decoder could not decode (skipped: a few milliseconds of silence beat losing the video).
    private(set) var decodeErrors = 0

    var timeBase: AVRational { encoder.pointer.pointee.time_base }

    /// Nil when the audio cannot be decoded here: the video is still worth delivering, as the CLI would with `-an`.
    init?(stream: UnsafeMutablePointer<AVStream>, muxer: Muxer, options: TranscodeOptions, startTime: Int64) throws(TranscodeError) {
        input = stream
        let parameters = stream.pointee.codecpar!
        guard let codec = avcodec_find_decoder(parameters.pointee.codec_id) else { return nil }
        decoder = try CodecContext(codec)
        try check(avcodec_parameters_to_context(decoder.pointer, parameters), "copying decoder parameters")
        decoder.pointer.pointee.pkt_timebase = stream.pointee.time_base
        // Audio that cannot be decoded is dropped; audio that does not fit in the job's memory is not.
        do { try decoder.open() } catch .limitExceeded(.memory) { throw .limitExceeded(.memory) } catch { return nil }
        guard decoder.pointer.pointee.sample_rate > 0 else { return nil }

        let name = muxer.container.audioEncoderName
        guard let codec = avcodec_find_encoder_by_name(name) else {
            throw .internal(averror: shim_averror_decoder_not_found(), message: "the \(name) encoder is not available")
        }
        encoder = try CodecContext(codec)
        let enc = encoder.pointer
        enc.pointee.sample_fmt = preferredFormat(codec.pointee.sample_fmts)
        enc.pointee.sample_rate = closestRate(decoder.pointer.pointee.sample_rate, supported: codec.pointee.supported_samplerates)
        try chooseLayout(for: enc, from: decoder.pointer, supported: codec.pointee.ch_layouts)
        enc.pointee.time_base = AVRational(num: 1, den: enc.pointee.sample_rate)
        if muxer.needsGlobalHeader { enc.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
        // No bit rate set: the encoder's own default is what the CLI uses (AAC 128 kb/s, Opus 96 kb/s for stereo).
        try encoder.open()

        output = try muxer.addStream(for: encoder)
        fifo = try AudioFifo(format: enc.pointee.sample_fmt, channels: enc.pointee.ch_layout.nb_channels)
        decoded = try Frame()
        chunk = try Frame()
        packet = try Packet()
        startOffset = saneTimestamp(startTime).map {
            saneTimestamp(av_rescale_q($0, shim_time_base_q(), stream.pointee.time_base)) ?? 0
        } ?? 0
    }

    func decode(_ input: UnsafeMutablePointer<AVPacket>?, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        let sent = avcodec_send_packet(decoder.pointer, input)
        // Damaged audio is skipped: losing a few milliseconds of sound is better than losing the video.
        if sent < 0 && sent != shim_averror_eof() { return }
        try DecodeLoop.drain(
            receive: { avcodec_receive_frame(decoder.pointer, decoded.pointer) }, control: control,
            errors: &decodeErrors, what: "decoding audio"
        ) { () throws(TranscodeError) in
            defer { av_frame_unref(decoded.pointer) }
            try resample(decoded.pointer)
            try drain(minimum: encoder.pointer.pointee.frame_size, muxer: muxer, control: control)
        }
        if input == nil {
            try resample(nil)
            try drain(minimum: 1, muxer: muxer, control: control)
            try send(nil, muxer: muxer, control: control)
        }
    }

    /// Converts one decoded frame (nil: what the resampler still holds) into the FIFO.
    private func resample(_ frame: UnsafeMutablePointer<AVFrame>?) throws(TranscodeError) {
        let enc = encoder.pointer
        if let frame {
            let layout = frame.pointee.ch_layout
            let key = ResamplerKey(
                format: frame.pointee.format, rate: frame.pointee.sample_rate, channels: layout.nb_channels,
                order: layout.order.rawValue, mask: layout.order == AV_CHANNEL_ORDER_NATIVE ? layout.u.mask : 0)
            // Damaged streams can change format, rate or channels mid-way; a frame that does not fit the resampler
            // would make it read planes that are not there.
            guard key.rate > 0, (1...64).contains(key.channels), frame.pointee.nb_samples > 0 else { return }
            if key != resamplerKey { resampler = nil }
            if resampler == nil {
                resamplerKey = key
                var layout = AVChannelLayout()
                defer { av_channel_layout_uninit(&layout) }
                if frame.pointee.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || frame.pointee.ch_layout.nb_channels == 0 {
                    av_channel_layout_default(&layout, max(frame.pointee.ch_layout.nb_channels, decoder.pointer.pointee.ch_layout.nb_channels))
                } else {
                    try check(av_channel_layout_copy(&layout, &frame.pointee.ch_layout), "copying a channel layout")
                }
                // A layout or format swresample refuses (damaged audio) skips the frame, as an undecodable one.
                guard let made = try? Resampler(
                    inputLayout: &layout, inputFormat: AVSampleFormat(rawValue: frame.pointee.format),
                    inputRate: frame.pointee.sample_rate, outputLayout: &enc.pointee.ch_layout,
                    outputFormat: enc.pointee.sample_fmt, outputRate: enc.pointee.sample_rate)
                else {
                    resamplerKey = nil
                    return
                }
                resampler = made
                if nextPts == nil {
                    nextPts = saneTimestamp(frame.pointee.best_effort_timestamp).map {
                        min(max(0, av_rescale_q($0 - startOffset, input.pointee.time_base, timeBase)), timestampBound)
                    } ?? 0
                }
            }
        }
        guard let resampler else { return }
        let inputSamples = frame?.pointee.nb_samples ?? 0
        let delay = swr_get_delay(resampler.pointer, Int64(enc.pointee.sample_rate))
        let converted = av_rescale(Int64(inputSamples), Int64(enc.pointee.sample_rate), Int64(max(frame?.pointee.sample_rate ?? 1, 1)))
        // A damaged frame can claim absurd sizes; more than a few seconds of sound at once is not audio.
        guard delay >= 0, converted >= 0, delay + converted < 1 << 22 else { return }
        let capacity = Int32(delay + converted) + 32
        let buffer = try Frame()
        buffer.pointer.pointee.format = enc.pointee.sample_fmt.rawValue
        buffer.pointer.pointee.nb_samples = capacity
        try check(av_channel_layout_copy(&buffer.pointer.pointee.ch_layout, &enc.pointee.ch_layout), "copying a channel layout")
        try check(av_frame_get_buffer(buffer.pointer, 0), "allocating audio")
        let written = swr_convert(
            resampler.pointer, buffer.pointer.pointee.extended_data, capacity,
            frame.map { UnsafeMutableRawPointer($0.pointee.extended_data!).assumingMemoryBound(to: UnsafePointer<UInt8>?.self) },
            inputSamples)
        // swresample refuses what it cannot convert; like a damaged packet, that sound is skipped.
        if written > 0 {
            let planes = UnsafeMutableRawPointer(buffer.pointer.pointee.extended_data!)
                .assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
            guard av_audio_fifo_write(fifo.pointer, planes, written) == written else {
                throw .allocationFailed("av_audio_fifo_write")
            }
        }
    }

    /// Encodes full frames from the FIFO; with `minimum` 1 the short last frame goes too.
    private func drain(minimum: Int32, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        let frameSize = encoder.pointer.pointee.frame_size
        while fifo.count >= max(minimum, 1) {
            let samples = min(fifo.count, frameSize)
            av_frame_unref(chunk.pointer)
            chunk.pointer.pointee.nb_samples = samples
            chunk.pointer.pointee.format = encoder.pointer.pointee.sample_fmt.rawValue
            chunk.pointer.pointee.sample_rate = encoder.pointer.pointee.sample_rate
            try check(av_channel_layout_copy(&chunk.pointer.pointee.ch_layout, &encoder.pointer.pointee.ch_layout), "copying a channel layout")
            try check(av_frame_get_buffer(chunk.pointer, 0), "allocating audio")
            let planes = UnsafeMutableRawPointer(chunk.pointer.pointee.extended_data!)
                .assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
            guard av_audio_fifo_read(fifo.pointer, planes, samples) == samples else {
                throw .internal(averror: shim_averror(EIO), message: "av_audio_fifo_read")
            }
            silenceDamage(chunk.pointer)
            chunk.pointer.pointee.pts = nextPts ?? 0
            nextPts = (nextPts ?? 0) + Int64(samples)
            try send(chunk.pointer, muxer: muxer, control: control)
            samplesEncoded += Int64(samples)
        }
    }

    private func send(_ frame: UnsafeMutablePointer<AVFrame>?, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        let status = avcodec_send_frame(encoder.pointer, frame)
        if status < 0 { throw control.error(status, "encoding audio") }
        while true {
            let received = avcodec_receive_packet(encoder.pointer, packet.pointer)
            if received == shim_averror_eagain() || received == shim_averror_eof() { return }
            if received < 0 { throw control.error(received, "encoding audio") }
            try muxer.write(packet.pointer, from: timeBase, to: output, control: control)
        }
    }
}

/// Damaged input can decode to NaN, infinities or samples so loud that the AAC encoder's transform overflows; it then
/// refuses the frame ("Input contains (near) NaN/+-Inf", EINVAL), which would fail the job. Such samples are damage,
/// not sound, and become silence.
private func silenceDamage(_ frame: UnsafeMutablePointer<AVFrame>) {
    let format = AVSampleFormat(rawValue: frame.pointee.format)
    guard format == AV_SAMPLE_FMT_FLTP || format == AV_SAMPLE_FMT_FLT else { return }
    let channels = Int(frame.pointee.ch_layout.nb_channels)
    let planar = format == AV_SAMPLE_FMT_FLTP
    let count = Int(frame.pointee.nb_samples) * (planar ? 1 : channels)
    for plane in 0..<(planar ? channels : 1) {
        guard let data = frame.pointee.extended_data[plane] else { continue }
        data.withMemoryRebound(to: Float.self, capacity: count) { samples in
            // Full scale is 1; NaN fails the comparison too.
            for i in 0..<count where !(abs(samples[i]) <= 65536) { samples[i] = 0 }
        }
    }
}

/// Float when the encoder takes it (libopus lists s16 first, which would cost precision for nothing), else its first.
private func preferredFormat(_ formats: UnsafePointer<AVSampleFormat>?) -> AVSampleFormat {
    guard var cursor = formats else { return AV_SAMPLE_FMT_FLTP }
    let first = cursor.pointee
    while cursor.pointee != AV_SAMPLE_FMT_NONE {
        if cursor.pointee == AV_SAMPLE_FMT_FLTP || cursor.pointee == AV_SAMPLE_FMT_FLT { return cursor.pointee }
        cursor += 1
    }
    return first
}

/// The input's rate when the encoder supports it, else the nearest one it does (as the CLI chooses).
private func closestRate(_ rate: Int32, supported: UnsafePointer<Int32>?) -> Int32 {
    guard var cursor = supported else { return rate }
    var best: Int32 = 0
    while cursor.pointee != 0 {
        if best == 0 || abs(cursor.pointee - rate) < abs(best - rate) { best = cursor.pointee }
        cursor += 1
    }
    return best == 0 ? rate : best
}

/// The decoder's layout when the encoder takes it, else the default layout for as many channels, else stereo.
private func chooseLayout(
    for encoder: UnsafeMutablePointer<AVCodecContext>, from decoder: UnsafeMutablePointer<AVCodecContext>,
    supported: UnsafePointer<AVChannelLayout>?
) throws(TranscodeError) {
    var wanted = AVChannelLayout()
    defer { av_channel_layout_uninit(&wanted) }
    let channels = decoder.pointee.ch_layout.nb_channels
    if decoder.pointee.ch_layout.order == AV_CHANNEL_ORDER_NATIVE {
        try check(av_channel_layout_copy(&wanted, &decoder.pointee.ch_layout), "copying a channel layout")
    } else {
        av_channel_layout_default(&wanted, max(channels, 1))
    }
    if var cursor = supported {
        var found = false
        while cursor.pointee.nb_channels != 0 {
            if av_channel_layout_compare(cursor, &wanted) == 0 { found = true; break }
            cursor += 1
        }
        if !found {
            av_channel_layout_uninit(&wanted)
            av_channel_layout_default(&wanted, 2)
        }
    }
    try check(av_channel_layout_copy(&encoder.pointee.ch_layout, &wanted), "copying a channel layout")
}

/// What a resampler was set up for: frames that differ need a new one.
private struct ResamplerKey: Equatable {
    var format: Int32
    var rate: Int32
    var channels: Int32
    var order: UInt32
    var mask: UInt64
}
