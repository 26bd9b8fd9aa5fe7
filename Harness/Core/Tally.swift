import Histogram

/// The running counts, shared by the request threads under one lock: each update is a few additions, so the
/// lock is never held long.
struct Tally: Sendable {
    var done = 0
    var succeeded = 0
    var abandoned = 0
    var failures: [FailureCause: Int] = [:]
    var examples: [FailureCause: String] = [:]
    /// Microseconds, up to an hour, three significant digits.
    var latency = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    var inputBytes: Int64 = 0
    var outputBytes: Int64 = 0
    /// TCP connections the request threads opened (fewer than the requests only with keep-alive).
    var connections = 0

    mutating func recordSuccess(latencyNanos: UInt64, inputBytes: Int64, outputBytes: Int64) {
        done += 1
        succeeded += 1
        _ = latency.record(min(latencyNanos / 1000, 3_600_000_000))
        self.inputBytes += inputBytes
        self.outputBytes += outputBytes
    }

    mutating func recordAbandoned() {
        done += 1
        abandoned += 1
    }

    mutating func recordFailure(_ failure: Failure) {
        done += 1
        failures[failure.cause, default: 0] += 1
        if examples[failure.cause] == nil { examples[failure.cause] = failure.detail }
    }

    func report(url: String, requests: Int, concurrency: Int, verified: Bool, wallSeconds: Double) -> Report {
        let milliseconds = { (micros: UInt64) in Double(micros) / 1000 }
        let wall = max(wallSeconds, 1e-9)
        let counted = requests - abandoned
        return Report(
            url: url, requests: requests, concurrency: concurrency, verified: verified,
            succeeded: succeeded, failed: counted - succeeded, abandoned: abandoned,
            successRate: counted == 0 ? 0 : 100 * Double(succeeded) / Double(counted),
            failures: Dictionary(uniqueKeysWithValues: failures.map { ($0.key.description, $0.value) }),
            failureExamples: Dictionary(uniqueKeysWithValues: examples.map { ($0.key.description, $0.value) }),
            latencyMs: latency.totalCount == 0
                ? nil
                : Report.Latency(
                    p50: milliseconds(latency.valueAtPercentile(50)), p90: milliseconds(latency.valueAtPercentile(90)),
                    p99: milliseconds(latency.valueAtPercentile(99)), max: milliseconds(latency.max)),
            wallSeconds: wallSeconds, jobsPerSecond: Double(succeeded) / wall,
            inputMBPerSecond: Double(inputBytes) / 1e6 / wall, inputBytes: inputBytes, outputBytes: outputBytes,
            connections: connections)
    }
}
