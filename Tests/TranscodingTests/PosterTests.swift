import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("posters: one frame as an image")
struct PosterTests {
    /// A 2.5 s clip whose pattern moves every frame, so that a neighbouring frame scores far below the floor.
    static func clip(in scratch: Scratch, rotation: Double = 0) throws -> String {
        var clip = SyntheticClip()
        clip.seconds = 2.5
        clip.rotation = rotation
        let path = scratch.path("in.mp4")
        try clip.write(to: path)
        return path
    }

    @Test("at=2 is the frame `ffmpeg -ss 2 -i in -frames:v 1` extracts (PSNR ≥ 35 dB), in each format",
          .enabled(if: FFmpegCLI.available, "the ffmpeg CLI is the reference"),
          arguments: TranscodeOptions.Poster.ImageFormat.allCases)
    func matchesCLI(_ format: TranscodeOptions.Poster.ImageFormat) async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = try Self.clip(in: scratch)
            var options = TranscodeOptions()
            options.poster = .init(at: 2, format: format)
            let output = scratch.path("poster.\(format.rawValue)")
            let report = try poster(input: .path(input), output: .path(output), options: options)
            #expect(abs(report.seconds - 2) < 0.001 && report.width == 320 && report.height == 240)
            let reference = scratch.path("reference.png")
            let cli = try run(FFmpegCLI.path!, ["-nostdin", "-v", "error", "-ss", "2", "-i", input, "-frames:v", "1", reference])
            #expect(cli.status == 0, "\(cli.err)")
            let psnr = try FFmpegCLI.psnrRGB(output, against: reference)
            #expect(psnr >= 35, "\(format): \(psnr) dB")
            let next = scratch.path("next.png")
            _ = try run(FFmpegCLI.path!, ["-nostdin", "-v", "error", "-ss", "2.04", "-i", input, "-frames:v", "1", next])
            #expect(try FFmpegCLI.psnrRGB(output, against: next) < 30, "the next frame must not pass")
        }
    }

    @Test("auto passes over a black intro and a flash unlike the rest: the poster is a frame of the clip's scene, the one at the time it reports",
          .enabled(if: FFmpegCLI.available, "the ffmpeg CLI extracts the reference frame"))
    func autoIsRepresentative() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 2.5
            // 0.4 s of black, then three frames of a checkerboard: informative, so the first frame that is not
            // blank, but nothing like the 50 frames of the pattern after it.
            clip.opening = Array(repeating: .black, count: 10) + Array(repeating: .checkerboard, count: 3)
            let input = scratch.path("in.mp4")
            try clip.write(to: input)
            var options = TranscodeOptions()
            options.poster = .init(format: .png)
            let output = scratch.path("poster.png")
            let report = try poster(input: .path(input), output: .path(output), options: options)
            #expect(report.seconds >= 0.52 - 0.001, "chose the frame at \(report.seconds) s, of the intro")
            let reference = scratch.path("reference.png")
            let cli = try run(FFmpegCLI.path!, ["-nostdin", "-v", "error", "-ss", String(report.seconds), "-i", input,
                                                "-frames:v", "1", reference])
            #expect(cli.status == 0, "\(cli.err)")
            let psnr = try FFmpegCLI.psnrRGB(output, against: reference)
            #expect(psnr >= 35, "\(psnr) dB against the frame at \(report.seconds) s")
        }
    }

    @Test("at past the last frame is refused with the last frame's time")
    func pastTheEnd() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = try Self.clip(in: scratch)
            var options = TranscodeOptions()
            options.poster = .init(at: 9)
            #expect(throws: TranscodeError.pastTheEnd(at: 9, last: 2.44)) {
                try poster(input: .path(input), output: .path(scratch.path("p.jpeg")), options: options)
            }
        }
    }

    @Test("a rotated video's poster is upright, scaled within width and height")
    func uprightAndScaled() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = try Self.clip(in: scratch, rotation: 90)
            var options = TranscodeOptions()
            options.maxWidth = 120
            options.poster = .init(format: .png)
            let report = try poster(input: .path(input), output: .path(scratch.path("p.png")), options: options)
            #expect(report.width == 120 && report.height == 160)
            // MediaProbe opens videos only (its whitelist refuses image pipes); the CLI's probe reads the PNG.
            if FFmpegCLI.available {
                let size = try FFmpegCLI.measure([scratch.path("p.png")], "[0:v]showinfo")
                #expect(size.contains(" s:120x160 "), "\(size.suffix(300))")
            }
        }
    }
}
