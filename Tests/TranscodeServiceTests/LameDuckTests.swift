import Foundation
import Glibc
import TestSupport
import Testing

/// SIGTERM starts with a lame-duck phase: `/about` answers 503 at once, so a load balancer takes the replica out,
/// while everything that still arrives is served; only after `--shutdown-delay` does the drain refuse anything.
@Suite("the real binary: lame duck, then drain")
struct LameDuckTests {
    @Test("for --shutdown-delay after SIGTERM /about says draining and when it stops, yet new connections and uploads are served; then the listener closes and the process exits 0")
    func lameDuck() async throws {
        try await onThread {
            let scratch = try Scratch()
            let clip = Clips.small.bytes
            let (process, port) = try launchService(
                tmpDir: scratch.url.path, arguments: ["--drain-timeout", "20"], shutdownDelay: 8)
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }
            let health = try keptAliveConnection(port: port)
            // Kept by a client that sends nothing more: open through the lame duck (LifecycleTests sees it closed when
            // the drain begins).
            let idle = try keptAliveConnection(port: port)
            let signalled = Date()
            kill(process.processIdentifier, SIGTERM)

            let about = try #require(try waitForDrain(health), "/about never turned 503")
            #expect(Date().timeIntervalSince(signalled) < 1, "the balancer must see it at once")
            let fields = try #require(try JSONSerialization.jsonObject(with: Data(about.body)) as? [String: Any])
            #expect(fields["status"] as? String == "draining")
            #expect(about.header("Connection") == "close", "the balancer's kept connection must go")
            let stopsIn = try #require(fields["stops_in_seconds"] as? Int, "\(fields)")
            #expect((25...28).contains(stopsIn), "lame duck (8 s) + drain (20 s), counted from the signal: \(stopsIn)")

            // Still serving: a new connection takes a whole upload (within the delay), and its answer comes.
            let late = try TestClient(port: port, receiveTimeoutSeconds: 30)
            try late.send("POST /late HTTP/1.1\r\nHost: t\r\nContent-Length: \(clip.count)\r\n\r\n")
            try late.send(clip)
            #expect(Date().timeIntervalSince(signalled) < 8, "the upload was meant to arrive within the delay")
            let answer = try late.readResponse()
            #expect(answer.status == 200, "\(answer.status) \(answer.text)")
            #expect(answer.header("Connection") == "close", "every answer of the lame duck empties keep-alive pools")
            // Only while the delay lasts: on a loaded machine the late upload's transcode can outlast it, and then
            // the drain has rightly closed the idle connection.
            if Date().timeIntervalSince(signalled) < 7.5 {
                #expect(!idle.hasIncoming, "an idle connection was closed before the delay was over")
            }

            // After the delay: no new connection is accepted, and the idle service exits at once.
            #expect(waitUntil(10) { (try? TestClient(port: port)) == nil }, "the listener outlived the delay")
            #expect(Date().timeIntervalSince(signalled) >= 8, "the listener closed before the delay was over")
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            #expect(Date().timeIntervalSince(signalled) < 20, "nothing was left to drain")
        }
    }
}
