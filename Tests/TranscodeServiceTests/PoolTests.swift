import Foundation
import Glibc
import TestSupport
import Testing
import Transcoding

/// Starts a slow transcode on its own connection; the caller resets or reads it.
func startSlowJob(_ running: RunningService, id: String = "slow") throws -> TestClient {
    // The clip before the connection: its first use generates it, which on a busy machine outlasts the header timeout.
    let clip = Clips.slow
    let client = try TestClient(port: running.port, receiveTimeoutSeconds: 120)
    try client.send("POST /\(id)?preset=veryslow HTTP/1.1\r\nHost: t\r\nContent-Length: \(clip.count)\r\n\r\n")
    try client.send(clip)
    return client
}

@Suite("the worker pool: admission, cancellation, health while busy", .serialized)
struct PoolTests {
    @Test("the workers, and the threads libav starts for them, run at --worker-nice; the event loop stays at 0")
    func workerNice() async throws {
        try await onThread {
            let running = try RunningService(workers: 1, queue: 0) { $0.workerNice = 7 }
            defer { running.stop() }
            let busy = try startSlowJob(running)
            #expect(try running.wait { $0["running"] as? Int == 1 })
            // x264 starts its own threads once the first frames reach it, which can take a while on a busy machine.
            _ = waitUntil(20) { threadNices(running).filter { $0.nice == 7 }.count >= 2 }
            let threads = threadNices(running)
            #expect(threads.contains { $0.name == "transcode-0" && $0.nice == 7 }, "\(threads)")
            #expect(threads.filter { $0.nice == 7 }.count >= 2, "x264's threads inherit it: \(threads)")
            #expect(threads.contains { $0.name.hasPrefix("http-loop") && $0.nice == 0 }, "\(threads)")
            busy.reset()
        }
    }

    @Test("--worker-policy idle: the workers and libav's threads run under SCHED_IDLE; the event loop does not")
    func workerIdle() async throws {
        try await onThread {
            // In-process: a SCHED_IDLE thread gets about 0.3 % of a core beside one busy normal thread, so on a
            // machine shared with another job a worker process starting under it (a debug binary loading libav)
            // could take minutes before its job runs. The policy reaches libav's threads the same way in both
            // modes: they are started by the thread that has it (fork and posix_spawn keep it too).
            let running = try RunningService(workers: 1, queue: 0) { config in
                config.workerPolicy = .idle
                config.isolation = .thread
            }
            defer { running.stop() }
            let busy = try startSlowJob(running)
            #expect(try running.wait { $0["running"] as? Int == 1 })
            let idle = 5  // SCHED_IDLE, a GNU-only constant the Swift Glibc module does not show
            // A SCHED_IDLE worker gets no cycle while the other tests of this process keep the cores busy, so x264
            // may take long to start its threads.
            _ = waitUntil(60) { threadNices(running).filter { $0.policy == idle }.count >= 2 }
            let threads = threadNices(running)
            #expect(threads.contains { $0.name == "transcode-0" && $0.policy == idle }, "\(threads)")
            #expect(threads.filter { $0.policy == idle }.count >= 2, "x264's threads inherit it: \(threads)")
            #expect(threads.contains { $0.name.hasPrefix("http-loop") && $0.policy == 0 }, "\(threads)")
            busy.reset()
        }
    }

    @Test("a full pool answers 503 with Retry-After and never reads the body")
    func full() async throws {
        try await onThread {
            let running = try RunningService(workers: 1, queue: 0)
            defer { running.stop() }
            let busy = try startSlowJob(running)
            #expect(try running.wait { $0["running"] as? Int == 1 })
            let (client, response) = try running.postHeadOnly("/late", declaring: Clips.small.bytes.count)
            #expect(response.status == 503)
            #expect(response.interim.isEmpty, "a 100 Continue asked for the body of a refused upload")
            #expect(Int(response.header("Retry-After") ?? "") ?? 0 >= 1)
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(client.isClosedByPeer(), "the unread body ends the connection")
            #expect(try running.about()["rejected"] as? Int == 1)
            // The running job's upload is counted when it finishes; nothing else may have been read.
            #expect(try running.metric("ffmpeg_processor_bytes_in_total") == 0)
            busy.reset()
        }
    }

    @Test("--queue-bytes: an upload whose declared bytes would pass the budget gets 503 + Retry-After unread; one that fits is admitted")
    func byteBudget() async throws {
        try await onThread {
            // Places to spare (1 worker + 8 queued): only the byte budget can refuse.
            let running = try RunningService(workers: 1, queue: 8) { $0.queueBytes = 3_000_000 }
            defer { running.stop() }
            let held = try TestClient(port: running.port)
            try held.send("POST /held HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n")
            try held.send([UInt8](repeating: 0, count: 10_000))
            #expect(try running.wait { $0["queued"] as? Int == 1 }, "the first upload is admitted and uploading")

            let (refused, response) = try running.postHeadOnly("/over", declaring: 1_500_000)
            #expect(response.status == 503)
            #expect(response.interim.isEmpty, "a 100 Continue asked for the body of a refused upload")
            #expect(Int(response.header("Retry-After") ?? "") ?? 0 >= 1)
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(refused.isClosedByPeer(), "the unread body ends the connection")
            #expect(try running.about()["rejected"] as? Int == 1)

            // 2,000,000 + 900,000 is within the budget: admitted, so the service asks for the body.
            let fits = try TestClient(port: running.port)
            try fits.send("POST /fits HTTP/1.1\r\nHost: t\r\nContent-Length: 900000\r\nExpect: 100-continue\r\n\r\n")
            #expect(try fits.readInterim().hasPrefix("HTTP/1.1 100"))
            #expect(try running.wait { $0["queued"] as? Int == 2 })
            fits.reset()
            held.reset()
            #expect(try running.wait(seconds: 5) { $0["queued"] as? Int == 0 })
        }
    }

    @Test("an upload's place is free the moment its answer arrives: /about shows nothing queued, the next upload is admitted")
    func placeFreeOnAnswer() async throws {
        try await onThread {
            let running = try RunningService(workers: 1, queue: 0)
            defer { running.stop() }
            let clip = Clips.small.bytes
            let client = try TestClient(port: running.port, receiveTimeoutSeconds: 60)
            for index in 0..<8 {
                try client.send("POST /next-\(index) HTTP/1.1\r\nHost: t\r\nContent-Length: \(clip.count)\r\n\r\n")
                try client.send(clip)
                let response = try client.readResponse()
                #expect(response.status == 200, "upload \(index): \(response.status) \(response.text)")
                #expect(try running.about()["queued"] as? Int == 0, "upload \(index)'s place was still held after its answer")
            }
        }
    }

    @Test("/about answers at once while every worker is busy")
    func aboutWhileBusy() async throws {
        try await onThread {
            let running = try RunningService(workers: 1, queue: 1)
            defer { running.stop() }
            let busy = try startSlowJob(running)
            #expect(try running.wait { $0["running"] as? Int == 1 })
            let started = Date()
            let about = try running.about()
            #expect(about["running"] as? Int == 1)
            #expect(Date().timeIntervalSince(started) < 1)
            busy.reset()
        }
    }

    @Test("a client gone mid-transcode frees its worker")
    func disconnectWhileRunning() async throws {
        try await onThread {
            let running = try RunningService(workers: 1, queue: 0)
            defer { running.stop() }
            let busy = try startSlowJob(running)
            #expect(try running.wait { $0["running"] as? Int == 1 })
            busy.reset()
            #expect(try running.wait(seconds: 15) { $0["running"] as? Int == 0 && $0["queued"] as? Int == 0 })
            let next = try running.post("/next", body: Clips.small.bytes)
            #expect(next.status == 200)
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
        }
    }

    @Test("a client gone while queued: its job never runs")
    func disconnectWhileQueued() async throws {
        try await onThread {
            let running = try RunningService(workers: 1, queue: 1)
            defer { running.stop() }
            let busy = try startSlowJob(running, id: "first")
            #expect(try running.wait { $0["running"] as? Int == 1 })
            let queued = try startSlowJob(running, id: "second")
            #expect(try running.wait { $0["queued"] as? Int == 1 })
            queued.reset()
            #expect(try running.wait(seconds: 15) { $0["queued"] as? Int == 0 })
            busy.reset()
            #expect(try running.wait(seconds: 15) { $0["running"] as? Int == 0 })
            let about = try running.about()
            #expect(about["completed"] as? Int == 0 && about["failed"] as? Int == 0)
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
        }
    }

    @Test("a client gone mid-upload: no job, no file")
    func disconnectWhileUploading() async throws {
        try await onThread {
            let running = try RunningService(workers: 1, queue: 1)
            defer { running.stop() }
            let clip = Clips.small.bytes
            let client = try TestClient(port: running.port)
            try client.send("POST /partial HTTP/1.1\r\nHost: t\r\nContent-Length: \(clip.count)\r\n\r\n")
            try client.send(Array(clip.prefix(5000)))
            #expect(try running.wait { $0["queued"] as? Int == 1 })
            client.reset()
            #expect(try running.wait(seconds: 15) { $0["queued"] as? Int == 0 })
            #expect(try running.about()["running"] as? Int == 0)
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
        }
    }
}

/// The threads of this process and of the service's worker processes (where libav runs under --isolation
/// process; they inherit both from the pool thread that starts them): name, nice value and policy (fields 19 and
/// 41 of /proc/<pid>/task/N/stat, after the parenthesised name).
func threadNices(_ running: RunningService) -> [(name: String, nice: Int, policy: Int)] {
    (["self"] + running.service.pool.counters.workerProcessIDs.map(String.init)).flatMap { process in
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process)/task")) ?? []
        return tasks.compactMap { task -> (name: String, nice: Int, policy: Int)? in
            guard let stat = try? String(contentsOfFile: "/proc/\(process)/task/\(task)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After the name: state is field 3, so nice (field 19) is the 17th and policy (field 41) the 39th.
            guard fields.count > 38, let nice = Int(fields[16]), let policy = Int(fields[38]) else { return nil }
            return (String(stat[stat.index(after: open)..<close]), nice, policy)
        }
    }
}
