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
        subcommands: [Generate.self, GIF.self, Run.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a synthetic clip (H.264 + AAC in MP4 by default).")
        @Argument var output: String
        @Option var width = 1280
        @Option var height = 720
        @Option var seconds = 5.0
        @Option var frameRate = 30
        @Option(help: "sdr, sdr10, hlg or pq (10-bit HDR; use --codec libx265 --container mov).") var signal = "sdr"
        @Flag(help: "Two fields per frame, top first, coded interlaced.") var interlaced = false
        @Option(help: "libav video encoder.") var codec = "libx264"
        @Option(help: "libav muxer.") var container = "mp4"

        func run() throws {
            var clip = SyntheticClip()
            clip.width = width
            clip.height = height
            clip.seconds = seconds
            clip.frameRate = frameRate
            clip.videoCodec = codec
            clip.container = container
            clip.interlaced = interlaced
            let signals: [String: SyntheticClip.Signal] = ["sdr": .sdr, "sdr10": .sdr10, "hlg": .hlg, "pq": .pq]
            guard let chosen = signals[signal] else { throw ValidationError("--signal: one of \(signals.keys.sorted())") }
            clip.signal = chosen
            let info = try clip.write(to: output)
            print("wrote \(output): \(info.videoFrames) frames, \(info.videoDuration) s")
        }
    }

    struct GIF: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the animated GIF fixture (delays of 0 and 1 centisecond, a transparent quarter).")
        @Argument var output: String

        func run() throws {
            let gif = AnimatedGIF()
            try gif.write(to: output)
            print("wrote \(output): \(gif.delays.count) frames, \(gif.playedSeconds) s as browsers play it")
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
        @Option(help: "tonemap or keep.") var hdr = "tonemap"
        @Option(help: "auto or off.") var deinterlace = "auto"
        @Flag(help: "Print the video filter chain of the last run (as ffmpeg -vf takes it) instead of the timing.")
        var printGraph = false

        func run() throws {
            if !returnFreedMemory { JobMemory.keepFreedMemoryForNextJob() }
            var options = TranscodeOptions()
            options.threads = threads
            options.hdr = try TranscodeOptions.parse("hdr", hdr)
            options.deinterlace = try TranscodeOptions.parse("deinterlace", deinterlace)
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let start = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
            var frames = 0
            var graph = ""
            for _ in 0..<count {
                let report = try transcode(input: .path(input), output: .path(outputDirectory + "/bench-out.mp4"), options: options)
                frames += report.videoFrames
                graph = report.videoFilterGraph
            }
            if printGraph {
                print(graph)
                return
            }
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let seconds = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 - start
            print(seconds, frames)
        }
    }
}
