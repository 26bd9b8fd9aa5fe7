import WorkerIsolation
import Glibc
import HTTPServer
import Jobs
import Logging
import SystemSupport

/// The whole service: the HTTP server, the routes and the worker pool, with its drain-and-stop lifecycle.
public final class Service: Sendable {
    public let config: ServiceConfig
    public let pool: WorkerPool
    public let lifecycle = Lifecycle()
    /// The async jobs (`Prefer: respond-async`) and their results.
    public let jobs: JobRegistry
    /// Removes expired results while no request looks at them.
    private let expiry: Task<Void, Never>
    private let server: Server
    private let logger: Logger

    public init(config: ServiceConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        guard (try? fileStatus(atPath: config.tmpDir))?.isDirectory == true else {
            throw ServiceError.badTemporaryDirectory(config.tmpDir)
        }
        let metrics = ServiceMetrics()
        let workers = WorkerObservation(metrics: metrics, logger: logger)
        pool = WorkerPool(
            workers: config.workers, queueCapacity: config.queue, byteBudget: config.queueBytes,
            niceness: Int32(config.workerNice), idlePolicy: config.workerPolicy == .idle,
            isolation: config.isolation == .process ? .process(config.worker) : .thread,
            observe: { workers.observe($0) })
        let store = ResultStore(directory: config.effectiveResultsDir, budget: config.resultBytes)
        let jobs = JobRegistry(replica: JobID.replicaName(config.replicaName), store: store, ttl: config.resultTTL)
        self.jobs = jobs
        let period = Duration.milliseconds(Int64(min(max(config.resultTTL / 4, 0.05), 30) * 1000))
        expiry = Task {
            while (try? await Task.sleep(for: period)) != nil { jobs.expireDue() }
        }
        let webhooks = config.callbackSecret.flatMap(WebhookSigner.init(secret:)).map { signer in
            WebhookSender(
                signer: signer, firstRetry: config.callbackFirstRetry, retryWindow: config.callbackRetryWindow,
                observe: { metrics.webhookAttempted(delivered: $0) })
        }
        let routes = Routes(
            config: config, pool: pool, lifecycle: lifecycle, metrics: metrics, jobs: jobs, webhooks: webhooks)
        let observation = Observation(metrics: metrics, logger: logger, trustedProxies: config.trustedProxies)
        server = Server(
            configuration: ServerConfiguration(
                host: config.host, port: config.port, eventLoopThreads: config.eventLoopThreads,
                maxConnections: config.maxConnections, maxBodySize: config.maxBody,
                headerTimeout: .milliseconds(Int64(config.headerTimeout * 1000)),
                bodyIdleTimeout: .milliseconds(Int64(config.bodyIdleTimeout * 1000)), minBodyRate: config.minBodyRate,
                serverName: "ffmpeg-processor", observesForwardedFor: !config.trustedProxies.isEmpty,
                allowedMethods: Routes.serverWideMethods),
            fastPath: { routes.fastPath($0) },
            observer: { observation.observe($0) },
            handler: { await routes.handle($0, $1) })
    }

    /// Binds and starts serving; returns the bound port.
    public func start() throws -> Int {
        let port = try server.start()
        // An IPv6 literal in brackets, so the port cannot be read as one more group of it.
        let host = config.host.contains(":") && !config.host.hasPrefix("[") ? "[\(config.host)]" : config.host
        logger.info("listening on \(host):\(port) with \(config.summary) replica=\(jobs.replica)")
        return port
    }

    /// The shutdown: lame duck for `shutdownDelay` (unready, still serving everything, each answer closing its
    /// connection), then idle connections closed and no new connections or jobs while the admitted ones finish (up
    /// to `drainTimeout`), then everything closed.
    public func drainAndStop() async {
        let delay = Duration.milliseconds(Int64(config.shutdownDelay * 1000))
        let drain = Duration.milliseconds(Int64(config.drainTimeout * 1000))
        lifecycle.beginLameDuck(endingBy: monotonicNanos() + (delay + drain).nanoseconds)
        // After the lifecycle: a health check polling on a kept connection then sees the 503 with the close (a
        // 200 with it only if that answer was built in the instant between the two stores).
        server.endKeepAlive()
        if config.shutdownDelay > 0 {
            logger.info("lame duck: /about answers 503 draining; still serving for \(config.shutdownDelay) s")
            try? await Task.sleep(for: delay)
        }
        lifecycle.beginDraining()
        // Closed before the listener goes, as Go's Server.Shutdown and nginx do: a request sent on one from now on
        // could only be refused. Few are left: every answer of the lame duck closed its connection.
        server.closeIdleConnections()
        server.stopAccepting()
        logger.info("draining: \(pool.counters.inFlight) request(s) in flight")
        let deadline = ContinuousClock.now + drain
        while pool.counters.inFlight > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        // Let the last responses reach their sockets, and the closed connections' clients answer our FIN; a
        // client that never does would hold this to the deadline, so the wait is short.
        let grace = min(deadline, ContinuousClock.now + .seconds(3))
        while server.openConnections > 0 && ContinuousClock.now < grace {
            try? await Task.sleep(for: .milliseconds(50))
        }
        stop()
    }

    /// Closes every connection at once and stops the workers.
    public func stop() {
        expiry.cancel()
        server.shutdown()
        Task { [pool] in await pool.shutdown() }
    }

    public var openConnections: Int { server.openConnections }
}

public enum ServiceError: Error, CustomStringConvertible {
    case badTemporaryDirectory(String)

    public var description: String {
        switch self {
        case .badTemporaryDirectory(let path): "the temp directory \(path) does not exist or is not a directory"
        }
    }
}
