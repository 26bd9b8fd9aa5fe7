import Foundation
import Glibc
import Synchronization
import Logging
import TestSupport
import TranscodeService

/// The services the recipes run against, each configured so that its answers can be had on demand. All listen on
/// 127.0.0.1 at an ephemeral port, and the test that starts one stops it.
enum Setting: String, CaseIterable, Sendable, CustomStringConvertible {
    /// One worker, a 1 MiB body limit and a 512 KiB upload budget: a 413 or a 503 costs a request head.
    case standard
    /// A 0.2 s header timeout, for 408.
    case impatient
    /// Draining, as after SIGTERM, but still serving.
    case draining
    /// At its limit of one connection, held by an upload in progress: any new connection gets the server's 503.
    case crowded
    /// Its temp directory removed after start: a temp file fails for another reason than a full disk (500).
    case noTempDir
    /// The built service in a user and mount namespace of its own, its temp directory a 256 KiB tmpfs (507).
    case diskFull
    /// Worker processes that cannot start (their binary exits at once): /about says degraded, uploads get 503.
    case degraded
    /// Async jobs made at start: one succeeded (the trial clip), two failed (text), named in `JobFixture`.
    case jobs
    /// A 0.5 s `--result-ttl`, and a job made at start that has since expired.
    case expired

    var description: String { rawValue }

    static let maxBody = 1 << 20
    static let uploadBudget = 512 << 10

    func start() throws -> LiveService {
        switch self {
        case .standard:
            return try LiveService.inProcess()
        case .impatient:
            return try LiveService.inProcess { $0.headerTimeout = 0.2 }
        case .draining:
            let live = try LiveService.inProcess()
            live.service?.lifecycle.beginDraining()
            return live
        case .crowded:
            let live = try LiveService.inProcess { $0.maxConnections = 1 }
            // An upload that has sent its head and part of its body holds its connection: the server never closes
            // such a connection to make room, as it does an idle one.
            let holder = try TestClient(port: live.port)
            try holder.send("POST /holder HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789")
            live.keep(holder)
            guard waitUntil(10, { live.service?.pool.counters.admitted.load(ordering: .relaxed) == 1 }) else {
                live.stop()
                throw DocumentError("the holding upload was never admitted")
            }
            return live
        case .noTempDir:
            var folder = ""
            let live = try LiveService.inProcess { config in
                folder = config.tmpDir + "/gone"
                config.tmpDir = folder
                try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            }
            do {
                try FileManager.default.removeItem(atPath: folder)
            } catch {
                live.stop()
                throw error
            }
            return live
        case .diskFull:
            return try LiveService.inNamespace(tmpfsSize: "256k")
        case .degraded:
            let live = try LiveService.inProcess { config in
                config.isolation = .process
                config.worker.executable = "/bin/false"
            }
            guard waitUntil(30, { live.service?.pool.counters.isDegraded == true }) else {
                live.stop()
                throw DocumentError("the pool never said it was degraded")
            }
            return live
        case .jobs:
            let live = try LiveService.inProcess { $0.replicaName = JobFixture.replica }
            do {
                JobFixture.set(.succeeded, try live.finishedJob(Media.trial, "succeeded"))
                JobFixture.set(.failed, try live.finishedJob(Media.text, "failed"))
                JobFixture.set(.deletable, try live.finishedJob(Media.text, "failed"))
            } catch {
                live.stop()
                throw error
            }
            return live
        case .expired:
            let live = try LiveService.inProcess { $0.replicaName = JobFixture.replica; $0.resultTTL = 0.5 }
            do {
                let id = try live.submitJob(Media.text)
                // Polled until gone, not until failed: with so short a TTL a loaded machine may never show `failed`.
                guard waitUntil(60, { (try? live.statusCode("GET", "/jobs/\(id)")) == 410 }) else {
                    throw DocumentError("the job never expired")
                }
                JobFixture.set(.expired, id)
            } catch {
                live.stop()
                throw error
            }
            return live
        }
    }
}

/// The ids of the jobs the `.jobs` and `.expired` settings made, for the recipes' paths.
enum JobFixture {
    enum Kind: Sendable { case succeeded, failed, deletable, expired }

    static let replica = "doc"
    /// An id of the replica's form that no job has.
    static let unknown = replica + "." + String(repeating: "0", count: 32)
    private static let ids = Mutex<[Kind: String]>([:])

    static func set(_ kind: Kind, _ id: String) { ids.withLock { $0[kind] = id } }
    static func id(_ kind: Kind) -> String { ids.withLock { $0[kind] } ?? unknown }
}

extension LiveService {
    /// Submits `body` with `Prefer: respond-async` and polls the job until its state is `state`; its id.
    func finishedJob(_ body: [UInt8], _ state: String) throws -> String {
        let location = "/jobs/" + (try submitJob(body))
        let done = waitUntil(120) {
            let status = try? TestClient(port: port).exchange("GET \(location) HTTP/1.1\r\nHost: t\r\n\r\n")
            return status?.text.contains("\"state\":\"\(state)\"") == true
        }
        guard done else { throw DocumentError("\(location) never \(state)") }
        return String(location.dropFirst("/jobs/".count))
    }

    /// Submits `body` with `Prefer: respond-async`; the job's id.
    func submitJob(_ body: [UInt8]) throws -> String {
        let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
        try client.send("POST /doc HTTP/1.1\r\nHost: t\r\nPrefer: respond-async\r\nContent-Length: \(body.count)\r\n\r\n")
        try client.send(body)
        let accepted = try client.readResponse()
        guard accepted.status == 202, let location = accepted.header("Location") else {
            throw DocumentError("no job: \(accepted.status) \(accepted.text)")
        }
        return String(location.dropFirst("/jobs/".count))
    }

    func statusCode(_ method: String, _ target: String) throws -> Int {
        try TestClient(port: port).exchange("\(method) \(target) HTTP/1.1\r\nHost: t\r\n\r\n", head: method == "HEAD").status
    }
}

extension TestClient {
    func exchange(_ request: String, head: Bool = false) throws -> Response {
        try send(request)
        return try readResponse(head: head)
    }
}

/// A running service of a `Setting`: in this process, or the built binary in a child process. Used by the one
/// thread of the test that started it, hence @unchecked.
final class LiveService: @unchecked Sendable {
    let port: Int
    let service: Service?
    private let child: Process?
    private let scratch: Scratch
    private var kept: [TestClient] = []

    private init(port: Int, service: Service?, child: Process?, scratch: Scratch) {
        self.port = port
        self.service = service
        self.child = child
        self.scratch = scratch
    }

    static func inProcess(_ configure: (inout ServiceConfig) -> Void = { _ in }) throws -> LiveService {
        let scratch = try Scratch()
        var config = ServiceConfig()
        config.host = "127.0.0.1"
        config.port = 0
        config.workers = 1
        config.queue = 4
        config.maxBody = Int64(Setting.maxBody)
        config.queueBytes = Int64(Setting.uploadBudget)
        config.tmpDir = scratch.url.path
        config.drainTimeout = 1
        // The worker processes are the built binary's: this one is the test runner.
        config.isolation = ProcessInfo.processInfo.environment["ISOLATION"].flatMap(Isolation.init) ?? .process
        // Under `make test-tsan`, a plain build: TSan's shadow memory cannot live under the worker's RLIMIT_AS.
        config.worker.executable = try ProcessInfo.processInfo.environment["FFMPEG_PROCESSOR_WORKER_EXECUTABLE"]
            ?? builtExecutable("ffmpeg-processor")
        configure(&config)
        var logger = Logger(label: "api-document")
        logger.logLevel = .critical
        let service = try Service(config: config, logger: logger)
        return LiveService(port: try service.start(), service: service, child: nil, scratch: scratch)
    }

    /// `unshare` makes a user namespace in which this user is root, and a mount namespace in which that root may
    /// mount a tmpfs; the service is started inside both, and only it sees the small filesystem. It shares this
    /// process's network, so it is reached on 127.0.0.1 as usual.
    static func inNamespace(tmpfsSize: String) throws -> LiveService {
        let scratch = try Scratch()
        let folder = scratch.path("small")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        let log = scratch.path("service.log")
        guard FileManager.default.createFile(atPath: log, contents: nil) else { throw DocumentError("cannot write \(log)") }
        guard let unshare = which("unshare") else { throw DocumentError("unshare (util-linux) is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: unshare)
        process.arguments = [
            "--user", "--map-root-user", "--mount", "/bin/sh", "-c",
            #"mount -t tmpfs -o size="$1" tmpfs "$2" && exec "$3" serve --host 127.0.0.1 --port 0 --workers 1 --tmp-dir "$2" --drain-timeout 1"#,
            "sh", tmpfsSize, folder, try builtExecutable("ffmpeg-processor"),
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: "listening on 127.0.0.1:"),
                let port = Int(text[range.upperBound...].prefix { $0.isNumber }), text[range.upperBound...].contains(" ")
            {
                return LiveService(port: port, service: nil, child: process, scratch: scratch)
            }
            if !process.isRunning {
                throw DocumentError("the service in a namespace of its own did not start (unshare needs user namespaces): \(text)")
            }
            usleep(20_000)
        }
        process.terminate()
        throw DocumentError("the service in a namespace of its own did not start in 30 s")
    }

    /// Keeps a client's connection open as long as the service runs.
    func keep(_ client: TestClient) { kept.append(client) }

    /// Stops the service; a child that does not exit 0 on SIGTERM is a problem (under `make test-tsan` a data race
    /// in it makes it exit 66), described in the result.
    @discardableResult
    func stop() -> String? {
        kept.removeAll()
        service?.stop()
        guard let child else { return nil }
        if child.isRunning { child.terminate() }
        child.waitUntilExit()
        guard child.terminationReason != .exit || child.terminationStatus != 0 else { return nil }
        let log = (try? String(contentsOfFile: scratch.path("service.log"), encoding: .utf8)) ?? ""
        return "the service exited with \(child.terminationStatus): \(log.suffix(4000))"
    }
}
