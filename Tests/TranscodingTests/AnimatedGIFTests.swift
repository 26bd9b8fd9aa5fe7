import Foundation
import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("animated GIF is a video; transparency is composited onto white")
struct AnimatedGIFTests {
    @Test("every frame kept with its own delay, 0 and 1 centisecond played as 10 as browsers do: the frame count and total duration")
    func framesAndTiming() async throws {
        try await onThread {
            let scratch = try Scratch()
            let gif = AnimatedGIF()
            #expect(gif.delays.contains(0) && gif.delays.contains(1) && Set(gif.delays).count == gif.delays.count)
            try gif.write(to: scratch.path("in.gif"))
            let output = scratch.path("out.mp4")

            let report = try transcode(input: .path(scratch.path("in.gif")), output: .path(output))

            #expect(report.inputFormat == "gif")
            #expect(report.videoFrames == gif.delays.count)
            #expect(report.videoFilters == ["composite(white)", "format(bgra->yuv420p)"])
            let probe = try MediaProbe.probe(.path(output), decode: true)
            let video = try #require(probe.video)
            #expect(video.codec == "h264" && video.pixelFormat == "yuv420p" && video.decodeErrors == 0)
            #expect(video.frameCount == gif.delays.count)
            // Each frame starts when the ones before it have played (0, 0.1, 0.2, 0.25, 0.35, 0.55 s), and the whole
            // lasts 0.62 s; the delays as written would make it 0.43 s.
            let starts = try MediaProbe.packets(.path(output), of: .video).compactMap(\.time).sorted()
            let played = gif.playedDelays.dropLast().reduce(into: [0.0]) { $0.append($0.last! + Double($1) / 100) }
            #expect(starts.count == played.count && zip(starts, played).allSatisfy { abs($0 - $1) < 0.0005 }, "\(starts)")
            let total = try #require(probe.duration)
            #expect(abs(total - gif.playedSeconds) < 0.0005, "\(total) s, played \(gif.playedSeconds) s")
            #expect(video.colorMatrix == "bt709" && video.colorPrimaries == "bt709" && video.colorTransfer == "iec61966-2-1")
            #expect(probe.audio == nil)
        }
    }

    @Test("the GIF's transparent quarter comes out white", .enabled(if: FFmpegCLI.available))
    func transparentIsWhite() async throws {
        try await onThread {
            let scratch = try Scratch()
            let gif = AnimatedGIF()
            try gif.write(to: scratch.path("in.gif"))
            try transcode(input: .path(scratch.path("in.gif")), output: .path(scratch.path("out.mp4")))
            // Away from the edge to the opaque part, which the encoder's blocks blur.
            let luma = try FFmpegCLI.samples(scratch.path("out.mp4"), plane: 0, crop: "\(gif.width / 4 - 8):\(gif.height):0:0")
            let chroma = try FFmpegCLI.samples(scratch.path("out.mp4"), plane: 1, crop: "\(gif.width / 8 - 4):\(gif.height / 2):0:0")
            #expect(abs(luma.mean - 235) < 2, "Y \(luma.mean)")
            #expect(abs(chroma.mean - 128) < 2, "U \(chroma.mean)")
        }
    }

    @Test("partial transparency is blended onto white: half-transparent red becomes pink, not red",
          .enabled(if: FFmpegCLI.available))
    func partialAlpha() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.container = "mov"
            clip.videoCodec = "png"
            clip.audioCodec = nil
            clip.signal = .rgba
            clip.width = 128
            clip.height = 64
            clip.seconds = 0.2
            try clip.write(to: scratch.path("in.mov"))
            let report = try transcode(input: .path(scratch.path("in.mov")), output: .path(scratch.path("out.mp4")))
            #expect(report.videoFilters == ["composite(white)", "format(rgba->yuv420p)"])
            // Quarters of 32 columns: transparent, red at alpha 128, opaque red. In BT.709 TV range, white is Y 235,
            // (255, 127, 127) Y 148, red Y 63; red with its alpha dropped would stay Y 63 in the second quarter.
            func luma(quarter: Int) throws -> Double {
                try FFmpegCLI.samples(scratch.path("out.mp4"), plane: 0, crop: "16:64:\(quarter * 32 + 8):0").mean
            }
            #expect(abs(try luma(quarter: 0) - 235) < 3)
            #expect(abs(try luma(quarter: 1) - 148) < 3)
            #expect(abs(try luma(quarter: 2) - 63) < 3)
        }
    }

    @Test("a GIF of one picture is a still image: not a video")
    func singleFrame() async throws {
        try await onThread {
            let scratch = try Scratch()
            var gif = AnimatedGIF()
            gif.delays = [10]
            try gif.write(to: scratch.path("still.gif"))
            #expect(throws: TranscodeError.notAVideo(detected: "single-frame gif")) {
                try transcode(input: .path(scratch.path("still.gif")), output: .path(scratch.path("out.mp4")))
            }
            #expect(descriptors(under: scratch.url.path).isEmpty)
        }
    }

    @Test("the pixel and frame limits hold for GIF as for any input")
    func limits() async throws {
        try await onThread {
            let scratch = try Scratch()
            try AnimatedGIF().write(to: scratch.path("in.gif"))
            var options = TranscodeOptions()
            options.limits.maxPixels = 96 * 64 - 1
            #expect(throws: TranscodeError.limitExceeded(.pixels)) {
                try transcode(input: .path(scratch.path("in.gif")), output: .path(scratch.path("out.mp4")), options: options)
            }
            options = TranscodeOptions()
            options.limits.maxFrames = 5
            #expect(throws: TranscodeError.limitExceeded(.frames)) {
                try transcode(input: .path(scratch.path("in.gif")), output: .path(scratch.path("out.mp4")), options: options)
            }
            // A screen declared 20000 pixels wide is refused before any frame is decoded.
            var huge = AnimatedGIF()
            huge.width = 20000
            huge.height = 2
            huge.delays = [10, 10]
            try huge.write(to: scratch.path("huge.gif"))
            #expect(throws: TranscodeError.limitExceeded(.pixels)) {
                try transcode(input: .path(scratch.path("huge.gif")), output: .path(scratch.path("out.mp4")))
            }
        }
    }
}
