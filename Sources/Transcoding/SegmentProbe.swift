import CFFmpeg

extension SegmentPlan {
    /// Reads the input's video packets, without decoding any, and plans segments at its keyframes. Nil when the
    /// video cannot be split faithfully: a codec MP4 cannot carry by stream copy, packets without timestamps (AVI's
    /// B-frames), a still-image format, or a frame that would fall on the wrong side of every cut. Also nil, after
    /// reading only the container's header, when it declares a duration of at most `skipUpTo` seconds.
    public static func probe(
        _ input: MediaLocation, segmentSeconds: Double, minimumSeconds: Double, skipUpTo: Double = 0,
        postRollFrames: Int = SegmentPlan.postRollFrames,
        limits: TranscodeOptions.Limits = TranscodeOptions.Limits(), cancellation: TranscodeCancellation? = nil
    ) throws(TranscodeError) -> SegmentPlan? {
        Libav.configureLogging()
        let control = JobControl(cancellation: cancellation, timeLimitSeconds: limits.jobTimeLimitSeconds)
        let demuxer = try Demuxer(input, limits: limits, control: control)
        guard let stream = demuxer.bestVideoStream() else { throw .noVideoStream }
        let declared = demuxer.context.pointee.duration
        if declared != shim_nopts_value(), Double(declared) / Double(AV_TIME_BASE) <= skipUpTo { return nil }
        guard !demuxer.isImageFormat, SegmentSplit.mp4CanCarry(stream.pointee.codecpar.pointee.codec_id) else {
            return nil
        }
        for other in demuxer.streams where other != stream { other.pointee.discard = AVDISCARD_ALL }

        var packets: [(pts: Int64, key: Bool, duration: Int64)] = []
        let packet = try Packet()
        while true {
            try control.checkpoint()
            let status = av_read_frame(demuxer.context, packet.pointer)
            if status == shim_averror_eof() { break }
            if status < 0 {
                if let reason = control.shouldStop() { throw reason }
                // A damaged tail: the whole-file transcode copes with it; a split would only guess.
                return nil
            }
            defer { av_packet_unref(packet.pointer) }
            let p = packet.pointer.pointee
            guard p.stream_index == stream.pointee.index else { continue }
            guard let pts = saneTimestamp(p.pts) else { return nil }
            packets.append((pts, p.flags & AV_PKT_FLAG_KEY != 0, saneDuration(p.duration)))
            guard packets.count <= limits.maxFrames else { throw .limitExceeded(.frames) }
        }
        guard let first = packets.min(by: { $0.pts < $1.pts }), let last = packets.max(by: { $0.pts < $1.pts }) else {
            return nil
        }
        let timeBase = Rational(stream.pointee.time_base)
        let seconds = { (pts: Int64) in Double(pts - first.pts) * timeBase.value }
        let duration = seconds(last.pts + last.duration)

        // Keyframes in decode order; a cut is a keyframe's packet index and presentation time.
        let keys = packets.indices.filter { packets[$0].key }
        var (length, minimum) = (segmentSeconds, minimumSeconds)
        var cutIndices: [Int]
        repeat {
            cutIndices = SegmentPlan.cuts(
                keyframes: keys.map { seconds(packets[$0].pts) }, duration: duration, segmentSeconds: length,
                minimumSeconds: minimum)
            // Each segment is a descriptor of the stitch job: a very long video gets longer segments instead.
            (length, minimum) = (length * 2, minimum * 2)
        } while cutIndices.count > maximumSegments
        var cutPackets = cutIndices.map { keys[$0] }
        // The first segment starts with the first packet whatever it is; the whole-file transcode would decode it too.
        if cutPackets.first != nil { cutPackets[0] = 0 }

        var segments: [Segment] = []
        for (i, from) in cutPackets.enumerated() {
            let start = i == 0 ? nil : packets[from].pts
            let next = i + 1 < cutPackets.count ? cutPackets[i + 1] : nil
            let end = next.map { packets[$0].pts }
            // Open GOP: frames decoded after the next cut but shown before it reference this segment's pictures, so
            // they are carried here (post-roll) and dropped by timestamp from the next segment.
            var endPacket = packets.count
            if let next, let end {
                endPacket = next
                for j in next..<packets.count where packets[j].pts < end { endPacket = j + 1 }
                // A frame decoded before the cut but shown after it would belong to no segment.
                if packets[from..<next].contains(where: { $0.pts >= end }) { return nil }
                // Post-roll: the next segment's first frames, given to the encoder here and dropped (VideoPipeline),
                // through a whole run of B-frames so that none is missing from their order.
                var after = packets[next..<endPacket].filter { $0.pts >= end }.count
                while endPacket < packets.count && after < postRollFrames {
                    if packets[endPacket].pts >= end { after += 1 }
                    endPacket += 1
                }
                if let top = packets[next..<endPacket].map(\.pts).max() {
                    for j in endPacket..<min(packets.count, endPacket + 16) where packets[j].pts < top { endPacket = j + 1 }
                }
            }
            let shownFrom = start.map(seconds) ?? 0
            segments.append(
                Segment(
                    index: i, firstPacket: from, endPacket: endPacket, start: start, end: end,
                    seconds: (end.map(seconds) ?? duration) - shownFrom))
        }
        guard !segments.isEmpty else { return nil }

        let origin = saneTimestamp(demuxer.context.pointee.start_time).map {
            saneTimestamp(av_rescale_q($0, shim_time_base_q(), stream.pointee.time_base)) ?? 0
        } ?? 0
        return SegmentPlan(
            segments: segments, streamIndex: Int(stream.pointee.index), timeBase: timeBase,
            frameRate: Rational(av_guess_frame_rate(demuxer.context, stream, nil)), origin: origin,
            keyframes: keys.map { seconds(packets[$0].pts) }.sorted(), packets: packets.count, duration: duration)
    }
}
