import CFFmpeg

/// HDR10's static metadata: the mastering display's colour volume (SMPTE ST 2086) and the content light level
/// (CTA-861.3). Players and TVs tone-map a PQ picture to their own screen with it, so `hdr=keep` carries it over.
///
/// Values are in the integer units HEVC's SEI and MP4's `mdcv` box use (and x265 takes): chromaticities in 0.00002,
/// luminance in 0.0001 cd/m². Every container and codec libav reads converts to them without loss for what HEVC
/// wrote, and AV1's finer fixed point rounds to them.
public struct HDR10Metadata: Sendable, Equatable, CustomStringConvertible {
    public struct Chromaticity: Sendable, Equatable {
        public var x: Int
        public var y: Int
        public init(x: Int, y: Int) { (self.x, self.y) = (x, y) }
    }

    public struct MasteringDisplay: Sendable, Equatable {
        public var red, green, blue, whitePoint: Chromaticity
        public var maxLuminance: Int
        public var minLuminance: Int
        public init(red: Chromaticity, green: Chromaticity, blue: Chromaticity, whitePoint: Chromaticity,
                    maxLuminance: Int, minLuminance: Int) {
            (self.red, self.green, self.blue, self.whitePoint) = (red, green, blue, whitePoint)
            (self.maxLuminance, self.minLuminance) = (maxLuminance, minLuminance)
        }
    }

    public struct ContentLight: Sendable, Equatable {
        /// MaxCLL and MaxFALL, cd/m².
        public var maxCLL: Int
        public var maxFALL: Int
        public init(maxCLL: Int, maxFALL: Int) { (self.maxCLL, self.maxFALL) = (maxCLL, maxFALL) }
    }

    public static let chromaticityUnits = 50000
    public static let luminanceUnits = 10000

    public var masteringDisplay: MasteringDisplay?
    public var contentLight: ContentLight?

    public init(masteringDisplay: MasteringDisplay?, contentLight: ContentLight?) {
        self.masteringDisplay = masteringDisplay
        self.contentLight = contentLight
    }

    /// x265's spelling, which is also its units'.
    public var description: String { x265Parameters.joined(separator: " ") }

    /// What a stream's side data says (MP4's `mdcv`/`clli`, Matroska's MasteringMetadata/MaxCLL), or nil.
    init?(stream: UnsafePointer<AVStream>) {
        var size = 0
        let display = av_stream_get_side_data(stream, AV_PKT_DATA_MASTERING_DISPLAY_METADATA, &size)
            .flatMap { size >= MemoryLayout<AVMasteringDisplayMetadata>.size ? $0 : nil }
            .flatMap { Self.masteringDisplay(UnsafeRawPointer($0).load(as: AVMasteringDisplayMetadata.self)) }
        let light = av_stream_get_side_data(stream, AV_PKT_DATA_CONTENT_LIGHT_LEVEL, &size)
            .flatMap { size >= MemoryLayout<AVContentLightMetadata>.size ? $0 : nil }
            .flatMap { Self.contentLight(UnsafeRawPointer($0).load(as: AVContentLightMetadata.self)) }
        self.init(display, light)
    }

    /// What a decoded frame's side data says (HEVC's SEI, AV1's metadata OBUs), or nil.
    init?(frame: UnsafePointer<AVFrame>) {
        let display = av_frame_get_side_data(frame, AV_FRAME_DATA_MASTERING_DISPLAY_METADATA)
            .flatMap { $0.pointee.size >= MemoryLayout<AVMasteringDisplayMetadata>.size ? $0.pointee.data : nil }
            .flatMap { Self.masteringDisplay(UnsafeRawPointer($0).load(as: AVMasteringDisplayMetadata.self)) }
        let light = av_frame_get_side_data(frame, AV_FRAME_DATA_CONTENT_LIGHT_LEVEL)
            .flatMap { $0.pointee.size >= MemoryLayout<AVContentLightMetadata>.size ? $0.pointee.data : nil }
            .flatMap { Self.contentLight(UnsafeRawPointer($0).load(as: AVContentLightMetadata.self)) }
        self.init(display, light)
    }

    private init?(_ display: MasteringDisplay?, _ light: ContentLight?) {
        guard display != nil || light != nil else { return nil }
        self.init(masteringDisplay: display, contentLight: light)
    }

    /// Each part from `self`, or else from `other`: a container may hold one part and the SEI the other.
    func filled(from other: HDR10Metadata?) -> HDR10Metadata {
        HDR10Metadata(masteringDisplay: masteringDisplay ?? other?.masteringDisplay,
                      contentLight: contentLight ?? other?.contentLight)
    }

    /// A display without both its primaries and its luminance cannot be written: x265 and MP4's `mdcv` need all of it.
    private static func masteringDisplay(_ metadata: AVMasteringDisplayMetadata) -> MasteringDisplay? {
        guard metadata.has_primaries != 0, metadata.has_luminance != 0 else { return nil }
        func units(_ value: AVRational, _ scale: Int) -> Int? {
            guard value.den > 0, value.num >= 0 else { return nil }
            return Int(av_rescale(Int64(value.num), Int64(scale), Int64(value.den)))
        }
        func point(_ xy: (AVRational, AVRational)) -> Chromaticity? {
            guard let x = units(xy.0, chromaticityUnits), let y = units(xy.1, chromaticityUnits),
                  x <= chromaticityUnits, y <= chromaticityUnits else { return nil }
            return Chromaticity(x: x, y: y)
        }
        // libav keeps the primaries in red, green, blue order.
        let primaries = metadata.display_primaries
        guard let red = point(primaries.0), let green = point(primaries.1), let blue = point(primaries.2),
              let white = point(metadata.white_point),
              let maxLuminance = units(metadata.max_luminance, luminanceUnits),
              let minLuminance = units(metadata.min_luminance, luminanceUnits),
              maxLuminance > 0, maxLuminance <= Int(UInt32.max), minLuminance <= maxLuminance
        else { return nil }
        return MasteringDisplay(red: red, green: green, blue: blue, whitePoint: white,
                                maxLuminance: maxLuminance, minLuminance: minLuminance)
    }

    /// 0,0 is CTA-861.3's "unknown": nothing to carry. Its fields (and HEVC's, and `clli`'s) are 16 bits, which
    /// libav's are not.
    private static func contentLight(_ metadata: AVContentLightMetadata) -> ContentLight? {
        guard metadata.MaxCLL > 0 || metadata.MaxFALL > 0 else { return nil }
        return ContentLight(maxCLL: Int(min(metadata.MaxCLL, 65535)), maxFALL: Int(min(metadata.MaxFALL, 65535)))
    }

    /// Adds both parts to an output stream's side data, from which the MP4 muxer writes `mdcv` and `clli` and the
    /// Matroska muxer MasteringMetadata and MaxCLL/MaxFALL. Before the header is written.
    package func attach(to stream: UnsafeMutablePointer<AVStream>) throws(TranscodeError) {
        if let display = masteringDisplay {
            guard let metadata = av_mastering_display_metadata_alloc() else {
                throw .allocationFailed("av_mastering_display_metadata_alloc")
            }
            func ratio(_ value: Int, _ scale: Int) -> AVRational { AVRational(num: Int32(value), den: Int32(scale)) }
            func pair(_ point: Chromaticity) -> (AVRational, AVRational) {
                (ratio(point.x, Self.chromaticityUnits), ratio(point.y, Self.chromaticityUnits))
            }
            metadata.pointee.display_primaries = (pair(display.red), pair(display.green), pair(display.blue))
            metadata.pointee.white_point = pair(display.whitePoint)
            metadata.pointee.max_luminance = ratio(display.maxLuminance, Self.luminanceUnits)
            metadata.pointee.min_luminance = ratio(display.minLuminance, Self.luminanceUnits)
            metadata.pointee.has_primaries = 1
            metadata.pointee.has_luminance = 1
            try Self.add(UnsafeMutableRawPointer(metadata), MemoryLayout<AVMasteringDisplayMetadata>.size,
                         AV_PKT_DATA_MASTERING_DISPLAY_METADATA, to: stream)
        }
        if let light = contentLight {
            var size = 0
            guard let metadata = av_content_light_metadata_alloc(&size) else {
                throw .allocationFailed("av_content_light_metadata_alloc")
            }
            metadata.pointee.MaxCLL = UInt32(clamping: light.maxCLL)
            metadata.pointee.MaxFALL = UInt32(clamping: light.maxFALL)
            try Self.add(UnsafeMutableRawPointer(metadata), size, AV_PKT_DATA_CONTENT_LIGHT_LEVEL, to: stream)
        }
    }

    /// The stream takes the buffer on success; on failure it is still ours to free.
    private static func add(
        _ data: UnsafeMutableRawPointer, _ size: Int, _ type: AVPacketSideDataType,
        to stream: UnsafeMutablePointer<AVStream>
    ) throws(TranscodeError) {
        let status = av_stream_add_side_data(stream, type, data.assumingMemoryBound(to: UInt8.self), size)
        if status < 0 {
            av_free(data)
            throw libavError(status, "adding HDR10 side data")
        }
    }

    /// x265's (and x264's) `x265-params` keys, in its own units.
    var x265Parameters: [String] {
        var keys: [String] = []
        if let display = masteringDisplay { keys.append("master-display=\(Self.x265Text(display))") }
        if let light = contentLight { keys.append("max-cll=\(light.maxCLL),\(light.maxFALL)") }
        return keys
    }

    /// SVT-AV1's `svtav1-params` keys: the same layout as x265's, in chromaticity and cd/m² themselves.
    var svtAV1Parameters: [String] {
        var keys: [String] = []
        if let display = masteringDisplay {
            func point(_ p: Chromaticity) -> String {
                "(\(decimal(p.x, Self.chromaticityUnits)),\(decimal(p.y, Self.chromaticityUnits)))"
            }
            keys.append("mastering-display=G\(point(display.green))B\(point(display.blue))R\(point(display.red))"
                + "WP\(point(display.whitePoint))L(\(decimal(display.maxLuminance, Self.luminanceUnits)),"
                + "\(decimal(display.minLuminance, Self.luminanceUnits)))")
        }
        if let light = contentLight { keys.append("content-light=\(light.maxCLL),\(light.maxFALL)") }
        return keys
    }

    private static func x265Text(_ display: MasteringDisplay) -> String {
        func point(_ p: Chromaticity) -> String { "(\(p.x),\(p.y))" }
        return "G\(point(display.green))B\(point(display.blue))R\(point(display.red))WP\(point(display.whitePoint))"
            + "L(\(display.maxLuminance),\(display.minLuminance))"
    }
}

extension HDR10Metadata {
    /// Packets read ahead for the first frame at most: enough for any decoder's reordering delay, with audio
    /// interleaved, and still a bounded amount of memory.
    static let lookaheadPackets = 256

    /// What `hdr=keep` carries over from the input's video stream: its container's side data, each part missing
    /// there taken from the first decoded frame; nil when tone mapping, for SDR, or when the input has none.
    static func kept(
        stream: UnsafeMutablePointer<AVStream>, reader: PacketReader, options: TranscodeOptions, control: JobControl
    ) throws(TranscodeError) -> HDR10Metadata? {
        guard options.hdr == .keep, HDRTransfer(stream.pointee.codecpar.pointee.color_trc) != nil else { return nil }
        let container = HDR10Metadata(stream: stream)
        if container?.masteringDisplay != nil && container?.contentLight != nil { return container }
        let frame = try firstFrame(stream: stream, reader: reader, options: options, control: control)
        return container?.filled(from: frame) ?? frame
    }

    /// The side data of the stream's first decoded frame, from a decoder of its own that is gone before the
    /// pipeline's opens. One thread, so that the first frame comes out after the fewest packets.
    private static func firstFrame(
        stream: UnsafeMutablePointer<AVStream>, reader: PacketReader, options: TranscodeOptions, control: JobControl
    ) throws(TranscodeError) -> HDR10Metadata? {
        let parameters = stream.pointee.codecpar!
        guard let codec = avcodec_find_decoder(parameters.pointee.codec_id) else { return nil }
        let decoder = try CodecContext(codec)
        guard avcodec_parameters_to_context(decoder.pointer, parameters) >= 0 else { return nil }
        decoder.pointer.pointee.pkt_timebase = stream.pointee.time_base
        decoder.pointer.pointee.thread_count = 1
        decoder.pointer.pointee.max_pixels = Int64(options.limits.maxPixels)
        // A decoder that cannot open here fails in the pipeline, with the error the job reports.
        guard (try? decoder.open()) != nil else { return nil }
        let frame = try Frame()
        var found: HDR10Metadata?
        var decoded = false
        func receive() -> Bool {
            guard avcodec_receive_frame(decoder.pointer, frame.pointer) >= 0 else { return false }
            found = HDR10Metadata(frame: frame.pointer)
            av_frame_unref(frame.pointer)
            return true
        }
        try reader.readAhead(maxPackets: lookaheadPackets, control: control) { packet in
            guard packet.pointee.stream_index == stream.pointee.index else { return false }
            // A damaged packet is the pipeline's to count; here it only delays the first frame.
            _ = avcodec_send_packet(decoder.pointer, packet)
            decoded = receive()
            return decoded
        }
        if !decoded, avcodec_send_packet(decoder.pointer, nil) >= 0 { _ = receive() }
        return found
    }
}

/// `value / scale` written out exactly, for a `scale` that divides a power of ten: 34000 in 50000ths is "0.68000".
/// Without Foundation, and without a binary float's rounding.
func decimal(_ value: Int, _ scale: Int) -> String {
    var places = 0
    var unit = 1
    while unit < scale { unit *= 10; places += 1 }
    let scaled = value * (unit / scale)
    let fraction = String(scaled % unit)
    let whole = String(scaled / unit)
    return places == 0 ? whole : whole + "." + String(repeating: "0", count: places - fraction.count) + fraction
}
