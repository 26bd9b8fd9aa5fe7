import Foundation
import Glibc
import MediaFixtures
import SplitStitch
import TestSupport
import Testing
import Transcoding

@Suite("split uploads: a long video's segments on the pool, one MP4 back, as the whole-file job's")
struct SplitServiceTests {
    /// 8 s with a keyframe every second and AAC-LC audio (copied, so the coordinator never decodes).
    static let long = Clips.generate("long.mp4") { $0.seconds = 8; $0.keyframeInterval = 25 }

    static func splitting(workers: Int = 2, queue: Int = 4) throws -> RunningService {
        try RunningService(workers: workers, queue: queue) {
            $0.split.segmentSeconds = 2
            $0.split.minimumSeconds = 3
        }
    }

    @Test("split: every frame at the whole-file answer's timestamps, the same headers, audio kept")
    func splitMatchesWhole() async throws {
        try await onThread {
            let service = try Self.splitting(queue: 0)
            defer { service.stop() }
            let split = try service.post("/long", body: Self.long.bytes)
            #expect(split.status == 200, "\(split.text.prefix(300))")
            let segments = try #require(split.header("X-Video-Segments").flatMap { Int($0) })
            #expect(segments >= 3)
            #expect(try service.metric("ffmpeg_processor_split_jobs_total{outcome=\"ok\"}") == 1)
            #expect(try service.metric("ffmpeg_processor_segments_total{event=\"sent\"}") == Double(segments))
            // The plan, the cut and the stitch read the upload as jobs of the pool (worker processes, by default),
            // beside the segments': the service itself parsed none of it.
            #expect(service.service.pool.counters.completed.load(ordering: .relaxed) == segments + 3)
            let whole = try service.post("/long?split=off", body: Self.long.bytes)
            #expect(whole.status == 200)
            #expect(whole.header("X-Video-Segments") == nil)
            for name in ["Content-Type", "Content-Disposition", "X-Video-Id", "X-Video-Filters"] {
                #expect(split.header(name) == whole.header(name), "\(name)")
            }
            let probe = try Clips.probe(split.body)
            #expect(probe.video?.frameCount == Self.long.frames)
            #expect(probe.video?.decodeErrors == 0)
            #expect(probe.audio?.codec == "aac" && probe.audio?.decodeErrors == 0)
            guard let ffprobe = which("ffprobe") else { return }
            let times = try [split.body, whole.body].map { body in try Self.frameTimes(body, ffprobe: ffprobe) }
            #expect(times[0].count == Self.long.frames)
            #expect(times[0] == times[1])
            // Both answers given back their places: nothing is admitted once they are answered.
            #expect(service.service.pool.counters.admitted.load(ordering: .relaxed) == 0)
        }
    }

    /// 18 s with a keyframe a second: at 1 s segments, 16 or more of them.
    static let manyKeyframes = Clips.generate("many-keyframes.mp4") { $0.seconds = 18; $0.keyframeInterval = 25 }

    static func oneSecondSegments() throws -> RunningService {
        try RunningService(workers: 2, queue: 4) {
            $0.split.segmentSeconds = 1
            $0.split.minimumSeconds = 3
        }
    }

    @Test("more segments than a worker process has descriptors of its own: the cut and the stitch get them all")
    func manySegments() async throws {
        let many = Self.manyKeyframes
        try await onThread {
            let service = try Self.oneSecondSegments()
            defer { service.stop() }
            let answer = try service.post("/many", body: many.bytes)
            #expect(answer.status == 200, "\(answer.text.prefix(300))")
            let segments = try #require(answer.header("X-Video-Segments").flatMap { Int($0) })
            #expect(segments >= 16)
            let probe = try Clips.probe(answer.body)
            #expect(probe.video?.frameCount == many.frames && probe.video?.decodeErrors == 0)
            #expect(probe.audio?.codec == "aac")
        }
    }

    @Test("DELETE of an async job mid-split cancels it: its segments stop, every place and worker is free again")
    func deleteMidSplit() async throws {
        let many = Self.manyKeyframes
        try await onThread {
            let service = try Self.oneSecondSegments()
            defer { service.stop() }
            let location = try service.submitJob("/many?preset=veryslow", body: many.bytes)
            // Progress moves once a segment is in: the job is split and its other segments are under way.
            _ = try service.follow(location, seconds: 120) { ($0["progress"] as? Double ?? 0) > 0 }
            #expect(try service.request("DELETE", location).status == 204)
            #expect(try service.follow(location, seconds: 30) { $0["state"] as? String == "cancelled" }.isEmpty == false)
            #expect(try service.wait(seconds: 30) { $0["running"] as? Int == 0 && $0["queued"] as? Int == 0 })
            #expect(waitUntil(30) { service.service.pool.counters.admitted.load(ordering: .relaxed) == 0 })
            #expect(try service.get(location + "/output").status == 409)
            // Stopped, not run out: fewer jobs completed than the plan, the cut, its segments (at least 16, as in
            // manySegments) and the stitch would be, and no split job succeeded.
            let completed = service.service.pool.counters.completed.load(ordering: .relaxed)
            #expect(completed < 2 + 16, "\(completed) jobs completed")
            #expect(try service.metric("ffmpeg_processor_split_jobs_total{outcome=\"ok\"}") ?? 0 == 0)
        }
    }

    @Test("no split with one worker, for a short video, or with a bad split value (400)")
    func notSplit() async throws {
        try await onThread {
            let one = try Self.splitting(workers: 1)
            defer { one.stop() }
            let answer = try one.post("/long", body: Self.long.bytes)
            #expect(answer.status == 200)
            #expect(answer.header("X-Video-Segments") == nil)

            let two = try Self.splitting()
            defer { two.stop() }
            let short = try two.post("/short", body: Clips.small.bytes)
            #expect(short.status == 200)
            #expect(short.header("X-Video-Segments") == nil)
            let bad = try two.post("/long?split=sometimes", body: Self.long.bytes)
            #expect(bad.status == 400)
            #expect(bad.text.contains("split must be auto or off"), "\(bad.text)")
        }
    }

    @Test("only H.264 in MP4 is split: another codec or WebM is one whole-file job, as it was",
          arguments: [("codec=hevc", "hevc", "video/mp4"), ("format=webm", "vp9", "video/webm")])
    func otherOutputsWhole(_ query: String, _ codec: String, _ type: String) async throws {
        try await onThread {
            let service = try Self.splitting()
            defer { service.stop() }
            let answer = try service.post("/long?\(query)", body: Self.long.bytes)
            #expect(answer.status == 200, "\(answer.text.prefix(300))")
            #expect(answer.header("X-Video-Segments") == nil)
            #expect(answer.header("X-Video-Codec") == codec)
            #expect(answer.header("Content-Type") == type)
            let probe = try Clips.probe(answer.body)
            #expect(probe.video?.codec == codec && probe.video?.decodeErrors == 0)
            #expect(probe.video?.frameCount == Self.long.frames)
            #expect(try service.metric("ffmpeg_processor_split_jobs_total{outcome=\"ok\"}") ?? 0 == 0)
        }
    }

    @Test("an async upload (Prefer: respond-async) is split too: its result and wait= answer are the split answer")
    func asyncSplit() async throws {
        try await onThread {
            let service = try Self.splitting()
            defer { service.stop() }
            let waited = try service.submit("/long", body: Self.long.bytes, prefer: "respond-async, wait=300")
            #expect(waited.status == 200, "\(waited.text.prefix(300))")
            let segments = try #require(waited.header("X-Video-Segments").flatMap { Int($0) })
            #expect(segments >= 3)
            #expect(waited.header("X-Video-Codec") == "h264" && waited.header("Content-Type") == "video/mp4")
            #expect(try Clips.probe(waited.body).video?.frameCount == Self.long.frames)

            let location = try service.submitJob("/long", body: Self.long.bytes)
            let seen = try service.follow(location, seconds: 300) { $0["state"] as? String == "succeeded" }
            let progress = seen.compactMap { $0["progress"] as? Double }
            #expect(progress == progress.sorted(), "\(progress)")
            let output = try service.get(location + "/output")
            #expect(output.status == 200)
            let probe = try Clips.probe(output.body)
            #expect(probe.video?.frameCount == Self.long.frames && probe.video?.decodeErrors == 0)
            #expect(probe.audio?.codec == "aac")
            #expect(try service.metric("ffmpeg_processor_split_jobs_total{outcome=\"ok\"}") == 2)
            #expect(service.service.pool.counters.admitted.load(ordering: .relaxed) == 0)
        }
    }

    @Test("a poster is never split (split= is not its parameter), and X-Segment asks for H.264 in MP4")
    func posterAndSegmentOutputs() async throws {
        try await onThread {
            let service = try Self.splitting()
            defer { service.stop() }
            let poster = try service.post("/long/poster?at=1", body: Self.long.bytes)
            #expect(poster.status == 200, "\(poster.text.prefix(300))")
            #expect(poster.header("Content-Type") == "image/jpeg")
            #expect(poster.header("X-Video-Segments") == nil)
            #expect(Array(poster.body.prefix(3)) == [0xff, 0xd8, 0xff])
            let withSplit = try service.post("/long/poster?split=off", body: Self.long.bytes)
            #expect(withSplit.status == 400)
            #expect(withSplit.text.contains("unknown query parameter 'split'"), "\(withSplit.text)")
            let header = "X-Segment: parent=p; time-base=1/12800; frame-rate=25/1; shift=0; origin=0\r\n"
            for target in ["/part?codec=vp9", "/part?format=webm", "/part/poster"] {
                let refused = try service.post(target, body: Self.long.bytes, extraHeaders: header)
                #expect(refused.status == 400, "\(target)")
                #expect(refused.text.contains("a segment request is a synchronous H.264 video in MP4"), "\(refused.text)")
            }
            #expect(try service.metric("ffmpeg_processor_split_jobs_total{outcome=\"ok\"}") ?? 0 == 0)
        }
    }

    @Test("the segment request: X-Segment's window encoded alone, video only, at the original timestamps; a bad one is 400")
    func segmentRequest() async throws {
        try await onThread {
            let service = try Self.splitting()
            defer { service.stop() }
            let scratch = try Scratch()
            _ = Self.long  // written on first use
            let source = Clips.folder.path("long.mp4")
            let plan = try #require(try SegmentPlan.probe(.path(source), segmentSeconds: 2, minimumSeconds: 1))
            let segment = plan.segments[1]
            let cut = scratch.path("cut.mp4")
            let descriptor = open(cut, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            #expect(descriptor >= 0)
            let window = try SegmentSplit.write(1, of: plan, from: .path(source), to: .fileDescriptor(descriptor))
            close(descriptor)
            let header = SegmentHeader(parent: "the-parent", window: window)
            let body = Array(try Data(contentsOf: URL(fileURLWithPath: cut)))

            let answer = try service.post("/part-1", body: body, extraHeaders: "X-Segment: \(header.value)\r\n")
            #expect(answer.status == 200, "\(answer.text.prefix(300))")
            #expect(answer.header("X-Video-Segments") == nil)
            let probe = try Clips.probe(answer.body)
            #expect(probe.audio == nil)
            #expect(probe.video?.frameCount == Int((segment.seconds * 25).rounded()))
            if let ffprobe = which("ffprobe") {
                let start = Double(segment.start! - plan.origin) * plan.timeBase.value
                #expect(try Self.frameTimes(answer.body, ffprobe: ffprobe).first.flatMap(Double.init) == start)
            }
            #expect(try service.metric("ffmpeg_processor_segments_total{event=\"received\"}") == 1)

            for (value, reason) in [
                ("parent=../x; time-base=1/1; frame-rate=1/1; shift=0; origin=0", "parent must be a video id"),
                ("parent=p; time-base=0/1; frame-rate=1/1; shift=0; origin=0", "time-base must be"),
                ("parent=p; time-base=1/1; frame-rate=1/1; origin=0", "shift is missing"),
                ("parent=p; time-base=1/1; frame-rate=1/1; shift=0; origin=0; start=5; end=5", "end must be after start"),
            ] {
                let refused = try service.post("/part", body: body, extraHeaders: "X-Segment: \(value)\r\n")
                #expect(refused.status == 400)
                #expect(refused.text.contains(reason), "\(refused.text)")
            }
        }
    }

    static func frameTimes(_ body: [UInt8], ffprobe: String) throws -> [String] {
        let scratch = try Scratch()
        let path = scratch.path("answer.mp4")
        try Data(body).write(to: URL(fileURLWithPath: path))
        let result = try run(ffprobe, ["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0", path])
        return result.out.split(separator: "\n").map { String($0.prefix { $0 != "," }) }
    }
}
