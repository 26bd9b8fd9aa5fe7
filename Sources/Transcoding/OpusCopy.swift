import CFFmpeg

/// Puts Opus packets into the WebM as they are, as `AudioCopy` does AAC in MP4: the sound unchanged, for the cost of
/// a copy. Each packet's length comes from its own TOC byte (RFC 6716 §3.1), not from the input container's
/// durations, which Matroska rounds to milliseconds.
final class OpusCopy: AudioOutput {
    let input: UnsafeMutablePointer<AVStream>
    let output: UnsafeMutablePointer<AVStream>
    private(set) var samplesWritten: Int64 = 0
    /// Opus always counts 48 kHz samples, whatever the input's rate.
    private let timeBase = AVRational(num: 1, den: 48000)
    private let startOffset: Int64
    private var timeline: CopyTimeline

    var isCopy: Bool { true }

    /// Nil unless the stream is Opus with its identification header (OpusHead, 19 bytes at least), which WebM needs.
    init?(stream: UnsafeMutablePointer<AVStream>, muxer: Muxer, options: TranscodeOptions, startTime: Int64) throws(TranscodeError) {
        let parameters = stream.pointee.codecpar!
        guard parameters.pointee.codec_id == AV_CODEC_ID_OPUS, parameters.pointee.extradata_size >= 19 else { return nil }
        input = stream
        output = try muxer.addStream(copying: parameters, timeBase: timeBase)
        startOffset = saneTimestamp(startTime).map {
            saneTimestamp(av_rescale_q($0, shim_time_base_q(), stream.pointee.time_base)) ?? 0
        } ?? 0
        timeline = CopyTimeline(sampleRate: 48000, maxSeconds: options.limits.maxDurationSeconds)
    }

    func process(_ packet: UnsafeMutablePointer<AVPacket>?, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        guard let packet, let data = packet.pointee.data, packet.pointee.size > 0,
            let duration = opusPacketSamples(UnsafeBufferPointer(start: data, count: Int(packet.pointee.size)))
        else { return }
        // Skip-samples side data stays: it trims the encoder's padding off the last packet. New extradata would
        // replace the whole track's header, so a packet that carries it goes without any.
        if av_packet_get_side_data(packet, AV_PKT_DATA_NEW_EXTRADATA, nil) != nil { av_packet_free_side_data(packet) }
        let timestamp = (saneTimestamp(packet.pointee.pts) ?? saneTimestamp(packet.pointee.dts)).flatMap {
            saneTimestamp(av_rescale_q($0 - startOffset, input.pointee.time_base, timeBase))
        }
        guard let pts = timeline.place(timestamp, duration: duration) else { return }
        packet.pointee.pts = pts
        packet.pointee.dts = pts
        packet.pointee.duration = duration
        packet.pointee.flags = AV_PKT_FLAG_KEY
        samplesWritten += max(0, pts + duration - max(pts, 0))
        try muxer.write(packet, from: timeBase, to: output, control: control)
    }
}

/// An Opus packet's length in 48 kHz samples from its TOC byte, or nil when it cannot be a valid packet
/// (RFC 6716: at most 120 ms).
func opusPacketSamples(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
    guard let toc = bytes.first else { return nil }
    let config = Int(toc >> 3)
    // Frame length in 1/400 s (2.5 ms) units: SILK 10/20/40/60 ms, hybrid 10/20 ms, CELT 2.5/5/10/20 ms.
    let units: Int
    switch config {
    case 0...11: units = [4, 8, 16, 24][config % 4]
    case 12...15: units = [4, 8][config % 2]
    default: units = [1, 2, 4, 8][config % 4]
    }
    let frames: Int
    switch toc & 3 {
    case 0: frames = 1
    case 1, 2: frames = 2
    default:
        guard bytes.count >= 2 else { return nil }
        frames = Int(bytes[1] & 0x3f)
    }
    let samples = frames * units * 120
    guard (1...5760).contains(samples) else { return nil }
    return Int64(samples)
}
