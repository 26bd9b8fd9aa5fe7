import Transcoding

// A split job's segment window on the wire (WorkerProtocol.swift's options), kept apart from the other options so
// that a segment's job is exactly an ordinary job plus these fields.

extension WireWriter {
    mutating func segmentWindow(_ window: TranscodeOptions.SegmentWindow) {
        for value in [window.timeBase.num, window.timeBase.den, window.frameRate.num, window.frameRate.den] {
            integer(value)
        }
        optional(window.start) { $0.integer($1) }
        optional(window.end) { $0.integer($1) }
        integer(window.shift)
        integer(window.origin)
    }
}

extension WireReader {
    mutating func segmentWindow() throws(WorkerProtocolError) -> TranscodeOptions.SegmentWindow {
        let timeBase = Rational(try integer(), try integer())
        let frameRate = Rational(try integer(), try integer())
        guard timeBase.num > 0, timeBase.den > 0, frameRate.num >= 0, frameRate.den >= 0 else {
            throw WorkerProtocolError(description: "a segment window with a bad time base")
        }
        return TranscodeOptions.SegmentWindow(
            timeBase: timeBase, frameRate: frameRate,
            start: try optional { reader throws(WorkerProtocolError) in try reader.integer(Int64.self) },
            end: try optional { reader throws(WorkerProtocolError) in try reader.integer(Int64.self) },
            shift: try integer(), origin: try integer())
    }
}
