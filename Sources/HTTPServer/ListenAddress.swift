import Glibc
import SystemSupport

/// Where to listen, from what a person writes after `--host`: an IPv4 literal, an IPv6 literal with or without
/// brackets (`::`, `[::1]`), or a name looked up with getaddrinfo (`localhost`).
struct ListenAddress {
    var storage: sockaddr_storage
    var length: socklen_t
    var family: Int32

    /// A name that resolves to both families listens on its first IPv4 address, as Go's `net.Listen` does: one
    /// listening socket, and `localhost` keeps meaning what clients that try 127.0.0.1 first expect.
    init(host: String, port: Int) throws(IOError) {
        let literal = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        var address: ListenAddress
        if inet_pton(AF_INET, literal, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            address = ListenAddress(v4, family: AF_INET)
        } else if inet_pton(AF_INET6, literal, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            address = ListenAddress(v6, family: AF_INET6)
        } else if literal == host, let resolved = Self.lookUp(host) {
            address = resolved
        } else {
            throw IOError(
                call: "getaddrinfo(\(host)): not an address, nor a name that resolves to one", errno: Errno(rawValue: EINVAL))
        }
        // sin_port and sin6_port sit at the same offset.
        withUnsafeMutableBytes(of: &address.storage) {
            $0.storeBytes(of: UInt16(port).bigEndian, toByteOffset: 2, as: UInt16.self)
        }
        self = address
    }

    private init<Address>(_ address: Address, family: Int32) {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: Address.self) }
        self.storage = storage
        length = socklen_t(MemoryLayout<Address>.size)
        self.family = family
    }

    private static func lookUp(_ name: String) -> ListenAddress? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        // Only families this machine has an address of: no IPv6 listener on a host without IPv6.
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(name, nil, &hints, &list) == 0 else { return nil }
        defer { freeaddrinfo(list) }
        var candidates: [UnsafeMutablePointer<addrinfo>] = []
        var next = list
        while let entry = next {
            if entry.pointee.ai_family == AF_INET || entry.pointee.ai_family == AF_INET6 { candidates.append(entry) }
            next = entry.pointee.ai_next
        }
        guard let chosen = candidates.first(where: { $0.pointee.ai_family == AF_INET }) ?? candidates.first,
            let address = chosen.pointee.ai_addr
        else { return nil }
        return chosen.pointee.ai_family == AF_INET
            ? ListenAddress(address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }, family: AF_INET)
            : ListenAddress(address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }, family: AF_INET6)
    }
}
