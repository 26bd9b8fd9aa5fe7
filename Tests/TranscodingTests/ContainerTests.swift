import Foundation
import TestSupport
import Testing
import Transcoding

/// Which containers the whitelist opens, with inputs made by the ffmpeg CLI (`make deps`) since our fixtures write
/// neither MP3, FLAC nor DV.
@Suite("containers: sound-only files have no video stream, raw DV is a video",
       .enabled(if: FFmpegCLI.available, "the ffmpeg CLI is installed by `make deps`"))
struct ContainerTests {
    /// Writes `seconds` of `sources` (lavfi graphs) to `path`, in the container its extension names.
    static func generate(_ path: String, seconds: Double, sources: [String], extra: [String] = []) throws {
        var arguments = ["-nostdin", "-v", "error", "-y", "-threads", "1"]
        for source in sources { arguments += ["-f", "lavfi", "-i", source] }
        let result = try run(FFmpegCLI.path!, arguments + ["-t", String(seconds)] + extra + [path])
        guard result.status == 0 else { throw FFmpegCLI.CLIError(description: "ffmpeg failed: \(result.err.suffix(600))") }
    }

    @Test("a recognised sound-only container is 'no video stream', whatever the container",
          arguments: ["mp3", "m4a", "wav", "flac", "opus", "aac"])
    func soundOnly(extension: String) async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("sound.\(`extension`)")
            try Self.generate(input, seconds: 0.5, sources: ["sine=frequency=440"])
            #expect(throws: TranscodeError.noVideoStream) {
                try transcode(input: .path(input), output: .path(scratch.path("out.mp4")))
            }
        }
    }

    @Test("raw DV (a camcorder's file) is transcoded with every frame")
    func rawDV() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("camcorder.dv")
            // 10 frames of PAL DV, with the 48 kHz PCM sound a camcorder records.
            try Self.generate(input, seconds: 0.4, sources: ["testsrc=size=720x576:rate=25", "sine=sample_rate=48000"],
                              extra: ["-target", "pal-dv"])
            #expect(try MediaProbe.probe(.path(input)).container == "dv")
            let report = try transcode(input: .path(input), output: .path(scratch.path("out.mp4")))
            #expect(report.inputFormat == "dv")
            let output = try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true)
            #expect(output.video?.codec == "h264")
            #expect(output.video?.frameCount == 10)
            #expect(output.audio?.codec == "aac")
        }
    }
}
