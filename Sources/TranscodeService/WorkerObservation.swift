import Logging

/// Where the worker processes' events end: one log line each, and the metrics (`worker_crashes_total` by signal,
/// `worker_restarts_total`). Crashes and kills log at warning: they are an input's doing, but an operator wants to
/// see them; a process that cannot start logs at error.
struct WorkerObservation: Sendable {
    let metrics: ServiceMetrics
    let logger: Logger

    func observe(_ event: WorkerEvent) {
        switch event {
        case .started(let worker, let pid, let replacing):
            if replacing { metrics.workerRestarted() }
            logger.debug("worker \(worker): process \(pid) is ready\(replacing ? " (a replacement)" : "")")
        case .startFailed(let worker, let reason, let retryIn):
            logger.error("worker \(worker): its process could not start: \(reason); retrying in \(retryIn) s")
        case .crashed(let worker, let pid, let signal):
            metrics.workerCrashed(signal: signal)
            logger.warning(
                "worker \(worker): process \(pid) died of \(signalName(signal)) during a job (the job fails with 422); replacing it")
        case .killed(let worker, let pid, let reason):
            logger.warning("worker \(worker): process \(pid) killed (\(reason)); replacing it")
        case .lost(let worker, let pid, let reason):
            logger.error("worker \(worker): process \(pid) lost during a job: \(reason); replacing it")
        case .recycled(let worker, let pid, let reason):
            logger.info("worker \(worker): process \(pid) retired after \(reason); replacing it")
        }
    }
}
