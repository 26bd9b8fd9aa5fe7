import Glibc
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

    /// A parsed, validated request head. The `HTTPRequest` is made only when asked for: the fast path never needs
    /// it, and building one costs an allocation and a second validation of every pseudo-field.
    struct Head: Sendable {
        var method: HTTPRequest.Method
        var scheme: String?
        var authority: String?
        var path: String
        var headerFields: HTTPFields
        var isHTTP10: Bool
        var framing: Framing
        var keepAlive: Bool
        var expectContinue: Bool
        /// `OPTIONS *`: the server's to answer, never a route's.
        var isAsteriskForm = false

        var request: HTTPRequest {
            HTTPRequest(method: method, scheme: scheme, authority: authority, path: path, headerFields: headerFields)
        }

        var requestLine: RequestLine { RequestLine(method: method, path: path) }
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

    /// The method and target of a head cut short or refused after its request line was complete and valid (a
    /// field too many, a Content-Length too large, the header timeout), so that the server's own answer can name
    /// what it refused; nil otherwise.
    var partialRequestLine: RequestLine? {
        guard case .head = state, let end = lineEnds.first else { return nil }
        return headBuffer.withUnsafeBufferPointer { buffer in
            (try? Self.parseRequestLine(buffer[0..<end])).map { RequestLine(method: $0.0, path: $0.1) }
        }
    }

    /// The head being parsed (or refused) began with the HEAD method: the server's own answer to it, an error,
    /// must have no body (RFC 9110 §9.3.2), even when the rest of the head is garbled or cut short.
    var partialRequestIsHEAD: Bool {
        guard case .head = state, headBuffer.count > 5 else { return false }
        return headBuffer.withUnsafeBufferPointer { memcmp($0.baseAddress!, "HEAD ", 5) == 0 }
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
            let (head, consumed) = try input.withUnsafeBufferPointer { buffer throws(HTTPRequestError) in
                try parseHead(buffer)
            }
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

    /// The bytes of a Content-Length body still to come; nil outside one.
    var lengthBodyRemaining: Int64? {
        if case .lengthBody(let remaining) = state { return remaining }
        return nil
    }

    /// Counts `count` bytes of a Content-Length body that went around `parse` (spliced from the socket to a file).
    mutating func skipBody(_ count: Int64) {
        guard case .lengthBody(let remaining) = state, count > 0 else { return }
        precondition(count <= remaining, "skipped past the end of the body")
        state = count == remaining ? .endOfMessage : .lengthBody(remaining: remaining - count)
        bodyReceived += count
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
            if sawCR {
                let byte = input[index]
                index += 1
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
                    let head = try Self.buildHead(headBuffer, lineEnds: lineEnds, limits: limits)
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
            // Copy the run of ordinary bytes up to the next CR or LF at once.
            let runStart = index
            index = Self.firstLineBreak(in: input, from: index)
            if index > runStart {
                headBuffer.append(contentsOf: UnsafeBufferPointer(rebasing: input[runStart..<index]))
                lineLength += index - runStart
                if lineEnds.isEmpty {
                    if lineLength > limits.maxRequestLine {
                        throw HTTPRequestError(.uriTooLong, "request line longer than \(limits.maxRequestLine) bytes")
                    }
                } else if headBuffer.count - lineEnds[0] + 2 * lineEnds.count > limits.maxHeaderBytes {
                    throw HTTPRequestError(.requestHeaderFieldsTooLarge, "header block larger than \(limits.maxHeaderBytes) bytes")
                }
            }
            guard index < input.count else { break }
            let byte = input[index]
            index += 1
            guard byte == .cr else { throw HTTPRequestError(.badRequest, "bare LF in the request head") }
            sawCR = true
        }
        return (nil, input.count)
    }

    /// The index of the first CR or LF at or after `start`, or the end: memchr for the LF, then for a CR before it,
    /// rather than a Swift loop over each byte.
    private static func firstLineBreak(in input: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let base = UnsafeRawPointer(input.baseAddress! + start)
        let count = input.count - start
        let lf = memchr(base, Int32(UInt8.lf), count).map { UnsafeRawPointer($0) - base } ?? count
        let cr = memchr(base, Int32(UInt8.cr), lf).map { UnsafeRawPointer($0) - base } ?? lf
        return start + cr
    }

    private mutating func resetHead() {
        headBuffer.removeAll(keepingCapacity: true)
        lineEnds.removeAll(keepingCapacity: true)
        lineLength = 0
        leadingEmptyLines = 0
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

