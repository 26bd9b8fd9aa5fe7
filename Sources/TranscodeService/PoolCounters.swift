import Synchronization
import SystemSupport
import WorkerIsolation

/// Counts the pool publishes for lock-free reading.
public final class PoolCounters: WorkerGauges {
    public let workers = Atomic<Int>(0)
    public let capacity = Atomic<Int>(0)
    /// Admitted requests not finished: uploading, queued or running.
    public let admitted = Atomic<Int>(0)
    public let running = Atomic<Int>(0)
    /// Split jobs whose coordinator has given its place back and waits for segments and the stitch: in flight,
    /// though not admitted, so a drain waits for them too.
    public let coordinating = Atomic<Int>(0)
    public let completed = Atomic<Int>(0)
    public let failed = Atomic<Int>(0)
    public let rejected = Atomic<Int>(0)
    /// Workers able to take a job now: every thread in-process; under isolation, those with a child forked and
    /// confined (or running a job).
    public let readyWorkers = Atomic<Int>(0)
    /// Workers whose process failed to start at its last try (they back off and retry): the pool is degraded.
    public let failingWorkers = Atomic<Int>(0)
    private let processes = Locked<[Int: Int32]>([:])

    /// Requests a drain waits for: the admitted, and split jobs whose coordinator holds no place.
    public var inFlight: Int { admitted.load(ordering: .relaxed) + coordinating.load(ordering: .relaxed) }

    /// Admitted but not running: uploading or waiting for a worker.
    public var queued: Int { max(admitted.load(ordering: .relaxed) - running.load(ordering: .relaxed), 0) }

    /// True while some worker cannot start its process.
    public var isDegraded: Bool { failingWorkers.load(ordering: .relaxed) > 0 }

    /// False when degraded with no worker able to run a job: the replica cannot serve uploads, and a balancer should
    /// stop sending them, as while draining. Degraded with some ready workers still serves, at reduced capacity.
    public var canRunJobs: Bool { !isDegraded || readyWorkers.load(ordering: .relaxed) > 0 }

    /// The processes forked for each pool thread's next job (empty in-process).
    public var workerProcessIDs: [Int32] { processes.withLock { $0.sorted { $0.key < $1.key }.map(\.value) } }

    func setProcess(_ pid: Int32?, of worker: Int) {
        processes.withLock { $0[worker] = pid }
    }

    public func readyChanged(by delta: Int) { readyWorkers.add(delta, ordering: .relaxed) }
    public func failingChanged(by delta: Int) { failingWorkers.add(delta, ordering: .relaxed) }
}
