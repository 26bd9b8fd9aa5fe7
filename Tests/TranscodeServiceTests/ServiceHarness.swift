import Foundation
import Logging
import MediaFixtures
import TestSupport
import TranscodeService
import WorkerIsolation
import Transcoding

/// A service on 127.0.0.1 at an ephemeral port, with its own temp folder; stopped by `stop()`.
final class RunningService: Sendable {
    let service: Service
    let port: Int
    let scratch: Scratch

    /// `logger` defaults to one that writes only critical messages (none), so tests that do not look at the log
    /// stay quiet.
    init(
        workers: Int = 2, queue: Int = 16, logger: Logger? = nil, configure: (inout ServiceConfig) -> Void = { _ in }
    ) throws {
        scratch = try Scratch()
        var config = ServiceConfig()
        config.host = "127.0.0.1"
        config.port = 0
        config.workers = workers
        config.queue = queue
        config.tmpDir = scratch.url.path
        config.drainTimeout = 10
        config.isolation = testIsolation
        config.worker = try workerSettings()
        configure(&config)
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        service = try Service(config: config, logger: logger ?? quiet)
        port = try service.start()
    }

    func stop() { service.stop() }

    /// Sends `body` as a POST and reads the answer.
    func post(_ target: String, body: [UInt8], extraHeaders: String = "") throws -> TestClient.Response {
        try TranscodeServiceTests.post(port: port, target, body: body, extraHeaders: extraHeaders)
    }

    func get(_ target: String) throws -> TestClient.Response {
        let client = try TestClient(port: port)
        try client.send("GET \(target) HTTP/1.1\r\nHost: test\r\n\r\n")
        return try client.readResponse()
    }

    /// `/about` as a dictionary of its JSON fields.
    func about() throws -> [String: Any] {
        let response = try get("/about")
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
    }

    /// Polls `/about` until `condition` holds or `seconds` pass.
    func wait(seconds: Double = 30, until condition: ([String: Any]) -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(try about()) { return true }
            usleep(20_000)
        }
        return false
    }

    /// A metric from `/metrics`, summed over its label sets; nil when the exposition does not have it.
    func metric(_ name: String) throws -> Double? {
        try metricValue(name, in: get("/metrics").text)
    }

    /// Sends only the head of a POST that declares `length` body bytes and `Expect: 100-continue`, then reads the
    /// answer. No body byte ever follows, so a service that asked for the body would send `100 Continue` and then
    /// wait in vain: a final answer with an empty `interim` means the body was refused unread.
    func postHeadOnly(_ target: String, declaring length: Int) throws -> (TestClient, TestClient.Response) {
        let client = try TestClient(port: port)
        try client.send("POST \(target) HTTP/1.1\r\nHost: t\r\nContent-Length: \(length)\r\nExpect: 100-continue\r\n\r\n")
        return (client, try client.readResponse())
    }

    /// Descriptors of this process that point into the service's temp folder (its anonymous files included).
    var openTempFiles: [String] { descriptors(under: scratch.url.path) }

    /// True once no descriptor points into the temp folder. The server closes a response's file after the last
    /// byte is sent and a handler may finish just after the server answered for it, so this polls briefly.
    func tempFilesClosed(within seconds: Double = 3) -> Bool {
        waitUntil(seconds) { openTempFiles.isEmpty }
    }
}

/// The isolation the service tests run under: `process` (the service's default), or what `ISOLATION` says, so that
/// `ISOLATION=thread make test` runs the same suites in-process.
let testIsolation: Isolation = ProcessInfo.processInfo.environment["ISOLATION"].flatMap(Isolation.init) ?? .process

/// Worker processes as the service starts them, from the built `ffmpeg-processor` (this binary is the test runner).
func workerSettings() throws -> WorkerSettings {
    var settings = WorkerSettings()
    // Under `make test-tsan`, a plain build: TSan's shadow memory cannot live under the worker's RLIMIT_AS.
    settings.executable = try ProcessInfo.processInfo.environment["FFMPEG_PROCESSOR_WORKER_EXECUTABLE"]
        ?? builtExecutable("ffmpeg-processor")
    // Debug builds under a loaded machine start slowly.
    settings.startTimeout = 60
    return settings
}

/// A pool's isolation for `mode`.
func poolIsolation(_ mode: Isolation) throws -> PoolIsolation {
    mode == .thread ? .thread : .process(try workerSettings())
}

/// Sends `body` as a POST to a service on `port` (in this process or not) and reads the answer.
func post(
    port: Int, _ target: String, body: [UInt8], extraHeaders: String = "", receiveTimeoutSeconds: Int = 60
) throws -> TestClient.Response {
    let client = try TestClient(port: port, receiveTimeoutSeconds: receiveTimeoutSeconds)
    try client.send("POST \(target) HTTP/1.1\r\nHost: test\r\nContent-Length: \(body.count)\r\n\(extraHeaders)\r\n")
    try client.send(body)
    return try client.readResponse()
}

/// The sum of a metric's samples (every label set) in a Prometheus text exposition; nil when it has none.
func metricValue(_ name: String, in exposition: String) -> Double? {
    let samples = exposition.split(separator: "\n").compactMap { line -> Double? in
        guard line.hasPrefix(name) else { return nil }
        let rest = line.dropFirst(name.count)
        guard rest.first == " " || rest.first == "{" else { return nil }
        return line.split(separator: " ").last.flatMap { Double($0) }
    }
    return samples.isEmpty ? nil : samples.reduce(0, +)
}

/// Clips shared by the service tests, written once per process.
enum Clips {
    static let folder = try! Scratch()

    /// Writes a generated clip into the shared folder and returns its bytes and frame count.
    static func generate(_ name: String, _ configure: (inout SyntheticClip) -> Void) -> (bytes: [UInt8], frames: Int) {
        var clip = SyntheticClip()
        configure(&clip)
        let info = try! clip.write(to: folder.path(name))
        return (Array(try! Data(contentsOf: URL(fileURLWithPath: folder.path(name)))), info.videoFrames)
    }

    /// A 1 s 320x240 H.264 + AAC clip.
    static let small = generate("small.mp4") { $0.seconds = 1 }

    /// A clip that keeps a worker busy for seconds when asked for `preset=veryslow`.
    static let slow = generate("slow.mp4") { $0.width = 640; $0.height = 360; $0.seconds = 8 }.bytes

    /// A clip that takes a worker about a second at `preset=slow`.
    static let medium = generate("medium.mp4") { $0.width = 640; $0.height = 360; $0.seconds = 2 }.bytes

    static let audioOnly = generate("sound.m4a") { $0.videoCodec = nil }.bytes

    static func trial() throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: TestMedia.trialClip)))
    }

    /// Decodes an MP4 answer.
    static func probe(_ body: [UInt8]) throws -> MediaProbe {
        let scratch = try Scratch()
        try Data(body).write(to: URL(fileURLWithPath: scratch.path("answer.mp4")))
        return try MediaProbe.probe(.path(scratch.path("answer.mp4")), decode: true)
    }
}
