import CLinux
import Glibc
import SystemSupport
import Transcoding

/// One pool thread's processes, and everything the thread does with them: keep a warm template (starting it,
/// backing off when starts fail), keep one child forked ahead and confined, hand it a job, wait for the answer
/// while watching cancellation and the deadline, and say what a death means. Each child runs one job. Used by
/// its thread alone.
public final class WorkerProcess {
    public let index: Int
    let settings: WorkerSettings
    private let gauges: any WorkerGauges
    private let observe: @Sendable (WorkerEvent) -> Void
    let arguments: [String]
    let environment: [String]
    private let oomKills = OOMKillCounter()
    var template: Peer?
    private var child: Peer?
    /// A child that has answered its job and is on its way out, reaped after the answer went back.
    private var finished: Peer?
    /// Whether this thread counts among the pool's ready workers.
    private var ready = false
    private var startFailures = 0
    private var templatesStarted = 0
    private var jobID: UInt64 = 0

    /// A process and this thread's end of its socket.
    final class Peer {
        let pid: pid_t
        let socket: OwnedDescriptor
        var channel: WorkerChannel { WorkerChannel(descriptor: socket.rawValue) }

        init(pid: pid_t, socket: consuming OwnedDescriptor) {
            self.pid = pid
            self.socket = socket
        }
    }

    public init(index: Int, settings: WorkerSettings, gauges: any WorkerGauges, observe: @escaping @Sendable (WorkerEvent) -> Void) {
        self.index = index
        self.settings = settings
        self.gauges = gauges
        self.observe = observe
        arguments = [settings.executable, "worker", "--job-memory", String(settings.jobMemory), "--parent", String(getpid())]
        environment = Self.environment()
    }

    /// The only environment a template (and so a child) gets: nothing of the service's, whose variables may hold
    /// secrets. The Swift runtime's crash handler would exec a backtracer from a dying child, which the filter
    /// forbids: the process would die of SIGSYS instead of the signal that really ended it. Passed on from the
    /// service's own: libav's log level (`FFMPEG_PROCESSOR_LIBAV_LOG`), and in debug builds the two test switches of
    /// WorkerFaults.swift. SVT-AV1 reads its log level only from `SVT_LOG`, and at its default prints a dozen lines of
    /// configuration for every AV1 job: errors only (1). docs/SECURITY.md lists the same.
    static func environment() -> [String] {
        var environment = ["SWIFT_BACKTRACE=enable=no", "SVT_LOG=1"]
        var passed = ["FFMPEG_PROCESSOR_LIBAV_LOG"]
        #if DEBUG
        passed += ["FFMPEG_PROCESSOR_WORKER_FAULTS", "FFMPEG_PROCESSOR_WORKER_UNCONFINED"]
        #endif
        for name in passed {
            if let value = getenv(name) { environment.append("\(name)=\(String(cString: value))") }
        }
        return environment
    }

    /// The process that runs (or will run) this thread's next job.
    public var pid: pid_t? { child?.pid }

    /// Makes sure a child is forked and confined, starting the template if needed and backing off between failed
    /// starts. False once `pause` says the pool is closing.
    public func ensureReady(pause: (Double) -> Bool) -> Bool {
        reapFinished()
        while child == nil {
            do {
                try prepareChild()
            } catch {
                setReady(false)
                if startFailures == 0 { gauges.failingChanged(by: 1) }
                let delay = min(0.1 * Double(1 << min(startFailures, 20)), settings.maxBackoff)
                startFailures += 1
                observe(.startFailed(worker: index, reason: error.description, retryIn: delay))
                if pause(delay) { return false }
            }
        }
        return true
    }

    private func prepareChild() throws(StartFailure) {
        if template == nil {
            let started = try spawnTemplate()
            template = started
            observe(.started(worker: index, pid: started.pid, replacing: templatesStarted > 0))
            templatesStarted += 1
        }
        let asked = monotonicNanos()
        let forked = try forkChild()
        child = forked
        observe(.forked(worker: index, pid: forked.pid, seconds: Double(monotonicNanos() - asked) / 1e9))
        setReady(true)
        if startFailures > 0 { gauges.failingChanged(by: -1) }
        startFailures = 0
    }

    private func setReady(_ now: Bool) {
        guard now != ready else { return }
        ready = now
        gauges.readyChanged(by: now ? 1 : -1)
    }

    /// Runs one job in the child forked for it. Cancellation is passed on as a `cancel` message; a child that has
    /// not answered `cancelGrace` seconds after it, or `killGrace` seconds after the job's time limit, is killed.
    ///
    /// `progress` hears the child's progress reports, checked (this job's, a number in 0...1, rising, in steps of
    /// at least `progressStep`) so that a child cannot flood the parent or make a job's progress go back.
    public func run(
        options: TranscodeOptions, input: Int32, output: Int32, extra: [Int32] = [], cancellation: TranscodeCancellation,
        progress: ((Double) -> Void)? = nil
    ) -> Result<TranscodeReport, JobFailure> {
        jobID += 1
        let id = jobID
        // A child that died while it waited (killed from outside, say) is noticed here at the latest; the job then
        // gets one fresh process rather than an error it did nothing to earn.
        var child: Peer
        var attempts = 0
        while true {
            attempts += 1
            if !checkIdle() {
                do { try prepareChild() } catch { return .failure(.workerLost("no process could be started: \(error)")) }
            }
            guard let current = self.child else { return .failure(.workerLost("no worker process")) }
            child = current
            do {
                try child.channel.send(.job(id: id, options: options), descriptors: [input, output] + extra)
                break
            } catch {
                // It died between the look and the send: the same case, once.
                _ = lose(child, killedFor: nil, duringJob: false, oomBefore: nil, nil)
                if attempts > 1 { return .failure(.workerLost("two processes in a row were gone before their job")) }
            }
        }
        let oomBefore = oomKills.count()
        let started = monotonicNanos()
        let grace = UInt64(settings.killGrace * 1e9)
        let cancelGrace = UInt64(settings.cancelGrace * 1e9)
        var deadline = options.limits.jobTimeLimitSeconds.map { started + UInt64($0 * 1e9) + grace }
        // Set by the child's first `alive`: until then the floor alone bounds it; from then on, also silence.
        var lastAlive: UInt64?
        var aliveReports = 0
        var cancelledAt: UInt64?
        var killedFor: JobFailure?
        var reported = 0.0
        var reports = 0
        while true {
            // Looked at before every wait, after a progress or alive report too: a child that reports more often than
            // the wait's tenth of a second would otherwise keep its cancellation and its limits from being noticed.
            let now = monotonicNanos()
            if cancellation.isCancelled && cancelledAt == nil {
                cancelledAt = now
                try? child.channel.send(.cancel(id: id))
            }
            if killedFor == nil, let cancelledAt, now > cancelledAt + cancelGrace {
                killedFor = .transcode(.cancelled)
                signalProcess(child.pid, SIGKILL)
            } else if killedFor == nil, let deadline, now > deadline {
                killedFor = .transcode(.limitExceeded(.jobTime))
                signalProcess(child.pid, SIGKILL)
            } else if killedFor == nil, let lastAlive, let stall = options.limits.stallLimitSeconds,
                now > lastAlive + UInt64(stall * 1e9) + grace
            {
                killedFor = .transcode(.limitExceeded(.stall))
                signalProcess(child.pid, SIGKILL)
            }
            do {
                // A tenth of a second at a time: the cancellation flag and the deadline are looked at in between.
                if try child.channel.waitReadable(milliseconds: 100) {
                    guard let (message, descriptors) = try receiveUnlessDead(child) else { break }
                    for fd in descriptors { closeDescriptor(fd) }
                    if case .progress(id, let fraction) = message, descriptors.isEmpty, fraction.isFinite,
                        fraction >= reported + progressStep * 0.999, fraction <= progressCeiling,
                        reports < Int(1 / progressStep) + 1
                    {
                        reported = fraction
                        reports += 1
                        progress?(fraction)
                        continue
                    }
                    // A limit no larger than these options can give, and about one report a second: a child that
                    // claims more, or floods, is lying.
                    if case .alive(id, let limit, let finishing) = message, descriptors.isEmpty,
                        limit.map({ $0 > 0 && $0 <= (options.limits.longestJobTimeLimit ?? 0) }) ?? true,
                        aliveReports <= 2 * Int((monotonicNanos() - started) / 1_000_000_000) + 4
                    {
                        aliveReports += 1
                        deadline = limit.map { started + UInt64($0 * 1e9) + grace }
                        lastAlive = finishing ? nil : monotonicNanos()
                        continue
                    }
                    // One answer, for this job, with nothing attached: anything else is a child that lies.
                    guard case .finished(id, let outcome) = message, descriptors.isEmpty else {
                        signalProcess(child.pid, SIGKILL)
                        let sent = "it sent \(message) with \(descriptors.count) descriptors during job \(id)"
                        return .failure(lose(child, killedFor: nil, duringJob: true, oomBefore: oomBefore, sent))
                    }
                    self.child = nil
                    finished = child
                    switch outcome {
                    case .report(var report):
                        // The answer's length comes from the file itself, not from a process that parsed the input:
                        // a lying worker could otherwise make the response promise bytes the file does not have.
                        guard let size = try? fileSize(of: output) else {
                            return .failure(.workerLost("the output cannot be measured"))
                        }
                        report.outputBytes = size
                        return .success(report)
                    case .failed(let error): return .failure(.transcode(error))
                    case .outOfMemory: return .failure(.outOfMemory)
                    }
                }
            } catch {
                signalProcess(child.pid, SIGKILL)
                return .failure(lose(child, killedFor: nil, duringJob: true, oomBefore: oomBefore, "\(error)"))
            }
        }
        return .failure(lose(child, killedFor: killedFor, duringJob: true, oomBefore: oomBefore, nil))
    }

    /// The next message; nil once the process is gone: its end closed, or reset because it died with the job
    /// still unread in its socket (a death like any other).
    private func receiveUnlessDead(_ child: Peer) throws(WorkerChannel.Failure) -> (WorkerMessage, [Int32])? {
        do {
            return try child.channel.receive()
        } catch {
            if case .io(let failure) = error, failure.errno == .connectionReset { return nil }
            throw error
        }
    }

    /// While the thread waits for a job: false if the waiting child or the template has died (and has been dealt
    /// with), so that the thread forks a fresh one before it takes the job. A waiting child and an idle template
    /// never speak unasked: anything to read is their end.
    public func checkIdle() -> Bool {
        if let template, (try? template.channel.waitReadable(milliseconds: 0)) != false {
            dropTemplate()
        }
        guard let child else { return false }
        if (try? child.channel.waitReadable(milliseconds: 0)) != false {
            _ = lose(child, killedFor: nil, duringJob: false, oomBefore: nil, nil)
            return false
        }
        return true
    }

    /// After each job: the child that answered it is waited for (it exits by itself once it has answered).
    private func reapFinished() {
        guard let done = finished else { return }
        finished = nil
        _ = reapChild(done.pid)
    }

    /// Closes every socket, which each process takes as the order to exit, and waits for them (the pool is
    /// shutting down).
    public func shutdown() {
        reapFinished()
        if let pid = child?.pid {
            // The last reference, and so the socket whose end the child waits for, goes first.
            child = nil
            _ = reapChild(pid)
        }
        dropTemplate()
        setReady(false)
        if startFailures > 0 { gauges.failingChanged(by: -1) }
        startFailures = 0
    }

    /// Reaps a child whose socket has closed or that was killed, and says what becomes of its job.
    private func lose(_ lost: Peer, killedFor: JobFailure?, duringJob: Bool, oomBefore: Int?, _ reason: String?) -> JobFailure {
        if child === lost { child = nil }
        setReady(false)
        // The socket's end means the child has exited or is about to; one that closed it and lives on is broken,
        // and the template kills it once the grace has passed.
        let status = reapChild(lost.pid)
        if let killedFor {
            observe(.killed(worker: index, pid: lost.pid, reason: "\(killedFor)"))
            return killedFor
        }
        let failure = reason.map { JobFailure.workerLost("\($0) (\(status.map(Self.ending) ?? "not reaped"))") }
            ?? attribute(status, oomBefore: oomBefore)
        observe(.died(worker: index, pid: lost.pid, failure: failure, duringJob: duringJob))
        return failure
    }

    /// What a child's end says about its job: a crash signal libav raised is the input's; SIGSYS a forbidden call
    /// (the input's too); a SIGKILL the service did not send came from the OOM killer or an operator (the client
    /// may retry); a trap (SIGILL, SIGTRAP: Swift's preconditions and fatal errors) or an exit status is the
    /// service's own bug.
    private func attribute(_ status: Int32?, oomBefore: Int?) -> JobFailure {
        guard let status else { return .workerLost("its template ended, and with it the child's status") }
        switch clinux_wait_signal(status) {
        case 0: return .workerLost(Self.ending(status))
        case SIGSYS: return .forbiddenCall
        case SIGKILL:
            let oom = oomBefore.flatMap { before in oomKills.count().map { $0 > before } } ?? false
            return .killedFromOutside(oom: oom)
        case SIGILL, SIGTRAP: return .workerLost("it trapped (\(Self.ending(status))): an assertion of the service's own")
        case let signal: return .crashed(signal: signal)
        }
    }

    /// How a process ended, from its wait status: the signal's name or the exit status.
    static func ending(_ status: Int32) -> String {
        let signal = clinux_wait_signal(status)
        return signal != 0 ? signalName(signal) : "exit status \(clinux_wait_exit_code(status))"
    }

    struct StartFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
