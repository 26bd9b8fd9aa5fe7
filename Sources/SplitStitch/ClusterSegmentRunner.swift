import Foundation
import Transcoding

/// Why a peer refused a segment (a 4xx): the split job fails with the same status and reason.
public struct PeerRefusal: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var detail: String
    public var description: String { "a replica answered \(status): \(detail)" }
}

/// Sends segments to the replicas through the balancer (`--cluster-url`), so that the balancer decides where each
/// lands (this replica included). A 5xx, a reset, a timeout or an answer that is not a segment's video is tried
/// again, up to `attempts` times; then the segment runs on `fallback` (the own pool). A 4xx fails the job.
public struct ClusterSegmentRunner<Fallback: SegmentRunner>: SegmentRunner {
    public let url: ClusterURL
    public let fallback: Fallback
    public let attempts: Int
    /// Bounds each send and receive on the connection, seconds: a peer silent this long is taken as lost.
    public let timeoutSeconds: Int
    /// Hears each failed attempt and each fallback, for metrics and logs.
    public let observe: @Sendable (PeerEvent) -> Void

    public enum PeerEvent: Sendable {
        /// An attempt through the balancer failed in a way worth trying again; `reason` in words.
        case retried(attempt: Int, reason: String)
        /// Every attempt failed: the segment runs on the own pool.
        case fellBack
    }

    public init(
        url: ClusterURL, fallback: Fallback, attempts: Int = 3, timeoutSeconds: Int = 600,
        observe: @escaping @Sendable (PeerEvent) -> Void = { _ in }
    ) {
        self.url = url
        self.fallback = fallback
        self.attempts = attempts
        self.timeoutSeconds = timeoutSeconds
        self.observe = observe
    }

    public func encode(
        input: Int32, output: Int32, options: TranscodeOptions, bytes: Int64, parent: String, turn: SegmentTurn
    ) async -> SegmentAnswer {
        // However this ends, the segments after this one may go.
        defer { turn.taken() }
        guard let window = options.segment else { return .failed(TranscodeError.invalidOption("a segment without a window")) }
        let header = SegmentHeader(parent: parent, window: window)
        let query = Self.query(options)
        // The balancer queues requests as they come: they go in the job's order, each once the one before is out.
        await turn.wait()
        for attempt in 1...max(attempts, 1) {
            if Task.isCancelled { return .failed(TranscodeError.cancelled) }
            let (url, timeout, limits) = (url, timeoutSeconds, options.limits)
            // A coordinator whose client left stops waiting, and its peer sees the connection go.
            let cancellation = PeerCancellation()
            let result: Result<(PeerAnswer, Int?), PeerClient.PeerError> = await withTaskCancellationHandler {
                await Self.onThread {
                    Result { () throws(PeerClient.PeerError) -> (PeerAnswer, Int?) in
                        let answer = try PeerClient.post(
                            url, path: "/\(parent)\(query)", headers: [(SegmentHeader.name, header.value)], body: input,
                            bodyLength: bytes, answer: output, timeoutSeconds: timeout, cancellation: cancellation,
                            headSent: { turn.taken() })
                        guard case .ok = answer else { return (answer, nil) }
                        do {
                            return (answer, try checkSegmentAnswer(.fileDescriptor(output), limits: limits))
                        } catch {
                            throw PeerClient.PeerError(description: "an answer that is not a segment (\(error))")
                        }
                    }
                }
            } onCancel: {
                cancellation.cancel()
            }
            // An attempt that failed before its request was out lets the next segments go all the same.
            turn.taken()
            if Task.isCancelled { return .failed(TranscodeError.cancelled) }
            switch result {
            case .success((.ok(let headers, _), _)):
                return .done(Self.report(headers))
            case .success((.refused(let status, let detail), _)):
                return .failed(PeerRefusal(status: status, detail: detail))
            case .success((.retry(let why, let retryAfter), _)):
                observe(.retried(attempt: attempt, reason: why))
                if attempt < attempts {
                    try? await Task.sleep(for: .milliseconds(min(max(retryAfter ?? 1, 1), 5) * 200))
                }
            case .failure(let error):
                observe(.retried(attempt: attempt, reason: error.description))
            }
        }
        observe(.fellBack)
        return await fallback.encode(input: input, output: output, options: options, bytes: bytes, parent: parent, turn: turn)
    }

    /// The segment's settings as the query a client would send: the peer applies them as to any upload.
    static func query(_ options: TranscodeOptions) -> String {
        // The crf in force, not `quality`: the peer's defaults are not asked to agree with this replica's.
        var items = ["codec=\(options.videoCodec.rawValue)", "format=\(options.container.rawValue)",
                     "crf=\(options.encoderCRF)", "preset=\(options.preset)", "hdr=\(options.hdr.rawValue)",
                     "deinterlace=\(options.deinterlace.rawValue)", "audio=false"]
        if let height = options.maxHeight { items.append("height=\(height)") }
        if let width = options.maxWidth { items.append("width=\(width)") }
        return "?" + items.joined(separator: "&")
    }

    /// The figures the stitch and the answer's headers need, from the peer's headers.
    static func report(_ headers: [String: String]) -> TranscodeReport {
        let filters = headers["x-video-filters"].map { $0 == "none" ? [] : $0.split(separator: ",").map(String.init) } ?? []
        return TranscodeReport(
            inputFormat: "mov", inputVideoCodec: "", width: 0, height: 0, videoFrames: 0, audioSamples: 0,
            hasAudio: false, audioCopied: false, inputDuration: nil, outputDuration: 0, inputBytes: 0, outputBytes: 0,
            seconds: 0, threads: 0, videoFilters: filters)
    }

    /// A blocking exchange runs on a thread of its own, never on the cooperative pool.
    private static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: body()) }.start()
        }
    }
}
