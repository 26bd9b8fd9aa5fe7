import Glibc
import SystemSupport
import Transcoding

// A split job's passes over an upload (plan, cut, stitch) as worker jobs: on the wire in a job's options, and
// what the plan and cut passes write back (the plan; each cut's timestamp shift). The parent reads those back as
// it reads a child's message: bounded and checked, trusted for nothing beyond that one upload.

/// One job as a pool runs it, in a worker process or (`--isolation thread`) in the service: a transcode or a poster,
/// or one of a split job's passes (`options.splitPass`), whose segments are the job's extra descriptors.
public enum WorkerJob {
    public static func run(
        input: Int32, output: Int32, extra: [Int32], options: TranscodeOptions, cancellation: TranscodeCancellation?,
        progress: ((Double) -> Void)?, alive: ((Double?, Bool) -> Void)? = nil
    ) throws(TranscodeError) -> TranscodeReport {
        guard let pass = options.splitPass else {
            return try transcode(
                input: .fileDescriptor(input), output: .fileDescriptor(output), options: options,
                cancellation: cancellation, progress: progress, alive: alive)
        }
        guard extra.count == pass.extraDescriptors else {
            throw .invalidOption("a split pass needs \(pass.extraDescriptors) segment descriptors, not \(extra.count)")
        }
        let started = monotonicNanos()
        var written = WireWriter()
        var answer = output
        switch pass {
        case .plan(let segmentSeconds, let minimumSeconds, let skipUpTo):
            let plan: SegmentPlan?
            do {
                plan = try SegmentPlan.probe(
                    .fileDescriptor(input), segmentSeconds: segmentSeconds, minimumSeconds: minimumSeconds,
                    skipUpTo: skipUpTo, limits: options.limits, cancellation: cancellation)
            } catch .cancelled {
                throw .cancelled
            } catch {
                // The whole-file transcode reports a bad input in its own words.
                plan = nil
            }
            guard let plan, plan.pays(minimumSeconds: skipUpTo) else {
                var whole = options
                whole.splitPass = nil
                return try transcode(
                    input: .fileDescriptor(input), output: .fileDescriptor(output), options: whole,
                    cancellation: cancellation, progress: progress, alive: alive)
            }
            written.optional(plan) { $0.segmentPlan($1) }
            answer = extra[0]
        case .cut(let plan):
            for (index, segment) in extra.enumerated() {
                let window = try SegmentSplit.write(
                    index, of: plan, from: .fileDescriptor(input), to: .fileDescriptor(segment), limits: options.limits,
                    cancellation: cancellation)
                written.integer(window.shift)
            }
        case .stitch:
            let made = try stitch(
                segments: extra.map { .fileDescriptor($0) }, source: .fileDescriptor(input),
                output: .fileDescriptor(output), options: options, cancellation: cancellation)
            return TranscodeReport(
                inputFormat: "", inputVideoCodec: "h264", width: 0, height: 0, videoFrames: made.videoFrames,
                audioSamples: made.audioSamples, hasAudio: made.hasAudio, audioCopied: made.audioCopied,
                inputDuration: nil, outputDuration: made.outputDuration, inputBytes: 0, outputBytes: 0,
                seconds: made.seconds, threads: 0)
        }
        if let failure = written.bytes.withUnsafeBytes({ writeAll($0, to: answer) }) { throw .io(failure) }
        return TranscodeReport(
            inputFormat: "", inputVideoCodec: "", width: 0, height: 0, videoFrames: 0, audioSamples: 0, hasAudio: false,
            audioCopied: false, inputDuration: nil, outputDuration: 0, inputBytes: 0, outputBytes: 0,
            seconds: Double(monotonicNanos() - started) / 1e9, threads: 0)
    }

    /// A pass's answer that is not what the pass writes: a broken or lying worker, and no split for that upload.
    public struct AnswerError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// What a plan pass wrote to its extra descriptor: the plan, or nil when it wrote nothing because it
    /// transcoded the upload whole.
    public static func plan(from answer: Int32) throws(AnswerError) -> SegmentPlan? {
        do throws(WorkerProtocolError) {
            let bytes = try readBack(answer)
            guard !bytes.isEmpty else { return nil }
            var reader = WireReader(bytes)
            let plan = try reader.optional { reader throws(WorkerProtocolError) in try reader.segmentPlan() }
            guard plan != nil else { throw WorkerProtocolError(description: "an empty plan") }
            guard reader.isAtEnd else { throw WorkerProtocolError(description: "trailing bytes after the plan") }
            return plan
        } catch {
            throw AnswerError(description: "the plan pass's answer: \(error)")
        }
    }

    /// What a cut pass wrote to `output`: each of `count` segments' timestamp shift, in order.
    public static func shifts(from output: Int32, count: Int) throws(AnswerError) -> [Int64] {
        do throws(WorkerProtocolError) {
            var reader = WireReader(try readBack(output))
            let shifts = try (0..<count).map { _ throws(WorkerProtocolError) in try reader.integer(Int64.self) }
            guard reader.isAtEnd else { throw WorkerProtocolError(description: "trailing bytes after the shifts") }
            return shifts
        } catch {
            throw AnswerError(description: "the cut pass's answer: \(error)")
        }
    }

    /// A plan of the most segments is under 8 KiB: anything much larger is not one.
    private static let largestAnswer = 64 << 10

    private static func readBack(_ output: Int32) throws(WorkerProtocolError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: largestAnswer + 1)
        let count: Int
        do {
            count = try syscallValue("pread") { bytes.withUnsafeMutableBytes { pread(output, $0.baseAddress, $0.count, 0) } }
        } catch {
            throw WorkerProtocolError(description: "the pass's answer cannot be read: \(error)")
        }
        guard count <= largestAnswer else { throw WorkerProtocolError(description: "the pass's answer is too large") }
        return Array(bytes.prefix(count))
    }
}

extension WireWriter {
    mutating func splitPass(_ pass: TranscodeOptions.SplitPass) {
        switch pass {
        case .plan(let segmentSeconds, let minimumSeconds, let skipUpTo):
            byte(0)
            double(segmentSeconds)
            double(minimumSeconds)
            double(skipUpTo)
        case .cut(let plan):
            byte(1)
            segmentPlan(plan)
        case .stitch(let segments):
            byte(2)
            int(segments)
        }
    }

    /// The plan as far as the cuts, the segments' windows and the stitch need it: not its keyframe list, which can
    /// be long and serves only the probe's tests.
    mutating func segmentPlan(_ plan: SegmentPlan) {
        integer(UInt16(plan.segments.count))
        for segment in plan.segments {
            int(segment.firstPacket)
            int(segment.endPacket)
            optional(segment.start) { $0.integer($1) }
            optional(segment.end) { $0.integer($1) }
            double(segment.seconds)
        }
        int(plan.streamIndex)
        for value in [plan.timeBase.num, plan.timeBase.den, plan.frameRate.num, plan.frameRate.den] { integer(value) }
        integer(plan.origin)
        int(plan.packets)
        double(plan.duration)
    }
}

extension WireReader {
    mutating func splitPass() throws(WorkerProtocolError) -> TranscodeOptions.SplitPass {
        switch try byte() {
        case 0: return .plan(segmentSeconds: try double(), minimumSeconds: try double(), skipUpTo: try double())
        case 1: return .cut(try segmentPlan())
        case 2:
            let segments = try int()
            guard (1...SegmentPlan.maximumSegments).contains(segments) else {
                throw WorkerProtocolError(description: "a stitch of \(segments) segments")
            }
            return .stitch(segments: segments)
        default: throw WorkerProtocolError(description: "unknown split pass")
        }
    }

    mutating func segmentPlan() throws(WorkerProtocolError) -> SegmentPlan {
        let count = Int(try integer(UInt16.self))
        guard (1...SegmentPlan.maximumSegments).contains(count) else {
            throw WorkerProtocolError(description: "a plan of \(count) segments")
        }
        var segments: [SegmentPlan.Segment] = []
        for index in 0..<count {
            let first = try int()
            let end = try int()
            let start = try optional { reader throws(WorkerProtocolError) in try reader.integer(Int64.self) }
            let stop = try optional { reader throws(WorkerProtocolError) in try reader.integer(Int64.self) }
            let seconds = try double()
            // Packets in decode order, each segment after the one before: a plan that is not is no plan.
            guard first >= (segments.last?.firstPacket ?? -1) + 1 || (index == 0 && first == 0), end > first,
                seconds.isFinite, seconds >= 0
            else {
                throw WorkerProtocolError(description: "segment \(index) of the plan is out of order")
            }
            segments.append(
                SegmentPlan.Segment(
                    index: index, firstPacket: first, endPacket: end, start: start, end: stop, seconds: seconds))
        }
        let streamIndex = try int()
        let timeBase = Rational(try integer(), try integer())
        let frameRate = Rational(try integer(), try integer())
        guard streamIndex >= 0, timeBase.num > 0, timeBase.den > 0, frameRate.num >= 0, frameRate.den >= 0 else {
            throw WorkerProtocolError(description: "a plan with a bad stream or time base")
        }
        let origin: Int64 = try integer()
        let packets = try int()
        let duration = try double()
        guard duration.isFinite else { throw WorkerProtocolError(description: "a plan with a bad duration") }
        return SegmentPlan(
            segments: segments, streamIndex: streamIndex, timeBase: timeBase, frameRate: frameRate, origin: origin,
            keyframes: [], packets: packets, duration: duration)
    }
}
