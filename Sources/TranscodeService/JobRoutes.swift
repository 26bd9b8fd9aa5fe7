import HTTPServer
import HTTPTypes
import Jobs

/// `/jobs/<id>`, `/jobs/<id>/events` and `/jobs/<id>/output`: an async job's status, cancellation, progress stream
/// and result. An id that is not this replica's, or no longer known, is 404; a job past its TTL is 410.
extension Routes {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!

    /// The job's status, or nothing but 404 or 410.
    func job(_ id: String) throws(Problem) -> JobStatus {
        switch jobs.lookup(id) {
        case .found(let status): return status
        case .gone: throw Problem(.gone, "the job's result was kept for \(Int(jobs.ttl)) s and has been removed")
        case .notFound:
            throw Problem(.notFound, "no such job on this replica (results live as long as their replica: send the video again)")
        }
    }

    /// GET and HEAD: the status document. DELETE: a queued job leaves the queue, a running one stops (its worker is
    /// freed as when a synchronous client leaves), a finished one's result is deleted; 204 in each case.
    func jobStatus(_ request: HTTPRequest, _ id: String) throws(Problem) -> ServerResponse {
        if request.method == .delete {
            switch jobs.delete(id) {
            case .cancelled, .deleted: return ServerResponse(status: .noContent)
            case .gone, .notFound: _ = try job(id)
            }
        }
        return ServerResponse(
            status: .ok, headerFields: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .bytes(try job(id).json()))
    }

    /// The job's events as `text/event-stream`: what the client missed (after `Last-Event-ID`), then each new one,
    /// with a heartbeat comment when nothing happens; the stream ends after the final state. The stream is fed by
    /// a task that waits on the registry, so a watcher costs no thread.
    func jobEvents(_ request: HTTPRequest, _ id: String) throws(Problem) -> ServerResponse {
        _ = try job(id)
        let last = request.headerFields[Self.lastEventID].flatMap { Int($0.trimmingCharacters(in: " ")) }
        guard let events = jobs.events(id, after: last) else { _ = try job(id); throw Problem(.notFound, "no such job") }
        let heartbeat = Duration.milliseconds(Int64(config.eventHeartbeat * 1000))
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        let feeder = Task {
            continuation.yield(JobEvent.retry)
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await event in events { continuation.yield(event.serverSentEvent) }
                }
                group.addTask {
                    while (try? await Task.sleep(for: heartbeat)) != nil { continuation.yield(JobEvent.heartbeat) }
                }
                // The first to end is the events (the final state, or the client gone): the heartbeat goes too.
                await group.next()
                group.cancelAll()
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in feeder.cancel() }
        return ServerResponse(
            status: .ok,
            headerFields: [
                .contentType: "text/event-stream", .cacheControl: "no-store",
                // nginx would otherwise hold the events back to fill its buffer.
                HTTPField.Name("X-Accel-Buffering")!: "no",
            ],
            body: .stream(stream))
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
