import HTTPServer

/// `--callback-allow`: the hosts a webhook may go to, as names or as addresses and CIDR networks. Empty (the
/// default) allows none, so the service can never be made to call an address its operator did not name.
public struct CallbackAllowList: Sendable, Equatable {
    public var names: Set<String> = []
    public var ranges: [AddressRange] = []

    public init() {}

    /// "hooks.internal,10.0.0.0/8,127.0.0.1": nil if an entry is neither a host name nor an address or network.
    public init?(parsing list: String) {
        for entry in list.split(separator: ",") {
            let trimmed = entry.drop { $0 == " " }
            if let range = AddressRange(trimmed) {
                ranges.append(range)
            } else if CallbackTarget.isHostName(trimmed) {
                names.insert(trimmed.lowercased())
            } else {
                return nil
            }
        }
    }

    public var isEmpty: Bool { names.isEmpty && ranges.isEmpty }

    func allows(_ host: String) -> Bool {
        if let address = PeerAddress(host) { return ranges.contains { $0.contains(address) } }
        return names.contains(host.lowercased())
    }
}

/// Where a job's state changes are POSTed: an `http://` URL (no TLS of ours, no user information) whose host the
/// allow list names. Anything else is the client's mistake: 400, before the body is read.
struct CallbackTarget: Sendable, Equatable {
    var host: String
    var port: Int
    /// The path and query, as sent in the request line.
    var target: String

    init(_ url: String, allowed: CallbackAllowList) throws(Problem) {
        guard !allowed.isEmpty else {
            throw Problem(.badRequest, "this service sends no callbacks (its --callback-allow is empty)")
        }
        // Printable ASCII only: nothing can be smuggled into the request line or the Host field.
        guard url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }), url.lowercased().hasPrefix("http://") else {
            throw Problem(.badRequest, "the callback must be an http:// URL")
        }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let path = rest.dropFirst(authority.count).prefix { $0 != "#" }
        guard !authority.contains("@") else { throw Problem(.badRequest, "the callback URL may not carry user information") }
        var hostPart = authority[...]
        var portText: Substring = ""
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw Problem(.badRequest, "the callback's host is malformed") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw Problem(.badRequest, "the callback's host is malformed")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty, PeerAddress(hostPart) != nil || Self.isHostName(hostPart) else {
            throw Problem(.badRequest, "the callback's host is malformed")
        }
        var port = 80
        if authority.last == ":" || !portText.isEmpty {
            guard portText.count <= 5, portText.allSatisfy(\.isASCII), let number = Int(portText), (1...65535).contains(number) else {
                throw Problem(.badRequest, "the callback's port must be 1...65535")
            }
            port = number
        }
        host = String(hostPart)
        guard allowed.allows(host) else {
            throw Problem(.badRequest, "the callback's host \(host) is not among the service's --callback-allow")
        }
        self.port = port
        target = path.isEmpty ? "/" : path.hasPrefix("?") ? "/" + path : String(path)
    }

    /// The Host field's value.
    var hostField: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? name : "\(name):\(port)"
    }

    /// A DNS name: labels of letters, digits and hyphens.
    static func isHostName(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.count <= 253 && text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.count) && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }
}
