import Foundation
import Glibc
import MediaFixtures
import TestSupport
import Testing
import Transcoding

/// One codec in one container, as a test argument.
struct Output: CustomTestStringConvertible, Sendable {
    var codec: VideoCodec
    var format: Container
    /// The libav decoder's name for what was written.
    var decoderName: String { codec == .hevc ? "hevc" : codec.rawValue }
    var audioName: String { format == .mp4 ? "aac" : "opus" }
    /// The sample entry MP4 must carry for browsers: Safari plays HEVC only as hvc1.
    var tag: String? {
        guard format == .mp4 else { return nil }
        return switch codec {
        case .h264: "avc1"
        case .hevc: "hvc1"
        case .av1: "av01"
        case .vp9: nil
        }
    }
    var testDescription: String { "\(codec.rawValue) in \(format.rawValue)" }

    static let all: [Output] = [
        Output(codec: .h264, format: .mp4), Output(codec: .hevc, format: .mp4), Output(codec: .av1, format: .mp4),
        Output(codec: .vp9, format: .webm), Output(codec: .av1, format: .webm),
    ]
}

@Suite("codecs: HEVC, AV1 and VP9 in MP4 and WebM")
struct CodecTests {
    /// Below what any of the four gives this clip at its default quality (38-45 dB measured), above what a wrong
    /// frame, colour or size would give.
    static let psnrFloor = 32.0

    @Test("each codec decodes with its tag, yuv420p, every frame, the duration, upright, and its index first",
          arguments: Output.all)
    func decodes(_ output: Output) async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 1
            clip.rotation = 90
            let input = scratch.path("in.mp4")
            try clip.write(to: input)
            let source = try MediaProbe.probe(.path(input), decode: true)
            let sourceVideo = try #require(source.video)
            var options = TranscodeOptions()
            options.codec = output.codec
            options.format = output.format
            let path = scratch.path("out.\(output.format.rawValue)")

            let report = try transcode(input: .path(input), output: .path(path), options: options)

            let result = try MediaProbe.probe(.path(path), decode: true)
            let video = try #require(result.video)
            #expect(result.container == (output.format == .mp4 ? "mov" : "matroska"))
            #expect(video.codec == output.decoderName)
            #expect(video.codecTag == output.tag)
            #expect(video.pixelFormat == "yuv420p")
            #expect(video.decodeErrors == 0)
            #expect(video.frameCount == sourceVideo.frameCount && report.videoFrames == sourceVideo.frameCount)
            if output.format == .mp4 {
                #expect(video.width == sourceVideo.width && video.height == sourceVideo.height)
                #expect(video.rotation == sourceVideo.rotation)
            } else {
                // WebM carries no rotation here: the pictures are turned upright instead.
                #expect(video.width == sourceVideo.height && video.height == sourceVideo.width)
                #expect(video.rotation == 0)
                #expect(report.videoFilters.contains("rotate(90)"), "\(report.videoFilters)")
            }
            let span = try #require(video.decodedDuration)
            let sourceSpan = try #require(sourceVideo.decodedDuration)
            #expect(abs(span - sourceSpan) <= 0.041, "input \(sourceSpan) s, output \(span) s")
            let audio = try #require(result.audio)
            #expect(audio.codec == output.audioName && audio.decodeErrors == 0)
            #expect(abs((audio.decodedDuration ?? 0) - (source.audio?.decodedDuration ?? 0)) < 0.1)
            #expect(try ContainerLayout.indexFirst(path), "\(output): index after the media")
            if FFmpegCLI.available {
                let psnr = try FFmpegCLI.psnr(path, against: input, through: "null")
                #expect(psnr >= Self.psnrFloor, "\(output): PSNR \(psnr) dB")
            }
        }
    }

    @Test("hdr=keep on 10-bit HLG stays 10-bit with its HDR tags in HEVC, AV1 and VP9; H.264 keeps 8 bits",
          arguments: [VideoCodec.hevc, .av1, .vp9, .h264])
    func tenBitHDR(_ codec: VideoCodec) async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 0.4
            clip.audioCodec = nil
            clip.videoCodec = "libx265"
            clip.signal = .hlg
            let input = scratch.path("in.mp4")
            try clip.write(to: input)
            var options = TranscodeOptions()
            options.codec = codec
            options.hdr = .keep
            let output = scratch.path("out.\(options.container.rawValue)")
            let report = try transcode(input: .path(input), output: .path(output), options: options)
            let video = try #require(try MediaProbe.probe(.path(output), decode: true).video)
            #expect(video.pixelFormat == (codec == .h264 ? "yuv420p" : "yuv420p10le"))
            #expect(video.colorTransfer == "arib-std-b67" && video.colorPrimaries == "bt2020")
            #expect(video.decodeErrors == 0 && video.frameCount == report.videoFrames && report.videoFrames == 10)
            #expect(!report.videoFilters.contains { $0.hasPrefix("tonemap") })
        }
    }

    @Test("AV1 as root: the encoding thread gives up CAP_SYS_NICE first, so SVT-AV1 cannot make its threads real-time",
          .enabled(if: geteuid() == 0, "only root holds CAP_SYS_NICE to lose"))
    func noRealtimeThreads() async throws {
        let effective = try await onThread { () throws -> UInt64 in
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 0.2
            clip.audioCodec = nil
            try clip.write(to: scratch.path("in.mp4"))
            var options = TranscodeOptions()
            options.codec = .av1
            try transcode(input: .path(scratch.path("in.mp4")), output: .path(scratch.path("out.mp4")), options: options)
            let status = try String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)
            let line = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") } ?? ""
            return UInt64(line.split(separator: "\t").last.map(String.init) ?? "", radix: 16) ?? .max
        }
        let sysNice: UInt64 = 1 << 23
        #expect(effective & sysNice == 0, "CapEff \(String(effective, radix: 16))")
    }

    @Test("Opus is copied into WebM as it is, AAC re-encoded to Opus")
    func opusCopied() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 1
            clip.container = "webm"
            clip.videoCodec = "libvpx-vp9"
            clip.audioCodec = "libopus"
            clip.sampleRate = 48000
            let input = scratch.path("in.webm")
            try clip.write(to: input)
            var options = TranscodeOptions()
            options.format = .webm
            let report = try transcode(input: .path(input), output: .path(scratch.path("out.webm")), options: options)
            #expect(report.audioCopied)
            let source = try MediaProbe.probe(.path(input), decode: true)
            let result = try MediaProbe.probe(.path(scratch.path("out.webm")), decode: true)
            let audio = try #require(result.audio)
            #expect(audio.codec == "opus" && audio.decodeErrors == 0)
            #expect(audio.sampleCount == source.audio?.sampleCount)
        }
    }

    @Test("quality maps to each codec's scale; crf is checked against the codec's own range")
    func qualityAndRanges() throws {
        for codec in VideoCodec.allCases {
            #expect(codec.crf(for: .high) < codec.crf(for: .medium) && codec.crf(for: .medium) < codec.crf(for: .low))
            for quality in TranscodeOptions.Quality.allCases { #expect(codec.crfRange.contains(codec.crf(for: quality))) }
        }
        var options = TranscodeOptions()
        options.codec = .av1
        options.crf = 63
        #expect(throws: Never.self) { try options.validate() }
        options.codec = .h264
        #expect(throws: TranscodeError.invalidOption("crf for h264 must be 0...51, not 63")) { try options.validate() }
        options.crf = 20
        options.quality = .high
        #expect(throws: TranscodeError.self) { try options.validate() }
    }

    @Test("a codec the container cannot carry is refused, naming the valid pairs",
          arguments: [(VideoCodec.h264, Container.webm), (.hevc, .webm), (.vp9, .mp4)])
    func badCombination(_ codec: VideoCodec, _ format: Container) throws {
        var options = TranscodeOptions()
        options.codec = codec
        options.format = format
        let valid = "valid: mp4 with h264, hevc, av1; webm with vp9, av1"
        #expect(throws: TranscodeError.invalidOption("\(format.rawValue) cannot carry \(codec.rawValue); \(valid)")) {
            try options.validate()
        }
    }

    @Test("the defaults: h264 in mp4; webm alone means vp9; vp9 alone means webm")
    func defaults() {
        var options = TranscodeOptions()
        #expect(options.videoCodec == .h264 && options.container == .mp4 && options.encoderCRF == 23)
        options.format = .webm
        #expect(options.videoCodec == .vp9)
        options = TranscodeOptions()
        options.codec = .vp9
        #expect(options.container == .webm && options.encoderCRF == VideoCodec.vp9.defaultCRF)
    }
}
