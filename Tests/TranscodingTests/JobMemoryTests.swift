import CFFmpeg
import Glibc
import Testing
@testable import Transcoding

@Suite("a failed allocation under the job's memory limit is that limit, not an internal error")
struct JobMemoryTests {
    @Test("ENOMEM and AVERROR_EXTERNAL (libx264's answer to a failed malloc) mean the limit only while one is in force",
          arguments: [
            (shim_averror(ENOMEM), true, true), (shim_averror_external(), true, true),
            (shim_averror(ENOMEM), false, false), (shim_averror_external(), false, false),
            (shim_averror_invaliddata(), true, false), (shim_averror(EIO), true, false), (shim_averror_eof(), true, false),
          ] as [(Int32, Bool, Bool)])
    func classification(code: Int32, underLimit: Bool, exhausted: Bool) {
        #expect(JobMemory.isExhausted(code, underLimit: underLimit) == exhausted)
    }

    @Test("the memory limit's message names --job-memory, and it is the input's error (the CLI exits 2, the service 4xx)")
    func describesTheFlag() {
        let error = TranscodeError.limitExceeded(.memory)
        #expect("\(error)".contains("--job-memory"))
        #expect(error.isInputError)
        #expect(TranscodeError.Limit(rawValue: "memory") == .memory, "the worker protocol sends a limit by its raw value")
    }
}
