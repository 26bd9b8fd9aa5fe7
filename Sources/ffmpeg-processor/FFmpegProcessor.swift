import ArgumentParser
import Dispatch
import Glibc

/// The entry point. `worker` and `transcode` are parsed and run here, synchronously, on the process's first
/// thread and with no Dispatch thread beside it: both may confine themselves (the worker always, `transcode` with
/// `--sandbox`), and Dispatch's threads make calls of their own (timers, epoll) that no allow-list for a transcode
/// should grant. Only `serve` needs the async runtime.
@main
enum Entry {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let synchronous = [WorkerCommand.configuration.commandName, TranscodeCommand.configuration.commandName]
        if let first = arguments.first, synchronous.contains(first) {
            // Parsed from the root, so that usage and help name the whole command.
            do {
                var command = try FFmpegProcessor.parseAsRoot(arguments)
                try command.run()
                exit(0)
            } catch {
                FFmpegProcessor.exit(withError: error)
            }
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
