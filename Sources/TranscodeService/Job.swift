import SystemSupport
import Transcoding
import WorkerIsolation

/// One transcode handed to a worker; its continuation is resumed exactly once, by whoever finishes it first.
final class Job: Sendable {
    typealias Outcome = WorkerPool.Outcome
    typealias Continuation = CheckedContinuation<Result<Outcome, JobFailure>, Never>

    let input: Int32
    let output: Int32
    /// A split pass's segments (`TranscodeOptions.splitPass`).
    let extra: [Int32]
    let options: TranscodeOptions
    let cancellation = TranscodeCancellation()
    /// Told when a worker takes the job (an async job's `running`).
    let onStart: (@Sendable () -> Void)?
    /// Hears the worker's progress reports, on the worker thread.
    let progress: (@Sendable (Double) -> Void)?
    private let enqueued = ContinuousClock.now
    private struct State {
        var continuation: Continuation?
        var running = false
    }
    private let state = Locked(State())

    init(
        input: Int32, output: Int32, extra: [Int32] = [], options: TranscodeOptions,
        onStart: (@Sendable () -> Void)? = nil,
        progress: (@Sendable (Double) -> Void)? = nil
    ) {
        self.onStart = onStart
        self.progress = progress
        self.input = input
        self.output = output
        self.extra = extra
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
        onStart?()
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
