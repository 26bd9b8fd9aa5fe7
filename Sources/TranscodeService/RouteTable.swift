import HTTPServer
import HTTPTypes

/// One route of the service: the methods it serves at a path template. The table below is what `Routes` dispatches
/// on and what a 405's `Allow` lists, so the API document's test (docs/openapi.yaml) can read the routes as data.
public struct Route: Sendable, Hashable {
    /// What the route does; its raw value labels the route in logs and metrics.
    public enum Kind: String, Sendable, CaseIterable {
        case about, metrics, transcode
    }

    public let kind: Kind
    /// The path as OpenAPI writes it: a literal (`/about`) or the one templated segment `/{video_id}`.
    public let template: String
    public let methods: [HTTPRequest.Method]

    /// The `Allow` field of a 405 on this route.
    public var allow: String { methods.map(\.rawValue).joined(separator: ", ") }
}

extension Routes {
    /// Every route the service serves. A path names a literal route when it is exactly that route's one segment;
    /// any other path belongs to `/{video_id}`, whose id is checked when the request is handled.
    public static let table: [Route] = [
        Route(kind: .about, template: "/about", methods: [.get, .head]),
        Route(kind: .metrics, template: "/metrics", methods: [.get]),
        Route(kind: .transcode, template: "/{video_id}", methods: [.post]),
    ]

    private static let upload = table.first { $0.kind == .transcode }!

    /// The route a request target's path segments belong to.
    static func route(for segments: [String]) -> Route {
        table.first { segments.count == 1 && "/" + segments[0] == $0.template } ?? upload
    }
}

extension Route {
    /// The answer to a method this route does not serve: 405 with `Allow`, except that a path that is no video id
    /// (the root, several segments, a bad id) names no resource at all, and gets 404.
    func refusal(of method: HTTPRequest.Method, _ segments: [String]) -> Problem {
        guard kind == .transcode else {
            return Problem(.methodNotAllowed, "\(method) is not allowed here", headers: [.allow: allow])
        }
        if segments.isEmpty {
            return Problem(.notFound, "POST a video to /<video_id>; GET /about for the service's state")
        }
        if (try? validateVideoID(segments)) != nil {
            return Problem(.methodNotAllowed, "use POST to send a video", headers: [.allow: allow])
        }
        return Problem(.notFound, "no such resource")
    }
}
