import Foundation
import Glibc
import SystemSupport
import TestSupport
import Testing

@Suite("A thousand SSE watchers on one job", .serialized)
struct ManyWatchersTests {
    /// Resident bytes of this process (the service and the clients both live in it).
    static func residentBytes() -> Int {
        let fields = ((try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "").split(separator: " ")
        return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test("1000 watchers cost no thread and less than 20 MB; all see the final state when the job is cancelled")
    func thousandWatchers() async throws {
        try await onThread {
            // Each watcher is two descriptors here: the client's and the service's.
            try #require(raiseDescriptorLimit() >= 2500, "the descriptor limit is too low for 1000 watchers")
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let location = try running.submitJob("/watched?preset=veryslow", body: Clips.slow)
            _ = try running.follow(location, seconds: 60) { $0["state"] as? String == "running" }
            let threadsBefore = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
            let before = Self.residentBytes()
            var watchers: [TestClient] = []
            for _ in 0..<1000 {
                let watcher = try TestClient(port: running.port, receiveTimeoutSeconds: 60)
                try watcher.send("GET \(location)/events HTTP/1.1\r\nHost: t\r\n\r\n")
                watchers.append(watcher)
            }
            #expect(waitUntil(60) { running.service.jobs.watcherCount == 1000 }, "\(running.service.jobs.watcherCount)")
            let grown = Self.residentBytes() - before
            let threadsAfter = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
            // Under TSan each watcher's buffers carry shadow memory (62 MB in CI); the bound is for real builds.
            if !threadSanitizerIsActive {
                #expect(grown < 20 << 20, "1000 watchers grew the process by \(grown >> 20) MiB")
            }
            // The cooperative pool may add a thread or two under the load; a thread per watcher would add 1000.
            #expect(threadsAfter - threadsBefore < 16, "\(threadsBefore) → \(threadsAfter) threads")
            #expect(try running.request("DELETE", location).status == 204)
            for watcher in watchers.prefix(50) {
                let response = try watcher.readResponse()
                #expect(response.text.contains("\"state\":\"cancelled\""))
            }
            watchers.removeAll()
            #expect(waitUntil(30) { running.service.jobs.watcherCount == 0 })
        }
    }
}
