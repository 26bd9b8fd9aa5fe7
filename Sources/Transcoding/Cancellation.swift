import Synchronization

/// A flag another thread raises to stop a running transcode; the job notices it within one frame or one read.
public final class TranscodeCancellation: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public func cancel() { flag.store(true, ordering: .relaxed) }

    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
}
