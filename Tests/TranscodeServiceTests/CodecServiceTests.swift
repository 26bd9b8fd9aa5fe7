import Foundation
import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("codec= and format= through the sandboxed workers")
struct CodecServiceTests {
    @Test("each codec comes back decodable, tagged, with its type, codec header and index first",
          arguments: [("h264", "mp4"), ("hevc", "mp4"), ("av1", "mp4"), ("vp9", "webm"), ("av1", "webm")])
    func eachCodec(_ codec: String, _ format: String) async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            // The job runs in a confined process: an encoder thread making a call outside the allow-list would
            // end it with SIGSYS and this answer would be a 422 "forbidden system call".
            let response = try running.post("/c?codec=\(codec)&format=\(format)", body: Clips.small.bytes)
            #expect(response.status == 200, "\(response.text)")
            #expect(response.header("Content-Type") == "video/\(format)")
            #expect(response.header("X-Video-Codec") == codec)
            #expect(response.header("Content-Disposition") == "inline; filename=\"c.\(format)\"")
            let scratch = try Scratch()
            let path = scratch.path("answer.\(format)")
            try Data(response.body).write(to: URL(fileURLWithPath: path))
            let probe = try MediaProbe.probe(.path(path), decode: true)
            let video = try #require(probe.video)
            #expect(video.codec == codec && video.pixelFormat == "yuv420p" && video.decodeErrors == 0)
            #expect(video.frameCount == Clips.small.frames)
            #expect(video.codecTag == ["h264": "avc1", "hevc": "hvc1", "av1": "av01"][codec].flatMap { format == "mp4" ? $0 : nil })
            #expect(probe.audio?.codec == (format == "mp4" ? "aac" : "opus"))
            #expect(try ContainerLayout.indexFirst(path))
            let metrics = try running.get("/metrics").text
            #expect(metrics.contains("ffmpeg_processor_transcodes_total{codec=\"\(codec)\"} 1"), "\(metrics.prefix(0))")
        }
    }

    /// The look-ahead for the first frame's SEI and the encoders' HDR10 options run inside the sandbox too.
    @Test("hdr=keep on PQ HEVC comes back with its HDR10 metadata in the container and, for HEVC and AV1, the bitstream",
          arguments: [("hevc", "mp4"), ("av1", "webm"), ("vp9", "webm")])
    func hdr10Kept(_ codec: String, _ format: String) async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let clip = Clips.pq
            let response = try running.post("/c?codec=\(codec)&format=\(format)&hdr=keep", body: clip.bytes)
            #expect(response.status == 200, "\(response.text)")
            let scratch = try Scratch()
            let path = scratch.path("answer.\(format)")
            try Data(response.body).write(to: URL(fileURLWithPath: path))
            let video = try #require(try MediaProbe.probe(.path(path), decode: true).video)
            #expect(video.pixelFormat == "yuv420p10le" && video.colorTransfer == "smpte2084")
            #expect(video.frameCount == clip.frames && video.decodeErrors == 0)
            #expect(video.containerHDR10 == SyntheticClip.pqMetadata, "\(String(describing: video.containerHDR10))")
            // AV1's own fixed point (HDR10MetadataTests compares it within its rounding) only needs to be there.
            if codec == "hevc" { #expect(video.firstFrameHDR10 == SyntheticClip.pqMetadata) }
            if codec == "av1" { #expect(video.firstFrameHDR10?.contentLight == SyntheticClip.pqMetadata.contentLight) }
            if codec == "vp9" { #expect(video.firstFrameHDR10 == nil) }
        }
    }

    @Test("a codec the format cannot carry, or crf off the codec's scale, is a 400 problem that says what is valid",
          arguments: [
            ("codec=vp9&format=mp4", "valid: mp4 with h264, hevc, av1; webm with vp9, av1"),
            ("codec=h264&format=webm", "valid: mp4 with h264, hevc, av1; webm with vp9, av1"),
            ("codec=hevc&format=webm", "valid: mp4 with h264, hevc, av1; webm with vp9, av1"),
            ("codec=h265", "codec must be h264, hevc, av1 or vp9"),
            ("format=mkv", "format must be mp4 or webm"),
            ("codec=hevc&crf=52", "crf for hevc must be 0...51"),
            ("codec=vp9&crf=64", "crf for vp9 must be 0...63"),
            ("crf=20&quality=high", "crf or quality, not both"),
            ("codec=av1&preset=slow", "preset applies to h264 and hevc only"),
          ])
    func refused(_ query: String, _ reason: String) async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let response = try running.post("/bad?\(query)", body: Clips.small.bytes)
            #expect(response.status == 400)
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(response.text.contains(reason), "\(response.text)")
        }
    }
}

@Suite("POST /<video_id>/poster through the sandboxed workers")
struct PosterServiceTests {
    @Test("a poster in each format decodes at the video's size", .enabled(if: which("ffmpeg") != nil),
          arguments: ["jpeg", "webp", "png"])
    func poster(_ format: String) async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let response = try running.post("/c/poster?at=0.5&format=\(format)&width=160", body: Clips.small.bytes)
            #expect(response.status == 200, "\(response.text)")
            #expect(response.header("Content-Type") == "image/\(format)")
            #expect(response.header("Content-Disposition") == "inline; filename=\"c.\(format)\"")
            let scratch = try Scratch()
            let path = scratch.path("poster.\(format)")
            try Data(response.body).write(to: URL(fileURLWithPath: path))
            // Decoded by the CLI into raw RGB: 160x120 pixels of 3 bytes, nothing else.
            let decoded = try run(which("ffmpeg")!, ["-nostdin", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt",
                                                     "rgb24", scratch.path("raw.rgb")])
            #expect(decoded.status == 0, "\(decoded.err)")
            let size = try FileManager.default.attributesOfItem(atPath: scratch.path("raw.rgb"))[.size] as? Int
            #expect(size == 160 * 120 * 3)
        }
    }

    @Test("refusals: at past the end 422, not a video 415, a bad format 400", arguments: [
        ("/c/poster?at=5", 422, "past the end"), ("/c/poster?format=gif", 400, "format must be jpeg, webp or png"),
        ("/c/poster?at=-1", 400, "at must be seconds"), ("/c/poster?crf=20", 400, "unknown query parameter"),
    ])
    func refused(_ target: String, _ status: Int, _ reason: String) async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let response = try running.post(target, body: Clips.small.bytes)
            #expect(response.status == status)
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(response.text.contains(reason), "\(response.text)")
            let text = try running.post("/c/poster", body: Array("not a video at all, only words".utf8))
            #expect(text.status == 415)
        }
    }
}

extension Clips {
    /// 0.4 s of 10-bit PQ HEVC whose HDR10 metadata is in its SEI only; written once, whichever test asks first.
    static let pq = generate("pq.mov") {
        $0.container = "mov"; $0.videoCodec = "libx265"; $0.audioCodec = nil; $0.signal = .pq; $0.seconds = 0.4
    }
}
