/// One event of a job's stream (`GET /jobs/<id>/events`): a progress step or a state change. Every event of a job
/// is kept until the job expires, so a client that reconnects with `Last-Event-ID` gets exactly what it missed.
/// A job has at most about a hundred: progress is recorded in steps of at least 1 %.
public struct JobEvent: Sendable, Equatable {
    /// 1, 2, 3… within the job: the SSE `id:`.
    public let id: Int
    /// `progress` or `state`; the stream ends after the state event of a final state.
    public let name: String
    /// One line of JSON: `{"progress":0.42}`, or the whole status document.
    public let data: [UInt8]
    public let isFinal: Bool

    /// The event in the WHATWG `text/event-stream` format.
    public var serverSentEvent: [UInt8] {
        Array("id: \(id)\nevent: \(name)\ndata: ".utf8) + data + Array("\n\n".utf8)
    }

    /// Sent when nothing happened for a while, so that proxies do not cut an idle stream: a comment line, which
    /// clients ignore.
    public static let heartbeat = Array(": heartbeat\n\n".utf8)

    /// How long a client waits before reconnecting, sent once at the start of a stream.
    public static let retry = Array("retry: 2000\n\n".utf8)
}
