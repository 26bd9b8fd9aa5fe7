import Foundation
import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("uploads: HDR tone-mapped, interlaced deinterlaced, animated GIF accepted, and X-Video-Filters says so")
struct MediaFidelityTests {
    static let interlaced = Clips.generate("interlaced.ts") {
        $0.container = "mpegts"; $0.interlaced = true; $0.seconds = 0.6; $0.audioCodec = nil
    }
    static let hlg = Clips.generate("hlg.mov") {
        $0.container = "mov"; $0.videoCodec = "libx265"; $0.signal = .hlg; $0.seconds = 0.6; $0.audioCodec = nil
    }

    @Test("each upload's X-Video-Filters names the stages that ran, the query's hdr and deinterlace turn them off, and the MP4 decodes as they say",
          arguments: [
            ("interlaced.ts", "", "bwdif", "unknown"),
            ("interlaced.ts", "?deinterlace=off", "none", "unknown"),
            ("hlg.mov", "", "tonemap(hlg->bt709)", "bt709"),
            ("hlg.mov", "?hdr=keep", "dither(10->8)", "arib-std-b67"),
          ])
    func filtersHeader(clip: String, query: String, filters: String, transfer: String) async throws {
        let (bytes, frames) = clip == "hlg.mov" ? Self.hlg : Self.interlaced
        try await onThread {
            let service = try RunningService(workers: 1, queue: 2)
            defer { service.stop() }
            let response = try service.post("/clip\(query)", body: bytes)
            #expect(response.status == 200, "\(response.text.prefix(300))")
            #expect(response.header("X-Video-Filters") == filters)
            let video = try #require(try Clips.probe(response.body).video)
            #expect(video.frameCount == frames)
            #expect((video.colorTransfer ?? "unknown") == transfer)
        }
    }

    @Test("an animated GIF is answered with its frames; a GIF of one picture is 415; a bad hdr value is 400 naming the values")
    func gifAndRefusals() async throws {
        try await onThread {
            let service = try RunningService(workers: 1, queue: 2)
            defer { service.stop() }
            let gif = AnimatedGIF()
            let animated = try service.post("/animation", body: gif.bytes())
            #expect(animated.status == 200, "\(animated.text.prefix(300))")
            #expect(animated.header("X-Video-Filters") == "composite(white),format(bgra->yuv420p)")
            #expect(try Clips.probe(animated.body).video?.frameCount == gif.delays.count)

            var still = AnimatedGIF()
            still.delays = [10]
            let refused = try service.post("/still", body: still.bytes())
            #expect(refused.status == 415)
            #expect(refused.text.contains("single-frame gif"), "\(refused.text)")

            let bad = try service.post("/clip?hdr=bright", body: Self.hlg.bytes)
            #expect(bad.status == 400)
            #expect(bad.text.contains("hdr must be tonemap or keep, not 'bright'"), "\(bad.text)")
        }
    }
}
