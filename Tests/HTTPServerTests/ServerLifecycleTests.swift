import Dispatch
import Glibc
import HTTPTypes
import TestSupport
import Testing
@testable import HTTPServer

/// Timeouts, clients that go away, many connections, and the server's own lifecycle.
extension ServerTests {
    @Test("header timeout: a slow request head gets 408 and the connection closes")
    func headerTimeout() async throws {
        try await withServer(Self.shortTimeouts()) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("GET / HTTP/1.1\r\nHost: t\r\n")
                let response = try client.readResponse()
                #expect(response.status == 408)
                #expect(client.isClosedByPeer())
            }
            #expect(await eventually { server.openConnections == 0 })
        }
    }

    @Test("keep-alive timeout: an idle connection is closed after its response")
    func keepAliveTimeout() async throws {
        try await withServer(Self.shortTimeouts()) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                #expect(try client.readResponse().status == 200)
                #expect(client.isClosedByPeer())
            }
            #expect(await eventually { server.openConnections == 0 })
        }
    }

    @Test("keep-alive timeout counts from the last response, not from the first")
    func keepAliveRefreshed() async throws {
        try await withServer(Self.shortTimeouts()) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                for _ in 0..<8 {
                    try client.send(Self.get)
                    #expect(try client.readResponse().status == 200)
                    usleep(100_000)
                }
            }
        }
    }

    @Test("body idle timeout: the handler's body throws, the client gets 408, the connection closes")
    func bodyTimeout() async throws {
        let errors = Recorder<String>()
        try await withServer(Self.shortTimeouts(), handler: collectingBody(errors, limit: 1000)) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
                #expect(try client.readResponse().status == 408)
                #expect(client.isClosedByPeer())
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(await eventually { errors.values == ["timeout"] })
    }

    static func minimumRate() -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.minBodyRate = 1000
        configuration.bodyRateGrace = .milliseconds(300)
        configuration.bodyIdleTimeout = .seconds(10)
        return configuration
    }

    /// Sends `total` body bytes, `piece` at a time every `interval` microseconds, stopping early once the server
    /// answers or closes.
    static func trickle(_ client: TestClient, total: Int, piece: Int, interval: UInt32) {
        var sent = 0
        while sent < total, !client.hasIncoming,
            (try? client.send([UInt8](repeating: 0x61, count: min(piece, total - sent)))) != nil
        {
            sent += piece
            usleep(interval)
        }
    }

    @Test("a body trickled under minBodyRate gets 408 once the grace is over, long before the idle timeout")
    func bodyTooSlow() async throws {
        let errors = Recorder<String>()
        try await withServer(Self.minimumRate(), handler: collectingBody(errors)) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
                let started = ContinuousClock.now
                // 200 bytes/s: every piece resets the idle timer, so only the rate can stop it.
                Self.trickle(client, total: 100_000, piece: 10, interval: 50_000)
                let response = try client.readResponse()
                #expect(response.status == 408)
                #expect(response.text.contains("slower than 1000 bytes/s"), "\(response.text)")
                #expect(ContinuousClock.now - started < .seconds(3))
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(await eventually { errors.values == ["timeout"] })
    }

    @Test("a body at a steady pace above minBodyRate is read whole, however long it takes")
    func bodySlowButSteady() async throws {
        let received = Recorder<Int>()
        try await withServer(Self.minimumRate(), handler: { _, body in
            received.add((try? await body.collect(upTo: 1 << 20))?.count ?? -1)
            return ServerResponse(status: .ok)
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3000\r\n\r\n")
                Self.trickle(client, total: 3000, piece: 100, interval: 50_000)  // 2000 bytes/s for 1.5 s
                #expect(try client.readResponse().status == 200)
            }
        }
        #expect(received.values == [3000])
    }

    @Test("time the handler takes before asking for the body does not count against minBodyRate")
    func slowHandlerIsNotASlowBody() async throws {
        let received = Recorder<Int>()
        try await withServer(Self.minimumRate(), handler: { _, body in
            try? await Task.sleep(for: .seconds(1))
            received.add((try? await body.collect(upTo: 1 << 20))?.count ?? -1)
            return ServerResponse(status: .ok)
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
                try client.send([UInt8](repeating: 0x61, count: 5000))
                #expect(try client.readResponse().status == 200)
            }
        }
        #expect(received.values == [5000])
    }

    @Test("write timeout: a client that never reads a large response is disconnected")
    func writeTimeout() async throws {
        let big = [UInt8](repeating: 0x62, count: 64 << 20)
        try await withServer(Self.shortTimeouts(), handler: { _, _ in ServerResponse(status: .ok, body: .bytes(big)) }) {
            port, server in
            let client = try TestClient(port: port)
            try client.send(Self.get)
            #expect(await eventually { server.openConnections == 1 })
            #expect(await eventually { server.openConnections == 0 })
            _ = client
        }
    }

    @Test("a client closing mid-body: the handler's body throws, nothing leaks")
    func clientGoneMidBody() async throws {
        let errors = Recorder<String>()
        let started = Recorder<Bool>()
        let baseline = await stableDescriptorCount()
        try await withServer(handler: collectingBody(errors, started: started)) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
                try client.send([UInt8](repeating: 1, count: 5000))
            }
            #expect(await eventually { started.values.count == 1 })
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(await eventually { errors.values.count == 1 })
        #expect(["clientDisconnected", "cancelled"].contains(errors.values.first ?? ""))
        #expect(openDescriptorCount() == baseline, "\(describeDescriptors())")
    }

    @Test("a peer that goes away while its handler runs cancels the handler's task")
    func cancellation() async throws {
        let cancelled = Recorder<Bool>()
        let started = Recorder<Bool>()
        try await withServer(handler: { _, _ in
            started.add(true)
            try? await Task.sleep(for: .seconds(30))
            cancelled.add(Task.isCancelled)
            return ServerResponse(status: .ok)
        }) { port, server in
            do {
                let client = try TestClient(port: port)
                try client.send(Self.get)
                #expect(await eventually { started.values.count == 1 })
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(await eventually { cancelled.values == [true] })
    }

    @Test("1000 concurrent connections are all served, and descriptors return to baseline")
    func thousandConnections() async throws {
        let baseline = await stableDescriptorCount()
        try await withServer(fastPath: { _ in ServerResponse(status: .ok, body: .bytes(Array("ok".utf8))) }) {
            port, server in
            try await blocking {
                var clients: [TestClient] = []
                for _ in 0..<1000 { clients.append(try TestClient(port: port)) }
                for client in clients { try client.send(Self.get) }
                var served = 0
                for client in clients where try client.readResponse().text == "ok" { served += 1 }
                #expect(served == 1000)
                #expect(server.openConnections == 1000)
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(openDescriptorCount() == baseline)
    }

    @Test("the async handler also serves 1000 concurrent connections")
    func thousandHandlerConnections() async throws {
        try await expectEachConnectionServed(1000)
    }

    @Test("stopAccepting closes the listener but lets open connections finish")
    func stopAccepting() async throws {
        try await withServer { port, server in
            let client = try TestClient(port: port)
            try client.send(Self.get)
            _ = try client.readResponse()
            server.stopAccepting()
            try await Task.sleep(for: .milliseconds(100))
            #expect(throws: TestClient.Failure.connect(.connectionRefused)) { _ = try TestClient(port: port) }
            try client.send(Self.get)
            #expect(try client.readResponse().status == 200)
        }
    }

    @Test("a server dropped without shutdown stops its loops and releases its descriptors")
    func deinitStops() async throws {
        let baseline = await stableDescriptorCount()
        do {
            let server = Server(configuration: .init(eventLoopThreads: 2), handler: { _, _ in ServerResponse(status: .ok) })
            let port = try server.start()
            let client = try TestClient(port: port)
            try client.send(Self.get)
            #expect(try client.readResponse().status == 200)
        }
        #expect(await eventually { openDescriptorCount() == baseline })
    }

    @Test("shutdown is idempotent and the server's own descriptors are released")
    func shutdownReleases() async throws {
        let baseline = await stableDescriptorCount()
        let server = Server(configuration: .init(eventLoopThreads: 2), handler: { _, _ in ServerResponse(status: .ok) })
        let port = try server.start()
        let client = try TestClient(port: port)
        try client.send(Self.get)
        #expect(try client.readResponse().status == 200)
        server.shutdown()
        server.shutdown()
        #expect(client.isClosedByPeer())
        #expect(openDescriptorCount() == baseline + 1)
    }

    @Test("out of descriptors (EMFILE): the listener backs off without spinning, then serves again")
    func descriptorExhaustion() async throws {
        _ = await stableDescriptorCount()
        try await withServer { port, server in
            // Client sockets are made first: once the limit is lowered only the server's accept needs one.
            let sockets = (0..<5).map { _ in socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
            defer { for fd in sockets { close(fd) } }
            var original = rlimit()
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &original)
            var lowered = original
            lowered.rlim_cur = rlim_t(openDescriptorCount() + 1)  // opendir in the count needs one
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lowered)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            for fd in sockets {
                let rc = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                #expect(rc == 0)
            }
            // Plain sleep: nothing in the test process may need a new descriptor while the limit is down.
            let before = cpuSeconds()
            usleep(500_000)
            let spent = cpuSeconds() - before
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &original)
            // A listener spinning on EMFILE would burn the whole half second.
            #expect(spent < 0.25)
            #expect(await eventually { server.openConnections == 5 })
            let request = Array(Self.get.utf8)
            for fd in sockets { _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
            var buffer = [UInt8](repeating: 0, count: 4096)
            for fd in sockets {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                #expect(n > 0 && String(decoding: buffer[..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
            }
        }
    }

    @Test("a handler that returns without reading a body past maxDiscardBytes: its response goes out at once, then the connection closes")
    func unreadBody() async throws {
        try await withServer(ServerConfiguration(maxDiscardBytes: 10_000), handler: { _, _ in ServerResponse(status: .accepted) }) {
            port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
                try client.send([UInt8](repeating: 7, count: 1000))
                let response = try client.readResponse()
                #expect(response.status == 202)
                #expect(response.header("Connection") == "close")
                #expect(client.isClosedByPeer())
            }
        }
    }

    @Test("a fully read body keeps the connection alive")
    func readBodyKeepsAlive() async throws {
        try await withServer(handler: { _, body in
            let bytes = (try? await body.collect(upTo: 1 << 20)) ?? []
            return ServerResponse(status: .ok, body: .bytes(Array("\(bytes.count)".utf8)))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                for size in [0, 1, 70_000] {
                    try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n")
                    try client.send([UInt8](repeating: 7, count: size))
                    let response = try client.readResponse()
                    #expect(response.text == "\(size)")
                    #expect(response.header("Connection") == nil)
                }
            }
        }
    }

    @Test("a streamed response to HTTP/1.0 is delimited by closing the connection")
    func streamTo10() async throws {
        try await withServer(handler: { _, _ in
            ServerResponse(status: .ok, body: .stream(AsyncStream { continuation in
                continuation.yield(Array("one,".utf8))
                continuation.yield(Array("two".utf8))
                continuation.finish()
            }))
        }) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("GET / HTTP/1.0\r\n\r\n")
                let response = try client.readResponse()
                #expect(response.header("Transfer-Encoding") == nil)
                #expect(response.text == "one,two")
            }
        }
    }

    @Test("several event-loop threads share the listener and serve every connection")
    func severalLoops() async throws {
        try await expectEachConnectionServed(200, ServerConfiguration(eventLoopThreads: 4))
    }

    @Test("RequestBody.bytes feeds a handler without a socket")
    func inMemoryBody() async throws {
        let body = RequestBody.bytes(Array(repeating: 3, count: 100), chunkSize: 30)
        var sizes: [Int] = []
        for try await chunk in body { sizes.append(chunk.count) }
        #expect(sizes == [30, 30, 30, 10])
        #expect(body.expectedLength == 100)
    }

    /// `count` connections open at once, each asking for its own path and getting it back; then every connection
    /// and descriptor is gone.
    func expectEachConnectionServed(_ count: Int, _ configuration: ServerConfiguration = .init()) async throws {
        let baseline = await stableDescriptorCount()
        try await withServer(configuration) { port, server in
            try await blocking {
                var clients: [TestClient] = []
                for _ in 0..<count { clients.append(try TestClient(port: port)) }
                for (i, client) in clients.enumerated() { try client.send("GET /\(i) HTTP/1.1\r\nHost: t\r\n\r\n") }
                for (i, client) in clients.enumerated() { #expect(try client.readResponse().text == "/\(i)") }
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(openDescriptorCount() == baseline)
    }
}
