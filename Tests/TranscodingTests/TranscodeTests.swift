import CLinux
import Foundation
import Glibc
import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("transcode: every input becomes a web-ready MP4")
struct TranscodeTests {
    @Test("output decodes as H.264 yuv420p (+ AAC), same frames, same duration, moov first", arguments: Fixture.all)
    func transcodesFixture(_ fixture: Fixture) async throws {
        try await onThread {
            let scratch = try Scratch()
            let (input, generatedFrames) = try fixture.materialise(in: scratch)
            let output = scratch.path("out.mp4")
            let source = try MediaProbe.probe(.path(input), decode: true)
            let sourceVideo = try #require(source.video)

            let report = try transcode(input: .path(input), output: .path(output))

            let result = try MediaProbe.probe(.path(output), decode: true)
            let video = try #require(result.video)
            #expect(result.container == "mov")
            #expect(video.codec == "h264")
            #expect(video.pixelFormat == "yuv420p")
            #expect(video.decodeErrors == 0)
            #expect(video.frameCount == sourceVideo.frameCount)
            #expect(report.videoFrames == sourceVideo.frameCount)
            if let generatedFrames { #expect(sourceVideo.frameCount == generatedFrames) }
            #expect(video.width == sourceVideo.width & ~1 && video.height == sourceVideo.height & ~1)
            // Within one frame of the input's own decoded span (the longest frame interval of our VFR clips is 80 ms).
            let inputSpan = try #require(sourceVideo.decodedDuration)
            let outputSpan = try #require(video.decodedDuration)
            let frame = inputSpan / Double(max(sourceVideo.frameCount ?? 1, 1))
            #expect(abs(outputSpan - inputSpan) <= max(frame, 0.081), "input \(inputSpan) s, output \(outputSpan) s")
            #expect(video.rotation == sourceVideo.rotation)
            if let sourceAudio = source.audio {
                let audio = try #require(result.audio)
                #expect(audio.codec == "aac")
                #expect(audio.channels == sourceAudio.channels)
                #expect(audio.channelLayout == sourceAudio.channelLayout)
                #expect(audio.decodeErrors == 0)
                let sourceSpan = try #require(sourceAudio.decodedDuration)
                let span = try #require(audio.decodedDuration)
                #expect(abs(span - sourceSpan) < 0.1, "audio input \(sourceSpan) s, output \(span) s")
            } else {
                #expect(result.audio == nil)
            }
            let boxes = try ContainerLayout.mp4Boxes(output)
            let moov = try #require(boxes.firstIndex(of: "moov"))
            let mdat = try #require(boxes.firstIndex(of: "mdat"))
            #expect(moov < mdat, "boxes: \(boxes)")
        }
    }

    @Test("the trial clip: its 11 frames, and no audio because it has none")
    func trialClip() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = TestMedia.trialClip
            #expect(try MediaProbe.probe(.path(input)).audio == nil)
            let report = try transcode(input: .path(input), output: .path(scratch.path("out.mp4")))
            #expect(report.videoFrames == 11)
            #expect(!report.hasAudio && report.summary.contains(" audio=none "))
            let probe = try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true)
            #expect(probe.video?.frameCount == 11 && probe.audio == nil)
        }
    }

    @Test("a 90° rotation survives", arguments: [90.0, -90.0, 180.0])
    func rotationKept(_ degrees: Double) async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.rotation = degrees
            clip.seconds = 0.5
            clip.audioCodec = nil
            try clip.write(to: scratch.path("in.mp4"))
            try transcode(input: .path(scratch.path("in.mp4")), output: .path(scratch.path("out.mp4")))
            let video = try #require(try MediaProbe.probe(.path(scratch.path("out.mp4"))).video)
            let expected = try #require(try MediaProbe.probe(.path(scratch.path("in.mp4"))).video).rotation
            #expect(expected != 0)
            #expect(video.rotation == expected)
        }
    }

    @Test("max width and height scale down keeping the aspect ratio, to even sizes",
          arguments: [(nil, 120, 160, 120), (100, nil, 100, 74), (100, 100, 100, 74), (640, 480, 320, 240)] as [(Int?, Int?, Int, Int)])
    func resize(maxWidth: Int?, maxHeight: Int?, width: Int, height: Int) async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 0.4
            try clip.write(to: scratch.path("in.mp4"))
            var options = TranscodeOptions()
            options.maxWidth = maxWidth
            options.maxHeight = maxHeight
            options.audio = false
            try transcode(input: .path(scratch.path("in.mp4")), output: .path(scratch.path("out.mp4")), options: options)
            let result = try MediaProbe.probe(.path(scratch.path("out.mp4")))
            let video = try #require(result.video)
            #expect(video.width == width && video.height == height)
            #expect(result.audio == nil)
        }
    }

    @Test("anonymous temp files in and out, as the service uses them")
    func anonymousTempFiles() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 0.5
            try clip.write(to: scratch.path("in.mp4"))
            let input = open(scratch.path("in.mp4"), O_RDONLY | O_CLOEXEC)
            let output = open(scratch.url.path, clinux_o_tmpfile() | O_RDWR | O_CLOEXEC, 0o600)
            #expect(input >= 0 && output >= 0)
            defer { close(input); close(output) }
            let report = try transcode(input: .fileDescriptor(input), output: .fileDescriptor(output))
            #expect(report.outputBytes > 0)
            // Nothing was named in the folder: the output exists only as the descriptor.
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path) == ["in.mp4"])
            let probe = try MediaProbe.probe(.fileDescriptor(output), decode: true)
            #expect(probe.video?.frameCount == report.videoFrames)
            // The transcoder opened the output again through /proc; none of its descriptors outlives the call.
            #expect(descriptors(under: scratch.url.path).count == 2)
        }
    }

    @Test("the CLI's settings are options: crf and preset change the output")
    func crfAndPreset() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 1
            clip.audioCodec = nil
            try clip.write(to: scratch.path("in.mp4"))
            var high = TranscodeOptions()
            high.crf = 40
            high.preset = "ultrafast"
            var low = TranscodeOptions()
            low.crf = 10
            let small = try transcode(input: .path(scratch.path("in.mp4")), output: .path(scratch.path("a.mp4")), options: high)
            let large = try transcode(input: .path(scratch.path("in.mp4")), output: .path(scratch.path("b.mp4")), options: low)
            #expect(small.videoFrames == large.videoFrames)
            #expect(small.outputBytes < large.outputBytes)
        }
    }
}

/// The worker template's warm-up runs every stage a real job does: both decoders, the filter graph, x264 and the AAC
/// encoder (its MP2 is not copied).
@Test("the warm-up clip goes through every stage of a job")
func warmupRunsEveryStage() throws {
    let report = try Warmup.run()
    #expect(report.inputVideoCodec == "h264" && report.videoFrames == 3, "\(report)")
    #expect(report.hasAudio && !report.audioCopied && report.audioSamples > 0, "\(report)")
    #expect(!report.videoFilters.isEmpty, "\(report)")
}
