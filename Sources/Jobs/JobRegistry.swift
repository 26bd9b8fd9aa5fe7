import Foundation
import SystemSupport

/// The async jobs of this replica: their states, progress, events and results. Every method is safe from any
/// thread and never blocks for long, so the event loop's tasks, the workers' progress reports and the runners that
/// drive jobs all share it. Watchers (SSE streams, `wait=`) get the events through `AsyncStream`s, never a thread.
public final class JobRegistry: Sendable {
    public let replica: String
    public let store: ResultStore
    /// `--result-ttl`: how long a finished job (and its result) is kept, seconds.
    public let ttl: Double

    public init(replica: String, store: ResultStore, ttl: Double) {
        self.replica = replica
        self.store = store
        self.ttl = ttl
    }

    /// What `lookup` finds.
    public enum Lookup: Sendable, Equatable {
        case found(JobStatus)
        /// Existed, and expired (410).
        case gone
        case notFound
    }

    /// What `delete` did.
    public enum Deletion: Sendable, Equatable {
        /// A queued or running job is now cancelled (and its work told to stop).
        case cancelled
        /// A finished job and its result are gone.
        case deleted
        case gone
        case notFound
    }

    private struct Entry {
        var status: JobStatus
        let secret: String
        let order: UInt64
        var events: [JobEvent] = []
        /// The progress of the last progress event.
        var reported = 0.0
        var cancel: (@Sendable () -> Void)?
    }

    private struct State {
        var jobs: [String: Entry] = [:]
        /// Expired ids, until when they answer 410 rather than 404.
        var tombstones: [String: Date] = [:]
        var watchers: [UInt64: (job: String, continuation: AsyncStream<JobEvent>.Continuation)] = [:]
        var nextOrder: UInt64 = 0
        var nextWatcher: UInt64 = 0
    }

    private let state = Locked(State())

    /// Registers a new queued job and returns its id and the secret that names its result file.
    public func create(videoID: String) throws(IOError) -> (id: String, secret: String) {
        let id = try JobID.make(replica: replica)
        let secret = JobID.secret(of: id, replica: replica)!
        let now = Date()
        let actions = state.withLock { state -> [Action] in
            state.nextOrder += 1
            let status = JobStatus(id: id, videoID: videoID, state: .queued, progress: 0, created: now)
            state.jobs[id] = Entry(status: status, secret: secret, order: state.nextOrder)
            return Self.record(&state, id, name: "state", final: false)
        }
        Self.perform(actions)
        return (id, secret)
    }

    /// How to stop the job's work: called once, by `delete`, on a queued or running job.
    public func onCancel(_ id: String, _ cancel: @escaping @Sendable () -> Void) {
        let cancelNow = state.withLock { state -> Bool in
            guard let entry = state.jobs[id] else { return false }
            if entry.status.state == .cancelled { return true }
            state.jobs[id]?.cancel = cancel
            return false
        }
        if cancelNow { cancel() }
    }

    /// A worker took the job.
    public func started(_ id: String) {
        transition(id) { status in
            guard status.state == .queued else { return false }
            status.state = .running
            status.started = Date()
            return true
        }
    }

    /// The worker's report: `fraction` of the input encoded. Kept below 1 until the result is complete, and never
    /// lower than before.
    public func progress(_ id: String, _ fraction: Double) {
        guard fraction.isFinite else { return }
        let actions = state.withLock { state -> [Action] in
            guard var entry = state.jobs[id], entry.status.state == .running else { return [] }
            entry.status.progress = max(entry.status.progress, min(fraction, 0.999))
            let step = entry.status.progress - entry.reported >= 0.01
            if step { entry.reported = entry.status.progress }
            state.jobs[id] = entry
            guard step else { return [] }
            return Self.record(&state, id, name: "progress", final: false)
        }
        Self.perform(actions)
    }

    /// The result is complete and committed (`bytes` long). False if the job was cancelled meanwhile: the caller
    /// then removes the result.
    @discardableResult
    public func succeeded(_ id: String, bytes: Int64, details: [String: String] = [:]) -> Bool {
        transition(id) { status in
            guard !status.state.isFinal else { return false }
            status.state = .succeeded
            status.details = details
            status.progress = 1
            status.result = "/jobs/\(id)/output"
            status.resultBytes = bytes
            return true
        }
    }

    /// The job failed with the problem a synchronous request would have got.
    public func failed(_ id: String, _ problem: JobProblem) {
        transition(id) { status in
            guard !status.state.isFinal else { return false }
            status.state = .failed
            status.error = problem
            return true
        }
    }

    /// The job's work stopped without a `delete` (the service stopping it).
    public func cancelled(_ id: String) {
        transition(id) { status in
            guard !status.state.isFinal else { return false }
            status.state = .cancelled
            return true
        }
    }

    /// `DELETE /jobs/<id>`.
    public func delete(_ id: String) -> Deletion {
        expireDue()
        var cancel: (@Sendable () -> Void)?
        var removed: (secret: String, bytes: Int64)?
        let (outcome, actions) = state.withLock { state -> (Deletion, [Action]) in
            guard var entry = state.jobs[id] else { return (state.tombstones[id] != nil ? .gone : .notFound, []) }
            if entry.status.state.isFinal {
                state.jobs[id] = nil
                if let bytes = entry.status.resultBytes { removed = (entry.secret, bytes) }
                // Its watchers are done already: a final state ends every stream.
                return (.deleted, [])
            }
            cancel = entry.cancel
            entry.cancel = nil
            Self.finish(&entry.status, .cancelled, ttl: ttl)
            state.jobs[id] = entry
            return (.cancelled, Self.record(&state, id, name: "state", final: true))
        }
        Self.perform(actions)
        cancel?()
        if let removed { store.remove(removed.secret, bytes: removed.bytes) }
        return outcome
    }

    /// The job as `GET /jobs/<id>` shows it now.
    public func lookup(_ id: String) -> Lookup {
        expireDue()
        return state.withLock { state in
            guard let entry = state.jobs[id] else { return state.tombstones[id] != nil ? .gone : .notFound }
            return .found(Self.snapshot(entry, in: state))
        }
    }

    /// The job's events after `lastEventID` (all of them when nil), then the new ones as they happen; the stream
    /// finishes after the final state. Nil for an unknown or expired job (see `lookup`).
    public func events(_ id: String, after lastEventID: Int?) -> AsyncStream<JobEvent>? {
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self)
        let watcher = state.withLock { state in
            state.nextWatcher += 1
            return state.nextWatcher
        }
        // Set before the watcher is listed, so that a client gone at once never stays listed.
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: watcher) }
        }
        let registered = state.withLock { state -> (past: [JobEvent], final: Bool)? in
            guard let entry = state.jobs[id] else { return nil }
            let past = entry.events.filter { $0.id > (lastEventID ?? 0) }
            let final = entry.events.last?.isFinal ?? false
            if !final { state.watchers[watcher] = (id, continuation) }
            return (past, final)
        }
        guard let registered else {
            continuation.finish()
            return nil
        }
        for event in registered.past { continuation.yield(event) }
        if registered.final { continuation.finish() }
        return stream
    }

    /// Streams open on any job: the SSE watchers and the `wait=` requests.
    public var watcherCount: Int { state.withLock { $0.watchers.count } }

    /// Jobs by state, for the metrics.
    public var countsByState: [JobState: Int] {
        state.withLock { state in
            var counts = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
            for entry in state.jobs.values { counts[entry.status.state, default: 0] += 1 }
            return counts
        }
    }

    /// Waits up to `seconds` for the job to reach a final state; the job's status then (nil if unknown).
    public func waitForFinalState(_ id: String, seconds: Double) async -> JobStatus? {
        if let stream = events(id, after: nil) {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { for await event in stream where event.isFinal { return } }
                group.addTask { try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000))) }
                await group.next()
                group.cancelAll()
            }
        }
        if case .found(let status) = lookup(id) { return status }
        return nil
    }

    /// Removes the jobs whose time is up, and their results; forgets tombstones older than one more TTL.
    public func expireDue(now: Date = Date()) {
        var results: [(String, Int64)] = []
        state.withLock { state in
            for (id, entry) in state.jobs {
                guard let expires = entry.status.expires, expires <= now else { continue }
                state.jobs[id] = nil
                state.tombstones[id] = expires.addingTimeInterval(max(ttl, 3600))
                if let bytes = entry.status.resultBytes { results.append((entry.secret, bytes)) }
            }
            if !state.tombstones.isEmpty { state.tombstones = state.tombstones.filter { $0.value > now } }
        }
        for (secret, bytes) in results { store.remove(secret, bytes: bytes) }
    }

    /// The secret naming a succeeded job's result file, for `/jobs/<id>/output`.
    public func resultSecret(_ id: String) -> String? { JobID.secret(of: id, replica: replica) }

    // MARK: State changes and their events

    private enum Action {
        case yield(AsyncStream<JobEvent>.Continuation, JobEvent)
        case finish(AsyncStream<JobEvent>.Continuation)
    }

    /// Continuations are resumed outside the lock: finishing one runs its `onTermination`, which takes the lock.
    private static func perform(_ actions: [Action]) {
        for action in actions {
            switch action {
            case .yield(let continuation, let event): continuation.yield(event)
            case .finish(let continuation): continuation.finish()
            }
        }
    }

    @discardableResult
    private func transition(_ id: String, _ change: (inout JobStatus) -> Bool) -> Bool {
        let (changed, actions) = state.withLock { state -> (Bool, [Action]) in
            guard var entry = state.jobs[id], change(&entry.status) else { return (false, []) }
            if entry.status.state.isFinal {
                Self.finish(&entry.status, entry.status.state, ttl: ttl)
                entry.cancel = nil
            }
            state.jobs[id] = entry
            return (true, Self.record(&state, id, name: "state", final: entry.status.state.isFinal))
        }
        Self.perform(actions)
        return changed
    }

    private static func finish(_ status: inout JobStatus, _ final: JobState, ttl: Double) {
        let now = Date()
        status.state = final
        status.finished = now
        status.expires = now.addingTimeInterval(ttl)
    }

    /// Appends the job's next event (a progress step, or its whole status for a state) and hands it to its watchers.
    private static func record(_ state: inout State, _ id: String, name: String, final: Bool) -> [Action] {
        guard var entry = state.jobs[id] else { return [] }
        let data = name == "progress"
            ? Array("{\"progress\":\((entry.status.progress * 10_000).rounded(.down) / 10_000)}".utf8)
            : snapshot(entry, in: state).json()
        let event = JobEvent(id: entry.events.count + 1, name: name, data: data, isFinal: final)
        entry.events.append(event)
        state.jobs[id] = entry
        var actions: [Action] = []
        for (key, watcher) in state.watchers where watcher.job == id {
            actions.append(.yield(watcher.continuation, event))
            if final {
                actions.append(.finish(watcher.continuation))
                state.watchers[key] = nil
            }
        }
        return actions
    }

    /// The status with the figures that depend on the moment: the queue position and the estimate.
    private static func snapshot(_ entry: Entry, in state: State) -> JobStatus {
        var status = entry.status
        switch status.state {
        case .queued:
            status.queuePosition = 1 + state.jobs.values.count { $0.status.state == .queued && $0.order < entry.order }
        case .running:
            if let started = status.started, status.progress > 0 {
                let elapsed = Date().timeIntervalSince(started)
                status.etaSeconds = max(elapsed * (1 - status.progress) / status.progress, 0)
            }
        default: break
        }
        return status
    }
}
