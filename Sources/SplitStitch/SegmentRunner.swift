import Transcoding

/// Where a split job's segments are encoded: the coordinator's own pool (and, later, peers through the balancer).
/// SplitStitch knows nothing of routes or pools; the service supplies this.
public protocol SegmentRunner: Sendable {
    /// Encodes one segment, read from `input`, into `output`, as an ordinary job with `options` (which carry the
    /// segment's window). `parent` names the split job for logs and metrics.
    func encode(input: Int32, output: Int32, options: TranscodeOptions, bytes: Int64, parent: String) async -> SegmentAnswer
}

/// What became of one attempt at a segment.
public enum SegmentAnswer: Sendable {
    case done(TranscodeReport)
    /// No place now (the pool's 503): try again after this many seconds. Never a failure of the job.
    case busy(retryAfterSeconds: Int)
    /// The segment failed; the split job fails with this reason.
    case failed(any Error & Sendable)
}
