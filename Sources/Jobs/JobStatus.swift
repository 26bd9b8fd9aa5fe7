import Foundation

/// Where an async job is in its life. `succeeded`, `failed` and `cancelled` are final.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// The problem document (RFC 9457) a synchronous request would have been answered with, kept as the job's error.
public struct JobProblem: Sendable, Codable, Equatable {
    public var type = "about:blank"
    public var title: String
    public var status: Int
    public var detail: String

    public init(status: Int, title: String, detail: String) {
        self.status = status
        self.title = title
        self.detail = detail
    }
}

/// One job as `GET /jobs/<id>` shows it. Times are RFC 3339 in UTC; absent members are JSON nulls, so a client
/// always finds every member.
public struct JobStatus: Sendable, Equatable {
    public var id: String
    public var videoID: String
    public var state: JobState
    /// 0–1, never smaller than before, and 1 only once the result is complete.
    public var progress: Double
    /// 1 for the next queued job to start; nil unless queued.
    public var queuePosition: Int?
    public var etaSeconds: Double?
    public var created: Date
    public var started: Date?
    public var finished: Date?
    public var expires: Date?
    /// The result's path (`/jobs/<id>/output`) once succeeded.
    public var result: String?
    public var error: JobProblem?
    /// The result's size once succeeded.
    public var resultBytes: Int64?
    /// What the service wants to say of the result besides the document (response fields such as the filters that
    /// ran); not part of the JSON.
    public var details: [String: String] = [:]

    /// The status document's JSON.
    public func json() -> [UInt8] {
        let document = Document(
            id: id, video_id: videoID, state: state, progress: (progress * 10_000).rounded(.down) / 10_000,
            queue_position: queuePosition, eta_seconds: etaSeconds.map { ($0 * 10).rounded() / 10 },
            created: Self.format(created), started: started.map(Self.format), finished: finished.map(Self.format),
            expires: expires.map(Self.format), result: result, error: error)
        // A document of strings and numbers always encodes.
        return Array((try? Self.encoder.encode(document)) ?? Data("{}".utf8))
    }

    /// RFC 3339 in UTC with milliseconds: `2026-12-07T06:57:31.284Z`.
    static func format(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt).format(date)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// The members in the document's spelling; optionals are written as null rather than left out.
    private struct Document: Encodable {
        var id: String
        var video_id: String
        var state: JobState
        var progress: Double
        var queue_position: Int?
        var eta_seconds: Double?
        var created: String
        var started: String?
        var finished: String?
        var expires: String?
        var result: String?
        var error: JobProblem?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(video_id, forKey: .video_id)
            try container.encode(state, forKey: .state)
            try container.encode(progress, forKey: .progress)
            try container.encode(queue_position, forKey: .queue_position)
            try container.encode(eta_seconds, forKey: .eta_seconds)
            try container.encode(created, forKey: .created)
            try container.encode(started, forKey: .started)
            try container.encode(finished, forKey: .finished)
            try container.encode(expires, forKey: .expires)
            try container.encode(result, forKey: .result)
            try container.encode(error, forKey: .error)
        }

        enum CodingKeys: String, CodingKey {
            case id, video_id, state, progress, queue_position, eta_seconds, created, started, finished, expires
            case result, error
        }
    }
}
