import Foundation
import Glibc
import TestSupport
import Testing
import TranscodeService
import WorkerIsolation

/// `--isolation process` on real processes and real signals: a job's process that crashes, hangs or breaks its
/// sandbox's rules costs its own job; a job running beside it still gets a valid MP4, nothing is left open, /about
/// stays healthy and a fresh process takes the next job.
@Suite("worker processes: confinement, crashes, hangs, start failures", .serialized)
struct IsolationTests {
    /// A service of two isolated workers, whatever ISOLATION says (these tests are about processes).
    static func service(
        workers: Int = 2, logger: LogCapture? = nil, _ configure: (inout ServiceConfig) -> Void = { _ in }
    ) throws -> RunningService {
        let running = try RunningService(workers: workers, queue: 8, logger: logger?.logger(.info)) { config in
            config.isolation = .process
            configure(&config)
        }
        #expect(waitUntil(60) { running.service.pool.counters.workerProcessIDs.count == workers },
                "the worker processes never said ready")
        return running
    }

    /// The process running a job now: the one holding the job's two files beside its stdio and socket (an idle
    /// child holds 0–3 only). Read from /proc, not from CPU time, which a loaded machine may not give it for a while.
    static func busyWorker(_ running: RunningService) -> Int32? {
        var found: Int32?
        _ = waitUntil(60) {
            found = running.service.pool.counters.workerProcessIDs.first { workerDescriptors($0).count > 4 }
            return found != nil
        }
        return found
    }

    /// A medium clip posted on its own connection, to be read after the fault: the job beside the failing one.
    static func startBystander(_ running: RunningService, clip: [UInt8] = Clips.medium, preset: String = "veryslow") throws
        -> TestClient
    {
        let client = try TestClient(port: running.port, receiveTimeoutSeconds: 120)
        try client.send("POST /bystander?preset=\(preset) HTTP/1.1\r\nHost: t\r\nContent-Length: \(clip.count)\r\n\r\n")
        try client.send(clip)
        return client
    }

    /// What every fault test asserts after the fault: the bystander's MP4 decodes, the failed worker was replaced,
    /// /about is healthy, and no descriptor into the temp folder is left in this process or in any worker.
    static func expectRecovered(_ running: RunningService, bystander: TestClient, replaced old: Int32) throws {
        let answer = try bystander.readResponse()
        #expect(answer.status == 200, "the job beside the failed one: \(answer.status) \(answer.text)")
        if answer.status == 200 { #expect(try Clips.probe(answer.body).video?.frameCount ?? 0 > 0) }
        let counters = running.service.pool.counters
        #expect(waitUntil(60) { counters.readyWorkers.load(ordering: .relaxed) == 2 && !counters.workerProcessIDs.contains(old) },
                "the dead worker was not replaced: \(counters.workerProcessIDs)")
        #expect(waitUntil(5) { hasExited(old) }, "the failed worker process \(old) still exists")
        let about = try running.about()
        #expect(about["status"] as? String == "ok" && about["workers_ready"] as? Int == 2, "\(about)")
        #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
        // Each child forked ahead holds stdio and its socket, nothing of any job.
        #expect(waitUntil(30) {
            let pids = counters.workerProcessIDs
            return pids.count == 2 && pids.allSatisfy { workerDescriptors($0) == ["0", "1", "2", "3"] }
        }, "\(counters.workerProcessIDs.map { ($0, workerDescriptors($0)) })")
    }

    @Test("every thread of a worker process runs under the seccomp filter with no-new-privileges, inside its rlimits")
    func confined() async throws {
        try await onThread {
            let running = try Self.service(workers: 1) { $0.worker.jobMemory = 3 << 30 }
            defer { running.stop() }
            // A job first, so that the threads libav starts are there to be looked at too.
            let busy = try startSlowJob(running)
            let pid = try #require(Self.busyWorker(running))
            _ = waitUntil(20) { threadStatuses(pid).count > 2 }
            let threads = threadStatuses(pid)
            #expect(threads.count > 2, "only \(threads.count) threads: libav's are missing")
            for status in threads {
                #expect(status["Seccomp"] == "2" && status["NoNewPrivs"] == "1", "\(status)")
            }
            let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
            #expect(limitLine(limits, "Max address space") == ["3221225472", "3221225472"], "\(limits)")
            #expect(limitLine(limits, "Max core file size") == ["0", "0"])
            // 16, and room for a split pass's segments.
            #expect(limitLine(limits, "Max open files") == ["144", "144"])
            busy.reset()
        }
    }

    @Test("SIGSEGV in a worker mid-job: that job gets 422 naming the signal, the job beside it a valid MP4; the worker is replaced and the crash counted")
    func crash() async throws {
        try await onThread {
            let log = LogCapture()
            let running = try Self.service(logger: log)
            defer { running.stop() }
            let victim = try startSlowJob(running, id: "victim")
            let pid = try #require(Self.busyWorker(running))
            let bystander = try Self.startBystander(running)
            #expect(try running.wait { $0["running"] as? Int == 2 })
            kill(pid, SIGSEGV)
            let answer = try victim.readResponse()
            #expect(answer.status == 422, "\(answer.status) \(answer.text)")
            #expect(answer.header("Content-Type") == "application/problem+json")
            #expect(answer.text.contains("SIGSEGV"), "\(answer.text)")
            try Self.expectRecovered(running, bystander: bystander, replaced: pid)
            let exposition = try running.get("/metrics").text
            #expect(sample(exposition, "ffmpeg_processor_worker_crashes_total", ["reason": "input", "signal": "SIGSEGV"]) == 1)
            #expect(sample(exposition, "ffmpeg_processor_worker_restarts_total") == 1)
            #expect(sample(exposition, "ffmpeg_processor_workers_ready") == 2)
            #expect(log.entries.contains { $0.level == .warning && $0.message.contains("died of SIGSEGV") },
                    "\(log.entries)")
        }
    }

    @Test("SIGSTOP in a worker with --job-timeout 8: the job gets the time-limit 422 after the limit and the kill grace (well within 60 s), and the worker is replaced")
    func hang() async throws {
        try await onThread {
            let running = try Self.service { config in
                // Room for the job beside it on a loaded machine (2 s was not: load 18); the floor alone, so that the
                // limit is exactly that (JobTimeLimitTests test its growth).
                config.jobTimeout = 8
                config.jobTimePerVideoSecond = 0
                config.worker.killGrace = 1
            }
            defer { running.stop() }
            let posted = Date()
            let victim = try startSlowJob(running, id: "stopped")
            let pid = try #require(Self.busyWorker(running))
            kill(pid, SIGSTOP)
            // Within the job time limit, and while the stopped worker waits for its kill.
            let bystander = try Self.startBystander(running, clip: Clips.small.bytes, preset: "medium")
            let stopped = Date()
            let answer = try victim.readResponse()
            #expect(answer.status == 422 && answer.text.contains("time limit"), "\(answer.status) \(answer.text)")
            #expect(Date().timeIntervalSince(stopped) < 60)
            // Not before the limit: the job started after it was posted, and its process is killed only once the
            // limit (8 s) and the grace (1 s) have passed.
            #expect(Date().timeIntervalSince(posted) >= 8.9, "answered \(Date().timeIntervalSince(posted)) s after the post")
            try Self.expectRecovered(running, bystander: bystander, replaced: pid)
        }
    }

    @Test("a child killed while it waits for its job is replaced before any job comes, and /about counts it exactly")
    func killedWhileIdle() async throws {
        try await onThread {
            let running = try Self.service(workers: 1)
            defer { running.stop() }
            let counters = running.service.pool.counters
            let pid = try #require(counters.workerProcessIDs.first)
            kill(pid, SIGKILL)
            #expect(waitUntil(30) { counters.workerProcessIDs.first.map { $0 != pid } ?? false },
                    "no fresh child replaced \(pid) while no job came")
            #expect(waitUntil(10) { hasExited(pid) }, "the killed child \(pid) was not reaped")
            #expect(try running.wait { $0["workers_ready"] as? Int == 1 && $0["status"] as? String == "ok" })
            let answer = try running.post("/after-kill", body: Clips.small.bytes)
            #expect(answer.status == 200, "\(answer.status) \(answer.text)")
            let exposition = try running.get("/metrics").text
            #expect(sample(exposition, "ffmpeg_processor_worker_crashes_total", ["reason": "killed"]) == 1, "\(exposition)")
        }
    }

    @Test("workers that cannot start: the pool backs off, /about says degraded with no ready worker (503), uploads get 503; once they can, it recovers")
    func crashLoop() async throws {
        try await onThread {
            let scratch = try Scratch()
            let real = try workerSettings().executable
            let allowed = scratch.path("allowed")
            let wrapper = scratch.path("worker.sh")
            // Fails until the test creates `allowed`, then is the real worker.
            try "#!/bin/sh\n[ -e '\(allowed)' ] || exit 3\nexec '\(real)' \"$@\"\n"
                .write(toFile: wrapper, atomically: true, encoding: .utf8)
            chmod(wrapper, 0o755)
            let log = LogCapture()
            let running = try RunningService(workers: 2, queue: 8, logger: log.logger(.info)) { config in
                config.isolation = .process
                config.worker.executable = wrapper
                config.worker.maxBackoff = 1
            }
            defer { running.stop() }
            #expect(try running.wait(seconds: 30) { $0["status"] as? String == "degraded" && $0["workers_ready"] as? Int == 0 })
            #expect(try running.get("/about").status == 503)
            let (_, refused) = try running.postHeadOnly("/refused", declaring: Clips.small.bytes.count)
            #expect(refused.status == 503 && refused.text.contains("no worker process can start"), "\(refused.text)")
            // Backing off: 0.1, 0.2, 0.4, 0.8, then 1 s; without it a failing start every few milliseconds.
            let attempts = { log.entries.filter { $0.message.contains("could not start") }.count }
            let before = attempts()
            usleep(3_000_000)
            #expect(attempts() - before <= 2 * 6, "\(attempts() - before) failed starts in 3 s")
            #expect(log.entries.contains { $0.level == .error && $0.message.contains("exit status 3") }, "\(log.entries)")

            _ = FileManager.default.createFile(atPath: allowed, contents: nil)
            #expect(try running.wait(seconds: 60) { $0["status"] as? String == "ok" && $0["workers_ready"] as? Int == 2 })
            let answer = try running.post("/recovered", body: Clips.small.bytes)
            #expect(answer.status == 200, "\(answer.status) \(answer.text)")
        }
    }

    #if DEBUG
    /// The hooks of WorkerFaults.swift: debug builds only, and only in workers whose environment has the switch.
    static func withFaults<T>(_ body: () throws -> T) rethrows -> T {
        setenv("FFMPEG_PROCESSOR_WORKER_FAULTS", "1", 1)
        defer { unsetenv("FFMPEG_PROCESSOR_WORKER_FAULTS") }
        return try body()
    }

    static func faultInput(_ name: String) -> [UInt8] { Array("FFMPEG-PROCESSOR-FAULT \(name)\n".utf8) }

    @Test("a worker that creates a socket dies of SIGSYS: its job gets 422, the job beside it a valid MP4, the worker is replaced")
    func forbiddenSocket() async throws {
        try await onThread {
            let running = try Self.withFaults { try Self.service() }
            defer { running.stop() }
            let bystander = try Self.startBystander(running)
            let busy = try #require(Self.busyWorker(running))
            let idle = try #require(running.service.pool.counters.workerProcessIDs.first { $0 != busy })
            let answer = try running.post("/socket", body: Self.faultInput("socket"))
            #expect(answer.status == 422, "\(answer.status) \(answer.text)")
            #expect(answer.text.contains("forbidden system call (SIGSYS)"), "\(answer.text)")
            try Self.expectRecovered(running, bystander: bystander, replaced: idle)
            let exposition = try running.get("/metrics").text
            #expect(sample(exposition, "ffmpeg_processor_worker_crashes_total", ["reason": "seccomp", "signal": "SIGSYS"]) == 1)
        }
    }

    @Test("a worker's open(\"/etc/passwd\") is refused with EACCES: the job answers, its process ends as after any job, nothing counts as a crash")
    func refusedOpen() async throws {
        try await onThread {
            let running = try Self.withFaults { try Self.service(workers: 1) }
            defer { running.stop() }
            let pid = try #require(running.service.pool.counters.workerProcessIDs.first)
            let answer = try running.post("/open", body: Self.faultInput("open"))
            #expect(answer.text.contains("opening /etc/passwd was refused: Permission denied"), "\(answer.status) \(answer.text)")
            let next = try running.post("/after-open", body: Clips.small.bytes)
            #expect(next.status == 200)
            #expect(waitUntil(10) { hasExited(pid) }, "the job's process \(pid) outlived its job")
            #expect(try running.metric("ffmpeg_processor_worker_crashes_total") == nil)
            #expect(try running.metric("ffmpeg_processor_worker_restarts_total") ?? 0 == 0)
        }
    }

    @Test("a job that allocates past --job-memory gets 413 'needs more memory', the job beside it an MP4, and its worker is replaced")
    func memoryLimit() async throws {
        try await onThread {
            let running = try Self.withFaults { try Self.service { $0.worker.jobMemory = 1 << 30 } }
            defer { running.stop() }
            let bystander = try Self.startBystander(running)
            let busy = try #require(Self.busyWorker(running))
            let idle = try #require(running.service.pool.counters.workerProcessIDs.first { $0 != busy })
            let answer = try running.post("/allocate", body: Self.faultInput("allocate"))
            #expect(answer.status == 413, "\(answer.status) \(answer.text)")
            #expect(answer.text.contains("needs more memory than allowed"), "\(answer.text)")
            try Self.expectRecovered(running, bystander: bystander, replaced: idle)
        }
    }
    #endif
}

/// The state letter of /proc/<pid>/stat (R, S, Z...), nil if it cannot be read.
func processState(_ pid: Int32) -> String? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(after: close)...].split(separator: " ").first.map(String.init)
}

/// The `Name: value` lines of /proc/<pid>/task/*/status, one dictionary per thread.
func threadStatuses(_ pid: Int32) -> [[String: String]] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return tasks.compactMap { task in
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8) else { return nil }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return fields
    }
}

/// The soft and hard values of one line of /proc/<pid>/limits.
func limitLine(_ limits: String, _ name: String) -> [String] {
    guard let line = limits.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return [] }
    return line.dropFirst(name.count).split(separator: " ").prefix(2).map(String.init)
}

/// A worker process's open descriptors, by number.
func workerDescriptors(_ pid: Int32) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).sorted()
}
