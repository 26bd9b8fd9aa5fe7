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
            // The input's size, not the bytes libav read (its seeks re-read some).
            let size = try #require(try FileManager.default.attributesOfItem(atPath: scratch.path("in.mp4"))[.size] as? Int)
            #expect(result.out.contains(" bytes=\(size)->"), "\(result.out)")
            #expect(try MediaProbe.probe(.path(scratch.path("out.mp4"))).video?.height == 120)
        }
    }

    @Test("bad input or option: exit 2 with the reason on stderr", arguments: [
        (["transcode", "NOISE", "OUT"], "not a video"),
        (["transcode", "NOISE", "OUT", "--crf", "60"], "crf for h264 must be 0...51"),
        (["transcode", "NOISE", "OUT", "--preset", "warp"], "preset must be one of"),
        (["transcode", "NOISE", "OUT", "--hdr", "bright"], "hdr must be tonemap or keep, not 'bright'"),
        (["transcode", "NOISE", "OUT", "--deinterlace", "yes"], "deinterlace must be auto or off, not 'yes'"),
        (["transcode", "MISSING", "OUT"], "missing.mp4: No such file or directory"),
    ])
    func badInput(arguments: [String], reason: String) throws {
        let scratch = try Scratch()
        _ = FileManager.default.createFile(atPath: scratch.path("noise"), contents: Data(repeating: 0x42, count: 4096))
        let names = ["NOISE": "noise", "MISSING": "missing.mp4", "OUT": "out.mp4"]
        let resolved = arguments.map { names[$0].map { scratch.path($0) } ?? $0 }
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

    /// A 1 s 1080p clip, what a phone uploads, in `scratch`; its path and frame count.
    static func clip1080p(in scratch: Scratch) throws -> (String, Int) {
        var clip = SyntheticClip()
        (clip.width, clip.height) = (1920, 1080)
        clip.seconds = 1
        return (scratch.path("in.mp4"), try clip.write(to: scratch.path("in.mp4")).videoFrames)
    }

    /// Two threads whatever the machine, so that what fits in the address space does not depend on its cores.
    static func sandboxed1080p(_ input: String, _ output: String, jobMemory: Int64) throws -> (status: Int32, out: String, err: String) {
        let result = try run(try sandboxable(), ["transcode", "--sandbox", "--threads", "2", "--job-memory", String(jobMemory), input, output])
        return (result.status, result.out, result.err)
    }

    @Test("--sandbox --job-memory too small for a 1080p transcode: exit 2 naming --job-memory (the service's 413), never an internal error",
          arguments: [256, 384, 640])
    func sandboxMemory(mebibytes: Int64) async throws {
        try await onThread {
            let scratch = try Scratch()
            let (input, _) = try Self.clip1080p(in: scratch)
            // Below 1 GiB each of libav's allocations, x264's (AVERROR_EXTERNAL) and the decoder's threads (EAGAIN) has
            // failed first, depending on where the limit falls.
            let limited = try Self.sandboxed1080p(input, scratch.path("out.mp4"), jobMemory: mebibytes << 20)
            #expect(limited.status == 2, "\(limited.err)")
            #expect(limited.err.contains("limit exceeded: memory") && limited.err.contains("--job-memory"), "\(limited.err)")
            #expect(!limited.err.contains("internal error") && !limited.err.contains("unsupported"), "\(limited.err)")
        }
    }

    @Test("--sandbox with room for it (3 GiB): the same 1080p transcode succeeds and decodes with every frame")
    func sandboxMemoryEnough() async throws {
        try await onThread {
            let scratch = try Scratch()
            let (input, frames) = try Self.clip1080p(in: scratch)
            let result = try Self.sandboxed1080p(input, scratch.path("out.mp4"), jobMemory: 3 << 30)
            #expect(result.status == 0, "\(result.err)")
            let video = try #require(try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true).video)
            #expect(video.width == 1920 && video.height == 1080 && video.frameCount == frames && video.decodeErrors == 0)
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
            // Our engine in a process of its own, as the CLI's is: in this one, other tests' codecs run on the same
            // threads first, and in a full run the bits came out different (every packet, from the first frame).
            let ours = try run(try builtExecutable("ffmpeg-processor"),
                               ["transcode", scratch.path("in.avi"), scratch.path("ours.mp4")])
            #expect(ours.status == 0, "\(ours.err)")
            let cli = try run(which("ffmpeg")!, ["-nostdin", "-v", "error", "-i", scratch.path("in.avi"), scratch.path("cli.mp4")])
            #expect(cli.status == 0, "\(cli.err)")
            let probed = try MediaProbe.probe(.path(scratch.path("ours.mp4")), decode: true)
            let theirs = try MediaProbe.probe(.path(scratch.path("cli.mp4")), decode: true)
            #expect(probed.video?.frameCount == theirs.video?.frameCount)
            #expect(probed.audio?.frameCount == theirs.audio?.frameCount)
            #expect(abs((probed.duration ?? 0) - (theirs.duration ?? 0)) < 0.05)
            // Same libx264, same settings, same thread count (both pick one from the cores): the same bits. Each
            // packet's checksum, with its timestamps and flags, as `-f framemd5` lists them.
            func videoPackets(_ file: String) throws -> [Substring] {
                let listed = try run(which("ffmpeg")!, ["-nostdin", "-v", "error", "-i", scratch.path(file), "-map", "0:v",
                                                        "-c", "copy", "-f", "framemd5", "-"])
                return listed.out.split(separator: "\n").filter { !$0.hasPrefix("#") }
            }
            let ourPackets = try videoPackets("ours.mp4")
            #expect(ourPackets.count == probed.video?.frameCount)
            #expect(ourPackets == (try videoPackets("cli.mp4")))
        }
    }
}
