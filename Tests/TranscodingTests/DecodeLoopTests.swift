import CFFmpeg
import Testing
@testable import Transcoding

/// The decoder's receive loop, driven by stand-in results: a real decoder rarely fails for long, so the stuck one is
/// played by a closure.
@Suite("a decoder that keeps failing can be stopped")
struct DecodeLoopTests {
    private static let damaged = shim_averror_invaliddata()
    private static let wantsInput = shim_averror_eagain()

    /// Plays `results` in order, then EAGAIN for ever; counts the receives.
    private final class StandIn {
        var results: [Int32]
        var calls = 0
        init(_ results: [Int32]) { self.results = results }
        func receive() -> Int32 {
            calls += 1
            return results.isEmpty ? DecodeLoopTests.wantsInput : results.removeFirst()
        }
    }

    @Test("failures in a row end the job as corrupt input, after the limit and not before")
    func stuckDecoder() {
        let decoder = StandIn(Array(repeating: Self.damaged, count: 10_000))
        var errors = 0
        var frames = 0
        #expect(throws: TranscodeError.corruptInput("decoding video: the decoder failed 64 times in a row")) {
            try DecodeLoop.drain(receive: decoder.receive, control: nil, errors: &errors, what: "decoding video") {
                frames += 1
            }
        }
        #expect(decoder.calls == DecodeLoop.maxConsecutiveErrors)
        #expect(errors == DecodeLoop.maxConsecutiveErrors && frames == 0)
    }

    @Test("damaged frames between good ones are skipped and counted, however many there are")
    func scatteredDamage() throws {
        // 3 damaged frames before each good one, 100 times: 300 errors, never 64 in a row.
        let pattern = Array(repeating: Self.damaged, count: 3) + [0]
        let decoder = StandIn(Array((0..<100).map { _ in pattern }.joined()))
        var errors = 0
        var frames = 0
        try DecodeLoop.drain(receive: decoder.receive, control: nil, errors: &errors, what: "decoding video") {
            frames += 1
        }
        #expect(frames == 100 && errors == 300)
    }

    @Test("a cancelled job stops a failing decoder at once, not after the error limit")
    func cancelledWhileFailing() {
        let cancellation = TranscodeCancellation()
        let control = JobControl(cancellation: cancellation, timeLimitSeconds: nil)
        let decoder = StandIn(Array(repeating: Self.damaged, count: 10_000))
        var errors = 0
        #expect(throws: TranscodeError.cancelled) {
            try DecodeLoop.drain(
                receive: {
                    let result = decoder.receive()
                    if decoder.calls == 5 { cancellation.cancel() }
                    return result
                },
                control: control, errors: &errors, what: "decoding video"
            ) {}
        }
        #expect(decoder.calls == 5)
    }

    @Test("a job past its time limit stops a failing decoder with the time-limit error")
    func timedOutWhileFailing() {
        let control = JobControl(cancellation: nil, timeLimitSeconds: 0)
        let decoder = StandIn(Array(repeating: Self.damaged, count: 10_000))
        var errors = 0
        #expect(throws: TranscodeError.limitExceeded(.jobTime)) {
            try DecodeLoop.drain(receive: decoder.receive, control: control, errors: &errors, what: "decoding audio") {}
        }
        #expect(decoder.calls == 0)
    }
}
