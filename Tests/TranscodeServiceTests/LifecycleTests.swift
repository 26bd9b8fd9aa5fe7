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
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try builtExecutable("ffmpeg-processor"))
            process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--tmp-dir", scratch.url.path]
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate() } }

            // The bound port is in the start-up log line: "listening on 127.0.0.1:PORT".
            var log = ""
            var port = 0
            while port == 0 {
                let data = errors.fileHandleForReading.availableData
                #expect(!data.isEmpty, "the service exited before listening: \(log)")
                if data.isEmpty { return }
                log += String(decoding: data, as: UTF8.self)
                if let range = log.range(of: "listening on 127.0.0.1:") {
                    port = Int(log[range.upperBound...].prefix { $0.isNumber }) ?? 0
                }
            }

            let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
            let body = Clips.medium
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
            kill(process.processIdentifier, SIGTERM)

            let response = try client.readResponse()
            #expect(response.status == 200, "\(response.text)")
            #expect(response.header("Content-Type") == "video/mp4")
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            #expect(process.terminationReason == .exit)
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty)
        }
    }
}
