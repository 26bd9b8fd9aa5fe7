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

    var response: ServerResponse {
        let body = "{\"type\":\"about:blank\",\"title\":\(jsonString(status.reasonPhrase)),\"status\":\(status.code),"
            + "\"detail\":\(jsonString(detail))}"
        var fields = headers
        fields[.contentType] = "application/problem+json"
        return ServerResponse(status: status, headerFields: fields, body: .bytes(Array(body.utf8)))
    }
}

/// A JSON string literal.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
