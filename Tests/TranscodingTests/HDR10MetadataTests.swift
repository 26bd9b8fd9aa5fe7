import MediaFixtures
import TestSupport
import Testing
import Transcoding

/// Serialized: each test encodes 10-bit HEVC, AV1 or VP9, and the rest of the test run shares the machine.
@Suite("hdr=keep carries HDR10 metadata (mastering display, content light level); tone mapping drops it", .serialized)
struct HDR10MetadataTests {
    static let expected = SyntheticClip.pqMetadata

    /// A PQ clip: HEVC with the metadata in its SEI only (a MOV from FFmpeg 5.1 has no `mdcv`), or VP9 in WebM with
    /// it in the container only, VP9 having no place for it.
    static func pqClip(vp9InContainer: Bool = false, audio: Bool = false) -> SyntheticClip {
        var clip = SyntheticClip()
        clip.container = vp9InContainer ? "webm" : "mov"
        clip.videoCodec = vp9InContainer ? "libvpx-vp9" : "libx265"
        clip.pqMetadataInContainer = vp9InContainer
        clip.audioCodec = audio ? "aac" : nil
        // Reordering keeps the first frame in the decoder for a few packets, sound among them.
        clip.bFrames = audio ? 3 : 0
        clip.signal = .pq
        clip.width = 320
        clip.height = 180
        clip.seconds = 0.4
        return clip
    }

    /// Where the decoded first frame must carry it: HEVC's SEI and AV1's metadata OBUs. VP9's bitstream has no field
    /// for it, and FFmpeg 5.1's H.264 decoder does not read x264's, so those two carry it in the container only.
    static func inBitstream(_ codec: VideoCodec) -> Bool { codec == .hevc || codec == .av1 }

    /// AV1 keeps chromaticities in 1/65536 and the minimum luminance in 1/16384 nits, which read back within one of
    /// HEVC's units (0.00002, 0.0001 nits); HEVC's SEI and both containers' fields are exact.
    static func matches(_ found: HDR10Metadata?, tolerance: Int = 0) -> Bool {
        guard let display = found?.masteringDisplay, let want = expected.masteringDisplay,
              found?.contentLight == expected.contentLight else { return false }
        let pairs = [(display.red, want.red), (display.green, want.green), (display.blue, want.blue),
                     (display.whitePoint, want.whitePoint)]
        return pairs.allSatisfy { abs($0.0.x - $0.1.x) <= tolerance && abs($0.0.y - $0.1.y) <= tolerance }
            && abs(display.maxLuminance - want.maxLuminance) <= tolerance
            && abs(display.minLuminance - want.minLuminance) <= tolerance
    }

    /// With sound: the packets read ahead for the first frame's SEI, audio among them, must all reach the output.
    @Test("hdr=keep on PQ HEVC whose metadata is only in its SEI: the output's container carries it, and so does the bitstream where the codec can (HEVC, AV1); no packet lost to the look-ahead",
          arguments: Output.all)
    func keptFromSEI(_ output: Output) async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mov"), path = scratch.path("out.\(output.format.rawValue)")
            try Self.pqClip(audio: true).write(to: input)
            let sourceFile = try MediaProbe.probe(.path(input), decode: true)
            let source = try #require(sourceFile.video)
            #expect(source.containerHDR10 == nil)
            #expect(source.firstFrameHDR10 == Self.expected, "\(String(describing: source.firstFrameHDR10))")
            var options = TranscodeOptions()
            options.codec = output.codec
            options.format = output.format
            options.hdr = .keep

            let report = try transcode(input: .path(input), output: .path(path), options: options)

            let result = try MediaProbe.probe(.path(path), decode: true)
            let video = try #require(result.video)
            #expect(video.colorTransfer == "smpte2084" && video.colorPrimaries == "bt2020")
            #expect(video.decodeErrors == 0 && video.frameCount == report.videoFrames && report.videoFrames == 10)
            let audio = try #require(result.audio)
            let sourceSeconds = try #require(sourceFile.audio?.decodedDuration)
            #expect(audio.decodeErrors == 0 && abs((audio.decodedDuration ?? 0) - sourceSeconds) < 0.05,
                    "audio \(String(describing: audio.decodedDuration)) s, input \(sourceSeconds) s")
            // AAC is copied into MP4: every packet as it was, the encoder's priming one (held back here) included.
            if output.format == .mp4 {
                let before = try MediaProbe.packets(.path(input), of: .audio)
                let after = try MediaProbe.packets(.path(path), of: .audio)
                let same = after.map(\.bytes) == before.map(\.bytes)
                #expect(same, "\(before.count) packets -> \(after.count), or their bytes changed")
            }
            #expect(video.containerHDR10 == source.firstFrameHDR10, "\(String(describing: video.containerHDR10))")
            if Self.inBitstream(output.codec) {
                #expect(Self.matches(video.firstFrameHDR10, tolerance: output.codec == .av1 ? 1 : 0),
                        "\(String(describing: video.firstFrameHDR10))")
            } else {
                #expect(video.firstFrameHDR10 == nil)
            }
        }
    }

    @Test("hdr=keep on PQ VP9 whose metadata is only in its WebM container: HEVC in MP4 carries it in mdcv/clli and in its SEI")
    func keptFromContainer() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.webm"), path = scratch.path("out.mp4")
            try Self.pqClip(vp9InContainer: true).write(to: input)
            let source = try #require(try MediaProbe.probe(.path(input), decode: true).video)
            #expect(source.containerHDR10 == Self.expected && source.firstFrameHDR10 == nil)
            var options = TranscodeOptions()
            options.codec = .hevc
            options.hdr = .keep

            try transcode(input: .path(input), output: .path(path), options: options)

            let video = try #require(try MediaProbe.probe(.path(path), decode: true).video)
            #expect(video.pixelFormat == "yuv420p10le" && video.colorTransfer == "smpte2084")
            #expect(video.containerHDR10 == Self.expected, "\(String(describing: video.containerHDR10))")
            #expect(video.firstFrameHDR10 == Self.expected, "\(String(describing: video.firstFrameHDR10))")
        }
    }

    @Test("tone-mapped to SDR (the default hdr), the output carries no HDR10 metadata anywhere", arguments: Output.all)
    func droppedWhenToneMapped(_ output: Output) async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mov"), path = scratch.path("out.\(output.format.rawValue)")
            try Self.pqClip().write(to: input)
            var options = TranscodeOptions()
            options.codec = output.codec
            options.format = output.format

            let report = try transcode(input: .path(input), output: .path(path), options: options)

            #expect(report.videoFilters == ["tonemap(pq->bt709)"])
            let video = try #require(try MediaProbe.probe(.path(path), decode: true).video)
            #expect(video.colorTransfer == "bt709" && video.frameCount == 10)
            #expect(video.containerHDR10 == nil && video.firstFrameHDR10 == nil)
        }
    }

    @Test("hdr=keep on HLG without HDR10 metadata invents none")
    func noneInvented() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mov"), path = scratch.path("out.mp4")
            var clip = Self.pqClip()
            clip.signal = .hlg
            try clip.write(to: input)
            var options = TranscodeOptions()
            options.codec = .hevc
            options.hdr = .keep

            try transcode(input: .path(input), output: .path(path), options: options)

            let video = try #require(try MediaProbe.probe(.path(path), decode: true).video)
            #expect(video.colorTransfer == "arib-std-b67" && video.frameCount == 10)
            #expect(video.containerHDR10 == nil && video.firstFrameHDR10 == nil)
        }
    }
}
