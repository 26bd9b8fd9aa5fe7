import Foundation
import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("a running transcode stops when told to")
struct CancellationTests {
    /// A clip long enough to take seconds to transcode.
    static func longClip(in scratch: Scratch) throws -> String {
        var clip = SyntheticClip()
        clip.width = 640
        clip.height = 360
        clip.seconds = 8
        try clip.write(to: scratch.path("long.mp4"))
        return scratch.path("long.mp4")
    }

    @Test("cancelling stops a running job within two seconds")
    func cancel() async throws {
        let scratch = try Scratch()
        let input = try Self.longClip(in: scratch)
        let cancellation = TranscodeCancellation()
        // As the service runs a job when every core has a worker: one thread, so nothing is in flight elsewhere.
        var options = TranscodeOptions()
        options.threads = 1
        let outcome = Task.detached { () -> (TranscodeError?, UInt64) in
            do {
                try transcode(input: .path(input), output: .path(scratch.path("out.mp4")), options: options, cancellation: cancellation)
                return (nil, DispatchTime.now().uptimeNanoseconds)
            } catch let error as TranscodeError {
                return (error, DispatchTime.now().uptimeNanoseconds)
            } catch {
                return (.internal(averror: 0, message: "\(error)"), DispatchTime.now().uptimeNanoseconds)
            }
        }
        try await Task.sleep(for: .milliseconds(700))
        let cancelledAt = DispatchTime.now().uptimeNanoseconds
        cancellation.cancel()
        let (error, endedAt) = await outcome.value
        #expect(error == .cancelled)
        let latency = Double(endedAt - cancelledAt) / 1e6
        // The job stops between two frames, tens of milliseconds on an idle machine; the bound leaves room for a
        // loaded, shared one, and a job that ran on to its end (seconds) still fails it.
        #expect(latency < 2000, "stopped \(latency) ms after cancel")
        #expect(descriptors(under: scratch.url.path).isEmpty)
    }

    @Test("the job time limit stops a long transcode")
    func timeLimit() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = try Self.longClip(in: scratch)
            var options = TranscodeOptions()
            options.preset = "veryslow"
            options.limits.jobTimeLimitSeconds = 0.3
            let started = Date()
            #expect(throws: TranscodeError.limitExceeded(.jobTime)) {
                try transcode(input: .path(input), output: .path(scratch.path("out.mp4")), options: options)
            }
            // Unlimited, this veryslow job runs for tens of seconds; x264's lookahead can hold one frame's checkpoint
            // for seconds on a loaded machine (7.5 s seen), hence the room.
            #expect(Date().timeIntervalSince(started) < 15)
        }
    }

    @Test("a job cancelled before it starts reads nothing")
    func cancelledBefore() async throws {
        try await onThread {
            let scratch = try Scratch()
            let cancellation = TranscodeCancellation()
            cancellation.cancel()
            #expect(throws: TranscodeError.cancelled) {
                try transcode(input: .path(scratch.path("whatever.mp4")), output: .path(scratch.path("out.mp4")), cancellation: cancellation)
            }
            #expect(!FileManager.default.fileExists(atPath: scratch.path("out.mp4")))
        }
    }
}
