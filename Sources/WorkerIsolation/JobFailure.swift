import Glibc
import Transcoding

/// Why a job the pool ran did not give an MP4: what the engine said, or what became of the process it ran in.
public enum JobFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The engine's own answer (the same in both isolation modes).
    case transcode(TranscodeError)
    /// The job's process died of a crash signal (SIGSEGV, SIGBUS, SIGFPE, SIGABRT): the input crashed a decoder.
    /// Only that job is lost.
    case crashed(signal: Int32)
    /// The job's process made a system call the sandbox forbids and was killed for it (SIGSYS): the input's doing.
    case forbiddenCall
    /// The job needed more memory than `--job-memory` allows.
    case outOfMemory
    /// The job's process was killed by someone other than the service: the kernel's OOM killer (`oom`, read from
    /// the cgroup's memory.events) or an operator. Nothing says the input was at fault, so the client may retry.
    case killedFromOutside(oom: Bool)
    /// The job's process ended some other way (its own trap, an exit status, a broken message): the service's
    /// fault, not the input's.
    case workerLost(String)

    public var description: String {
        switch self {
        case .transcode(let error): "\(error)"
        case .crashed(let signal): "the worker process died of \(signalName(signal))"
        case .forbiddenCall: "the worker process made a forbidden system call (SIGSYS)"
        case .outOfMemory: "the input needs more memory than allowed"
        case .killedFromOutside(let oom):
            oom ? "the worker process was killed by the kernel's OOM killer" : "the worker process was killed from outside (SIGKILL)"
        case .workerLost(let reason): "the worker process was lost: \(reason)"
        }
    }

    /// The label of `ffmpeg_processor_worker_crashes_total` for a process's death, nil for the outcomes that are
    /// no death.
    public var deathReason: String? {
        switch self {
        case .crashed: "input"
        case .forbiddenCall: "seccomp"
        case .killedFromOutside(let oom): oom ? "oom" : "killed"
        case .workerLost: "bug"
        case .transcode, .outOfMemory: nil
        }
    }
}

/// "SIGSEGV" for 11, and so on for the signals a crash or a kill brings; "signal N" for the rest.
public func signalName(_ signal: Int32) -> String {
    signalNames[signal] ?? "signal \(signal)"
}

private let signalNames: [Int32: String] = [
    SIGSEGV: "SIGSEGV", SIGBUS: "SIGBUS", SIGABRT: "SIGABRT", SIGFPE: "SIGFPE", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
    SIGSYS: "SIGSYS", SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGINT: "SIGINT", SIGHUP: "SIGHUP", SIGPIPE: "SIGPIPE",
    SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2",
]
