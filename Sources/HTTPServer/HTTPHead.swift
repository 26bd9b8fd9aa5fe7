import Glibc
import HTTPTypes

/// Parsing a complete request head into swift-http-types values, and the RFC 9110/9112 rules that judge it.
extension HTTPParser {
    /// Builds the head from its complete lines (`headBuffer` holds them without CRLF, `lineEnds` marks their ends).
    static func buildHead(_ headBuffer: [UInt8], lineEnds: [Int], limits: Limits) throws(HTTPRequestError) -> Head {
        // Slices of a raw buffer rather than of the array: an ArraySlice retains and releases the array each time.
        try headBuffer.withUnsafeBufferPointer { buffer throws(HTTPRequestError) in
            try buildHead(buffer, lineEnds: lineEnds, limits: limits)
        }
    }

    private static func buildHead(
        _ headBuffer: UnsafeBufferPointer<UInt8>, lineEnds: [Int], limits: Limits
    ) throws(HTTPRequestError) -> Head {
        typealias Bytes = Slice<UnsafeBufferPointer<UInt8>>
        let requestLine = headBuffer[0..<lineEnds[0]]
        let (method, target, isHTTP10, isAsteriskForm) = try Self.parseRequestLine(requestLine)

        var fields = HTTPFields()
        var host: String?
        var hostCount = 0
        var contentLengths: [Bytes] = []
        var transferCodings: [Bytes] = []
        var connectionTokens: [Bytes] = []
        var expectations: [Bytes] = []

        var start = lineEnds[0]
        for index in 1..<lineEnds.count {
            let end = lineEnds[index]
            let (name, value) = try Self.parseFieldLine(headBuffer[start..<end])
            start = end
            switch KnownField(name) {
            case .host:
                hostCount += 1
                // RFC 9112 §3.2: a Host that is no `uri-host [":" port]` is a 400, like a missing one.
                guard URIHost.isValidHostField(UnsafeBufferPointer(rebasing: value)) else {
                    throw HTTPRequestError(.badRequest, "invalid Host")
                }
                host = String(decoding: value, as: UTF8.self)
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

        if hostCount > 1 { throw HTTPRequestError(.badRequest, "several Host fields") }
        if hostCount == 0 && !isHTTP10 { throw HTTPRequestError(.badRequest, "HTTP/1.1 request without Host") }

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
            // RFC 9110 §10.1.1: never a 100 to an HTTP/1.0 client.
            expectContinue = framing != .none && framing != .length(0) && !isHTTP10
        }

        var keepAlive = !isHTTP10
        if !connectionTokens.isEmpty {
            let tokens = Self.listElements(connectionTokens)
            let close = tokens.contains { Self.equalsIgnoringCase($0, "close") }
            let keepAliveAsked = tokens.contains { Self.equalsIgnoringCase($0, "keep-alive") }
            keepAlive = !close && (!isHTTP10 || keepAliveAsked)
        }

        // RFC 9112 §3.2.4: the asterisk form asks about the server as a whole, and only OPTIONS can ask that.
        if isAsteriskForm && method != .options {
            throw HTTPRequestError(.badRequest, "the asterisk-form target is for OPTIONS only")
        }
        // RFC 9112 §3.2.2: an absolute-form target's authority wins over Host. RFC 9110 §4.2.1, §4.2.4: an http(s)
        // URI's host is never empty, and userinfo in one is an error.
        let absolute = target.utf8.first == UInt8(ascii: "/") ? nil : Self.splitAbsoluteForm(target)
        if let absolute, !URIHost.isValidHostField(absolute.1, requiringHost: true) {
            throw HTTPRequestError(.badRequest, "invalid authority in the request target")
        }
        return Head(
            method: method, scheme: absolute?.0, authority: absolute?.1 ?? host, path: absolute?.2 ?? target,
            headerFields: fields, isHTTP10: isHTTP10, framing: framing, keepAlive: keepAlive,
            expectContinue: expectContinue, isAsteriskForm: isAsteriskForm)
    }

    /// The method, the target, whether the version is 1.0, and whether the target is the asterisk form.
    static func parseRequestLine(
        _ line: Slice<UnsafeBufferPointer<UInt8>>
    ) throws(HTTPRequestError) -> (HTTPRequest.Method, String, Bool, Bool) {
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
        let v = version.startIndex
        guard version.count == 8, version[v] == UInt8(ascii: "H"), version[v + 1] == UInt8(ascii: "T"),
            version[v + 2] == UInt8(ascii: "T"), version[v + 3] == UInt8(ascii: "P"), version[v + 4] == UInt8(ascii: "/"),
            isDigit(version[v + 5]), version[v + 6] == UInt8(ascii: "."), isDigit(version[v + 7])
        else {
            throw HTTPRequestError(.badRequest, "malformed HTTP version")
        }
        switch (version[v + 5], version[v + 7]) {
        case (UInt8(ascii: "1"), UInt8(ascii: "1")): isHTTP10 = false
        case (UInt8(ascii: "1"), UInt8(ascii: "0")): isHTTP10 = true
        default: throw HTTPRequestError(.httpVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are served")
        }
        guard let method = Self.commonMethod(methodBytes) ?? HTTPRequest.Method(String(decoding: methodBytes, as: UTF8.self))
        else {
            throw HTTPRequestError(.badRequest, "invalid method")
        }
        let isAsteriskForm = targetBytes.count == 1 && targetBytes.first == UInt8(ascii: "*")
        return (method, String(decoding: targetBytes, as: UTF8.self), isHTTP10, isAsteriskForm)
    }

    /// The usual methods without building and validating a string.
    static func commonMethod(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> HTTPRequest.Method? {
        // memcmp after the length: comparing with a String's UTF8View goes element by element through its index.
        func equals(_ text: StaticString) -> Bool {
            memcmp(bytes.base.baseAddress! + bytes.startIndex, text.utf8Start, text.utf8CodeUnitCount) == 0
        }
        switch bytes.count {
        case 3 where equals("GET"): return .get
        case 3 where equals("PUT"): return .put
        case 4 where equals("POST"): return .post
        case 4 where equals("HEAD"): return .head
        case 6 where equals("DELETE"): return .delete
        default: return nil
        }
    }

    /// `http://authority/path?query` → ("http", "authority", "/path?query"); nil for origin-form and the rest.
    static func splitAbsoluteForm(_ target: String) -> (String, String, String)? {
        let utf8 = Array(target.utf8)
        for scheme in ["http", "https"] {
            let prefix = Array((scheme + "://").utf8)
            guard utf8.count > prefix.count, zip(utf8, prefix).allSatisfy({ lower($0) == $1 }) else { continue }
            let rest = utf8[prefix.count...]
            let end = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex
            let authority = String(decoding: rest[..<end], as: UTF8.self)
            var path = String(decoding: rest[end...], as: UTF8.self)
            if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
            return (scheme, authority, path)
        }
        return nil
    }

    /// `name ":" OWS value OWS`, strictly: no obs-fold, no space before the colon, no control characters.
    static func parseFieldLine<Bytes: BidirectionalCollection<UInt8>>(
        _ line: Bytes
    ) throws(HTTPRequestError) -> (Bytes.SubSequence, Bytes.SubSequence) where Bytes.SubSequence == Bytes {
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
        var value = line[line.index(after: colon)...]
        while let b = value.first, b == .space || b == .tab { value = value.dropFirst() }
        while let b = value.last, b == .space || b == .tab { value = value.dropLast() }
        for b in value where (b < 0x20 && b != .tab) || b == 0x7F {
            throw HTTPRequestError(.badRequest, "control character in a field value")
        }
        return (name, value)
    }

    static func parseContentLength<Bytes: BidirectionalCollection<UInt8>>(
        _ values: [Bytes]
    ) throws(HTTPRequestError) -> Int64 where Bytes.SubSequence == Bytes {
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
    static func listElements<Bytes: BidirectionalCollection<UInt8>>(
        _ values: [Bytes], keepEmpty: Bool = false
    ) -> [Bytes] where Bytes.SubSequence == Bytes {
        var out: [Bytes] = []
        for value in values {
            for var element in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                while let b = element.first, b == .space || b == .tab { element = element.dropFirst() }
                while let b = element.last, b == .space || b == .tab { element = element.dropLast() }
                if !element.isEmpty || keepEmpty { out.append(element) }
            }
        }
        return out
    }

    static func equalsIgnoringCase(_ bytes: some Collection<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return zip(bytes, expected).allSatisfy { lower($0) == $1 }
    }
}

private enum KnownField {
    case host, contentLength, transferEncoding, connection, expect, other

    init(_ name: Slice<UnsafeBufferPointer<UInt8>>) {
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
