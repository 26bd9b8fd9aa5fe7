import CFFmpeg
import Glibc
import SystemSupport

extension TranscodeOptions {
    /// One still image of the video instead of the video, for a player's poster or a listing. Size, HDR,
    /// deinterlacing, threads and limits are the transcode's; codec, format and quality are not used.
    public struct Poster: Sendable, Equatable {
        public enum ImageFormat: String, Sendable, CaseIterable {
            case jpeg, webp, png

            public var mimeType: String { "image/\(rawValue)" }
            var encoderName: String { self == .jpeg ? "mjpeg" : self == .webp ? "libwebp" : "png" }
            /// JPEG is full range by definition (a browser shows TV-range JPEG washed out); PNG is RGB.
            var pixelFormat: AVPixelFormat {
                switch self {
                case .jpeg: AV_PIX_FMT_YUVJ420P
                case .webp: AV_PIX_FMT_YUV420P
                case .png: AV_PIX_FMT_RGB24
                }
            }
            /// JPEG (JFIF) and WebP decoders assume the BT.601 matrix whatever the video's was; PNG is converted to
            /// RGB with the frame's own matrix by the format conversion.
            var finalFilters: String? {
                switch self {
                case .jpeg: "scale=out_color_matrix=bt601:out_range=pc"
                case .webp: "scale=out_color_matrix=bt601:out_range=tv"
                case .png: nil
                }
            }
        }

        /// Seconds from the start; nil (`auto`): the most representative frame of the first seconds (`Thumbnail`).
        public var at: Double?
        public var format: ImageFormat

        public init(at: Double? = nil, format: ImageFormat = .jpeg) {
            self.at = at
            self.format = format
        }
    }
}

public struct PosterReport: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// The chosen frame's time, seconds from the start.
    public var seconds: Double
    public var bytes: Int
}

/// Writes one frame of `input` as an image at `output`: the frame shown at `options.at` (the first whose time is at or
/// after it, as `ffmpeg -ss <at> -i input -frames:v 1` picks), or with `auto` the most representative frame of the
/// first seconds (`Thumbnail`), converted exactly as a transcode converts it (deinterlaced, tone-mapped, scaled) and
/// turned upright, since an image carries no rotation.
@discardableResult
public func poster(input: MediaLocation, output: MediaLocation, options: TranscodeOptions,
                   cancellation: TranscodeCancellation? = nil) throws(TranscodeError) -> PosterReport {
    try options.validate()
    Libav.configureLogging()
    let request = options.poster ?? TranscodeOptions.Poster()
    let control = JobControl(cancellation: cancellation, timeLimitSeconds: options.limits.jobTimeLimitSeconds)
    var target = request.at.map(FrameChooser.Target.time)
    if target == nil {
        // Two passes rather than keeping the candidates: a few seconds of 4K frames would be gigabytes, their
        // histograms are kilobytes. The second pass opens the input afresh, so its frames come in the same order.
        var thumbnail = Thumbnail()
        _ = try eachFrame(of: input, options: options, control: control, from: nil) { frame, seconds in
            thumbnail.add(frame, seconds: seconds)
        }
        target = .index(thumbnail.choice)
    }
    var chooser = FrameChooser(target!)
    let chosen = try Frame()
    let opened = try eachFrame(of: input, options: options, control: control, from: request.at) {
        frame, seconds throws(TranscodeError) in
        if chooser.offer(seconds: seconds) {
            try check(av_frame_ref(chosen.pointer, frame), "keeping a frame")
        }
        return chooser.isDone
    }
    guard chooser.hasFrame else {
        if let at = request.at, let last = chooser.lastSeconds { throw .pastTheEnd(at: at, last: last) }
        throw .corruptInput("no video frame could be decoded")
    }
    let image = try withExtendedLifetime(opened.demuxer) { () throws(TranscodeError) in
        try encodeImage(chosen.pointer, stream: opened.stream, format: request.format, options: options)
    }
    try writeAll(image.bytes, to: output)
    return PosterReport(width: image.width, height: image.height, seconds: chooser.chosenSeconds ?? 0,
                        bytes: image.bytes.count)
}

/// Opens `input`'s video (from the keyframe at or before `at`, if given) and decodes it, handing each frame and its
/// time from the start to `body` until `body` says it is done or the video ends. The demuxer is returned open: the
/// stream it owns describes the frames.
private func eachFrame(
    of input: MediaLocation, options: TranscodeOptions, control: JobControl, from at: Double?,
    _ body: (UnsafeMutablePointer<AVFrame>, Double) throws(TranscodeError) -> Bool
) throws(TranscodeError) -> (demuxer: Demuxer, stream: UnsafeMutablePointer<AVStream>) {
    let demuxer = try Demuxer(input, limits: options.limits, control: control)
    guard let stream = demuxer.bestVideoStream() else { throw .noVideoStream }
    for other in demuxer.streams where other != stream { other.pointee.discard = AVDISCARD_ALL }
    let decoder = try openVideoDecoder(stream, options: options)
    let timeBase = stream.pointee.time_base
    let start = saneTimestamp(demuxer.context.pointee.start_time).map {
        av_rescale_q($0, shim_time_base_q(), timeBase)
    } ?? 0
    if let at, at > 0 {
        // To the keyframe at or before `at`; decoding goes on from there. A container that cannot seek is read from
        // its start, which is where it already is.
        let target = Int64(at * Double(AV_TIME_BASE)) + (saneTimestamp(demuxer.context.pointee.start_time) ?? 0)
        _ = avformat_seek_file(demuxer.context, -1, Int64.min, target, target, 0)
    }
    let decoded = try Frame()
    let packet = try Packet()
    var errors = 0
    var done = false
    func take() throws(TranscodeError) {
        try DecodeLoop.drain(
            receive: { avcodec_receive_frame(decoder.pointer, decoded.pointer) }, control: control, errors: &errors,
            what: "decoding video"
        ) { () throws(TranscodeError) in
            defer { av_frame_unref(decoded.pointer) }
            guard !done, let pts = saneTimestamp(decoded.pointer.pointee.best_effort_timestamp) else { return }
            done = try body(decoded.pointer, Double(pts - start) * av_q2d(timeBase))
        }
    }
    while !done {
        try control.checkpoint()
        let status = av_read_frame(demuxer.context, packet.pointer)
        if status < 0 { break }
        defer { av_packet_unref(packet.pointer) }
        guard packet.pointer.pointee.stream_index == stream.pointee.index else { continue }
        if avcodec_send_packet(decoder.pointer, packet.pointer) < 0 { continue }
        try take()
    }
    if !done {
        avcodec_send_packet(decoder.pointer, nil)
        try take()
    }
    return (demuxer, stream)
}

/// The frame a poster shows: at a time, the first frame at or after it; else the frame with that index among those
/// decoded (with timestamps) from the start.
struct FrameChooser {
    enum Target: Equatable { case time(Double), index(Int) }
    let target: Target
    private(set) var hasFrame = false
    private(set) var isDone = false
    private(set) var chosenSeconds: Double?
    private(set) var lastSeconds: Double?
    private var seen = 0

    init(_ target: Target) { self.target = target }

    /// Whether the frame at `seconds`, the next one decoded, is the one to keep.
    mutating func offer(seconds: Double) -> Bool {
        lastSeconds = max(lastSeconds ?? seconds, seconds)
        defer { seen += 1 }
        switch target {
        // A microsecond of slack: timestamps in 1/90000 or milliseconds do not land on `at` exactly.
        case .time(let at) where seconds < at - 1e-6: return false
        case .index(let index) where seen != index: return false
        default:
            (hasFrame, isDone, chosenSeconds) = (true, true, seconds)
            return true
        }
    }
}

/// `auto`'s choice, as libavfilter's `thumbnail` filter makes it (vf_thumbnail.c): of the frames of the first
/// `seconds` (at most `limit`), the one whose histogram is closest, by the sum of squared differences, to their
/// average. Frames whose luma is nearly uniform (black, white, a blank fade) are left out while any other exists:
/// an intro of black would otherwise pull the average, and the choice, towards itself. The histogram is of luma,
/// sampled; formats without a luma plane (RGB, palettes) give no histogram, and then the first frame is chosen.
struct Thumbnail {
    static let seconds = 3.0
    static let limit = 200
    private var histograms: [[Double]] = []
    private var informative: [Bool] = []

    /// Takes the histogram of the next frame, shown at `seconds`; true once enough frames have been seen (the frame
    /// is then not taken if it is past the first seconds).
    mutating func add(_ frame: UnsafeMutablePointer<AVFrame>, seconds: Double) -> Bool {
        if seconds >= Self.seconds && !histograms.isEmpty { return true }
        let histogram = Self.lumaHistogram(frame)
        histograms.append(histogram ?? [])
        informative.append(histogram.map { Self.spread($0) >= 10 } ?? false)
        return histograms.count >= Self.limit
    }

    /// The chosen frame's index among those added.
    var choice: Int {
        let candidates = histograms.indices.filter { informative[$0] }
        guard !candidates.isEmpty else { return 0 }
        var average = [Double](repeating: 0, count: 256)
        for index in candidates {
            for bin in 0..<256 { average[bin] += histograms[index][bin] / Double(candidates.count) }
        }
        return candidates.min { a, b in distance(histograms[a], average) < distance(histograms[b], average) }!
    }

    private func distance(_ histogram: [Double], _ average: [Double]) -> Double {
        (0..<256).reduce(0) { sum, bin in sum + (histogram[bin] - average[bin]) * (histogram[bin] - average[bin]) }
    }

    /// The standard deviation of the sampled luma, in 8-bit codes.
    private static func spread(_ histogram: [Double]) -> Double {
        let mean = (0..<256).reduce(0) { $0 + Double($1) * histogram[$1] }
        let squares = (0..<256).reduce(0) { $0 + Double($1 * $1) * histogram[$1] }
        return max(squares - mean * mean, 0).squareRoot()
    }

    /// The share of sampled luma samples at each 8-bit code (a higher depth shifted down); nil for formats it cannot read.
    private static func lumaHistogram(_ frame: UnsafeMutablePointer<AVFrame>) -> [Double]? {
        guard let descriptor = av_pix_fmt_desc_get(AVPixelFormat(rawValue: frame.pointee.format)),
            descriptor.pointee.flags & UInt64(AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_HWACCEL) == 0,
            let plane = frame.pointee.data.0
        else { return nil }
        let shift = max(Int(descriptor.pointee.comp.0.depth) - 8, 0)
        let wide = descriptor.pointee.comp.0.step > 1
        let (width, height, lineSize) = (Int(frame.pointee.width), Int(frame.pointee.height), Int(frame.pointee.linesize.0))
        // About 128 × 128 samples, whatever the size.
        let (stepX, stepY) = (max(width / 128, 1), max(height / 128, 1))
        var counts = [Int](repeating: 0, count: 256)
        var total = 0
        for y in stride(from: 0, to: height, by: stepY) {
            let row = plane + y * lineSize
            for x in stride(from: 0, to: width, by: stepX) {
                let value = wide ? Int(UnsafeRawPointer(row + 2 * x).loadUnaligned(as: UInt16.self)) >> shift : Int(row[x])
                counts[min(value, 255)] += 1
                total += 1
            }
        }
        guard total > 0 else { return nil }
        return counts.map { Double($0) / Double(total) }
    }
}

/// The decoder a transcode or a poster reads the video with: the container's parameters, its time base, the
/// pixel limit, the thread count.
func openVideoDecoder(_ stream: UnsafeMutablePointer<AVStream>, options: TranscodeOptions) throws(TranscodeError) -> CodecContext {
    let parameters = stream.pointee.codecpar!
    guard let codec = avcodec_find_decoder(parameters.pointee.codec_id) else {
        throw .unsupportedCodec(String(cString: avcodec_get_name(parameters.pointee.codec_id)))
    }
    let decoder = try CodecContext(codec)
    try check(avcodec_parameters_to_context(decoder.pointer, parameters), "copying decoder parameters")
    decoder.pointer.pointee.pkt_timebase = stream.pointee.time_base
    decoder.pointer.pointee.thread_count = Int32(options.threads)
    decoder.pointer.pointee.max_pixels = Int64(options.limits.maxPixels)
    do { try decoder.open() } catch {
        throw .unsupportedCodec(String(cString: avcodec_get_name(parameters.pointee.codec_id)))
    }
    return decoder
}

/// Converts `frame` as a transcode would, turned upright, and encodes it as one image.
private func encodeImage(
    _ frame: UnsafeMutablePointer<AVFrame>, stream: UnsafeMutablePointer<AVStream>,
    format: TranscodeOptions.Poster.ImageFormat, options: TranscodeOptions
) throws(TranscodeError) -> (bytes: [UInt8], width: Int, height: Int) {
    // `width` and `height` bound the upright picture: a turned one is scaled within them before it is turned.
    let turn = PictureTurn(stream)
    let swaps = turn?.swapsSides == true
    let (width, height) = (Int(frame.pointee.width), Int(frame.pointee.height))
    let upright = outputSize(
        width: swaps ? height : width, height: swaps ? width : height, maxWidth: options.maxWidth,
        maxHeight: options.maxHeight)
    let target = swaps ? (upright.height, upright.width) : (upright.width, upright.height)
    let filter = try VideoFilter(
        target: (Int32(target.0), Int32(target.1)), timeBase: stream.pointee.time_base,
        streamFieldOrder: stream.pointee.codecpar.pointee.field_order, options: options,
        turn: turn, outputFormat: format.pixelFormat, finalFilters: format.finalFilters)
    let converted = try Frame()
    func keep(_ picture: UnsafeMutablePointer<AVFrame>) throws(TranscodeError) {
        guard converted.pointer.pointee.width == 0 else { return }
        try check(av_frame_ref(converted.pointer, picture), "keeping a frame")
    }
    if frame.pointee.pts == shim_nopts_value() { frame.pointee.pts = 0 }
    try filter.convert(frame, emit: keep)
    try filter.finish(emit: keep)
    guard converted.pointer.pointee.width > 0 else { throw .corruptInput("the frame could not be converted") }

    guard let codec = avcodec_find_encoder_by_name(format.encoderName) else {
        throw .internal(averror: shim_averror_decoder_not_found(), message: "\(format.encoderName) is not available")
    }
    let encoder = try CodecContext(codec)
    let enc = encoder.pointer
    enc.pointee.width = converted.pointer.pointee.width
    enc.pointee.height = converted.pointer.pointee.height
    enc.pointee.pix_fmt = format.pixelFormat
    enc.pointee.time_base = AVRational(num: 1, den: 25)
    enc.pointee.sample_aspect_ratio = converted.pointer.pointee.sample_aspect_ratio
    var privateOptions: [String: String] = [:]
    if format == .jpeg {
        // A fixed quantiser (the CLI's -q:v 2): the default is a bit rate, which means nothing for one picture.
        enc.pointee.flags |= AV_CODEC_FLAG_QSCALE
        enc.pointee.global_quality = 2 * FF_QP2LAMBDA
        enc.pointee.color_range = AVCOL_RANGE_JPEG
    }
    if format == .webp { privateOptions["quality"] = "85" }
    try encoder.open(options: privateOptions)
    converted.pointer.pointee.pts = 0
    converted.pointer.pointee.pict_type = AV_PICTURE_TYPE_NONE
    let packet = try Packet()
    var bytes: [UInt8] = []
    var status = avcodec_send_frame(enc, converted.pointer)
    if status < 0 { throw libavError(status, "encoding the image") }
    avcodec_send_frame(enc, nil)
    while true {
        status = avcodec_receive_packet(enc, packet.pointer)
        if status == shim_averror_eof() || status == shim_averror_eagain() { break }
        if status < 0 { throw libavError(status, "encoding the image") }
        if let data = packet.pointer.pointee.data {
            bytes += UnsafeBufferPointer(start: data, count: Int(packet.pointer.pointee.size))
        }
        av_packet_unref(packet.pointer)
    }
    guard !bytes.isEmpty else { throw .internal(averror: shim_averror(EIO), message: "the image encoder wrote nothing") }
    return (bytes, Int(enc.pointee.width), Int(enc.pointee.height))
}

/// The image's bytes to a path (created or truncated) or to a descriptor from its start, with pwrite.
private func writeAll(_ bytes: [UInt8], to location: MediaLocation) throws(TranscodeError) {
    let fd: Int32
    switch location {
    case .path(let path):
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw .io(Errno(rawValue: errno)) }
    case .fileDescriptor(let given): fd = given
    }
    defer { if case .path = location { close(fd) } }
    var written = 0
    while written < bytes.count {
        let count = bytes[written...].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(written)) }
        if count < 0 {
            if errno == EINTR { continue }
            throw .io(Errno(rawValue: errno))
        }
        written += count
    }
}
