import CLinux
import Glibc
import SystemSupport

/// One end of a worker's socketpair, speaking `WorkerMessage`s: each a datagram, with descriptors riding along.
struct WorkerChannel {
    let descriptor: Int32

    enum Failure: Error, CustomStringConvertible {
        case io(IOError)
        case protocolError(WorkerProtocolError)

        var description: String {
            switch self {
            case .io(let error): "\(error)"
            case .protocolError(let error): "protocol: \(error)"
            }
        }
    }

    /// A socketpair for a parent and its child, both ends close-on-exec (the child's is moved to a fixed number in
    /// the child); the caller owns both at once.
    static func pair() throws(IOError) -> (parent: Int32, child: Int32) {
        var ends: [Int32] = [-1, -1]
        _ = try syscallValue("socketpair") {
            socketpair(AF_UNIX, clinux_sock_seqpacket() | clinux_sock_cloexec(), 0, &ends)
        }
        return (ends[0], ends[1])
    }

    /// Sends one message; EPIPE or ECONNRESET mean the peer is gone.
    func send(_ message: WorkerMessage, descriptors: [Int32] = []) throws(IOError) {
        let bytes = message.encoded()
        precondition(bytes.count <= WorkerMessage.maximumSize && descriptors.count <= Int(CLINUX_MAX_PASSED_FDS))
        _ = try syscallValue("sendmsg") {
            clinux_send_fds(descriptor, bytes, bytes.count, descriptors, Int32(descriptors.count))
        }
    }

    /// Blocks for one message; nil once the peer has closed its end. The descriptors that came with it belong to
    /// the caller (they arrive close-on-exec).
    func receive() throws(Failure) -> (message: WorkerMessage, descriptors: [Int32])? {
        var buffer = [UInt8](repeating: 0, count: WorkerMessage.maximumSize)
        var descriptors = [Int32](repeating: -1, count: Int(CLINUX_MAX_PASSED_FDS))
        var count: Int32 = 0
        var truncated: Int32 = 0
        let received: Int
        do {
            received = try syscallValue("recvmsg") {
                clinux_receive_fds(descriptor, &buffer, buffer.count, &descriptors, Int32(descriptors.count), &count,
                                   &truncated)
            }
        } catch {
            throw .io(error)
        }
        let passed = Array(descriptors.prefix(Int(count)))
        if received == 0 && passed.isEmpty { return nil }
        do throws(WorkerProtocolError) {
            guard truncated == 0 else { throw WorkerProtocolError(description: "message truncated") }
            return (try WorkerMessage(decoding: buffer.prefix(received)), passed)
        } catch {
            for fd in passed { closeDescriptor(fd) }
            throw .protocolError(error)
        }
    }

    /// The next message, in a process whose parent is its whole world: the parent's end closed exits with 0, a
    /// broken message or a failed read with 71, after a line on stderr naming `who`.
    func receiveOrExit(_ who: String) -> (message: WorkerMessage, descriptors: [Int32]) {
        do {
            guard let received = try receive() else { _exit(0) }
            return received
        } catch {
            printToStandardError("\(who) \(getpid()): \(error)")
            _exit(71)
        }
    }

    /// Waits up to `milliseconds` (-1: for ever) for a message or the peer's end; true if one is there.
    func waitReadable(milliseconds: Int32) throws(IOError) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return try syscallValue("poll") { poll(&entry, 1, milliseconds) } > 0
    }
}
