import ArgumentParser
import Dispatch
import Glibc
import SystemSupport
import Logging
import SplitStitch
import TranscodeService
import Transcoding
import WorkerIsolation
import Jobs

/// `ffmpeg-processor serve` (the default): the HTTP service. Every option also reads an environment variable.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve POST /<video_id> (or an async job under /jobs/<id>), GET /about and GET /metrics.",
        discussion: """
            Each option can also be set with the environment variable in brackets; a flag wins over the variable.
            SIGTERM or SIGINT first makes the service a lame duck for the shutdown delay (/about answers 503 so that
            load balancers stop sending, but every request is still served), then drains (no new connections or
            jobs, admitted jobs finish up to the drain timeout) and exits 0; a second signal exits at once.
            """
    )

    @Option(help: "Address to listen on: IPv4, IPv6 (:: takes both) or a name such as localhost [HOST].") var host: String?
    @Option(help: "Port [PORT].") var port: Int?
    @Option(help: "Transcoding threads; default one per core the container allows (cgroup cpu.max, affinity mask) [WORKERS].") var workers: Int?
    @Option(help: "Requests admitted beyond the running ones [QUEUE].") var queue: Int?
    @Option(help: "Nice value of the transcoding threads, 0-19, so they yield to the event loop [WORKER_NICE].")
    var workerNice: Int?
    @Option(help: "nice (the default: normal scheduling at --worker-nice) or idle (SCHED_IDLE: requests preempt transcodes at once; for a machine or container that runs nothing else) [WORKER_POLICY].")
    var workerPolicy: String?
    @Option(help: "Largest body: bytes, or a size such as 1GiB or 512MiB [MAX_BODY].") var maxBody: String?
    @Option(help: "Declared upload bytes admitted at once, e.g. 8GiB [QUEUE_BYTES].") var queueBytes: String?
    @Option(help: "Folder for the anonymous temp files [TMP_DIR].") var tmpDir: String?
    @Option(help: "Time limit of one transcode, to which --job-time-per-video-second adds: seconds, or e.g. 10m [JOB_TIMEOUT].")
    var jobTimeout: String?
    @Option(help: "Seconds of time limit added per second of 1080p video, in proportion to the output's pixels [JOB_TIME_PER_VIDEO_SECOND].")
    var jobTimePerVideoSecond: Double?
    @Option(help: "A job that encodes no frame for this long is killed, whatever its limit: seconds, or e.g. 1m [STALL_TIMEOUT].")
    var stallTimeout: String?
    @Option(help: "Seconds after SIGTERM during which /about answers 503 but everything is still served, so load balancers take the replica out first [SHUTDOWN_DELAY].")
    var shutdownDelay: String?
    @Option(help: "Time SIGTERM waits for jobs after the shutdown delay: seconds, or e.g. 1m [DRAIN_TIMEOUT].") var drainTimeout: String?
    @Option(help: "Open connections; at the limit the oldest idle one makes room [MAX_CONNECTIONS].")
    var maxConnections: Int?
    @Option(help: "Seconds a client may take to send its request head [HEADER_TIMEOUT].") var headerTimeout: String?
    @Option(help: "Seconds an upload may stall before its connection is dropped [BODY_IDLE_TIMEOUT].")
    var bodyIdleTimeout: String?
    @Option(help: "Slowest upload accepted after a 10 s grace, bytes/s (e.g. 1024 or 1KiB); 0 disables [MIN_BODY_RATE].")
    var minBodyRate: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical [LOG_LEVEL].") var logLevel: String?
    @Option(help: "Proxies whose X-Forwarded-For names the client in the log: addresses or CIDR networks, comma-separated, e.g. 127.0.0.1,10.0.0.0/8; none by default [TRUSTED_PROXY].")
    var trustedProxy: String?
    @Option(help: "process (the default: each transcode in a sandboxed worker process, so a crash costs one job) or thread (in this process, as before) [ISOLATION].")
    var isolation: String?
    @Option(help: "Address space of one job's process, bytes or e.g. 4GiB; a job that needs more gets 413 [JOB_MEMORY]. Default \(ServiceConfig.jobMemoryCeiling >> 30) GiB, or less when the cgroup's memory.max cannot hold that for every worker.")
    var jobMemory: String?
    @Option(help: "Names this replica in async job ids (<replica>.<random>), so a balancer can route /jobs/<replica>. to it; default the host name [REPLICA_NAME].")
    var replicaName: String?
    @Option(help: "Folder for async results, emptied at start; default ffmpeg-processor-results under --tmp-dir [RESULTS_DIR].")
    var resultsDir: String?
    @Option(help: "How long a finished async job and its result are kept: seconds, or e.g. 1h; then 410 [RESULT_TTL].")
    var resultTtl: String?
    @Option(help: "Bytes of async results kept at once, or e.g. 16GiB; past it new async requests get 503 [RESULT_BYTES]. Default 16 GiB.")
    var resultBytes: String?
    @Option(help: "Hosts async jobs' webhooks may go to: names, addresses or CIDR networks, comma-separated; none by default [CALLBACK_ALLOW].")
    var callbackAllow: String?
    @Option(help: "The Standard Webhooks secret (whsec_ and base64) that signs every webhook; needed with --callback-allow [CALLBACK_SECRET].")
    var callbackSecret: String?
    @Option(help: "auto (the default: an H.264/MP4 video longer than --split-min-seconds is cut at keyframes and its segments encoded in parallel, when more than one worker can take one) or off [SPLIT].")
    var split: String?
    @Option(help: "About how long each segment of a split video is: seconds, or e.g. 10s; cuts land on keyframes [SEGMENT_SECONDS].")
    var segmentSeconds: String?
    @Option(help: "Videos up to this long (seconds, or e.g. 1m) are never split [SPLIT_MIN_SECONDS].")
    var splitMinSeconds: String?
    @Option(help: "The balancer in front of the replicas, http://host:port: a split video's segments go through it to any replica, and back to this one's own pool after 3 failed tries; none by default [CLUSTER_URL].")
    var clusterUrl: String?

    func run() async throws {
        var config = ServiceConfig()
        let env = Environment()
        config.host = try host ?? env.string("HOST") ?? config.host
        config.port = try port ?? env.number("PORT") ?? config.port
        config.workers = try workers ?? env.number("WORKERS") ?? config.workers
        config.workerNice = try workerNice ?? env.number("WORKER_NICE") ?? config.workerNice
        if let policy = try workerPolicy ?? env.string("WORKER_POLICY") {
            guard let parsed = WorkerPolicy(rawValue: policy) else {
                throw ValidationError("worker-policy must be nice or idle, not \(policy)")
            }
            config.workerPolicy = parsed
        }
        config.queue = try queue ?? env.number("QUEUE") ?? config.queue
        config.maxBody = try env.size(maxBody, "MAX_BODY") ?? config.maxBody
        config.queueBytes = try env.size(queueBytes, "QUEUE_BYTES") ?? config.queueBytes
        config.tmpDir = try tmpDir ?? env.string("TMP_DIR") ?? config.tmpDir
        config.jobTimeout = try env.seconds(jobTimeout, "JOB_TIMEOUT") ?? config.jobTimeout
        config.jobTimePerVideoSecond = try jobTimePerVideoSecond ?? env.number("JOB_TIME_PER_VIDEO_SECOND")
            ?? config.jobTimePerVideoSecond
        config.stallTimeout = try env.seconds(stallTimeout, "STALL_TIMEOUT") ?? config.stallTimeout
        config.drainTimeout = try env.seconds(drainTimeout, "DRAIN_TIMEOUT") ?? config.drainTimeout
        config.shutdownDelay = try env.seconds(shutdownDelay, "SHUTDOWN_DELAY") ?? config.shutdownDelay
        config.maxConnections = try maxConnections ?? env.number("MAX_CONNECTIONS") ?? config.maxConnections
        config.headerTimeout = try env.seconds(headerTimeout, "HEADER_TIMEOUT") ?? config.headerTimeout
        config.bodyIdleTimeout = try env.seconds(bodyIdleTimeout, "BODY_IDLE_TIMEOUT") ?? config.bodyIdleTimeout
        config.minBodyRate = try env.size(minBodyRate, "MIN_BODY_RATE").map { Int(clamping: $0) } ?? config.minBodyRate
        config.logLevel = try logLevel ?? env.string("LOG_LEVEL") ?? config.logLevel
        if let proxies = try trustedProxy ?? env.string("TRUSTED_PROXY") {
            guard let parsed = ServiceConfig.trustedProxies(parsing: proxies) else {
                throw ValidationError("trusted-proxy must be addresses or CIDR networks, comma-separated, not \(proxies)")
            }
            config.trustedProxies = parsed
        }
        if let isolation = try isolation ?? env.string("ISOLATION") {
            guard let parsed = Isolation(rawValue: isolation) else {
                throw ValidationError("isolation must be process or thread, not \(isolation)")
            }
            config.isolation = parsed
        }
        config.worker.jobMemory = try env.size(jobMemory, "JOB_MEMORY")
            ?? ServiceConfig.defaultJobMemory(workers: config.workers, memoryMax: ServiceConfig.container.memoryMax)
        config.replicaName = try replicaName ?? env.string("REPLICA_NAME") ?? config.replicaName
        config.resultsDir = try resultsDir ?? env.string("RESULTS_DIR") ?? config.resultsDir
        config.resultTTL = try env.seconds(resultTtl, "RESULT_TTL") ?? config.resultTTL
        config.resultBytes = try env.size(resultBytes, "RESULT_BYTES") ?? config.resultBytes
        if let allow = try callbackAllow ?? env.string("CALLBACK_ALLOW") {
            guard let parsed = CallbackAllowList(parsing: allow) else {
                throw ValidationError("callback-allow must be host names, addresses or CIDR networks, comma-separated")
            }
            config.callbackAllow = parsed
        }
        config.callbackSecret = try callbackSecret ?? env.string("CALLBACK_SECRET") ?? config.callbackSecret
        if !config.callbackAllow.isEmpty {
            guard config.callbackSecret.flatMap(WebhookSigner.init(secret:)) != nil else {
                throw ValidationError("callback-allow needs a callback-secret: whsec_ and the key in base64")
            }
        }
        guard config.resultTTL > 0, config.resultBytes > 0 else {
            throw ValidationError("result-ttl and result-bytes must be positive")
        }
        if let split = try split ?? env.string("SPLIT") {
            guard let parsed = SplitSettings.Mode(rawValue: split.lowercased()) else {
                throw ValidationError("split must be auto or off, not \(split)")
            }
            config.split.mode = parsed
        }
        config.split.segmentSeconds = try env.seconds(segmentSeconds, "SEGMENT_SECONDS") ?? config.split.segmentSeconds
        config.split.minimumSeconds = try env.seconds(splitMinSeconds, "SPLIT_MIN_SECONDS") ?? config.split.minimumSeconds
        if let url = try clusterUrl ?? env.string("CLUSTER_URL") {
            guard let parsed = ClusterURL(url) else { throw ValidationError("cluster-url must be http://host[:port], not \(url)") }
            config.clusterURL = parsed
        }
        guard config.split.segmentSeconds >= 1, config.split.minimumSeconds >= 0 else {
            throw ValidationError("segment-seconds must be at least 1 and split-min-seconds at least 0")
        }
        // The binary started as `worker` is this one, unless a test run says otherwise: `make test-tsan` has
        // ThreadSanitizer's service start a plain build, since TSan's shadow memory cannot live under RLIMIT_AS.
        config.worker.executable = try env.string("FFMPEG_PROCESSOR_WORKER_EXECUTABLE") ?? config.worker.executable
        guard config.worker.jobMemory >= 256 << 20 else { throw ValidationError("job-memory must be at least 256 MiB") }
        guard let level = Logger.Level(rawValue: config.logLevel) else {
            throw ValidationError("log level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard (0...65535).contains(config.port) else { throw ValidationError("port must be 0...65535") }
        guard config.workers >= 1, config.queue >= 0, config.maxConnections >= 1, config.maxBody > 0,
            config.queueBytes > 0, config.jobTimeout > 0, config.jobTimePerVideoSecond >= 0,
            config.stallTimeout > 0, config.drainTimeout >= 0, config.shutdownDelay >= 0,
            config.headerTimeout > 0, config.bodyIdleTimeout > 0, config.minBodyRate >= 0,
            (0...19).contains(config.workerNice)
        else {
            throw ValidationError(
                "workers ≥ 1, queue ≥ 0, min-body-rate ≥ 0, shutdown-delay ≥ 0, worker-nice 0...19, and connections, "
                    + "sizes and timeouts must be positive")
        }

        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ffmpeg-processor")
        JobMemory.keepFreedMemoryForNextJob()
        let descriptors = raiseDescriptorLimit()
        // Each connection is a descriptor, each job one or two more; past the limit accept() fails and new clients
        // wait in the backlog, which is survivable but worth saying at start-up.
        if descriptors < config.maxConnections + 2 * (config.workers + config.queue) + 64 {
            logger.warning(
                """
                descriptor limit \(descriptors) is below what max-connections=\(config.maxConnections) needs: \
                raise it (ulimit -n) or lower max-connections
                """)
        }
        let service = try Service(config: config, logger: logger)
        let signals = SignalWatcher()
        // Not listening (and so not saying so) before SIGTERM is heard: until Dispatch has registered a source, the
        // signal is ignored, and a supervisor's SIGTERM right after start-up was lost (the drain never began).
        if !signals.waitUntilRegistered(seconds: 10) {
            logger.warning("signal handling not confirmed after 10 s: SIGTERM may be ignored until it is")
        }
        _ = try service.start()
        await signals.first()
        logger.info("signal received: draining (a second signal exits at once)")
        signals.onNext { _exit(130) }
        // The drain is bounded by its own clock, but it runs on the cooperative pool and ends by joining the event
        // loops: should either ever stall (seen once in CI, never reproduced), the replica must still go away by
        // itself rather than wait for the orchestrator's SIGKILL. A queue of its own, not a global one: on Linux the
        // global queues share their few threads with that pool, and a timer there waited behind the stalled drain.
        let bound = config.shutdownDelay + config.drainTimeout + 10
        DispatchQueue(label: "drain-bound").asyncAfter(deadline: .now() + bound) { [logger] in
            logger.error("the drain did not end within \(Int(bound)) s of the signal: exiting without it")
            _exit(70)
        }
        #if DEBUG
        // The test of the timer above: a drain that never ends.
        if getenv("FFMPEG_PROCESSOR_DEBUG_STALL_DRAIN").map({ String(cString: $0) }) == "1" {
            while true { pause() }
        }
        #endif
        await service.drainAndStop()
        logger.info("stopped")
    }
}

/// SIGTERM and SIGINT as events instead of process death.
final class SignalWatcher: @unchecked Sendable {
    // The sources are set up once in init; later calls only replace their handlers, which Dispatch allows.
    private let sources: [DispatchSourceSignal]
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let registered = DispatchSemaphore(value: 0)
    init() {
        (stream, continuation) = AsyncStream.makeStream()
        let queue = DispatchQueue(label: "signals")
        sources = [SIGTERM, SIGINT].map { signal in
            Glibc.signal(signal, SIG_IGN)
            return DispatchSource.makeSignalSource(signal: signal, queue: queue)
        }
        for source in sources {
            source.setEventHandler { [continuation] in continuation.yield() }
            source.setRegistrationHandler { [registered] in registered.signal() }
            source.resume()
        }
    }

    /// Whether every source was registered (its signal no longer ignored) within `seconds`.
    func waitUntilRegistered(seconds: Double) -> Bool {
        let deadline = DispatchTime.now() + seconds
        for _ in sources where registered.wait(timeout: deadline) == .timedOut { return false }
        return true
    }

    func first() async {
        for await _ in stream { return }
    }

    /// Runs `action` on every later signal.
    func onNext(_ action: @escaping @Sendable () -> Void) {
        for source in sources { source.setEventHandler(handler: action) }
    }
}

/// Reads the environment, refusing values that do not parse instead of ignoring them.
struct Environment {
    func string(_ name: String) throws -> String? {
        getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    func number<T: LosslessStringConvertible>(_ name: String) throws -> T? {
        guard let text = try string(name) else { return nil }
        guard let value = T(text) else { throw ValidationError("\(name)=\(text) is not a valid number") }
        return value
    }

    /// The flag's value, else the variable's, read as a size (`1GiB`, `512MiB`, `4G` or bytes).
    func size(_ flag: String?, _ name: String) throws -> Int64? {
        try quantity(flag, name, ConfigQuantity.bytes, "a size such as 1GiB, 512MiB, 4G or a number of bytes")
    }

    /// The flag's value, else the variable's, read as a duration (`600s`, `10m` or seconds).
    func seconds(_ flag: String?, _ name: String) throws -> Double? {
        try quantity(flag, name, ConfigQuantity.seconds, "a duration such as 600s, 10m or a number of seconds")
    }

    private func quantity<T>(_ flag: String?, _ name: String, _ parse: (String) -> T?, _ expected: String) throws -> T? {
        let (text, source): (String?, String) =
            flag != nil ? (flag, "--" + String(name.lowercased().map { $0 == "_" ? "-" : $0 })) : (try string(name), name)
        guard let text else { return nil }
        guard let value = parse(text) else { throw ValidationError("\(source) \(text) is not \(expected)") }
        return value
    }
}
