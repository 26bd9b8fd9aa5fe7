import CFFmpeg

/// Cuts one segment out of the input by stream copy: its video packets, as they are, in an MP4 of their own written
/// to a descriptor (an anonymous temp file; never a path).
public enum SegmentSplit {
    /// Whether the MP4 muxer takes this codec's packets as they are.
    static func mp4CanCarry(_ codec: AVCodecID) -> Bool {
        guard let mp4 = av_guess_format("mp4", nil, nil) else { return false }
        return avformat_query_codec(mp4, codec, FF_COMPLIANCE_NORMAL) == 1
    }

    /// Writes segment `index` of `plan` from `input` to `output`, reads it back and answers the window its job
    /// encodes. The MP4 muxer moves timestamps (an edit list for B-frame delay, a finer timescale): the read-back
    /// measures that shift and checks that it is the same for every packet, so the job can undo it exactly.
    public static func write(
        _ index: Int, of plan: SegmentPlan, from input: MediaLocation, to output: MediaLocation,
        limits: TranscodeOptions.Limits = TranscodeOptions.Limits(), cancellation: TranscodeCancellation? = nil
    ) throws(TranscodeError) -> TranscodeOptions.SegmentWindow {
        Libav.configureLogging()
        let segment = plan.segments[index]
        let control = JobControl(cancellation: cancellation, timeLimitSeconds: limits.jobTimeLimitSeconds)
        var written: [Int64] = []
        do {
            let demuxer = try Demuxer(input, limits: limits, control: control)
            guard plan.streamIndex < demuxer.streams.count else { throw mismatch("the input has changed") }
            let stream = demuxer.streams[plan.streamIndex]
            guard Rational(stream.pointee.time_base) == plan.timeBase else { throw mismatch("the input has changed") }
            for other in demuxer.streams where other != stream { other.pointee.discard = AVDISCARD_ALL }
            let muxer = try Muxer(output, container: .mp4, control: control)
            let copy = try muxer.addStream(copying: stream.pointee.codecpar, timeBase: stream.pointee.time_base)
            copyDisplayMatrix(from: stream, to: copy)
            try muxer.writeHeader(control: control)

            let packet = try Packet()
            var counted = 0
            while counted < segment.endPacket {
                try control.checkpoint()
                let status = av_read_frame(demuxer.context, packet.pointer)
                if status == shim_averror_eof() { break }
                if status < 0 { throw control.error(status, "reading the input for a segment") }
                defer { av_packet_unref(packet.pointer) }
                guard packet.pointer.pointee.stream_index == stream.pointee.index else { continue }
                defer { counted += 1 }
                guard counted >= segment.firstPacket else { continue }
                written.append(packet.pointer.pointee.pts)
                packet.pointer.pointee.pos = -1
                try muxer.write(packet.pointer, from: stream.pointee.time_base, to: copy, control: control)
            }
            guard written.count == segment.endPacket - segment.firstPacket else {
                throw mismatch("the input ended before segment \(index)'s last packet")
            }
            try muxer.finish(control: control)
        }
        let shift = try readBackShift(output, expected: written, timeBase: plan.timeBase, limits: limits, control: control)
        return plan.window(segment, shift: shift)
    }

    private static func readBackShift(
        _ output: MediaLocation, expected: [Int64], timeBase: Rational, limits: TranscodeOptions.Limits,
        control: JobControl
    ) throws(TranscodeError) -> Int64 {
        let demuxer = try Demuxer(output, limits: limits, control: control)
        guard let stream = demuxer.bestVideoStream() else { throw mismatch("the segment has no video") }
        let packet = try Packet()
        var shift: Int64? = nil
        var index = 0
        while true {
            let status = av_read_frame(demuxer.context, packet.pointer)
            if status == shim_averror_eof() { break }
            if status < 0 { throw control.error(status, "reading a segment back") }
            defer { av_packet_unref(packet.pointer) }
            guard index < expected.count, let pts = saneTimestamp(packet.pointer.pointee.pts) else {
                throw mismatch("the segment holds other packets than were written")
            }
            let moved = av_rescale_q(pts, stream.pointee.time_base, timeBase.av) - expected[index]
            guard shift == nil || shift == moved else { throw mismatch("the segment's timestamps moved unevenly") }
            shift = moved
            index += 1
        }
        guard index == expected.count, let shift else { throw mismatch("the segment lost packets") }
        return shift
    }

    private static func mismatch(_ what: String) -> TranscodeError {
        .internal(averror: shim_averror_invaliddata(), message: "split: \(what)")
    }
}
