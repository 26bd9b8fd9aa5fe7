import Transcoding

/// The checks that make an answer a success: not merely an HTTP answer, but the transcoded video itself.
enum Verification {
    /// Nil when `answer` is a valid MP4 for `input`; otherwise why not.
    static func check(_ answer: Answer, input: InputVideo, decode: Bool) -> Failure? {
        guard answer.status == 200 else {
            return Failure(cause: .httpStatus(answer.status), detail: "HTTP \(answer.status)")
        }
        let contentType = answer.fields[.contentType] ?? "none"
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingSpaces.lowercased() }
        guard mediaType == "video/mp4" else {
            return Failure(cause: .invalidOutput, detail: "Content-Type \(contentType)")
        }
        guard let length = answer.contentLength else {
            return Failure(cause: .invalidOutput, detail: "no Content-Length")
        }
        guard length == answer.bodyBytes else {
            return Failure(cause: .invalidOutput, detail: "Content-Length \(length) but \(answer.bodyBytes) bytes")
        }
        guard decode, let expected = input.expectation else { return nil }
        let probe: MediaProbe
        do { probe = try MediaProbe.probe(.fileDescriptor(answer.body.fd), decode: true) } catch {
            return Failure(cause: .invalidOutput, detail: "does not decode: \(error)")
        }
        guard let video = probe.video else { return Failure(cause: .invalidOutput, detail: "no video stream") }
        guard video.codec == "h264" else { return Failure(cause: .invalidOutput, detail: "video codec \(video.codec)") }
        guard video.frameCount == expected.frames else {
            return Failure(cause: .invalidOutput, detail: "\(video.frameCount ?? 0) frames, expected \(expected.frames)")
        }
        let duration = video.decodedDuration ?? 0
        // A hair over one frame: durations go through integer time bases on both sides.
        guard abs(duration - expected.duration) <= expected.frameDuration * 1.001 + 1e-6 else {
            return Failure(
                cause: .invalidOutput,
                detail: "lasts \(duration) s, expected \(expected.duration) s within one frame")
        }
        return nil
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}
