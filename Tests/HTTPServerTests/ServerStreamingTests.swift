import Dispatch
import Glibc
import HTTPTypes
import SystemSupport
import TestSupport
import Testing
@testable import HTTPServer

/// Streaming, backpressure, Expect, and the errors and limits the server answers itself.
extension ServerTests {
    @Test("a streamed response goes out chunked")
    func stream() async throws {
        try await withServer(handler: { _, _ in
            let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
            Task {
                for i in 0..<5 { continuation.yield(Array("part\(i);".utf8)) }
                continuation.finish()
            }
            return ServerResponse(status: .ok, body: .stream(stream))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                let response = try client.readResponse()
                #expect(response.header("Transfer-Encoding") == "chunked")
                #expect(response.text == "part0;part1;part2;part3;part4;")
                try client.send(Self.get)
                #expect(try client.readResponse().status == 200)
            }
        }
    }

    @Test("a streamed response is pulled at the socket's pace: a client that stops reading stops the producer")
    func streamBackpressure() async throws {
        let produced = Locked(0)
        try await withServer(handler: { _, _ in
            let stream = AsyncStream<[UInt8]>(unfolding: {
                let n = produced.withLock { $0 += 1; return $0 }
                return n <= 1000 ? [UInt8](repeating: 1, count: 1 << 20) : nil
            })
            return ServerResponse(status: .ok, body: .stream(stream))
        }) { port, _ in
            let client = try TestClient(port: port)
            try client.send(Self.get)
            try await Task.sleep(for: .milliseconds(500))
            // 1000 chunks of 1 MB were on offer; only the socket buffers and the high-water mark were taken.
            let count = produced.withLock { $0 }
            #expect(count > 1 && count < 40, "\(count) chunks produced")
            _ = client
        }
    }

    @Test("a 50 MB chunked upload streams through with bounded memory")
    func largeChunkedUpload() async throws {
        let total = 50 * 1024 * 1024
        let peak = Locked(0)
        let before = residentBytes()
        try await withServer(handler: { _, body in
            var received = 0
            do {
                for try await chunk in body {
                    received += chunk.count
                    if received % (4 << 20) < chunk.count { let now = residentBytes(); peak.withLock { $0 = max($0, now) } }
                }
            } catch {
                return ServerResponse(status: .badRequest)
            }
            return ServerResponse(status: .ok, body: .bytes(Array("\(received)".utf8)))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
                try client.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                let chunk = [UInt8](repeating: 0x61, count: 100_000)
                var sent = 0
                while sent < total {
                    let n = min(chunk.count, total - sent)
                    try client.send(Array(String(n, radix: 16).utf8) + [13, 10] + chunk[..<n] + [13, 10])
                    sent += n
                }
                try client.send("0\r\n\r\n")
                let response = try client.readResponse()
                #expect(response.status == 200)
                #expect(response.text == "\(total)")
            }
        }
        // The body is never held whole: growth stays far below its 50 MB.
        #expect(peak.withLock { $0 } - before < 20 * 1024 * 1024)
    }

    @Test("backpressure: while the handler holds a chunk, the server reads no more and the client's sends stall")
    func uploadBackpressure() async throws {
        let release = AsyncStream<Void>.makeStream()
        try await withServer(handler: { _, body in
            var iterator = body.makeAsyncIterator()
            _ = try? await iterator.next()
            for await _ in release.stream { break }  // hold the first chunk until the test says so
            var total = 0
            while let chunk = try? await iterator.next() { total += chunk.count }
            return ServerResponse(status: .ok, body: .bytes(Array("\(total)".utf8)))
        }) { port, _ in
            let length = 64 << 20
            let accepted = try await blocking { () -> Int in
                let client = try TestClient(port: port)
                var timeout = timeval(tv_sec: 1, tv_usec: 0)
                setsockopt(client.fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \(length)\r\n\r\n")
                let chunk = [UInt8](repeating: 9, count: 1 << 20)
                var sent = 0
                while sent < length {
                    let n = chunk.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { break }  // SO_SNDTIMEO: the server stopped reading
                    sent += n
                }
                return sent
            }
            // Only the socket buffers (a few MB on loopback) and one chunk sit between client and handler.
            #expect(accepted < 24 << 20, "\(accepted) bytes accepted")
            #expect(accepted > 1 << 20, "\(accepted): the connection stayed open and took the first chunk")
            release.continuation.yield()
        }
    }

    @Test("a slow handler does not hold up other connections")
    func slowHandlerDoesNotBlock() async throws {
        try await withServer(handler: { request, _ in
            if request.path == "/slow" { try? await Task.sleep(for: .seconds(3)) }
            return ServerResponse(status: .ok, body: .bytes(Array((request.path ?? "").utf8)))
        }) { port, _ in
            let slow = try TestClient(port: port)
            try slow.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            let started = ContinuousClock.now
            let fast = try await blocking { () -> String in
                let client = try TestClient(port: port)
                try client.send("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
                return try client.readResponse().text
            }
            #expect(fast == "/fast")
            #expect(ContinuousClock.now - started < .seconds(2))
            _ = slow
        }
    }

    @Test("Expect: 100-continue is answered with 100 when the handler pulls the body")
    func expectAccepted() async throws {
        try await withServer(handler: { _, body in
            let bytes = (try? await body.collect(upTo: 1000)) ?? []
            return ServerResponse(status: .ok, body: .bytes(Array("got \(bytes.count)".utf8)))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("PUT /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
                #expect(try client.readInterim() == "HTTP/1.1 100 Continue")
                try client.send("hello")
                #expect(try client.readResponse().text == "got 5")
            }
        }
    }

    @Test("Expect: 100-continue refused by the handler: no 100, the answer, then close")
    func expectRefused() async throws {
        try await withServer(handler: { _, _ in ServerResponse(status: .contentTooLarge) }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("PUT /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n")
                // No body follows the head: a server that asked for it would send a 100 and then wait in vain.
                let response = try client.readResponse()
                #expect(response.status == 413)
                #expect(response.interim.isEmpty, "a 100 Continue went out before the refusal")
                #expect(response.header("Connection") == "close")
                #expect(client.isClosedByPeer())
            }
        }
    }

    @Test("errors the server produces are problem+json and close the connection")
    func problemDocuments() async throws {
        let cases: [(String, Int)] = [
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: t\r\nExpect: nothing\r\nContent-Length: 1\r\n\r\n", 417),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n", 413),
            ("GET /\(String(repeating: "x", count: 9000)) HTTP/1.1\r\nHost: t\r\n\r\n", 414),
            ("GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "y", count: 17000))\r\n\r\n", 431),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n", 400),
        ]
        var configuration = ServerConfiguration()
        configuration.maxBodySize = 1000
        // The handler reads the body, so errors found inside it (a bad chunk) reach the wire too.
        try await withServer(configuration, handler: { _, body in
            _ = try? await body.collect(upTo: 1 << 20)
            return ServerResponse(status: .ok)
        }) { port, _ in
            try await blocking {
                for (request, status) in cases {
                    let client = try TestClient(port: port)
                    try client.send(request)
                    let response = try client.readResponse()
                    #expect(response.status == status)
                    #expect(response.header("Content-Type") == "application/problem+json")
                    #expect(response.text.contains("\"status\":\(status)"))
                    #expect(client.isClosedByPeer())
                }
            }
        }
    }

    @Test("a chunked body growing past maxBodySize gets 413 and the handler's body throws")
    func chunkedTooLarge() async throws {
        var configuration = ServerConfiguration()
        configuration.maxBodySize = 100
        let errors = Recorder<String>()
        try await withServer(configuration, handler: collectingBody(errors)) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n\(String(repeating: "a", count: 80))\r\n50\r\n")
                #expect(try client.readResponse().status == 413)
                #expect(client.isClosedByPeer())
            }
        }
        #expect(await eventually { errors.values == ["tooLarge"] })
    }

    /// A handler that answers once it has the whole body, with what it read; `entered` records each request it
    /// starts, so a test knows a connection is busy (inside a handler) rather than merely accepted.
    static func echoing(_ entered: Recorder<String>) -> HTTPHandler {
        { request, body in
            entered.add(request.path ?? "")
            let bytes = (try? await body.collect(upTo: 1000)) ?? []
            return ServerResponse(status: .ok, body: .bytes(bytes))
        }
    }

    static let halfPost = "POST /busy HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab"

    @Test("more connections than maxConnections, none idle: the excess gets 503 and is closed")
    func connectionLimit() async throws {
        var configuration = ServerConfiguration()
        configuration.maxConnections = 2
        let entered = Recorder<String>()
        try await withServer(configuration, handler: Self.echoing(entered)) { port, server in
            try await blocking {
                // Both are inside a handler, waiting for the rest of their bodies: neither may be closed to make room.
                let a = try TestClient(port: port)
                let b = try TestClient(port: port)
                try a.send(Self.halfPost)
                try b.send(Self.halfPost)
                #expect(waitUntil { entered.values.count == 2 })
                let c = try TestClient(port: port)
                let refused = try c.readResponse()
                #expect(refused.status == 503)
                #expect(refused.header("Content-Type") == "application/problem+json")
                #expect(c.isClosedByPeer())
                try a.send("cd")
                #expect(try a.readResponse().text == "abcd")
                #expect(server.openConnections == 2)
            }
        }
    }

    @Test("at the connection limit the oldest idle connection is closed to admit a new client")
    func idleConnectionsMakeRoom() async throws {
        var configuration = ServerConfiguration()
        configuration.maxConnections = 3
        let entered = Recorder<String>()
        try await withServer(configuration, handler: Self.echoing(entered)) { port, server in
            try await blocking {
                let served = try TestClient(port: port)  // between keep-alive requests: the oldest idle connection
                try served.send(Self.get)
                #expect(try served.readResponse().status == 200)
                let silent = try TestClient(port: port)  // accepted, never a byte: idle too
                let busy = try TestClient(port: port)  // inside a handler: never taken
                try busy.send(Self.halfPost)
                #expect(waitUntil { entered.values.count == 2 && server.openConnections == 3 })

                let newcomer = try TestClient(port: port)
                try newcomer.send(Self.get)
                #expect(try newcomer.readResponse().status == 200)
                #expect(served.isClosedByPeer())

                let second = try TestClient(port: port)
                try second.send(Self.get)
                #expect(try second.readResponse().status == 200)
                #expect(silent.isClosedByPeer())

                try busy.send("cd")
                #expect(try busy.readResponse().text == "abcd")
                #expect(server.openConnections == 3)
            }
        }
    }

    static func shortTimeouts() -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.headerTimeout = .milliseconds(300)
        configuration.bodyIdleTimeout = .milliseconds(300)
        configuration.keepAliveTimeout = .milliseconds(300)
        configuration.writeTimeout = .milliseconds(300)
        return configuration
    }
}
