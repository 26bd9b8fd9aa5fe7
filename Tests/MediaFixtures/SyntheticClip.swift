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
                try fillPicture(picture.pointer, encoder: video.encoder.pointer, index: videoIndex)
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
        enc.pointee.pix_fmt = codec.pointee.pix_fmts?.pointee ?? AV_PIX_FMT_YUV420P
        enc.pointee.time_base = variableFrameRate ? AVRational(num: 1, den: 1000) : AVRational(num: 1, den: Int32(frameRate))
        enc.pointee.framerate = AVRational(num: Int32(frameRate), den: 1)
        enc.pointee.gop_size = 12
        enc.pointee.bit_rate = 400_000
        if muxer.needsGlobalHeader { enc.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
        var options: [String: String] = [:]
        if name == "libx264" { options = ["preset": "ultrafast"] }
        if name.hasPrefix("libvpx") { options = ["deadline": "realtime", "cpu-used": "8"] }
        try encoder.open(options: options)
        guard let stream = avformat_new_stream(muxer.context, nil) else { throw .internal(averror: shim_averror(ENOMEM), message: "stream") }
        try check(avcodec_parameters_from_context(stream.pointee.codecpar, enc), "parameters")
        stream.pointee.time_base = enc.pointee.time_base
        if rotation != 0, let data = av_stream_new_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, 36) {
            data.withMemoryRebound(to: Int32.self, capacity: 9) { av_display_rotation_set($0, rotation) }
        }
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

    private func fillPicture(_ frame: UnsafeMutablePointer<AVFrame>, encoder: UnsafeMutablePointer<AVCodecContext>, index: Int) throws(TranscodeError) {
        if frame.pointee.data.0 == nil {
            frame.pointee.format = encoder.pointee.pix_fmt.rawValue
            frame.pointee.width = encoder.pointee.width
            frame.pointee.height = encoder.pointee.height
            try check(av_frame_get_buffer(frame, 0), "picture")
        }
        try check(av_frame_make_writable(frame), "picture")
        let w = Int(frame.pointee.width), h = Int(frame.pointee.height)
        // A diagonal gradient scrolling right, with a bright square bouncing across it. Rows are copied from a
        // ramp rather than computed per pixel: fixtures are made in debug builds, where per-pixel loops crawl.
        let ramp = (0..<(w + 256)).map { UInt8(truncatingIfNeeded: $0) }
        let luma = frame.pointee.data.0!, lumaStride = Int(frame.pointee.linesize.0)
        let boxX = (index * 7) % max(w - 32, 1), boxY = (index * 3) % max(h - 32, 1)
        ramp.withUnsafeBufferPointer { source in
            for y in 0..<h {
                let row = luma + y * lumaStride
                row.update(from: source.baseAddress! + ((y * 2 + index * 5) & 255), count: w)
                if y >= boxY && y < boxY + 32 { (row + boxX).update(repeating: 235, count: min(32, w - boxX)) }
            }
        }
        let chromaRamp = (0..<(w / 2 + 65)).map { UInt8(128 + $0 % 64) }
        chromaRamp.withUnsafeBufferPointer { source in
            for (plane, stride) in [(frame.pointee.data.1!, Int(frame.pointee.linesize.1)), (frame.pointee.data.2!, Int(frame.pointee.linesize.2))] {
                for y in 0..<((h + 1) / 2) {
                    (plane + y * stride).update(from: source.baseAddress! + ((index - y) & 63), count: (w + 1) / 2)
                }
            }
        }
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

/// A plain muxer on a path, for generated files (the transcoder's own `Muxer` is MP4 and faststart only).
private final class RawMuxer {
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
