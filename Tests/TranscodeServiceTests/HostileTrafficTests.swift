import Foundation
import Glibc
import TestSupport
import Testing

/// Hostile clients against the whole service: each is dropped or refused, and afterwards `/about` still answers,
/// nothing stays admitted and no temp file stays open.
@Suite("hostile traffic")
struct HostileTrafficTests {
    /// A service with short timeouts, so that stalling clients are dealt with within the test.
    static func shortTimeouts() throws -> RunningService {
        try RunningService(workers: 1, queue: 4) { config in
            config.headerTimeout = 1
            config.bodyIdleTimeout = 1
        }
    }

    /// The service is back to idle: `/about` answers, nothing admitted, no temp file open.
    static func expectRecovered(_ running: RunningService) throws {
        #expect(try running.wait(seconds: 10) { $0["queued"] as? Int == 0 && $0["running"] as? Int == 0 })
        #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
    }

    @Test("slowloris: a head sent a byte at a time is cut off by the header timeout")
    func slowloris() async throws {
        try await onThread {
            let running = try Self.shortTimeouts()
            defer { running.stop() }
            let client = try TestClient(port: running.port)
            let head = Array("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n".utf8)
            let started = Date()
            var cut = false
            for byte in head {
                guard (try? client.send([byte])) != nil else { cut = true; break }
                usleep(150_000)
                if Date().timeIntervalSince(started) > 4 { break }
            }
            #expect(cut || client.isClosedByPeer(), "the connection outlived the header timeout")
            #expect(Date().timeIntervalSince(started) < 4)
            try Self.expectRecovered(running)
        }
    }

    @Test("a 1 GB chunk size announced and never sent: dropped after the body idle timeout, nothing kept")
    func hugeChunkNeverSent() async throws {
        try await onThread {
            let running = try Self.shortTimeouts()
            defer { running.stop() }
            let client = try TestClient(port: running.port)
            try client.send("POST /chunky HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n")
            try client.send([UInt8](repeating: 0x41, count: 10_000))
            #expect(try running.wait { $0["queued"] as? Int == 1 }, "the upload was admitted")
            #expect(client.isClosedByPeer() || (try? client.readResponse())?.status == 408)
            try Self.expectRecovered(running)
        }
    }

    @Test("a body that stops halfway: dropped after the body idle timeout, nothing kept")
    func bodyStopsHalfway() async throws {
        try await onThread {
            let running = try Self.shortTimeouts()
            defer { running.stop() }
            let clip = Clips.small.bytes  // made before connecting: a first use generates it, past the header timeout
            let client = try TestClient(port: running.port)
            // Head and half body in one send: with a 1 s idle timeout, a test thread descheduled between two sends
            // on a loaded machine would see its second send refused.
            try client.send(Array("POST /half HTTP/1.1\r\nHost: t\r\nContent-Length: \(clip.count)\r\n\r\n".utf8)
                + clip.prefix(clip.count / 2))
            #expect(client.isClosedByPeer() || (try? client.readResponse())?.status == 408)
            try Self.expectRecovered(running)
            #expect(try running.about()["completed"] as? Int == 0)
        }
    }

    @Test("header floods: too many fields or too many bytes are 431 and the connection closes",
          arguments: [(0..<150).map { "X-F\($0): v\r\n" }.joined(), "X-Big: " + String(repeating: "a", count: 40_000) + "\r\n"])
    func headerFlood(fields: String) async throws {
        try await onThread {
            let running = try Self.shortTimeouts()
            defer { running.stop() }
            let client = try TestClient(port: running.port)
            try? client.send("POST /flood HTTP/1.1\r\nHost: t\r\n" + fields + "Content-Length: 5\r\n\r\nhello")
            let response = try client.readResponse()
            #expect(response.status == 431)
            #expect(client.isClosedByPeer())
            try Self.expectRecovered(running)
        }
    }

    @Test("a client that vanishes while its MP4 is being sent: the answer's file is closed")
    func vanishDuringAnswer() async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let body = Clips.medium
            let client = try TestClient(port: running.port, receiveTimeoutSeconds: 60)
            try client.send("POST /vanish?preset=ultrafast&crf=0 HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\r\n")
            try client.send(body)
            // Wait for the answer to start, read a little of it, then reset.
            var byte: UInt8 = 0
            #expect(recv(client.fd, &byte, 1, 0) == 1)
            client.reset()
            try Self.expectRecovered(running)
            #expect(try running.post("/after", body: Clips.small.bytes).status == 200)
        }
    }
}
