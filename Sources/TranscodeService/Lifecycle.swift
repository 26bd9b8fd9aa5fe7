import Synchronization
import SystemSupport

public let serviceVersion = "0.1.0"

/// Draining state and uptime, readable from the event loop.
public final class Lifecycle: Sendable {
    private let draining = Atomic<Bool>(false)
    private let started = ContinuousClock.now

    public init() {}

    public var isDraining: Bool { draining.load(ordering: .relaxed) }
    public func beginDraining() { draining.store(true, ordering: .relaxed) }
    public var uptime: Double { (ContinuousClock.now - started).seconds }
}
