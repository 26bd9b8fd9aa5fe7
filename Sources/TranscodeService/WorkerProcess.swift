import CLinux
import Glibc
import SystemSupport
import Transcoding

/// How a pool thread starts and keeps its worker process.
public struct WorkerSettings: Sendable {
    /// The binary started as `<executable> worker`: this one (`/proc/self/exe`) in the service; tests name the
    /// built `ffmpeg-processor`, since their own binary is the test runner.
    public var executable = "/proc/self/exe"
    /// RLIMIT_AS of each worker process, bytes (`--job-memory`).
    public var jobMemory: Int64 = ServiceConfig.defaultJobMemory
    /// How long a worker told to stop (a cancelled job, a recycled process) has before SIGKILL, seconds; and how far
    /// past the job time limit a job may run before its process is killed.
    public var killGrace = 2.0
    /// How long a new process has to confine itself and say ready, seconds. It needs a fraction of a second; a
    /// loaded machine (a debug build under a full test run) has taken over 10.
    public var startTimeout = 30.0
    /// A process is replaced after this many jobs, as gunicorn's `max_requests`, so that heap fragmentation in a
    /// long-lived decoder process cannot grow for ever.
    public var maxJobs = 500
    /// ... or when its resident memory is above this after a job, bytes.
    public var maxResidentBytes: Int64 = 1 << 30
    /// The longest pause between two failed starts, seconds (the first is 0.1 s, doubling).
    public var maxBackoff = 30.0

    public init() {}
}

/// What happened to a worker process, for the log and the metrics (Service wires it to both).
public enum WorkerEvent: Sendable, Equatable {
    /// A process is ready; `replacing` is false only for each thread's first.
    case started(worker: Int, pid: Int32, replacing: Bool)
    /// A process could not start or did not confine itself; the thread waits `retryIn` seconds.
    case startFailed(worker: Int, reason: String, retryIn: Double)
    /// A process died of `signal` during a job.
    case crashed(worker: Int, pid: Int32, signal: Int32)
    /// A process was killed because its job was cancelled or ran past its time limit, and did not stop in time.
    case killed(worker: Int, pid: Int32, reason: String)
    /// A process ended without a signal while it had a job (an exit status, a broken message).
    case lost(worker: Int, pid: Int32, reason: String)
    /// A process was retired after `maxJobs` jobs, above `maxResidentBytes`, or after running out of memory.
    case recycled(worker: Int, pid: Int32, reason: String)
}

/// One pool thread's worker process, and everything that thread does with it: start it (backing off when starts
/// fail), hand it a job, wait for the answer while watching cancellation and the deadline, kill and replace it.
/// Used by its thread alone.
final class WorkerProcess {
    let index: Int
    private let settings: WorkerSettings
    private let counters: PoolCounters
    private let observe: @Sendable (WorkerEvent) -> Void
    private let arguments: [String]
    private let environment: [String]
    private var child: Child?
    private var startFailures = 0
    private var started = 0
    private var jobID: UInt64 = 0
    private var retire: String?

    private final class Child {
        let pid: pid_t
        let socket: OwnedDescriptor
        var jobs = 0
        var channel: WorkerChannel { WorkerChannel(descriptor: socket.rawValue) }

        init(pid: pid_t, socket: consuming OwnedDescriptor) {
            self.pid = pid
            self.socket = socket
        }
    }

    init(index: Int, settings: WorkerSettings, counters: PoolCounters, observe: @escaping @Sendable (WorkerEvent) -> Void) {
        self.index = index
        self.settings = settings
        self.counters = counters
        self.observe = observe
        arguments = [settings.executable, "worker", "--job-memory", String(settings.jobMemory), "--parent", String(getpid())]
        // The Swift runtime's crash handler would exec a backtracer from the dying worker, which the filter forbids:
        // the process would die of SIGSYS instead of the signal that really ended it.
        var environment = Self.currentEnvironment().filter { !$0.hasPrefix("SWIFT_BACKTRACE=") }
        environment.append("SWIFT_BACKTRACE=enable=no")
        self.environment = environment
    }

    var pid: pid_t? { child?.pid }

    /// Makes sure a process is ready, starting one if needed and backing off between failed starts. False once
    /// `pause` says the pool is closing.
    func ensureReady(pause: (Double) -> Bool) -> Bool {
        while child == nil {
            do {
                adopt(try spawn())
            } catch {
                if startFailures == 0 { counters.failingWorkers.add(1, ordering: .relaxed) }
                let delay = min(0.1 * Double(1 << min(startFailures, 20)), settings.maxBackoff)
                startFailures += 1
                observe(.startFailed(worker: index, reason: error.description, retryIn: delay))
                if pause(delay) { return false }
            }
        }
        return true
    }

    private func adopt(_ spawned: Child) {
        child = spawned
        counters.readyWorkers.add(1, ordering: .relaxed)
        observe(.started(worker: index, pid: spawned.pid, replacing: started > 0))
        started += 1
        if startFailures > 0 { counters.failingWorkers.subtract(1, ordering: .relaxed) }
        startFailures = 0
    }

    /// Runs one job in the process. Cancellation is passed on as a `cancel` message; a process that has not
    /// answered `killGrace` seconds after it, or after the job's time limit, is killed.
    func run(
        options: TranscodeOptions, input: Int32, output: Int32, cancellation: TranscodeCancellation
    ) -> Result<TranscodeReport, JobFailure> {
        jobID += 1
        let id = jobID
        var child: Child
        var retried = false
        // A process that died while idle (killed from outside, say) is noticed here; the job then gets one fresh
        // process rather than an error it did nothing to earn.
        while true {
            guard let current = self.child else { return .failure(.workerLost("no worker process")) }
            child = current
            do {
                // An idle process never speaks: anything to read (its end of the socket, most likely) means it died.
                if try child.channel.waitReadable(milliseconds: 0) { throw IOError(call: "poll", errno: .brokenPipe) }
                try child.channel.send(.job(id: id, options: options), descriptors: [input, output])
                break
            } catch {
                let failure = lose(child, because: nil, "it was gone before the job (\(error))")
                guard !retried, let fresh = try? spawn() else { return .failure(failure) }
                retried = true
                adopt(fresh)
            }
        }
        child.jobs += 1
        let started = monotonicNanos()
        let grace = UInt64(settings.killGrace * 1e9)
        let deadline = options.limits.jobTimeLimitSeconds.map { started + UInt64($0 * 1e9) + grace }
        var cancelledAt: UInt64?
        var killedFor: JobFailure?
        while true {
            do {
                // A tenth of a second at a time: the cancellation flag and the deadline are looked at in between.
                if try child.channel.waitReadable(milliseconds: 100) {
                    guard let (message, descriptors) = try receiveUnlessDead(child) else { break }
                    for fd in descriptors { closeDescriptor(fd) }
                    guard case .finished(id, let outcome) = message else {
                        signalProcess(child.pid, SIGKILL)
                        return .failure(lose(child, because: nil, "it sent \(message) during job \(id)"))
                    }
                    switch outcome {
                    case .report(var report):
                        // The answer's length comes from the file itself, not from a process that parsed the input:
                        // a lying worker could otherwise make the response promise bytes the file does not have.
                        var info = stat()
                        guard (try? syscallValue("fstat", { fstat(output, &info) })) != nil else {
                            return .failure(.workerLost("the output cannot be measured"))
                        }
                        report.outputBytes = Int64(info.st_size)
                        return .success(report)
                    case .failed(let error): return .failure(.transcode(error))
                    case .outOfMemory:
                        retire = "its job ran out of memory"
                        return .failure(.outOfMemory)
                    }
                }
            } catch {
                signalProcess(child.pid, SIGKILL)
                return .failure(lose(child, because: nil, "\(error)"))
            }
            let now = monotonicNanos()
            if cancellation.isCancelled && cancelledAt == nil {
                cancelledAt = now
                try? child.channel.send(.cancel(id: id))
            }
            guard killedFor == nil else { continue }
            if let cancelledAt, now > cancelledAt + grace {
                killedFor = .transcode(.cancelled)
                signalProcess(child.pid, SIGKILL)
            } else if let deadline, now > deadline {
                killedFor = .transcode(.limitExceeded(.jobTime))
                signalProcess(child.pid, SIGKILL)
            }
        }
        return .failure(lose(child, because: killedFor, nil))
    }

    /// The next message; nil once the process is gone: its end closed, or reset because it died with the job
    /// still unread in its socket (a death like any other).
    private func receiveUnlessDead(_ child: Child) throws(WorkerChannel.Failure) -> (WorkerMessage, [Int32])? {
        do {
            return try child.channel.receive()
        } catch {
            if case .io(let failure) = error, failure.errno == .connectionReset { return nil }
            throw error
        }
    }

    /// After each job: retires the process if it has done its share, grown too large, or run out of memory. The
    /// next `ensureReady` starts its successor before the thread takes another job.
    func afterJob() {
        guard let pid = child?.pid, let reason = retirement() else { return }
        stop()
        observe(.recycled(worker: index, pid: pid, reason: reason))
    }

    private func retirement() -> String? {
        defer { retire = nil }
        guard let child else { return nil }
        if let retire { return retire }
        if child.jobs >= settings.maxJobs { return "\(child.jobs) jobs" }
        if let resident = residentBytes(child.pid), resident > settings.maxResidentBytes {
            return "resident memory \(resident >> 20) MiB"
        }
        return nil
    }

    /// Closes the socket, which the process takes as the order to exit; kills it if it has not within the grace.
    func stop() {
        // The last reference to the child, and so its socket, goes with `child = nil`.
        guard let pid = child?.pid else { return }
        child = nil
        counters.readyWorkers.subtract(1, ordering: .relaxed)
        _ = reapWithinGrace(pid)
    }

    /// Ends the pool thread's interest in its process for good (the pool is shutting down).
    func shutdown() {
        stop()
        if startFailures > 0 { counters.failingWorkers.subtract(1, ordering: .relaxed) }
        startFailures = 0
    }

    /// Reaps a process whose socket has closed or that was killed, and says what became of its job.
    private func lose(_ lost: Child, because killed: JobFailure?, _ reason: String?) -> JobFailure {
        child = nil
        counters.readyWorkers.subtract(1, ordering: .relaxed)
        // The socket's end means the process has exited or is about to; a process that closed it and lives on is
        // broken, and is killed once the grace has passed.
        let status = reapWithinGrace(lost.pid)
        if let killed {
            observe(.killed(worker: index, pid: lost.pid, reason: "\(killed)"))
            return killed
        }
        let signal = status.map(clinux_wait_signal) ?? 0
        if signal != 0 && reason == nil {
            observe(.crashed(worker: index, pid: lost.pid, signal: signal))
            return .crashed(signal: signal)
        }
        let why = (reason.map { $0 + "; " } ?? "") + (status.map(Self.ending) ?? "not reaped")
        observe(.lost(worker: index, pid: lost.pid, reason: why))
        return .workerLost(why)
    }

    /// The wait status of `pid` once it has exited: waited for up to the kill grace, then killed and waited for. Nil
    /// only if it cannot be waited for at all.
    private func reapWithinGrace(_ pid: pid_t) -> Int32? {
        let deadline = monotonicNanos() + UInt64(settings.killGrace * 1e9)
        while true {
            if let status = reap(pid, block: false) { return status }
            if monotonicNanos() > deadline {
                signalProcess(pid, SIGKILL)
                return reap(pid, block: true)
            }
            usleep(2_000)
        }
    }

    /// How a process ended, from its wait status: the signal's name or the exit status.
    private static func ending(_ status: Int32) -> String {
        let signal = clinux_wait_signal(status)
        return signal != 0 ? signalName(signal) : "exit status \(clinux_wait_exit_code(status))"
    }

    /// The wait status once the process has ended (nil while it runs, unless `block`).
    private func reap(_ pid: pid_t, block: Bool) -> Int32? {
        var status: Int32 = 0
        let reaped = try? syscallValue("waitpid") { waitpid(pid, &status, block ? 0 : WNOHANG) }
        return reaped == pid ? status : nil
    }

    private func spawn() throws(StartFailure) -> Child {
        let ends: (parent: Int32, child: Int32)
        do { ends = try WorkerChannel.pair() } catch { throw StartFailure("socketpair: \(error)") }
        let parentEnd = OwnedDescriptor(taking: ends.parent)
        let childEnd = OwnedDescriptor(taking: ends.child)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        guard clinux_spawn_dup2(&actions, childEnd.rawValue, WorkerChild.socketDescriptor) == 0,
            clinux_spawn_close_from(&actions, WorkerChild.socketDescriptor + 1) == 0,
            clinux_spawn_set_default_signals(&attributes) == 0
        else { throw StartFailure("posix_spawn attributes") }
        var pid: pid_t = 0
        // posix_spawn answers its error number rather than setting errno.
        let status = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in posix_spawn(&pid, settings.executable, &actions, &attributes, argv, envp) }
        }
        childEnd.close()
        guard status == 0 else { throw StartFailure("posix_spawn \(settings.executable): \(Errno(rawValue: status))") }
        let spawned = Child(pid: pid, socket: parentEnd)
        let failure: String
        do {
            if try spawned.channel.waitReadable(milliseconds: Int32(settings.startTimeout * 1000)) {
                if case (.ready, let descriptors)? = try spawned.channel.receive(), descriptors.isEmpty {
                    return spawned
                }
                failure = "it ended before saying ready"
            } else {
                failure = "it did not say ready within \(settings.startTimeout) s"
            }
        } catch {
            failure = "\(error)"
        }
        signalProcess(pid, SIGKILL)
        let ending = reap(pid, block: true).map(Self.ending)
        throw StartFailure("\(failure) (\(ending ?? "not reaped"))")
    }

    struct StartFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Resident bytes of a process, from /proc/<pid>/statm (its second field, in pages).
    private func residentBytes(_ pid: pid_t) -> Int64? {
        guard let fd = try? syscallValue("open", { open("/proc/\(pid)/statm", O_RDONLY | O_CLOEXEC) }) else { return nil }
        let file = OwnedDescriptor(taking: fd)
        var buffer = [UInt8](repeating: 0, count: 128)
        guard let count = try? syscallValue("read", { read(file.rawValue, &buffer, buffer.count) }) else { return nil }
        let fields = String(decoding: buffer.prefix(count), as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int64(fields[1]) else { return nil }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
    }

    private static func currentEnvironment() -> [String] {
        var result: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            result.append(String(cString: pointer))
            entry += 1
        }
        return result
    }
}

/// Sends `signal` to `pid`; a process already gone (ESRCH) is what the caller wanted anyway.
private func signalProcess(_ pid: pid_t, _ signal: Int32) {
    _ = try? syscallValue("kill") { kill(pid, signal) }
}

/// A NULL-terminated array of C strings that lives for the call.
private func withCStrings<T>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
