import CFFmpeg
import SystemSupport

/// What a stitch made.
public struct StitchReport: Sendable, Equatable {
    public var segments: Int
    public var videoFrames: Int
    public var hasAudio: Bool
    public var audioCopied: Bool
    public var audioSamples: Int64
    /// First frame's start to the last frame's end, seconds.
    public var outputDuration: Double
    public var seconds: Double

    public init(
        segments: Int, videoFrames: Int, hasAudio: Bool, audioCopied: Bool, audioSamples: Int64, outputDuration: Double,
        seconds: Double
    ) {
        self.segments = segments
        self.videoFrames = videoFrames
        self.hasAudio = hasAudio
        self.audioCopied = audioCopied
        self.audioSamples = audioSamples
        self.outputDuration = outputDuration
        self.seconds = seconds
    }
}

/// Joins the H.264 segments a split job's segments answered, in order, into one MP4 with `+faststart`: one sample
/// description (every segment's SPS/PPS must be the first's: a mismatch is an error, never a file that plays wrong
/// after a seam), the segments' timestamps as they are (they are the original's), and the source's audio, encoded
/// or copied once over the whole timeline, as a whole-file transcode would.
public func stitch(
    segments: [MediaLocation], source: MediaLocation, output: MediaLocation, options: TranscodeOptions = TranscodeOptions(),
    cancellation: TranscodeCancellation? = nil
) throws(TranscodeError) -> StitchReport {
    Libav.configureLogging()
    let started = monotonicNanos()
    let control = JobControl(cancellation: cancellation, timeLimitSeconds: options.limits.jobTimeLimitSeconds)
    guard !segments.isEmpty else { throw stitchError("no segments") }
    let parts = try segments.map { (location) throws(TranscodeError) in try StitchSegment(location, options: options, control: control) }
    for (index, part) in parts.enumerated().dropFirst() where part.extradata != parts[0].extradata {
        throw stitchError("segment \(index)'s SPS/PPS differ from segment 0's")
    }

    let original = try Demuxer(source, limits: options.limits, control: control)
    guard let originalVideo = original.bestVideoStream() else { throw .noVideoStream }
    let muxer = try Muxer(output, container: .mp4, control: control)
    let video = try muxer.addStream(copying: parts[0].stream.pointee.codecpar, timeBase: parts[0].stream.pointee.time_base)
    video.pointee.avg_frame_rate = originalVideo.pointee.avg_frame_rate
    copyDisplayMatrix(from: originalVideo, to: video)
    let audio: (any AudioOutput)? =
        if options.audio, let stream = original.bestAudioStream(related: originalVideo.pointee.index) {
            try makeAudioOutput(stream: stream, muxer: muxer, options: options, startTime: original.context.pointee.start_time)
        } else { nil }
    for stream in original.streams where stream != audio?.input { stream.pointee.discard = AVDISCARD_ALL }
    try muxer.writeHeader(control: control)

    let audioPacket = try Packet()
    func nextAudio() throws(TranscodeError) -> Bool {
        guard let audio else { return false }
        while true {
            let status = av_read_frame(original.context, audioPacket.pointer)
            if status == shim_averror_eof() { return false }
            // The whole-file transcode also ends the audio at a damaged tail.
            if status < 0 { if let reason = control.shouldStop() { throw reason } else { return false } }
            if audioPacket.pointer.pointee.stream_index == audio.input.pointee.index { return true }
            av_packet_unref(audioPacket.pointer)
        }
    }
    func audioTime() -> Double {
        let p = audioPacket.pointer.pointee
        return Double(saneTimestamp(p.dts) ?? saneTimestamp(p.pts) ?? 0) * av_q2d(audio!.input.pointee.time_base)
    }

    var current = 0
    var frames = 0
    var lastDts: Int64? = nil
    var firstPts: Int64? = nil
    var endPts: Int64 = 0
    var haveVideo = try parts[0].next(control: control)
    var haveAudio = try nextAudio()
    // Packets go out in time order across the two sources, so the interleaver never holds more than a moment.
    while haveVideo || haveAudio {
        try control.checkpoint()
        let part = parts[current]
        if haveVideo && (!haveAudio || part.time <= audioTime()) {
            let packet = part.packet.pointer
            av_packet_rescale_ts(packet, part.stream.pointee.time_base, video.pointee.time_base)
            // Each segment's encoder started its decode timestamps a B-frame delay early; at a seam they may reach
            // back past the previous segment's last. Decode time only orders the samples, presentation stays.
            if let last = lastDts, packet.pointee.dts <= last { packet.pointee.dts = last + 1 }
            guard packet.pointee.dts <= packet.pointee.pts else { throw stitchError("segment \(current) overlaps the one before") }
            lastDts = packet.pointee.dts
            firstPts = min(firstPts ?? packet.pointee.pts, packet.pointee.pts)
            endPts = max(endPts, packet.pointee.pts + packet.pointee.duration)
            frames += 1
            try muxer.write(packet, from: video.pointee.time_base, to: video, control: control)
            av_packet_unref(packet)
            haveVideo = try part.next(control: control)
            while !haveVideo, current + 1 < parts.count {
                current += 1
                haveVideo = try parts[current].next(control: control)
            }
        } else {
            try audio!.process(audioPacket.pointer, muxer: muxer, control: control)
            av_packet_unref(audioPacket.pointer)
            haveAudio = try nextAudio()
        }
    }
    try audio?.process(nil, muxer: muxer, control: control)
    try muxer.finish(control: control)
    return StitchReport(
        segments: parts.count, videoFrames: frames, hasAudio: audio != nil, audioCopied: audio?.isCopy ?? false,
        audioSamples: audio?.samplesWritten ?? 0,
        outputDuration: Double(endPts - (firstPts ?? 0)) * av_q2d(video.pointee.time_base),
        seconds: Double(monotonicNanos() - started) / 1e9)
}

func stitchError(_ what: String) -> TranscodeError {
    .internal(averror: shim_averror_invaliddata(), message: "stitch: \(what)")
}

/// One segment's answer, opened for reading its H.264 packets in decode order.
final class StitchSegment {
    let demuxer: Demuxer
    let stream: UnsafeMutablePointer<AVStream>
    let packet: Packet
    let extradata: [UInt8]
    private var started = false

    init(_ location: MediaLocation, options: TranscodeOptions, control: JobControl) throws(TranscodeError) {
        demuxer = try Demuxer(location, limits: options.limits, control: control)
        guard let stream = demuxer.bestVideoStream() else { throw stitchError("a segment has no video") }
        let parameters = stream.pointee.codecpar.pointee
        guard parameters.codec_id == AV_CODEC_ID_H264, parameters.extradata_size > 0 else {
            throw stitchError("a segment is not H.264 with an avcC")
        }
        self.stream = stream
        extradata = Array(UnsafeBufferPointer(start: parameters.extradata, count: Int(parameters.extradata_size)))
        for other in demuxer.streams where other != stream { other.pointee.discard = AVDISCARD_ALL }
        packet = try Packet()
    }

    /// The packet's decode time, seconds.
    var time: Double { Double(saneTimestamp(packet.pointer.pointee.dts) ?? 0) * av_q2d(stream.pointee.time_base) }

    /// Reads the next packet into `packet`; false at the end. The first must be an IDR picture, which needs nothing
    /// from the segment before.
    func next(control: JobControl) throws(TranscodeError) -> Bool {
        while true {
            let status = av_read_frame(demuxer.context, packet.pointer)
            if status == shim_averror_eof() { return false }
            if status < 0 { throw control.error(status, "reading a segment") }
            guard packet.pointer.pointee.stream_index == stream.pointee.index else {
                av_packet_unref(packet.pointer)
                continue
            }
            guard saneTimestamp(packet.pointer.pointee.pts) != nil, saneTimestamp(packet.pointer.pointee.dts) != nil else {
                throw stitchError("a segment's packet has no timestamp")
            }
            if !started {
                started = true
                guard containsIDR(packet.pointer.pointee) else { throw stitchError("a segment does not start with an IDR") }
            }
            return true
        }
    }

    /// Whether an AVCC packet (NAL units behind big-endian lengths of the avcC's size) holds an IDR slice.
    private func containsIDR(_ packet: AVPacket) -> Bool {
        guard extradata.count > 4, let data = packet.data else { return false }
        let lengthSize = Int(extradata[4] & 3) + 1
        var offset = 0
        let size = Int(packet.size)
        while offset + lengthSize < size {
            var length = 0
            for i in 0..<lengthSize { length = length << 8 | Int(data[offset + i]) }
            offset += lengthSize
            guard length > 0, offset + length <= size else { return false }
            if data[offset] & 0x1F == 5 { return true }
            offset += length
        }
        return false
    }
}

/// Reads a segment's answer as `stitch` will (H.264 with an avcC, an IDR first, every packet timed) without
/// decoding it, and answers its packet count: an answer from another replica that is not that is sent again.
public func checkSegmentAnswer(
    _ location: MediaLocation, limits: TranscodeOptions.Limits = TranscodeOptions.Limits()
) throws(TranscodeError) -> Int {
    var options = TranscodeOptions()
    options.limits = limits
    let control = JobControl(cancellation: nil, timeLimitSeconds: nil)
    let segment = try StitchSegment(location, options: options, control: control)
    var packets = 0
    while try segment.next(control: control) {
        av_packet_unref(segment.packet.pointer)
        packets += 1
    }
    guard packets > 0 else { throw stitchError("a segment has no packets") }
    return packets
}
