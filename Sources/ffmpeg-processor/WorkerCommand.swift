import ArgumentParser
import Glibc
import TranscodeService
import Transcoding

/// `ffmpeg-processor worker`: what a pool thread starts under `--isolation process`, with its socket on descriptor
/// 3. Hidden: it is no command for a person to run.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "A service's sandboxed transcoding process (started by the service).",
        shouldDisplay: false)

    @Option(help: "RLIMIT_AS, bytes.") var jobMemory: Int64
    @Option(help: "The process id of the service that started this one.") var parent: Int32

    func run() throws {
        // WorkerChild confines the process to `jobMemory`, after which the engine cannot ask: a failed allocation in
        // a job is then the job's 413, not a 500.
        JobMemory.declareAddressSpaceLimit(jobMemory)
        WorkerChild.run(parent: parent, jobMemory: jobMemory)
    }
}
