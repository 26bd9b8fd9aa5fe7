import ArgumentParser
import Glibc
import MediaFixtures
import Transcoding

/// `transcode-bench`: the in-process side of `make bench` (scripts/bench.sh runs the ffmpeg CLI side).
@main
struct TranscodeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transcode-bench",
        abstract: "Generate benchmark clips and time in-process transcodes.",
        subcommands: [Generate.self, Run.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a synthetic H.264 + AAC clip.")
        @Argument var output: String
        @Option var width = 1280
        @Option var height = 720
        @Option var seconds = 5.0
        @Option var frameRate = 30

        func run() throws {
            var clip = SyntheticClip()
            clip.width = width
            clip.height = height
            clip.seconds = seconds
            clip.frameRate = frameRate
            let info = try clip.write(to: output)
            print("wrote \(output): \(info.videoFrames) frames, \(info.videoDuration) s")
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Transcode INPUT COUNT times in a row, one process, and print the total seconds.")
        @Argument var input: String
        @Option var count = 1
        @Option var threads = 0
        @Option(help: "Folder for the outputs (each run overwrites the last).") var outputDirectory = "/tmp"
        @Flag(help: "Leave glibc's defaults, which give freed job memory back to the kernel (as before).")
        var returnFreedMemory = false

        func run() throws {
            if !returnFreedMemory { JobMemory.keepFreedMemoryForNextJob() }
            var options = TranscodeOptions()
            options.threads = threads
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let start = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
            var frames = 0
            for _ in 0..<count {
                frames += try transcode(input: .path(input), output: .path(outputDirectory + "/bench-out.mp4"), options: options).videoFrames
            }
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let seconds = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 - start
            print(seconds, frames)
        }
    }
}
