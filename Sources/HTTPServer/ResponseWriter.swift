import HTTPTypes

/// Turns response heads and bodies into wire bytes. Pure functions: the connection decides what to send and when.
enum ResponseWriter {
    enum BodyFraming {
        /// 1xx, 204, 304: no body and no length field.
        case bodiless
        case length(Int64)
        case chunked
        /// An HTTP/1.0 client cannot take chunks: the end of the body is the end of the connection.
        case untilClose
    }

    static func statusAllowsBody(_ status: HTTPResponse.Status) -> Bool {
        !(status.kind == .informational || status.code == 204 || status.code == 304)
    }

    /// The status line and fields, ending with the empty line. Fields the server owns are dropped from
    /// `head.headerFields` and written here.
    /// Returns whether the connection closes after this response: `close`, or the handler's own
    /// `Connection: close` (found while copying the fields, not by a second lookup).
    @discardableResult
    static func head(
        _ head: HTTPResponse, status: HTTPResponse.Status? = nil, framing: BodyFraming, close: Bool,
        keepAliveFor10: Bool, dateLine: [UInt8], serverLine: [UInt8], into out: inout ByteBuffer
    ) -> Bool {
        let asksClose = statusAndFields(head, status: status ?? head.status, into: &out)
        return serverFields(
            framing: framing, close: close || asksClose, keepAliveFor10: keepAliveFor10, dateLine: dateLine,
            serverLine: serverLine, into: &out)
    }

    /// An answer the server gives itself (an error, an overload): a problem document, after which the connection
    /// closes. To HEAD, the head alone, with the length the body would have (RFC 9110 §9.3.2). Returns the length
    /// of the body sent.
    @discardableResult
    static func closingProblem(
        _ status: HTTPResponse.Status, detail: String, isHEAD: Bool = false, dateLine: [UInt8], serverLine: [UInt8],
        into out: inout ByteBuffer
    ) -> Int64 {
        let problem = ServerResponse.problem(status, detail: detail)
        guard case .bytes(let body) = problem.body else { return 0 }
        head(
            problem.head, framing: .length(Int64(body.count)), close: true, keepAliveFor10: false,
            dateLine: dateLine, serverLine: serverLine, into: &out)
        if isHEAD { return 0 }
        out.append(body)
        return Int64(body.count)
    }

    /// The status line and the handler's own fields, without those the server owns. Returns whether the handler
    /// asked for `Connection: close`.
    static func statusAndFields(_ head: HTTPResponse, status: HTTPResponse.Status, into out: inout ByteBuffer) -> Bool {
        var asksClose = false
        // Byte appends rather than string interpolation: this runs once per response on the loop thread.
        out.append("HTTP/1.1 ")
        appendDecimal(status.code, into: &out)
        out.append(.space)
        out.append(utf8: status.reasonPhrase)
        out.append("\r\n")
        for field in head.headerFields {
            switch ServerOwnedField(field.name.canonicalName) {
            case .connection:
                asksClose = asksClose || HTTPParser.listElements([ArraySlice(field.value.utf8)]).contains {
                    HTTPParser.equalsIgnoringCase($0, "close")
                }
            case .owned: continue
            case .other:
                out.append(utf8: field.name.rawName)
                out.append(": ")
                out.append(utf8: field.value)
                out.append("\r\n")
            }
        }
        return asksClose
    }

    /// The fields the server owns (Date, Server, the framing, Connection) and the empty line that ends the head.
    /// Returns `close`.
    @discardableResult
    static func serverFields(
        framing: BodyFraming, close: Bool, keepAliveFor10: Bool, dateLine: [UInt8], serverLine: [UInt8],
        into out: inout ByteBuffer
    ) -> Bool {
        out.append(dateLine)
        out.append(serverLine)
        switch framing {
        case .bodiless, .untilClose: break
        case .length(let n):
            out.append("Content-Length: ")
            appendDecimal(Int(n), into: &out)
            out.append("\r\n")
        case .chunked: out.append("Transfer-Encoding: chunked\r\n")
        }
        if close {
            out.append("Connection: close\r\n")
        } else if keepAliveFor10 {
            out.append("Connection: keep-alive\r\n")
        }
        out.append("\r\n")
        return close
    }

    static func appendDecimal(_ value: Int, into out: inout ByteBuffer) {
        guard value > 0 else {
            out.append(UInt8(ascii: "0"))
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                      UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var n = value
            var index = buffer.count
            while n > 0 {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            }
            out.append(UnsafeRawBufferPointer(rebasing: buffer[index...]))
        }
    }

    static func chunk(_ bytes: [UInt8], into out: inout ByteBuffer) {
        guard !bytes.isEmpty else { return }
        out.append(utf8: String(bytes.count, radix: 16))
        out.append("\r\n")
        out.append(bytes)
        out.append("\r\n")
    }

    static let lastChunk = Array("0\r\n\r\n".utf8)
    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
}

/// A response's status line and own fields as wire bytes, made once (`ServerResponse.prepared()`) for a response
/// sent again and again.
struct PreparedHead: Sendable {
    let bytes: [UInt8]
    let status: HTTPResponse.Status
    let asksClose: Bool

    init(_ head: HTTPResponse) {
        var buffer = ByteBuffer()
        status = head.status
        asksClose = ResponseWriter.statusAndFields(head, status: status, into: &buffer)
        bytes = buffer.bytes
    }
}

/// Response fields the server writes itself, told apart by length first: most fields need no string comparison.
private enum ServerOwnedField {
    case connection, owned, other

    init(_ canonical: String) {
        switch canonical.utf8.count {
        case 4 where canonical == "date", 6 where canonical == "server", 14 where canonical == "content-length",
            17 where canonical == "transfer-encoding":
            self = .owned
        case 10 where canonical == "connection": self = .connection
        default: self = .other
        }
    }
}
