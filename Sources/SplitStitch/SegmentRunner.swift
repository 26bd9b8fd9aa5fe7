import SystemSupport
import Transcoding

/// Where a split job's segments are encoded: the coordinator's own pool, or the replicas through the balancer.
/// SplitStitch knows nothing of routes or pools; the service supplies this.
public protocol SegmentRunner: Sendable {
    /// Encodes one segment, read from `input`, into `output`, as an ordinary job with `options` (which carry the
    /// segment's window). `parent` names the split job for logs and metrics; `turn` is the segment's place in the
    /// order the job offers its segments in.
    func encode(
        input: Int32, output: Int32, options: TranscodeOptions, bytes: Int64, parent: String, turn: SegmentTurn
    ) async -> SegmentAnswer
}

/// What became of one attempt at a segment.
public enum SegmentAnswer: Sendable {
    case done(TranscodeReport)
    /// No place now (the pool's 503): try again after this many seconds. Never a failure of the job.
    case busy(retryAfterSeconds: Int)
    /// The segment failed; the split job fails with this reason.
    case failed(any Error & Sendable)
}

/// A segment's place in the order its job offers them: longest first, so that the last to finish are the short
/// ones. The own pool takes them in that order anyway (the job launches them in it, as many as there are workers).
/// The balancer's queue takes them in the order their requests arrive, and a job sends them all at once: a runner
/// that offers segments there waits for its turn (`wait`) and says when its request is out (`taken`), or the
/// requests race and the queue holds them in any order (in `make bench-split`, a 5 s segment left for last had one
/// replica finish 3 s after the other).
public struct SegmentTurn: Sendable {
    /// 0 for the longest segment.
    public let rank: Int
    private let next: Locked<Int>

    /// The turns of one job's segments, in order.
    public static func sequence(count: Int) -> [SegmentTurn] {
        let next = Locked(0)
        return (0..<count).map { SegmentTurn(rank: $0, next: next) }
    }

    /// Until every segment before this one is out, polling every 2 ms. Bounded by `seconds` (a turn stuck before
    /// its request, say on a slow name lookup, must not hold the rest) and by cancellation.
    public func wait(seconds: Double = 5) async {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while next.withLock({ $0 }) < rank && ContinuousClock.now < deadline {
            guard (try? await Task.sleep(for: .milliseconds(2))) != nil else { return }
        }
    }

    /// This segment's request is out (or will not be): the next may go.
    public func taken() {
        next.withLock { $0 = max($0, rank + 1) }
    }
}
