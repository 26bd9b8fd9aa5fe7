import Foundation
import Glibc
import TestSupport
import Testing

/// `ffmpeg-processor serve` as an operator starts it: the built binary, its flags and environment variables.
@Suite("serve's options: --host takes names and IPv6, sizes and durations take units", .serialized)
struct ServeOptionsTests {
    /// The binary, started with `arguments` and `environment` on an ephemeral port; its stderr so far and the port
    /// from "listening on HOST:PORT", or nil with the log if it exited first.
    /// Its `--tmp-dir` is a folder that `stop` removes (a `Scratch` here would be gone as soon as this returns).
    static func start(_ arguments: [String], environment: [String: String] = [:]) throws -> (Process, port: Int?, log: String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fp-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try builtExecutable("ffmpeg-processor"))
        process.arguments = ["serve", "--port", "0", "--workers", "1", "--isolation", "thread", "--tmp-dir",
                             folder.path, "--shutdown-delay", "0"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var log = ""
        while true {
            let data = errors.fileHandleForReading.availableData
            if data.isEmpty { process.waitUntilExit(); return (process, nil, log) }
            log += String(decoding: data, as: UTF8.self)
            if let range = log.range(of: "listening on "), let line = log[range.upperBound...].split(separator: "\n").first,
                let colon = line.range(of: " with")?.lowerBound,
                let port = Int(line[..<colon].split(separator: ":").last ?? "")
            {
                // The rest of the log is read and dropped: a pipe nobody reads fills at 64 KiB (a line per
                // request), and the service's next log line would then block its event loop.
                let reader = errors.fileHandleForReading
                Thread { while !reader.availableData.isEmpty {} }.start()
                return (process, port, log)
            }
        }
    }

    /// SIGTERM, and the drain's end; SIGKILL if it has not ended in 30 s. These tests are about the options, and
    /// once (CI, 2026-12-07, `--host ::`) a drain here never ended until a second signal: a wait without a bound
    /// would hold the whole run. LifecycleTests and LameDuckTests are where the drain itself is tested.
    static func stop(_ process: Process) {
        if process.isRunning { process.terminate() }
        if !waitUntil(30, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        if let arguments = process.arguments, let flag = arguments.firstIndex(of: "--tmp-dir"), flag + 1 < arguments.count {
            try? FileManager.default.removeItem(atPath: arguments[flag + 1])
        }
    }

    @Test("--host (or HOST) takes a name or an IPv6 literal, and a client reaches the service at that address",
          arguments: [
            (["--host", "localhost"], [:], "127.0.0.1"),
            (["--host", "::1"], [:], "::1"),
            (["--host", "[::1]"], [:], "::1"),
            ([], ["HOST": "::1"], "::1"),
            (["--host", "::"], [:], "::1"),
            (["--host", "::"], [:], "127.0.0.1"),
          ] as [([String], [String: String], String)])
    func host(arguments: [String], environment: [String: String], client: String) throws {
        let (process, port, log) = try Self.start(arguments, environment: environment)
        defer { Self.stop(process) }
        let bound = try #require(port, "the service did not start: \(log)")
        let connection = try TestClient(port: bound, host: client)
        try connection.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(try connection.readResponse().status == 200)
    }

    @Test("a drain that never ends still ends the process: exit 70 once --drain-timeout and 10 s have passed")
    func stalledDrain() throws {
        let (process, port, log) = try Self.start(
            ["--drain-timeout", "1s"], environment: ["FFMPEG_PROCESSOR_DEBUG_STALL_DRAIN": "1"])
        defer { Self.stop(process) }
        try #require(port != nil, "the service did not start: \(log)")
        let signalled = ContinuousClock.now
        process.terminate()
        // 11 s is the bound; the margin is for a loaded machine, the lower bound shows the timer, not the drain, ended it.
        try #require(waitUntil(60) { !process.isRunning }, "still running 60 s after SIGTERM")
        #expect(ContinuousClock.now - signalled >= .seconds(10))
        #expect(process.terminationStatus == 70)
    }

    @Test("a host that is neither an address nor a name that resolves stops the start with the reason")
    func unknownHost() throws {
        let (process, port, log) = try Self.start(["--host", "no-such-host.invalid"])
        defer { Self.stop(process) }
        try #require(port == nil, "the service started: \(log)")
        #expect(process.terminationStatus != 0)
        #expect(log.contains("no-such-host.invalid"), "\(log)")
    }

    @Test("sizes and durations take units, from flags and from environment variables alike")
    func units() throws {
        let (process, port, log) = try Self.start(
            ["--host", "127.0.0.1", "--max-body", "1KiB", "--job-timeout", "10m", "--job-memory", "512MiB"],
            environment: ["QUEUE_BYTES": "4G", "DRAIN_TIMEOUT": "90s", "MIN_BODY_RATE": "2KiB", "HEADER_TIMEOUT": "1m"])
        defer { Self.stop(process) }
        let bound = try #require(port, "the service did not start: \(log)")
        for setting in ["max-body=1024 ", "queue-bytes=4294967296 ", "job-timeout=600.0s", "drain-timeout=90.0s",
                        "min-body-rate=2048B/s", "header-timeout=60.0s"] {
            #expect(log.contains(setting), "\(setting) in \(log)")
        }
        // 1KiB is the body limit in force, not a number that was merely logged.
        let client = try TestClient(port: bound)
        try client.send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\nExpect: 100-continue\r\n\r\n")
        #expect(try client.readResponse().status == 413)
    }

    @Test("a size or a duration that does not parse is refused, naming the flag or the variable",
          arguments: [
            (["--max-body", "1XB"], [:], "--max-body 1XB is not a size"),
            ([], ["JOB_MEMORY": "lots"], "JOB_MEMORY lots is not a size"),
            (["--job-timeout", "5d"], [:], "--job-timeout 5d is not a duration"),
            ([], ["DRAIN_TIMEOUT": "-1s"], "DRAIN_TIMEOUT -1s is not a duration"),
          ] as [([String], [String: String], String)])
    func refused(arguments: [String], environment: [String: String], reason: String) throws {
        let (process, port, log) = try Self.start(["--host", "127.0.0.1"] + arguments, environment: environment)
        defer { Self.stop(process) }
        try #require(port == nil, "the service started: \(log)")
        #expect(process.terminationStatus != 0)
        #expect(log.contains(reason), "\(log)")
    }
}
