extension TranscodeOptions {
    /// What a segment's job needs to encode exactly its own frames, with the encoder parameters and timestamps a
    /// whole-file transcode would have used: the segment's container may use another time base (MP4 doubles small
    /// timescales) and shift every timestamp (its edit list), so both are undone here.
    public struct SegmentWindow: Sendable, Equatable {
        /// The original video stream's time base: the encoder's, as in the whole-file transcode.
        public var timeBase: Rational
        /// The frame rate the whole-file encoder was given; x264 writes it into the SPS, which must match.
        public var frameRate: Rational
        /// Frames shown at `start..<end` (original ticks) are this segment's; nil is open. Those before are
        /// pre-roll, decoded only so that the ones after are right; those after are post-roll, encoded and dropped.
        public var start: Int64?
        public var end: Int64?
        /// Segment container timestamps, rescaled to `timeBase`, minus `shift` are the original's.
        public var shift: Int64
        /// The original container's start time in `timeBase`, subtracted as the whole-file transcode does.
        public var origin: Int64

        public init(timeBase: Rational, frameRate: Rational, start: Int64?, end: Int64?, shift: Int64, origin: Int64) {
            self.timeBase = timeBase
            self.frameRate = frameRate
            self.start = start
            self.end = end
            self.shift = shift
            self.origin = origin
        }
    }
}
