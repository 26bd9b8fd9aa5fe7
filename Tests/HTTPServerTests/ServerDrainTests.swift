import Glibc
import HTTPTypes
import SystemSupport
import TestSupport
import Testing

@testable import HTTPServer

/// A server that is going away empties its clients' keep-alive pools first, and a client that stops sending
/// mid-body but still listens gets its answer.
extension ServerTests {
    static let streamed: HTTPHandler = { _, _ in
        ServerResponse(status: .ok, body: .stream(AsyncStream { continuation in
            continuation.yield(Array("streamed".utf8))
            continuation.finish()
        }))
    }

    @Test("after endKeepAlive every answer carries Connection: close and ends its connection",
          arguments: ["GET /fast", "GET /handler", "GET /stream", "POST /handler-with-body"])
    func keepAliveEnded(request: String) async throws {
        let fast = ServerResponse(status: .ok, body: .bytes(Array("fast".utf8))).prepared()
        try await withServer(
            fastPath: { $0.path == "/fast" ? fast : nil },
            handler: { request, body in
                if request.path == "/stream" { return await Self.streamed(request, body) }
                _ = try? await body.collect(upTo: 100)
                return ServerResponse(status: .ok, body: .bytes(Array("handled".utf8)))
            }
        ) { port, server in
            try await blocking {
                // A kept connection from before, as a balancer's pool holds: it must not stay in the pool.
                let pooled = try TestClient(port: port)
                try pooled.send(Self.get)
                #expect(try pooled.readResponse().header("Connection") == nil)
                server.endKeepAlive()
                let body = request.hasPrefix("POST") ? "Content-Length: 3\r\n\r\nabc" : "\r\n"
                for client in [pooled, try TestClient(port: port)] {
                    try client.send("\(request) HTTP/1.1\r\nHost: t\r\n\(body)")
                    let response = try client.readResponse()
                    #expect(response.status == 200, "\(response.text)")
                    #expect(response.header("Connection") == "close")
                    #expect(client.isClosedByPeer())
                }
            }
        }
    }

    @Test("closeIdleConnections closes a connection idle between requests at once, long before its keep-alive timeout, and lets one inside a request or not yet asked finish")
    func idleClosed() async throws {
        var configuration = ServerConfiguration()
        configuration.keepAliveTimeout = .seconds(120)
        let started = Recorder<Bool>()
        try await withServer(configuration, handler: collectingBody(Recorder(), started: started)) { port, server in
            try await blocking {
                let idle = try TestClient(port: port, receiveTimeoutSeconds: 20)
                try idle.send(Self.get)
                #expect(try idle.readResponse().header("Connection") == nil)
                let busy = try TestClient(port: port)
                try busy.send("POST /busy HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
                #expect(waitUntil { started.values.count == 2 }, "the GET, then the POST waiting for its body")
                let silent = try TestClient(port: port)
                #expect(waitUntil { server.openConnections == 3 }, "the silent connection is accepted")

                server.closeIdleConnections()
                // Within the receive timeout (20 s), far below the keep-alive timeout (120 s).
                #expect(idle.isClosedByPeer(), "the idle connection is still open")
                try busy.send("cd")
                let answer = try busy.readResponse()
                #expect(answer.status == 200)
                #expect(answer.header("Connection") == "close")
                #expect(busy.isClosedByPeer())
                try silent.send(Self.get)
                #expect(try silent.readResponse().header("Connection") == "close")
            }
            #expect(await eventually { server.openConnections == 0 })
        }
    }

    /// How a client stops sending mid-body, and whether its handler had asked for the body when the end came.
    enum BodyEnd: String, CaseIterable, Sendable {
        /// shutdown(SHUT_WR) while the handler reads: the loop reads the EOF.
        case halfCloseWhileRead
        /// shutdown(SHUT_WR) before the handler asks: epoll reports the FIN while nobody reads.
        case halfCloseBeforeRead
        /// The same into a file by splice(2), as uploads are read.
        case halfCloseWhileSpliced
        /// shutdown(SHUT_WR) while the body is read and dropped, the handler having answered without it.
        case halfCloseAfterAnswer
        /// A reset: the client is gone, nobody could read an answer.
        case reset
    }

    @Test("a body cut short by the client's half-close gets 400 (or the answer held while it was dropped) and is observed so; a client that resets is 499",
          arguments: BodyEnd.allCases)
    func bodyCutShort(end: BodyEnd) async throws {
        let statuses = Recorder<Int>()
        let errors = Recorder<String>()
        let halfClosed = Recorder<Bool>()
        let started = Recorder<Bool>()
        try await withServer(
            observer: { statuses.add($0.status.code) },
            handler: { _, body in
                started.add(true)
                if end == .halfCloseAfterAnswer { return ServerResponse(status: .accepted) }
                if end == .halfCloseBeforeRead {
                    // Waits for the client's FIN to have been sent before it reads: it reaches the loop as epoll's
                    // read hang-up while nobody reads (if the loop were slower still, the EOF would be read as in the
                    // first case, and the expectations still hold).
                    while halfClosed.values.isEmpty { try? await Task.sleep(for: .milliseconds(10)) }
                    try? await Task.sleep(for: .milliseconds(100))
                }
                do {
                    if end == .halfCloseWhileSpliced {
                        let sink = open("/dev/null", O_WRONLY | O_CLOEXEC)
                        defer { close(sink) }
                        _ = try await body.write(to: sink)
                    } else {
                        _ = try await body.collect(upTo: 1 << 20)
                    }
                } catch { errors.add("\(error)") }
                return ServerResponse(status: .ok)
            }
        ) { port, server in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
                try client.send([UInt8](repeating: 7, count: 1000))
                if end == .reset {
                    // Once the request is the server's: a reset before would only close a connection it never read.
                    #expect(waitUntil { started.values.count == 1 })
                    client.reset()
                    return
                }
                shutdown(client.fd, Int32(SHUT_WR))
                halfClosed.add(true)
                let response = try client.readResponse()
                #expect(response.header("Connection") == "close")
                #expect(client.isClosedByPeer())
                guard end != .halfCloseAfterAnswer else {
                    #expect(response.status == 202, "the handler's answer, held while its body was dropped")
                    return
                }
                #expect(response.status == 400)
                #expect(response.text.contains("cut short"), "\(response.text)")
                #expect(response.text.contains("99000 bytes missing"), "\(response.text)")
            }
            #expect(await eventually { server.openConnections == 0 })
        }
        #expect(await eventually { statuses.values.count == 1 })
        #expect(statuses.values == [end == .reset ? 499 : end == .halfCloseAfterAnswer ? 202 : 400])
        if end != .halfCloseAfterAnswer {
            #expect(await eventually { errors.values.count == 1 }, "the handler's body throws")
        }
    }
}
