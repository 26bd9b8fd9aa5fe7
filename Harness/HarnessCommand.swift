import ArgumentParser
import Foundation
import SystemSupport
import HarnessCore

/// Puts a deployment of the service on trial, as in the original experiment ("1000 requests at once, each with a
/// 6-second video"), except that success means a valid video came back, not merely an HTTP answer.
@main
struct HarnessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "harness",
        abstract: "Load-test a running ffmpeg-processor: N uploads at concurrency C, every answer decoded and checked.",
        discussion: "Exits 1 when the share of valid MP4s is under --min-success, 2 when the run cannot start, 0 otherwise.")

    @Option(help: "The service's base URL (default http://127.0.0.1:3000); repeated, replicas reached straight, each new connection to the next.")
    var url: [String] = []
    @Flag(help: "Keep each connection for request after request until the server closes it, then connect to the next --url, as a Kubernetes Service's clients do.")
    var keepAlive = false
    @Option(help: "Requests to send.") var requests = 1000
    @Option(help: "Requests in flight at once.") var concurrency = 1000
    @Option(help: "The video to upload (default: a generated 6 s 640x360 clip with audio).") var file: String?
    @Option(help: "Upload every video of this folder in turn.") var dir: String?
    @Option(help: "Query string for every request, e.g. 'height=480'.") var query: String?
    @Option(help: "Seconds one request may take, upload to last byte.") var timeout: Double = 120
    @Option(help: "Lowest acceptable success rate, percent.") var minSuccess: Double = 100
    @Option(help: "Percent of the requests that disconnect at a random moment (upload, wait or download), half of them with a reset; counted apart.")
    var disconnect: Double = 0
    @Flag(help: "Check status, type and length only; do not decode the answers.") var noVerify = false
    @Flag(help: "Send each video as an async job (Prefer: respond-async), follow its events to the end, then download and check its result.")
    var async = false
    @Option(help: "Also write the report as JSON to this file.") var json: String?

    func validate() throws {
        guard requests >= 1 else { throw ValidationError("--requests must be at least 1") }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard (0...100).contains(minSuccess) else { throw ValidationError("--min-success must be 0...100") }
        guard (0...100).contains(disconnect) else { throw ValidationError("--disconnect must be 0...100") }
        guard file == nil || dir == nil else { throw ValidationError("--file and --dir exclude each other") }
        guard !async || disconnect == 0 else { throw ValidationError("--async and --disconnect exclude each other") }
    }

    func run() throws {
        do {
            try trial()
        } catch let error as HarnessError {
            // 2, not 1: a run that could not start is not a run under --min-success.
            FileHandle.standardError.write(Data("harness: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    private func trial() throws {
        let endpoints = try (url.isEmpty ? ["http://127.0.0.1:3000"] : url).map { url throws(HarnessError) in
            try Endpoint(url: url)
        }
        let verify = !noVerify
        var scratch: String?
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        let inputs: [InputVideo]
        if let file {
            inputs = [try InputVideo.load(file, verify: verify)]
        } else if let dir {
            inputs = try InputVideo.loadDirectory(dir, verify: verify)
        } else {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("harness-\(getpid())").path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            scratch = folder
            inputs = [try InputVideo.generate(in: folder)]
        }
        var configuration = RunConfiguration(endpoint: endpoints[0], inputs: inputs)
        configuration.otherEndpoints = Array(endpoints.dropFirst())
        configuration.keepAlive = keepAlive
        configuration.requests = requests
        configuration.concurrency = concurrency
        configuration.query = query
        configuration.timeout = timeout
        configuration.verify = verify
        configuration.disconnectPercent = disconnect
        configuration.async = async
        // Each request thread holds a socket and a temp file at once: a thousand of them need more than the usual
        // soft limit of 1024 descriptors.
        raiseDescriptorLimit()
        let report = Runner.run(configuration)
        print(report.text)
        if let json { try report.writeJSON(to: json) }
        if !report.passes(minimumSuccessRate: minSuccess) { throw ExitCode(1) }
    }
}
