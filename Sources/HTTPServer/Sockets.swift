import CLinux
import Glibc
import SystemSupport

/// The socket, pipe and file calls the server makes, each through the one syscall wrapper.
enum Sys {
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscall("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// recv(2) rather than read(2) on a socket: it skips the VFS layer (file position lock, access checks).
    static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscall("recv") { Glibc.recv(fd, buffer.baseAddress, buffer.count, 0) }
    }

    static func send(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(fd, buffer.baseAddress, buffer.count, clinux_msg_nosignal()) }
    }

    static func sendfile(_ out: Int32, _ input: Int32, offset: inout Int64, count: Int) throws(IOError) -> IOResult<Int> {
        var off = off_t(offset)
        let result = try syscall("sendfile") { CLinux.sendfile(out, input, &off, count) }
        offset = Int64(off)
        return result
    }

    /// Accepted sockets are non-blocking and close-on-exec from birth: no window where they leak into a child.
    static func accept(_ fd: Int32) throws(IOError) -> IOResult<(Int32, PeerAddress?)> {
        var storage = sockaddr_storage()
        var length = UInt32(MemoryLayout<sockaddr_storage>.size)
        switch try syscall("accept4", { clinux_accept4_peer(fd, &storage, &length) }) {
        case .wouldBlock: return .wouldBlock
        case .processed(let accepted): return .processed((accepted, PeerAddress(storage)))
        }
    }

    /// Moves up to `count` bytes from `from` to `to` inside the kernel; one end must be a pipe.
    static func splice(from: Int32, to: Int32, count: Int) throws(IOError) -> IOResult<Int> {
        try syscall("splice") { clinux_splice_nonblock(from, to, count) }
    }

    static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(IOError) {
        var v = value
        _ = try syscallValue("setsockopt") {
            Glibc.setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    static func shutdownWrite(_ fd: Int32) {
        _ = try? syscallValue("shutdown") { Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }
}
