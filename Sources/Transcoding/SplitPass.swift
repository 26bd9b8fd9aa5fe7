extension TranscodeOptions {
    /// A split job's libav passes over the upload (plan, cut, stitch), each run as a job of its own, so that they
    /// parse the upload where every job does: in a sandboxed worker process, never in the service.
    public enum SplitPass: Sendable, Equatable {
        /// Plans the input's segments (`SegmentPlan.probe`) into the job's one extra descriptor when splitting
        /// pays (`SegmentPlan.pays`), else transcodes it whole into the output as a job without a pass would: the
        /// decision needs the upload parsed, and this way an upload that is not split costs no job more.
        case plan(segmentSeconds: Double, minimumSeconds: Double, skipUpTo: Double)
        /// Cuts every segment of `plan` from the input by stream copy, each into one of the job's extra
        /// descriptors, in order; the job's output receives each cut's timestamp shift.
        case cut(SegmentPlan)
        /// Joins the segments' answers (the job's extra descriptors, in order) with the input's audio into the
        /// job's output (`stitch`).
        case stitch(segments: Int)

        /// Descriptors the job takes beyond its input and output.
        public var extraDescriptors: Int {
            switch self {
            case .plan: 1
            case .cut(let plan): plan.segments.count
            case .stitch(let segments): segments
            }
        }
    }
}
