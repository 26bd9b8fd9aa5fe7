import Glibc
import HTTPTypes
import Synchronization
import SystemSupport

/// What every connection of one server shares; immutable but for the connection count.
final class ServerContext: Sendable {
    let configuration: ServerConfiguration
    let handler: HTTPHandler
    let fastPath: FastPath?
    let observer: ResponseObserver?
    /// The configuration's `observesForwardedFor`, and an observer to hand the field to.
    let observesForwardedFor: Bool
    let serverLine: [UInt8]
    /// The server's own answer to `OPTIONS *`: 204 with the application's methods (`allowedMethods`) in `Allow`.
    let optionsAsterisk: ServerResponse
    let headerTimeout: UInt64
    let bodyIdleTimeout: UInt64
    let minBodyRate: UInt64
    let bodyRateGrace: UInt64
    let keepAliveTimeout: UInt64
    let writeTimeout: UInt64
    private let open = Atomic<Int>(0)
    private let keepAliveEnded = Atomic<Bool>(false)
    /// Body bytes that went socket → file by splice, never through this process's memory.
    let splicedBytes = Atomic<Int64>(0)

    init(
        configuration: ServerConfiguration, fastPath: FastPath?, observer: ResponseObserver?,
        handler: @escaping HTTPHandler
    ) {
        self.configuration = configuration
        self.handler = handler
        self.fastPath = fastPath
        self.observer = observer
        observesForwardedFor = configuration.observesForwardedFor && observer != nil
        // A configured name must not be able to inject lines into every response.
        serverLine = configuration.serverName.map { name in
            Array("Server: ".utf8) + name.utf8.filter { $0 >= 0x20 && $0 != 0x7F } + Array("\r\n".utf8)
        } ?? []
        var methods: [HTTPRequest.Method] = []
        for method in configuration.allowedMethods + [.options] where !methods.contains(method) { methods.append(method) }
        optionsAsterisk = ServerResponse(
            status: .noContent, headerFields: [.allow: methods.map(\.rawValue).joined(separator: ", ")]
        ).prepared()
        headerTimeout = configuration.headerTimeout.nanoseconds
        bodyIdleTimeout = configuration.bodyIdleTimeout.nanoseconds
        minBodyRate = UInt64(max(configuration.minBodyRate, 0))
        bodyRateGrace = configuration.bodyRateGrace.nanoseconds
        keepAliveTimeout = configuration.keepAliveTimeout.nanoseconds
        writeTimeout = configuration.writeTimeout.nanoseconds
    }

    var openConnections: Int { open.load(ordering: .relaxed) }

    /// False once `Server.endKeepAlive()` has been called: every response from then on closes its connection.
    var keepsAlive: Bool { !keepAliveEnded.load(ordering: .relaxed) }

    func endKeepAlive() { keepAliveEnded.store(true, ordering: .relaxed) }

    /// The 503 sent to a connection beyond `maxConnections`, and the length of its body.
    func overloadResponse(dateLine: [UInt8]) -> (wire: [UInt8], bodyBytes: Int64) {
        var bytes = ByteBuffer()
        let bodyBytes = ResponseWriter.closingProblem(
            .serviceUnavailable, detail: "too many connections", dateLine: dateLine, serverLine: serverLine,
            into: &bytes)
        return (bytes.bytes, bodyBytes)
    }

    /// Counts a new connection unless the limit is reached.
    func connectionOpened() -> Bool {
        let now = open.add(1, ordering: .relaxed).newValue
        if now > configuration.maxConnections {
            open.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func connectionClosed() { open.subtract(1, ordering: .relaxed) }
}

/// An HTTP/1.1 server on its own epoll loop thread(s). Handlers run as Swift tasks; the loops never wait on them.
public final class Server: Sendable {
    private let context: ServerContext

    private enum Phase { case idle, running, stopped }
    private struct State {
        var phase = Phase.idle
        var loops: [EventLoop] = []
        var listeners: [Listener] = []
    }
    private let state = Locked(State())

    /// - Parameters:
    ///   - fastPath: called on the event loop for each request; a non-nil response is written directly, with no
    ///     task hop, once any body has been read and dropped. It must not block.
    ///   - observer: told of every response the server sends, whoever made it (logs, metrics). It must not block.
    ///   - handler: serves every other request, as a Swift task.
    public init(
        configuration: ServerConfiguration, fastPath: FastPath? = nil, observer: ResponseObserver? = nil,
        handler: @escaping HTTPHandler
    ) {
        context = ServerContext(configuration: configuration, fastPath: fastPath, observer: observer, handler: handler)
    }

    /// Binds, starts the loop thread(s) and returns the bound port.
    public func start() throws -> Int {
        // sendfile(2) has no MSG_NOSIGNAL: a write to a closed peer must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        let configuration = context.configuration
        let threads = max(1, configuration.eventLoopThreads)
        return try state.withLock { state throws -> Int in
            precondition(state.phase == .idle, "Server.start() called twice")
            let socket = try ListeningSocket.bind(
                host: configuration.host, port: configuration.port, backlog: configuration.backlog, holders: threads)
            var loops: [EventLoop] = []
            var listeners: [Listener] = []
            do {
                for _ in 0..<threads {
                    let loop = try EventLoop()
                    let listener = Listener(socket: socket, loop: loop, context: context, exclusive: threads > 1)
                    try listener.register()  // before the thread starts, so no race with it
                    loops.append(loop)
                    listeners.append(listener)
                }
                for (index, loop) in loops.enumerated() { try loop.start(name: "http-loop-\(index)") }
            } catch {
                for (loop, listener) in zip(loops, listeners) { loop.stopAndJoin { listener.stop() } }
                for _ in listeners.count..<threads { socket.release() }
                throw error
            }
            state.loops = loops
            state.listeners = listeners
            state.phase = .running
            return socket.port
        }
    }

    /// From now on every response carries `Connection: close`, so that the keep-alive pools of clients and
    /// balancers empty while the server still answers (a replica's lame duck). Like Go's
    /// `Server.SetKeepAlivesEnabled(false)`.
    public func endKeepAlive() { context.endKeepAlive() }

    /// Closes the connections that sit idle between two requests (keep-alive ends with it), as Go's
    /// `Server.Shutdown` and nginx's graceful stop do: otherwise a client or balancer would send its next request
    /// on one, and it could only be refused. Each gets a FIN, not a reset, so a client sees the close before it
    /// reuses the connection; a request already on its way is read and dropped, never half-answered. A connection
    /// that has not sent its first request yet, or is inside one, is left to finish (its answer closes it).
    public func closeIdleConnections() {
        context.endKeepAlive()
        let loops = state.withLock { $0.loops }
        for loop in loops {
            loop.execute {
                for case let connection as Connection in loop.allSelectables { connection.closeIfIdle() }
            }
        }
    }

    /// Closes the listener; connections in flight go on to their end (graceful drain).
    public func stopAccepting() {
        let pairs = state.withLock { Array(zip($0.loops, $0.listeners)) }
        for (loop, listener) in pairs { loop.execute { listener.stop() } }
    }

    /// Closes every connection (cancelling their handlers) and joins the loop threads. Idempotent.
    public func shutdown() {
        let pairs = state.withLock { state -> [(EventLoop, Listener)] in
            guard state.phase == .running else { return [] }
            state.phase = .stopped
            defer { state.loops = []; state.listeners = [] }
            return Array(zip(state.loops, state.listeners))
        }
        for (loop, listener) in pairs {
            let stop: @Sendable () -> Void = { [loop] in
                listener.stop()
                for case let connection as Connection in loop.allSelectables { connection.abort(byServer: true) }
            }
            // From a loop's own thread (a fast path, or the last reference dropped there) joining would deadlock:
            // that loop is only told to stop.
            if loop.isOnLoop { loop.stopWithoutJoin(stop) } else { loop.stopAndJoin(stop) }
        }
    }

    deinit { shutdown() }

    /// Connections currently open, across all loops.
    public var openConnections: Int { context.openConnections }

    /// Request body bytes written to handlers' files by splice(2) so far (`RequestBody.write(to:)`).
    public var splicedBodyBytes: Int64 { context.splicedBytes.load(ordering: .relaxed) }
}
