import Foundation
import Glibc
import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("bad inputs get a typed error, never a crash, a hang or a leak")
struct BadInputTests {
    /// Transcodes `input`, expecting `expected`; afterwards no descriptor of ours points into the scratch folder.
    func expect(_ expected: TranscodeError, from input: String, in scratch: Scratch, options: TranscodeOptions = TranscodeOptions()) {
        #expect(throws: expected) {
            try transcode(input: .path(input), output: .path(scratch.path("out.mp4")), options: options)
        }
        #expect(descriptors(under: scratch.url.path).isEmpty)
    }

    @Test("an empty file is not a video")
    func empty() async throws {
        try await onThread {
            let scratch = try Scratch()
            _ = FileManager.default.createFile(atPath: scratch.path("empty"), contents: Data())
            expect(.notAVideo(detected: nil), from: scratch.path("empty"), in: scratch)
        }
    }

    @Test("random bytes are not a video", arguments: [1, 2, 3])
    func randomBytes(seed: UInt64) async throws {
        try await onThread {
            let scratch = try Scratch()
            var generator = SplitMix(seed: seed)
            let bytes = (0..<300_000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            _ = FileManager.default.createFile(atPath: scratch.path("noise"), contents: Data(bytes))
            #expect(throws: TranscodeError.self) {
                try transcode(input: .path(scratch.path("noise")), output: .path(scratch.path("out.mp4")))
            }
            do {
                try transcode(input: .path(scratch.path("noise")), output: .path(scratch.path("out.mp4")))
            } catch let error as TranscodeError {
                #expect(error.isInputError, "\(error)")
            }
            #expect(descriptors(under: scratch.url.path).isEmpty)
        }
    }

    @Test("the first half of an MP4 (moov at the end) is corrupt input")
    func truncated() async throws {
        try await onThread {
            let scratch = try Scratch()
            try SyntheticClip().write(to: scratch.path("whole.mp4"))
            let whole = try Data(contentsOf: URL(fileURLWithPath: scratch.path("whole.mp4")))
            #expect(try ContainerLayout.mp4Boxes(scratch.path("whole.mp4")).last == "moov")
            _ = FileManager.default.createFile(atPath: scratch.path("half.mp4"), contents: whole.prefix(whole.count / 2))
            #expect {
                try transcode(input: .path(scratch.path("half.mp4")), output: .path(scratch.path("out.mp4")))
            } throws: { error in
                if case .corruptInput = error as? TranscodeError { return true }
                return false
            }
            #expect(descriptors(under: scratch.url.path).isEmpty)
        }
    }

    @Test("playlists that point at a local file are refused before anything is opened", arguments: [
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nSECRET\n#EXT-X-ENDLIST\n", "hls"),
        ("ffconcat version 1.0\nfile 'SECRET'\n", "concat"),
    ])
    func playlists(text: String, format: String) async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 0.5
            try clip.write(to: scratch.path("secret.mp4"))
            let playlist = text.replacingOccurrences(of: "SECRET", with: scratch.path("secret.mp4"))
            _ = FileManager.default.createFile(atPath: scratch.path("list"), contents: Data(playlist.utf8))
            #expect {
                try transcode(input: .path(scratch.path("list")), output: .path(scratch.path("out.mp4")))
            } throws: { error in
                guard case .notAVideo(let detected) = error as? TranscodeError else { return false }
                return detected == nil || detected!.contains(format)
            }
            #expect(!FileManager.default.fileExists(atPath: scratch.path("out.mp4")))
        }
    }

    @Test("an audio-only file has no video stream")
    func audioOnly() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.videoCodec = nil
            try clip.write(to: scratch.path("sound.m4a"))
            expect(.noVideoStream, from: scratch.path("sound.m4a"), in: scratch)
        }
    }

    @Test("a header declaring absurd dimensions hits the pixel limit before any decoding",
          arguments: [(30000, 30000), (16000, 16000), (40000, 8)] as [(Int32, Int32)])
    func absurdDimensions(width: Int32, height: Int32) async throws {
        try await onThread {
            let scratch = try Scratch()
            try SyntheticClip.writeDeclaringDimensions(to: scratch.path("bomb.avi"), width: width, height: height)
            expect(.limitExceeded(.pixels), from: scratch.path("bomb.avi"), in: scratch)
        }
    }

    @Test("a limit on streams, duration or pixels is enforced")
    func limits() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 2
            try clip.write(to: scratch.path("in.mp4"))
            var options = TranscodeOptions()
            options.limits.maxDurationSeconds = 1
            expect(.limitExceeded(.duration), from: scratch.path("in.mp4"), in: scratch, options: options)
            options = TranscodeOptions()
            options.limits.maxStreams = 1
            expect(.limitExceeded(.streams), from: scratch.path("in.mp4"), in: scratch, options: options)
            options = TranscodeOptions()
            options.limits.maxPixels = 320 * 239
            expect(.limitExceeded(.pixels), from: scratch.path("in.mp4"), in: scratch, options: options)
        }
    }

    @Test("out-of-range options are refused, not clamped", arguments: [
        { (o: inout TranscodeOptions) in o.crf = 52 }, { $0.crf = -1 }, { $0.preset = "warp" }, { $0.maxWidth = 8 },
        { $0.maxHeight = 20000 }, { $0.threads = 65 }, { $0.limits.jobTimeLimitSeconds = 0 },
    ] as [@Sendable (inout TranscodeOptions) -> Void])
    func invalidOptions(change: @Sendable (inout TranscodeOptions) -> Void) throws {
        let scratch = try Scratch()
        var options = TranscodeOptions()
        change(&options)
        #expect {
            try transcode(input: .path(scratch.path("missing.mp4")), output: .path(scratch.path("out.mp4")), options: options)
        } throws: { error in
            if case .invalidOption = error as? TranscodeError { return true }
            return false
        }
    }

    @Test("a missing input is an I/O error naming errno")
    func missing() async throws {
        try await onThread {
            let scratch = try Scratch()
            expect(.io(.noSuchFileOrDirectory), from: scratch.path("missing.mp4"), in: scratch)
        }
    }
}
