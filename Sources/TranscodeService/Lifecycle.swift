import Synchronization
import SystemSupport

public let serviceVersion = "0.1.0"

/// Where the service is in its life, readable from the event loop without a lock.
///
/// On SIGTERM a replica first goes lame duck: `/about` answers 503 "draining" so that load balancers take it out of
/// rotation, while every request, uploads included, is still served for `--shutdown-delay`, each answer closing its
/// connection so that keep-alive pools move elsewhere. Then it drains: it closes its idle connections, stops
/// accepting, refuses new jobs (503, not processed) on the connections it still has, and waits for the admitted ones.
public final class Lifecycle: Sendable {
    public enum Phase: Int, Sendable {
        case serving, lameDuck, draining
    }

    private let phaseValue = Atomic<Int>(Phase.serving.rawValue)
    /// When the drain ends at the latest (monotonic nanoseconds), from the moment shutdown began; 0 until then.
    private let deadline = Atomic<UInt64>(0)
    private let started = ContinuousClock.now

    public init() {}

    public var phase: Phase { Phase(rawValue: phaseValue.load(ordering: .relaxed)) ?? .serving }

    /// `/about` says "draining" (503): from the first moment of shutdown, lame duck included.
    public var isUnready: Bool { phase != .serving }

    /// New jobs are refused (503): only once the lame-duck delay is over.
    public var isDraining: Bool { phase == .draining }

    /// Shutdown begins: lame duck now, and everything over by `deadline` (monotonic nanoseconds).
    public func beginLameDuck(endingBy deadline: UInt64) {
        self.deadline.store(deadline, ordering: .relaxed)
        phaseValue.store(Phase.lameDuck.rawValue, ordering: .relaxed)
    }

    public func beginDraining() { phaseValue.store(Phase.draining.rawValue, ordering: .relaxed) }

    /// Whole seconds until the drain ends at the latest; nil while serving, or when no end was set.
    public var secondsUntilStopped: Int? {
        let end = deadline.load(ordering: .relaxed)
        guard phase != .serving, end > 0 else { return nil }
        let now = monotonicNanos()
        return end > now ? Int((end - now + 999_999_999) / 1_000_000_000) : 0
    }

    public var uptime: Double { (ContinuousClock.now - started).seconds }
}
