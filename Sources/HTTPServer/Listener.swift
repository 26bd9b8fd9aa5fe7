import CLinux
import Glibc
import Synchronization
import SystemSupport

/// The bound listening socket, shared by every loop; the last loop to let go closes it.
final class ListeningSocket: Sendable {
    let descriptor: Int32
    let port: Int
    private let holders: Atomic<Int>

    private init(descriptor: Int32, port: Int, holders: Int) {
        self.descriptor = descriptor
        self.port = port
        self.holders = Atomic(holders)
    }

    static func bind(host: String, port: Int, backlog: Int32, holders: Int) throws(IOError) -> ListeningSocket {
        var address = try ListenAddress(host: host, port: port)
        let family = address.family
        let length = address.length
        let type = Int32(SOCK_STREAM.rawValue) | clinux_sock_nonblock() | clinux_sock_cloexec()
        let fd = try syscallValue("socket") { socket(family, type, 0) }
        do {
            try Sys.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
            // `::` takes IPv4 clients too, whatever the host's net.ipv6.bindv6only says.
            if family == AF_INET6 { try Sys.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, value: 0) }
            _ = try withUnsafePointer(to: &address.storage) { pointer throws(IOError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(IOError) in
                    try syscallValue("bind") { Glibc.bind(fd, address, length) }
                }
            }
            _ = try syscallValue("listen") { listen(fd, backlog) }
            var bound = sockaddr_storage()
            var boundLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = try withUnsafeMutablePointer(to: &bound) { pointer throws(IOError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(IOError) in
                    try syscallValue("getsockname") { getsockname(fd, address, &boundLength) }
                }
            }
            let boundPort = withUnsafeBytes(of: &bound) { raw in
                // sin_port and sin6_port sit at the same offset, in network byte order.
                UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self))
            }
            return ListeningSocket(descriptor: fd, port: Int(boundPort), holders: holders)
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    func release() {
        if holders.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            closeDescriptor(descriptor)
        }
    }
}

/// One loop's watch on the listening socket: accepts, admits or refuses, and backs off when out of descriptors.
final class Listener: Selectable, @unchecked Sendable {
    private let socket: ListeningSocket
    private let loop: EventLoop
    private let context: ServerContext
    private let interest: EpollEvents
    private var paused = false
    private var stopped = false

    /// How long to stop accepting after EMFILE/ENFILE: the pending connection stays in the backlog, and a
    /// level-triggered listener would otherwise wake the loop forever.
    private static let backoff: UInt64 = 100_000_000

    init(socket: ListeningSocket, loop: EventLoop, context: ServerContext, exclusive: Bool) {
        self.socket = socket
        self.loop = loop
        self.context = context
        interest = exclusive ? [.read, .exclusive] : [.read]
        super.init(descriptor: socket.descriptor)
    }

    func register() throws(IOError) {
        try loop.register(self, interest: interest)
    }

    override func handle(_ events: EpollEvents) {
        // A bounded batch keeps one busy listener from starving the connections on this loop.
        for _ in 0..<64 {
            let accepted: (Int32, PeerAddress?)
            do {
                switch try Sys.accept(descriptor) {
                case .wouldBlock: return
                case .processed(let connection): accepted = connection
                }
            } catch {
                if error.errno == .connectionAbort { continue }
                // EMFILE, ENFILE, ENOBUFS, ENOMEM…: back off instead of spinning or giving up.
                pause()
                return
            }
            admit(accepted.0, peer: accepted.1)
        }
    }

    override func deadlineReached() {
        guard paused, !stopped else { return }
        paused = false
        loop.resumeWatching(self, interest)
    }

    private func pause() {
        paused = true
        loop.suspendWatching(self)
        loop.setDeadline(self, after: Self.backoff)
    }

    private func admit(_ fd: Int32, peer: PeerAddress?) {
        guard context.connectionOpened() || (evictIdleConnection() && context.connectionOpened()) else {
            // Best effort: one non-blocking send of a ready-made 503, then close.
            let refusal = context.overloadResponse(dateLine: loop.dateCache.current())
            refusal.wire.withUnsafeBytes { _ = try? Sys.send(fd, $0) }
            Sys.shutdownWrite(fd)
            closeDescriptor(fd)
            context.observer?(ObservedResponse(
                method: nil, target: nil, status: .serviceUnavailable, requestBodyBytes: 0,
                responseBodyBytes: refusal.bodyBytes, elapsed: .zero, annotation: nil, peer: peer))
            return
        }
        try? Sys.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
        let connection = Connection(descriptor: fd, loop: loop, context: context, peer: peer)
        do {
            try loop.register(connection, interest: [.read, .readHangup])
        } catch {
            closeDescriptor(fd)
            context.connectionClosed()
            return
        }
        connection.start()
    }

    private func evictIdleConnection() -> Bool {
        guard let victim = loop.reusable.takeOldest() else { return false }
        victim.abort()
        return true
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        loop.deregister(self)
        socket.release()
    }
}
