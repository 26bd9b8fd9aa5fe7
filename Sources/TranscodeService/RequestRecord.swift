/// The fields of the one log line each request gets.
struct RequestRecord {
    var method: String
    var path: String
    var route = "other"
    var videoID = "-"
    var status = 0
    var bytesIn: Int64 = 0
    var bytesOut: Int64 = 0
    var queueMs = 0.0
    var transcodeMs = 0.0
    var totalMs = 0.0

    var line: String {
        "request id=\(videoID) method=\(method) path=\(path) status=\(status) bytes_in=\(bytesIn) bytes_out=\(bytesOut) "
            + "queue_ms=\(Int(queueMs)) transcode_ms=\(Int(transcodeMs)) total_ms=\(Int(totalMs))"
    }
}

func milliseconds(_ seconds: Double) -> String { String(Int((seconds * 1000).rounded())) }
