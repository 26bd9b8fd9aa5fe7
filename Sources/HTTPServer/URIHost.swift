/// The grammar of a Host field value (RFC 9112 §3.2: `uri-host [ ":" port ]`), after RFC 3986 §3.2.2–3.2.3:
///
///     host       = IP-literal / IPv4address / reg-name
///     IP-literal = "[" ( IPv6address / IPvFuture ) "]"
///     reg-name   = *( unreserved / pct-encoded / sub-delims )
///
/// An IPv4 address is also a reg-name (digits and dots), so outside brackets only reg-name's characters are checked.
/// The port is RFC 3986's `*DIGIT`, held to what a TCP port can be: at most five digits, at most 65535.
/// RFC 6874's zone identifiers (`[fe80::1%25eth0]`) are not part of HTTP's grammar and are refused.
///
/// Bytes are checked in place, with no allocation: this runs on the loop for every request.
enum URIHost {
    /// `requiringHost`: an empty host is refused, as in an http(s) URI (RFC 9110 §4.2.1); a Host field may be
    /// empty when the target URI has no authority (RFC 9112 §3.2).
    static func isValidHostField(_ value: UnsafeBufferPointer<UInt8>, requiringHost: Bool = false) -> Bool {
        let count = value.count
        var hostEnd: Int
        if count > 0 && value[0] == UInt8(ascii: "[") {
            guard let close = value.firstIndex(of: UInt8(ascii: "]")),
                isIPLiteral(UnsafeBufferPointer(rebasing: value[1..<close]))
            else { return false }
            hostEnd = close + 1
        } else {
            // reg-name, in one pass up to the first byte that is not its: the port's colon, or an error.
            hostEnd = 0
            while hostEnd < count {
                let byte = value[hostEnd]
                if isRegNameByte(byte) {
                    hostEnd += 1
                } else if byte == UInt8(ascii: "%"), isPercentEncoded(value, at: hostEnd) {
                    hostEnd += 3
                } else {
                    break
                }
            }
            guard hostEnd > 0 || !requiringHost else { return false }
        }
        if hostEnd == count { return true }
        guard value[hostEnd] == UInt8(ascii: ":") else { return false }
        return isPort(UnsafeBufferPointer(rebasing: value[(hostEnd + 1)...]))
    }

    static func isValidHostField(_ value: String, requiringHost: Bool = false) -> Bool {
        var value = value
        return value.withUTF8 { isValidHostField($0, requiringHost: requiringHost) }
    }

    /// `"%" HEXDIG HEXDIG` at `index`.
    static func isPercentEncoded(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        index + 2 < bytes.count && HTTPParser.hexValue(bytes[index + 1]) != nil
            && HTTPParser.hexValue(bytes[index + 2]) != nil
    }

    /// `unreserved / sub-delims` as two bit masks over ASCII, one per half: a select, a shift and a test per byte,
    /// since every request's Host goes through here.
    @inline(__always)
    static func isRegNameByte(_ byte: UInt8) -> Bool {
        let mask: UInt64 = byte < 64 ? 0x2bff_7fd2_0000_0000 : 0x47ff_fffe_87ff_fffe
        return byte < 128 && mask >> (byte & 63) & 1 == 1
    }

    /// Empty, or 1–5 digits up to 65535.
    static func isPort(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count <= 5 else { return false }
        var value = 0
        for byte in bytes {
            guard isDigit(byte) else { return false }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value <= 65535
    }

    /// What is inside the brackets: `IPv6address / IPvFuture`.
    static func isIPLiteral(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        if let first = bytes.first, lower(first) == UInt8(ascii: "v") { return isIPvFuture(bytes) }
        return isIPv6(bytes)
    }

    /// `"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`
    static func isIPvFuture(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 1
        while index < bytes.count, HTTPParser.hexValue(bytes[index]) != nil { index += 1 }
        guard index > 1, index < bytes.count, bytes[index] == UInt8(ascii: "."), index + 1 < bytes.count else {
            return false
        }
        return bytes[(index + 1)...].allSatisfy { isUnreserved($0) || isSubDelim($0) || $0 == UInt8(ascii: ":") }
    }

    /// RFC 3986's IPv6address: eight 16-bit groups of 1–4 hex digits, or fewer around one `::` that stands for at
    /// least one group; the last two groups may be written as an IPv4 address.
    static func isIPv6(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let colon = UInt8(ascii: ":")
        let count = bytes.count
        var groups = 0
        var compressed = false
        var index = 0
        if count >= 2 && bytes[0] == colon && bytes[1] == colon {
            compressed = true
            index = 2
        } else if count >= 1 && bytes[0] == colon {
            return false
        }
        while index < count {
            let start = index
            while index < count, index - start < 5, HTTPParser.hexValue(bytes[index]) != nil { index += 1 }
            if index < count && bytes[index] == UInt8(ascii: ".") {
                // The IPv4 tail runs to the end, and counts as two groups.
                guard isIPv4(UnsafeBufferPointer(rebasing: bytes[start...])) else { return false }
                groups += 2
                break
            }
            guard (1...4).contains(index - start) else { return false }
            groups += 1
            if index == count { break }
            guard bytes[index] == colon, index + 1 < count else { return false }
            index += 1
            if bytes[index] == colon {
                guard !compressed else { return false }
                compressed = true
                index += 1
            }
        }
        return compressed ? groups <= 7 : groups == 8
    }

    /// `dec-octet "." dec-octet "." dec-octet "." dec-octet`, each 0–255 without a leading zero.
    static func isIPv4(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var octets = 0
        var digits = 0
        var value = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, octets < 3 else { return false }
                octets += 1
                digits = 0
                value = 0
                continue
            }
            guard isDigit(byte), digits < 3, !(digits == 1 && value == 0) else { return false }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            guard value <= 255 else { return false }
        }
        return octets == 3 && digits > 0
    }

    /// `ALPHA / DIGIT / "-" / "." / "_" / "~"`
    @inline(__always)
    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            true
        default: false
        }
    }

    /// `"!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="`
    @inline(__always)
    static func isSubDelim(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
            UInt8(ascii: "="):
            true
        default: false
        }
    }
}
