import HTTPServer
import HTTPTypes
import Jobs
import SystemSupport
import Transcoding
import WorkerIsolation

/// `Prefer: respond-async[, wait=N]` (RFC 7240): the client would rather have 202 and a job than wait for the video.
struct AsyncPreference: Equatable {
    /// Seconds the client is willing to wait for the finished video before it takes the 202 instead.
    var wait: Double?

    /// The longest `wait` honoured: a connection held that long costs no worker, but proxies cut idle ones at 60 s.
    static let longestWait = 300.0

    /// Nil unless one of the `Prefer` fields asks for `respond-async`. Preferences are case-insensitive tokens with
    /// optional values (quoted or not) and parameters after `;`; unknown ones are ignored, as the RFC asks.
    init?(_ fields: [String]) {
        var async = false
        for field in fields {
            for item in field.split(separator: ",") {
                let preference = item.split(separator: ";", maxSplits: 1).first ?? item[...]
                let pair = preference.split(separator: "=", maxSplits: 1)
                let name = pair.first?.trimmingSpaces.lowercased() ?? ""
                var value = pair.count == 2 ? pair[1].trimmingSpaces : ""
                if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                switch name {
                case "respond-async": async = true
                case "wait":
                    if let seconds = Int(value), seconds >= 0 { wait = min(Double(seconds), Self.longestWait) }
                default: break
                }
            }
        }
        guard async else { return nil }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

extension Problem {
    /// The problem as a job keeps it, to show in its status document.
    var jobProblem: JobProblem {
        JobProblem(status: status.code, title: status.reasonPhrase, detail: detail)
    }

    init(_ problem: JobProblem) {
        self.init(HTTPResponse.Status(code: problem.status, reasonPhrase: problem.title), problem.detail)
    }
}

extension Routes {
    static let prefer = HTTPField.Name("Prefer")!
    static let preferenceApplied = HTTPField.Name("Preference-Applied")!

    /// The async upload, once admitted: the body is read, a job registered and started, and the answer is 202 with
    /// its status, or with `wait=N` the video itself if it is done in time. The job runs in a task of its own and
    /// holds the admission place until it ends (a split job until it is cut, as a synchronous one): a client that
    /// leaves does not cancel it, only DELETE does.
    func submitAsync(
        _ body: RequestBody, id videoID: String, options: TranscodeOptions, split: Bool,
        reservation: WorkerPool.Reservation, _ preference: AsyncPreference, callback: CallbackTarget?,
        _ record: inout RequestRecord
    ) async throws(Problem) -> ServerResponse {
        let input: TempFile
        let job: (id: String, secret: String)
        let output: Int32
        do throws(Problem) {
            input = try await receive(body, reservation)
        } catch {
            await pool.release(reservation)
            throw error
        }
        do throws(IOError) {
            job = try jobs.create(videoID: videoID)
            output = try jobs.store.create(job.secret).release()
        } catch {
            await pool.release(reservation)
            throw Problem(TempFileError(error.errno))
        }
        let task = Task { [self] in
            defer { closeDescriptor(output) }
            if split {
                do throws(Problem) {
                    switch try await runSplit(
                        input, output: output, id: videoID, options: options, reservation: reservation,
                        onStart: { jobs.started(job.id) }, progress: { jobs.progress(job.id, $0) })
                    {
                    case .split(let outcome, let seconds)?:
                        let details = Self.splitDetails(outcome, seconds: seconds, options: options)
                        Self.recordSplit(of: job, output: output, details: details, options: options, in: jobs)
                        return
                    case .whole(let outcome)?:
                        await pool.release(reservation)
                        Self.record(.success(outcome), of: job, options: options, in: jobs, metrics: metrics)
                        return
                    case nil: break
                    }
                } catch {
                    await pool.release(reservation)
                    jobs.store.discard(job.secret)
                    // Only DELETE cancels this task: a split stopped by it is the cancelled job, not a failure.
                    if Task.isCancelled { jobs.cancelled(job.id) } else { jobs.failed(job.id, error.jobProblem) }
                    return
                }
            }
            let result = await pool.run(
                reservation, input: input.borrowedDescriptor, output: output, options: options,
                onStart: { jobs.started(job.id) }, progress: { jobs.progress(job.id, $0) })
            await pool.release(reservation)
            Self.record(result, of: job, options: options, in: jobs, metrics: metrics)
        }
        jobs.onCancel(job.id) { task.cancel() }
        if let callback { webhooks?.follow(job.id, to: callback, in: jobs) }

        if let wait = preference.wait, wait > 0, let status = await jobs.waitForFinalState(job.id, seconds: wait) {
            if status.state == .succeeded, let bytes = status.resultBytes, let file = jobs.store.open(job.secret) {
                // The synchronous answer's fields, and where the result stays until its TTL.
                let type = status.details["Content-Type"] ?? "video/mp4"
                var fields: HTTPFields = [
                    .contentDisposition: "inline; filename=\"\(videoID).\(Self.fileExtension(type))\"",
                    HTTPField.Name("X-Video-Id")!: videoID, .contentLocation: "/jobs/\(job.id)/output",
                ]
                for (name, value) in status.details.sorted(by: { $0.key < $1.key }) {
                    if let field = HTTPField.Name(name) { fields[field] = value }
                }
                return ServerResponse(status: .ok, headerFields: fields, body: .file(descriptor: file.release(), length: bytes))
            }
            if status.state == .failed, let error = status.error { throw Problem(error) }
        }
        guard case .found(let status) = jobs.lookup(job.id) else {
            throw Problem(.internalServerError, "the job vanished as it was made")
        }
        return ServerResponse(
            status: .accepted,
            headerFields: [
                .contentType: "application/json", .cacheControl: "no-store", .location: "/jobs/\(job.id)",
                Self.preferenceApplied: "respond-async", HTTPField.Name("X-Video-Id")!: videoID,
            ],
            body: .bytes(status.json()))
    }

    static let callbackURL = HTTPField.Name("Callback-URL")!

    /// The upload's `callback` (query) or `Callback-URL` (header), checked; nil when it has neither.
    func callbackTarget(_ request: HTTPRequest, _ target: RequestTarget, async: Bool) throws(Problem) -> CallbackTarget? {
        let given = target.query.filter { $0.0 == "callback" }.map(\.1) + request.headerFields[values: Self.callbackURL]
        guard let url = given.first else { return nil }
        guard given.count == 1 else { throw Problem(.badRequest, "give one callback, as callback= or Callback-URL") }
        guard async else { throw Problem(.badRequest, "a callback needs Prefer: respond-async") }
        guard webhooks != nil else { throw Problem(.badRequest, "this service sends no callbacks (no --callback-secret)") }
        return try CallbackTarget(url, allowed: config.callbackAllow)
    }

    /// A split job's stitched result, into the registry and the results folder, as `record` does for one job's.
    private static func recordSplit(
        of job: (id: String, secret: String), output: Int32, details: [String: String], options: TranscodeOptions,
        in jobs: JobRegistry
    ) {
        let bytes: Int64
        do throws(IOError) {
            bytes = try fileSize(of: output)
            try jobs.store.commit(job.secret, bytes: bytes)
        } catch {
            jobs.store.discard(job.secret)
            jobs.failed(job.id, Problem(TempFileError(error.errno)).jobProblem)
            return
        }
        var details = details
        details["Content-Type"] = options.container.mimeType
        if !jobs.succeeded(job.id, bytes: bytes, details: details) { jobs.store.remove(job.secret, bytes: bytes) }
    }

    /// What became of a job's run, into the registry and the results folder. A result that arrives after the job
    /// was cancelled is deleted at once.
    private static func record(
        _ result: Result<WorkerPool.Outcome, JobFailure>, of job: (id: String, secret: String), options: TranscodeOptions,
        in jobs: JobRegistry, metrics: ServiceMetrics
    ) {
        switch result {
        case .success(let outcome):
            metrics.jobFinished(
                queueWait: outcome.queueWait, transcode: outcome.transcodeSeconds,
                handoff: outcome.transcodeSeconds - outcome.report.seconds,
                codec: options.poster == nil ? options.videoCodec : nil)
            let bytes = outcome.report.outputBytes
            do {
                try jobs.store.commit(job.secret, bytes: bytes)
            } catch {
                jobs.store.discard(job.secret)
                jobs.failed(job.id, Problem(TempFileError(error.errno)).jobProblem)
                return
            }
            var details = [
                "Content-Type": options.poster?.format.mimeType ?? options.container.mimeType,
                "X-Queue-Wait-Ms": milliseconds(outcome.queueWait),
                "X-Transcode-Ms": milliseconds(outcome.transcodeSeconds),
            ]
            if options.poster == nil {
                details["X-Video-Codec"] = options.videoCodec.rawValue
                details["X-Video-Filters"] = outcome.report.videoFiltersText
            }
            if !jobs.succeeded(job.id, bytes: bytes, details: details) { jobs.store.remove(job.secret, bytes: bytes) }
        case .failure(.transcode(.cancelled)):
            jobs.store.discard(job.secret)
            jobs.cancelled(job.id)
        case .failure(let failure):
            jobs.store.discard(job.secret)
            jobs.failed(job.id, Problem(failure).jobProblem)
        }
    }
}
