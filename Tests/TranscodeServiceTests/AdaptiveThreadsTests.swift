import Foundation
import Glibc
import SystemSupport
import TestSupport
import Testing
@testable import TranscodeService
import WorkerIsolation
import Transcoding

/// The pool chooses libav's thread count per job (docs/ARCHITECTURE.md, "Threads"): a job that starts alone gets every core
/// (threads 0, which libav turns into a count from the CPUs), one that starts while others run or wait gets
/// `cores / workers`. Seen in the threads libav gave the job's decoder, which the report carries.
@Suite("adaptive threads per job", .serialized)
struct AdaptiveThreadsTests {
    /// The service's own starting point: threads 0 means "the pool decides".
    static func options(preset: String) -> TranscodeOptions {
        var options = TranscodeOptions()
        options.threads = 0
        options.preset = preset
        return options
    }

    /// Runs `bytes` through `pool` as the service does: admitted, then read from one anonymous file and written to
    /// another.
    static func run(_ pool: WorkerPool, _ bytes: [UInt8], preset: String = "ultrafast") async throws
        -> Result<WorkerPool.Outcome, JobFailure>
    {
        let scratch = try Scratch()
        let input = try OwnedDescriptor.anonymousFile(in: scratch.url.path)
        let output = try OwnedDescriptor.anonymousFile(in: scratch.url.path)
        var written = 0
        while written < bytes.count {
            written += try bytes[written...].withUnsafeBytes { chunk in
                try syscallValue("write") { write(input.rawValue, chunk.baseAddress, chunk.count) }
            }
        }
        guard case .admitted(let reservation) = await pool.admit(expectedBytes: Int64(bytes.count)) else {
            Issue.record("the pool refused the job")
            return .failure(.transcode(.cancelled))
        }
        let result = await pool.run(reservation, input: input.rawValue, output: output.rawValue, options: options(preset: preset))
        await pool.release(reservation)
        return result
    }

    /// Polls `condition` every 20 ms for up to `seconds`.
    static func eventually(_ seconds: Double = 30, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    /// A veryslow transcode that holds a worker until its task is cancelled.
    static func occupy(_ pool: WorkerPool) -> Task<Result<WorkerPool.Outcome, JobFailure>, any Error> {
        Task { try await run(pool, Clips.slow, preset: "veryslow") }
    }

    /// What libavcodec makes of threads 0 for a frame-threaded decoder (H.264): one thread more than the CPUs it may
    /// run on (its av_cpu_count reads the affinity mask), at most 16; one on a single CPU.
    static var everyCore: Int {
        if JobQueue.threadsAlone(ServiceConfig.container) != 0 { return ServiceConfig.cores }
        let cpus = ContainerLimits.current().affinityCPUs ?? ServiceConfig.cores
        return cpus > 1 ? min(cpus + 1, 16) : 1
    }

    @Test("a lone job's count: libav's own (0) when the affinity mask is the limit, the CPU quota when that is lower",
          arguments: [
              (ContainerLimits(affinityCPUs: 8, onlineCPUs: 8), 0),
              (ContainerLimits(quotaCPUs: 2, affinityCPUs: 64, onlineCPUs: 64), 2),
              (ContainerLimits(quotaCPUs: 16, affinityCPUs: 4, onlineCPUs: 64), 0),
              (ContainerLimits(quotaCPUs: 1, onlineCPUs: 4), 1),
          ])
    func aloneUnderLimits(_ limits: ContainerLimits, _ expected: Int) {
        #expect(JobQueue.threadsAlone(limits) == expected)
    }

    @Test("a job alone on the pool leaves the count to libav (threads 0): a decoder thread for every core, and one more",
          arguments: Isolation.allCases)
    func alone(_ isolation: Isolation) async throws {
        let pool = WorkerPool(workers: 2, queueCapacity: 4, byteBudget: 1 << 30, isolation: try poolIsolation(isolation))
        let outcome = try await Self.run(pool, Clips.small.bytes).get()
        #expect(outcome.report.threads == Self.everyCore)
        await pool.shutdown()
    }

    @Test("a job that starts while another runs gets cores / workers threads", arguments: Isolation.allCases)
    func besideARunningJob(_ isolation: Isolation) async throws {
        let pool = WorkerPool(workers: 2, queueCapacity: 4, byteBudget: 1 << 30, isolation: try poolIsolation(isolation))
        let busy = Self.occupy(pool)
        #expect(await Self.eventually { pool.counters.running.load(ordering: .relaxed) == 1 })
        let outcome = try await Self.run(pool, Clips.small.bytes).get()
        #expect(outcome.report.threads == max(ServiceConfig.cores / 2, 1))
        busy.cancel()
        #expect(try await busy.value.failureValue == .transcode(.cancelled), "the busy job was still running when the other ended")
        await pool.shutdown()
    }

    @Test("a job that starts while another waits gets cores / workers threads; the last one, alone, every core",
          arguments: Isolation.allCases)
    func besideAWaitingJob(_ isolation: Isolation) async throws {
        let pool = WorkerPool(workers: 1, queueCapacity: 4, byteBudget: 1 << 30, isolation: try poolIsolation(isolation))
        let busy = Self.occupy(pool)
        #expect(await Self.eventually { pool.counters.running.load(ordering: .relaxed) == 1 })
        let first = Task { try await Self.run(pool, Clips.small.bytes) }
        let second = Task { try await Self.run(pool, Clips.small.bytes) }
        #expect(await Self.eventually { pool.waitingJobs == 2 }, "both jobs wait behind the busy one")
        // The worker then takes one job with the other still waiting, and the other with nothing running or waiting.
        busy.cancel()
        #expect(try await busy.value.failureValue == .transcode(.cancelled))
        let threads = [try await first.value.get().report.threads, try await second.value.get().report.threads]
        #expect(threads.sorted() == [max(ServiceConfig.cores / 1, 1), Self.everyCore].sorted())
        await pool.shutdown()
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
