import Transcoding

/// The segment request: an ordinary `POST /<video_id>` of a cut segment with the `X-Segment` header, which names the
/// split job it belongs to (for logs and metrics) and the window its job encodes:
///
///     X-Segment: parent=clip-7; time-base=1/12800; frame-rate=25/1; start=51200; end=102400; shift=1024; origin=0
///
/// `start` or `end` is left out where the window is open. The answer is that segment's video only (no audio), at
/// the original timestamps; a replica never splits a segment again.
public struct SegmentHeader: Sendable, Equatable {
    public static let name = "X-Segment"

    /// The split job's video id.
    public var parent: String
    public var window: TranscodeOptions.SegmentWindow

    public init(parent: String, window: TranscodeOptions.SegmentWindow) {
        self.parent = parent
        self.window = window
    }

    public var value: String {
        var fields = [
            "parent=\(parent)", "time-base=\(window.timeBase.num)/\(window.timeBase.den)",
            "frame-rate=\(window.frameRate.num)/\(window.frameRate.den)",
        ]
        if let start = window.start { fields.append("start=\(start)") }
        if let end = window.end { fields.append("end=\(end)") }
        fields += ["shift=\(window.shift)", "origin=\(window.origin)"]
        return fields.joined(separator: "; ")
    }

    /// Why a header value was refused, in words for a 400.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Parses a header value; `isValidParent` checks the parent id as the route checks a video id.
    public init(parsing text: String, isValidParent: (String) -> Bool) throws(Invalid) {
        var fields: [String: String] = [:]
        for part in text.split(separator: ";") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces }
            guard pair.count == 2, fields.updateValue(pair[1], forKey: pair[0]) == nil else {
                throw Invalid(description: "X-Segment: '\(part.trimmingSpaces)' is not a single name=value")
            }
        }
        func rational(_ name: String) throws(Invalid) -> Rational {
            let parts = (fields[name] ?? "").split(separator: "/")
            guard parts.count == 2, let num = Int32(parts[0]), let den = Int32(parts[1]), num > 0, den > 0 else {
                throw Invalid(description: "X-Segment: \(name) must be two positive whole numbers a/b")
            }
            return Rational(num, den)
        }
        func integer(_ name: String, required: Bool) throws(Invalid) -> Int64? {
            guard let text = fields[name] else {
                if required { throw Invalid(description: "X-Segment: \(name) is missing") }
                return nil
            }
            // Within the timestamps libav treats as time at all (Transcoding's timestampBound, 2^48).
            guard let value = Int64(text), abs(value) <= 1 << 48 else {
                throw Invalid(description: "X-Segment: \(name) must be a whole number of ticks")
            }
            return value
        }
        guard let parent = fields["parent"], isValidParent(parent) else {
            throw Invalid(description: "X-Segment: parent must be a video id")
        }
        let known: Set = ["parent", "time-base", "frame-rate", "start", "end", "shift", "origin"]
        if let unknown = fields.keys.first(where: { !known.contains($0) }) {
            throw Invalid(description: "X-Segment: unknown field \(unknown)")
        }
        let window = TranscodeOptions.SegmentWindow(
            timeBase: try rational("time-base"), frameRate: try rational("frame-rate"),
            start: try integer("start", required: false), end: try integer("end", required: false),
            shift: try integer("shift", required: true)!, origin: try integer("origin", required: true)!)
        if let start = window.start, let end = window.end, end <= start {
            throw Invalid(description: "X-Segment: end must be after start")
        }
        self.init(parent: parent, window: window)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
