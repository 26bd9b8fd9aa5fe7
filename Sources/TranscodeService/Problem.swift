import HTTPServer
import HTTPTypes
import SystemSupport
import Transcoding

/// An error answer as `application/problem+json` (RFC 9457): the status, its title and the reason in words. This
/// file is the one place where an error becomes an HTTP status.
struct Problem: Error, Sendable {
    var status: HTTPResponse.Status
    var detail: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ detail: String, headers: HTTPFields = [:]) {
        self.status = status
        self.detail = detail
        self.headers = headers
    }

    var response: ServerResponse { .problem(status, detail: detail, headerFields: headers) }
}

extension Problem {
    init(_ error: TempFileError) {
        switch error {
        case .diskFull: self = .diskFull
        case .io(let errno): self.init(.internalServerError, "temp file error: \(errno)")
        }
    }

    static let diskFull = Problem(.init(code: 507, reasonPhrase: "Insufficient Storage"), "the temp directory is full")

    /// The one place a transcode failure becomes an HTTP status.
    init(_ error: TranscodeError) {
        switch error {
        case .notAVideo: self.init(.unsupportedMediaType, "\(error)")
        case .noVideoStream, .unsupportedCodec, .corruptInput: self.init(.unprocessableContent, "\(error)")
        case .limitExceeded(.jobTime): self.init(.unprocessableContent, "the video takes too long to transcode (job time limit)")
        case .limitExceeded: self.init(.contentTooLarge, "\(error)")
        case .invalidOption: self.init(.badRequest, "\(error)")
        case .cancelled: self.init(.serviceUnavailable, "the job was cancelled")
        case .io(let errno) where errno.isDiskFull: self = .diskFull
        case .io, .internal: self.init(.internalServerError, "\(error)")
        }
    }
}
