import CFFmpeg

/// Decode → filter graph (deinterlace, tone-map, dither, scale: only what the pictures need) → yuv420p (10-bit for
/// HDR kept in HEVC, AV1 or VP9) at even
/// dimensions → the codec's encoder (libx264, libx265, libsvtav1 or libvpx-vp9), keeping every frame and its timestamp.
final class VideoPipeline {
    let input: UnsafeMutablePointer<AVStream>
    let output: UnsafeMutablePointer<AVStream>
    private let decoder: CodecContext
    private let encoder: CodecContext
    private let limits: TranscodeOptions.Limits
    private let startOffset: Int64
    /// Set for a segment of a split job: which frames to keep, and how its timestamps map to the original's.
    private let window: TranscodeOptions.SegmentWindow?
    private let sourceTimeBase: AVRational
    private let decoded: Frame
    /// A segment's latest frame to keep, held back until the next shows whether post-roll follows it.
    private let held: Frame
    private var holding = false
    private var postRollStarted = false
    private var keptPacketsWritten = 0
    private let packet: Packet
    private let filter: VideoFilter
    private var lastPts: Int64?
    /// The last timestamp given to the encoder, which needs them strictly increasing.
    private var lastSentPts: Int64?
    private var framesDecoded = 0
    private var lastDuration: Int64 = 0
    /// Each frame's duration by its timestamp: x264 does not pass durations on, and without them the MP4's last
    /// sample would have none and the video would end one frame early.
    private var durations: [Int64: Int64] = [:]
    private(set) var framesEncoded = 0
    private(set) var decodeErrors = 0
    /// First and last presentation time written, in the encoder's time base, for the report.
    private(set) var firstPts: Int64?
    private(set) var endPts: Int64 = 0
    /// The end of the last packet the encoder gave back, in its time base: how far the output has got.
    private(set) var encodedEndPts: Int64 = 0

    var width: Int32 { encoder.pointer.pointee.width }
    var height: Int32 { encoder.pointer.pointee.height }
    var timeBase: AVRational { encoder.pointer.pointee.time_base }
    /// The threads libavcodec gave the decoder once open: the count asked for, or for 0 its own choice from the CPUs
    /// it may run on. (libx264 keeps its choice to itself, so the decoder's is the one a report can show.)
    var decoderThreads: Int { Int(decoder.pointer.pointee.thread_count) }
    /// The filter stages that ran, e.g. `["bwdif", "tonemap(hlg->bt709)"]`; empty when the pictures went as they were.
    var filterStages: [String] { filter.stagesRun }
    /// The filter chains built, as `ffmpeg -vf` takes them.
    var filterGraphs: [String] { filter.descriptions }
    /// Graphs built after the first.
    var filterRebuilds: Int { filter.rebuilds }

    init(
        stream: UnsafeMutablePointer<AVStream>, demuxer: Demuxer, muxer: Muxer, options: TranscodeOptions,
        startTime: Int64, hdr10: HDR10Metadata? = nil
    ) throws(TranscodeError) {
        input = stream
        limits = options.limits
        let parameters = stream.pointee.codecpar!
        guard let codec = avcodec_find_decoder(parameters.pointee.codec_id) else {
            throw .unsupportedCodec(String(cString: avcodec_get_name(parameters.pointee.codec_id)))
        }
        decoder = try CodecContext(codec)
        try check(avcodec_parameters_to_context(decoder.pointer, parameters), "copying decoder parameters")
        decoder.pointer.pointee.pkt_timebase = stream.pointee.time_base
        decoder.pointer.pointee.thread_count = Int32(options.threads)
        decoder.pointer.pointee.max_pixels = Int64(options.limits.maxPixels)
        do { try decoder.open() } catch .limitExceeded(.memory) {
            throw .limitExceeded(.memory)
        } catch {
            throw .unsupportedCodec(String(cString: avcodec_get_name(parameters.pointee.codec_id)))
        }

        let written = options.videoCodec
        guard let encoderCodec = avcodec_find_encoder_by_name(written.encoderName) else {
            throw .internal(averror: shim_averror_decoder_not_found(), message: "\(written.encoderName) is not available")
        }
        encoder = try CodecContext(encoderCodec)
        let size = outputSize(
            width: Int(parameters.pointee.width), height: Int(parameters.pointee.height),
            maxWidth: options.maxWidth, maxHeight: options.maxHeight)
        let turn = muxer.container == .webm ? PictureTurn(stream) : nil
        let enc = encoder.pointer
        enc.pointee.width = Int32(turn?.swapsSides == true ? size.height : size.width)
        enc.pointee.height = Int32(turn?.swapsSides == true ? size.width : size.height)
        // HDR kept as it is stays 10-bit where the codec has a 10-bit profile every HDR player decodes (HEVC Main 10,
        // AV1 Main, VP9 profile 2); H.264's High 10 plays almost nowhere, so H.264 keeps 8 bits.
        let inputDepth = av_pix_fmt_desc_get(AVPixelFormat(rawValue: parameters.pointee.format)).map { $0.pointee.comp.0.depth } ?? 8
        let tenBit = options.hdr == .keep && written != .h264 && inputDepth > 8
            && HDRTransfer(parameters.pointee.color_trc) != nil
        enc.pointee.pix_fmt = tenBit ? AV_PIX_FMT_YUV420P10LE : AV_PIX_FMT_YUV420P
        // The input's own time base keeps variable frame rate timing exact. A segment takes the original's time
        // base and frame rate, so that its SPS is byte for byte every other segment's.
        window = options.segment
        sourceTimeBase = stream.pointee.time_base
        let timeBase = options.segment?.timeBase.av ?? stream.pointee.time_base
        enc.pointee.time_base = timeBase
        enc.pointee.framerate = options.segment?.frameRate.av ?? av_guess_frame_rate(demuxer.context, stream, nil)
        enc.pointee.sample_aspect_ratio = parameters.pointee.sample_aspect_ratio
        // The tags describe the pixels the graph makes: BT.709 after tone mapping, the input's own otherwise.
        let colour = VideoFilterPlan.outputColour(parameters, options: options)
        enc.pointee.color_range = AVCOL_RANGE_MPEG
        enc.pointee.color_primaries = colour.primaries
        enc.pointee.color_trc = colour.transfer
        enc.pointee.colorspace = colour.matrix
        enc.pointee.thread_count = Int32(options.threads)
        if muxer.needsGlobalHeader { enc.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
        // libvpx's crf is a cap under a bit rate unless the bit rate is 0; libav's default is 200 kb/s.
        if written == .vp9 { enc.pointee.bit_rate = 0 }
        if written == .av1 { RealtimeGuard.dropForThisThread() }
        try encoder.open(options: written.privateOptions(preset: options.preset, crf: options.encoderCRF, hdr10: hdr10))

        output = try muxer.addStream(for: encoder)
        try hdr10?.attach(to: output)
        if muxer.container == .mp4, let tag = written.mp4Tag { output.pointee.codecpar.pointee.codec_tag = tag }
        output.pointee.avg_frame_rate = stream.pointee.avg_frame_rate
        if turn == nil { copyDisplayMatrix(from: stream, to: output) }
        startOffset = options.segment?.origin ?? saneTimestamp(startTime).map {
            saneTimestamp(av_rescale_q($0, shim_time_base_q(), stream.pointee.time_base)) ?? 0
        } ?? 0
        decoded = try Frame()
        held = try Frame()
        packet = try Packet()
        filter = try VideoFilter(
            target: (Int32(size.width), Int32(size.height)), timeBase: timeBase,
            streamFieldOrder: parameters.pointee.field_order, options: options, turn: turn,
            outputFormat: enc.pointee.pix_fmt)
    }

    /// Feeds one demuxed packet (or nil to flush) and encodes every frame it yields.
    func decode(_ input: UnsafeMutablePointer<AVPacket>?, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        let sent = avcodec_send_packet(decoder.pointer, input)
        if sent < 0 && sent != shim_averror_eof() {
            // A damaged packet is skipped, as the ffmpeg CLI does; a file with no good frame fails at the end. Decoders
            // say "damaged" with errno-like codes too (GIF's LZW with -1, EPERM), so only running out of memory ends
            // the job here.
            decodeErrors += 1
            if sent == shim_averror(ENOMEM) { throw control.error(sent, "decoding video") }
            return
        }
        try DecodeLoop.drain(
            receive: { avcodec_receive_frame(decoder.pointer, decoded.pointer) }, control: control,
            errors: &decodeErrors, what: "decoding video"
        ) { () throws(TranscodeError) in
            defer { av_frame_unref(decoded.pointer) }
            try encode(decoded.pointer, muxer: muxer, control: control)
        }
        if input == nil {
            try filter.finish { (frame) throws(TranscodeError) in try send(filtered: frame, muxer: muxer, control: control) }
            try releaseHeld(beforePostRoll: false, muxer: muxer, control: control)
            // A segment's encoder that has given back every frame it keeps still holds post-roll frames, which a
            // flush would encode in full only for them to be dropped: the flush stops once the kept ones are out.
            if !keptAllWritten { try flushEncoder(muxer: muxer, control: control) }
        }
    }

    private func encode(_ frame: UnsafeMutablePointer<AVFrame>, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        guard Int(frame.pointee.width) * Int(frame.pointee.height) <= limits.maxPixels else {
            throw .limitExceeded(.pixels)
        }
        framesDecoded += 1
        guard framesDecoded <= limits.maxFrames else { throw .limitExceeded(.frames) }
        var pts: Int64
        if let window, let given = saneTimestamp(frame.pointee.best_effort_timestamp) {
            // The segment before's frames (open-GOP pre-roll) are not encoded here; the next one's (post-roll) are,
            // and their packets dropped.
            let original = av_rescale_q(given, sourceTimeBase, window.timeBase.av) - window.shift
            guard window.start.map({ original >= $0 }) ?? true else { return }
            pts = original - startOffset
        } else if let given = saneTimestamp(frame.pointee.best_effort_timestamp) {
            pts = given - startOffset
        } else {
            pts = lastPts.map { $0 + max(lastDuration, 1) } ?? 0
        }
        // The muxer needs strictly increasing timestamps, and an MP4 player hides frames before 0 (the edit list
        // starts there); broken inputs give both, so such frames are moved just after the previous one.
        pts = max(pts, (lastPts ?? -1) + 1)
        if let lastPts { lastDuration = saneDuration(pts - lastPts) }
        lastPts = pts
        let seconds = Double(pts) * av_q2d(timeBase)
        guard seconds <= limits.maxDurationSeconds else { throw .limitExceeded(.duration) }
        if !isPostRoll(pts) {
            if firstPts == nil { firstPts = pts }
            let given = window.map { av_rescale_q(frame.pointee.pkt_duration, sourceTimeBase, $0.timeBase.av) }
                ?? frame.pointee.pkt_duration
            let frameDuration = given > 0 ? saneDuration(given) : max(lastDuration, 1)
            endPts = pts + frameDuration
            durations[pts] = frameDuration
        }

        frame.pointee.pts = pts
        try filter.convert(frame) { (filtered) throws(TranscodeError) in
            try send(filtered: filtered, muxer: muxer, control: control)
        }
    }

    private func send(filtered frame: UnsafeMutablePointer<AVFrame>, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        // Filters keep each frame's timestamp; one that came out without one, or out of order, goes just after the last.
        let pts = saneTimestamp(frame.pointee.pts).map { max($0, (lastSentPts ?? -1) + 1) } ?? (lastSentPts ?? -1) + 1
        lastSentPts = pts
        frame.pointee.pts = pts
        frame.pointee.pict_type = AV_PICTURE_TYPE_NONE
        guard window?.end != nil else {
            try send(frame, muxer: muxer, control: control)
            framesEncoded += 1
            return
        }
        if isPostRoll(pts) {
            guard !keptAllWritten else { return }
            try releaseHeld(beforePostRoll: true, muxer: muxer, control: control)
            try send(frame, muxer: muxer, control: control)
        } else {
            try releaseHeld(beforePostRoll: false, muxer: muxer, control: control)
            av_frame_move_ref(held.pointer, frame)
            holding = true
            framesEncoded += 1
        }
    }

    /// Post-roll: the first frames of the next segment, given to the encoder after a segment's own so that x264's
    /// lookahead sees past its end as in the whole-file transcode (its macroblock tree would otherwise starve the
    /// last frames of bits, over 1 dB at the seams). The encoder is flushed after the post-roll and dropped once
    /// every frame kept is back, so the post-roll costs its decode and the lookahead's analysis, not full encodes
    /// (but for any already in x264's frame threads). Topping the lookahead up to its full depth by repeating the
    /// last frame instead, so that the kept frames came out without a flush, cost 1-2 s of a 23 s split upload in
    /// `make bench-split`, for no better seam. The last frame kept is forced to be a P-frame, so that no frame kept
    /// is a B-frame predicted from one dropped.
    private func isPostRoll(_ pts: Int64) -> Bool {
        window?.end.map { pts + startOffset >= $0 } ?? false
    }

    private var keptAllWritten: Bool { postRollStarted && !holding && keptPacketsWritten == framesEncoded }

    private func releaseHeld(beforePostRoll: Bool, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        guard holding else { return }
        holding = false
        if beforePostRoll {
            held.pointer.pointee.pict_type = AV_PICTURE_TYPE_P
            postRollStarted = true
        }
        defer { av_frame_unref(held.pointer) }
        try send(held.pointer, muxer: muxer, control: control)
    }

    private func send(_ frame: UnsafeMutablePointer<AVFrame>?, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        let status = avcodec_send_frame(encoder.pointer, frame)
        if status < 0 { throw control.error(status, "encoding video") }
        while true {
            let received = avcodec_receive_packet(encoder.pointer, packet.pointer)
            if received == shim_averror_eagain() || received == shim_averror_eof() { return }
            if received < 0 { throw control.error(received, "encoding video") }
            if isPostRoll(packet.pointer.pointee.pts) {
                av_packet_unref(packet.pointer)
                continue
            }
            if let duration = durations.removeValue(forKey: packet.pointer.pointee.pts) {
                packet.pointer.pointee.duration = duration
            }
            encodedEndPts = max(encodedEndPts, packet.pointer.pointee.pts + max(packet.pointer.pointee.duration, 0))
            try muxer.write(packet.pointer, from: timeBase, to: output, control: control)
            keptPacketsWritten += 1
            if frame == nil {
                try control.checkpoint()
                if keptAllWritten { return }
            }
        }
    }

    private func flushEncoder(muxer: Muxer, control: JobControl) throws(TranscodeError) {
        try send(nil, muxer: muxer, control: control)
    }
}

/// The output size: the input's, scaled down to fit the maxima keeping the aspect ratio, rounded to even numbers
/// (4:2:0 needs them).
func outputSize(width: Int, height: Int, maxWidth: Int?, maxHeight: Int?) -> (width: Int, height: Int) {
    var factor = 1.0
    if let maxWidth, width > maxWidth { factor = min(factor, Double(maxWidth) / Double(width)) }
    if let maxHeight, height > maxHeight { factor = min(factor, Double(maxHeight) / Double(height)) }
    // Rounded down: an odd 321x241 becomes 320x240, never a stretched 322x242.
    func even(_ value: Double) -> Int { max(2, Int(value.rounded()) & ~1) }
    return (even(Double(width) * factor), even(Double(height) * factor))
}

/// Carries the display rotation over, so that players show the output upright as they did the input.
func copyDisplayMatrix(from input: UnsafeMutablePointer<AVStream>, to output: UnsafeMutablePointer<AVStream>) {
    var size = 0
    guard let matrix = av_stream_get_side_data(input, AV_PKT_DATA_DISPLAYMATRIX, &size), size >= 36,
        let copy = av_stream_new_side_data(output, AV_PKT_DATA_DISPLAYMATRIX, size)
    else { return }
    copy.update(from: matrix, count: size)
}
