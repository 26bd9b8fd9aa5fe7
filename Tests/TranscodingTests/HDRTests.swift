import Foundation
import MediaFixtures
import TestSupport
import Testing
import Transcoding

/// Serialized: each test encodes HEVC and runs the CLI, and the rest of the test run shares the machine.
@Suite("HDR and 10-bit input becomes 8-bit SDR that describes itself", .serialized,
       .enabled(if: FFmpegCLI.available, "the ffmpeg CLI is the reference"))
struct HDRTests {
    /// The tone-mapping recipe people paste into `ffmpeg -vf`, written out here independently of the engine's plan:
    /// linear light at 100 nits, BT.709 primaries, hable, BT.709 transfer and matrix in TV range.
    static let referenceChain =
        "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,"
        + "zscale=t=bt709:m=bt709:r=tv,format=yuv420p"

    /// PSNR of our output against the reference chain's pictures. Measured (320x180, 25 frames, crf 23): 49.6 dB for
    /// HLG and 49.1–50.1 dB for PQ, the loss of x264 alone. Chains that are nearly right score far lower: reinhard or
    /// mobius instead of hable 20.9–25.4 dB, the primaries left in BT.2020 24.7–29.0 dB, desaturation on 12.9–23.0 dB,
    /// and no tone mapping at all (hdr=keep) 15.7–18.3 dB. 40 dB is 9 dB under the one and 11 dB over the best of the
    /// others.
    static let psnrThreshold = 40.0

    static func clip(_ signal: SyntheticClip.Signal) -> SyntheticClip {
        var clip = SyntheticClip()
        clip.container = "mov"
        clip.videoCodec = "libx265"
        clip.audioCodec = nil
        clip.signal = signal
        clip.width = 320
        clip.height = 180
        clip.seconds = 1
        return clip
    }

    @Test("HLG and PQ HEVC become BT.709 SDR: tagged BT.709, every frame kept, above the PSNR threshold against the CLI's zscale/tonemap chain, with its brightness and saturation",
          arguments: [(SyntheticClip.Signal.hlg, "hlg", "arib-std-b67"), (.pq, "pq", "smpte2084")])
    func toneMapped(signal: SyntheticClip.Signal, name: String, transfer: String) async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mov"), output = scratch.path("out.mp4")
            try Self.clip(signal).write(to: input)
            let source = try #require(try MediaProbe.probe(.path(input), decode: true).video)
            #expect(source.pixelFormat == "yuv420p10le" && source.colorTransfer == transfer && source.colorPrimaries == "bt2020")

            let report = try transcode(input: .path(input), output: .path(output))

            #expect(report.videoFilters == ["tonemap(\(name)->bt709)"])
            let video = try #require(try MediaProbe.probe(.path(output), decode: true).video)
            #expect(video.pixelFormat == "yuv420p")
            #expect(video.colorTransfer == "bt709" && video.colorPrimaries == "bt709" && video.colorMatrix == "bt709")
            #expect(video.colorRange == "tv")
            #expect(video.frameCount == source.frameCount && video.decodeErrors == 0)
            let psnr = try FFmpegCLI.psnr(output, against: input, through: Self.referenceChain)
            #expect(psnr > Self.psnrThreshold, "PSNR \(psnr) dB")
            let ours = try FFmpegCLI.signalStats(output)
            let reference = try FFmpegCLI.signalStats(input, through: Self.referenceChain)
            #expect(abs(ours.luma - reference.luma) < 3, "mean luma \(ours.luma), reference \(reference.luma)")
            #expect(abs(ours.saturation - reference.saturation) < 3,
                    "mean saturation \(ours.saturation), reference \(reference.saturation)")
        }
    }

    @Test("hdr=keep keeps the HLG signal and its tags in 8 bits: not tone-mapped, less saturated than SDR")
    func kept() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mov"), output = scratch.path("out.mp4")
            try Self.clip(.hlg).write(to: input)
            var options = TranscodeOptions()
            options.hdr = .keep
            let report = try transcode(input: .path(input), output: .path(output), options: options)
            #expect(report.videoFilters == ["dither(10->8)"])
            let video = try #require(try MediaProbe.probe(.path(output)).video)
            #expect(video.pixelFormat == "yuv420p")
            #expect(video.colorTransfer == "arib-std-b67" && video.colorPrimaries == "bt2020" && video.colorMatrix == "bt2020nc")
            let psnr = try FFmpegCLI.psnr(output, against: input, through: Self.referenceChain)
            #expect(psnr < 30, "PSNR \(psnr) dB: the HLG signal looks tone-mapped")
            let kept = try FFmpegCLI.signalStats(output)
            let mapped = try FFmpegCLI.signalStats(input, through: Self.referenceChain)
            #expect(kept.saturation < mapped.saturation - 8, "kept \(kept.saturation), tone-mapped \(mapped.saturation)")
        }
    }

    @Test("the PQ clip carries HDR10 metadata, and the tone mapper takes its peak from it")
    func masteringMetadata() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mov"), output = scratch.path("out.mp4")
            try Self.clip(.pq).write(to: input)
            let ffprobe = try #require(which("ffprobe"))
            let frames = try run(ffprobe, ["-v", "error", "-select_streams", "v", "-read_intervals", "%+#1", "-show_frames", input])
            #expect(frames.out.contains("side_data_type=Mastering display metadata"), "\(frames.out.suffix(800))")
            #expect(frames.out.contains("max_luminance=10000000/10000") && frames.out.contains("max_content=1000"))

            try transcode(input: .path(input), output: .path(output))
            // The same chain with the peak forced to PQ's 10000 nits instead of the metadata's 1000 is another picture.
            let withMetadata = try FFmpegCLI.psnr(output, against: input, through: Self.referenceChain)
            let ignoringIt = try FFmpegCLI.psnr(
                output, against: input, through: Self.referenceChain.replacingOccurrences(of: "desat=0", with: "desat=0:peak=100"))
            #expect(withMetadata > Self.psnrThreshold && ignoringIt < withMetadata - 10, "\(withMetadata) dB, \(ignoringIt) dB")
        }
    }

    @Test("10-bit SDR is dithered to 8 bits, not truncated: a flat field a quarter above a level becomes both levels, averaging it")
    func dithered() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mp4"), output = scratch.path("out.mp4")
            var clip = SyntheticClip()
            clip.signal = .sdr10
            clip.flatLevel = 4 * 100 + 1  // 100.25 in 8 bits
            clip.audioCodec = nil
            clip.width = 160
            clip.height = 120
            clip.seconds = 0.4
            try clip.write(to: input)
            var options = TranscodeOptions()
            options.crf = 0  // lossless: the samples are the filter's
            let report = try transcode(input: .path(input), output: .path(output), options: options)
            #expect(report.videoFilters == ["dither(10->8)"])
            let video = try #require(try MediaProbe.probe(.path(output)).video)
            #expect(video.pixelFormat == "yuv420p" && video.colorTransfer == "bt709" && video.colorMatrix == "bt709")
            let luma = try FFmpegCLI.samples(output, plane: 0, crop: "160:120:0:0")
            #expect(luma.count == 160 * 120)
            #expect(Set(luma) == [100, 101], "levels \(Set(luma).sorted())")
            #expect(abs(luma.mean - 100.25) < 0.1, "mean \(luma.mean)")
        }
    }
}
