import Foundation
import SystemSupport

/// The hand-off between the actor and the worker threads: a blocking FIFO.
final class JobQueue: @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var closed = false
    let counters: PoolCounters

    init(counters: PoolCounters) { self.counters = counters }

    func push(_ job: Job) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Adaptive threading: a job that has the machine to itself gets every core (libav's frame and slice
    /// threads); when others run or wait, each job runs on its share of the cores, so that workers do not fight.
    func threads(waiting: Int) -> Int {
        let busy = counters.running.load(ordering: .relaxed)
        if busy == 0 && waiting == 0 { return Self.threadsAlone(ServiceConfig.container) }
        let workers = max(counters.workers.load(ordering: .relaxed), 1)
        return max(ServiceConfig.cores / workers, 1)
    }

    /// A lone job's count: 0 lets libav count the CPUs it may run on (the affinity mask), which is every core the
    /// service has unless a CPU quota (cgroup cpu.max) allows fewer; then the quota, since each thread costs
    /// memory (deploy/kubernetes/README.md, "Sizing") and threads beyond the quota only wait for it.
    static func threadsAlone(_ limits: ContainerLimits) -> Int {
        limits.cores < (limits.affinityCPUs ?? limits.onlineCPUs) ? limits.cores : 0
    }

    var waiting: Int {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count - head
    }

    enum Taken {
        /// A job, and how many still wait behind it.
        case job(Job, Int)
        /// Closed and empty.
        case closed
        /// `idleCheck` said no: the caller has something to mend before it takes a job.
        case interrupted
    }

    /// Blocks until a job is there. `idleCheck`, if any, runs (without the lock) every quarter of a second meanwhile.
    func take(idleCheck: (() -> Bool)? = nil) -> Taken {
        condition.lock()
        defer { condition.unlock() }
        while head == jobs.count && !closed {
            guard let idleCheck else {
                condition.wait()
                continue
            }
            if !condition.wait(until: Date(timeIntervalSinceNow: 0.25)) {
                condition.unlock()
                let fine = idleCheck()
                condition.lock()
                if !fine { return .interrupted }
            }
        }
        guard head < jobs.count else { return .closed }
        let job = jobs[head]
        head += 1
        if head > 64 && head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return .job(job, jobs.count - head)
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Sleeps up to `seconds`, or less if the queue closes meanwhile; true once it is closed.
    func waitClosed(seconds: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let until = Date(timeIntervalSinceNow: seconds)
        while !closed && condition.wait(until: until) {}
        return closed
    }
}
