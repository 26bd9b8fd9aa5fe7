import Glibc

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
    /// How far past the job time limit a job may run before its process is killed, seconds; how long a finished
    /// one has to exit.
    public var killGrace = 2.0
    /// How long a cancelled job's process (a DELETE, a client gone) has to stop on its own before SIGKILL, seconds.
    /// None by default: the process is single-use and its output thrown away, so waiting only keeps the worker from
    /// the next job, which must start within a second (issue 21). With 0.5 s, the niced parent and child beside two
    /// busy loops took 1.09 s to be gone.
    public var cancelGrace = 0.0
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
