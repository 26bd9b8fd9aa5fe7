import Foundation
import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("interlaced input becomes progressive", .enabled(if: FFmpegCLI.available, "idet is the ffmpeg CLI's"))
struct DeinterlaceTests {
    /// Top-field-first H.264 in MPEG-TS, as broadcast carries it; fields half a frame apart with motion in both.
    static func clip() -> SyntheticClip {
        var clip = SyntheticClip()
        clip.container = "mpegts"
        clip.interlaced = true
        clip.width = 320
        clip.height = 240
        clip.seconds = 1.2
        clip.audioCodec = "mp2"
        return clip
    }

    @Test("a TFF clip (idet: top field first) comes out progressive (idet: no combed frame), same frames, same timing")
    func deinterlaced() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.ts"), output = scratch.path("out.mp4")
            let info = try Self.clip().write(to: input)
            let source = try #require(try MediaProbe.probe(.path(input), decode: true).video)
            #expect(source.fieldOrder == "tt")
            #expect(source.interlacedFrames == info.videoFrames)
            let before = try FFmpegCLI.idet(input)
            #expect(before.tff >= info.videoFrames * 9 / 10 && before.progressive == 0, "input: \(before)")

            let report = try transcode(input: .path(input), output: .path(output))

            #expect(report.videoFilters == ["bwdif"])
            let video = try #require(try MediaProbe.probe(.path(output), decode: true).video)
            #expect(video.fieldOrder == "progressive")
            #expect(video.interlacedFrames == 0)
            #expect(video.frameCount == info.videoFrames && video.decodeErrors == 0)
            // Every frame where it was (timestamps from the first frame's).
            func starts(_ file: String) throws -> [Double] {
                let times = try MediaProbe.packets(.path(file), of: .video).compactMap(\.time).sorted()
                return times.map { $0 - times[0] }
            }
            let (outputStarts, inputStarts) = (try starts(output), try starts(input))
            #expect(outputStarts.count == inputStarts.count
                    && zip(outputStarts, inputStarts).allSatisfy { abs($0 - $1) < 0.0005 }, "\(outputStarts) vs \(inputStarts)")
            let after = try FFmpegCLI.idet(output)
            #expect(after.tff == 0 && after.bff == 0 && after.progressive >= info.videoFrames * 9 / 10, "output: \(after)")
        }
    }

    @Test("deinterlace=off encodes the fields as they are: idet still finds them combed")
    func keptInterlaced() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.ts"), output = scratch.path("out.mp4")
            let info = try Self.clip().write(to: input)
            var options = TranscodeOptions()
            options.deinterlace = .off
            let report = try transcode(input: .path(input), output: .path(output), options: options)
            #expect(report.videoFilters.isEmpty)
            let after = try FFmpegCLI.idet(output)
            #expect(after.tff >= info.videoFrames * 9 / 10, "output: \(after)")
        }
    }
}
