import CFFmpeg
import Foundation
import MediaFixtures
import TestSupport
import Testing
@testable import Transcoding

/// Pictures that change mid-stream get a new filter graph; what the report says of it stays bounded, and an input that
/// changes on every frame is refused. Everything here is judged by our own decoder: no ffmpeg CLI needed.
@Suite("the filter graph is rebuilt when the pictures change mid-stream, within bounds")
struct FilterRebuildTests {
    @Test("progressive frames followed by interlaced ones of another size: the graph is rebuilt mid-stream and no frame is lost")
    func changesMidStream() async throws {
        try await onThread {
            let scratch = try Scratch()
            var first = SyntheticClip()
            first.audioCodec = nil
            first.seconds = 0.6
            var second = SyntheticClip()
            second.interlaced = true
            second.audioCodec = nil
            (second.width, second.height) = (256, 192)
            second.seconds = 0.6
            let parts = try JoinedClip([first, second]).write(to: scratch.path("in.ts"))
            let frames = parts.map(\.videoFrames).reduce(0, +)

            let report = try transcode(input: .path(scratch.path("in.ts")), output: .path(scratch.path("out.mp4")))

            #expect(report.videoFrames == frames)
            #expect(report.videoFilters == ["bwdif", "scale(256x192->320x240)"])
            #expect(report.videoFilterGraph
                    == "format=yuv420p | bwdif=mode=send_frame:parity=auto:deint=interlaced,scale=w=320:h=240,format=yuv420p")
            #expect(report.videoFilterRebuilds == 1)
            let video = try #require(try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true).video)
            #expect(video.width == 320 && video.height == 240)
            #expect(video.frameCount == frames && video.decodeErrors == 0)
        }
    }

    @Test("sizes that alternate a few times: each stage and chain named once, the rebuilds counted, every frame kept")
    func alternatesAFewTimes() async throws {
        try await onThread {
            let scratch = try Scratch()
            let parts = try JoinedClip.cycling(sizes: [(320, 240), (256, 192)], parts: 6, framesEach: 5)
                .write(to: scratch.path("in.ts"))
            let frames = parts.map(\.videoFrames).reduce(0, +)
            // Both sizes scaled, so that the output's size does not depend on which part the demuxer probed.
            var options = TranscodeOptions()
            (options.maxWidth, options.maxHeight) = (160, 120)

            let report = try transcode(
                input: .path(scratch.path("in.ts")), output: .path(scratch.path("out.mp4")), options: options)

            #expect(report.videoFilters == ["scale(320x240->160x120)", "scale(256x192->160x120)"])
            #expect(report.videoFilterGraph == "scale=w=160:h=120,format=yuv420p")
            #expect(report.videoFilterRebuilds == 5)
            #expect(report.videoFiltersText == "scale(320x240->160x120),scale(256x192->160x120);rebuilds=5")
            let video = try #require(try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true).video)
            #expect(video.width == 160 && video.height == 120)
            #expect(video.frameCount == frames && video.decodeErrors == 0)
        }
    }

    @Test("many sizes, each for a while: the names, the chains and the header keep their bounds")
    func manyShapesStayBounded() async throws {
        try await onThread {
            let scratch = try Scratch()
            // 12 sizes, 12 parts: 11 rebuilds, within the free ones, and 11 stage names, more than are kept.
            let sizes = (0..<12).map { (width: 320 - 16 * $0, height: 240 - 12 * $0) }
            let parts = try JoinedClip.cycling(sizes: sizes, parts: 12, framesEach: 2).write(to: scratch.path("in.ts"))
            let frames = parts.map(\.videoFrames).reduce(0, +)

            let report = try transcode(input: .path(scratch.path("in.ts")), output: .path(scratch.path("out.mp4")))

            #expect(report.videoFilterRebuilds == 11)
            #expect(report.videoFilters.count == VideoFilter.maxNamedStages)
            #expect(Set(report.videoFilters).count == report.videoFilters.count, "each stage named once")
            let chains = report.videoFilterGraph.components(separatedBy: " | ")
            #expect(chains.count <= VideoFilter.maxDescribedChains && Set(chains).count == chains.count, "\(chains)")
            #expect(report.videoFiltersText.utf8.count <= 512, "\(report.videoFiltersText)")
            let video = try #require(try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true).video)
            #expect(video.frameCount == frames && video.decodeErrors == 0)
        }
    }

    @Test("sizes that change on every frame are refused as corrupt input (422) after a bounded number of rebuilds")
    func changesEveryFrame() async throws {
        try await onThread {
            let scratch = try Scratch()
            try JoinedClip.cycling(sizes: [(320, 240), (256, 192), (192, 144)], parts: 40, framesEach: 1)
                .write(to: scratch.path("in.ts"))
            #expect {
                try transcode(input: .path(scratch.path("in.ts")), output: .path(scratch.path("out.mp4")))
            } throws: { error in
                guard case .corruptInput(let detail) = error as? TranscodeError else { return false }
                return detail.contains("change shape too often (\(VideoFilter.freeRebuilds + 1) filter graph rebuilds")
            }
        }
    }

    /// A blank `shape` picture with `pts`, for feeding a `VideoFilter` directly.
    static func picture(_ shape: PictureShape, pts: Int64) throws -> Frame {
        let frame = try Frame()
        let pointer = frame.pointer
        pointer.pointee.width = shape.width
        pointer.pointee.height = shape.height
        pointer.pointee.format = shape.format.rawValue
        pointer.pointee.pts = pts
        pointer.pointee.color_primaries = shape.primaries
        pointer.pointee.color_trc = shape.transfer
        pointer.pointee.colorspace = shape.matrix
        pointer.pointee.color_range = shape.range
        pointer.pointee.sample_aspect_ratio = shape.sampleAspect
        try #require(av_frame_get_buffer(pointer, 0) == 0)
        for buffer in [pointer.pointee.buf.0, pointer.pointee.buf.1, pointer.pointee.buf.2] {
            if let buffer { memset(buffer.pointee.data, 128, buffer.pointee.size) }
        }
        return frame
    }

    @Test("a change of colour tags alone (primaries, transfer, matrix or range) builds the graph again; every frame comes out",
          arguments: [
            { (s: inout PictureShape) in s.primaries = AVCOL_PRI_BT470BG },
            { $0.transfer = AVCOL_TRC_SMPTE170M },
            { $0.matrix = AVCOL_SPC_BT470BG },
            { $0.range = AVCOL_RANGE_JPEG },
          ] as [@Sendable (inout PictureShape) -> Void])
    func colourChange(_ change: @Sendable (inout PictureShape) -> Void) throws {
        let before = PictureShape(width: 64, height: 48, format: AV_PIX_FMT_YUV420P)
        var after = before
        change(&after)
        let filter = try VideoFilter(
            target: (64, 48), timeBase: AVRational(num: 1, den: 25), streamFieldOrder: AV_FIELD_PROGRESSIVE,
            options: TranscodeOptions())
        var emitted = 0
        for pts in Int64(0)..<6 {
            let frame = try Self.picture(pts < 3 ? before : after, pts: pts)
            try withExtendedLifetime(frame) { try filter.convert(frame.pointer) { _ in emitted += 1 } }
        }
        try filter.finish { _ in emitted += 1 }
        #expect(filter.rebuilds == 1)
        #expect(emitted == 6)
    }

    @Test("pictures of ever new sizes and formats: at most eight stage names and four chains are kept, the rebuilds all counted")
    func reportBounds() throws {
        let formats = [AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_RGB24, AV_PIX_FMT_YUV420P10LE]
        let shapes = (0..<12).map { index in
            PictureShape(width: 64 + 8 * Int32(index), height: 48 + 6 * Int32(index), format: formats[index % 4])
        }
        let filter = try VideoFilter(
            target: (64, 48), timeBase: AVRational(num: 1, den: 25), streamFieldOrder: AV_FIELD_PROGRESSIVE,
            options: TranscodeOptions())
        var emitted = 0
        for (index, shape) in shapes.enumerated() {
            for pts in Int64(2 * index)..<Int64(2 * index + 2) {
                let frame = try Self.picture(shape, pts: pts)
                try withExtendedLifetime(frame) { try filter.convert(frame.pointer) { _ in emitted += 1 } }
            }
        }
        try filter.finish { _ in emitted += 1 }
        #expect(emitted == 24)
        #expect(filter.rebuilds == 11)
        #expect(filter.stagesRun.count == VideoFilter.maxNamedStages && Set(filter.stagesRun).count == filter.stagesRun.count)
        #expect(filter.descriptions.count == VideoFilter.maxDescribedChains
                && Set(filter.descriptions).count == filter.descriptions.count, "\(filter.descriptions)")
    }
}
