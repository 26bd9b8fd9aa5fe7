import Foundation
import Glibc
import TestSupport
import Testing
import Transcoding

@Suite("POST /<video_id> end to end, on a real socket")
struct ServiceTests {
    @Test("the trial clip comes back as an H.264 MP4 with its frames and duration")
    func trialClip() async throws {
        try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            let response = try running.post("/my-video", body: try Clips.trial())
            #expect(response.status == 200, "\(response.text)")
            #expect(response.header("Content-Type") == "video/mp4")
            #expect(response.header("X-Video-Id") == "my-video")
            #expect(response.header("X-Transcode-Ms") != nil && response.header("X-Queue-Wait-Ms") != nil)
            #expect(Int(response.header("Content-Length") ?? "") == response.body.count)
            let probe = try Clips.probe(response.body)
            #expect(probe.video?.codec == "h264")
            #expect(probe.video?.frameCount == 11)
            #expect(abs((probe.duration ?? 0) - 9.62) < 0.1)
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
        }
    }

    @Test("query options shape the output; audio stays AAC")
    func queryOptions() async throws {
        try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            let response = try running.post("/clip?height=120&crf=30&preset=veryfast", body: Clips.small.bytes)
            #expect(response.status == 200, "\(response.text)")
            let probe = try Clips.probe(response.body)
            #expect(probe.video?.width == 160 && probe.video?.height == 120)
            #expect(probe.video?.frameCount == Clips.small.frames)
            #expect(probe.audio?.codec == "aac")
            let silent = try running.post("/clip?audio=false", body: Clips.small.bytes)
            #expect(silent.status == 200)
            #expect(try Clips.probe(silent.body).audio == nil)
        }
    }

    @Test("a chunked upload with Expect: 100-continue")
    func chunkedWithExpect() async throws {
        try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            let client = try TestClient(port: running.port, receiveTimeoutSeconds: 60)
            try client.send("POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
            #expect(try client.readInterim().hasPrefix("HTTP/1.1 100"))
            for piece in stride(from: 0, to: Clips.small.bytes.count, by: 7000) {
                let chunk = Array(Clips.small.bytes[piece..<min(piece + 7000, Clips.small.bytes.count)])
                try client.send(String(chunk.count, radix: 16) + "\r\n")
                try client.send(chunk)
                try client.send("\r\n")
            }
            try client.send("0\r\n\r\n")
            let response = try client.readResponse()
            #expect(response.status == 200, "\(response.text)")
            #expect(try Clips.probe(response.body).video?.frameCount == Clips.small.frames)
        }
    }

    @Test("the same id twice at once: two independent good answers")
    func sameIDTwice() async throws {
        let running = try RunningService()
        defer { running.stop() }
        async let first = onThread { try running.post("/twin", body: Clips.small.bytes) }
        async let second = onThread { try running.post("/twin", body: Clips.small.bytes) }
        for response in try await [first, second] {
            #expect(response.status == 200)
            #expect(try Clips.probe(response.body).video?.frameCount == Clips.small.frames)
        }
    }

    @Test("bad ids are 400 and nothing is read", arguments: ["/..", "/%2e%2e", "/" + String(repeating: "a", count: 129),
                                                              "/a/b", "/a%2Fb", "/.", "/sp%20ace", "/%zz"])
    func badIDs(target: String) async throws {
        try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            let (client, response) = try running.postHeadOnly(target, declaring: Clips.small.bytes.count)
            #expect(response.status == 400, "\(target): \(response.text)")
            #expect(response.interim.isEmpty, "\(target): a 100 Continue asked for the body")
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(client.isClosedByPeer(), "the unread body ends the connection")
            #expect(try running.metric("ffmpeg_processor_bytes_in_total") == 0)
            #expect(try running.about()["completed"] as? Int == 0)
        }
    }

    @Test("bad inputs and requests get their statuses", arguments: [
        ("/noise", "random", 415), ("/sound", "audio", 422), ("/x?crf=99", "small", 400), ("/x?color=red", "small", 400),
        ("/x?height=abc", "small", 400), ("/x?audio=maybe", "small", 400), ("/empty", "empty", 400),
    ])
    func badInputs(target: String, kind: String, status: Int) async throws {
        try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            let body: [UInt8] =
                switch kind {
                case "random": (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
                case "audio": Clips.audioOnly
                case "empty": []
                default: Clips.small.bytes
                }
            let response = try running.post(target, body: body)
            #expect(response.status == status, "\(target): \(response.text)")
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(response.text.contains("\"status\":\(status)"))
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
        }
    }

    @Test("routes: 404, 405 with Allow, 411")
    func routes() async throws {
        try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            #expect(try running.get("/").status == 404)
            let wrongMethod = try running.get("/some-video")
            #expect(wrongMethod.status == 405 && wrongMethod.header("Allow") == "POST, OPTIONS")
            let putClient = try TestClient(port: running.port)
            try putClient.send("PUT /about HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n1")
            let putAbout = try putClient.readResponse()
            #expect(putAbout.status == 405 && putAbout.header("Allow") == "GET, HEAD, OPTIONS")
            let client = try TestClient(port: running.port)
            try client.send("POST /video HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try client.readResponse().status == 411)
        }
    }

    @Test("GET /about and /metrics")
    func aboutAndMetrics() async throws {
        try await onThread {
            let running = try RunningService(workers: 3, queue: 5)
            defer { running.stop() }
            _ = try running.post("/m", body: Clips.small.bytes)
            // The job's reservation is released by a task of its own once the answer is on its way, so /about can
            // still count it for a moment.
            #expect(try running.wait(seconds: 10) { $0["running"] as? Int == 0 && $0["queued"] as? Int == 0 })
            let about = try running.about()
            #expect(about["service"] as? String == "ffmpeg-processor")
            #expect(about["workers"] as? Int == 3 && about["capacity"] as? Int == 8)
            #expect(about["completed"] as? Int == 1)
            #expect(about["status"] as? String == "ok" && about["version"] is String)
            #expect(about["running"] as? Int == 0 && about["queued"] as? Int == 0)
            #expect(about["failed"] as? Int == 0 && about["rejected"] as? Int == 0 && about["uptime_seconds"] is Int)
            #expect((about["libav"] as? [String: String])?["libavcodec"] != nil)
            let metrics = try running.get("/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.text.contains("ffmpeg_processor_requests_total{route=\"transcode\",status=\"200\"} 1"), "\(metrics.text)")
            #expect(metrics.text.contains("ffmpeg_processor_transcode_seconds_count 1"))
            let head = try TestClient(port: running.port)
            try head.send("HEAD /about HTTP/1.1\r\nHost: t\r\n\r\n")
            let headResponse = try head.readResponse(head: true)
            #expect(headResponse.status == 200 && headResponse.body.isEmpty)
        }
    }
}

@Suite("body size limits")
struct BodyLimitTests {
    @Test("a Content-Length over --max-body is 413 before any byte is read; a chunked body growing past it too")
    func tooLarge() async throws {
        try await onThread {
            let running = try RunningService { $0.maxBody = 10_000 }
            defer { running.stop() }
            let (client, response) = try running.postHeadOnly("/big", declaring: 20_000)
            #expect(response.status == 413)
            #expect(response.interim.isEmpty, "a 100 Continue asked for a body over the limit")
            #expect(client.isClosedByPeer(), "the unread body ends the connection")
            let chunked = try TestClient(port: running.port)
            try chunked.send("POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in 0..<3 { try chunked.send("1000\r\n" + String(repeating: "x", count: 4096) + "\r\n") }
            #expect(try chunked.readResponse().status == 413)
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
        }
    }
}
