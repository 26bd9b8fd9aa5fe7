import Foundation
import HarnessCore
import Testing
import TestSupport

@Suite("Harness against a real service")
struct HarnessServiceTests {
    @Test("20 requests at concurrency 10 against a healthy service: 100 % valid MP4s and exit 0")
    func healthy() async throws {
        let service = try ServiceUnderTest()
        defer { service.stop() }
        let scratch = try Scratch()
        let harness = try builtExecutable("harness")
        let input = Clips.small
        let url = service.url
        let result = try await onThread {
            try run(harness, [
                "--url", url, "--requests", "20", "--concurrency", "10", "--file", input,
                "--json", scratch.path("report.json"),
            ])
        }
        #expect(result.status == 0, "\(result.out)\(result.err)")
        #expect(result.out.contains("100.00 %"))
        let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: scratch.url.appendingPathComponent("report.json")))
        #expect(report.succeeded == 20)
        #expect(report.successRate == 100)
        #expect(report.failures.isEmpty)
        #expect(report.verified)
        #expect(report.latencyMs.map { $0.p50 > 0 && $0.p50 <= $0.p99 && $0.p99 <= $0.max } == true)
    }

    @Test("a service with a tiny job time limit: every request counted under its status, and exit 1")
    func failing() async throws {
        let service = try ServiceUnderTest { $0.jobTimeout = 0.000_001 }
        defer { service.stop() }
        let scratch = try Scratch()
        let harness = try builtExecutable("harness")
        let input = Clips.small
        let url = service.url
        let result = try await onThread {
            try run(harness, [
                "--url", url, "--requests", "20", "--concurrency", "10", "--file", input, "--min-success", "50",
                "--json", scratch.path("report.json"),
            ])
        }
        #expect(result.status == 1, "\(result.out)\(result.err)")
        let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: scratch.url.appendingPathComponent("report.json")))
        #expect(report.succeeded == 0)
        #expect(report.failures == ["http 422": 20])
        #expect(report.failureExamples["http 422"] != nil)
        #expect(report.latencyMs == nil)
    }

    @Test("a full queue: the 503s are counted, the admitted jobs still verified, and the sum is every request")
    func tinyQueue() async throws {
        let service = try ServiceUnderTest {
            $0.workers = 1
            $0.queue = 0
        }
        defer { service.stop() }
        let report = try await runHarness(url: service.url, input: Clips.small, requests: 20, concurrency: 10)
        #expect(report.succeeded >= 1)
        #expect((report.failures["http 503"] ?? 0) >= 1)
        #expect(report.succeeded + report.failures.values.reduce(0, +) == 20)
        #expect(Set(report.failures.keys).isSubset(of: ["http 503"]))
        #expect(!report.passes(minimumSuccessRate: 100))
    }

    @Test("smoke: 100 verified uploads at concurrency 8 all come back valid")
    func smoke() async throws {
        let service = try ServiceUnderTest()
        defer { service.stop() }
        let report = try await runHarness(url: service.url, input: Clips.tiny, requests: 100, concurrency: 8)
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

    @Test("each failure is counted under its cause", arguments: Case.allCases)
    func cause(_ kind: Case) async throws {
        var server: CannedServer?
        let port: Int
        let expected: String
        switch kind {
        case .refused:
            port = try CannedServer.closedPort()
            expected = "connect"
        case .silent:
            server = try CannedServer(answer: nil)
            port = server!.port
            expected = "timeout"
        case .notAVideo, .wrongType, .lengthMismatch:
            let wire =
                switch kind {
                case .notAVideo: Self.answer("certainly not an mp4")
                case .wrongType: Self.answer("{}", type: "application/json")
                default: "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
                }
            server = try CannedServer(answer: wire)
            port = server!.port
            expected = "invalid output"
        case .truncated:
            server = try CannedServer(answer: Self.answer("partial", length: 1000))
            port = server!.port
            expected = "connection lost"
        case .busy:
            server = try CannedServer(answer: Self.answer("{}", status: "503 Service Unavailable", type: "application/problem+json"))
            port = server!.port
            expected = "http 503"
        }
        defer { server?.stop() }
        let report = try await runHarness(
            url: "http://127.0.0.1:\(port)", input: Clips.small, requests: 4, concurrency: 2, timeout: 1)
        #expect(report.failures == [expected: 4], "\(report.failureExamples)")
        #expect(report.succeeded == 0)
        #expect(report.successRate == 0)
        #expect(!report.passes(minimumSuccessRate: 100))
    }

    @Test("--no-verify checks status, type and length but does not decode")
    func noVerify() async throws {
        let server = try CannedServer(answer: HarnessFailureTests.answer("not decoded"))
        defer { server.stop() }
        let report = try await runHarness(
            url: "http://127.0.0.1:\(server.port)", input: Clips.small, requests: 3, concurrency: 3, verify: false)
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

    @Test("a generated default clip carries the frame count and duration answers are held to")
    func generated() throws {
        let scratch = try Scratch()
        let input = try InputVideo.generate(in: scratch.url.path, width: 160, height: 96, seconds: 0.4)
        #expect(input.expectation == InputVideo.Expectation(frames: 10, duration: 0.4))
        #expect(input.size > 0)
        #expect(try InputVideo.load(input.path, verify: true).expectation == input.expectation)
    }

    @Test("--dir keeps the videos in name order and skips what is not one")
    func directory() throws {
        let scratch = try Scratch()
        try FileManager.default.copyItem(atPath: Clips.tiny, toPath: scratch.path("b.mp4"))
        try FileManager.default.copyItem(atPath: Clips.small, toPath: scratch.path("a.mp4"))
        try Data("not a video".utf8).write(to: scratch.url.appendingPathComponent("notes.txt"))
        let inputs = try InputVideo.loadDirectory(scratch.url.path, verify: true)
        #expect(inputs.map { URL(fileURLWithPath: $0.path).lastPathComponent } == ["a.mp4", "b.mp4"])
    }
}
