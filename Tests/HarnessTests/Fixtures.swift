import Foundation
import Glibc
import HarnessCore
import Logging
import TestSupport
import TranscodeService
import Transcoding

/// A service on 127.0.0.1 at an ephemeral port with its own temp folder, as the service tests start it.
final class ServiceUnderTest: Sendable {
    let service: Service
    let port: Int
    let scratch: Scratch

    init(configure: (inout ServiceConfig) -> Void = { _ in }) throws {
        scratch = try Scratch()
        var config = ServiceConfig()
        config.host = "127.0.0.1"
        config.port = 0
        config.workers = 2
        config.tmpDir = scratch.url.path
        config.drainTimeout = 5
        configure(&config)
        var logger = Logger(label: "harness-test")
        logger.logLevel = .critical
        service = try Service(config: config, logger: logger)
        port = try service.start()
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func stop() { service.stop() }
}

/// Small generated clips, written once per process: the harness's checks do not depend on the size.
enum Clips {
    static let folder = try! Scratch()

    /// 1 s of 320x240 H.264 + AAC.
    static let small: String = {
        var clip = SyntheticClip()
        clip.seconds = 1
        try! clip.write(to: folder.path("small.mp4"))
        return folder.path("small.mp4")
    }()

    /// Half a second of 160x120: the smoke run's hundred uploads stay quick on two cores.
    static let tiny: String = {
        var clip = SyntheticClip()
        clip.width = 160
        clip.height = 120
        clip.seconds = 0.5
        try! clip.write(to: folder.path("tiny.mp4"))
        return folder.path("tiny.mp4")
    }()
}

/// A stand-in server for the failures a real service should not produce on demand: on every connection it writes
/// `answer` and closes, or (with nil) accepts and stays silent.
final class CannedServer: Sendable {
    let port: Int
    private let fd: Int32

    init(answer: String?) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw HarnessError("cannot listen") }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread {
            var held: [Int32] = []
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { break }
                guard let answer else {
                    held.append(client)
                    continue
                }
                _ = Array(answer.utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                // Closing with the upload unread would reset the connection and could destroy the answer in flight.
                shutdown(client, Int32(SHUT_WR))
                var sink = [UInt8](repeating: 0, count: 65536)
                while sink.withUnsafeMutableBytes({ recv(client, $0.baseAddress, $0.count, 0) }) > 0 {}
                close(client)
            }
            held.forEach { close($0) }
            // Closed here, not in stop(): the number could otherwise be reused by a listener of a parallel test
            // while this loop still accepts on it.
            close(fd)
        }
        thread.start()
    }

    /// Stops accepting: the accept loop sees the listener shut down and ends.
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// A port nothing listens on: bound without listening, then released.
    static func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw HarnessError("cannot bind") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Runs the harness in-process, off the cooperative pool (it blocks until every request is done).
func runHarness(
    url: String, input: String, requests: Int, concurrency: Int, timeout: Double = 60, verify: Bool = true
) async throws -> Report {
    try await onThread {
        var configuration = RunConfiguration(
            endpoint: try Endpoint(url: url), inputs: [try InputVideo.load(input, verify: verify)])
        configuration.requests = requests
        configuration.concurrency = concurrency
        configuration.timeout = timeout
        configuration.verify = verify
        configuration.progress = .silent
        return Runner.run(configuration)
    }
}
