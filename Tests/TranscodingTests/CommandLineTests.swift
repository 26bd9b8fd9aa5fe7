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
            #expect(try MediaProbe.probe(.path(scratch.path("out.mp4"))).video?.height == 120)
        }
    }

    @Test("bad input or option: exit 2 with the reason on stderr", arguments: [
        (["transcode", "NOISE", "OUT"], "not a video"),
        (["transcode", "NOISE", "OUT", "--crf", "60"], "crf must be 0...51"),
        (["transcode", "NOISE", "OUT", "--preset", "warp"], "preset must be one of"),
    ])
    func badInput(arguments: [String], reason: String) throws {
        let scratch = try Scratch()
        _ = FileManager.default.createFile(atPath: scratch.path("noise"), contents: Data(repeating: 0x42, count: 4096))
        let resolved = arguments.map { $0 == "NOISE" ? scratch.path("noise") : $0 == "OUT" ? scratch.path("out.mp4") : $0 }
        let result = try run(try builtExecutable("ffmpeg-processor"), resolved)
        #expect(result.status == 2)
        #expect(result.err.contains(reason), "\(result.err)")
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
    @Test("same frames and duration, PSNR ≥ 40 dB against `ffmpeg -i in out.mp4`",
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
            let psnr = try run(which("ffmpeg")!, ["-nostdin", "-i", scratch.path("ours.mp4"), "-i", scratch.path("cli.mp4"),
                                                  "-lavfi", "psnr", "-f", "null", "-"])
            let line = try #require(psnr.err.split(separator: "\n").last { $0.contains("average:") })
            let average = line.split(separator: " ").first { $0.hasPrefix("average:") }!.dropFirst("average:".count)
            #expect(average == "inf" || Double(average)! >= 40, "\(line)")
        }
    }
}
