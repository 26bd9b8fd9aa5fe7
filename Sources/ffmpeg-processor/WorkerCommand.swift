import ArgumentParser
import Glibc
import Transcoding
import WorkerIsolation

/// `ffmpeg-processor worker`: the warm template a pool thread starts under `--isolation process`, with its socket on
/// descriptor 3; it forks a fresh process for each job. Hidden: it is no command for a person to run.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "A service's sandboxed template of transcoding processes (started by the service).",
        shouldDisplay: false)

    @Option(help: "RLIMIT_AS, bytes.") var jobMemory: Int64
    @Option(help: "The process id of the service that started this one.") var parent: Int32

    func run() throws {
        // The template confines itself and each job's process to `jobMemory`, after which the engine cannot ask:
        // declared here, before, and inherited by every fork, so a failed allocation is the job's 413, not a 500.
        JobMemory.declareAddressSpaceLimit(jobMemory)
        WorkerTemplate.run(parent: parent, jobMemory: jobMemory)
    }
}
