import Foundation
import Glibc
import TestSupport
import Testing
import TranscodeService
import WorkerIsolation

/// The time limit grows with the video (`--job-timeout` is its floor, `--job-time-per-video-second` adds to it),
/// and a job that stops encoding is still killed, by the stall bound.
@Suite("job time limits: a long video is not a hang, a hang still is", .serialized)
struct JobTimeLimitTests {
    @Test("a job that takes longer than the --job-timeout floor succeeds when its video earns the time; with 0 per second it is the time-limit 422",
          arguments: [Isolation.process, .thread])
    func longVideoSucceeds(isolation: Isolation) async throws {
        try await onThread {
            for perSecond in [1000.0, 0] {
                let running = try RunningService(workers: 1) { config in
                    config.isolation = isolation
                    // The floor alone bounds the job until its input is open and its length known: under TSan,
                    // in-process, on a loaded CI machine, that took over 0.5 s. preset=slower keeps the job itself
                    // well past 2 s (about 5 s alone here).
                    config.jobTimeout = 2
                    // 8 s of 640x360: 2 + 1000 × 8 × 0.11 = 882 s, where it needs a few alone, and took over 60 s
                    // in make test beside two busy loops (the worker runs at nice 10).
                    config.jobTimePerVideoSecond = perSecond
                }
                defer { running.stop() }
                let clip = Clips.slow
                let posted = Date()
                let answer = try post(port: running.port, "/long?preset=slower", body: clip, receiveTimeoutSeconds: 600)
                if perSecond > 0 {
                    #expect(answer.status == 200, "\(isolation): \(answer.status) \(answer.text)")
                    #expect(Date().timeIntervalSince(posted) > 2, "the job did not outlast the floor: no test")
                    #expect(try Clips.probe(answer.body).video?.frameCount == 200)
                } else {
                    #expect(answer.status == 422 && answer.text.contains("time limit"), "\(answer.status) \(answer.text)")
                }
            }
        }
    }

    @Test("a worker stopped (SIGSTOP) once it is encoding is killed by --stall-timeout, well before its time limit, and replaced")
    func stalledWorker() async throws {
        try await onThread {
            let running = try RunningService(workers: 1) { config in
                config.isolation = .process
                config.jobTimeout = 600
                // Long enough that a worker starved by a loaded machine (nice 10 under load 24 here) is not taken
                // for a stalled one before the SIGSTOP.
                config.stallTimeout = 10
                config.worker.killGrace = 1
            }
            defer { running.stop() }
            let location = try running.submitJob("/stalled?preset=veryslow", body: Clips.slow)
            // Progress means frames encoded, so the child has told its limit and the stall bound is armed.
            _ = try running.follow(location, seconds: 120) { ($0["progress"] as? Double ?? 0) > 0 }
            let pid = try #require(IsolationTests.busyWorker(running))
            kill(pid, SIGSTOP)
            let stopped = Date()
            let final = try running.finish(location)
            let waited = Date().timeIntervalSince(stopped)
            #expect(final["state"] as? String == "failed", "\(final)")
            let error = try JSONSerialization.data(withJSONObject: final["error"] ?? [:])
            #expect(String(decoding: error, as: UTF8.self).contains("stopped making progress"), "\(final)")
            // The bound and the grace (11 s) after the last sign of life, which comes about once a second; far from
            // the 600 s limit.
            #expect(waited >= 9.5 && waited < 60, "killed \(waited) s after SIGSTOP")
            #expect(waitUntil(30) { hasExited(pid) }, "the stopped worker \(pid) still exists")
            #expect(waitUntil(60) { running.service.pool.counters.readyWorkers.load(ordering: .relaxed) == 1 })
        }
    }
}
