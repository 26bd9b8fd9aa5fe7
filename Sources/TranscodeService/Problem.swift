import HTTPServer
import HTTPTypes
import SystemSupport
import Transcoding
import WorkerIsolation

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

    /// What a client sees when its job failed, whichever process it ran in. A crash signal or a forbidden call is
    /// the input's doing: 422, and the service goes on. A kill from outside (the OOM killer, an operator) says
    /// nothing about the input: 503, and the client may send it again. Running out of `--job-memory` is a limit
    /// like the others: 413. The service's own bug: 500.
    init(_ failure: JobFailure) {
        switch failure {
        case .transcode(let error): self.init(error)
        case .crashed(let signal):
            self.init(.unprocessableContent, "the input crashed the decoder (\(signalName(signal))); no other job was affected")
        case .forbiddenCall:
            self.init(.unprocessableContent,
                      "the input made the decoder try a forbidden system call (SIGSYS); no other job was affected")
        case .outOfMemory:
            self.init(.contentTooLarge, "the input needs more memory than allowed (the service's --job-memory)")
        case .killedFromOutside:
            self.init(.serviceUnavailable, "\(failure); the job was not completed and may be sent again",
                      headers: [.retryAfter: "1"])
        case .workerLost: self.init(.internalServerError, "\(failure)")
        }
    }

    /// The one place a transcode failure becomes an HTTP status.
    init(_ error: TranscodeError) {
        switch error {
        case .notAVideo: self.init(.unsupportedMediaType, "\(error)")
        case .noVideoStream, .unsupportedCodec, .corruptInput, .pastTheEnd: self.init(.unprocessableContent, "\(error)")
        case .limitExceeded(.jobTime): self.init(.unprocessableContent, "the video takes too long to transcode (job time limit)")
        case .limitExceeded(.stall):
            self.init(.unprocessableContent, "the transcode stopped making progress: no frame was encoded for the stall limit")
        case .limitExceeded(.memory): self.init(JobFailure.outOfMemory)
        case .limitExceeded: self.init(.contentTooLarge, "\(error)")
        case .invalidOption: self.init(.badRequest, "\(error)")
        case .cancelled: self.init(.serviceUnavailable, "the job was cancelled")
        case .io(let errno) where errno.isDiskFull: self = .diskFull
        case .io, .internal: self.init(.internalServerError, "\(error)")
        }
    }
}
