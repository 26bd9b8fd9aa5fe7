import Foundation
import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("ffmpeg-processor transcode IN OUT")
struct CommandLineTests {
    @Test("a good input: exit 0 and a one-line report")
    func success() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 0.5
            let info = try clip.write(to: scratch.path("in.mp4"))
            let result = try run(try builtExecutable("ffmpeg-processor"),
                                 ["transcode", scratch.path("in.mp4"), scratch.path("out.mp4"), "--crf", "28", "--height", "120"])
            #expect(result.status == 0, "\(result.err)")
            #expect(result.out.hasPrefix("frames=\(info.videoFrames) size=160x120 audio=aac"), "\(result.out)")
            #expect(result.out.split(separator: "\n").count == 1)
            #expect(result.out.contains(" filters=scale(320x240->160x120) "), "\(result.out)")
            #expect(try MediaProbe.probe(.path(scratch.path("out.mp4"))).video?.height == 120)
        }
    }

    @Test("bad input or option: exit 2 with the reason on stderr", arguments: [
        (["transcode", "NOISE", "OUT"], "not a video"),
        (["transcode", "NOISE", "OUT", "--crf", "60"], "crf for h264 must be 0...51"),
        (["transcode", "NOISE", "OUT", "--preset", "warp"], "preset must be one of"),
        (["transcode", "NOISE", "OUT", "--hdr", "bright"], "hdr must be tonemap or keep, not 'bright'"),
        (["transcode", "NOISE", "OUT", "--deinterlace", "yes"], "deinterlace must be auto or off, not 'yes'"),
    ])
    func badInput(arguments: [String], reason: String) throws {
        let scratch = try Scratch()
        _ = FileManager.default.createFile(atPath: scratch.path("noise"), contents: Data(repeating: 0x42, count: 4096))
        let resolved = arguments.map { $0 == "NOISE" ? scratch.path("noise") : $0 == "OUT" ? scratch.path("out.mp4") : $0 }
        let result = try run(try builtExecutable("ffmpeg-processor"), resolved)
        #expect(result.status == 2)
        #expect(result.err.contains(reason), "\(result.err)")
    }

    /// The binary the sandbox tests run: under `make test-tsan` a plain build, as for the service's workers (TSan's
    /// shadow memory and its runtime's own calls do not fit a sandbox).
    static func sandboxable() throws -> String {
        try ProcessInfo.processInfo.environment["FFMPEG_PROCESSOR_WORKER_EXECUTABLE"] ?? builtExecutable("ffmpeg-processor")
    }

    @Test("--sandbox: the files are opened first, then the process is confined, and the MP4 still decodes with every frame")
    func sandboxed() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 0.5
            let info = try clip.write(to: scratch.path("in.mp4"))
            let result = try run(try Self.sandboxable(),
                                 ["transcode", "--sandbox", scratch.path("in.mp4"), scratch.path("out.mp4")])
            #expect(result.status == 0, "\(result.err)")
            let probe = try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true)
            #expect(probe.video?.frameCount == info.videoFrames)
        }
    }

    @Test("--sandbox --job-memory: the same transcode fails under an address space too small for it, and succeeds without the limit")
    func sandboxMemory() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.width = 1280
            clip.height = 720
            clip.seconds = 0.5
            try clip.write(to: scratch.path("in.mp4"))
            let arguments = ["transcode", "--sandbox", scratch.path("in.mp4"), scratch.path("out.mp4")]
            #expect(try run(try Self.sandboxable(), arguments).status == 0)
            let limited = try run(try Self.sandboxable(), arguments + ["--job-memory", String(256 << 20)])
            #expect(limited.status != 0, "a 720p transcode fit in 256 MiB of address space: \(limited.out)")
        }
    }

    @Test("an output that cannot be written: exit 1")
    func internalError() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 0.3
            try clip.write(to: scratch.path("in.mp4"))
            let result = try run(try builtExecutable("ffmpeg-processor"),
                                 ["transcode", scratch.path("in.mp4"), scratch.path("no-such-folder/out.mp4")])
            #expect(result.status == 1)
            #expect(result.err.contains("I/O error"), "\(result.err)")
        }
    }
}

@Suite("parity with the ffmpeg CLI at the same settings")
struct CLIParityTests {
    @Test("the video stream is bit-identical to `ffmpeg -i in out.mp4`'s, with the same audio frame count and duration",
          .enabled(if: which("ffmpeg") != nil, "the ffmpeg CLI is installed by `make deps`"))
    func matchesCLI() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.container = "avi"
            clip.videoCodec = "mpeg4"
            clip.audioCodec = "mp2"
            clip.seconds = 2
            try clip.write(to: scratch.path("in.avi"))
            try transcode(input: .path(scratch.path("in.avi")), output: .path(scratch.path("ours.mp4")))
            let cli = try run(which("ffmpeg")!, ["-nostdin", "-v", "error", "-i", scratch.path("in.avi"), scratch.path("cli.mp4")])
            #expect(cli.status == 0, "\(cli.err)")
            let ours = try MediaProbe.probe(.path(scratch.path("ours.mp4")), decode: true)
            let theirs = try MediaProbe.probe(.path(scratch.path("cli.mp4")), decode: true)
            #expect(ours.video?.frameCount == theirs.video?.frameCount)
            #expect(ours.audio?.frameCount == theirs.audio?.frameCount)
            #expect(abs((ours.duration ?? 0) - (theirs.duration ?? 0)) < 0.05)
            // Same libx264, same settings, same thread count (both pick one from the cores): the same bits. Each
            // packet's checksum, with its timestamps and flags, as `-f framemd5` lists them.
            func videoPackets(_ file: String) throws -> [Substring] {
                let listed = try run(which("ffmpeg")!, ["-nostdin", "-v", "error", "-i", scratch.path(file), "-map", "0:v",
                                                        "-c", "copy", "-f", "framemd5", "-"])
                return listed.out.split(separator: "\n").filter { !$0.hasPrefix("#") }
            }
            let ourPackets = try videoPackets("ours.mp4")
            #expect(ourPackets.count == ours.video?.frameCount)
            #expect(ourPackets == (try videoPackets("cli.mp4")))
        }
    }
}
