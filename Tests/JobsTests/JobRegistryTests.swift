import Foundation
import Glibc
import Jobs
import SystemSupport
import Testing
import TestSupport

@Suite("The async job registry")
struct JobRegistryTests {
    func registry(ttl: Double = 3600, budget: Int64 = 1 << 30) throws -> (JobRegistry, Scratch) {
        let scratch = try Scratch()
        let store = ResultStore(directory: scratch.path("results"), budget: budget)
        return (JobRegistry(replica: "r1", store: store, ttl: ttl), scratch)
    }

    func status(_ registry: JobRegistry, _ id: String) throws -> JobStatus {
        guard case .found(let status) = registry.lookup(id) else { throw JobsTestError("\(id) not found") }
        return status
    }

    @Test("ids name the replica and carry 128 random bits; only well-formed ids name a result")
    func ids() throws {
        let a = try JobID.make(replica: "pod-0")
        let b = try JobID.make(replica: "pod-0")
        #expect(a != b)
        #expect(a.hasPrefix("pod-0.") && a.count == "pod-0.".count + 32)
        #expect(JobID.secret(of: a, replica: "pod-0") == String(a.suffix(32)))
        #expect(JobID.secret(of: a, replica: "pod-1") == nil)
        #expect(JobID.secret(of: "pod-0." + String(repeating: "g", count: 32), replica: "pod-0") == nil)
        #expect(JobID.secret(of: "pod-0../../../../etc/passwd", replica: "pod-0") == nil)
        #expect(JobID.replicaName("web-1.cluster.local") == "web-1")
        #expect(JobID.replicaName("a b/c") == "abc")
        #expect(!JobID.replicaName(nil).isEmpty)
    }

    @Test("queued → running → succeeded, with queue positions, progress that never goes back, and 1 only at the end")
    func lifecycle() throws {
        let (registry, _) = try registry()
        let first = try registry.create(videoID: "a").id
        let second = try registry.create(videoID: "b").id
        #expect(try status(registry, first).queuePosition == 1)
        #expect(try status(registry, second).queuePosition == 2)
        registry.progress(first, 0.5)  // not running yet: ignored
        #expect(try status(registry, first).progress == 0)
        registry.started(first)
        #expect(try status(registry, second).queuePosition == 1)
        registry.progress(first, 0.4)
        registry.progress(first, 0.3)
        #expect(try status(registry, first).progress == 0.4)
        registry.progress(first, 1.0)
        #expect(try status(registry, first).progress < 1)
        #expect(try status(registry, first).etaSeconds != nil)
        #expect(registry.succeeded(first, bytes: 10))
        let done = try status(registry, first)
        #expect(done.state == .succeeded && done.progress == 1 && done.result == "/jobs/\(first)/output")
        #expect(done.finished != nil && done.expires != nil)
        registry.failed(first, JobProblem(status: 500, title: "x", detail: "y"))
        #expect(try status(registry, first).state == .succeeded, "a final state is final")
        let json = try JSONSerialization.jsonObject(with: Data(done.json())) as? [String: Any]
        #expect(json?["state"] as? String == "succeeded" && json?["video_id"] as? String == "a")
        #expect(json?.keys.contains("error") == true && json?["error"] is NSNull)
        // RFC 3339 date-times, whole: a date, a time, UTC.
        let created = try #require(json?["created"] as? String)
        #expect(created.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/) != nil, "\(created)")
        let parsed = try Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(created)
        #expect(abs(parsed.timeIntervalSince(done.created)) < 0.002)
    }

    @Test("a failed job keeps the problem; deleting a running job cancels it and calls its cancel hook once")
    func failureAndCancellation() throws {
        let (registry, _) = try registry()
        let failing = try registry.create(videoID: "f").id
        registry.started(failing)
        registry.failed(failing, JobProblem(status: 422, title: "Unprocessable Content", detail: "no video stream"))
        #expect(try status(registry, failing).error?.status == 422)
        #expect(try status(registry, failing).state == .failed)

        let running = try registry.create(videoID: "c").id
        let calls = Locked(0)
        registry.onCancel(running) { calls.withLock { $0 += 1 } }
        registry.started(running)
        #expect(registry.delete(running) == .cancelled)
        #expect(try status(registry, running).state == .cancelled)
        #expect(!registry.succeeded(running, bytes: 1), "a cancelled job's late result is refused")
        #expect(calls.withLock { $0 } == 1)
        #expect(registry.delete(running) == .deleted)
        #expect(registry.lookup(running) == .notFound)
        #expect(registry.delete("r1.nope") == .notFound)
    }

    @Test("events replay after Last-Event-ID and end with the final state")
    func events() async throws {
        let (registry, _) = try registry()
        let id = try registry.create(videoID: "e").id
        registry.started(id)
        for step in 1...10 { registry.progress(id, Double(step) / 20) }
        let live = try #require(registry.events(id, after: nil))
        #expect(registry.watcherCount == 1)
        registry.succeeded(id, bytes: 5)
        var seen: [JobEvent] = []
        for await event in live { seen.append(event) }
        #expect(seen.map(\.id) == Array(1...seen.count))
        #expect(seen.first?.name == "state" && seen.last?.isFinal == true)
        #expect(seen.filter { $0.name == "progress" }.count == 10)
        #expect(registry.watcherCount == 0)

        var replayed: [JobEvent] = []
        for await event in try #require(registry.events(id, after: 5)) { replayed.append(event) }
        #expect(replayed == Array(seen.dropFirst(5)))
        let text = String(decoding: seen[0].serverSentEvent, as: UTF8.self)
        #expect(text.hasPrefix("id: 1\nevent: state\ndata: {") && text.hasSuffix("}\n\n"))
    }

    @Test("a finished job expires after the TTL: its result is removed and it answers gone")
    func expiry() throws {
        let (registry, scratch) = try registry(ttl: 60)
        let (id, secret) = try registry.create(videoID: "t")
        let file = try registry.store.create(secret)
        var bytes: [UInt8] = [1, 2, 3]
        #expect(write(file.rawValue, &bytes, 3) == 3)
        try registry.store.commit(secret, bytes: 3)
        registry.started(id)
        registry.succeeded(id, bytes: 3)
        #expect(registry.store.usedBytes == 3)
        #expect(FileManager.default.fileExists(atPath: scratch.path("results/\(secret).mp4")))
        registry.expireDue(now: Date().addingTimeInterval(61))
        #expect(registry.lookup(id) == .gone)
        #expect(registry.delete(id) == .gone)
        #expect(registry.store.usedBytes == 0)
        #expect(!FileManager.default.fileExists(atPath: scratch.path("results/\(secret).mp4")))
    }

    @Test("the store is swept at start and refuses new jobs once full")
    func store() throws {
        let scratch = try Scratch()
        let folder = scratch.path("results")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        for name in ["old.mp4", "half.part", "keep.txt"] {
            _ = FileManager.default.createFile(atPath: folder + "/" + name, contents: Data([1]))
        }
        let store = ResultStore(directory: folder, budget: 4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["keep.txt"])
        #expect(!store.isFull)
        _ = try store.create("abc")
        try store.commit("abc", bytes: 4)
        #expect(store.isFull)
        let opened = store.open("abc") != nil
        #expect(opened)
        store.remove("abc", bytes: 4)
        let reopened = store.open("abc") != nil
        #expect(!store.isFull && !reopened)
    }
}

struct JobsTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
