import ArgumentParser
import Dispatch
import Glibc

/// The entry point. `worker` is parsed and run here, synchronously, on the process's first thread: an async main
/// would run it on a Dispatch thread while the first thread sleeps unconfined in `dispatch_main`, and a sandbox
/// should hold for every thread the process has, starting with the one `/proc/<pid>/status` reports.
@main
enum Entry {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == WorkerCommand.configuration.commandName {
            WorkerCommand.main(Array(arguments.dropFirst()))
            exit(0)
        }
        Task {
            await FFmpegProcessor.main(arguments)
            exit(0)
        }
        dispatchMain()
    }
}

struct FFmpegProcessor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ffmpeg-processor",
        abstract: "Transcode videos to web-ready MP4 (H.264 + AAC) with FFmpeg's libraries, in-process.",
        subcommands: [ServeCommand.self, TranscodeCommand.self, WorkerCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
