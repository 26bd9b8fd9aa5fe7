import CFFmpeg
import Glibc
import Transcoding

/// A generated test clip: a moving pattern and a tone, encoded with libav. Tests use it for fixtures and the
/// harness for its default upload, so that neither needs media files checked in.
public struct SyntheticClip: Sendable {
    /// libav muxer name: "mp4", "avi", "webm", "matroska", "mpegts", ...
    public var container = "mp4"
    /// libav encoder name, or nil for an audio-only file.
    public var videoCodec: String? = "libx264"
    /// libav encoder name, or nil for a silent file.
    public var audioCodec: String? = "aac"
    public var width = 320
    public var height = 240
    public var frameRate = 25
    public var seconds = 2.0
    /// Frame intervals cycle through 40, 20, 80, 40 and 60 ms instead of 1/frameRate.
    public var variableFrameRate = false
    /// Display rotation in degrees, counter-clockwise, as libav's display matrix holds it.
    public var rotation = 0.0
    public var sampleRate = 44100
    public var channels = 2
    /// libav's name for the audio encoder's profile ("aac_main"), or nil for its default (AAC-LC for "aac").
    public var audioProfile: String? = nil
    /// What the pictures are and how they are tagged.
    public var signal = Signal.sdr
    /// Each frame holds two fields half a frame apart, top field first, coded as interlaced (`AV_CODEC_FLAG_INTERLACED_DCT`
    /// and `_ME`; MBAFF with libx264).
    public var interlaced = false
    /// Frames from one keyframe to the next (closed GOPs); split-and-stitch cuts only there.
    public var keyframeInterval = 12
    /// libx264 with B-frames and open GOPs: each keyframe after the first is an I-frame (not IDR) whose leading
    /// B-frames, shown before it, reference the GOP before.
    public var openGOP = false
    /// 8-bit only: the first frames show these pictures, one each, before the moving pattern (which still moves
    /// as if it had been shown from the start).
    public var opening: [Opening] = []
    public enum Opening: Sendable { case black, checkerboard }

    /// - sdr: 8-bit 4:2:0, untagged.
    /// - sdr10: 10-bit 4:2:0, BT.709.
    /// - hlg: 10-bit 4:2:0, BT.2020 with the HLG transfer (arib-std-b67), as phones record it.
    /// - pq: 10-bit 4:2:0, BT.2020 with the PQ transfer (smpte2084) and HDR10 metadata (`pqMetadata`): mastering
    ///   display P3-D65 at 0.005–1000 nits, MaxCLL 1000, MaxFALL 400 (in the HEVC SEI when the codec is libx265, and
    ///   in the container with `pqMetadataInContainer`).
    /// - rgba: 8-bit RGB with alpha (for "png" or "qtrle" in MOV): see `SyntheticPicture.fillRGBA`.
    public enum Signal: Sendable { case sdr, sdr10, hlg, pq, rgba }
    /// With a 10-bit signal: every luma sample at this code and the chroma neutral, instead of the moving pattern (a
    /// flat field between two 8-bit levels shows whether a conversion dithers or truncates).
    public var flatLevel: Int? = nil
    /// B-frames between reference frames (libav's `max_b_frames`): a decoder then gives its first frame only after
    /// several packets.
    public var bFrames = 0
    /// With `.pq`: the HDR10 metadata also in the container's stream side data (MP4's `mdcv`/`clli`, Matroska's
    /// MasteringMetadata), the only place it has with VP9.
    public var pqMetadataInContainer = false

    /// The `.pq` signal's HDR10 metadata, in x265's units (0.00002 and 0.0001 nits): P3 primaries, D65.
    public static let pqMetadata = HDR10Metadata(
        masteringDisplay: .init(
            red: .init(x: 34000, y: 16000), green: .init(x: 13250, y: 34500), blue: .init(x: 7500, y: 3000),
            whitePoint: .init(x: 15635, y: 16450), maxLuminance: 10_000_000, minLuminance: 50),
        contentLight: .init(maxCLL: 1000, maxFALL: 400))

    public struct Info: Sendable, Equatable {
        public var videoFrames: Int
        /// First frame's start to the last frame's end, seconds.
        public var videoDuration: Double
    }

    public init() {}

    private static let variableIntervals: [Int64] = [40, 20, 80, 40, 60]

    @discardableResult
    public func write(to path: String) throws(TranscodeError) -> Info {
        Libav.configureLogging()
        let muxer = try RawMuxer(path: path, format: container)
        var video: (encoder: CodecContext, stream: UnsafeMutablePointer<AVStream>)?
        var audio: (encoder: CodecContext, stream: UnsafeMutablePointer<AVStream>)?
        if let videoCodec { video = try makeVideoEncoder(videoCodec, muxer: muxer) }
        if let audioCodec { audio = try makeAudioEncoder(audioCodec, muxer: muxer) }
        try check(avformat_write_header(muxer.context, nil), "writing the header")

        let packet = try Packet()
        // Encoders do not pass frame durations on; without them the MP4's last sample lasts 0 and players drop it.
        var durations: [Int64: Int64] = [:]
        func send(_ frame: UnsafeMutablePointer<AVFrame>?, _ pair: (encoder: CodecContext, stream: UnsafeMutablePointer<AVStream>)) throws(TranscodeError) {
            try check(avcodec_send_frame(pair.encoder.pointer, frame), "encoding")
            while avcodec_receive_packet(pair.encoder.pointer, packet.pointer) >= 0 {
                if let duration = durations.removeValue(forKey: packet.pointer.pointee.pts), pair.stream == video?.stream {
                    packet.pointer.pointee.duration = duration
                }
                av_packet_rescale_ts(packet.pointer, pair.encoder.pointer.pointee.time_base, pair.stream.pointee.time_base)
                packet.pointer.pointee.stream_index = pair.stream.pointee.index
                try check(av_interleaved_write_frame(muxer.context, packet.pointer), "writing")
            }
        }

        // Video timestamps in milliseconds when variable, else in frames; audio in samples.
        var videoPts: Int64 = 0
        var videoIndex = 0
        var audioPts: Int64 = 0
        let videoEnd = Int64(seconds * (variableFrameRate ? 1000 : Double(frameRate)))
        let audioEnd = Int64(seconds * Double(sampleRate))
        let picture = try Frame()
        let sound = try Frame()
        while true {
            let videoDone = video == nil || videoPts >= videoEnd
            let audioDone = audio == nil || audioPts >= audioEnd
            if videoDone && audioDone { break }
            let videoSeconds = Double(videoPts) / (variableFrameRate ? 1000 : Double(frameRate))
            if !videoDone, let video, audioDone || videoSeconds <= Double(audioPts) / Double(sampleRate) {
                try SyntheticPicture.prepare(picture.pointer, for: video.encoder.pointer)
                if videoIndex < opening.count {
                    SyntheticPicture.fillOpening8(picture.pointer, opening[videoIndex])
                } else if signal == .rgba {
                    SyntheticPicture.fillRGBA(picture.pointer, index: videoIndex)
                } else if signal != .sdr {
                    SyntheticPicture.fill10(picture.pointer, index: videoIndex, flatLevel: flatLevel)
                } else if interlaced {
                    SyntheticPicture.fillFields8(picture.pointer, index: videoIndex)
                    picture.pointer.pointee.interlaced_frame = 1
                    picture.pointer.pointee.top_field_first = 1
                } else {
                    SyntheticPicture.fill8(picture.pointer, index: videoIndex)
                }
                picture.pointer.pointee.pts = videoPts
                let interval = variableFrameRate ? Self.variableIntervals[videoIndex % Self.variableIntervals.count] : 1
                durations[videoPts] = interval
                try send(picture.pointer, video)
                videoPts += interval
                videoIndex += 1
            } else if let audio {
                let frameSize = audio.encoder.pointer.pointee.frame_size > 0 ? audio.encoder.pointer.pointee.frame_size : 1024
                try fillSound(sound.pointer, encoder: audio.encoder.pointer, samples: frameSize, start: audioPts)
                sound.pointer.pointee.pts = audioPts
                try send(sound.pointer, audio)
                audioPts += Int64(frameSize)
            }
        }
        if let video { try send(nil, video) }
        if let audio { try send(nil, audio) }
        try check(av_write_trailer(muxer.context), "writing the trailer")
        return Info(videoFrames: videoIndex, videoDuration: variableFrameRate ? Double(videoPts) / 1000 : Double(videoIndex) / Double(frameRate))
    }

    /// A file whose header declares a `width`×`height` MJPEG stream but whose packets hold nothing decodable: the
    /// shape of a decompression bomb, for limit tests.
    public static func writeDeclaringDimensions(to path: String, width: Int32, height: Int32) throws(TranscodeError) {
        let muxer = try RawMuxer(path: path, format: "avi")
        guard let stream = avformat_new_stream(muxer.context, nil) else { throw .internal(averror: shim_averror(ENOMEM), message: "stream") }
        stream.pointee.codecpar.pointee.codec_type = AVMEDIA_TYPE_VIDEO
        stream.pointee.codecpar.pointee.codec_id = AV_CODEC_ID_MJPEG
        stream.pointee.codecpar.pointee.width = width
        stream.pointee.codecpar.pointee.height = height
        stream.pointee.time_base = AVRational(num: 1, den: 25)
        try check(avformat_write_header(muxer.context, nil), "writing the header")
        let packet = try Packet()
        for index in 0..<5 {
            try check(av_new_packet(packet.pointer, 64), "packet")
            memset(packet.pointer.pointee.data, 0xd8, 64)
            packet.pointer.pointee.pts = Int64(index)
            packet.pointer.pointee.dts = Int64(index)
            try check(av_write_frame(muxer.context, packet.pointer), "writing")
            av_packet_unref(packet.pointer)
        }
        try check(av_write_trailer(muxer.context), "writing the trailer")
    }

    private func makeVideoEncoder(_ name: String, muxer: RawMuxer) throws(TranscodeError) -> (encoder: CodecContext, stream: UnsafeMutablePointer<AVStream>) {
        guard let codec = avcodec_find_encoder_by_name(name) else { throw .unsupportedCodec(name) }
        let encoder = try CodecContext(codec)
        let enc = encoder.pointer
        enc.pointee.width = Int32(width)
        enc.pointee.height = Int32(height)
        enc.pointee.pix_fmt =
            switch signal {
            case .sdr: codec.pointee.pix_fmts?.pointee ?? AV_PIX_FMT_YUV420P
            case .rgba: AV_PIX_FMT_RGBA
            case .sdr10, .hlg, .pq: AV_PIX_FMT_YUV420P10LE
            }
        switch signal {
        case .sdr, .rgba: break
        case .sdr10: (enc.pointee.color_primaries, enc.pointee.color_trc, enc.pointee.colorspace) = (AVCOL_PRI_BT709, AVCOL_TRC_BT709, AVCOL_SPC_BT709)
        case .hlg: (enc.pointee.color_primaries, enc.pointee.color_trc, enc.pointee.colorspace) = (AVCOL_PRI_BT2020, AVCOL_TRC_ARIB_STD_B67, AVCOL_SPC_BT2020_NCL)
        case .pq: (enc.pointee.color_primaries, enc.pointee.color_trc, enc.pointee.colorspace) = (AVCOL_PRI_BT2020, AVCOL_TRC_SMPTE2084, AVCOL_SPC_BT2020_NCL)
        }
        if signal != .sdr && signal != .rgba { enc.pointee.color_range = AVCOL_RANGE_MPEG }
        if interlaced {
            enc.pointee.flags |= AV_CODEC_FLAG_INTERLACED_DCT | AV_CODEC_FLAG_INTERLACED_ME
            enc.pointee.field_order = AV_FIELD_TT
        }
        enc.pointee.time_base = variableFrameRate ? AVRational(num: 1, den: 1000) : AVRational(num: 1, den: Int32(frameRate))
        enc.pointee.framerate = AVRational(num: Int32(frameRate), den: 1)
        enc.pointee.gop_size = Int32(keyframeInterval)
        enc.pointee.max_b_frames = Int32(bFrames)
        enc.pointee.bit_rate = 400_000
        if muxer.needsGlobalHeader { enc.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
        var options: [String: String] = [:]
        if name == "libx264" { options = ["preset": "ultrafast"] }
        if name == "libx264" && openGOP {
            options["x264-params"] = "bframes=3:b-adapt=0:open-gop=1:scenecut=0:keyint-min=\(keyframeInterval)"
        }
        if name == "libx265" {
            // x265 logs to stderr by itself unless told not to.
            var parameters = "log-level=none"
            if signal == .pq {
                // SMPTE ST 2086 in x265's units: chromaticities in 0.00002, luminance in 0.0001 nits.
                parameters += ":master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
                    + ":max-cll=1000,400"
            }
            options = ["preset": "ultrafast", "x265-params": parameters]
        }
        if name.hasPrefix("libvpx") { options = ["deadline": "realtime", "cpu-used": "8"] }
        try encoder.open(options: options)
        guard let stream = avformat_new_stream(muxer.context, nil) else { throw .internal(averror: shim_averror(ENOMEM), message: "stream") }
        try check(avcodec_parameters_from_context(stream.pointee.codecpar, enc), "parameters")
        stream.pointee.time_base = enc.pointee.time_base
        if rotation != 0, let data = av_stream_new_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, 36) {
            data.withMemoryRebound(to: Int32.self, capacity: 9) { av_display_rotation_set($0, rotation) }
        }
        if signal == .pq && pqMetadataInContainer { try Self.pqMetadata.attach(to: stream) }
        return (encoder, stream)
    }

    private func makeAudioEncoder(_ name: String, muxer: RawMuxer) throws(TranscodeError) -> (encoder: CodecContext, stream: UnsafeMutablePointer<AVStream>) {
        guard let codec = avcodec_find_encoder_by_name(name) else { throw .unsupportedCodec(name) }
        let encoder = try CodecContext(codec)
        let enc = encoder.pointer
        enc.pointee.sample_fmt = codec.pointee.sample_fmts?.pointee ?? AV_SAMPLE_FMT_S16
        enc.pointee.sample_rate = Int32(sampleRate)
        av_channel_layout_default(&enc.pointee.ch_layout, Int32(channels))
        enc.pointee.time_base = AVRational(num: 1, den: Int32(sampleRate))
        enc.pointee.bit_rate = 96_000
        if muxer.needsGlobalHeader { enc.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
        try encoder.open(options: audioProfile.map { ["profile": $0] } ?? [:])
        guard let stream = avformat_new_stream(muxer.context, nil) else { throw .internal(averror: shim_averror(ENOMEM), message: "stream") }
        try check(avcodec_parameters_from_context(stream.pointee.codecpar, enc), "parameters")
        stream.pointee.time_base = enc.pointee.time_base
        return (encoder, stream)
    }

    private func fillSound(_ frame: UnsafeMutablePointer<AVFrame>, encoder: UnsafeMutablePointer<AVCodecContext>, samples: Int32, start: Int64) throws(TranscodeError) {
        av_frame_unref(frame)
        frame.pointee.format = encoder.pointee.sample_fmt.rawValue
        frame.pointee.nb_samples = samples
        frame.pointee.sample_rate = encoder.pointee.sample_rate
        try check(av_channel_layout_copy(&frame.pointee.ch_layout, &encoder.pointee.ch_layout), "layout")
        try check(av_frame_get_buffer(frame, 0), "sound")
        let channels = Int(encoder.pointee.ch_layout.nb_channels)
        let format = encoder.pointee.sample_fmt
        let planar = av_sample_fmt_is_planar(format) != 0
        for i in 0..<Int(samples) {
            let t = Double(start + Int64(i)) / Double(sampleRate)
            let value = 0.3 * sin(2 * Double.pi * 440 * t)
            for channel in 0..<channels {
                let plane = frame.pointee.extended_data[planar ? channel : 0]!
                let slot = planar ? i : i * channels + channel
                switch format {
                case AV_SAMPLE_FMT_FLT, AV_SAMPLE_FMT_FLTP:
                    plane.withMemoryRebound(to: Float.self, capacity: slot + 1) { $0[slot] = Float(value) }
                case AV_SAMPLE_FMT_S32, AV_SAMPLE_FMT_S32P:
                    plane.withMemoryRebound(to: Int32.self, capacity: slot + 1) { $0[slot] = Int32(value * Double(Int32.max)) }
                default:
                    plane.withMemoryRebound(to: Int16.self, capacity: slot + 1) { $0[slot] = Int16(value * Double(Int16.max)) }
                }
            }
        }
    }
}
