import HTTPTypes

/// A request the server refuses itself. Every such error breaks or distrusts the framing, so the connection closes
/// after the answer.
public struct HTTPRequestError: Error, Sendable, Equatable {
    public let status: HTTPResponse.Status
    public let detail: String

    public init(_ status: HTTPResponse.Status, _ detail: String) {
        self.status = status
        self.detail = detail
    }
}

/// An incremental RFC 9112 request decoder. It is fed bytes in fragments of any size and emits one part at a time
/// (head, body chunk, end); it never touches a socket.
struct HTTPParser {
    struct Limits: Sendable {
        var maxRequestLine = 8192
        var maxHeaderBytes = 16384
        var maxHeaderCount = 100
        var maxBodySize: Int64 = 1 << 30
    }

    enum Framing: Equatable, Sendable {
        case none
        case length(Int64)
        case chunked
    }

    struct Head: Sendable {
        var request: HTTPRequest
        var isHTTP10: Bool
        var framing: Framing
        var keepAlive: Bool
        var expectContinue: Bool
    }

    enum Event {
        case head(Head)
        /// A view into the input: copy what you keep.
        case body(ArraySlice<UInt8>)
        case end
    }

    private enum State {
        case head
        case lengthBody(remaining: Int64)
        case chunkSize(value: UInt64, digits: Int)
        case chunkSizeSpace(value: UInt64)
        case chunkExtension(value: UInt64, length: Int)
        case chunkSizeLF(value: UInt64)
        case chunkData(remaining: UInt64)
        case chunkDataCR
        case chunkDataLF
        case trailers
        /// Every byte of the message is in; the next call emits `.end` without consuming anything.
        case endOfMessage
    }

    let limits: Limits
    private var state = State.head
    private var bodyReceived: Int64 = 0

    // Head accumulation: the bytes of every line without its CRLF, and where each line ends.
    private var headBuffer: [UInt8] = []
    private var lineEnds: [Int] = []
    private var lineLength = 0
    private var sawCR = false
    private var leadingEmptyLines = 0

    init(limits: Limits) {
        self.limits = limits
        headBuffer.reserveCapacity(1024)
    }

    /// True between messages with no byte of the next one seen: the connection is idle.
    var isIdle: Bool {
        if case .head = state { return headBuffer.isEmpty && lineEnds.isEmpty && !sawCR && leadingEmptyLines == 0 }
        return false
    }

    /// The whole message is in and only its `.end` (which consumes nothing) remains to be taken.
    var isAtEndOfMessage: Bool {
        if case .endOfMessage = state { return true }
        return false
    }

    /// Consumes a prefix of `input` and returns at most one event; nil means every byte was consumed and more
    /// are needed.
    mutating func parse(_ input: ArraySlice<UInt8>) throws(HTTPRequestError) -> (event: Event?, consumed: Int) {
        switch state {
        case .head:
            var result: Result<(Head?, Int), HTTPRequestError> = .success((nil, 0))
            input.withUnsafeBufferPointer { buffer in
                do throws(HTTPRequestError) { result = .success(try parseHead(buffer)) } catch { result = .failure(error) }
            }
            let (head, consumed) = try result.get()
            guard let head else { return (nil, consumed) }
            beginBody(head.framing)
            return (.head(head), consumed)
        case .lengthBody(let remaining):
            let take = Int(min(Int64(input.count), remaining))
            if take == 0 { return (nil, 0) }
            state = take == remaining ? .endOfMessage : .lengthBody(remaining: remaining - Int64(take))
            bodyReceived += Int64(take)
            return (.body(input.prefix(take)), take)
        case .endOfMessage:
            state = .head
            return (.end, 0)
        default:
            return try parseChunked(input)
        }
    }

    /// Decodes a body framed as `framing` next, with no head before it: `HTTPResponseParser` reuses the body
    /// and chunked decoding this way instead of keeping a second copy.
    mutating func beginBody(_ framing: Framing) {
        bodyReceived = 0
        switch framing {
        case .none, .length(0): state = .endOfMessage
        case .length(let n): state = .lengthBody(remaining: n)
        case .chunked: state = .chunkSize(value: 0, digits: 0)
        }
    }

    // MARK: Head

    private mutating func parseHead(_ input: UnsafeBufferPointer<UInt8>) throws(HTTPRequestError) -> (Head?, Int) {
        var index = 0
        while index < input.count {
            let byte = input[index]
            index += 1
            if sawCR {
                guard byte == .lf else { throw HTTPRequestError(.badRequest, "bare CR in the request head") }
                sawCR = false
                if lineLength == 0 {
                    if lineEnds.isEmpty {
                        // RFC 9112 §2.2: ignore a few empty lines before the request line (sent after a body by
                        // some clients); more is abuse.
                        leadingEmptyLines += 1
                        if leadingEmptyLines > 4 { throw HTTPRequestError(.badRequest, "empty lines before the request") }
                        continue
                    }
                    let head = try buildHead()
                    resetHead()
                    return (head, index)
                }
                lineEnds.append(headBuffer.count)
                lineLength = 0
                if lineEnds.count - 1 > limits.maxHeaderCount {
                    throw HTTPRequestError(.requestHeaderFieldsTooLarge, "more than \(limits.maxHeaderCount) header fields")
                }
                continue
            }
            switch byte {
            case .cr:
                sawCR = true
            case .lf:
                throw HTTPRequestError(.badRequest, "bare LF in the request head")
            default:
                headBuffer.append(byte)
                lineLength += 1
                if lineEnds.isEmpty {
                    if lineLength > limits.maxRequestLine {
                        throw HTTPRequestError(.uriTooLong, "request line longer than \(limits.maxRequestLine) bytes")
                    }
                } else if headBuffer.count - lineEnds[0] + 2 * lineEnds.count > limits.maxHeaderBytes {
                    throw HTTPRequestError(.requestHeaderFieldsTooLarge, "header block larger than \(limits.maxHeaderBytes) bytes")
                }
            }
        }
        return (nil, input.count)
    }

    private mutating func resetHead() {
        headBuffer.removeAll(keepingCapacity: true)
        lineEnds.removeAll(keepingCapacity: true)
        lineLength = 0
        leadingEmptyLines = 0
    }

    private func buildHead() throws(HTTPRequestError) -> Head {
        let requestLine = headBuffer[0..<lineEnds[0]]
        let (method, target, isHTTP10) = try Self.parseRequestLine(requestLine)

        var fields = HTTPFields()
        var hosts: [String] = []
        var contentLengths: [ArraySlice<UInt8>] = []
        var transferCodings: [ArraySlice<UInt8>] = []
        var connectionTokens: [ArraySlice<UInt8>] = []
        var expectations: [ArraySlice<UInt8>] = []

        var start = lineEnds[0]
        for end in lineEnds.dropFirst() {
            let (name, value) = try Self.parseFieldLine(headBuffer[start..<end])
            start = end
            switch KnownField(name) {
            case .host:
                hosts.append(String(decoding: value, as: UTF8.self))
                continue
            case .contentLength: contentLengths.append(value)
            case .transferEncoding: transferCodings.append(value)
            case .connection: connectionTokens.append(value)
            case .expect: expectations.append(value)
            case .other: break
            }
            guard let fieldName = HTTPField.Name(String(decoding: name, as: UTF8.self)) else {
                throw HTTPRequestError(.badRequest, "invalid field name")
            }
            fields.append(HTTPField(name: fieldName, value: value))
        }

        if hosts.count > 1 { throw HTTPRequestError(.badRequest, "several Host fields") }
        if hosts.isEmpty && !isHTTP10 { throw HTTPRequestError(.badRequest, "HTTP/1.1 request without Host") }

        let framing: Framing
        if !transferCodings.isEmpty {
            if !contentLengths.isEmpty {
                throw HTTPRequestError(.badRequest, "both Transfer-Encoding and Content-Length")
            }
            if isHTTP10 { throw HTTPRequestError(.badRequest, "Transfer-Encoding in an HTTP/1.0 request") }
            let codings = Self.listElements(transferCodings)
            guard codings.count == 1, Self.equalsIgnoringCase(codings[0], "chunked") else {
                throw HTTPRequestError(.notImplemented, "only the chunked transfer coding is supported")
            }
            framing = .chunked
        } else if !contentLengths.isEmpty {
            let length = try Self.parseContentLength(contentLengths)
            if length > limits.maxBodySize {
                throw HTTPRequestError(.contentTooLarge, "body of \(length) bytes exceeds \(limits.maxBodySize)")
            }
            framing = .length(length)
        } else {
            framing = .none
        }

        var expectContinue = false
        if !expectations.isEmpty {
            let values = Self.listElements(expectations)
            guard values.count == 1, Self.equalsIgnoringCase(values[0], "100-continue") else {
                throw HTTPRequestError(.expectationFailed, "only Expect: 100-continue is supported")
            }
            expectContinue = framing != .none && framing != .length(0)
        }

        let tokens = Self.listElements(connectionTokens)
        let close = tokens.contains { Self.equalsIgnoringCase($0, "close") }
        let keepAliveAsked = tokens.contains { Self.equalsIgnoringCase($0, "keep-alive") }
        let keepAlive = !close && (!isHTTP10 || keepAliveAsked)

        let request = HTTPRequest(
            method: method, scheme: nil, authority: hosts.first, path: target, headerFields: fields)
        return Head(
            request: request, isHTTP10: isHTTP10, framing: framing, keepAlive: keepAlive,
            expectContinue: expectContinue)
    }

    static func parseRequestLine(_ line: ArraySlice<UInt8>) throws(HTTPRequestError) -> (HTTPRequest.Method, String, Bool) {
        guard let firstSpace = line.firstIndex(of: .space) else {
            throw HTTPRequestError(.badRequest, "malformed request line")
        }
        let methodBytes = line[line.startIndex..<firstSpace]
        let rest = line[(firstSpace + 1)...]
        guard let secondSpace = rest.firstIndex(of: .space) else {
            throw HTTPRequestError(.badRequest, "malformed request line")
        }
        let targetBytes = rest[rest.startIndex..<secondSpace]
        let version = rest[(secondSpace + 1)...]

        guard !methodBytes.isEmpty, methodBytes.allSatisfy(isTokenByte) else {
            throw HTTPRequestError(.badRequest, "invalid method")
        }
        guard !targetBytes.isEmpty, targetBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw HTTPRequestError(.badRequest, "invalid request target")
        }
        let isHTTP10: Bool
        let v = Array(version)
        guard v.count == 8, v.starts(with: Array("HTTP/".utf8)), isDigit(v[5]), v[6] == UInt8(ascii: "."), isDigit(v[7])
        else {
            throw HTTPRequestError(.badRequest, "malformed HTTP version")
        }
        switch (v[5], v[7]) {
        case (UInt8(ascii: "1"), UInt8(ascii: "1")): isHTTP10 = false
        case (UInt8(ascii: "1"), UInt8(ascii: "0")): isHTTP10 = true
        default: throw HTTPRequestError(.httpVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are served")
        }
        guard let method = HTTPRequest.Method(String(decoding: methodBytes, as: UTF8.self)) else {
            throw HTTPRequestError(.badRequest, "invalid method")
        }
        return (method, String(decoding: targetBytes, as: UTF8.self), isHTTP10)
    }

    /// `name ":" OWS value OWS`, strictly: no obs-fold, no space before the colon, no control characters.
    static func parseFieldLine(_ line: ArraySlice<UInt8>) throws(HTTPRequestError) -> (ArraySlice<UInt8>, ArraySlice<UInt8>) {
        guard let first = line.first else { throw HTTPRequestError(.badRequest, "empty field line") }
        if first == .space || first == .tab { throw HTTPRequestError(.badRequest, "obsolete line folding") }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            throw HTTPRequestError(.badRequest, "field line without a colon")
        }
        let name = line[line.startIndex..<colon]
        guard !name.isEmpty else { throw HTTPRequestError(.badRequest, "empty field name") }
        if let last = name.last, last == .space || last == .tab {
            throw HTTPRequestError(.badRequest, "whitespace between field name and colon")
        }
        guard name.allSatisfy(isTokenByte) else { throw HTTPRequestError(.badRequest, "invalid character in field name") }
        var value = line[(colon + 1)...]
        while let b = value.first, b == .space || b == .tab { value = value.dropFirst() }
        while let b = value.last, b == .space || b == .tab { value = value.dropLast() }
        for b in value where (b < 0x20 && b != .tab) || b == 0x7F {
            throw HTTPRequestError(.badRequest, "control character in a field value")
        }
        return (name, value)
    }

    static func parseContentLength(_ values: [ArraySlice<UInt8>]) throws(HTTPRequestError) -> Int64 {
        var result: Int64?
        for element in listElements(values, keepEmpty: true) {
            guard !element.isEmpty, element.allSatisfy(isDigit) else {
                throw HTTPRequestError(.badRequest, "Content-Length is not a number")
            }
            var n: Int64 = 0
            for digit in element {
                let (m, o1) = n.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int64(digit - UInt8(ascii: "0")))
                if o1 || o2 { throw HTTPRequestError(.badRequest, "Content-Length overflows") }
                n = s
            }
            if let result, result != n { throw HTTPRequestError(.badRequest, "differing Content-Length values") }
            result = n
        }
        guard let result else { throw HTTPRequestError(.badRequest, "empty Content-Length") }
        return result
    }

    /// Comma-separated list elements of all values, trimmed; empty elements dropped unless asked.
    static func listElements(_ values: [ArraySlice<UInt8>], keepEmpty: Bool = false) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        for value in values {
            for var element in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                while let b = element.first, b == .space || b == .tab { element = element.dropFirst() }
                while let b = element.last, b == .space || b == .tab { element = element.dropLast() }
                if !element.isEmpty || keepEmpty { out.append(element) }
            }
        }
        return out
    }

    static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return zip(bytes, expected).allSatisfy { lower($0) == $1 }
    }

    // MARK: Chunked body

    private mutating func parseChunked(_ input: ArraySlice<UInt8>) throws(HTTPRequestError) -> (event: Event?, consumed: Int) {
        var index = input.startIndex
        while index < input.endIndex {
            let byte = input[index]
            switch state {
            case .chunkSize(let value, let digits):
                if let hex = Self.hexValue(byte) {
                    guard digits < 16, value >> 60 == 0 else { throw HTTPRequestError(.badRequest, "chunk size overflows") }
                    state = .chunkSize(value: value << 4 | UInt64(hex), digits: digits + 1)
                } else {
                    guard digits > 0 else { throw HTTPRequestError(.badRequest, "invalid chunk size") }
                    state = .chunkSizeSpace(value: value)
                    continue  // reprocess this byte
                }
            case .chunkSizeSpace(let value):
                switch byte {
                case .space, .tab: break
                case UInt8(ascii: ";"): state = .chunkExtension(value: value, length: 0)
                case .cr: state = .chunkSizeLF(value: value)
                default: throw HTTPRequestError(.badRequest, "invalid chunk size")
                }
            case .chunkExtension(let value, let length):
                if byte == .cr {
                    state = .chunkSizeLF(value: value)
                } else {
                    guard byte >= 0x20 || byte == .tab, byte != 0x7F else {
                        throw HTTPRequestError(.badRequest, "control character in a chunk extension")
                    }
                    guard length < 4096 else { throw HTTPRequestError(.badRequest, "chunk extension too long") }
                    state = .chunkExtension(value: value, length: length + 1)
                }
            case .chunkSizeLF(let value):
                guard byte == .lf else { throw HTTPRequestError(.badRequest, "bare CR in a chunk header") }
                if value == 0 {
                    state = .trailers
                } else {
                    guard value <= UInt64(limits.maxBodySize - bodyReceived) else {
                        throw HTTPRequestError(.contentTooLarge, "chunked body exceeds \(limits.maxBodySize) bytes")
                    }
                    state = .chunkData(remaining: value)
                }
            case .chunkData(let remaining):
                let available = UInt64(input.endIndex - index)
                let take = Int(min(available, remaining))
                state = take == remaining ? .chunkDataCR : .chunkData(remaining: remaining - UInt64(take))
                bodyReceived += Int64(take)
                return (.body(input[index..<(index + take)]), index + take - input.startIndex)
            case .chunkDataCR:
                guard byte == .cr else { throw HTTPRequestError(.badRequest, "chunk data not followed by CRLF") }
                state = .chunkDataLF
            case .chunkDataLF:
                guard byte == .lf else { throw HTTPRequestError(.badRequest, "chunk data not followed by CRLF") }
                state = .chunkSize(value: 0, digits: 0)
            case .trailers:
                index += 1
                if try consumeTrailerByte(byte) {
                    state = .head
                    return (.end, index - input.startIndex)
                }
                continue
            case .head, .lengthBody, .endOfMessage:
                preconditionFailure("not in a chunked body")
            }
            index += 1
        }
        return (nil, input.count)
    }

    /// Trailer fields are checked like header fields and then dropped. Returns true at the final empty line.
    private mutating func consumeTrailerByte(_ byte: UInt8) throws(HTTPRequestError) -> Bool {
        if sawCR {
            guard byte == .lf else { throw HTTPRequestError(.badRequest, "bare CR in trailers") }
            sawCR = false
            if lineLength == 0 {
                headBuffer.removeAll(keepingCapacity: true)
                lineEnds.removeAll(keepingCapacity: true)
                return true
            }
            _ = try Self.parseFieldLine(headBuffer[(lineEnds.last ?? 0)...])
            lineEnds.append(headBuffer.count)
            lineLength = 0
            if lineEnds.count > limits.maxHeaderCount {
                throw HTTPRequestError(.requestHeaderFieldsTooLarge, "too many trailer fields")
            }
            return false
        }
        switch byte {
        case .cr: sawCR = true
        case .lf: throw HTTPRequestError(.badRequest, "bare LF in trailers")
        default:
            headBuffer.append(byte)
            lineLength += 1
            if headBuffer.count > limits.maxHeaderBytes {
                throw HTTPRequestError(.requestHeaderFieldsTooLarge, "trailers too large")
            }
        }
        return false
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

private enum KnownField {
    case host, contentLength, transferEncoding, connection, expect, other

    init(_ name: ArraySlice<UInt8>) {
        switch name.count {
        case 4 where HTTPParser.equalsIgnoringCase(name, "host"): self = .host
        case 6 where HTTPParser.equalsIgnoringCase(name, "expect"): self = .expect
        case 10 where HTTPParser.equalsIgnoringCase(name, "connection"): self = .connection
        case 14 where HTTPParser.equalsIgnoringCase(name, "content-length"): self = .contentLength
        case 17 where HTTPParser.equalsIgnoringCase(name, "transfer-encoding"): self = .transferEncoding
        default: self = .other
        }
    }
}

@inline(__always) func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
@inline(__always) func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

/// tchar of RFC 9110 §5.6.2.
@inline(__always) func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
        UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
        UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default:
        return false
    }
}

extension UInt8 {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
}
