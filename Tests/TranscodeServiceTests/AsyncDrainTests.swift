import Foundation
import Glibc
import TestSupport
import Testing

/// A rolling restart as the async jobs see it: the real binary, its one worker busy with a job submitted with
/// `Prefer: respond-async` and followed over Server-Sent Events on a connection opened before SIGTERM (once the drain
/// begins the listener is closed, so a watcher that is not connected by then cannot be).
@Suite("the real binary: a draining replica and its async jobs")
struct AsyncDrainTests {
    /// Submits `body` with `Prefer: respond-async` to the service on `port`: the job's path, from its Location.
    static func submitJob(port: Int, _ target: String, body: [UInt8]) throws -> String {
        let response = try post(port: port, target, body: body, extraHeaders: "Prefer: respond-async\r\n")
        guard response.status == 202, let location = response.header("Location") else {
            throw AsyncTestError("expected 202 with Location, got \(response.status): \(response.text)")
        }
        return location
    }

    /// A watcher of the job's events, read up to its first progress event: the job is running, and encoding.
    static func watchUntilEncoding(port: Int, _ location: String) throws -> (TestClient, EventStreamParser) {
        let watcher = try TestClient(port: port, receiveTimeoutSeconds: 120)
        try watcher.send("GET \(location)/events HTTP/1.1\r\nHost: t\r\n\r\n")
        let head = try watcher.readHead()
        guard head.status == 200 else { throw AsyncTestError("events: \(head.status)") }
        var parser = EventStreamParser()
        while !parser.events.contains(where: { $0.type == "progress" }) {
            guard let chunk = try watcher.readChunk() else { break }
            parser.feed(String(decoding: chunk, as: UTF8.self))
        }
        return (watcher, parser)
    }

    /// The JSON of an event's data.
    static func document(_ event: EventStreamParser.Event?) -> [String: Any] {
        guard let event else { return [:] }
        return (try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any]) ?? [:]
    }

    @Test("SIGTERM during an async job: the replica finishes it in the drain (its watcher sees succeeded), then exits 0")
    func runningJobFinishes() async throws {
        try await onThread {
            let scratch = try Scratch()
            let delay = 0.5
            let (process, port) = try launchService(
                tmpDir: scratch.url.path, arguments: ["--drain-timeout", "300"], shutdownDelay: delay)
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }
            // Seconds of encoding after the signal (about 6 s in all alone here, minutes under make test's load), so
            // that the job ends in the drain proper.
            let location = try Self.submitJob(port: port, "/drained?preset=slow", body: Clips.slow)
            let (watcher, encoding) = try Self.watchUntilEncoding(port: port, location)
            var parser = encoding
            let health = try keptAliveConnection(port: port)
            let signalled = Date()
            kill(process.processIdentifier, SIGTERM)
            let draining = try waitForDrain(health)
            #expect(draining?.text.contains("\"running\":1") == true, "the job runs on into the shutdown")

            while let chunk = try watcher.readChunk() { parser.feed(String(decoding: chunk, as: UTF8.self)) }
            let final = Self.document(parser.events.last)
            #expect(final["state"] as? String == "succeeded" && final["progress"] as? Double == 1, "\(final)")
            let finished = jobTime(final["finished"])
            let intoDrain = finished.map { $0.timeIntervalSince(signalled) - delay } ?? -1
            #expect(intoDrain > 0, "the job ended \(intoDrain) s after the drain began: it never ran in the drain")
            process.waitUntilExit()
            #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        }
    }

    @Test("a job still running at --drain-timeout is cut off: its stream ends without a final state, and the exit is 0")
    func drainTimeoutCutsItOff() async throws {
        try await onThread {
            let scratch = try Scratch()
            let (process, port) = try launchService(tmpDir: scratch.url.path, arguments: ["--drain-timeout", "1"])
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }
            let location = try Self.submitJob(port: port, "/cut?preset=veryslow", body: Clips.slow)
            let (watcher, encoding) = try Self.watchUntilEncoding(port: port, location)
            var parser = encoding
            let signalled = Date()
            kill(process.processIdentifier, SIGTERM)
            var ended = false
            do {
                while let chunk = try watcher.readChunk() { parser.feed(String(decoding: chunk, as: UTF8.self)) }
                ended = true
            } catch {}
            #expect(!ended, "the stream ended as if the job had: \(parser.events.last.map { "\($0)" } ?? "")")
            #expect(!["succeeded", "failed", "cancelled"].contains(Self.document(parser.events.last)["state"] as? String ?? ""))
            process.waitUntilExit()
            // The drain's second, then at most its short wait for the last connections (3 s), and the exit itself.
            let took = Date().timeIntervalSince(signalled)
            #expect(took < 30, "exited \(took) s after SIGTERM with --drain-timeout 1")
            #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        }
    }
}
