import HTTPServer
import HTTPTypes

/// An error answer as `application/problem+json` (RFC 9457): the status, its title and the reason in words.
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
