import WorkerIsolation
import CoreMetrics
import HTTPServer
import Jobs
import Prometheus
import SystemSupport
import Transcoding

/// The service's metrics, through swift-metrics with a Prometheus registry of its own (no global bootstrap, so
/// several services can live in one test process). Exposed as text by `GET /metrics`.
public final class ServiceMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let requests = Locked<[RequestKey: CoreMetrics.Counter]>([:])

    /// A struct rather than an interpolated string: no allocation per request to find its counter.
    private struct RequestKey: Hashable {
        let route: String
        let status: Int
    }
    private let bytesIn: CoreMetrics.Counter
    private let bytesOut: CoreMetrics.Counter
    private let rejections: CoreMetrics.Counter
    private let queueDepth: CoreMetrics.Gauge
    private let running: CoreMetrics.Gauge
    private let capacity: CoreMetrics.Gauge
    private let queueWait: CoreMetrics.Timer
    private let transcodeTime: CoreMetrics.Timer
    private let handoffTime: CoreMetrics.Timer
    private let readyWorkers: CoreMetrics.Gauge
    private let restarts: CoreMetrics.Counter
    private let forkTime: CoreMetrics.Timer
    private let crashes = Locked<[String: CoreMetrics.Counter]>([:])
    private let split = Locked<[String: CoreMetrics.Counter]>([:])
    private let asyncJobs: [JobState: CoreMetrics.Gauge]
    private let resultBytes: CoreMetrics.Gauge
    private let eventWatchers: CoreMetrics.Gauge
    private let webhooksDelivered: CoreMetrics.Counter
    private let webhooksFailed: CoreMetrics.Counter
    /// Jobs done, by the codec written: four series, made up front.
    private let transcodes: [VideoCodec: CoreMetrics.Counter]
    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300),
        ]
        self.factory = factory
        bytesIn = CoreMetrics.Counter(label: "ffmpeg_processor_bytes_in_total", factory: factory)
        bytesOut = CoreMetrics.Counter(label: "ffmpeg_processor_bytes_out_total", factory: factory)
        rejections = CoreMetrics.Counter(label: "ffmpeg_processor_rejections_total", factory: factory)
        queueDepth = CoreMetrics.Gauge(label: "ffmpeg_processor_queue_depth", factory: factory)
        running = CoreMetrics.Gauge(label: "ffmpeg_processor_running_jobs", factory: factory)
        // Workers + queue: what queue depth and running jobs are measured against (deploy/prometheus/alerts.yml).
        capacity = CoreMetrics.Gauge(label: "ffmpeg_processor_capacity", factory: factory)
        queueWait = CoreMetrics.Timer(label: "ffmpeg_processor_queue_wait_seconds", factory: factory)
        transcodeTime = CoreMetrics.Timer(label: "ffmpeg_processor_transcode_seconds", factory: factory)
        handoffTime = CoreMetrics.Timer(label: "ffmpeg_processor_handoff_seconds", factory: factory)
        readyWorkers = CoreMetrics.Gauge(label: "ffmpeg_processor_workers_ready", factory: factory)
        restarts = CoreMetrics.Counter(label: "ffmpeg_processor_worker_restarts_total", factory: factory)
        forkTime = CoreMetrics.Timer(label: "ffmpeg_processor_worker_fork_seconds", factory: factory)
        asyncJobs = Dictionary(uniqueKeysWithValues: JobState.allCases.map { state in
            (state, CoreMetrics.Gauge(
                label: "ffmpeg_processor_async_jobs", dimensions: [("state", state.rawValue)], factory: factory))
        })
        resultBytes = CoreMetrics.Gauge(label: "ffmpeg_processor_result_bytes", factory: factory)
        // Event streams and `wait=` requests: each costs a task and its buffers, never a thread.
        eventWatchers = CoreMetrics.Gauge(label: "ffmpeg_processor_event_watchers", factory: factory)
        webhooksDelivered = CoreMetrics.Counter(
            label: "ffmpeg_processor_webhook_attempts_total", dimensions: [("outcome", "delivered")], factory: factory)
        webhooksFailed = CoreMetrics.Counter(
            label: "ffmpeg_processor_webhook_attempts_total", dimensions: [("outcome", "failed")], factory: factory)
        transcodes = Dictionary(uniqueKeysWithValues: VideoCodec.allCases.map { codec in
            (codec, CoreMetrics.Counter(
                label: "ffmpeg_processor_transcodes_total", dimensions: [("codec", codec.rawValue)], factory: factory))
        })
    }

    /// One webhook attempt: answered 2xx, or not (no connection, no answer, another status).
    func webhookAttempted(delivered: Bool) { (delivered ? webhooksDelivered : webhooksFailed).increment() }

    /// A child forked and confined for the next job, off the request's path: the cost one process per job adds.
    func workerForked(seconds: Double) { forkTime.recordNanoseconds(Int64(seconds * 1e9)) }

    /// A job's process ended as nobody in the service asked: `reason` is input (a crash signal), seccomp, oom,
    /// killed (from outside) or bug; `signal` the signal that ended it, or "none".
    func workerCrashed(_ failure: JobFailure) {
        guard let reason = failure.deathReason else { return }
        let signal: String
        switch failure {
        case .crashed(let number): signal = signalName(number)
        case .forbiddenCall: signal = "SIGSYS"
        case .killedFromOutside: signal = "SIGKILL"
        default: signal = "none"
        }
        let key = "\(reason) \(signal)"
        let counter = crashes.withLock { cache in
            if let counter = cache[key] { return counter }
            let counter = CoreMetrics.Counter(
                label: "ffmpeg_processor_worker_crashes_total", dimensions: [("reason", reason), ("signal", signal)],
                factory: factory)
            cache[key] = counter
            return counter
        }
        counter.increment()
    }

    /// Split-and-stitch: `ffmpeg_processor_split_jobs_total{outcome}` (ok, failed) and
    /// `ffmpeg_processor_segments_total{event}` (sent: a segment handed to a worker; busy: the pool was full and it
    /// waited; failed; received: a segment request from a coordinator; retried: an attempt through the balancer
    /// failed and was tried again; fallback: every attempt failed and the own pool took it).
    func splitJob(ok: Bool) { splitCounter("ffmpeg_processor_split_jobs_total", ("outcome", ok ? "ok" : "failed")) }
    func segment(_ event: String) { splitCounter("ffmpeg_processor_segments_total", ("event", event)) }

    private func splitCounter(_ label: String, _ dimension: (String, String)) {
        let counter = split.withLock { cache in
            let key = label + dimension.1
            if let counter = cache[key] { return counter }
            let counter = CoreMetrics.Counter(label: label, dimensions: [dimension], factory: factory)
            cache[key] = counter
            return counter
        }
        counter.increment()
    }

    /// A job's process, or a template, replaced one that ended as nobody asked (a crash, a kill, a failed start);
    /// not the fresh process every job gets.
    func workerRestarted() { restarts.increment() }

    func requestFinished(route: String, status: Int, bytesIn: Int64, bytesOut: Int64) {
        let key = RequestKey(route: route, status: status)
        let counter = requests.withLock { cache in
            if let counter = cache[key] { return counter }
            let counter = CoreMetrics.Counter(
                label: "ffmpeg_processor_requests_total", dimensions: [("route", route), ("status", String(status))],
                factory: factory)
            cache[key] = counter
            return counter
        }
        counter.increment()
        if bytesIn > 0 { self.bytesIn.increment(by: bytesIn) }
        if bytesOut > 0 { self.bytesOut.increment(by: bytesOut) }
        if status == 503 { rejections.increment() }
    }

    /// `handoff`: the worker thread's time for the job less the engine's own, i.e. what running it elsewhere
    /// (in a worker process: the message, the descriptors, the answer, the wake-ups) added to it.
    /// `codec`: what a transcode wrote; nil for a poster.
    func jobFinished(queueWait: Double, transcode: Double, handoff: Double, codec: VideoCodec?) {
        if let codec { transcodes[codec]?.increment() }
        self.queueWait.recordNanoseconds(Int64(queueWait * 1e9))
        transcodeTime.recordNanoseconds(Int64(transcode * 1e9))
        handoffTime.recordNanoseconds(Int64(max(handoff, 0) * 1e9))
    }

    /// The Prometheus text exposition, with the pool's gauges read from `counters`, and the async jobs' from
    /// `jobs`, at this moment.
    func exposition(counters: PoolCounters, jobs: JobRegistry) -> String {
        for (state, count) in jobs.countsByState { asyncJobs[state]?.record(count) }
        resultBytes.record(jobs.store.usedBytes)
        eventWatchers.record(jobs.watcherCount)
        queueDepth.record(counters.queued)
        running.record(counters.running.load(ordering: .relaxed))
        capacity.record(counters.capacity.load(ordering: .relaxed))
        readyWorkers.record(counters.readyWorkers.load(ordering: .relaxed))
        return registry.emitToString()
    }
}
