import ArgumentParser

@main
struct FFmpegProcessor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ffmpeg-processor",
        abstract: "Transcode videos to web-ready MP4 (H.264 + AAC) with FFmpeg's libraries, in-process.",
        subcommands: [ServeCommand.self, TranscodeCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
