/// What only the handler knows of a request's log line: the job's id and timings. Routes attach it to the response
/// (`ServerResponse.annotation`); the server hands it to `Observation` and never sends it.
struct RequestRecord: Sendable {
    var videoID: String?
    /// The split job a segment request belongs to (its `X-Segment` header's parent).
    var parent: String?
    var queueMs: Double?
    var transcodeMs: Double?
}

func milliseconds(_ seconds: Double) -> String { String(Int((seconds * 1000).rounded())) }
