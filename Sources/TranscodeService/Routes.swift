import HTTPServer
import HTTPTypes
import Jobs
import Synchronization
import Transcoding
import WorkerIsolation

/// The service's HTTP surface: `POST /<video_id>`, `POST /<video_id>/poster`, `GET|HEAD /about`, `GET /metrics`, and OPTIONS on each (the
/// server answers `OPTIONS *` from `Routes.serverWideMethods`). Errors are problem+json.
public struct Routes: Sendable {
    let config: ServiceConfig
    let pool: WorkerPool
    let lifecycle: Lifecycle
    let metrics: ServiceMetrics
    let jobs: JobRegistry
    /// Nil without a `--callback-secret`: then no callback is accepted.
    let webhooks: WebhookSender?

    /// Answers the about route on the event loop itself: no task hop, so it stays fast while every worker is busy.
    /// Its path and methods are the route table's.
    public func fastPath(_ request: RequestLine) -> ServerResponse? {
        let route = Self.aboutRoute
        let path = request.path
        guard path == route.template || path.hasPrefix(route.template + "?"), route.methods.contains(request.method)
        else { return nil }
        return about()
    }

    /// Logs and request metrics are the server's observer's (Observation.swift); the job's id and timings ride
    /// along on the response for it.
    public func handle(_ request: HTTPRequest, _ body: RequestBody) async -> ServerResponse {
        var record = RequestRecord()
        var response: ServerResponse
        do {
            response = try await route(request, body, &record)
        } catch {
            response = error.response
        }
        response.annotation = record
        return response
    }

    private func route(_ request: HTTPRequest, _ body: RequestBody, _ record: inout RequestRecord) async throws(Problem) -> ServerResponse {
        let target = try RequestTarget(request.path ?? "")
        let route = Routes.route(for: target.segments)
        if request.method == .options { return try route.options(target.segments) }
        guard route.methods.contains(request.method) else { throw route.refusal(of: request.method, target.segments) }
        switch route.kind {
        case .about:
            return about()
        case .metrics:
            return ServerResponse(
                status: .ok, headerFields: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .bytes(Array(metrics.exposition(counters: pool.counters, jobs: jobs).utf8)))
        case .transcode:
            return try await transcodeUpload(request, body, target, &record)
        case .job:
            return try jobStatus(request, target.segments[1])
        case .jobOutput:
            return try jobOutput(request, target.segments[1])
        case .jobEvents:
            return try jobEvents(request, target.segments[1])
        case .poster:
            return try await transcodeUpload(request, body, target, &record, poster: true)
        }
    }

    /// A video's upload, for its transcode or (`poster`) one frame of it as an image: the same admission, sandbox
    /// and errors.
    private func transcodeUpload(
        _ request: HTTPRequest, _ body: RequestBody, _ target: RequestTarget, _ record: inout RequestRecord,
        poster: Bool = false
    ) async throws(Problem) -> ServerResponse {
        let id = try validateVideoID(poster ? Array(target.segments.prefix(1)) : target.segments)
        record.videoID = id
        // `split` and `callback` are the job's, not the transcode's: neither query parser sees them. A poster is one
        // frame, never split, so its query keeps `split` to be refused as unknown.
        var (split, query) = poster ? (false, target.query) : try Routes.splitChoice(target.query)
        query = query.filter { $0.0 != "callback" }
        var options = try poster
            ? applyPosterQuery(query, to: config.baseOptions) : applyQuery(query, to: config.baseOptions)
        let async = AsyncPreference(request.headerFields[values: Self.prefer])
        let callback = try callbackTarget(request, target, async: async != nil)
        if let segment = try Routes.segmentRequest(request.headerFields) {
            guard !poster, async == nil, Routes.stitchable(options) else {
                throw Problem(.badRequest, "a segment request is a synchronous H.264 video in MP4, not a poster or async job")
            }
            options.segment = segment.window
            options.audio = false
            split = false
            record.parent = segment.parent
            metrics.segment("received")
        }
        // The stitcher joins H.264 segments into MP4: any other output is one whole-file job.
        split = split && Routes.stitchable(options)
        guard request.headerFields[.contentLength] != nil || request.headerFields[.transferEncoding] != nil else {
            throw Problem(.lengthRequired, "send the video with Content-Length or chunked transfer coding")
        }
        guard !lifecycle.isDraining else {
            // Refused before anything is done with it (its body is never read), and on a connection that closes
            // after it: a balancer or client may send it again, to another replica.
            throw Problem(
                .serviceUnavailable, "the service is shutting down; the request was not processed and is safe to retry",
                headers: [.retryAfter: "5"])
        }
        // No worker process can start (a broken binary, a sandbox the kernel refuses): an admitted upload would wait
        // for as long as that lasts. /about says the same, so a balancer sends it elsewhere.
        guard pool.counters.canRunJobs else {
            throw Problem(.serviceUnavailable, "no worker process can start", headers: [.retryAfter: "5"])
        }
        if async != nil && jobs.store.isFull {
            throw Problem(
                .serviceUnavailable, "the kept async results fill the service's --result-bytes",
                headers: [.retryAfter: String(max(Int(config.resultTTL / 10), 1))])
        }
        // Admission comes before the body: a refused client has sent nothing but its head.
        let reservation: WorkerPool.Reservation
        switch await pool.admit(expectedBytes: body.expectedLength) {
        case .admitted(let granted): reservation = granted
        case .rejected(let seconds):
            throw Problem(.serviceUnavailable, "all workers are busy and the queue is full", headers: [.retryAfter: String(seconds)])
        }
        if let async {
            // The job's runner gives the place back when the job ends, whoever is still listening.
            return try await submitAsync(
                body, id: id, options: options, split: split, reservation: reservation, async, callback: callback,
                &record)
        }
        // The place is given back before the answer goes out, so that the client's next request finds it free.
        let response: ServerResponse
        do {
            response = try await transcodeAdmitted(
                body, id: id, options: options, split: split, reservation: reservation, &record)
        } catch {
            await pool.release(reservation)
            throw error
        }
        await pool.release(reservation)
        return response
    }

    /// The admitted part of an upload: the body into a temp file, the job, the answer.
    private func transcodeAdmitted(
        _ body: RequestBody, id: String, options: TranscodeOptions, split: Bool, reservation: WorkerPool.Reservation,
        _ record: inout RequestRecord
    ) async throws(Problem) -> ServerResponse {
        let input = try await receive(body, reservation)
        let output = try temporaryFile()
        var planned: WorkerPool.Outcome? = nil
        if split {
            switch try await runSplit(
                input, output: output.borrowedDescriptor, id: id, options: options, reservation: reservation)
            {
            case .split(let outcome, let seconds)?:
                return try splitAnswer(outcome, seconds: seconds, output: output, id: id, options: options, &record)
            case .whole(let outcome)?: planned = outcome
            case nil: break
            }
        }
        let result: Result<WorkerPool.Outcome, JobFailure>
        if let planned {
            result = .success(planned)
        } else {
            result = await pool.run(
                reservation, input: input.borrowedDescriptor, output: output.borrowedDescriptor, options: options)
        }
        switch result {
        case .success(let outcome):
            record.queueMs = outcome.queueWait * 1000
            record.transcodeMs = outcome.transcodeSeconds * 1000
            metrics.jobFinished(
                queueWait: outcome.queueWait, transcode: outcome.transcodeSeconds,
                handoff: outcome.transcodeSeconds - outcome.report.seconds,
                codec: options.poster == nil ? options.videoCodec : nil)
            var fields: HTTPFields = [
                HTTPField.Name("X-Video-Id")!: id,
                HTTPField.Name("X-Queue-Wait-Ms")!: milliseconds(outcome.queueWait),
                HTTPField.Name("X-Transcode-Ms")!: milliseconds(outcome.transcodeSeconds),
            ]
            if let poster = options.poster {
                fields[.contentType] = poster.format.mimeType
                fields[.contentDisposition] = "inline; filename=\"\(id).\(poster.format.rawValue)\""
            } else {
                fields[.contentType] = options.container.mimeType
                fields[.contentDisposition] = "inline; filename=\"\(id).\(options.container.fileExtension)\""
                fields[HTTPField.Name("X-Video-Codec")!] = options.videoCodec.rawValue
                fields[HTTPField.Name("X-Video-Filters")!] = outcome.report.videoFiltersText
            }
            return ServerResponse(
                status: .ok,
                headerFields: fields,
                // libav wrote the file through its own descriptor; its size is in the report, not in `output.size`.
                body: .file(descriptor: output.take(), length: outcome.report.outputBytes))
        case .failure(let error):
            throw Problem(error)
        }
    }

    /// The upload's body into an anonymous temp file, admitted against the byte budget as it arrives.
    func receive(_ body: RequestBody, _ reservation: WorkerPool.Reservation) async throws(Problem) -> TempFile {
        let input = try temporaryFile()
        // A chunked body declared no size, so its bytes are admitted against the byte budget as they arrive, a step
        // at a time (one actor hop per step, not per chunk).
        var arrived: Int64 = 0
        var admitted: Int64 = 0
        func admitChunk(_ count: Int) async throws(Problem) {
            arrived += Int64(count)
            guard arrived > admitted else { return }
            switch await pool.grow(reservation, needed: arrived - admitted, wanted: Self.chunkedAdmissionStep) {
            case .granted(let bytes): admitted += bytes
            case .refused(let seconds):
                throw Problem(
                    .serviceUnavailable, "the uploads in flight fill the service's byte budget",
                    headers: [.retryAfter: String(seconds)])
            }
        }
        do {
            // Spliced from the socket into the file where the framing allows: no copy through this process.
            input.appended(try await body.write(to: input.borrowedDescriptor, admitting: admitChunk))
        } catch let problem as Problem {
            throw problem
        } catch RequestBodyError.writeFailed(let code) {
            throw Problem(TempFileError(code))
        } catch RequestBodyError.tooLarge {
            throw Problem(.contentTooLarge, "the body is larger than \(config.maxBody) bytes")
        } catch {
            // The client went away or stalled mid-body; nothing was queued and the temp file closes with `input`.
            throw Problem(.badRequest, "the upload did not complete (\(error))")
        }
        guard input.size > 0 else { throw Problem(.badRequest, "the body is empty: send the video as the body") }
        return input
    }

    /// How much of the byte budget a chunked upload takes at a time.
    static let chunkedAdmissionStep: Int64 = 1 << 20

    private func temporaryFile() throws(Problem) -> TempFile {
        do { return try TempFile(directory: config.tmpDir) } catch { throw Problem(error) }
    }

    /// Built as bytes from constant parts and the live figures: this runs on the event loop for every health check,
    /// and a chain of String concatenations cost more than the rest of the request.
    private func about() -> ServerResponse {
        let counters = pool.counters
        let draining = lifecycle.isUnready
        let degraded = counters.isDegraded
        let ready = counters.readyWorkers.load(ordering: .relaxed)
        let unavailable = draining || !counters.canRunJobs
        var json = draining ? Self.aboutDrainingJSON : degraded ? Self.aboutDegradedJSON : Self.aboutOKJSON
        json.reserveCapacity(json.count + 200)
        func figure(_ name: StaticString, _ value: Int, last: Bool = false) {
            json.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            json.append(contentsOf: String(value).utf8)
            json.append(last ? UInt8(ascii: "}") : UInt8(ascii: ","))
        }
        figure("\"workers\":", counters.workers.load(ordering: .relaxed))
        figure("\"workers_ready\":", ready)
        figure("\"running\":", counters.running.load(ordering: .relaxed))
        figure("\"queued\":", counters.queued)
        figure("\"capacity\":", counters.capacity.load(ordering: .relaxed))
        figure("\"completed\":", counters.completed.load(ordering: .relaxed))
        figure("\"failed\":", counters.failed.load(ordering: .relaxed))
        figure("\"rejected\":", counters.rejected.load(ordering: .relaxed))
        if draining, let seconds = lifecycle.secondsUntilStopped { figure("\"stops_in_seconds\":", seconds) }
        figure("\"uptime_seconds\":", Int(lifecycle.uptime), last: true)
        var response = unavailable ? Self.aboutUnavailable : Self.aboutOK
        response.body = .bytes(json)
        return response
    }

    /// What never changes in `/about`, made once: the head (prepared) and the JSON up to the live figures.
    private static let aboutOK = ServerResponse(status: .ok, headerFields: aboutFields).prepared()
    private static let aboutUnavailable = ServerResponse(status: .serviceUnavailable, headerFields: aboutFields).prepared()
    private static let aboutFields: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store"]
    private static let aboutOKJSON = aboutJSONStart(status: "ok")
    private static let aboutDrainingJSON = aboutJSONStart(status: "draining")
    private static let aboutDegradedJSON = aboutJSONStart(status: "degraded")

    private static func aboutJSONStart(status: String) -> [UInt8] {
        let versions = LibavVersions.all.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
        let start = "{\"service\":\"ffmpeg-processor\",\"version\":\(jsonString(serviceVersion)),"
            + "\"status\":\(jsonString(status)),\"libav\":{\(versions.joined(separator: ","))},"
        return Array(start.utf8)
    }
}
