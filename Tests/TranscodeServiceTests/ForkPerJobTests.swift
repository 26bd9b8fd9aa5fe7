import Foundation
import Glibc
import TestSupport
import Testing
import TranscodeService
import WorkerIsolation

/// One process per job, forked from a warm template: no job ever shares a process with another, the processes
/// carry nothing of the service's environment, and each way a process can end gets the answer that fits it.
@Suite("one process per job: fresh, bare, and judged by how it ended", .serialized)
struct ForkPerJobTests {
    @Test("two jobs in a row run in two different processes, and neither process outlives its job")
    func freshProcessPerJob() async throws {
        try await onThread {
            let running = try IsolationTests.service(workers: 1)
            defer { running.stop() }
            let counters = running.service.pool.counters
            var used: [Int32] = []
            for index in 0..<2 {
                // The child forked ahead for the next job (listed once it is ready); the pool thread has no other.
                var next: Int32?
                _ = waitUntil(30) {
                    next = counters.workerProcessIDs.first
                    return next != nil
                }
                let pid = try #require(next, "no child was forked for the next job")
                #expect(!used.contains(pid), "process \(pid) was given a second job")
                used.append(pid)
                let answer = try running.post("/fresh-\(index)", body: Clips.small.bytes)
                #expect(answer.status == 200, "\(answer.status) \(answer.text)")
                #expect(waitUntil(30) { hasExited(pid) }, "process \(pid) outlived its job")
            }
            #expect(Set(used).count == 2)
        }
    }

    @Test("a job's process and its template carry only the documented environment, never the service's secrets")
    func bareEnvironment() async throws {
        try await onThread {
            setenv("MY_DB_PASSWORD", "hunter2", 1)
            defer { unsetenv("MY_DB_PASSWORD") }
            let running = try IsolationTests.service(workers: 1)
            defer { running.stop() }
            let child = try #require(running.service.pool.counters.workerProcessIDs.first)
            let template = try #require(parent(of: child))
            let allowed: Set<String> = [
                "SWIFT_BACKTRACE", "SVT_LOG", "FFMPEG_PROCESSOR_LIBAV_LOG", "FFMPEG_PROCESSOR_WORKER_FAULTS",
                "FFMPEG_PROCESSOR_WORKER_UNCONFINED",
            ]
            for pid in [child, template] {
                let environment = try String(contentsOfFile: "/proc/\(pid)/environ", encoding: .utf8)
                    .split(separator: "\0").map(String.init)
                #expect(environment.contains("SWIFT_BACKTRACE=enable=no"), "\(pid): \(environment)")
                let names = Set(environment.map { String($0.prefix { $0 != "=" }) })
                #expect(names.isSubset(of: allowed), "process \(pid) got \(names.subtracting(allowed))")
            }
            // Both confined: the template by its own filter, the child by the template's and its own on top.
            #expect(threadStatuses(template).allSatisfy { $0["Seccomp"] == "2" && $0["Seccomp_filters"] == "1" })
            #expect(threadStatuses(child).allSatisfy { $0["Seccomp"] == "2" && $0["Seccomp_filters"] == "2" })
            #expect(threadStatuses(child).allSatisfy { $0["NoNewPrivs"] == "1" })
        }
    }

    @Test("a job's process killed with SIGKILL from outside mid-job: 503 that the client may retry, counted as killed; the next job succeeds")
    func killedFromOutside() async throws {
        try await onThread {
            let running = try IsolationTests.service(workers: 1)
            defer { running.stop() }
            let victim = try startSlowJob(running, id: "victim")
            let pid = try #require(IsolationTests.busyWorker(running))
            kill(pid, SIGKILL)
            let answer = try victim.readResponse()
            #expect(answer.status == 503, "\(answer.status) \(answer.text)")
            #expect(answer.header("Retry-After") != nil)
            #expect(answer.text.contains("killed from outside") && answer.text.contains("may be sent again"), "\(answer.text)")
            let exposition = try running.get("/metrics").text
            #expect(sample(exposition, "ffmpeg_processor_worker_crashes_total", ["reason": "killed", "signal": "SIGKILL"]) == 1)
            let next = try running.post("/after-kill", body: Clips.small.bytes)
            #expect(next.status == 200, "\(next.status) \(next.text)")
        }
    }

    @Test("transcode --sandbox with TERM set and libav's log at debug: isatty's ioctl is answered, not killed")
    func terminalLogging() throws {
        let scratch = try Scratch()
        let input = scratch.path("in.mp4")
        let output = scratch.path("out.mp4")
        try Data(Clips.small.bytes).write(to: URL(fileURLWithPath: input))
        let result = try run(
            try workerSettings().executable, ["transcode", "--sandbox", input, output],
            environment: ["TERM": "xterm", "FFMPEG_PROCESSOR_LIBAV_LOG": "48", "SWIFT_BACKTRACE": "enable=no"])
        #expect(result.status == 0, "\(result.status): \(result.err.suffix(600))")
        // libav did log (the path that asks isatty), and the answer decodes.
        #expect(result.err.utf8.count > 1000, "libav logged only \(result.err.utf8.count) bytes")
        let probe = try Clips.probe(Array(try Data(contentsOf: URL(fileURLWithPath: output))))
        #expect(probe.video?.frameCount ?? 0 > 0)
    }

    #if DEBUG
    @Test("a job's process that makes a writable page executable dies of SIGSYS (W^X): 422 naming the forbidden call")
    func writableNeverExecutable() async throws {
        try await onThread {
            let running = try IsolationTests.withFaults { try IsolationTests.service(workers: 1) }
            defer { running.stop() }
            let answer = try running.post("/exec", body: IsolationTests.faultInput("exec"))
            #expect(answer.status == 422, "\(answer.status) \(answer.text)")
            #expect(answer.text.contains("forbidden system call"), "\(answer.text)")
            let exposition = try running.get("/metrics").text
            #expect(sample(exposition, "ffmpeg_processor_worker_crashes_total", ["reason": "seccomp"]) == 1)
            #expect(try running.post("/after-exec", body: Clips.small.bytes).status == 200)
        }
    }

    @Test("a job's process that lies (another job's id, descriptors sent back, a message out of turn): 500, counted as the service's bug, and the next job succeeds",
          arguments: ["wrongID", "descriptors", "extra"])
    func lyingWorker(_ lie: String) async throws {
        try await onThread {
            let log = LogCapture()
            let running = try IsolationTests.withFaults { try IsolationTests.service(workers: 1, logger: log) }
            defer { running.stop() }
            let answer = try running.post("/\(lie)", body: IsolationTests.faultInput(lie))
            #expect(answer.status == 500, "\(answer.status) \(answer.text)")
            #expect(answer.text.contains("the worker process was lost: it sent"), "\(answer.text)")
            #expect(log.entries.contains { $0.level == .error && $0.message.contains("lost during a job") }, "\(log.entries)")
            let exposition = try running.get("/metrics").text
            #expect(sample(exposition, "ffmpeg_processor_worker_crashes_total", ["reason": "bug"]) == 1)
            let next = try running.post("/after-\(lie)", body: Clips.small.bytes)
            #expect(next.status == 200, "\(next.status) \(next.text)")
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
        }
    }
    #endif
}
