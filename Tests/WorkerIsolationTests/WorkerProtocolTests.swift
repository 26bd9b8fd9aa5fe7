@testable import WorkerIsolation
import Testing
import Transcoding

/// The messages between a pool thread and its worker process survive the trip, and a damaged one is refused rather
/// than half-read.
@Suite("the worker protocol")
struct WorkerProtocolTests {
    static var options: TranscodeOptions {
        var options = TranscodeOptions()
        options.crf = 31
        options.preset = "veryfast"
        options.maxWidth = 640
        options.audio = false
        options.threads = 3
        options.limits.maxPixels = 1920 * 1080
        options.limits.maxDurationSeconds = 12.5
        options.limits.jobTimeLimitSeconds = 42
        options.limits.jobTimePerVideoSecond = 2.5
        options.limits.stallLimitSeconds = 30
        options.limits.maxFrames = 9_000
        options.hdr = .keep
        options.deinterlace = .off
        return options
    }

    /// A split job's segment: the window rides with the ordinary options.
    static var segmentOptions: TranscodeOptions {
        var options = options
        options.segment = TranscodeOptions.SegmentWindow(
            timeBase: Rational(1, 12800), frameRate: Rational(30000, 1001), start: 51_200, end: nil, shift: -1024,
            origin: 7)
        return options
    }

    static let report = TranscodeReport(
        inputFormat: "matroska", inputVideoCodec: "vp8", width: 320, height: 240, videoFrames: 50, audioSamples: 88200,
        hasAudio: true, audioCopied: false, inputDuration: nil, outputDuration: 2.04, inputBytes: 123_456,
        outputBytes: 65_432, seconds: 0.25, threads: 1, videoFilters: ["bwdif", "tonemap(hlg→bt709)"],
        videoFilterGraph: "bwdif=mode=send_frame,zscale=t=linear | format=yuv420p")

    static let messages: [WorkerMessage] = [
        .job(id: 1, options: TranscodeOptions()),
        .job(id: .max, options: options),
        .job(id: 2, options: segmentOptions),
        .cancel(id: 77),
        .ready,
        .finished(id: 5, .report(report)),
        .finished(id: 6, .outOfMemory),
        .progress(id: 8, fraction: 0.42),
        .alive(id: 8, timeLimit: 1234.5, finishing: false),
        .alive(id: 8, timeLimit: nil, finishing: true),
    ] + [
        TranscodeError.notAVideo(detected: nil), .notAVideo(detected: "png_pipe"), .noVideoStream,
        .unsupportedCodec("prores"), .corruptInput("no video frame could be decoded"), .limitExceeded(.jobTime),
        .limitExceeded(.pixels), .limitExceeded(.frames), .limitExceeded(.stall), .cancelled, .io(.noSpace), .internal(averror: -1094995529, message: "é ✓"),
        .invalidOption("crf must be 0...51, not 60"),
    ].map { WorkerMessage.finished(id: 9, .failed($0)) }

    @Test("every message decodes to itself", arguments: messages)
    func roundTrip(_ message: WorkerMessage) throws {
        #expect(try WorkerMessage(decoding: message.encoded()) == message)
    }

    @Test("a message cut anywhere, or with a byte too many, is refused", arguments: messages)
    func damaged(_ message: WorkerMessage) {
        let bytes = message.encoded()
        for length in 0..<bytes.count {
            #expect(throws: WorkerProtocolError.self) { try WorkerMessage(decoding: bytes.prefix(length)) }
        }
        #expect(throws: WorkerProtocolError.self) { try WorkerMessage(decoding: bytes + [0]) }
    }
}
