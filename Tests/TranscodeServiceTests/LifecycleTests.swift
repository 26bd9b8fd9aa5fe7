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
            let (process, port) = try launchService(tmpDir: scratch.url.path)
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }

            let body = Clips.medium  // before connecting: its first use generates it, which can outlast the header timeout
            let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
            try client.send("POST /draining?preset=slow HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\r\n")
            try client.send(body)
            // Wait until the job runs, then ask the service to stop.
            var running = false
            for _ in 0..<200 where !running {
                let probe = try TestClient(port: port)
                try probe.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
                running = try probe.readResponse().text.contains("\"running\":1")
                if !running { usleep(20_000) }
            }
            #expect(running)
            // A load balancer's health check on a connection it keeps: it must see the drain.
            let health = try TestClient(port: port)
            try health.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try health.readResponse().text.contains("\"status\":\"ok\""))
            kill(process.processIdentifier, SIGTERM)
            var draining: TestClient.Response?
            for _ in 0..<100 {
                try health.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
                let about = try health.readResponse()
                if about.status == 503 { draining = about; break }
                usleep(20_000)
            }
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

    @Test("kill -9 with uploads, queued and running jobs in flight: no file is left behind")
    func killNine() async throws {
        try await onThread {
            let scratch = try Scratch()
            let (process, port) = try launchService(tmpDir: scratch.url.path)
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }
            // One job running, one queued, one half uploaded.
            let clip = Clips.slow  // before connecting: its first use generates it, which can outlast the header timeout
            var clients: [TestClient] = []
            for id in ["a", "b"] {
                let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
                try client.send("POST /\(id)?preset=veryslow HTTP/1.1\r\nHost: t\r\nContent-Length: \(clip.count)\r\n\r\n")
                try client.send(clip)
                clients.append(client)
            }
            let partial = try TestClient(port: port)
            try partial.send("POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: \(clip.count)\r\n\r\n")
            try partial.send(Array(clip.prefix(100_000)))
            var busy = false
            for _ in 0..<500 where !busy {
                let probe = try TestClient(port: port)
                try probe.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
                let about = try probe.readResponse().text
                busy = about.contains("\"running\":1") && about.contains("\"queued\":2")
                if !busy { usleep(20_000) }
            }
            #expect(busy, "one job running, one queued and one uploading before the kill")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            // Anonymous temp files have no name to leave behind: the folder is as empty as before the service.
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty)
        }
    }
}

/// Starts the built binary on an ephemeral port with one worker; the port is read from its start-up log line
/// ("listening on 127.0.0.1:PORT"), 0 if it exited first.
func launchService(tmpDir: String, arguments: [String] = []) throws -> (Process, Int) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try builtExecutable("ffmpeg-processor"))
    process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--tmp-dir", tmpDir] + arguments
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
