import Foundation
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
