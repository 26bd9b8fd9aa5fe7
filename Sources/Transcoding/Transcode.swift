import CFFmpeg
import Glibc
import SystemSupport

/// What one transcode did, for logs, headers and the CLI's one-line report.
public struct TranscodeReport: Sendable, Equatable {
    public var inputFormat: String
    public var inputVideoCodec: String
    public var width: Int
    public var height: Int
    public var videoFrames: Int
    /// Audio samples written at or after time 0 (encoder priming not counted).
    public var audioSamples: Int64
    public var hasAudio: Bool
    /// The input's AAC-LC packets were copied as they were, rather than decoded and encoded again.
    public var audioCopied: Bool
    /// The input container's duration, seconds (nil when it does not say).
    public var inputDuration: Double?
    /// First to last video frame written, including the last frame's own duration, seconds.
    public var outputDuration: Double
    /// The input file's size (not the bytes libav read: its seeks read some twice and may skip others).
    public var inputBytes: Int64
    public var outputBytes: Int64
    public var seconds: Double
    /// The threads libav runs the video decoder with: the job's `threads` (the service chooses it per job), or for 0
    /// libav's own choice from the CPUs in the affinity mask (with frame threading, one more than them, at most 16;
    /// one for a decoder that has no threads).
    public var threads: Int
    /// The video filter stages that ran, in order, e.g. `["bwdif", "tonemap(hlg->bt709)"]`; empty when the decoded
    /// pictures were already what the encoder takes.
    public var videoFilters: [String]
    /// The filter chain the video went through, as `ffmpeg -vf` takes it, to reproduce the conversion with the CLI
    /// (distinct chains joined by " | " when the pictures changed mid-stream and the graph was built again; at most
    /// four).
    public var videoFilterGraph: String
    /// Times the filter graph was built again because the pictures changed shape mid-stream.
    public var videoFilterRebuilds: Int

    /// `videoFilters` as one token (the X-Video-Filters header): the names joined by commas, or `none`, then
    /// `;rebuilds=N` when the graph was built again. Bounded: see `VideoFilter.maxNamedStages`.
    public var videoFiltersText: String {
        (videoFilters.isEmpty ? "none" : videoFilters.joined(separator: ","))
            + (videoFilterRebuilds > 0 ? ";rebuilds=\(videoFilterRebuilds)" : "")
    }

    public init(
        inputFormat: String, inputVideoCodec: String, width: Int, height: Int, videoFrames: Int, audioSamples: Int64,
        hasAudio: Bool, audioCopied: Bool, inputDuration: Double?, outputDuration: Double, inputBytes: Int64,
        outputBytes: Int64, seconds: Double, threads: Int, videoFilters: [String] = [], videoFilterGraph: String = "",
        videoFilterRebuilds: Int = 0
    ) {
        self.inputFormat = inputFormat
        self.inputVideoCodec = inputVideoCodec
        self.width = width
        self.height = height
        self.videoFrames = videoFrames
        self.audioSamples = audioSamples
        self.hasAudio = hasAudio
        self.audioCopied = audioCopied
        self.inputDuration = inputDuration
        self.outputDuration = outputDuration
        self.inputBytes = inputBytes
        self.outputBytes = outputBytes
        self.seconds = seconds
        self.threads = threads
        self.videoFilters = videoFilters
        self.videoFilterGraph = videoFilterGraph
        self.videoFilterRebuilds = videoFilterRebuilds
    }

    public var summary: String {
        let input = inputDuration.map { "\(secondsText($0)) s" } ?? "unknown"
        let audio = !hasAudio ? "none" : audioCopied ? "aac(copy)" : "aac(encoded)"
        return "frames=\(videoFrames) size=\(width)x\(height) audio=\(audio) filters=\(videoFiltersText) "
            + "duration=\(secondsText(outputDuration)) s (input \(input)) "
            + "bytes=\(inputBytes)->\(outputBytes) time=\(secondsText(seconds)) s"
    }
}

/// Transcodes `input` to a web-ready file at `output`: by default H.264 yuv420p + AAC in MP4 (AAC-LC input copied,
/// other audio encoded), `+faststart`; or HEVC/AV1 in MP4, VP9/AV1 + Opus in WebM (`options.codec`, `.format`);
/// the input's timing and display rotation kept. Runs on the calling thread until done; `cancellation` stops it
/// from another thread. `progress` hears, on this thread, the share of the input's duration that the encoded video
/// covers, in steps of at least `progressStep`; never 1, which only the finished file deserves, and never when the
/// input does not say how long it is. `alive` hears the job's time limit (`Limits.jobTimeLimit`) once the input's
/// length is known, then again about once a second while frames are being encoded, so that a watcher in another
/// process can tell a long job from a hung one; last with `finishing`, when only the file's completion is left
/// (the index moved to the front: no frames, so no stall bound, only the time limit).
@discardableResult
public func transcode(
    input: MediaLocation, output: MediaLocation, options: TranscodeOptions = TranscodeOptions(),
    cancellation: TranscodeCancellation? = nil, progress: ((Double) -> Void)? = nil,
    alive: ((_ timeLimitSeconds: Double?, _ finishing: Bool) -> Void)? = nil
) throws(TranscodeError) -> TranscodeReport {
    if options.poster != nil { return try posterJob(input: input, output: output, options: options, cancellation: cancellation) }
    try options.validate()
    Libav.configureLogging()
    let started = monotonicNanos()
    let control = JobControl(cancellation: cancellation, timeLimitSeconds: options.limits.jobTimeLimitSeconds)
    try control.checkpoint()

    let demuxer = try Demuxer(input, limits: options.limits, control: control)
    guard let videoStream = demuxer.bestVideoStream() else { throw .noVideoStream }
    let muxer = try Muxer(output, container: options.container, control: control)
    let startTime = demuxer.context.pointee.start_time
    let packets = PacketReader(demuxer)
    let hdr10 = try HDR10Metadata.kept(stream: videoStream, reader: packets, options: options, control: control)
    let video = try VideoPipeline(
        stream: videoStream, demuxer: demuxer, muxer: muxer, options: options, startTime: startTime, hdr10: hdr10)
    let audio: (any AudioOutput)? =
        if options.audio, let stream = demuxer.bestAudioStream(related: videoStream.pointee.index) {
            try makeAudioOutput(stream: stream, muxer: muxer, options: options, startTime: startTime)
        } else { nil }
    // Streams we do not carry are not even demuxed.
    for stream in demuxer.streams where stream != video.input && stream != audio?.input {
        stream.pointee.discard = AVDISCARD_ALL
    }
    try muxer.writeHeader(control: control)
    let inputSeconds = demuxer.context.pointee.duration == shim_nopts_value() || demuxer.context.pointee.duration <= 0
        ? nil : Double(demuxer.context.pointee.duration) / Double(AV_TIME_BASE)
    let timeLimit = options.limits.jobTimeLimit(
        videoSeconds: inputSeconds, width: Int(video.width), height: Int(video.height))
    control.setTimeLimit(timeLimit, stallSeconds: options.limits.stallLimitSeconds)
    alive?(timeLimit, false)
    var lastAlive = (at: monotonicNanos(), frames: 0)
    var reported = 0.0
    func report() {
        if video.framesEncoded > lastAlive.frames {
            control.noteAlive()
            let now = monotonicNanos()
            if now - lastAlive.at >= 1_000_000_000 {
                alive?(timeLimit, false)
                lastAlive.at = now
            }
            lastAlive.frames = video.framesEncoded
        }
        guard let progress, let inputSeconds, let first = video.firstPts else { return }
        let covered = Double(video.encodedEndPts - first) * av_q2d(video.timeBase) / inputSeconds
        let fraction = min(max(covered, 0), progressCeiling)
        guard fraction - reported >= progressStep else { return }
        reported = fraction
        progress(fraction)
    }

    let packet = try Packet()
    demuxing: while true {
        try control.checkpoint()
        let status = packets.read(into: packet.pointer)
        if status == shim_averror_eof() { break }
        if status < 0 {
            if let reason = control.shouldStop() { throw reason }
            // A truncated or damaged tail ends the input, as in the ffmpeg CLI; nothing usable at all is an error.
            if video.framesEncoded == 0 { throw .corruptInput("unreadable data (\(averrorText(status)))") }
            break demuxing
        }
        defer { av_packet_unref(packet.pointer) }
        if packet.pointer.pointee.stream_index == video.input.pointee.index {
            try video.decode(packet.pointer, muxer: muxer, control: control)
            report()
        } else if let audio, packet.pointer.pointee.stream_index == audio.input.pointee.index {
            try audio.process(packet.pointer, muxer: muxer, control: control)
        }
    }
    try video.decode(nil, muxer: muxer, control: control)
    // The encoder's lookahead held the last frames back until this flush: a short clip reports only here.
    report()
    try audio?.process(nil, muxer: muxer, control: control)
    guard video.framesEncoded > 0 else { throw .corruptInput("no video frame could be decoded") }
    // One picture is a still image, whatever its container; an animated GIF is a video.
    if demuxer.isImageFormat && video.framesEncoded < 2 { throw .notAVideo(detected: "single-frame \(demuxer.shortName)") }
    control.setTimeLimit(timeLimit, stallSeconds: nil)
    alive?(timeLimit, true)
    try muxer.finish(control: control)

    let parameters = video.input.pointee.codecpar.pointee
    let duration = demuxer.context.pointee.duration
    return TranscodeReport(
        inputFormat: demuxer.shortName,
        inputVideoCodec: String(cString: avcodec_get_name(parameters.codec_id)),
        width: Int(video.width), height: Int(video.height),
        videoFrames: video.framesEncoded,
        audioSamples: audio?.samplesWritten ?? 0,
        hasAudio: audio != nil,
        audioCopied: audio?.isCopy ?? false,
        inputDuration: duration == shim_nopts_value() ? nil : Double(duration) / Double(AV_TIME_BASE),
        outputDuration: Double(video.endPts - (video.firstPts ?? 0)) * av_q2d(video.timeBase),
        inputBytes: fileSize(input) ?? 0,
        outputBytes: fileSize(output) ?? 0,
        seconds: Double(monotonicNanos() - started) / 1e9,
        threads: video.decoderThreads,
        videoFilters: video.filterStages,
        videoFilterGraph: video.filterGraphs.joined(separator: " | "),
        videoFilterRebuilds: video.filterRebuilds
    )
}

/// The smallest progress change `transcode` reports, so that a long job sends about a hundred reports.
public let progressStep = 0.01
/// The most progress `transcode` reports: the trailer and the moov move are still to come.
public let progressCeiling = 0.99

/// A poster as a job: the pool, the worker processes and their protocol carry transcode reports, and a poster's
/// fits one (one frame, its size, the image's bytes).
private func posterJob(
    input: MediaLocation, output: MediaLocation, options: TranscodeOptions, cancellation: TranscodeCancellation?
) throws(TranscodeError) -> TranscodeReport {
    let started = monotonicNanos()
    let made = try poster(input: input, output: output, options: options, cancellation: cancellation)
    return TranscodeReport(
        inputFormat: "", inputVideoCodec: "", width: made.width, height: made.height, videoFrames: 1, audioSamples: 0,
        hasAudio: false, audioCopied: false, inputDuration: nil, outputDuration: made.seconds, inputBytes: 0,
        outputBytes: Int64(made.bytes), seconds: Double(monotonicNanos() - started) / 1e9, threads: options.threads)
}

/// Seconds with three decimals, without Foundation.
func secondsText(_ seconds: Double) -> String {
    let total = Int((seconds * 1000).rounded())
    let fraction = String(abs(total) % 1000)
    return "\(total < 0 ? "-" : "")\(abs(total) / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
}

private func fileSize(_ location: MediaLocation) -> Int64? {
    switch location {
    case .path(let path): (try? fileStatus(atPath: path)).map { Int64($0.st_size) }
    case .fileDescriptor(let fd): try? fileSize(of: fd)
    }
}

/// Process-wide libav settings.
public enum Libav {
    /// libav logs to stderr from every thread; a service keeps it to fatal errors unless told otherwise.
    package static func configureLogging() {
        _ = once
    }

    private static let once: Void = {
        let level = Glibc.getenv("FFMPEG_PROCESSOR_LIBAV_LOG").flatMap { Int32(String(cString: $0)) }
        av_log_set_level(level ?? AV_LOG_FATAL)
    }()
}
