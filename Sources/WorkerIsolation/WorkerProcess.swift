import CLinux
import Glibc
import SystemSupport
import Transcoding

/// How a pool thread starts its template and the processes it forks.
public struct WorkerSettings: Sendable {
    /// The binary started as `<executable> worker`: this one (`/proc/self/exe`) in the service; tests name the
    /// built `ffmpeg-processor`, since their own binary is the test runner.
    public var executable = "/proc/self/exe"
    /// RLIMIT_AS of the template and each job's process, bytes (`--job-memory`).
    public var jobMemory: Int64 = WorkerSettings.defaultJobMemory
    /// A 1080p job at the default preset peaks near 1.1 GiB of address space (docs/BENCHMARKS.md); 4 GiB leaves room
    /// for 4K and the slower presets.
    public static let defaultJobMemory: Int64 = 4 << 30
    /// How long a job's process told to stop (a cancelled job) has before SIGKILL, seconds; how far past the job
    /// time limit a job may run before its process is killed; how long a finished one has to exit.
    public var killGrace = 2.0
    /// How long a new template or child has to confine itself and say ready, seconds. It needs a fraction of a
    /// second; a loaded machine (a debug build under a full test run) has taken over 10.
    public var startTimeout = 30.0
    /// The longest pause between two failed starts, seconds (the first is 0.1 s, doubling).
    public var maxBackoff = 30.0

    public init() {}
}

/// Where a pool publishes its workers' state: called from the pool threads.
public protocol WorkerGauges: AnyObject, Sendable {
    /// A pool thread gained (+1) or lost (-1) a process able to take a job.
    func readyChanged(by delta: Int)
    /// A pool thread's starts began (+1) or stopped (-1) failing.
    func failingChanged(by delta: Int)
}

/// What happened to a worker's processes, for the log and the metrics (Service wires it to both).
public enum WorkerEvent: Sendable, Equatable {
    /// A template is ready; `replacing` is false only for each thread's first.
    case started(worker: Int, pid: Int32, replacing: Bool)
    /// A child was forked and confined itself for the next job, `seconds` after the thread asked the template.
    case forked(worker: Int, pid: Int32, seconds: Double)
    /// A template or a child could not start or did not confine itself; the thread waits `retryIn` seconds.
    case startFailed(worker: Int, reason: String, retryIn: Double)
    /// A job's process ended in a way nobody in the service asked for: during its job, or while it waited for one
    /// (`duringJob` false). `failure` says how, and so what its job answers.
    case died(worker: Int, pid: Int32, failure: JobFailure, duringJob: Bool)
    /// The service killed a job's process: its job was cancelled, or ran past its time limit, and it did not stop.
    case killed(worker: Int, pid: Int32, reason: String)
}

/// One pool thread's processes, and everything the thread does with them: keep a warm template (starting it,
/// backing off when starts fail), keep one child forked ahead and confined, hand it a job, wait for the answer
/// while watching cancellation and the deadline, and say what a death means. Each child runs one job. Used by
/// its thread alone.
public final class WorkerProcess {
    public let index: Int
    private let settings: WorkerSettings
    private let gauges: any WorkerGauges
    private let observe: @Sendable (WorkerEvent) -> Void
    private let arguments: [String]
    private let environment: [String]
    private let oomKills = OOMKillCounter()
    private var template: Peer?
    private var child: Peer?
    /// A child that has answered its job and is on its way out, reaped after the answer went back.
    private var finished: Peer?
    /// Whether this thread counts among the pool's ready workers.
    private var ready = false
    private var startFailures = 0
    private var templatesStarted = 0
    private var jobID: UInt64 = 0

    /// A process and this thread's end of its socket.
    private final class Peer {
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
    /// not answered `killGrace` seconds after it, or after the job's time limit, is killed.
    public func run(
        options: TranscodeOptions, input: Int32, output: Int32, cancellation: TranscodeCancellation
    ) -> Result<TranscodeReport, JobFailure> {
        jobID += 1
        let id = jobID
        // A child that died while it waited (killed from outside, say) is noticed here at the latest; the job then
        // gets one fresh process rather than an error it did nothing to earn.
        if !checkIdle() {
            do { try prepareChild() } catch { return .failure(.workerLost("no process could be started: \(error)")) }
        }
        guard let child else { return .failure(.workerLost("no worker process")) }
        let oomBefore = oomKills.count()
        do {
            try child.channel.send(.job(id: id, options: options), descriptors: [input, output])
        } catch {
            return .failure(lose(child, killedFor: nil, duringJob: true, oomBefore: oomBefore, "\(error)"))
        }
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
                        guard let size = try? fileSize(output) else {
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
        if let child {
            self.child = nil
            _ = reapChild(child.pid)
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
    private static func ending(_ status: Int32) -> String {
        let signal = clinux_wait_signal(status)
        return signal != 0 ? signalName(signal) : "exit status \(clinux_wait_exit_code(status))"
    }

    // MARK: the template

    private func spawnTemplate() throws(StartFailure) -> Peer {
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
        let spawned = Peer(pid: pid, socket: parentEnd)
        do {
            if case .ready = try expectMessage(spawned, what: "the template") { return spawned }
            throw StartFailure("the template sent something else than ready")
        } catch {
            signalProcess(pid, SIGKILL)
            let ending = waitForTemplate(pid, block: true).map(Self.ending)
            throw StartFailure("\(error) (\(ending ?? "not reaped"))")
        }
    }

    /// The next message from `peer`, within the start timeout.
    private func expectMessage(_ peer: Peer, what: String) throws(StartFailure) -> WorkerMessage {
        do {
            guard try peer.channel.waitReadable(milliseconds: Int32(settings.startTimeout * 1000)) else {
                throw StartFailure("\(what) did not answer within \(settings.startTimeout) s")
            }
            guard let (message, descriptors) = try peer.channel.receive() else { throw StartFailure("\(what) ended") }
            for fd in descriptors { closeDescriptor(fd) }
            guard descriptors.isEmpty else { throw StartFailure("\(what) sent descriptors") }
            return message
        } catch let failure as StartFailure {
            throw failure
        } catch {
            throw StartFailure("\(what): \(error)")
        }
    }

    /// Asks the template for a fresh child and waits until the child has confined itself.
    private func forkChild() throws(StartFailure) -> Peer {
        guard let template else { throw StartFailure("no template") }
        let ends: (parent: Int32, child: Int32)
        do { ends = try WorkerChannel.pair() } catch { throw StartFailure("socketpair: \(error)") }
        let parentEnd = OwnedDescriptor(taking: ends.parent)
        let pid: pid_t
        do {
            let childEnd = OwnedDescriptor(taking: ends.child)
            do {
                try template.channel.send(.spawn, descriptors: [childEnd.rawValue])
            } catch {
                dropTemplate()
                throw StartFailure("the template is gone: \(error)")
            }
            let answer: WorkerMessage
            do { answer = try expectMessage(template, what: "the template") } catch {
                dropTemplate()
                throw error
            }
            switch answer {
            case .spawned(let spawned): pid = spawned
            case .spawnFailed(let code): throw StartFailure("fork: \(Errno(rawValue: code))")
            default:
                dropTemplate()
                throw StartFailure("the template answered \(answer) to a spawn")
            }
        }
        let spawned = Peer(pid: pid, socket: parentEnd)
        do {
            if case .ready = try expectMessage(spawned, what: "the child") { return spawned }
            throw StartFailure("the child sent something else than ready")
        } catch {
            signalProcess(pid, SIGKILL)
            let ending = reapChild(pid).map(Self.ending)
            throw StartFailure("\(error) (\(ending ?? "not reaped"))")
        }
    }

    /// A child's wait status, through the template that forked it (only a parent can wait); it waits up to the kill
    /// grace, then kills. Nil if the template cannot tell (it died, and its children with it).
    private func reapChild(_ pid: pid_t) -> Int32? {
        guard let template else { return nil }
        do {
            try template.channel.send(.reap(pid: pid, graceMilliseconds: UInt32(settings.killGrace * 1000)))
            guard case .reaped(pid, let status) = try expectMessage(template, what: "the template"), status != -1 else {
                dropTemplate()
                return nil
            }
            return status
        } catch {
            dropTemplate()
            return nil
        }
    }

    /// Closes the template's socket, which it takes as the order to exit (its children die with it), and waits.
    private func dropTemplate() {
        guard let dropped = template else { return }
        template = nil
        let pid = dropped.pid
        _ = consume dropped
        let deadline = monotonicNanos() + UInt64(settings.killGrace * 1e9)
        while waitForTemplate(pid, block: false) == nil {
            if monotonicNanos() > deadline {
                signalProcess(pid, SIGKILL)
                _ = waitForTemplate(pid, block: true)
                return
            }
            usleep(2_000)
        }
    }

    /// The template's wait status once it has ended (nil while it runs, unless `block`): it is this process's child.
    private func waitForTemplate(_ pid: pid_t, block: Bool) -> Int32? {
        var status: Int32 = 0
        let reaped = try? syscallValue("waitpid") { waitpid(pid, &status, block ? 0 : WNOHANG) }
        return reaped == pid ? status : nil
    }

    struct StartFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

/// The OOM killer's count for this service's cgroup (v2 `memory.events`, v1 `memory.oom_control`): a SIGKILL that
/// came while it grew was the kernel's.
struct OOMKillCounter {
    private let path: String?

    /// `path`: the file to read; by default the one of this process's cgroup.
    init(path: String? = OOMKillCounter.locate()) {
        self.path = path
    }

    func count() -> Int? {
        guard let path, let text = readSmallFile(path) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.dropFirst("oom_kill ".count))
        }
        return nil
    }

    /// v2's `memory.events` or v1's `memory.oom_control` of the cgroup `/proc/self/cgroup` names (`groups`), under
    /// `root`; nil where neither can be read (no cgroup memory controller, or not mounted).
    static func locate(groups: String? = readSmallFile("/proc/self/cgroup"), root: String = "/sys/fs/cgroup") -> String? {
        guard let groups else { return nil }
        for line in groups.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let group = fields[2] == "/" ? "" : String(fields[2])
            let candidates = fields[0] == "0"
                ? ["\(root)\(group)/memory.events", "\(root)/memory.events"]
                : fields[1].split(separator: ",").contains("memory")
                    ? ["\(root)/memory\(group)/memory.oom_control", "\(root)/memory/memory.oom_control"] : []
            if let found = candidates.first(where: { readSmallFile($0) != nil }) { return found }
        }
        return nil
    }
}

/// The first 4 KiB of a file under /proc or /sys, nil if it cannot be read.
func readSmallFile(_ path: String) -> String? {
    guard let fd = try? syscallValue("open", { open(path, O_RDONLY | O_CLOEXEC) }) else { return nil }
    let file = OwnedDescriptor(taking: fd)
    var buffer = [UInt8](repeating: 0, count: 4096)
    guard let count = try? syscallValue("read", { read(file.rawValue, &buffer, buffer.count) }) else { return nil }
    return String(decoding: buffer.prefix(count), as: UTF8.self)
}

/// The size of an open file, from fstat.
private func fileSize(_ descriptor: Int32) throws(IOError) -> Int64 {
    var info = stat()
    _ = try syscallValue("fstat") { fstat(descriptor, &info) }
    return Int64(info.st_size)
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
