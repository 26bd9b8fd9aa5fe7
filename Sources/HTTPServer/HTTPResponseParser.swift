import HTTPTypes

/// A response the client cannot read: broken framing, a malformed head, or the connection closing mid-message.
public struct HTTPResponseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let detail: String
    public init(_ detail: String) { self.detail = detail }
    public var description: String { detail }
}

/// An incremental RFC 9112 response decoder for clients, the counterpart of `HTTPParser`: fed bytes in fragments,
/// it emits the head, body chunks and the end. Field lines, Content-Length and the chunked coding go through the
/// request parser's own code, so both sides of a connection accept exactly the same syntax.
public struct HTTPResponseParser: Sendable {
    public struct Head: Sendable {
        public var response: HTTPResponse
        /// The declared length, when the body is framed by Content-Length.
        public var contentLength: Int64?
        /// False when the server asked to close, or the body runs until the connection closes.
        public var keepAlive: Bool
    }

    public enum Event {
        case head(Head)
        /// A view into the input: copy what you keep.
        case body(ArraySlice<UInt8>)
        case end
    }

    private enum State {
        case head
        /// Body framed by Content-Length or chunked: the request parser's body decoder does the work.
        case framedBody
        /// No framing: the body is every byte until the server closes (RFC 9112 §6.3, rule 8).
        case untilClose
        case done
    }

    private let maxHeaderBytes: Int
    private let bodyHasNoContent: Bool
    private var state = State.head
    private var headBuffer: [UInt8] = []
    private var body = HTTPParser(limits: HTTPParser.Limits(maxBodySize: .max))

    /// `isHeadRequest`: the answer to a HEAD request has a head only, whatever its Content-Length says.
    public init(maxHeaderBytes: Int = 65536, isHeadRequest: Bool = false) {
        self.maxHeaderBytes = maxHeaderBytes
        self.bodyHasNoContent = isHeadRequest
    }

    /// Consumes a prefix of `input` and returns at most one event; nil means every byte was consumed and more are
    /// needed.
    public mutating func parse(_ input: ArraySlice<UInt8>) throws(HTTPResponseError) -> (event: Event?, consumed: Int) {
        switch state {
        case .head:
            return try parseHead(input)
        case .framedBody:
            let result: (event: HTTPParser.Event?, consumed: Int)
            do throws(HTTPRequestError) { result = try body.parse(input) } catch { throw HTTPResponseError(error.detail) }
            switch result.event {
            case .body(let bytes): return (.body(bytes), result.consumed)
            case .end:
                state = .done
                return (.end, result.consumed)
            case .head, nil: return (nil, result.consumed)
            }
        case .untilClose:
            return input.isEmpty ? (nil, 0) : (.body(input), input.count)
        case .done:
            return (nil, 0)
        }
    }

    /// The connection reached end of file: the end of a body that runs until close, otherwise an error.
    public mutating func finish() throws(HTTPResponseError) -> Event {
        switch state {
        case .untilClose:
            state = .done
            return .end
        case .done: return .end
        case .head: throw HTTPResponseError(headBuffer.isEmpty ? "connection closed before a response" : "connection closed in the response head")
        case .framedBody:
            if body.isAtEndOfMessage {
                state = .done
                return .end
            }
            throw HTTPResponseError("connection closed in the response body")
        }
    }

    /// True once the whole message is in.
    public var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    // MARK: Head

    private mutating func parseHead(_ input: ArraySlice<UInt8>) throws(HTTPResponseError) -> (event: Event?, consumed: Int) {
        var index = input.startIndex
        while index < input.endIndex {
            let byte = input[index]
            index += 1
            headBuffer.append(byte)
            guard byte == .lf, headBuffer.count >= 4, headBuffer.suffix(4).elementsEqual([.cr, .lf, .cr, .lf]) else {
                if headBuffer.count > maxHeaderBytes {
                    throw HTTPResponseError("response head larger than \(maxHeaderBytes) bytes")
                }
                continue
            }
            let bytes = headBuffer
            headBuffer.removeAll(keepingCapacity: true)
            // nil: an interim 1xx answer; the final one follows on the same connection.
            if let head = try buildHead(bytes.dropLast(4)) { return (.head(head), index - input.startIndex) }
        }
        return (nil, input.count)
    }

    private mutating func buildHead(_ bytes: ArraySlice<UInt8>) throws(HTTPResponseError) -> Head? {
        var lines = splitLines(bytes)
        guard !lines.isEmpty else { throw HTTPResponseError("empty response head") }
        let (status, isHTTP10) = try Self.parseStatusLine(lines.removeFirst())
        if status.code / 100 == 1 && status.code != 101 { return nil }

        var fields = HTTPFields()
        var contentLengths: [ArraySlice<UInt8>] = []
        var transferCodings: [ArraySlice<UInt8>] = []
        var connectionTokens: [ArraySlice<UInt8>] = []
        for line in lines {
            let name: ArraySlice<UInt8>, value: ArraySlice<UInt8>
            do throws(HTTPRequestError) { (name, value) = try HTTPParser.parseFieldLine(line) } catch { throw HTTPResponseError(error.detail) }
            if HTTPParser.equalsIgnoringCase(name, "content-length") { contentLengths.append(value) }
            if HTTPParser.equalsIgnoringCase(name, "transfer-encoding") { transferCodings.append(value) }
            if HTTPParser.equalsIgnoringCase(name, "connection") { connectionTokens.append(value) }
            guard let fieldName = HTTPField.Name(String(decoding: name, as: UTF8.self)) else {
                throw HTTPResponseError("invalid field name")
            }
            fields.append(HTTPField(name: fieldName, value: value))
        }

        let tokens = HTTPParser.listElements(connectionTokens)
        var keepAlive =
            !tokens.contains { HTTPParser.equalsIgnoringCase($0, "close") }
            && (!isHTTP10 || tokens.contains { HTTPParser.equalsIgnoringCase($0, "keep-alive") })

        // RFC 9112 §6.3: the rules in order; Transfer-Encoding overrides Content-Length.
        var contentLength: Int64?
        if bodyHasNoContent || status.code == 204 || status.code == 304 || status.code == 101 {
            body.beginBody(.none)
            state = .framedBody
        } else if !transferCodings.isEmpty {
            let codings = HTTPParser.listElements(transferCodings)
            if let last = codings.last, HTTPParser.equalsIgnoringCase(last, "chunked") {
                body.beginBody(.chunked)
                state = .framedBody
            } else {
                state = .untilClose
                keepAlive = false
            }
        } else if !contentLengths.isEmpty {
            let length: Int64
            do throws(HTTPRequestError) { length = try HTTPParser.parseContentLength(contentLengths) } catch { throw HTTPResponseError(error.detail) }
            contentLength = length
            body.beginBody(.length(length))
            state = .framedBody
        } else {
            state = .untilClose
            keepAlive = false
        }
        return Head(response: HTTPResponse(status: status, headerFields: fields), contentLength: contentLength, keepAlive: keepAlive)
    }

    private func splitLines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == .cr, index + 1 < bytes.endIndex, bytes[index + 1] == .lf {
                lines.append(bytes[start..<index])
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        lines.append(bytes[start..<bytes.endIndex])
        return lines
    }

    /// `HTTP-version SP 3DIGIT SP [reason-phrase]`; the reason is informative only and kept as sent.
    static func parseStatusLine(_ line: ArraySlice<UInt8>) throws(HTTPResponseError) -> (HTTPResponse.Status, Bool) {
        let v = Array(line.prefix(8))
        guard v.count == 8, v.starts(with: Array("HTTP/1.".utf8)), isDigit(v[7]) else {
            throw HTTPResponseError("malformed status line")
        }
        let rest = line.dropFirst(8)
        guard rest.count >= 4, rest.first == .space else { throw HTTPResponseError("malformed status line") }
        let digits = rest.dropFirst().prefix(3)
        guard digits.allSatisfy(isDigit), rest.count == 4 || rest[rest.startIndex + 4] == .space else {
            throw HTTPResponseError("malformed status code")
        }
        let code = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard code >= 100 else { throw HTTPResponseError("malformed status code") }
        let reason = String(decoding: rest.dropFirst(5), as: UTF8.self)
        for b in rest.dropFirst(5) where (b < 0x20 && b != .tab) || b == 0x7F {
            throw HTTPResponseError("control character in the reason phrase")
        }
        return (HTTPResponse.Status(code: code, reasonPhrase: reason), v[7] == UInt8(ascii: "0"))
    }
}
