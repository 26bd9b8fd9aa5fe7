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

    /// Runs one transcode on a worker thread (or a split job's pass: `options.splitPass`, its segments `extra`).
    /// Cancelling the calling task cancels the job: a queued job is dropped at once, a running one stops within a
    /// frame. `onStart` runs on the worker thread when it takes the job, `progress` there with each progress report
    /// (see `transcode`).
    public func run(
        _ reservation: Reservation, input: Int32, output: Int32, options: TranscodeOptions, extra: [Int32] = [],
        onStart: (@Sendable () -> Void)? = nil, progress: (@Sendable (Double) -> Void)? = nil
    ) async -> Result<Outcome, JobFailure> {
        // Only admitted requests run: admission is what bounds the queue.
        precondition(reservations[reservation.id] != nil, "run() without a live reservation")
        let job = Job(input: input, output: output, extra: extra, options: options, onStart: onStart, progress: progress)
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
                    try WorkerJob.run(
                        input: job.input, output: job.output, extra: job.extra, options: options,
                        cancellation: cancellation, progress: job.progress)
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
                    worker.run(
                        options: options, input: job.input, output: job.output, extra: job.extra,
                        cancellation: cancellation, progress: job.progress)
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
    /// In a fresh sandboxed process per job, forked from one warm template per pool thread.
    case process(WorkerSettings)
}
