import Foundation
import TestSupport
import Testing
import Transcoding

/// Inputs that once crashed the transcoder (found by `make fuzz-media`), kept so they never do again.
@Suite("fuzzer regressions")
struct RegressionTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Regressions")

    static var inputs: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
    }

    @Test("each gives a valid MP4 or a typed input error", arguments: inputs)
    func regression(_ name: String) throws {
        let scratch = try Scratch()
        var options = TranscodeOptions()
        options.preset = "ultrafast"
        options.limits.jobTimeLimitSeconds = 10
        do {
            let report = try transcode(
                input: .path(Self.folder.appendingPathComponent(name).path), output: .path(scratch.path("out.mp4")),
                options: options)
            let probe = try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true)
            #expect(probe.video?.codec == "h264")
            #expect(probe.video?.frameCount == report.videoFrames)
        } catch {
            #expect(error.isInputError, "\(error)")
        }
    }
}
