import Foundation
import Glibc
import TestSupport
import Testing

@Suite("the real binary: serve, drain on SIGTERM, exit 0")
struct LifecycleTests {
    @Test("SIGTERM lets the in-flight job finish, then the process exits 0 with no temp file left")
    func drainOnSigterm() async throws {
        try await onThread {
            let scratch = try Scratch()
            let (process, port) = try launchService(tmpDir: scratch.url.path, shutdownDelay: 5)
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }

            let body = Clips.medium  // before connecting: its first use generates it, which can outlast the header timeout
            let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
            try client.send("POST /draining?preset=slow HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\r\n")
            try client.send(body)
            // Wait until the job runs, then ask the service to stop.
            #expect(try waitForAbout(port: port) { $0.contains("\"running\":1") })
            // A load balancer's health check on a connection it keeps: it must see the drain.
            let health = try keptAliveConnection(port: port)
            kill(process.processIdentifier, SIGTERM)
            let draining = try waitForDrain(health)
            #expect(draining?.text.contains("\"status\":\"draining\"") == true)
            #expect(draining?.header("Cache-Control") == "no-store")

            let response = try client.readResponse()
            #expect(response.status == 200, "\(response.text)")
            #expect(response.header("Content-Type") == "video/mp4")
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            #expect(process.terminationReason == .exit)
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty)
        }
    }

    @Test("when the drain begins an idle keep-alive connection is closed, and a request already on its way gets 503 (not processed) with Connection: close, its body unread")
    func postDuringDrain() async throws {
        try await onThread {
            let scratch = try Scratch()
            let (process, port) = try launchService(tmpDir: scratch.url.path, arguments: ["--drain-timeout", "60"])
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }
            // A running job keeps the drain going (and the process alive) while the late request comes in.
            let job = try startSlowUpload(port: port)
            #expect(try waitForAbout(port: port) { $0.contains("\"running\":1") })
            let idle = try keptAliveConnection(port: port)
            // Inside its request when the drain begins: not idle, so it stays open to be answered.
            let late = try TestClient(port: port)
            try late.send("POST /late HTTP/1.1\r\nHost: t\r\n")
            kill(process.processIdentifier, SIGTERM)
            // No --shutdown-delay: the drain begins at once. The keep-alive timeout (60 s) is beyond the receive
            // timeout (30 s), so only the drain can have closed it, and a running process shows it was not the exit.
            #expect(idle.isClosedByPeer(), "the idle keep-alive connection outlived the start of the drain")
            #expect(process.isRunning)

            try late.send("Content-Length: \(Clips.small.bytes.count)\r\nExpect: 100-continue\r\n\r\n")
            let response = try late.readResponse()
            #expect(response.status == 503, "\(response.text)")
            #expect(response.text.contains("not processed"), "\(response.text)")
            #expect(response.interim.isEmpty, "a 100 Continue asked for the body of a request refused by the drain")
            #expect(Int(response.header("Retry-After") ?? "") ?? 0 >= 1)
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(response.header("Connection") == "close")
            #expect(late.isClosedByPeer(), "the answer ends the connection")

            // The client of the running job gives up: its job is cancelled and the drain ends at once.
            job.reset()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
    }

    @Test("a second signal during the drain exits at once with status 130 while a job still runs",
          arguments: [SIGTERM, SIGINT])
    func secondSignal(second: Int32) async throws {
        try await onThread {
            let scratch = try Scratch()
            // A drain timeout far beyond the test's patience: only the second signal can end the process in time.
            let (process, port) = try launchService(
                tmpDir: scratch.url.path, arguments: ["--drain-timeout", "600"], shutdownDelay: 5)
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }
            let job = try startSlowUpload(port: port)
            #expect(try waitForAbout(port: port) { $0.contains("\"running\":1") })
            let health = try keptAliveConnection(port: port)
            kill(process.processIdentifier, SIGTERM)
            let draining = try waitForDrain(health)
            #expect(draining?.text.contains("\"running\":1") == true, "the job runs on into the drain")

            kill(process.processIdentifier, second)
            #expect(waitUntil(10) { !process.isRunning }, "still running 10 s after the second signal")
            guard !process.isRunning else { return }
            #expect(process.terminationReason == .exit)
            #expect(process.terminationStatus == 130)
            // The job never finished: its connection ends without an answer.
            #expect((try? job.readResponse()) == nil)
        }
    }
}

/// Uploads the slow clip for a veryslow transcode, which keeps the binary's one worker busy for many seconds.
func startSlowUpload(port: Int) throws -> TestClient {
    let clip = Clips.slow  // before connecting: its first use generates it, which can outlast the header timeout
    let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
    try client.send("POST /slow?preset=veryslow HTTP/1.1\r\nHost: t\r\nContent-Length: \(clip.count)\r\n\r\n")
    try client.send(clip)
    return client
}

/// Starts the built binary on an ephemeral port with one worker; the port is read from its start-up log line
/// ("listening on 127.0.0.1:PORT"), 0 if it exited first. `wrapper` is a command line that ends by exec'ing the
/// service's own (so the process is the service), such as `unshare` giving it a mount namespace.
/// `shutdownDelay` is 0 unless a test is about the lame-duck phase itself, or watches /about turn 503 on a kept
/// connection (`waitForDrain`).
func launchService(
    tmpDir: String, arguments: [String] = [], wrapper: [String] = [], shutdownDelay: Double = 0
) throws -> (Process, Int) {
    let process = Process()
    let command = wrapper + [try builtExecutable("ffmpeg-processor")]
        + ["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--tmp-dir", tmpDir,
           "--shutdown-delay", "\(shutdownDelay)"] + arguments
    process.executableURL = URL(fileURLWithPath: command[0])
    process.arguments = Array(command.dropFirst())
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    var log = ""
    while true {
        let data = errors.fileHandleForReading.availableData
        if data.isEmpty {
            Issue.record("the service exited before listening: \(log)")
            return (process, 0)
        }
        log += String(decoding: data, as: UTF8.self)
        if let range = log.range(of: "listening on 127.0.0.1:"),
            let port = Int(log[range.upperBound...].prefix { $0.isNumber }), log[range.upperBound...].contains(" ")
        {
            return (process, port)
        }
    }
}

/// Polls `/about` on fresh connections until its body satisfies `condition` (up to `seconds`).
func waitForAbout(port: Int, seconds: Double = 30, _ condition: (String) -> Bool) throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        let probe = try TestClient(port: port)
        try probe.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
        if condition(try probe.readResponse().text) { return true }
        usleep(20_000)
    }
    return false
}

/// A connection that has been answered once and is kept alive: during the drain the listener is closed, so only a
/// connection opened before the signal can still ask anything.
func keptAliveConnection(port: Int) throws -> TestClient {
    let client = try TestClient(port: port)
    try client.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
    #expect(try client.readResponse().text.contains("\"status\":\"ok\""))
    return client
}

/// Asks `/about` on `connection` until it answers 503 (draining), up to 10 s; that answer, or nil. Only during a
/// lame duck (`shutdownDelay` > 0): when the drain begins, the service closes a kept connection that is idle.
func waitForDrain(_ connection: TestClient) throws -> TestClient.Response? {
    let deadline = Date().addingTimeInterval(10)
    while Date() < deadline {
        try connection.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
        let about = try connection.readResponse()
        if about.status == 503 { return about }
        usleep(20_000)
    }
    return nil
}
