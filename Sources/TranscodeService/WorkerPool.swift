import CLinux
import Foundation
import Synchronization
import SystemSupport
import Transcoding
import WorkerIsolation

/// The transcoding workers: N dedicated threads (never Swift's cooperative pool, which libav would starve), a
/// bounded admission count and a byte budget for uploads. Requests are admitted before their body is read, so a
/// full pool costs a client nothing but a 503.
///
/// Under `.process` isolation each thread owns a warm template process and runs each job in a fresh sandboxed
/// process forked from it (WorkerIsolation): the threads, the queue and the admission are the same, only the call at
/// the end of `Job.execute` differs.
public actor WorkerPool {
    public struct Reservation: Sendable, Hashable {
        let id: UInt64
        let bytes: Int64
    }

    public enum Admission: Sendable {
        case admitted(Reservation)
        case rejected(retryAfterSeconds: Int)
    }

    public struct Outcome: Sendable {
        public var report: TranscodeReport
        public var queueWait: Double
        public var transcodeSeconds: Double
    }

    public let workers: Int
    public let queueCapacity: Int
    public let byteBudget: Int64
    /// Readable from any thread without an actor hop (the event loop answers `/about` with it).
    public nonisolated let counters = PoolCounters()
    private let queue: JobQueue
    private var reservations: [UInt64: Int64] = [:]
    private var reservedBytes: Int64 = 0
    private var nextID: UInt64 = 0
    /// Recent transcode times, for Retry-After.
    private var averageSeconds = 1.0

    /// Jobs handed to the workers and not yet taken by one (a cancelled job counts until a worker skips it): what
    /// `JobQueue.threads(waiting:)` sees, readable without an actor hop.
    public nonisolated var waitingJobs: Int { queue.waiting }

    /// `niceness`: the workers' nice value, inherited by the threads libav starts for them. Above the event loop's
    /// 0, a transcode gets a tenth of the loop's share of a core when both want it, so `/about` and uploads stay
    /// quick however busy the pool; on an otherwise idle machine the jobs still get every cycle. `idlePolicy`
    /// (SCHED_IDLE, inherited the same way) goes further: a waking event loop preempts a transcode at once rather
    /// than after the transcode's time slice, at the price of the jobs yielding to every other normal thread of
    /// their scheduling group as well.
    ///
    /// `isolation`: where the jobs run; `observe` hears what becomes of the worker processes (log and metrics).
    public init(
        workers: Int, queueCapacity: Int, byteBudget: Int64, niceness: Int32 = 0, idlePolicy: Bool = false,
        isolation: PoolIsolation = .thread, observe: @escaping @Sendable (WorkerEvent) -> Void = { _ in }
    ) {
        precondition(workers >= 1 && queueCapacity >= 0 && byteBudget > 0)
        self.workers = workers
        self.queueCapacity = queueCapacity
        self.byteBudget = byteBudget
        queue = JobQueue(counters: counters)
        counters.capacity.store(workers + queueCapacity, ordering: .relaxed)
        counters.workers.store(workers, ordering: .relaxed)
        if case .thread = isolation { counters.readyWorkers.store(workers, ordering: .relaxed) }
        for index in 0..<workers {
            let queue = queue
            let counters = counters
            let thread = Thread {
                // Foundation keeps Thread.name to itself on Linux; this one shows in top -H and gdb.
                _ = clinux_set_thread_name(pthread_self(), "transcode-\(index)")
                // A worker process inherits both from the thread that starts it, and its libav threads from it.
                if niceness != 0 { _ = clinux_nice_this_thread(niceness) }
                if idlePolicy { _ = clinux_sched_idle_this_thread() }
                switch isolation {
                case .thread: WorkerPool.work(queue)
                case .process(let settings):
                    WorkerPool.work(queue, WorkerProcess(index: index, settings: settings, gauges: counters, observe: observe))
                }
            }
            // x264 and the decoders use deep stacks; Foundation's default for secondary threads is small.
            thread.stackSize = 16 << 20
            thread.start()
        }
    }

    /// Asks for a place before any body byte is read. `expectedBytes` is the Content-Length, if any.
    public func admit(expectedBytes: Int64?) -> Admission {
        let bytes = max(expectedBytes ?? 0, 0)
        guard reservations.count < workers + queueCapacity, reservedBytes + bytes <= byteBudget else {
            counters.rejected.add(1, ordering: .relaxed)
            return .rejected(retryAfterSeconds: retryAfter())
        }
        nextID += 1
        reservations[nextID] = bytes
        reservedBytes += bytes
        counters.admitted.store(reservations.count, ordering: .relaxed)
        return .admitted(Reservation(id: nextID, bytes: bytes))
    }

    public enum Growth: Sendable, Equatable {
        case granted(Int64)
        case refused(retryAfterSeconds: Int)
    }

    /// Adds bytes to the reservation of an upload whose size was not declared (chunked), as its bytes arrive:
    /// `wanted` if the byte budget has room, else whatever it has left if that is at least `needed`.
    public func grow(_ reservation: Reservation, needed: Int64, wanted: Int64) -> Growth {
        let room = byteBudget - reservedBytes
        guard let held = reservations[reservation.id], room >= needed else {
            counters.rejected.add(1, ordering: .relaxed)
            return .refused(retryAfterSeconds: retryAfter())
        }
        let granted = min(max(wanted, needed), room)
        reservations[reservation.id] = held + granted
        reservedBytes += granted
        return .granted(granted)
    }

    /// Gives the place back, and every byte it held; safe to call more than once.
    public func release(_ reservation: Reservation) {
        guard let bytes = reservations.removeValue(forKey: reservation.id) else { return }
        reservedBytes -= bytes
        counters.admitted.store(reservations.count, ordering: .relaxed)
    }

    /// Runs one transcode on a worker thread. Cancelling the calling task cancels the job: a queued job is dropped
    /// at once, a running one stops within a frame.
    public func run(
        _ reservation: Reservation, input: Int32, output: Int32, options: TranscodeOptions
    ) async -> Result<Outcome, JobFailure> {
        // Only admitted requests run: admission is what bounds the queue.
        precondition(reservations[reservation.id] != nil, "run() without a live reservation")
        let job = Job(input: input, output: output, options: options)
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                job.start(continuation)
                queue.push(job)
            }
        } onCancel: {
            job.cancel()
        }
        switch outcome {
        case .success(let result):
            counters.completed.add(1, ordering: .relaxed)
            averageSeconds = averageSeconds * 0.8 + result.transcodeSeconds * 0.2
        case .failure(.transcode(.cancelled)): break
        case .failure: counters.failed.add(1, ordering: .relaxed)
        }
        return outcome
    }

    /// Seconds until a place is likely free: the work ahead divided among the workers, at least 1.
    private func retryAfter() -> Int {
        let ahead = Double(reservations.count) * averageSeconds / Double(workers)
        return min(max(Int(ahead.rounded(.up)), 1), 300)
    }

    /// Stops the worker threads once the queue is empty (for tests; the service exits instead).
    public func shutdown() { queue.close() }

    /// In-process: libav runs on this thread.
    private static func work(_ queue: JobQueue) {
        while case .job(let job, let waiting) = queue.take() {
            job.execute(counters: queue.counters, threads: queue.threads(waiting: waiting)) { options, cancellation in
                Result { () throws(TranscodeError) -> TranscodeReport in
                    try transcode(input: .fileDescriptor(job.input), output: .fileDescriptor(job.output),
                                  options: options, cancellation: cancellation)
                }.mapError(JobFailure.transcode)
            }
        }
    }

    /// Isolated: this thread keeps a child forked ahead, hands it the next job, and forks the next child once the
    /// answer has gone back. While it waits for a job it looks at its processes a few times a second, so that one
    /// killed while idle is replaced before a job needs it (and /about's count stays true). A start that fails
    /// backs off, and fails no job meanwhile.
    private static func work(_ queue: JobQueue, _ worker: WorkerProcess) {
        let counters = queue.counters
        loop: while worker.ensureReady(pause: { queue.waitClosed(seconds: $0) }) {
            counters.setProcess(worker.pid, of: worker.index)
            switch queue.take(idleCheck: { worker.checkIdle() }) {
            case .closed: break loop
            case .interrupted: continue loop
            case .job(let job, let waiting):
                job.execute(counters: counters, threads: queue.threads(waiting: waiting)) { options, cancellation in
                    worker.run(options: options, input: job.input, output: job.output, cancellation: cancellation)
                }
                // That process is on its way out; the next is listed once it is forked.
                counters.setProcess(nil, of: worker.index)
            }
        }
        worker.shutdown()
        counters.setProcess(nil, of: worker.index)
    }
}

/// Where a pool's jobs run.
public enum PoolIsolation: Sendable {
    /// On the pool's threads, in this process.
    case thread
    /// In one sandboxed worker process per pool thread.
    case process(WorkerSettings)
}

/// Counts the pool publishes for lock-free reading.
public final class PoolCounters: WorkerGauges {
    public let workers = Atomic<Int>(0)
    public let capacity = Atomic<Int>(0)
    /// Admitted requests not finished: uploading, queued or running.
    public let admitted = Atomic<Int>(0)
    public let running = Atomic<Int>(0)
    public let completed = Atomic<Int>(0)
    public let failed = Atomic<Int>(0)
    public let rejected = Atomic<Int>(0)
    /// Workers able to take a job now: every thread in-process; under isolation, those with a child forked and
    /// confined (or running a job).
    public let readyWorkers = Atomic<Int>(0)
    /// Workers whose process failed to start at its last try (they back off and retry): the pool is degraded.
    public let failingWorkers = Atomic<Int>(0)
    private let processes = Locked<[Int: Int32]>([:])

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

/// One transcode handed to a worker; its continuation is resumed exactly once, by whoever finishes it first.
final class Job: Sendable {
    typealias Outcome = WorkerPool.Outcome
    typealias Continuation = CheckedContinuation<Result<Outcome, JobFailure>, Never>

    let input: Int32
    let output: Int32
    let options: TranscodeOptions
    let cancellation = TranscodeCancellation()
    private let enqueued = ContinuousClock.now
    private struct State {
        var continuation: Continuation?
        var running = false
    }
    private let state = Locked(State())

    init(input: Int32, output: Int32, options: TranscodeOptions) {
        self.input = input
        self.output = output
        self.options = options
    }

    func start(_ continuation: Continuation) {
        state.withLock { $0.continuation = continuation }
        if cancellation.isCancelled { cancel() }
    }

    /// A queued job answers at once (the worker that later dequeues it skips it); a running one is told to stop
    /// and answers when it has.
    func cancel() {
        cancellation.cancel()
        let queued = state.withLock { state -> Continuation? in
            guard !state.running else { return nil }
            defer { state.continuation = nil }
            return state.continuation
        }
        queued?.resume(returning: .failure(.transcode(.cancelled)))
    }

    /// Runs on a worker thread; `threads` is the libav thread count the pool chose for this moment, `perform`
    /// the transcode itself, in this process or in the thread's worker process.
    func execute(
        counters: PoolCounters, threads: Int,
        perform: (TranscodeOptions, TranscodeCancellation) -> Result<TranscodeReport, JobFailure>
    ) {
        let claimed = state.withLock { state -> Bool in
            guard state.continuation != nil, !cancellation.isCancelled else { return false }
            state.running = true
            return true
        }
        guard claimed else { return }
        let started = ContinuousClock.now
        counters.running.add(1, ordering: .relaxed)
        var options = options
        if options.threads == 0 { options.threads = threads }
        let result = perform(options, cancellation)
        counters.running.subtract(1, ordering: .relaxed)
        let outcome = result.map {
            Outcome(report: $0, queueWait: (started - enqueued).seconds, transcodeSeconds: (ContinuousClock.now - started).seconds)
        }
        let continuation = state.withLock { state -> Continuation? in
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: outcome)
    }
}

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
        if busy == 0 && waiting == 0 { return 0 }
        let workers = max(counters.workers.load(ordering: .relaxed), 1)
        return max(ServiceConfig.cores / workers, 1)
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
