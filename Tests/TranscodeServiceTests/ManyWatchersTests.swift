import Foundation
import Glibc
import SystemSupport
import TestSupport
import Testing

@Suite("A thousand SSE watchers on one job", .serialized)
struct ManyWatchersTests {
    /// Resident bytes of process `pid`.
    static func residentBytes(_ pid: Int32) -> Int {
        let fields = ((try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8)) ?? "").split(separator: " ")
        return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func threads(_ pid: Int32) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count
    }

    static func exchange(_ port: Int, _ head: String, body: [UInt8] = []) throws -> TestClient.Response {
        let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
        try client.send(head)
        if !body.isEmpty { try client.send(body) }
        return try client.readResponse()
    }

    static func watchers(_ port: Int) throws -> Double? {
        sample(try exchange(port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").text, "ffmpeg_processor_event_watchers")
    }

    // The service is the built binary in a process of its own, so that its memory is measured alone: in this
    // process, the suites running beside this one grew it by up to 76 MB on a loaded machine.
    @Test("1000 watchers cost no thread and less than 20 MB; all see the final state when the job is cancelled")
    func thousandWatchers() async throws {
        try await onThread {
            try #require(raiseDescriptorLimit() >= 1500, "the descriptor limit is too low for 1000 watchers")
            // Process isolation: the encoder's memory is in its own process, not in the figure.
            let (process, started, log) = try ServeOptionsTests.start(["--host", "127.0.0.1", "--isolation", "process"])
            defer { ServeOptionsTests.stop(process) }
            let port = try #require(started, "the service did not start: \(log)")
            let pid = process.processIdentifier
            let clip = Clips.slow
            let submitted = try Self.exchange(
                port, "POST /watched?preset=veryslow HTTP/1.1\r\nHost: t\r\nPrefer: respond-async\r\nContent-Length: \(clip.count)\r\n\r\n",
                body: clip)
            let location = try #require(submitted.header("Location"), "\(submitted.status) \(submitted.text)")
            // Encoding under way, so the encoder's buffers are in the figure before, not in the growth.
            #expect(waitUntil(120) {
                guard let body = try? Self.exchange(port, "GET \(location) HTTP/1.1\r\nHost: t\r\n\r\n").body,
                    let status = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
                else { return false }
                return status["state"] as? String == "running" && (status["progress"] as? Double ?? 0) > 0
            }, "the job never got under way")
            let threadsBefore = try Self.threads(pid)
            let before = Self.residentBytes(pid)
            var watchers: [TestClient] = []
            for _ in 0..<1000 {
                let watcher = try TestClient(port: port, receiveTimeoutSeconds: 60)
                try watcher.send("GET \(location)/events HTTP/1.1\r\nHost: t\r\n\r\n")
                watchers.append(watcher)
            }
            #expect(waitUntil(60) { (try? Self.watchers(port)) == 1000 }, "\(String(describing: try? Self.watchers(port)))")
            let grown = Self.residentBytes(pid) - before
            let threadsAfter = try Self.threads(pid)
            print("1000 SSE watchers: the service grew by \(grown >> 10) KiB, threads \(threadsBefore) → \(threadsAfter)")
            // Under TSan each watcher's buffers carry shadow memory (62 MB in CI); the bound is for real builds.
            if !threadSanitizerIsActive {
                #expect(grown < 20 << 20, "1000 watchers grew the service by \(grown >> 20) MiB")
            }
            // The cooperative pool may add a thread or two under the load; a thread per watcher would add 1000.
            #expect(threadsAfter - threadsBefore < 16, "\(threadsBefore) → \(threadsAfter) threads")
            #expect(try Self.exchange(port, "DELETE \(location) HTTP/1.1\r\nHost: t\r\n\r\n").status == 204)
            for watcher in watchers.prefix(50) {
                let response = try watcher.readResponse()
                #expect(response.text.contains("\"state\":\"cancelled\""))
            }
            watchers.removeAll()
            #expect(waitUntil(30) { (try? Self.watchers(port)) == 0 })
        }
    }
}
