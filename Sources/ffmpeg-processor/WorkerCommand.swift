import ArgumentParser
import Glibc
import TranscodeService

/// `ffmpeg-processor worker`: what a pool thread starts under `--isolation process`, with its socket on descriptor
/// 3. Hidden: it is no command for a person to run.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "A service's sandboxed transcoding process (started by the service).",
        shouldDisplay: false)

    @Option(help: "RLIMIT_AS, bytes.") var jobMemory: Int64
    @Option(help: "The process id of the service that started this one.") var parent: Int32

    func run() throws {
        WorkerChild.run(parent: parent, jobMemory: jobMemory)
    }
}
