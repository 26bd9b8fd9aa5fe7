import Foundation
import HarnessCore
import Testing
import TestSupport

/// Reads the report `--json` wrote.
private func readReport(_ path: String) throws -> Report {
    try JSONDecoder().decode(Report.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
}

// Serialized: each test starts a service that wants both cores; side by side they would only slow each other down.
@Suite("Harness against the real service", .serialized)
struct HarnessServiceTests {
    @Test("20 requests at concurrency 10 against a healthy service: 100 % valid MP4s and exit 0")
    func healthy() async throws {
        let input = try await onThread { Clips.small }
        let (result, report) = try await onThread {
            let service = try ServiceProcess()
            defer { service.stop() }
            let scratch = try Scratch()
            let result = try runChild(try builtExecutable("harness"), [
                "--url", service.url, "--requests", "20", "--concurrency", "10", "--file", input,
                "--json", scratch.path("report.json"),
            ])
            return (result, try readReport(scratch.path("report.json")))
        }
        #expect(result.status == 0, "\(result.out)\(result.err)")
        #expect(result.out.contains("100.00 %"))
        #expect(report.succeeded == 20)
        #expect(report.successRate == 100)
        #expect(report.failures.isEmpty)
        #expect(report.verified)
        #expect(report.latencyMs.map { $0.p50 > 0 && $0.p50 <= $0.p99 && $0.p99 <= $0.max } == true)
    }

    @Test("--async: each job submitted, followed through its events and downloaded; every MP4 verified")
    func asyncJobs() async throws {
        let input = try await onThread { Clips.small }
        let (result, report) = try await onThread {
            let service = try ServiceProcess()
            defer { service.stop() }
            let scratch = try Scratch()
            let result = try runChild(try builtExecutable("harness"), [
                "--url", service.url, "--requests", "12", "--concurrency", "6", "--file", input, "--async",
                "--json", scratch.path("report.json"),
            ])
            return (result, try readReport(scratch.path("report.json")))
        }
        #expect(result.status == 0, "\(result.out)\(result.err)")
        #expect(report.succeeded == 12 && report.failures.isEmpty, "\(report.failures) \(report.failureExamples)")
        #expect(report.verified)
    }

    @Test("--async counts a job that failed under the status its problem names")
    func asyncFailures() async throws {
        let (result, report) = try await onThread {
            let service = try ServiceProcess(["--job-timeout", "0.000001"])
            defer { service.stop() }
            let scratch = try Scratch()
            let result = try runChild(try builtExecutable("harness"), [
                "--url", service.url, "--requests", "4", "--concurrency", "2", "--file", Clips.small, "--async",
                "--min-success", "0", "--json", scratch.path("report.json"),
            ])
            return (result, try readReport(scratch.path("report.json")))
        }
        #expect(result.status == 0, "\(result.out)\(result.err)")
        #expect(report.failures == ["http 422": 4])
    }

    @Test("--async deletes a job it gives up on: past --timeout the job is cancelled, not left to hold the worker")
    func asyncTimeoutCancels() async throws {
        let input = try await onThread { Clips.slow }
        let (result, report, cancelled) = try await onThread {
            let service = try ServiceProcess(["--workers", "1"])
            defer { service.stop() }
            let scratch = try Scratch()
            let result = try runChild(try builtExecutable("harness"), [
                "--url", service.url, "--requests", "1", "--concurrency", "1", "--file", input, "--async",
                "--query", "preset=veryslow", "--timeout", "2", "--min-success", "0", "--json", scratch.path("report.json"),
            ])
            // The harness has its DELETE's answer before it exits: the job is cancelled by now.
            let cancelled = try service.metric { $0.hasPrefix("ffmpeg_processor_async_jobs{") && $0.contains("cancelled") }
            return (result, try readReport(scratch.path("report.json")), cancelled)
        }
        #expect(result.status == 0, "\(result.out)\(result.err)")
        #expect(report.failures == ["timeout": 1], "\(report.failures)")
        #expect(cancelled == 1)
    }

    @Test("a service with a tiny job time limit: every request counted under its status, and exit 1")
    func failing() async throws {
        let input = try await onThread { Clips.small }
        let (result, report) = try await onThread {
            let service = try ServiceProcess(["--job-timeout", "0.000001"])
            defer { service.stop() }
            let scratch = try Scratch()
            let result = try runChild(try builtExecutable("harness"), [
                "--url", service.url, "--requests", "20", "--concurrency", "10", "--file", input, "--min-success", "50",
                "--json", scratch.path("report.json"),
            ])
            return (result, try readReport(scratch.path("report.json")))
        }
        #expect(result.status == 1, "\(result.out)\(result.err)")
        #expect(report.succeeded == 0)
        #expect(report.failures == ["http 422": 20])
        #expect(report.failureExamples["http 422"] != nil)
        #expect(report.latencyMs == nil)
    }

    @Test("a full queue: the 503s are counted, the admitted jobs still verified, and the sum is every request")
    func tinyQueue() async throws {
        let input = try await onThread { Clips.small }
        let report = try await onThread {
            let service = try ServiceProcess(["--workers", "1", "--queue", "0"])
            defer { service.stop() }
            return try runHarness(url: service.url, input: input, requests: 20, concurrency: 10)
        }
        #expect(report.succeeded >= 1)
        #expect((report.failures["http 503"] ?? 0) >= 1)
        #expect(report.succeeded + report.failures.values.reduce(0, +) == 20)
        #expect(Set(report.failures.keys).isSubset(of: ["http 503"]))
        #expect(!report.passes(minimumSuccessRate: 100))
    }

    @Test("a body over the service's limit is counted as http 413")
    func tooLarge() async throws {
        let input = try await onThread { Clips.small }
        let report = try await onThread {
            let service = try ServiceProcess(["--max-body", "1000"])
            defer { service.stop() }
            return try runHarness(url: service.url, input: input, requests: 4, concurrency: 2)
        }
        #expect(report.failures == ["http 413": 4], "\(report.failureExamples)")
    }

    @Test("--disconnect 50: the walked-away requests are counted apart, the others are valid, the service ends idle")
    func disconnects() async throws {
        let input = try await onThread { Clips.small }
        let (report, about) = try await onThread {
            let service = try ServiceProcess()
            defer { service.stop() }
            let report = try runHarness(
                url: service.url, input: input, requests: 30, concurrency: 6, extra: ["--disconnect", "50"])
            let port = Int(service.url.split(separator: ":").last!)!
            var about = ""
            for _ in 0..<250 {
                let client = try TestClient(port: port)
                try client.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
                about = try client.readResponse().text
                if about.contains("\"running\":0") && about.contains("\"queued\":0") { break }
                usleep(20_000)
            }
            return (report, about)
        }
        #expect(report.abandoned >= 1 && report.abandoned < 30, "\(report.abandoned) of 30 abandoned")
        #expect(report.succeeded + report.abandoned == 30, "\(report.failures) \(report.failureExamples)")
        #expect(report.failed == 0)
        #expect(report.successRate == 100)
        #expect(about.contains("\"running\":0") && about.contains("\"queued\":0"), "\(about)")
    }

    @Test("smoke: 100 verified uploads at concurrency 8 all come back valid")
    func smoke() async throws {
        let input = try await onThread { Clips.tiny }
        let report = try await onThread {
            let service = try ServiceProcess()
            defer { service.stop() }
            return try runHarness(url: service.url, input: input, requests: 100, concurrency: 8)
        }
        #expect(report.succeeded == 100, "\(report.failures) \(report.failureExamples)")
        #expect(report.verified)
        #expect(report.inputBytes == 100 * Int64(try FileManager.default.attributesOfItem(atPath: Clips.tiny)[.size] as! Int))
        #expect(report.outputBytes > 0)
    }
}

@Suite("Harness failure causes")
struct HarnessFailureTests {
    enum Case: String, CaseIterable, Sendable {
        case refused, silent, notAVideo, wrongType, truncated, busy, lengthMismatch
    }

    static func answer(_ body: String, status: String = "200 OK", type: String = "video/mp4", length: Int? = nil) -> String {
        "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(length ?? body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }

    static func expectedCause(_ kind: Case) -> String {
        switch kind {
        case .refused: "connect"
        case .silent: "timeout"
        case .notAVideo, .wrongType, .lengthMismatch: "invalid output"
        case .truncated: "connection lost"
        case .busy: "http 503"
        }
    }

    /// A server that fails as `kind` says, or nil when nothing should listen.
    static func server(_ kind: Case) throws -> CannedServer? {
        switch kind {
        case .refused: nil
        case .silent: try CannedServer(answer: nil)
        case .notAVideo: try CannedServer(answer: answer("certainly not an mp4"))
        case .wrongType: try CannedServer(answer: answer("{}", type: "application/json"))
        case .lengthMismatch:
            // Chunked: well framed, but no Content-Length to hold the body against.
            try CannedServer(answer: "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
        case .truncated: try CannedServer(answer: answer("partial", length: 1000))
        case .busy: try CannedServer(answer: answer("{}", status: "503 Service Unavailable", type: "application/problem+json"))
        }
    }

    @Test("each failure is counted under its cause", arguments: Case.allCases)
    func cause(_ kind: Case) async throws {
        let input = try await onThread { Clips.small }
        let report = try await onThread {
            let server = try Self.server(kind)
            defer { server?.stop() }
            let port = try server?.port ?? CannedServer.closedPort()
            // Only the silent server is meant to time out: the others get time enough for a loaded machine.
            return try runHarness(
                url: "http://127.0.0.1:\(port)", input: input, requests: 4, concurrency: 2, timeout: kind == .silent ? 1 : 15)
        }
        #expect(report.failures == [Self.expectedCause(kind): 4], "\(report.failureExamples)")
        #expect(report.succeeded == 0)
        #expect(report.successRate == 0)
        #expect(report.latencyMs == nil)
        #expect(!report.passes(minimumSuccessRate: 100))
    }

    @Test("--no-verify checks status, type and length but does not decode")
    func noVerify() async throws {
        let input = try await onThread { Clips.small }
        let report = try await onThread {
            let server = try CannedServer(answer: HarnessFailureTests.answer("not decoded"))
            defer { server.stop() }
            return try runHarness(url: "http://127.0.0.1:\(server.port)", input: input, requests: 3, concurrency: 3, verify: false)
        }
        #expect(report.succeeded == 3)
        #expect(!report.verified)
    }
}

@Suite("Harness parts")
struct HarnessPartsTests {
    @Test(
        "service URLs",
        arguments: [
            ("http://127.0.0.1:3000", "127.0.0.1", 3000, ""),
            ("http://localhost", "localhost", 80, ""),
            ("http://[::1]:8080/api/", "::1", 8080, "/api"),
        ])
    func urls(url: String, host: String, port: Int, prefix: String) throws {
        let endpoint = try Endpoint(url: url)
        #expect(endpoint.host == host)
        #expect(endpoint.port == port)
        #expect(endpoint.pathPrefix == prefix)
    }

    @Test("URLs the harness refuses", arguments: ["https://127.0.0.1", "127.0.0.1:3000", "http://:80", "http://h:99999", "http://h/x?y=1"])
    func badURLs(url: String) {
        #expect(throws: HarnessError.self) { _ = try Endpoint(url: url) }
    }

    @Test("a run that cannot start exits 2, apart from a run under --min-success")
    func cannotStart() async throws {
        let result = try await onThread {
            try runChild(try builtExecutable("harness"), ["--file", "/nonexistent/clip.mp4", "--requests", "1"])
        }
        #expect(result.status == 2)
        #expect(result.err.contains("cannot open /nonexistent/clip.mp4"))
    }

    @Test("disconnect plans: none at 0 %, always at 100 %, about one in ten at 10 %, moments within bounds")
    func disconnectPlans() {
        #expect((0..<1000).allSatisfy { _ in Disconnect.plan(percent: 0, uploadBytes: 100) == nil })
        let all = (0..<3000).compactMap { _ in Disconnect.plan(percent: 100, uploadBytes: 100) }
        #expect(all.count == 3000)
        for plan in all {
            switch plan.moment {
            case .uploading(let bytes): #expect((0..<100).contains(bytes))
            case .waiting(let milliseconds): #expect((0..<2000).contains(milliseconds))
            case .receiving(let bytes): #expect((0..<65536).contains(bytes))
            }
        }
        // Every kind of moment, with and without a reset, turns up.
        #expect(all.contains { if case .uploading = $0.moment { true } else { false } })
        #expect(all.contains { if case .waiting = $0.moment { true } else { false } })
        #expect(all.contains { if case .receiving = $0.moment { true } else { false } })
        #expect(all.contains { $0.reset } && all.contains { !$0.reset })
        let tenth = (0..<10_000).compactMap { _ in Disconnect.plan(percent: 10, uploadBytes: 100) }
        #expect((800...1200).contains(tenth.count), "\(tenth.count) of 10,000")
    }

    @Test("a generated default clip carries the frame count and duration answers are held to")
    func generated() async throws {
        let (generated, loaded) = try await onThread {
            let scratch = try Scratch()
            let input = try InputVideo.generate(in: scratch.url.path, width: 160, height: 96, seconds: 0.4)
            return (input.expectation, try InputVideo.load(input.path, verify: true).expectation)
        }
        #expect(generated == InputVideo.Expectation(frames: 10, duration: 0.4))
        #expect(loaded == generated)
    }

    @Test("--dir keeps the videos in name order and skips what is not one")
    func directory() async throws {
        let (tiny, small) = try await onThread { (Clips.tiny, Clips.small) }
        let names = try await onThread {
            let scratch = try Scratch()
            try FileManager.default.copyItem(atPath: tiny, toPath: scratch.path("b.mp4"))
            try FileManager.default.copyItem(atPath: small, toPath: scratch.path("a.mp4"))
            try Data("not a video".utf8).write(to: scratch.url.appendingPathComponent("notes.txt"))
            return try InputVideo.loadDirectory(scratch.url.path, verify: true).map { URL(fileURLWithPath: $0.path).lastPathComponent }
        }
        #expect(names == ["a.mp4", "b.mp4"])
    }
}

@Suite("Harness keep-alive", .serialized)
struct HarnessKeepAliveTests {
    @Test("--keep-alive with two replicas: each thread keeps one connection for all its uploads, and both replicas serve")
    func keptConnections() async throws {
        let input = try await onThread { Clips.tiny }
        let (report, served) = try await onThread {
            let replicas = [try ServiceProcess(), try ServiceProcess()]
            defer { replicas.forEach { $0.stop() } }
            let report = try runHarness(
                url: replicas[0].url, input: input, requests: 12, concurrency: 2,
                extra: ["--url", replicas[1].url, "--keep-alive"])
            return (report, try replicas.map { try $0.transcodes() })
        }
        #expect(report.succeeded == 12, "\(report.failures) \(report.failureExamples)")
        #expect(report.connections == 2, "one per thread, never closed by the replicas")
        #expect(served.allSatisfy { $0 > 0 } && served.reduce(0, +) == 12, "\(served)")
    }

    @Test("without --keep-alive: a connection per upload, and the uploads spread over the replicas given")
    func connectionPerUpload() async throws {
        let input = try await onThread { Clips.tiny }
        let (report, served) = try await onThread {
            let replicas = [try ServiceProcess(), try ServiceProcess()]
            defer { replicas.forEach { $0.stop() } }
            let report = try runHarness(
                url: replicas[0].url, input: input, requests: 6, concurrency: 2, extra: ["--url", replicas[1].url])
            return (report, try replicas.map { try $0.transcodes() })
        }
        #expect(report.succeeded == 6, "\(report.failures) \(report.failureExamples)")
        #expect(report.connections == 6)
        #expect(served == [3, 3], "each thread alternates")
    }
}
