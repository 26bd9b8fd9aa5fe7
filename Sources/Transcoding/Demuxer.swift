import CFFmpeg
import Glibc

/// An opened input container: probed against the whitelist, read only through `InputIO`, with limits checked
/// before any decoder touches the data.
final class Demuxer {
    /// Real containers only: no playlists (hls, concat, dash), no image sequences, no raw or device formats. GIF is
    /// here for animations; a GIF of one picture is refused as a still image once decoded (see `isImageFormat`).
    /// Raw DV is a camcorder's own file, its demuxer as old and as small as AVI's.
    static let videoFormats: Set<String> = [
        "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "mpegts", "mpeg", "ogg", "asf",
        "mxf", "ivf", "gif", "dv",
    ]

    /// Containers that only ever hold sound. They are opened all the same, so that a song gets the answer an M4A
    /// or an Opus file (in a video container) gets, "no video stream", rather than a "not a video" that reads as if
    /// the file were not media at all.
    static let audioFormats: Set<String> = ["mp3", "aac", "wav", "flac"]

    /// Every demuxer libav may open for us, also given to libav as `format_whitelist`.
    static let allowedFormats = videoFormats.union(audioFormats)

    /// Formats that hold still images as often as animations: one decoded picture from them is not a video.
    static let imageFormats: Set<String> = ["gif"]

    /// The GIF demuxer's timing, pinned rather than left to libav's defaults. A frame delay under 2 centiseconds
    /// (0 or 10 ms) becomes 10 centiseconds, as every browser plays it: Firefox normalises 0–10 ms to 100 ms
    /// (image/FrameTimeout.h, bug 890743), and WebKit and Chromium show any frame under 11 ms for 100 ms
    /// ("we follow Firefox's behavior", ScalableImageDecoder::frameDurationAtIndex, webkit.org/b/36082). A looping
    /// GIF is played once, not forever.
    static let gifOptions = ["min_delay": "2", "default_delay": "10", "ignore_loop": "1"]

    let context: UnsafeMutablePointer<AVFormatContext>
    let io: InputIO
    /// libav's name for the container, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
    let formatName: String
    /// Its first name, e.g. "mov".
    var shortName: String { formatName.split(separator: ",").first.map(String.init) ?? formatName }
    var isImageFormat: Bool { Demuxer.imageFormats.contains(shortName) }
    /// The opaque of the context's interrupt callback, kept alive for as long as the context (see `Muxer.control`).
    private let control: JobControl

    init(_ location: MediaLocation, limits: TranscodeOptions.Limits, control: JobControl) throws(TranscodeError) {
        self.control = control
        io = try InputIO(location, control: control)
        var format: UnsafePointer<AVInputFormat>? = nil
        let probed = av_probe_input_buffer2(io.context, &format, nil, nil, 0, UInt32(limits.probeSize))
        if probed < 0 {
            if let reason = control.shouldStop() { throw reason }
            if probed == shim_averror_eof() || probed == shim_averror_invaliddata() { throw .notAVideo(detected: nil) }
            throw libavError(probed, "probing the input")
        }
        guard let format else { throw .notAVideo(detected: nil) }
        let name = String(cString: format.pointee.name)
        guard name.split(separator: ",").contains(where: { Demuxer.allowedFormats.contains(String($0)) }) else {
            throw .notAVideo(detected: name)
        }
        formatName = name

        guard let allocated = avformat_alloc_context() else {
            throw .allocationFailed("avformat_alloc_context")
        }
        allocated.pointee.pb = io.context
        allocated.pointee.interrupt_callback = control.interruptCallback
        // Nested opens (playlists, external references) are refused whatever the demuxer asks for.
        allocated.pointee.io_open = { _, _, _, _, _ in shim_averror(EPERM) }
        var options: OpaquePointer? = nil
        defer { av_dict_free(&options) }
        av_dict_set(&options, "probesize", String(limits.probeSize), 0)
        av_dict_set(&options, "format_whitelist", Demuxer.allowedFormats.sorted().joined(separator: ","), 0)
        if name == "gif" { for (key, value) in Demuxer.gifOptions { av_dict_set(&options, key, value, 0) } }
        var opened: UnsafeMutablePointer<AVFormatContext>? = allocated
        let status = avformat_open_input(&opened, nil, format, &options)
        guard status >= 0, let opened else {
            // avformat_open_input has freed the context already.
            if let reason = control.shouldStop() { throw reason }
            throw .corruptInput("the \(name.split(separator: ",").first!) header cannot be read (\(averrorText(status)))")
        }
        context = opened
        // From here a throw runs deinit, which closes the input.

        guard Int(context.pointee.nb_streams) <= limits.maxStreams else { throw .limitExceeded(.streams) }
        try checkPixels(limits)
        try findStreamInfo(limits, control: control)
        try checkPixels(limits)
        for stream in streams where stream.pointee.codecpar.pointee.codec_type == AVMEDIA_TYPE_VIDEO {
            // A container that counts its frames (MP4's sample table) is refused before any is decoded.
            if stream.pointee.nb_frames > Int64(limits.maxFrames) { throw .limitExceeded(.frames) }
        }
        if context.pointee.duration != shim_nopts_value(),
            Double(context.pointee.duration) / Double(AV_TIME_BASE) > limits.maxDurationSeconds
        {
            throw .limitExceeded(.duration)
        }
    }

    deinit {
        var closing: UnsafeMutablePointer<AVFormatContext>? = context
        avformat_close_input(&closing)
    }

    var streams: [UnsafeMutablePointer<AVStream>] {
        (0..<Int(context.pointee.nb_streams)).map { context.pointee.streams[$0]! }
    }

    /// The video stream the ffmpeg CLI would pick: the largest picture that is not cover art.
    func bestVideoStream() -> UnsafeMutablePointer<AVStream>? {
        streams
            .filter {
                $0.pointee.codecpar.pointee.codec_type == AVMEDIA_TYPE_VIDEO
                    && $0.pointee.disposition & AV_DISPOSITION_ATTACHED_PIC == 0
            }
            .max { a, b in
                let pa = Int(a.pointee.codecpar.pointee.width) * Int(a.pointee.codecpar.pointee.height)
                let pb = Int(b.pointee.codecpar.pointee.width) * Int(b.pointee.codecpar.pointee.height)
                return pa < pb
            }
    }

    func bestAudioStream(related video: Int32) -> UnsafeMutablePointer<AVStream>? {
        let index = av_find_best_stream(context, AVMEDIA_TYPE_AUDIO, -1, video, nil, 0)
        return index >= 0 ? context.pointee.streams[Int(index)] : nil
    }

    /// Declared (or probed) dimensions are checked before any decoder allocates a picture of that size.
    private func checkPixels(_ limits: TranscodeOptions.Limits) throws(TranscodeError) {
        for stream in streams where stream.pointee.codecpar.pointee.codec_type == AVMEDIA_TYPE_VIDEO {
            let parameters = stream.pointee.codecpar.pointee
            if Int(parameters.width) * Int(parameters.height) > limits.maxPixels
                || Int(parameters.width) > 16384 || Int(parameters.height) > 16384
            {
                throw .limitExceeded(.pixels)
            }
        }
    }

    private func findStreamInfo(_ limits: TranscodeOptions.Limits, control: JobControl) throws(TranscodeError) {
        // The decoders opened for probing obey the same pixel limit as ours.
        let count = Int(context.pointee.nb_streams)
        let perStream = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: max(count, 1))
        perStream.initialize(repeating: nil, count: max(count, 1))
        defer {
            for i in 0..<max(count, 1) { av_dict_free(&perStream[i]) }
            perStream.deallocate()
        }
        for i in 0..<count { av_dict_set(&perStream[i], "max_pixels", String(limits.maxPixels), 0) }
        let status = avformat_find_stream_info(context, perStream)
        if status < 0 {
            if let reason = control.shouldStop() { throw reason }
            throw .corruptInput("the streams cannot be analysed (\(averrorText(status)))")
        }
    }
}
