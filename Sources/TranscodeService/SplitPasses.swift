import SplitStitch
import SystemSupport
import Transcoding
import WorkerIsolation

/// A split job's passes over the upload as jobs on this replica's pool, so that the upload is parsed only where
/// every job parses it (in a sandboxed worker process under `--isolation process`). The plan and the cuts run
/// under the upload's own admission place, which is still held then; the stitch, once the segments are in, waits
/// for a place of its own as a segment does.
struct PoolSplitPasses: SplitPasses {
    let pool: WorkerPool
    let input: Int32
    let options: TranscodeOptions
    let reservation: WorkerPool.Reservation
    let temporaryDirectory: String

    enum PlanAnswer {
        /// Splitting pays: cut and encode along this plan.
        case split(SegmentPlan)
        /// It does not: the plan's job transcoded the upload whole into the output.
        case whole(WorkerPool.Outcome)
        /// The job's plan did not read back: the upload is for an ordinary job.
        case unplanned
    }

    /// The upload's job, as the pool would run it whole, told to plan the upload instead when splitting pays. A
    /// failure is the upload's, as the whole-file job's would be.
    func plan(
        _ settings: SplitSettings, output: Int32, onStart: (@Sendable () -> Void)?,
        progress: (@Sendable (Double) -> Void)?
    ) async throws(SplitFailure) -> PlanAnswer {
        let answer = try scratch()
        var options = options
        options.splitPass = .plan(
            segmentSeconds: settings.segmentSeconds, minimumSeconds: settings.segmentMinimumSeconds,
            skipUpTo: settings.minimumSeconds)
        let outcome: WorkerPool.Outcome
        switch await pool.run(
            reservation, input: input, output: output, options: options, extra: [answer.rawValue], onStart: onStart,
            progress: progress)
        {
        case .success(let done): outcome = done
        case .failure(.transcode(let error)): throw .transcode(error)
        case .failure(let failure): throw .pass(failure)
        }
        let plan: SegmentPlan?
        do { plan = try WorkerJob.plan(from: answer.rawValue) } catch { return .unplanned }
        guard let plan else { return .whole(outcome) }
        return .split(plan)
    }

    func cut(_ plan: SegmentPlan, into segments: [Int32]) async throws(SplitFailure) -> [Int64] {
        let answer = try scratch()
        _ = try await run(.cut(plan), output: answer.rawValue, extra: segments, under: reservation)
        do {
            return try WorkerJob.shifts(from: answer.rawValue, count: plan.segments.count)
        } catch {
            throw .pass(error)
        }
    }

    func stitch(_ answers: [Int32], into output: Int32) async throws(SplitFailure) -> StitchReport {
        while true {
            switch await pool.admit(expectedBytes: 0) {
            case .admitted(let place):
                let result: TranscodeReport
                do {
                    result = try await run(.stitch(segments: answers.count), output: output, extra: answers, under: place)
                } catch {
                    await pool.release(place)
                    throw error
                }
                await pool.release(place)
                return StitchReport(
                    segments: answers.count, videoFrames: result.videoFrames, hasAudio: result.hasAudio,
                    audioCopied: result.audioCopied, audioSamples: result.audioSamples,
                    outputDuration: result.outputDuration, seconds: result.seconds)
            case .rejected(let seconds):
                // A full pool is other work, not a failure: waited out as a segment waits (SplitJob.encodeOne).
                do { try await Task.sleep(for: .milliseconds(min(max(seconds, 1), 5) * 200)) } catch {
                    throw .transcode(.cancelled)
                }
            }
        }
    }

    private func run(
        _ pass: TranscodeOptions.SplitPass, output: Int32, extra: [Int32] = [], under place: WorkerPool.Reservation
    ) async throws(SplitFailure) -> TranscodeReport {
        var options = options
        options.splitPass = pass
        switch await pool.run(place, input: input, output: output, options: options, extra: extra) {
        case .success(let outcome): return outcome.report
        case .failure(.transcode(let error)): throw .transcode(error)
        case .failure(let failure): throw .pass(failure)
        }
    }

    /// A plan's or cut's small answer: an anonymous file, gone with its descriptor.
    private func scratch() throws(SplitFailure) -> OwnedDescriptor {
        do { return try OwnedDescriptor.anonymousFile(in: temporaryDirectory) } catch { throw .io(error.errno) }
    }
}
