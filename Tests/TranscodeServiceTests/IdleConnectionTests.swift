import Foundation
import Glibc
import HTTPServer
import SystemSupport
import TestSupport
import Testing

/// Ten thousand idle connections against the real binary (its own process, so that its descriptors and ours are
/// counted against separate limits): the service keeps answering, and gives every descriptor back afterwards.
@Suite("idle connections")
struct IdleConnectionTests {
    static let idle = 10_000

    /// Our own sockets need the headroom; the service lifts its limit itself.
    static var descriptorsAvailable: Bool { raiseDescriptorLimit() >= idle + 512 }

    @Test(
        "10,000 idle connections at the default limit: /about and an upload are still served, descriptors come back",
        .enabled(if: descriptorsAvailable, "needs a descriptor limit above 10,500"))
    func tenThousandIdle() async throws {
        try await onThread {
            let scratch = try Scratch()
            // A long header timeout, so that the idle connections are all still there when the limit is reached.
            let (process, port) = try launchService(tmpDir: scratch.url.path, arguments: ["--header-timeout", "120"])
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }
            let pid = process.processIdentifier
            // Once start-up is over (Dispatch opens its signalfds and timerfd lazily) and the probe's connection is
            // gone: the listener, the loop's epoll and eventfd, Dispatch's own, the log pipe.
            do {
                let about = try TestClient(port: port)
                try about.send("GET /about HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                #expect(try about.readResponse().status == 200)
            }
            // The worker's template and the child forked ahead each hold a socket of the service's: counted once
            // they are there, since after the upload the next child is there again.
            #expect(try waitForAbout(port: port) { $0.contains("\"workers_ready\":1") })
            let baseline = stableDescriptorCount(of: pid)

            // Connected, and never a byte sent.
            var idle: [TestClient] = []
            // In batches well under the listen backlog: a connection the kernel could not queue is retried only
            // after seconds of SYN-ACK back-off, which would make the count below a matter of luck.
            while idle.count < Self.idle {
                for _ in 0..<500 { idle.append(try TestClient(port: port)) }
                let opened = idle.count
                _ = waitUntil(10) { openDescriptorCount(pid: pid) >= baseline + opened }
            }
            // Every one of them accepted: the service is at its limit of 10,000 connections.
            #expect(
                waitUntil(30) { openDescriptorCount(pid: pid) >= baseline + Self.idle },
                "service descriptors: \(openDescriptorCount(pid: pid)), baseline \(baseline)")

            let started = Date()
            let probe = try TestClient(port: port)
            try probe.send("GET /about HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            let answer = try probe.readResponse()
            #expect(answer.status == 200, "\(answer.text)")
            #expect(Date().timeIntervalSince(started) < 2)

            let transcoded = try post(
                port: port, "/among-idle", body: Clips.small.bytes, extraHeaders: "Connection: close\r\n")
            #expect(transcoded.status == 200, "\(transcoded.text)")
            #expect(transcoded.header("Content-Type") == "video/mp4")

            idle = []
            #expect(
                waitUntil(30) { openDescriptorCount(pid: pid) == baseline },
                "service descriptors: \(describeDescriptors(pid: pid)), baseline \(baseline)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty)
        }
    }
}

/// The count once it has not changed for half a second.
private func stableDescriptorCount(of pid: Int32) -> Int {
    var last = openDescriptorCount(pid: pid)
    var unchangedSince = ContinuousClock.now
    while ContinuousClock.now - unchangedSince < .milliseconds(500) {
        usleep(50_000)
        let now = openDescriptorCount(pid: pid)
        if now != last { last = now; unchangedSince = ContinuousClock.now }
    }
    return last
}
