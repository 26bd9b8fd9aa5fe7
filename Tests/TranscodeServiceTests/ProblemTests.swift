import Foundation
import HTTPTypes
import MediaFixtures
import TestSupport
import Testing
@testable import TranscodeService
import Transcoding
import WorkerIsolation

@Suite("running out of --job-memory answers 413, whichever way the worker reports it")
struct ProblemTests {
    @Test("the engine's memory limit and the worker's out-of-memory: 413 naming --job-memory",
          arguments: [JobFailure.transcode(.limitExceeded(.memory)), .outOfMemory])
    func memory(_ failure: JobFailure) {
        let problem = Problem(failure)
        #expect(problem.status == .contentTooLarge)
        #expect(problem.detail.contains("--job-memory"), "\(problem.detail)")
    }
}

@Suite("a real encoder out of --job-memory, through a worker process")
struct JobMemoryServiceTests {
    @Test("a 1080p upload to workers confined to 512 MiB: 413 naming --job-memory (x264's failed malloc, not a 500)")
    func x264OutOfMemory() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            (clip.width, clip.height) = (1920, 1080)
            clip.seconds = 1
            try clip.write(to: scratch.path("in.mp4"))
            let running = try IsolationTests.service(workers: 1) { $0.worker.jobMemory = 512 << 20 }
            defer { running.stop() }
            let answer = try running.post("/phone-upload", body: Array(try Data(contentsOf: scratch.url.appendingPathComponent("in.mp4"))))
            #expect(answer.status == 413, "\(answer.status) \(answer.text)")
            #expect(answer.text.contains("--job-memory"), "\(answer.text)")
        }
    }
}
