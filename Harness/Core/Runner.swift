import Foundation
import Synchronization
import SystemSupport

/// Everything one run needs; `Harness/` main fills it from the command line, tests directly.
public struct RunConfiguration: Sendable {
    public var endpoint: Endpoint
    /// More endpoints beside `endpoint` (replicas reached straight, with no balancer): each new connection goes to
    /// the next of them all in turn.
    public var otherEndpoints: [Endpoint] = []
    /// Each thread keeps its connection for job after job until the server closes it, then connects to the next
    /// endpoint, as the clients of a Kubernetes Service do; otherwise a connection per job.
    public var keepAlive = false
    public var inputs: [InputVideo]
    public var requests = 1000
    public var concurrency = 1000
    /// Query string for every request (`height=480`), without the `?`.
    public var query: String?
    /// Seconds one request may take, from connecting to the last byte of the answer.
    public var timeout = 120.0
    /// Decode every answer and compare it with its input; the status and framing are checked regardless.
    public var verify = true
    public var progress = ProgressStyle.automatic
    /// Percent of the requests that walk away on purpose at a random moment (`Disconnect`); they are counted
    /// apart, and the success rate is over the others.
    public var disconnectPercent = 0.0
    /// Where answers are spooled before they are checked.
    public var temporaryDirectory = AnonymousFile.defaultDirectory
    /// Each request as an async job: submitted with `Prefer: respond-async`, followed through its event stream to
    /// its final state, then downloaded from `/jobs/<id>/output`; its latency is all three.
    public var async = false

    public init(endpoint: Endpoint, inputs: [InputVideo]) {
        self.endpoint = endpoint
        self.inputs = inputs
    }
}

/// Sends the requests from `concurrency` threads of its own, each taking the next job until none is left. Plain
/// threads rather than tasks: every exchange blocks in poll(), and a thousand of them on Swift's cooperative pool
/// (one thread per core) would starve each other and anything else in the process.
public enum Runner {
    public static func run(_ configuration: RunConfiguration) -> Report {
        precondition(!configuration.inputs.isEmpty && configuration.requests >= 0 && configuration.concurrency > 0)
        let shared = Shared()
        let start = monotonicNanos()
        let threads = min(configuration.concurrency, configuration.requests)
        let group = DispatchGroup()
        for index in 0..<threads {
            group.enter()
            let thread = Thread {
                work(configuration, shared, first: index, start: start)
                group.leave()
            }
            // libav's decoders run on these threads when verifying; 1 MB is ample and only reserved, not used.
            thread.stackSize = 1 << 20
            thread.start()
        }
        let elapsed = { Double(monotonicNanos() - start) / 1e9 }
        if let interval = configuration.progress.interval {
            while group.wait(timeout: .now() + interval) == .timedOut {
                let tally = shared.tally.withLock { ($0.done, $0.succeeded, $0.abandoned) }
                configuration.progress.show(
                    done: tally.0, total: configuration.requests, succeeded: tally.1, abandoned: tally.2,
                    elapsed: elapsed(), final: false)
            }
        } else {
            group.wait()
        }
        let wall = elapsed()
        return shared.tally.withLock { tally in
            configuration.progress.show(
                done: tally.done, total: configuration.requests, succeeded: tally.succeeded, abandoned: tally.abandoned,
                elapsed: wall, final: true)
            return tally.report(
                url: configuration.endpoint.url, requests: configuration.requests,
                concurrency: configuration.concurrency, verified: configuration.verify, wallSeconds: wall)
        }
    }

    private final class Shared: Sendable {
        let next = Atomic<Int>(0)
        let tally = Locked(Tally())
        /// Decoding answers is CPU work: one per core, so verification does not crowd out a service on this machine
        /// more than it must, and the latency of the requests still in flight is not skewed by it.
        let decoders = DispatchSemaphore(value: ProcessInfo.processInfo.activeProcessorCount)
    }

    private static func work(_ configuration: RunConfiguration, _ shared: Shared, first: Int, start: UInt64) {
        let endpoints = [configuration.endpoint] + configuration.otherEndpoints
        let client = UploadClient(
            endpoints: endpoints, first: first % endpoints.count, keepAlive: configuration.keepAlive,
            temporaryDirectory: configuration.temporaryDirectory)
        let timeout = UInt64(configuration.timeout * 1e9)
        while true {
            let index = shared.next.wrappingAdd(1, ordering: .relaxed).oldValue
            guard index < configuration.requests else {
                shared.tally.withLock { $0.connections += client.connections }
                return
            }
            let input = configuration.inputs[index % configuration.inputs.count]
            let disconnect = Disconnect.plan(percent: configuration.disconnectPercent, uploadBytes: input.size)
            // Every --url shares the first one's path prefix: the replicas of one service.
            let target = configuration.endpoint.target(videoID: "harness-\(index)", query: configuration.query)
            let begin = monotonicNanos()
            let result = configuration.async
                ? AsyncExchange.run(client, target: target, input: input, deadline: begin + timeout)
                : client.post(
                    target: target, input: input.fd, size: input.size, deadline: begin + timeout, disconnect: disconnect)
            let latency = monotonicNanos() - begin
            switch result {
            case .abandoned:
                shared.tally.withLock { $0.recordAbandoned() }
            case .failed(let failure):
                shared.tally.withLock { $0.recordFailure(failure) }
            case .answered(let answer):
                let needsDecoding = configuration.verify && answer.status == 200
                if needsDecoding { shared.decoders.wait() }
                let failure = Verification.check(answer, input: input, decode: configuration.verify)
                if needsDecoding { shared.decoders.signal() }
                shared.tally.withLock { tally in
                    if let failure {
                        tally.recordFailure(failure)
                    } else {
                        tally.recordSuccess(latencyNanos: latency, inputBytes: input.size, outputBytes: answer.bodyBytes)
                    }
                }
            }
        }
    }
}
