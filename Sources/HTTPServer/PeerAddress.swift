import Glibc

/// A client's IP address as the socket gave it, or as parsed from text, kept as 16 bytes: an IPv4 address is held
/// IPv4-mapped (::ffff:a.b.c.d), so one comparison serves both families. No string is made unless asked for.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    /// The 16 bytes, big-endian: the first 8 and the last 8.
    public let high: UInt64
    public let low: UInt64

    private static let mappedPrefix: UInt64 = 0x0000_FFFF  // the top of `low` for ::ffff:0:0/96

    public var isIPv4: Bool { high == 0 && low >> 32 == Self.mappedPrefix }

    init?(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            self.init(ipv4: UInt32(bigEndian: address.sin_addr.s_addr))
        case AF_INET6:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            self.init(bytes: withUnsafeBytes(of: address.sin6_addr) { Array($0) })
        default:
            return nil
        }
    }

    init(ipv4: UInt32) {
        high = 0
        low = Self.mappedPrefix << 32 | UInt64(ipv4)
    }

    init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// An IPv4 or IPv6 address in its usual text form ("203.0.113.7", "2001:db8::1"); nil for anything else.
    public init?(_ text: some StringProtocol) {
        var v4 = in_addr()
        var v6 = in6_addr()
        let string = String(text)
        if inet_pton(AF_INET, string, &v4) == 1 {
            self.init(ipv4: UInt32(bigEndian: v4.s_addr))
        } else if inet_pton(AF_INET6, string, &v6) == 1 {
            self.init(bytes: withUnsafeBytes(of: v6) { Array($0) })
        } else {
            return nil
        }
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if isIPv4 {
            var v4 = in_addr(s_addr: UInt32(truncatingIfNeeded: low).bigEndian)
            inet_ntop(AF_INET, &v4, &text, socklen_t(text.count))
        } else {
            var bytes = [UInt8](repeating: 0, count: 16)
            for i in 0..<8 {
                bytes[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * i))
                bytes[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * i))
            }
            bytes.withUnsafeBytes { _ = inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) }
        }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// A network in CIDR notation ("10.0.0.0/8", "2001:db8::/32"), or one address: who an application trusts as a
/// proxy, say.
public struct AddressRange: Sendable, Hashable, CustomStringConvertible {
    public let network: PeerAddress
    /// Leading bits that must match, counted on the 128-bit form (an IPv4 /8 is a /104 there).
    public let prefixLength: Int
    public let description: String

    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = PeerAddress(parts[0]) else { return nil }
        let familyBits = address.isIPv4 ? 32 : 128
        var length = familyBits
        if parts.count == 2 {
            guard let given = Int(parts[1]), (0...familyBits).contains(given) else { return nil }
            length = given
        }
        network = address
        prefixLength = length + (128 - familyBits)
        description = String(text)
    }

    public func contains(_ address: PeerAddress) -> Bool {
        func masked(_ word: UInt64, bits: Int) -> UInt64 {
            bits <= 0 ? 0 : bits >= 64 ? word : word & ~(UInt64.max >> bits)
        }
        return masked(address.high, bits: prefixLength) == masked(network.high, bits: prefixLength)
            && masked(address.low, bits: prefixLength - 64) == masked(network.low, bits: prefixLength - 64)
    }
}
