import HTTPServer
import HTTPTypes
import Logging
import SystemSupport

/// The service's one observation point, installed as the server's `ResponseObserver`: every response the server
/// sends, whether the routes, the `/about` fast path or the server itself made it (a malformed request, a timeout, a
/// limit, the overload 503), is counted in `/metrics` and gets one log line. Health checks and scrapes log at debug,
/// so that they do not flood the log; 5xx log at warning.
struct Observation: Sendable {
    let metrics: ServiceMetrics
    let logger: Logger
    /// Peers whose X-Forwarded-For is believed (`--trusted-proxy`): the balancers in front of the service.
    var trustedProxies: [AddressRange] = []

    func observe(_ response: ObservedResponse) {
        let path = response.target.map(Self.pathOnly)
        let route = Self.route(response.method, path)
        let status = response.status.code
        metrics.requestFinished(
            route: route, status: status, bytesIn: response.requestBodyBytes,
            bytesOut: response.responseBodyBytes ?? 0)
        let level: Logger.Level = path == "/about" || path == "/metrics" ? .debug : status >= 500 ? .warning : .info
        logger.log(level: level, "\(Self.line(response, client: client(of: response)))")
    }

    /// The `route` label of `ffmpeg_processor_requests_total`: the route table's kind of route for the path, when
    /// the method is one the route serves; `other` otherwise (the route table decides, so the labels follow it).
    static func route(_ method: HTTPRequest.Method?, _ path: Substring?) -> String {
        guard let method, let path else { return "other" }
        let route = Routes.table.first { $0.template == path } ?? Routes.upload
        return route.methods.contains(method) ? route.kind.rawValue : "other"
    }

    /// The target without its query: what routing and the log level go by. No copy of the string is made.
    static func pathOnly(_ target: String) -> Substring {
        target[..<(target.utf8.firstIndex(of: UInt8(ascii: "?")) ?? target.endIndex)]
    }

    /// Who sent the request. The peer, unless the peer is a trusted proxy: then X-Forwarded-For is read from the
    /// right (each trusted proxy appends the address it saw) and the first hop that is not a trusted proxy is the
    /// client, as nginx's `real_ip_recursive` does. Anything in the field that is not an IP address ends the walk
    /// there, so a client can neither forge an address through a proxy that appends nor put text into the log.
    func client(of response: ObservedResponse) -> PeerAddress? {
        guard var client = response.peer else { return nil }
        guard let forwarded = response.forwardedFor, isTrusted(client) else { return client }
        for var hop in forwarded.split(separator: ",").reversed() {
            while hop.first == " " || hop.first == "\t" { hop = hop.dropFirst() }
            while hop.last == " " || hop.last == "\t" { hop = hop.dropLast() }
            guard let address = PeerAddress(hop) else { break }
            client = address
            if !isTrusted(address) { break }
        }
        return client
    }

    private func isTrusted(_ address: PeerAddress) -> Bool { trustedProxies.contains { $0.contains(address) } }

    /// `request client=… id=… method=… path=… status=… bytes_in=… bytes_out=… queue_ms=… transcode_ms=… total_ms=…`,
    /// with `-` for what is not known (no head was understood, no job ran, a streamed length).
    static func line(_ response: ObservedResponse, client: PeerAddress?) -> String {
        let record = response.annotation as? RequestRecord
        func field(_ value: (some CustomStringConvertible)?) -> String { value.map(\.description) ?? "-" }
        return "request client=\(field(client)) id=\(field(record?.videoID)) method=\(field(response.method?.rawValue)) "
            + "path=\(field(response.target)) status=\(response.status.code) bytes_in=\(response.requestBodyBytes) "
            + "bytes_out=\(field(response.responseBodyBytes)) queue_ms=\(field(record?.queueMs.map { Int($0) })) "
            + "transcode_ms=\(field(record?.transcodeMs.map { Int($0) })) "
            + "total_ms=\(Int(response.elapsed.seconds * 1000))"
            + (record?.parent.map { " parent=\($0)" } ?? "")
    }
}
