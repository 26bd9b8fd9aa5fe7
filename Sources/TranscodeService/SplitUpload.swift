import HTTPServer
import HTTPTypes
import Glibc
import SplitStitch
import SystemSupport
import Transcoding
import WorkerIsolation

/// A split job's segments on this replica's own pool: each is admitted like any request (a full pool is "busy",
/// never a failure) and runs as an ordinary job.
struct PoolSegmentRunner: SegmentRunner {
    let pool: WorkerPool
    let metrics: ServiceMetrics

    func encode(
        input: Int32, output: Int32, options: TranscodeOptions, bytes: Int64, parent: String, turn: SegmentTurn
    ) async -> SegmentAnswer {
        // `turn` is not waited for: the job launches segments in turn, as many at once as there are workers.
        let reservation: WorkerPool.Reservation
        switch await pool.admit(expectedBytes: bytes) {
        case .admitted(let granted): reservation = granted
        case .rejected(let seconds):
            metrics.segment("busy")
            return .busy(retryAfterSeconds: seconds)
        }
        metrics.segment("sent")
        let result = await pool.run(reservation, input: input, output: output, options: options)
        await pool.release(reservation)
        switch result {
        case .success(let outcome): return .done(outcome.report)
        case .failure(let failure):
            metrics.segment("failed")
            return .failed(failure)
        }
    }
}

extension Routes {
    /// `?split=off` turns splitting off for one upload; the rest of the query is the transcode's.
    static func splitChoice(_ query: [(String, String)]) throws(Problem) -> (split: Bool, rest: [(String, String)]) {
        let values = query.filter { $0.0 == "split" }.map(\.1)
        guard values.count <= 1 else { throw Problem(.badRequest, "query parameter split is repeated") }
        guard let value = values.first else { return (true, query) }
        guard let mode = SplitSettings.Mode(rawValue: value) else {
            throw Problem(.badRequest, "split must be auto or off, not '\(value)'")
        }
        return (mode == .auto, query.filter { $0.0 != "split" })
    }

    /// Whether a video with these options can be split: the stitcher joins H.264 segments into one MP4, so other
    /// codecs and WebM, and posters, are one whole-file job.
    static func stitchable(_ options: TranscodeOptions) -> Bool {
        options.poster == nil && options.videoCodec == .h264 && options.container == .mp4
    }

    /// Segments in flight at once through the balancer.
    static let clusterParallelism = 64

    /// The segment request's window and parent, from its `X-Segment` header; nil for an ordinary upload.
    static func segmentRequest(_ fields: HTTPFields) throws(Problem) -> SegmentHeader? {
        let name = HTTPField.Name(SegmentHeader.name)!
        let values = fields[values: name]
        guard !values.isEmpty else { return nil }
        guard values.count == 1 else { throw Problem(.badRequest, "X-Segment is repeated") }
        do {
            return try SegmentHeader(parsing: values[0]) { (try? validateVideoID([$0])) != nil }
        } catch {
            throw Problem(.badRequest, error.description)
        }
    }

    /// What became of an upload offered for splitting.
    enum SplitResult {
        /// Split, encoded and stitched into the output, in `seconds`.
        case split(SplitOutcome, seconds: Double)
        /// Not worth splitting: the job that planned it transcoded it whole into the output, as an ordinary job.
        case whole(WorkerPool.Outcome)
    }

    /// The synchronous answer to a split upload: the whole-file answer's kind and id, the split's fields.
    func splitAnswer(
        _ outcome: SplitOutcome, seconds: Double, output: TempFile, id: String, options: TranscodeOptions,
        _ record: inout RequestRecord
    ) throws(Problem) -> ServerResponse {
        record.transcodeMs = seconds * 1000
        let length: Int64
        do { length = try fileSize(of: output.borrowedDescriptor) } catch { throw Problem(TempFileError(error.errno)) }
        var fields: HTTPFields = [
            .contentType: options.container.mimeType,
            .contentDisposition: "inline; filename=\"\(id).\(options.container.fileExtension)\"",
            HTTPField.Name("X-Video-Id")!: id,
        ]
        for (name, value) in Self.splitDetails(outcome, seconds: seconds, options: options) {
            fields[HTTPField.Name(name)!] = value
        }
        return ServerResponse(status: .ok, headerFields: fields, body: .file(descriptor: output.take(), length: length))
    }

    /// Offers the upload for splitting: its job (under `reservation`) plans it, or transcodes it whole into
    /// `output` when splitting does not pay; a planned upload is cut, its place given back (the coordinator then
    /// holds no place and no worker while its segments take theirs), its segments encoded and stitched into
    /// `output`. Nil, with `reservation` still held and `output` untouched, when splitting is off here or a cut
    /// failed: then it is one ordinary job. `onStart` and `progress` are the planning job's, then the share of the
    /// segments encoded.
    func runSplit(
        _ input: TempFile, output: Int32, id: String, options: TranscodeOptions, reservation: WorkerPool.Reservation,
        onStart: (@Sendable () -> Void)? = nil, progress: (@Sendable (Double) -> Void)? = nil
    ) async throws(Problem) -> SplitResult? {
        // Through the balancer every replica's workers may take a segment: as many at once as there are.
        let parallelism = config.clusterURL == nil ? pool.workers : Self.clusterParallelism
        guard config.split.mode == .auto, parallelism > 1, options.segment == nil else { return nil }
        let started = ContinuousClock.now
        let job: SplitJob
        do {
            let passes = PoolSplitPasses(
                pool: pool, input: input.borrowedDescriptor, options: options, reservation: reservation,
                temporaryDirectory: config.tmpDir)
            switch try await passes.plan(config.split, output: output, onStart: onStart, progress: progress) {
            case .whole(let outcome): return .whole(outcome)
            case .unplanned: return nil
            case .split(let plan):
                guard let prepared = try await SplitJob.prepare(
                    plan: plan, options: options, settings: config.split, parallelism: parallelism,
                    temporaryDirectory: config.tmpDir, passes: passes)
                else { return nil }
                job = prepared
            }
        } catch {
            throw Problem(error)
        }
        pool.counters.coordinating.add(1, ordering: .relaxed)
        defer { pool.counters.coordinating.subtract(1, ordering: .relaxed) }
        await pool.release(reservation)
        do {
            let own = PoolSegmentRunner(pool: pool, metrics: metrics)
            let outcome: SplitOutcome
            if let url = config.clusterURL {
                let metrics = metrics
                let peers = ClusterSegmentRunner(url: url, fallback: own) { event in
                    switch event {
                    case .retried: metrics.segment("retried")
                    case .fellBack: metrics.segment("fallback")
                    }
                }
                outcome = try await job.run(output: output, parent: id, runner: peers, progress: progress)
            } else {
                outcome = try await job.run(output: output, parent: id, runner: own, progress: progress)
            }
            metrics.splitJob(ok: true)
            return .split(outcome, seconds: Self.seconds(ContinuousClock.now - started))
        } catch {
            metrics.splitJob(ok: false)
            throw Problem(error)
        }
    }

    /// The fields a split answer has beyond the whole-file answer's kind and id, for a synchronous answer and an
    /// async job's status alike.
    static func splitDetails(_ outcome: SplitOutcome, seconds: Double, options: TranscodeOptions) -> [String: String] {
        [
            "X-Queue-Wait-Ms": "0",
            "X-Transcode-Ms": milliseconds(seconds),
            "X-Video-Codec": options.videoCodec.rawValue,
            "X-Video-Filters": outcome.videoFiltersText,
            "X-Video-Segments": String(outcome.segments),
        ]
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

extension Problem {
    init(_ failure: SplitFailure) {
        switch failure {
        case .transcode(let error): self.init(error)
        case .io(let errno): self.init(TempFileError(errno))
        case .pass(let error):
            self = (error as? JobFailure).map(Problem.init) ?? Problem(.internalServerError, "split: \(error)")
        case .segment(let index, let error):
            var problem =
                if let refusal = error as? PeerRefusal {
                    Problem(HTTPResponse.Status(code: refusal.status), refusal.detail)
                } else {
                    (error as? JobFailure).map(Problem.init) ?? Problem(.internalServerError, "\(error)")
                }
            problem.detail = "segment \(index): \(problem.detail)"
            self = problem
        }
    }
}
