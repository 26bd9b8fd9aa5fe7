import CLinux
import Foundation
import Glibc
import HarnessCore
import MediaFixtures
import TestSupport
import SystemSupport
import Testing
import Transcoding

/// A child process started with posix_spawn, its output sent to files that the test reads once it has exited.
final class Child {
    let pid: pid_t

    init(_ executable: String, _ arguments: [String], stdout: String, stderr: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // Nothing else of this process: a service outliving a crashed test process must not hold its runner's pipes.
        clinux_spawn_close_from(&actions, 3)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard status == 0 else { throw HarnessError("cannot start \(executable): \(String(cString: strerror(status)))") }
        self.pid = pid
    }

    /// The exit status, waiting for it; 128 + the signal's number for a process a signal ended, as a shell reports it.
    func wait() -> Int32 {
        var status: Int32 = 0
        _ = try? syscallValue("waitpid") { waitpid(pid, &status, 0) }
        if status & 0x7F != 0 { return 128 + (status & 0x7F) }
        return (status >> 8) & 0xFF
    }

    var hasExited: Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == pid
    }

    func terminate() { kill(pid, SIGTERM) }
}

/// Runs `executable` to the end: its exit status and what it printed.
func runChild(_ executable: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let scratch = try Scratch()
    let child = try Child(executable, arguments, stdout: scratch.path("out"), stderr: scratch.path("err"))
    let status = child.wait()
    let read = { (name: String) in (try? String(contentsOfFile: scratch.path(name), encoding: .utf8)) ?? "" }
    return (status, read("out"), read("err"))
}

/// The built service in a child process on 127.0.0.1 at a free port, with its own temp folder. Out of process so the
/// descriptors of a hundred uploads never show in this process, whose server tests count descriptors.
final class ServiceProcess {
    let url: String
    private let child: Child
    private let scratch: Scratch

    init(_ options: [String] = []) throws {
        scratch = try Scratch()
        let log = scratch.path("service.log")
        child = try Child(
            try builtExecutable("ffmpeg-processor"),
            [
                "serve", "--host", "127.0.0.1", "--port", "0", "--tmp-dir", scratch.url.path, "--drain-timeout", "1",
                "--shutdown-delay", "0", "--log-level", "info",
            ] + options, stdout: "/dev/null", stderr: log)
        let deadline = Date().addingTimeInterval(30)
        while true {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: "listening on ") {
                let address = text[range.upperBound...].prefix { $0 != " " && $0 != "\n" }
                url = "http://\(address)"
                return
            }
            guard !child.hasExited, Date() < deadline else {
                child.terminate()
                throw HarnessError("the service did not start: \(text)")
            }
            usleep(20_000)
        }
    }

    /// Uploads answered 200, from the service's /metrics.
    func transcodes() throws -> Int {
        try metric { $0.hasPrefix("ffmpeg_processor_requests_total{") && $0.contains("route=\"transcode\"")
            && $0.contains("status=\"200\"") }
    }

    /// The sum of the samples of the service's /metrics whose line `matches`.
    func metric(_ matches: (Substring) -> Bool) throws -> Int {
        let port = Int(url.split(separator: ":").last ?? "") ?? 0
        let client = try TestClient(port: port)
        try client.send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        let samples = try client.readResponse().text.split(separator: "\n").filter(matches)
        return Int(samples.compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +))
    }

    /// SIGTERM, then a drained service exits 0. Any other status is an issue: under `make test-tsan` a data race in
    /// the service makes it exit 66, and this is the only place that sees it.
    func stop() {
        child.terminate()
        let status = child.wait()
        guard status != 0 else { return }
        let log = (try? String(contentsOfFile: scratch.path("service.log"), encoding: .utf8)) ?? ""
        let excerpt = log.range(of: "WARNING: ThreadSanitizer").map { String(log[$0.lowerBound...].prefix(8000)) }
        Issue.record("the service exited with \(status): \(excerpt ?? String(log.suffix(2000)))")
    }
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

    /// 8 s of 640x360: seconds of a worker at preset=veryslow.
    static let slow: String = {
        var clip = SyntheticClip()
        clip.width = 640
        clip.height = 360
        clip.seconds = 8
        try! clip.write(to: folder.path("slow.mp4"))
        return folder.path("slow.mp4")
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
                let client: Int32
                do throws(IOError) {
                    client = try syscallValue("accept") { accept(fd, nil, nil) }
                } catch where [.tooManyOpenFiles, .tooManyOpenFilesInSystem, .connectionAbort].contains(error.errno) {
                    // Out of descriptors for a moment (a server test lowers the limit): wait.
                    usleep(10_000)
                    continue
                } catch {
                    break  // shut down by stop()
                }
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

/// Runs the built harness against `url` and returns its report. A child process rather than `Runner.run` here: the
/// server tests lower this process's descriptor limit for a moment, and the harness's sockets would hit it.
func runHarness(
    url: String, input: String, requests: Int, concurrency: Int, timeout: Double = 60, verify: Bool = true,
    extra: [String] = []
) throws -> Report {
    let scratch = try Scratch()
    var arguments = [
        "--url", url, "--file", input, "--requests", "\(requests)", "--concurrency", "\(concurrency)",
        "--timeout", "\(timeout)", "--min-success", "0", "--json", scratch.path("report.json"),
    ]
    if !verify { arguments.append("--no-verify") }
    arguments += extra
    let result = try runChild(try builtExecutable("harness"), arguments)
    guard result.status == 0 else { throw HarnessError("harness exited with \(result.status): \(result.err)") }
    return try JSONDecoder().decode(Report.self, from: Data(contentsOf: scratch.url.appendingPathComponent("report.json")))
}
