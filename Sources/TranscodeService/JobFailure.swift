import Glibc
import Transcoding

/// Why a job the pool ran did not give an MP4: what the engine said, or what became of the process it ran in.
public enum JobFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The engine's own answer (the same in both isolation modes).
    case transcode(TranscodeError)
    /// The worker process died of this signal during the job: the input crashed a decoder, or made it try a
    /// system call the sandbox forbids (SIGSYS). Only that job is lost.
    case crashed(signal: Int32)
    /// The job needed more memory than `--job-memory` allows.
    case outOfMemory
    /// The worker process ended some other way (an exit status, a broken message): the service's fault, not the
    /// input's.
    case workerLost(String)

    public var description: String {
        switch self {
        case .transcode(let error): "\(error)"
        case .crashed(let signal): "the worker process died of \(signalName(signal))"
        case .outOfMemory: "the input needs more memory than allowed"
        case .workerLost(let reason): "the worker process was lost: \(reason)"
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
