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

    @Test("progressive frames followed by interlaced ones of another size: the graph is rebuilt mid-stream and no frame is lost")
    func changesMidStream() async throws {
        try await onThread {
            let scratch = try Scratch()
            var first = SyntheticClip()
            first.container = "mpegts"
            first.audioCodec = nil
            first.seconds = 0.6
            var second = Self.clip()
            second.audioCodec = nil
            second.width = 256
            second.height = 192
            second.seconds = 0.6
            let a = try first.write(to: scratch.path("a.ts")), b = try second.write(to: scratch.path("b.ts"))
            // MPEG-TS is a stream of packets: one file after the other is one stream whose pictures change.
            let joined = try Data(contentsOf: URL(fileURLWithPath: scratch.path("a.ts")))
                + Data(contentsOf: URL(fileURLWithPath: scratch.path("b.ts")))
            try joined.write(to: URL(fileURLWithPath: scratch.path("in.ts")))

            let report = try transcode(input: .path(scratch.path("in.ts")), output: .path(scratch.path("out.mp4")))

            #expect(report.videoFrames == a.videoFrames + b.videoFrames)
            #expect(report.videoFilters == ["bwdif", "scale(256x192->320x240)"])
            #expect(report.videoFilterGraph
                    == "format=yuv420p | bwdif=mode=send_frame:parity=auto:deint=interlaced,scale=w=320:h=240,format=yuv420p")
            let video = try #require(try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true).video)
            #expect(video.width == 320 && video.height == 240)
            #expect(video.frameCount == a.videoFrames + b.videoFrames && video.decodeErrors == 0)
        }
    }
}
