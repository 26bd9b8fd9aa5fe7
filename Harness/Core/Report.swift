import Foundation

/// What a run came to; printed at the end and written as JSON by `--json`.
public struct Report: Codable, Sendable {
    public struct Latency: Codable, Sendable, Equatable {
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var max: Double
    }

    public var url: String
    public var requests: Int
    public var concurrency: Int
    /// Whether answers were decoded and compared with their input (false under `--no-verify`).
    public var verified: Bool
    /// Valid MP4s.
    public var succeeded: Int
    public var failed: Int
    /// Requests the harness walked away from on purpose (`--disconnect`): neither successes nor failures.
    public var abandoned: Int
    /// Valid MP4s per request not abandoned, percent.
    public var successRate: Double
    /// Failed requests by cause: "connect", "timeout", "connection lost", "http 503", "invalid output"...
    public var failures: [String: Int]
    /// The first failure's detail for each cause, to tell what went wrong without a rerun.
    public var failureExamples: [String: String]
    /// Milliseconds from connecting to the last byte of the answer, over the valid answers.
    public var latencyMs: Latency?
    public var wallSeconds: Double
    /// Valid MP4s per second of wall time.
    public var jobsPerSecond: Double
    /// Megabytes (10^6) of input behind the valid MP4s, per second of wall time.
    public var inputMBPerSecond: Double
    public var inputBytes: Int64
    public var outputBytes: Int64
    /// TCP connections opened: one per request, or with `--keep-alive` one per server close.
    public var connections: Int

    /// True when the run reached `minimum` percent of valid MP4s.
    public func passes(minimumSuccessRate minimum: Double) -> Bool { successRate >= minimum }

    public var text: String {
        var lines: [String] = []
        func row(_ label: String, _ value: String) { lines.append(label.padding(toLength: 14, withPad: " ", startingAt: 0) + value) }
        row("target", "\(url)  \(requests) requests at concurrency \(concurrency)\(verified ? "" : " (outputs not decoded)")")
        row("success", String(format: "%.2f %% (%d valid MP4s of %d requests)", successRate, succeeded, requests - abandoned))
        if abandoned > 0 { row("abandoned", "\(abandoned) requests walked away from on purpose") }
        if failures.isEmpty {
            row("failures", "none")
        } else {
            row("failures", failures.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            for (cause, detail) in failureExamples.sorted(by: { $0.key < $1.key }) { row("", "e.g. \(cause): \(detail)") }
        }
        if let l = latencyMs {
            row("latency", String(format: "p50 %.0f ms  p90 %.0f ms  p99 %.0f ms  max %.0f ms", l.p50, l.p90, l.p99, l.max))
        } else {
            row("latency", "no valid answer")
        }
        row("throughput", String(format: "%.2f jobs/s, %.2f MB/s of input", jobsPerSecond, inputMBPerSecond))
        row("connections", "\(connections) opened")
        row("wall time", String(format: "%.2f s", wallSeconds))
        return lines.joined(separator: "\n")
    }

    public func writeJSON(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}
