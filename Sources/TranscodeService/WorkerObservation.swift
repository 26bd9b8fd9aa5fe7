import Logging
import WorkerIsolation

/// Where the worker processes' events end: one log line each, and the metrics (`worker_crashes_total` by reason
/// and signal, `worker_restarts_total`). A death the input caused (a crash signal, a forbidden call) or someone
/// outside did (the OOM killer, an operator) logs at warning: an operator wants to see them. The service's own
/// bug (a trap, an exit status, a broken message) and a process that cannot start log at error.
struct WorkerObservation: Sendable {
    let metrics: ServiceMetrics
    let logger: Logger

    func observe(_ event: WorkerEvent) {
        switch event {
        case .started(let worker, let pid, let replacing):
            if replacing { metrics.workerRestarted() }
            logger.debug("worker \(worker): template \(pid) is ready\(replacing ? " (a replacement)" : "")")
        case .forked(_, _, let seconds):
            metrics.workerForked(seconds: seconds)
        case .startFailed(let worker, let reason, let retryIn):
            logger.error("worker \(worker): its process could not start: \(reason); retrying in \(retryIn) s")
        case .died(let worker, let pid, let failure, let duringJob):
            metrics.workerRestarted()
            metrics.workerCrashed(failure)
            let when = duringJob ? "during a job" : "while it waited for a job"
            if case .workerLost = failure {
                logger.error("worker \(worker): process \(pid) lost \(when): \(failure); replacing it")
            } else {
                logger.warning("worker \(worker): process \(pid) ended \(when): \(failure); replacing it")
            }
        case .killed(let worker, let pid, let reason):
            metrics.workerRestarted()
            logger.warning("worker \(worker): process \(pid) killed (\(reason)); replacing it")
        }
    }
}
