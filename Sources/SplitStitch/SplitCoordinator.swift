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
    /// A pass over the upload (plan, cut, stitch) failed with a transcode error.
    case transcode(TranscodeError)
    /// A pass's job failed otherwise (its process died, ran out of memory, answered nonsense).
    case pass(any Error & Sendable)
    /// A segment's job failed: the job fails with its reason.
    case segment(index: Int, any Error & Sendable)
    /// No temp file could be made.
    case io(Errno)
}

/// Where a split job's passes over the upload run after its plan (which the service gets from the job that would
/// otherwise transcode it whole: `TranscodeOptions.SplitPass.plan`). The service runs each as a job of its pool, so
/// that the upload is parsed in a sandboxed worker process like any job's, never in the coordinator.
public protocol SplitPasses: Sendable {
    /// Cuts each segment of `plan` from the upload into `segments`, in order, by stream copy; each cut's timestamp
    /// shift (`SegmentSplit.write`).
    func cut(_ plan: SegmentPlan, into segments: [Int32]) async throws(SplitFailure) -> [Int64]
    /// Joins the segments' answers with the upload's audio into `output` (`stitch`).
    func stitch(_ answers: [Int32], into output: Int32) async throws(SplitFailure) -> StitchReport
}

/// The coordinator of one upload: has it cut at its plan's keyframes (`prepare`), each segment encoded by a
/// runner (longest first, at most `parallelism` at a time) and the answers stitched with the upload's audio
/// (`run`). It holds no worker and parses no byte of the upload: every pass is a `SplitPasses` job, every wait a
/// suspended task.
public final class SplitJob: Sendable {
    public let plan: SegmentPlan
    private let options: TranscodeOptions
    private let parallelism: Int
    private let passes: any SplitPasses
    private let windows: [TranscodeOptions.SegmentWindow]
    private let cuts: [SegmentFile]
    private let answers: [SegmentFile]
    private let prepareSeconds: Double

    /// Nil when `plan` (a worker's answer) does not pay or a cut cannot be faithful: the caller then runs the
    /// upload as one job, which reports a bad input in its own words; only a cancellation ends it here.
    public static func prepare(
        plan: SegmentPlan, options: TranscodeOptions, settings: SplitSettings, parallelism: Int,
        temporaryDirectory: String, passes: some SplitPasses
    ) async throws(SplitFailure) -> SplitJob? {
        guard plan.pays(minimumSeconds: settings.minimumSeconds) else { return nil }
        let started = ContinuousClock.now
        let cuts: [SegmentFile]
        let answers: [SegmentFile]
        do {
            cuts = try plan.segments.map { _ throws(IOError) in try SegmentFile(directory: temporaryDirectory) }
            answers = try plan.segments.map { _ throws(IOError) in try SegmentFile(directory: temporaryDirectory) }
        } catch {
            throw .io(error.errno)
        }
        let shifts: [Int64]
        do {
            shifts = try await passes.cut(plan, into: cuts.map(\.descriptor))
        } catch .transcode(.cancelled) {
            throw .transcode(.cancelled)
        } catch {
            // A cut that cannot be faithful (timestamps the MP4 muxer moves unevenly, say) is no reason to refuse
            // the upload: the whole-file job may well take it.
            return nil
        }
        return SplitJob(
            plan: plan, options: options, parallelism: parallelism, passes: passes,
            windows: plan.segments.map { plan.window($0, shift: shifts[$0.index]) }, cuts: cuts, answers: answers,
            prepareSeconds: seconds(ContinuousClock.now - started))
    }

    private init(
        plan: SegmentPlan, options: TranscodeOptions, parallelism: Int, passes: any SplitPasses,
        windows: [TranscodeOptions.SegmentWindow], cuts: [SegmentFile], answers: [SegmentFile], prepareSeconds: Double
    ) {
        self.plan = plan
        self.options = options
        self.parallelism = parallelism
        self.passes = passes
        self.windows = windows
        self.cuts = cuts
        self.answers = answers
        self.prepareSeconds = prepareSeconds
    }

    /// Encodes every segment through `runner` and stitches them into `output`; the upload the passes read must
    /// still be open. `progress` hears the share of the segments encoded, below 1: the stitch is
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
        let report = try await passes.stitch(answers.map(\.descriptor), into: output)
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
        let turns = SegmentTurn.sequence(count: order.count)
        var reports = [TranscodeReport?](repeating: nil, count: order.count)
        let result: Result<Void, SplitFailure> = await withTaskGroup(of: Result<(Int, TranscodeReport), SplitFailure>.self) { group in
            var next = zip(order, turns).makeIterator()
            var done = 0
            func launch() {
                guard let (index, turn) = next.next() else { return }
                var segmentOptions = options
                segmentOptions.segment = windows[index]
                let (cut, answer) = (cuts[index], answers[index])
                group.addTask {
                    await encodeOne(
                        index, cut: cut, answer: answer, options: segmentOptions, parent: parent, turn: turn, runner: runner)
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
        turn: SegmentTurn, runner: some SegmentRunner
    ) async -> Result<(Int, TranscodeReport), SplitFailure> {
        while true {
            if Task.isCancelled { return .failure(.transcode(.cancelled)) }
            switch await runner.encode(
                input: cut.descriptor, output: answer.descriptor, options: options, bytes: cut.size, parent: parent,
                turn: turn)
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
