import CFFmpeg

/// Puts AAC-LC packets into the MP4 as they are: nothing is decoded or encoded, so the sound is unchanged and the
/// cost is a copy of a few bytes. Only plain AAC-LC is taken (`AACConfig.isPlainLC`), which is what the encoder would
/// have made; anything else is re-encoded by `AudioPipeline`.
///
/// ADTS-framed AAC (MPEG-TS: no extradata) is copied too, not re-encoded: `aac_adtstoasc` strips each frame's header,
/// and the AudioSpecificConfig the MP4 declares is built before the first packet from the stream's rate and channels.
/// Every header must match it; a frame that does not is dropped like any damaged packet.
final class AudioCopy: AudioOutput {
    let input: UnsafeMutablePointer<AVStream>
    let output: UnsafeMutablePointer<AVStream>
    private(set) var samplesWritten: Int64 = 0
    private let config: AACConfig
    private let adts: Bool
    private let filter: BitstreamFilter
    private let filtered: Packet
    /// 1/sample rate: output timestamps count samples.
    private let timeBase: AVRational
    private let startOffset: Int64
    private var timeline: CopyTimeline

    var isCopy: Bool { true }

    /// Nil when the stream is not plain AAC-LC or cannot be copied for another reason: it is then re-encoded.
    init?(stream: UnsafeMutablePointer<AVStream>, muxer: Muxer, options: TranscodeOptions, startTime: Int64) throws(TranscodeError) {
        input = stream
        let parameters = stream.pointee.codecpar!
        guard let (config, adts) = Self.copyableConfig(parameters.pointee) else { return nil }
        // A stream libav's own filter refuses is not the AAC it seemed; re-encoding will tell what it is.
        guard let filter = try? BitstreamFilter("aac_adtstoasc", parameters: parameters, timeBase: stream.pointee.time_base)
        else { return nil }
        self.config = config
        self.adts = adts
        self.filter = filter
        filtered = try Packet()
        timeBase = AVRational(num: 1, den: Int32(config.sampleRate))
        output = try muxer.addStream(
            copying: parameters, timeBase: timeBase, extradata: adts ? config.audioSpecificConfig : nil)
        startOffset = saneTimestamp(startTime).map {
            saneTimestamp(av_rescale_q($0, shim_time_base_q(), stream.pointee.time_base)) ?? 0
        } ?? 0
        timeline = CopyTimeline(sampleRate: config.sampleRate, maxSeconds: options.limits.maxDurationSeconds)
    }

    /// The stream's configuration when it is plain AAC-LC, and whether it comes ADTS-framed.
    static func copyableConfig(_ parameters: AVCodecParameters) -> (AACConfig, adts: Bool)? {
        guard parameters.codec_id == AV_CODEC_ID_AAC,
            parameters.profile == FF_PROFILE_AAC_LOW || parameters.profile == FF_PROFILE_UNKNOWN
        else { return nil }
        let rate = Int(parameters.sample_rate)
        let channels = Int(parameters.ch_layout.nb_channels)
        if parameters.extradata_size > 0, let extradata = parameters.extradata {
            let bytes = UnsafeBufferPointer(start: extradata, count: Int(parameters.extradata_size))
            // The probe's rate and channels must be the config's: a rate twice the config's is SBR found in the
            // payload (implicit HE-AAC). When the probe did not decode far enough to see it, the copy is still
            // correct MP4: implicit signalling exists so that an LC track may carry it.
            guard let config = AACConfig(audioSpecificConfig: bytes), config.isPlainLC, config.sampleRate == rate,
                config.channels == channels
            else { return nil }
            return (config, false)
        }
        // ADTS: each frame's header names its profile, and nothing before the first frame does; the probe, which
        // decoded frames, must have said LC (unknown could be HE-AAC).
        guard parameters.profile == FF_PROFILE_AAC_LOW, let config = AACConfig(lcWithSampleRate: rate, channels: channels)
        else { return nil }
        return (config, true)
    }

    func process(_ packet: UnsafeMutablePointer<AVPacket>?, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        if let packet {
            guard accepts(packet) else { return }
            if av_bsf_send_packet(filter.pointer, packet) < 0 { return }
        } else if av_bsf_send_packet(filter.pointer, nil) < 0 {
            return
        }
        while true {
            // EAGAIN, EOF, or a frame the filter could not parse, which is dropped like any damaged packet.
            guard av_bsf_receive_packet(filter.pointer, filtered.pointer) >= 0 else { return }
            defer { av_packet_unref(filtered.pointer) }
            try write(filtered.pointer, muxer: muxer, control: control)
        }
    }

    private func accepts(_ packet: UnsafeMutablePointer<AVPacket>) -> Bool {
        // An empty packet would read as the end of the stream to the filter.
        guard let data = packet.pointee.data, packet.pointee.size > 0 else { return false }
        guard adts else { return true }
        guard let header = ADTSHeader(UnsafeBufferPointer(start: data, count: Int(packet.pointee.size))) else { return false }
        // Several frames in one would be one MP4 sample of 2048 samples or more, which no decoder expects.
        return header.config == config && header.blocks == 1 && header.size < Int(packet.pointee.size)
    }

    private func write(_ packet: UnsafeMutablePointer<AVPacket>, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        // Side data goes to the muxer too, and "new extradata" (the filter's own, or a damaged file's) would replace
        // the configuration of the whole track.
        av_packet_free_side_data(packet)
        // What still starts like an ADTS header is damage; the MP4 muxer fails the whole file on a first packet that
        // does ("Malformed AAC bitstream").
        guard let data = packet.pointee.data, packet.pointee.size > 0,
            !(packet.pointee.size >= 2 && data[0] == 0xff && data[1] & 0xf0 == 0xf0)
        else { return }
        let source = input.pointee.time_base
        let timestamp = (saneTimestamp(packet.pointee.pts) ?? saneTimestamp(packet.pointee.dts)).flatMap {
            saneTimestamp(av_rescale_q($0 - startOffset, source, timeBase))
        }
        // Every LC frame is 1024 samples; only an MP4's last may say fewer (its padding cut off). Durations in
        // milliseconds (Matroska, FLV) are too coarse to say it.
        let declared = av_rescale_q(packet.pointee.duration, source, timeBase)
        let precise = Int64(source.den) >= Int64(source.num) * Int64(config.sampleRate)
        let duration: Int64 = precise && (1...1024).contains(declared) ? declared : 1024
        guard let pts = timeline.place(timestamp, duration: duration) else { return }
        packet.pointee.pts = pts
        packet.pointee.dts = pts
        packet.pointee.duration = duration
        packet.pointee.flags = AV_PKT_FLAG_KEY
        samplesWritten += max(0, pts + duration - max(pts, 0))
        try muxer.write(packet, from: timeBase, to: output, control: control)
    }
}

/// Where copied packets go on the output's timeline, in samples. A packet keeps its own timestamp when it comes after
/// the previous one. One that steps back (a duplicate, or damage) is dropped: the muxer would refuse it. One with no
/// timestamp, or more than `maxJump` away from where the previous packet ended, is damage too, and goes right after
/// the previous packet: trusting it or dropping it would lose all the sound after it. (A real gap that long is rare;
/// the ffmpeg CLI treats 10 s the same way in containers that allow discontinuities.)
struct CopyTimeline {
    let maxJump: Int64
    /// Encoder priming sits just before 0, where the MP4's edit list hides it as the input's did; a first timestamp
    /// more than a second before 0 is damage.
    let earliestStart: Int64
    /// Packets past the duration limit are dropped.
    let latest: Int64
    private var last: (pts: Int64, duration: Int64)?

    init(sampleRate: Int, maxSeconds: Double) {
        maxJump = 10 * Int64(sampleRate)
        earliestStart = -Int64(sampleRate)
        latest = Int64(min(maxSeconds * Double(sampleRate), Double(timestampBound)))
    }

    /// The packet's output timestamp, or nil to drop it.
    mutating func place(_ timestamp: Int64?, duration: Int64) -> Int64? {
        let pts: Int64
        if let last {
            let expected = last.pts + last.duration
            if let timestamp, abs(timestamp - expected) <= maxJump {
                guard timestamp > last.pts else { return nil }
                pts = timestamp
            } else {
                pts = expected
            }
        } else {
            pts = timestamp.map { $0 < earliestStart ? 0 : $0 } ?? 0
        }
        guard pts <= latest else { return nil }
        last = (pts, duration)
        return pts
    }
}
