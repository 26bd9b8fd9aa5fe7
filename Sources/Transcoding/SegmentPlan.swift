import CFFmpeg

/// Where a long video is cut for split-and-stitch: at the input's own keyframes, so that every segment is a stream
/// copy that decodes on its own, about `segmentSeconds` long and never shorter than `minimumSeconds`.
public struct SegmentPlan: Sendable, Equatable {
    /// One segment: the video packets it carries (decode order) and the frames it answers for (presentation order).
    public struct Segment: Sendable, Equatable {
        public var index: Int
        /// Video packets `firstPacket..<endPacket`, counted in decode order from the input's first video packet.
        public var firstPacket: Int
        public var endPacket: Int
        /// The frames this segment encodes, by presentation time in the input stream's ticks: `start..<end`, open
        /// where nil (the first segment has no start, the last no end).
        public var start: Int64?
        public var end: Int64?
        /// Presentation seconds the segment covers, for longest-first scheduling and logs.
        public var seconds: Double

        public init(index: Int, firstPacket: Int, endPacket: Int, start: Int64?, end: Int64?, seconds: Double) {
            self.index = index
            self.firstPacket = firstPacket
            self.endPacket = endPacket
            self.start = start
            self.end = end
            self.seconds = seconds
        }
    }

    public var segments: [Segment]
    /// Frames of the next segment each segment gives its encoder after its own, before it is flushed (VideoPipeline
    /// says why). `make bench-split`'s 40 s 1080p upload on two 1-core replicas: 22.9 and 23.4 s with none, 22.9 to
    /// 23.5 s with 8; 26.5 s with 40 (decoded, and sent with the cut).
    public static let postRollFrames = 8
    /// The most segments a plan has: each is one descriptor passed to the stitch's worker process.
    public static let maximumSegments = 128
    /// The input's video stream index, which the split checks it is copying.
    public var streamIndex: Int
    public var timeBase: Rational
    /// The frame rate the whole-file encoder would have been given: every segment's encoder gets the same.
    public var frameRate: Rational
    /// The container's start time in stream ticks, subtracted from every frame as a whole-file transcode does.
    public var origin: Int64
    /// Keyframe presentation times, seconds, in presentation order.
    public var keyframes: [Double]
    /// Video packets in the input.
    public var packets: Int
    /// First frame's start to the last frame's end, seconds.
    public var duration: Double

    public init(
        segments: [Segment], streamIndex: Int, timeBase: Rational, frameRate: Rational, origin: Int64,
        keyframes: [Double], packets: Int, duration: Double
    ) {
        self.segments = segments
        self.streamIndex = streamIndex
        self.timeBase = timeBase
        self.frameRate = frameRate
        self.origin = origin
        self.keyframes = keyframes
        self.packets = packets
        self.duration = duration
    }

    /// Whether splitting pays: more than one segment, and a video longer than `minimumSeconds`. (The stitch copies
    /// AAC-LC and encodes other audio once over the whole timeline, as a whole-file job would.)
    public func pays(minimumSeconds: Double) -> Bool {
        segments.count > 1 && duration > minimumSeconds
    }

    /// The window a segment's job encodes, given the split's timestamp shift (`SegmentSplit`'s read-back).
    public func window(_ segment: Segment, shift: Int64) -> TranscodeOptions.SegmentWindow {
        TranscodeOptions.SegmentWindow(
            timeBase: timeBase, frameRate: frameRate, start: segment.start, end: segment.end, shift: shift, origin: origin)
    }

    /// Indices into `keyframes` where segments start (always 0 first): the keyframe nearest each target of
    /// `segmentSeconds` after the previous cut, but at least `minimumSeconds` after it and before the end. A tail
    /// shorter than `minimumSeconds` joins the segment before it.
    public static func cuts(
        keyframes: [Double], duration: Double, segmentSeconds: Double, minimumSeconds: Double
    ) -> [Int] {
        guard !keyframes.isEmpty else { return [] }
        var cuts = [0]
        var index = 1
        while index < keyframes.count {
            let last = keyframes[cuts.last!]
            // What is left makes one segment, at most a minimum longer than the others, rather than a short tail.
            if duration - last < segmentSeconds + minimumSeconds { break }
            let target = last + segmentSeconds
            // Candidates leave at least the minimum on both sides of the cut.
            var best: Int? = nil
            var probe = index
            while probe < keyframes.count, keyframes[probe] - last <= segmentSeconds * 2 {
                let time = keyframes[probe]
                if time - last >= minimumSeconds, duration - time >= minimumSeconds,
                    best.map({ abs(time - target) < abs(keyframes[$0] - target) }) ?? true
                {
                    best = probe
                }
                probe += 1
            }
            if let best {
                cuts.append(best)
                index = best + 1
            } else if probe < keyframes.count {
                // No keyframe near the target: the next one past the window keeps segments from growing without bound.
                if duration - keyframes[probe] < minimumSeconds { break }
                cuts.append(probe)
                index = probe + 1
            } else {
                break
            }
        }
        return cuts
    }
}

/// A libav rational without libav's type in the public API.
public struct Rational: Sendable, Equatable, Hashable {
    public var num: Int32
    public var den: Int32
    public init(_ num: Int32, _ den: Int32) {
        self.num = num
        self.den = den
    }
    init(_ value: AVRational) { self.init(value.num, value.den) }
    var av: AVRational { AVRational(num: num, den: den) }
    public var value: Double { den == 0 ? 0 : Double(num) / Double(den) }
}
