import Glibc
import HTTPServer
import SplitStitch
import SystemSupport
import Transcoding
import WorkerIsolation

/// Everything `serve` can be told, with its defaults in one place. Each field has a flag and an environment
/// variable (see `ffmpeg-processor serve --help`).
public struct ServiceConfig: Sendable {
    public var host = "0.0.0.0"
    public var port = 3000
    /// Transcoding threads; default one per core the container allows (`cores`).
    public var workers = ServiceConfig.cores
    /// Requests admitted beyond the running ones (uploading or waiting). 1024 lets the original experiment's 1000
    /// simultaneous requests all through.
    public var queue = 1024
    /// Largest accepted body; Content-Length over it is a 413 before any byte is read.
    public var maxBody: Int64 = 1 << 30
    /// Bytes of declared uploads admitted at once (Content-Length sums); past it, 503.
    public var queueBytes: Int64 = 8 << 30
    /// Where the anonymous temp files live.
    public var tmpDir = ServiceConfig.defaultTemporaryDirectory
    /// Wall-clock limit of one transcode, seconds: the floor, to which `jobTimePerVideoSecond` adds.
    public var jobTimeout = 600.0
    /// Seconds of limit per second of 1080p video (in proportion to the output's pixels). One 1080p job at the
    /// default preset takes about 1.2 s a second of video on 2 cores, twice that with both workers busy: 3 leaves
    /// room, so a 10-minute 1080p upload gets 600 + 1800 s (docs/BENCHMARKS.md, 2026-12-07).
    public var jobTimePerVideoSecond = 3.0
    /// A job that encodes no frame for this long is killed, whatever its limit (the bound on a hang).
    public var stallTimeout = 60.0
    /// How long SIGTERM waits for running and queued jobs.
    public var drainTimeout = 60.0
    /// Seconds between SIGTERM and the drain (lame duck): `/about` answers 503 at once so that load balancers stop
    /// sending, while everything still arriving is served. Longer than a balancer's health-check interval × fall.
    public var shutdownDelay = 5.0
    public var logLevel = "info"
    /// Seconds a client may take to send its request head (slowloris defence).
    public var headerTimeout = 10.0
    /// Seconds an upload may stall before the connection is dropped.
    public var bodyIdleTimeout = 30.0
    /// Slowest accepted upload, bytes per second of waiting, after a 10 s grace; 0 disables (slow-body defence:
    /// every admitted upload holds a queue place).
    public var minBodyRate = 1024
    public var eventLoopThreads = 1
    /// The transcoding threads' nice value (0–19): above the event loop's 0, so a busy pool never delays a request.
    public var workerNice = 10
    /// `.idle` puts the transcoding threads under SCHED_IDLE, for a machine (or container) that runs nothing else:
    /// requests then preempt transcodes at once. The default `.nice` shares the CPU fairly with other programs.
    public var workerPolicy = WorkerPolicy.nice
    public var maxConnections = 10_000
    /// Proxies (addresses or CIDR networks) whose X-Forwarded-For names the client in the log; empty: the peer is
    /// the client, whatever the field says.
    public var trustedProxies: [AddressRange] = []
    /// Limits applied to every input.
    public var limits = TranscodeOptions.Limits()
    /// Where transcodes run: `.process` (the default) in one sandboxed worker process per worker thread, so that a
    /// crash, a hang or a memory blow-up in libav costs one job; `.thread` on the worker threads themselves, for
    /// comparison and for systems without seccomp.
    public var isolation = Isolation.process
    /// The worker processes' settings (`jobMemory` is `--job-memory`).
    public var worker = WorkerSettings()
    /// Split-and-stitch of long uploads (`--split`, `--segment-seconds`, `--split-min-seconds`).
    public var split = SplitSettings()
    /// The balancer in front of the replicas (`--cluster-url`): a split job's segments go through it, so that any
    /// replica may encode them; nil: only this replica's own pool.
    public var clusterURL: ClusterURL? = nil
    /// `--replica-name`: the first part of every async job id, so that a balancer can route `/jobs/<replica>.` to
    /// the replica that owns the job. Nil: the host name (in Kubernetes, the pod's name).
    public var replicaName: String?
    /// `--results-dir`: where async results are kept, as the service's only named files; emptied at start. Nil: a
    /// folder `ffmpeg-processor-results` under `tmpDir`.
    public var resultsDir: String?
    /// `--result-ttl`: seconds a finished async job and its result are kept; then 410 Gone.
    public var resultTTL = 3600.0
    /// `--result-bytes`: once the kept results fill it, new async requests get 503 before their body is read.
    public var resultBytes: Int64 = 16 << 30
    /// `--callback-allow`: the hosts webhooks may go to; empty, none.
    public var callbackAllow = CallbackAllowList()
    /// `--callback-secret`: the Standard Webhooks secret (`whsec_` and base64) that signs every webhook.
    public var callbackSecret: String?
    /// Seconds before a failed webhook is sent again; each next wait doubles, up to a minute.
    public var callbackFirstRetry = 1.0
    /// Seconds a webhook is retried before it is given up.
    public var callbackRetryWindow = 600.0
    /// Seconds between the heartbeat comments of an idle event stream: below the 60 s idle cut of common proxies.
    public var eventHeartbeat = 15.0

    /// The results folder in effect.
    public var effectiveResultsDir: String { resultsDir ?? tmpDir + "/ffmpeg-processor-results" }

    /// The `--job-memory` of a node that sets no memory limit: the address space of one worker process, libraries
    /// and thread stacks included (RLIMIT_AS counts reservations, not resident pages). An idle worker holds 0.4 GiB of
    /// it; a 3 s 1080p job needs 1.16 GiB at preset medium on 2 cores, 1.5 GiB at veryslow
    /// (deploy/kubernetes/README.md, "Sizing"). More cores mean more libav threads, and inputs near the default 8K
    /// pixel limit need several times a 1080p job's frames: raise it for those.
    public static let jobMemoryCeiling: Int64 = WorkerSettings.defaultJobMemory
    /// What the service process itself keeps of the cgroup's `memory.max` (event loop, upload buffers, its own
    /// libraries) before the rest is shared among the workers.
    public static let serviceMemoryReserve: Int64 = 256 << 20
    /// The smallest `--job-memory` the service starts with: below it not even a small clip transcodes.
    public static let minimumJobMemory: Int64 = 256 << 20
    /// The default `--job-memory` for the default number of workers.
    public static let defaultJobMemory = defaultJobMemory(workers: cores, memoryMax: container.memoryMax)

    /// The default `--job-memory` for `workers` workers: `jobMemoryCeiling`, or less in a container whose
    /// `memory.max` could not hold that many workers at once. Each worker's resident memory is at most its address
    /// space, so workers that each keep to `(memory.max - reserve) / workers` can never make the cgroup's OOM killer
    /// end the whole service: a job that needs more gets 413 instead.
    public static func defaultJobMemory(workers: Int, memoryMax: Int64?) -> Int64 {
        guard let memoryMax else { return jobMemoryCeiling }
        let share = (memoryMax - serviceMemoryReserve) / Int64(max(workers, 1))
        return min(jobMemoryCeiling, max(share, minimumJobMemory))
    }

    public init() {
        // WorkerSettings knows nothing of containers; its 4 GiB is this type's ceiling.
        worker.jobMemory = Self.defaultJobMemory
    }

    /// "127.0.0.1,10.0.0.0/8" as address ranges; nil if any entry is neither an address nor a CIDR network.
    public static func trustedProxies(parsing list: String) -> [AddressRange]? {
        var ranges: [AddressRange] = []
        for entry in list.split(separator: ",", omittingEmptySubsequences: false) {
            guard let range = AddressRange(entry.drop { $0 == " " }) else { return nil }
            ranges.append(range)
        }
        return ranges
    }

    /// What the container allows this process (cgroup v2 `cpu.max` and `memory.max`, the affinity mask), read once.
    public static let container = ContainerLimits.current()

    /// The CPUs the container lets this process keep busy, not the node's: the smaller of `cpu.max`'s quota and
    /// the affinity mask.
    public static var cores: Int { container.cores }

    public static var defaultTemporaryDirectory: String {
        getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    }

    /// The options a request starts from before its query adjusts them.
    var baseOptions: TranscodeOptions {
        var options = TranscodeOptions()
        options.limits = limits
        options.limits.jobTimeLimitSeconds = jobTimeout
        options.limits.jobTimePerVideoSecond = jobTimePerVideoSecond
        options.limits.stallLimitSeconds = stallTimeout
        // 0 here means "let the pool decide per job" (see `JobQueue.threads(waiting:)`).
        options.threads = 0
        return options
    }

    /// One line for the start-up log.
    public var summary: String {
        "host=\(host) port=\(port) workers=\(workers) queue=\(queue) max-body=\(maxBody) queue-bytes=\(queueBytes) "
            + "tmp-dir=\(tmpDir) job-timeout=\(jobTimeout)s job-time-per-video-second=\(jobTimePerVideoSecond)s "
            + "stall-timeout=\(stallTimeout)s shutdown-delay=\(shutdownDelay)s drain-timeout=\(drainTimeout)s "
            + "log-level=\(logLevel) "
            + "event-loops=\(eventLoopThreads) max-connections=\(maxConnections) header-timeout=\(headerTimeout)s "
            + "body-idle-timeout=\(bodyIdleTimeout)s min-body-rate=\(minBodyRate)B/s "
            + "worker-policy=\(workerPolicy.rawValue) worker-nice=\(workerNice) isolation=\(isolation.rawValue)"
            + (isolation == .process
                ? " job-memory=\(worker.jobMemory)"
                : "")
            + " \(Self.container.summary)"
            + " results-dir=\(effectiveResultsDir) result-ttl=\(resultTTL)s result-bytes=\(resultBytes)"
            + " split=\(split.mode.rawValue) segment-seconds=\(split.segmentSeconds)s split-min-seconds=\(split.minimumSeconds)s"
            + " cluster-url=\(clusterURL?.description ?? "none")"
            + " trusted-proxies=\(trustedProxies.isEmpty ? "none" : trustedProxies.map(\.description).joined(separator: ","))"
    }
}

/// How the transcoding threads are scheduled against the event loop.
public enum WorkerPolicy: String, Sendable, CaseIterable {
    /// Normal scheduling at `workerNice`.
    case nice
    /// SCHED_IDLE.
    case idle
}

/// Where the transcodes run (`--isolation`).
public enum Isolation: String, Sendable, CaseIterable {
    case process
    case thread
}
