import CFFmpeg

/// What a media file holds, read through the same whitelisted demuxer as `transcode`; with `decode: true` every
/// frame is decoded and counted. Tests and the harness validate outputs with it.
public struct MediaProbe: Sendable, Equatable {
    public enum Kind: String, Sendable { case video, audio, other }

    public struct Stream: Sendable, Equatable {
        public var index: Int
        public var kind: Kind
        public var codec: String
        /// libav's name for the codec profile ("LC", "Main", "High"), when it has one.
        public var profile: String?
        public var pixelFormat: String?
        public var width: Int
        public var height: Int
        public var sampleRate: Int
        public var channels: Int
        public var channelLayout: String?
        /// Display rotation in degrees, counter-clockwise as libav reports it; 0 when none is set.
        public var rotation: Double
        /// Video colour as the stream is tagged, in libav's names ("bt709", "smpte2084", "arib-std-b67", "bt2020nc",
        /// "tv"); nil when unspecified.
        public var colorTransfer: String? = nil
        public var colorPrimaries: String? = nil
        public var colorMatrix: String? = nil
        public var colorRange: String? = nil
        /// "progressive", or the interlaced order ("tt": top field first, coded first; "bb", "tb", "bt"); nil when
        /// the stream does not say.
        public var fieldOrder: String? = nil
        /// The container's four-character code for the codec ("avc1", "hvc1", "av01"), when it has one.
        public var codecTag: String? = nil
        /// Decoded frames, when asked to decode.
        public var frameCount: Int?
        /// Decoded audio samples per channel, when asked to decode.
        public var sampleCount: Int?
        /// First decoded frame's start to the last one's end, seconds, when asked to decode.
        public var decodedDuration: Double?
        /// Frames or packets that failed to decode, when asked to decode.
        public var decodeErrors: Int?
        /// Decoded video frames that say they hold two fields, when asked to decode.
        public var interlacedFrames: Int?
        /// HDR10 metadata in the container (MP4's `mdcv`/`clli`, Matroska's MasteringMetadata/MaxCLL).
        public var containerHDR10: HDR10Metadata? = nil
        /// HDR10 metadata the decoder attached to the first frame (HEVC's SEI, AV1's metadata OBUs), when asked to
        /// decode.
        public var firstFrameHDR10: HDR10Metadata? = nil
    }

    /// libav's first name for the container ("mov" for MP4).
    public var container: String
    public var duration: Double?
    public var streams: [Stream]

    public var video: Stream? { streams.first { $0.kind == .video } }
    public var audio: Stream? { streams.first { $0.kind == .audio } }

    public static func probe(_ location: MediaLocation, decode: Bool = false) throws(TranscodeError) -> MediaProbe {
        Libav.configureLogging()
        let control = JobControl(cancellation: nil, timeLimitSeconds: nil)
        let demuxer = try Demuxer(location, limits: TranscodeOptions.Limits(), control: control)
        var streams = demuxer.streams.map(describe)
        if decode { try decodeAll(demuxer, into: &streams) }
        let duration = demuxer.context.pointee.duration
        return MediaProbe(
            container: demuxer.shortName,
            duration: duration == shim_nopts_value() ? nil : Double(duration) / Double(AV_TIME_BASE),
            streams: streams)
    }

    private static func describe(_ stream: UnsafeMutablePointer<AVStream>) -> Stream {
        let parameters = stream.pointee.codecpar.pointee
        let kind: Kind =
            switch parameters.codec_type {
            case AVMEDIA_TYPE_VIDEO: .video
            case AVMEDIA_TYPE_AUDIO: .audio
            default: .other
            }
        var rotation = 0.0
        var size = 0
        if let matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size), size >= 36 {
            let degrees = matrix.withMemoryRebound(to: Int32.self, capacity: 9) { av_display_rotation_get($0) }
            if degrees.isFinite { rotation = degrees == 0 ? 0 : degrees }
        }
        var layout: String? = nil
        if kind == .audio {
            var buffer = [CChar](repeating: 0, count: 64)
            var channelLayout = parameters.ch_layout
            if av_channel_layout_describe(&channelLayout, &buffer, buffer.count) > 0 {
                layout = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            }
        }
        let pixelFormat: String? =
            kind == .video ? av_get_pix_fmt_name(AVPixelFormat(rawValue: parameters.format)).map { String(cString: $0) } : nil
        var described = Stream(
            index: Int(stream.pointee.index), kind: kind, codec: String(cString: avcodec_get_name(parameters.codec_id)),
            profile: avcodec_profile_name(parameters.codec_id, parameters.profile).map { String(cString: $0) },
            pixelFormat: pixelFormat, width: Int(parameters.width), height: Int(parameters.height),
            sampleRate: Int(parameters.sample_rate), channels: Int(parameters.ch_layout.nb_channels),
            channelLayout: layout, rotation: rotation)
        if parameters.codec_tag != 0 {
            let tag = withUnsafeBytes(of: parameters.codec_tag.littleEndian) { Array($0) }
            if tag.allSatisfy({ (0x20...0x7e).contains($0) }) { described.codecTag = String(decoding: tag, as: UTF8.self) }
        }
        if kind == .video {
            func name(_ text: UnsafePointer<CChar>?, unless unspecified: Bool) -> String? {
                unspecified ? nil : text.map { String(cString: $0) }
            }
            described.colorTransfer = name(av_color_transfer_name(parameters.color_trc),
                                           unless: parameters.color_trc == AVCOL_TRC_UNSPECIFIED)
            described.colorPrimaries = name(av_color_primaries_name(parameters.color_primaries),
                                            unless: parameters.color_primaries == AVCOL_PRI_UNSPECIFIED)
            described.colorMatrix = name(av_color_space_name(parameters.color_space),
                                         unless: parameters.color_space == AVCOL_SPC_UNSPECIFIED)
            described.colorRange = name(av_color_range_name(parameters.color_range),
                                        unless: parameters.color_range == AVCOL_RANGE_UNSPECIFIED)
            described.containerHDR10 = HDR10Metadata(stream: stream)
            described.fieldOrder =
                switch parameters.field_order {
                case AV_FIELD_PROGRESSIVE: "progressive"
                case AV_FIELD_TT: "tt"
                case AV_FIELD_BB: "bb"
                case AV_FIELD_TB: "tb"
                case AV_FIELD_BT: "bt"
                default: nil
                }
        }
        return described
    }

    private struct Counter {
        let decoder: CodecContext
        let timeBase: AVRational
        var frames = 0
        var samples = 0
        var errors = 0
        var interlaced = 0
        var firstHDR10: HDR10Metadata?
        var first: Int64?
        var end: Int64 = 0
    }

    private static func decodeAll(_ demuxer: Demuxer, into streams: inout [Stream]) throws(TranscodeError) {
        var counters: [Int: Counter] = [:]
        for stream in demuxer.streams {
            let parameters = stream.pointee.codecpar!
            guard parameters.pointee.codec_type == AVMEDIA_TYPE_VIDEO || parameters.pointee.codec_type == AVMEDIA_TYPE_AUDIO,
                let codec = avcodec_find_decoder(parameters.pointee.codec_id)
            else { continue }
            let decoder = try CodecContext(codec)
            try check(avcodec_parameters_to_context(decoder.pointer, parameters), "copying decoder parameters")
            decoder.pointer.pointee.pkt_timebase = stream.pointee.time_base
            try decoder.open()
            counters[Int(stream.pointee.index)] = Counter(decoder: decoder, timeBase: stream.pointee.time_base)
        }
        let packet = try Packet()
        let frame = try Frame()
        func drain(_ index: Int, _ input: UnsafeMutablePointer<AVPacket>?) throws(TranscodeError) {
            guard var counter = counters[index] else { return }
            let decoder = counter.decoder
            var errors = counter.errors
            if avcodec_send_packet(decoder.pointer, input) < 0 && input != nil { errors += 1 }
            try DecodeLoop.drain(
                receive: { avcodec_receive_frame(decoder.pointer, frame.pointer) }, control: nil,
                errors: &errors, what: "decoding stream \(index)"
            ) { () throws(TranscodeError) in
                defer { av_frame_unref(frame.pointer) }
                if counter.frames == 0 { counter.firstHDR10 = HDR10Metadata(frame: frame.pointer) }
                counter.frames += 1
                counter.samples += Int(frame.pointer.pointee.nb_samples)
                if frame.pointer.pointee.interlaced_frame != 0 { counter.interlaced += 1 }
                guard let pts = saneTimestamp(frame.pointer.pointee.best_effort_timestamp) else { return }
                if counter.first == nil { counter.first = pts }
                let duration: Int64 =
                    frame.pointer.pointee.nb_samples > 0 && decoder.pointer.pointee.codec_type == AVMEDIA_TYPE_AUDIO
                    ? av_rescale_q(Int64(frame.pointer.pointee.nb_samples),
                                   AVRational(num: 1, den: frame.pointer.pointee.sample_rate), counter.timeBase)
                    : frame.pointer.pointee.pkt_duration
                counter.end = max(counter.end, pts + saneDuration(duration))
            }
            counter.errors = errors
            counters[index] = counter
        }
        while av_read_frame(demuxer.context, packet.pointer) >= 0 {
            defer { av_packet_unref(packet.pointer) }
            try drain(Int(packet.pointer.pointee.stream_index), packet.pointer)
        }
        for index in counters.keys { try drain(index, nil) }
        for (i, stream) in streams.enumerated() {
            guard let counter = counters[stream.index] else { continue }
            streams[i].frameCount = counter.frames
            if stream.kind == .audio { streams[i].sampleCount = counter.samples }
            if stream.kind == .video {
                streams[i].interlacedFrames = counter.interlaced
                streams[i].firstFrameHDR10 = counter.firstHDR10
            }
            streams[i].decodeErrors = counter.errors
            streams[i].decodedDuration = counter.first.map { Double(counter.end - $0) * av_q2d(counter.timeBase) }
        }
    }
}

extension MediaProbe {
    /// One packet as the container holds it.
    public struct DemuxedPacket: Sendable, Equatable {
        /// Presentation time, seconds; nil when the container gives none.
        public var time: Double?
        public var duration: Double
        public var bytes: [UInt8]
    }

    /// Every packet of the first stream of `kind`, in file order, undecoded: to check that a copied stream is the
    /// input's, byte for byte.
    public static func packets(_ location: MediaLocation, of kind: Kind) throws(TranscodeError) -> [DemuxedPacket] {
        Libav.configureLogging()
        let control = JobControl(cancellation: nil, timeLimitSeconds: nil)
        let demuxer = try Demuxer(location, limits: TranscodeOptions.Limits(), control: control)
        guard let stream = demuxer.streams.first(where: { describe($0).kind == kind }) else { return [] }
        let timeBase = av_q2d(stream.pointee.time_base)
        let packet = try Packet()
        var packets: [DemuxedPacket] = []
        while av_read_frame(demuxer.context, packet.pointer) >= 0 {
            defer { av_packet_unref(packet.pointer) }
            let read = packet.pointer.pointee
            guard read.stream_index == stream.pointee.index else { continue }
            packets.append(DemuxedPacket(
                time: saneTimestamp(read.pts).map { Double($0) * timeBase }, duration: Double(read.duration) * timeBase,
                bytes: read.size > 0 ? Array(UnsafeBufferPointer(start: read.data, count: Int(read.size))) : []))
        }
        return packets
    }
}
