import Foundation
import Glibc
import TestSupport
import Testing

/// Ten thousand idle connections against the real binary (its own process, so that its descriptors and ours are
/// counted against separate limits): the service keeps answering, and gives every descriptor back afterwards.
@Suite("idle connections")
struct IdleConnectionTests {
    static let idle = 10_000

    /// Our own sockets need the headroom; the service lifts its limit itself.
    static var descriptorsAvailable: Bool {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return false }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return limit.rlim_cur >= rlim_t(idle + 512)
    }

    @Test(
        "10,000 idle connections at the default limit: /about and an upload are still served, descriptors come back",
        .enabled(if: descriptorsAvailable, "needs a descriptor limit above 10,500"))
    func tenThousandIdle() async throws {
        try await onThread {
            let scratch = try Scratch()
            // A long header timeout, so that the idle connections are all still there when the limit is reached.
            let (process, port) = try launchService(tmpDir: scratch.url.path, arguments: ["--header-timeout", "120"])
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }
            let pid = process.processIdentifier
            // Once start-up is over (Dispatch opens its signalfds and timerfd lazily) and the probe's connection is
            // gone: the listener, the loop's epoll and eventfd, Dispatch's own, the log pipe.
            do {
                let about = try TestClient(port: port)
                try about.send("GET /about HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                #expect(try about.readResponse().status == 200)
            }
            let baseline = try stableDescriptorCount(of: pid)

            var sockets: [Int32] = []
            defer { for fd in sockets { Glibc.close(fd) } }
            // In batches well under the listen backlog: a connection the kernel could not queue is retried only
            // after seconds of SYN-ACK back-off, which would make the count below a matter of luck.
            while sockets.count < Self.idle {
                for _ in 0..<500 { sockets.append(try connectBlocking(port: port)) }
                let opened = sockets.count
                _ = waitFor(seconds: 10) { (try? descriptorCount(of: pid)) ?? 0 >= baseline + opened }
            }
            // Every one of them accepted: the service is at its limit of 10,000 connections.
            #expect(
                waitFor(seconds: 30) { (try? descriptorCount(of: pid)) ?? 0 >= baseline + Self.idle },
                "service descriptors: \((try? descriptorCount(of: pid)) ?? -1), baseline \(baseline)")

            let started = Date()
            let probe = try TestClient(port: port)
            try probe.send("GET /about HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            let answer = try probe.readResponse()
            #expect(answer.status == 200, "\(answer.text)")
            #expect(Date().timeIntervalSince(started) < 2)

            let transcoded = try upload(Clips.small.bytes, port: port)
            #expect(transcoded.status == 200, "\(transcoded.text)")
            #expect(transcoded.header("Content-Type") == "video/mp4")

            for fd in sockets { Glibc.close(fd) }
            sockets = []
            #expect(
                waitFor(seconds: 30) { (try? descriptorCount(of: pid)) == baseline },
                "service descriptors: \(describe(pid)), baseline \(baseline)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty)
        }
    }
}

private func upload(_ body: [UInt8], port: Int) throws -> TestClient.Response {
    let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
    try client.send("POST /among-idle HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n")
    try client.send(body)
    return try client.readResponse()
}

private func describe(_ pid: Int32) -> [String] {
    let folder = "/proc/\(pid)/fd"
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    return names.map { (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(folder)/\($0)")) ?? $0 }
}

private func descriptorCount(of pid: Int32) throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
}

/// The count once it has not changed for half a second.
private func stableDescriptorCount(of pid: Int32) throws -> Int {
    var last = try descriptorCount(of: pid)
    var unchangedSince = Date()
    while Date().timeIntervalSince(unchangedSince) < 0.5 {
        usleep(50_000)
        let now = try descriptorCount(of: pid)
        if now != last { last = now; unchangedSince = Date() }
    }
    return last
}

private func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}

/// A plain connected socket that never sends a byte.
private func connectBlocking(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        let code = errno
        Glibc.close(fd)
        throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
    }
    return fd
}
