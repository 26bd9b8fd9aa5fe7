import Glibc

/// Why the harness cannot start: a bad URL, an unreadable input, an unresolvable host.
public struct HarnessError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where the service listens, from an `http://host[:port][/prefix]` URL. The address is resolved once, so a thousand
/// connections do not each ask the resolver.
public struct Endpoint: Sendable {
    public let url: String
    public let host: String
    public let port: Int
    /// Prepended to every `/<video_id>`; empty for a service at the root.
    public let pathPrefix: String
    let family: Int32
    /// A `sockaddr_in` or `sockaddr_in6`, as bytes.
    let address: [UInt8]

    public init(url: String) throws(HarnessError) {
        guard url.hasPrefix("http://") else { throw HarnessError("only http:// URLs are supported: \(url)") }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var prefix = String(rest.dropFirst(authority.count))
        while prefix.hasSuffix("/") { prefix.removeLast() }
        guard !prefix.contains("?") else { throw HarnessError("the URL must not have a query; use --query") }

        var host = Substring(authority)
        var portText: Substring = "80"
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw HarnessError("bad IPv6 address in \(url)") }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw HarnessError("bad URL \(url)") }
            host = host[host.index(after: host.startIndex)..<close]
        } else if let colon = host.lastIndex(of: ":") {
            portText = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else {
            throw HarnessError("bad host or port in \(url)")
        }
        self.url = url
        self.host = String(host)
        self.port = port
        self.pathPrefix = prefix
        (family, address) = try Self.resolve(String(host), port: port)
    }

    private static func resolve(_ host: String, port: Int) throws(HarnessError) -> (Int32, [UInt8]) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw HarnessError("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        let bytes = UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen))
        return (first.pointee.ai_family, Array(bytes))
    }

    /// The request target for one job: the prefix, the id and the query.
    func target(videoID: String, query: String?) -> String {
        var target = pathPrefix + "/" + videoID
        if let query, !query.isEmpty { target += "?" + query }
        return target
    }

    /// The Host field: the authority as the URL spelled it.
    var hostField: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? name : "\(name):\(port)"
    }
}
