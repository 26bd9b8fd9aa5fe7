import SystemSupport
import Transcoding

/// What a split job did, for the answer's headers and the logs.
public struct SplitOutcome: Sendable {
    public var segments: Int
    /// Each segment's presentation seconds, in order.
    public var segmentSeconds: [Double]
    /// The filter stages the segments ran (every segment runs the same graph), as X-Video-Filters says them.
    public var videoFiltersText: String
    public var stitch: StitchReport
    /// Probe and cut, segment encodes (wall clock, all of them), stitch: seconds.
    public var splitSeconds: Double
    public var encodeSeconds: Double
}

/// Why a split job failed.
public enum SplitFailure: Error, Sendable {
    /// The probe, a cut or the stitch failed.
    case transcode(TranscodeError)
    /// A segment's job failed: the job fails with its reason.
    case segment(index: Int, any Error & Sendable)
    /// No temp file could be made.
    case io(Errno)
}

/// The coordinator of one upload: probes it, cuts it at keyframes (`prepare`), has each segment encoded by a
/// runner (longest first, at most `parallelism` at a time) and stitches the answers with the source's audio
/// (`run`). It holds no worker: every wait here is a suspended task, and the libav passes run on threads of their own.
public final class SplitJob: Sendable {
    public let plan: SegmentPlan
    private let input: Int32
    private let options: TranscodeOptions
    private let parallelism: Int
    private let windows: [TranscodeOptions.SegmentWindow]
    private let cuts: [SegmentFile]
    private let answers: [SegmentFile]
    private let prepareSeconds: Double

    /// Nil when splitting does not pay or cannot be faithful: the caller then runs the upload as one job.
    ///
    /// The probe, the cuts and the stitch read the upload in this process, so they stay demux and remux only: an
    /// input whose audio would have to be decoded (anything but AAC-LC) is left to the sandboxed whole-file job.
    public static func prepare(
        input: Int32, options: TranscodeOptions, settings: SplitSettings, parallelism: Int, temporaryDirectory: String
    ) async throws(SplitFailure) -> SplitJob? {
        guard settings.mode == .auto, parallelism > 1, options.segment == nil else { return nil }
        let started = ContinuousClock.now
        let cancellation = TranscodeCancellation()
        let plan: SegmentPlan
        do {
            let probed = try await onLibavThread(cancellation) { () throws(TranscodeError) in
                try SegmentPlan.probe(
                    .fileDescriptor(input), segmentSeconds: settings.segmentSeconds,
                    minimumSeconds: settings.segmentMinimumSeconds, skipUpTo: settings.minimumSeconds,
                    limits: options.limits, cancellation: cancellation)
            }
            guard let probed, probed.segments.count > 1, probed.duration > settings.minimumSeconds,
                !(options.audio && probed.sourceAudio == .encoded)
            else { return nil }
            plan = probed
        } catch {
            // The whole-file job reports a bad input in its own words.
            return nil
        }
        let cuts: [SegmentFile]
        let answers: [SegmentFile]
        do {
            cuts = try plan.segments.map { _ throws(IOError) in try SegmentFile(directory: temporaryDirectory) }
            answers = try plan.segments.map { _ throws(IOError) in try SegmentFile(directory: temporaryDirectory) }
        } catch {
            throw .io(error.errno)
        }
        do {
            let windows = try await onLibavThread(cancellation) { () throws(TranscodeError) in
                try plan.segments.map { (segment) throws(TranscodeError) in
                    try SegmentSplit.write(
                        segment.index, of: plan, from: .fileDescriptor(input),
                        to: .fileDescriptor(cuts[segment.index].descriptor), limits: options.limits,
                        cancellation: cancellation)
                }
            }
            return SplitJob(
                plan: plan, input: input, options: options, parallelism: parallelism, windows: windows, cuts: cuts,
                answers: answers, prepareSeconds: seconds(ContinuousClock.now - started))
        } catch .cancelled {
            throw .transcode(.cancelled)
        } catch {
            // A cut that cannot be faithful (timestamps the MP4 muxer moves unevenly, say) is no reason to refuse
            // the upload: the whole-file job may well take it.
            return nil
        }
    }

    private init(
        plan: SegmentPlan, input: Int32, options: TranscodeOptions, parallelism: Int,
        windows: [TranscodeOptions.SegmentWindow], cuts: [SegmentFile], answers: [SegmentFile], prepareSeconds: Double
    ) {
        self.plan = plan
        self.input = input
        self.options = options
        self.parallelism = parallelism
        self.windows = windows
        self.cuts = cuts
        self.answers = answers
        self.prepareSeconds = prepareSeconds
    }

    /// Encodes every segment through `runner` and stitches them into `output`. The input descriptor given to
    /// `prepare` must still be open. `progress` hears the share of the segments encoded, below 1: the stitch is
    /// still to come.
    public func run(
        output: Int32, parent: String, runner: some SegmentRunner, progress: (@Sendable (Double) -> Void)? = nil
    ) async throws(SplitFailure) -> SplitOutcome {
        let started = ContinuousClock.now
        var segmentOptions = options
        segmentOptions.audio = false
        let reports = try await Self.encodeAll(
            plan, windows: windows, cuts: cuts, answers: answers, options: segmentOptions, parallelism: parallelism,
            parent: parent, runner: runner, progress: progress)
        let encoded = ContinuousClock.now
        let cancellation = TranscodeCancellation()
        let (answers, input, options) = (answers, input, options)
        let report: StitchReport
        do {
            report = try await onLibavThread(cancellation) { () throws(TranscodeError) in
                try stitch(
                    segments: answers.map { .fileDescriptor($0.descriptor) }, source: .fileDescriptor(input),
                    output: .fileDescriptor(output), options: options, cancellation: cancellation)
            }
        } catch {
            throw .transcode(error)
        }
        return SplitOutcome(
            segments: plan.segments.count, segmentSeconds: plan.segments.map(\.seconds),
            videoFiltersText: reports[0].videoFiltersText, stitch: report,
            splitSeconds: prepareSeconds + Self.seconds(ContinuousClock.now - encoded),
            encodeSeconds: Self.seconds(encoded - started))
    }

    /// Longest first, at most `parallelism` in flight; a busy answer waits and tries again, any failure ends them all.
    private static func encodeAll(
        _ plan: SegmentPlan, windows: [TranscodeOptions.SegmentWindow], cuts: [SegmentFile], answers: [SegmentFile],
        options: TranscodeOptions, parallelism: Int, parent: String, runner: some SegmentRunner,
        progress: (@Sendable (Double) -> Void)?
    ) async throws(SplitFailure) -> [TranscodeReport] {
        let order = plan.segments.sorted { $0.seconds > $1.seconds }.map(\.index)
        var reports = [TranscodeReport?](repeating: nil, count: order.count)
        let result: Result<Void, SplitFailure> = await withTaskGroup(of: Result<(Int, TranscodeReport), SplitFailure>.self) { group in
            var next = order.makeIterator()
            var done = 0
            func launch() {
                guard let index = next.next() else { return }
                var segmentOptions = options
                segmentOptions.segment = windows[index]
                let (cut, answer) = (cuts[index], answers[index])
                group.addTask {
                    await encodeOne(index, cut: cut, answer: answer, options: segmentOptions, parent: parent, runner: runner)
                }
            }
            for _ in 0..<min(parallelism, order.count) { launch() }
            for await finished in group {
                switch finished {
                case .success(let (index, report)):
                    reports[index] = report
                    done += 1
                    progress?(0.95 * Double(done) / Double(order.count))
                    launch()
                case .failure(let failure):
                    group.cancelAll()
                    return .failure(failure)
                }
            }
            return .success(())
        }
        try result.get()
        return reports.map { $0! }
    }

    private static func encodeOne(
        _ index: Int, cut: SegmentFile, answer: SegmentFile, options: TranscodeOptions, parent: String,
        runner: some SegmentRunner
    ) async -> Result<(Int, TranscodeReport), SplitFailure> {
        while true {
            if Task.isCancelled { return .failure(.transcode(.cancelled)) }
            switch await runner.encode(
                input: cut.descriptor, output: answer.descriptor, options: options, bytes: cut.size, parent: parent)
            {
            case .done(let report): return .success((index, report))
            case .failed(let error): return .failure(.segment(index: index, error))
            case .busy(let seconds):
                // The pool is full of other work: this segment waits its turn like a client told 503 would, but
                // closer to the pool's own estimate than a client, which cannot see it.
                do { try await Task.sleep(for: .milliseconds(min(max(seconds, 1), 5) * 200)) } catch {
                    return .failure(.transcode(.cancelled))
                }
            }
        }
    }

    fileprivate static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
