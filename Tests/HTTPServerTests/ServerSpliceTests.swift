import Foundation
import Glibc
import HTTPTypes
import TestSupport
import Testing
@testable import HTTPServer

/// `RequestBody.write(to:)`: a Content-Length body goes socket → pipe → file by splice; a chunked one is copied.
extension ServerTests {
    /// A handler that writes a POST's body into a new file at `path` and answers with the count, or records the
    /// error; other requests get their path back.
    static func writingTo(_ path: String, errors: Recorder<String>) -> HTTPHandler {
        { request, body in
            guard request.method == .post else {
                return ServerResponse(status: .ok, body: .bytes(Array((request.path ?? "").utf8)))
            }
            let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            defer { close(fd) }
            do {
                let written = try await body.write(to: fd)
                return ServerResponse(status: .ok, body: .bytes(Array("\(written)".utf8)))
            } catch {
                errors.add("\(error)")
                return ServerResponse(status: .badRequest)
            }
        }
    }

    static func fileBytes(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return bytes }
            bytes += buffer[0..<n]
        }
    }

    static func noise(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SplitMix(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test("a Content-Length body is spliced into the handler's file: the same bytes, and a request after it still parses")
    func spliceContentLength() async throws {
        let scratch = try Scratch()
        let path = scratch.path("body")
        let errors = Recorder<String>()
        let body = Self.noise(5 << 20, seed: 7)
        try await withServer(handler: Self.writingTo(path, errors: errors)) { port, server in
            let before = server.splicedBodyBytes
            try await blocking {
                let client = try TestClient(port: port)
                // Part of the body rides with the head (written from the buffer), the rest comes later (spliced).
                try client.send(Array("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body[0..<1000])
                try client.send(Array(body[1000...]) + Array(Self.get.utf8))
                let response = try client.readResponse()
                #expect(response.status == 200)
                #expect(response.text == "\(body.count)")
                // The pipelined GET behind the body: the parser knows where the spliced body ended.
                let next = try client.readResponse()
                #expect(next.status == 200)
                #expect(next.text == "/about")
            }
            // Compared outside #expect: a failing comparison of two 5 MB arrays would have it diff them, for hours.
            let written = Self.fileBytes(path)
            let same = written == body
            #expect(same, "\(written.count) bytes written, first difference at \(written.indices.first { $0 >= body.count || written[$0] != body[$0] } ?? -1)")
            #expect(server.splicedBodyBytes - before >= Int64(body.count) - (1 << 20), "most of it went by splice")
        }
        #expect(errors.values.isEmpty)
    }

    @Test("a chunked body written to a file is decoded and copied: the same bytes")
    func writeChunked() async throws {
        let scratch = try Scratch()
        let path = scratch.path("body")
        let errors = Recorder<String>()
        let body = Self.noise(300_000, seed: 8)
        try await withServer(handler: Self.writingTo(path, errors: errors)) { port, server in
            let before = server.splicedBodyBytes
            try await blocking {
                let client = try TestClient(port: port)
                var message = Array("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
                for start in stride(from: 0, to: body.count, by: 70_000) {
                    let piece = body[start..<min(start + 70_000, body.count)]
                    message += Array("\(String(piece.count, radix: 16))\r\n".utf8) + piece + Array("\r\n".utf8)
                }
                try client.send(message + Array("0\r\n\r\n".utf8))
                #expect(try client.readResponse().text == "\(body.count)")
            }
            let same = Self.fileBytes(path) == body
            #expect(same)
            #expect(server.splicedBodyBytes == before)
        }
        #expect(errors.values.isEmpty)
    }

    @Test("a client that vanishes mid-splice: the handler hears it, and no descriptor stays open")
    func spliceDisconnect() async throws {
        let scratch = try Scratch()
        let errors = Recorder<String>()
        let baseline = await stableDescriptorCount()
        try await withServer(handler: Self.writingTo(scratch.path("body"), errors: errors)) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
                try client.send(Self.noise(200_000, seed: 9))
                #expect(waitUntil { server.splicedBodyBytes > 0 })
                client.reset()
            }
            // Whichever the handler hears first: its task cancelled, or the body failing.
            #expect(await eventually { ["clientDisconnected", "cancelled"].contains(errors.values.first ?? "") })
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(await eventually { openDescriptorCount() == baseline })
    }

    @Test("the loop answers others while a body's file takes no bytes (a FIFO nobody reads), and the body arrives whole once it does")
    func loopNeverWaitsOnTheFile() async throws {
        let scratch = try Scratch()
        let fifo = scratch.path("fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let errors = Recorder<String>()
        let body = Self.noise(1 << 20, seed: 11)
        let handler: HTTPHandler = { _, requestBody in
            // Read-write, so the open does not wait for a reader and the writes block (a full FIFO) rather than fail.
            let fd = open(fifo, O_RDWR | O_CLOEXEC)
            defer { close(fd) }
            do {
                return ServerResponse(status: .ok, body: .bytes(Array("\(try await requestBody.write(to: fd))".utf8)))
            } catch {
                errors.add("\(error)")
                return ServerResponse(status: .internalServerError)
            }
        }
        let about: FastPath = { $0.path == "/about" ? ServerResponse(status: .ok, body: .bytes(Array("ok".utf8))) : nil }
        try await withServer(fastPath: about, handler: handler) { port, _ in
            try await blocking {
                let upload = try TestClient(port: port, receiveTimeoutSeconds: 30)
                // 200 KiB with the head (written from the read buffer), the rest from the socket (spliced): more than
                // the FIFO's 64 KiB either way.
                let head = Array("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
                try upload.send(head + body[0..<(200 << 10)])
                // The rest from a thread of its own: with the file stuck, the server stops reading (backpressure),
                // and this send blocks until the FIFO is drained below.
                let (socket, rest) = (upload.fd, Array(body[(200 << 10)...]))
                Thread {
                    var sent = 0
                    while sent < rest.count {
                        let n = rest[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        guard n > 0 else { return }
                        sent += n
                    }
                }.start()
                usleep(300_000)  // the FIFO is full and the file side is stuck by now

                let started = ContinuousClock.now
                let other = try TestClient(port: port, receiveTimeoutSeconds: 5)
                try other.send("GET /about HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try other.readResponse().text == "ok")
                #expect(ContinuousClock.now - started < .seconds(2), "the loop was held by the file")
                #expect(!upload.hasIncoming, "the upload was answered before its file took the body")

                // A reader drains the FIFO: the stuck writes complete and the handler hears the whole count.
                // Non-blocking, and each wait bounded, so a server that gave up on the file fails the test, not hangs it.
                let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
                defer { close(reader) }
                var drained: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while drained.count < body.count {
                    var entry = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
                    guard poll(&entry, 1, 5000) > 0 else { break }
                    let n = buffer.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
                    guard n > 0 else { break }
                    drained += buffer[0..<n]
                }
                // A Bool, not the arrays: on failure Swift Testing would diff two 1 MiB arrays for many minutes.
                let same = drained == body
                #expect(same, "\(drained.count) of \(body.count) bytes, or different ones")
                #expect(try upload.readResponse().text == "\(body.count)")
            }
        }
        #expect(errors.values.isEmpty)
    }
}
