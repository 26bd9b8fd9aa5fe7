import HTTPServer
import HTTPTypes

/// One route of the service: the methods it serves at a path template. The table below is what `Routes` dispatches
/// on and what a 405's `Allow` lists, so the API document's test (docs/openapi.yaml) can read the routes as data.
public struct Route: Sendable, Hashable {
    /// What the route does; its raw value labels the route in logs and metrics.
    public enum Kind: String, Sendable, CaseIterable {
        case about, metrics, transcode, poster
        /// An async job's status (GET, HEAD) and its cancellation or deletion (DELETE).
        case job
        /// An async job's result.
        case jobOutput
        /// An async job's progress as Server-Sent Events.
        case jobEvents
    }

    public let kind: Kind
    /// The path as OpenAPI writes it: a literal (`/about`), the templated segment `/{video_id}` and its
    /// `/{video_id}/poster`, or a job's `/jobs/{job_id}` and what lies under it.
    public let template: String
    /// The methods that do the route's work. OPTIONS, which every route answers, is not among them.
    public let methods: [HTTPRequest.Method]

    /// Every method the route answers with a success: its methods, and OPTIONS.
    public var allowed: [HTTPRequest.Method] { methods + [.options] }

    /// The route's `Allow` field, in a 405 and in the answer to OPTIONS.
    public var allow: String { allowed.map(\.rawValue).joined(separator: ", ") }
}

extension Routes {
    /// Every route the service serves. A path names a literal route when it is exactly that route's one segment;
    /// any other path belongs to `/{video_id}`, whose id is checked when the request is handled.
    public static let table: [Route] = [
        Route(kind: .about, template: "/about", methods: [.get, .head]),
        Route(kind: .metrics, template: "/metrics", methods: [.get]),
        Route(kind: .transcode, template: "/{video_id}", methods: [.post]),
        Route(kind: .poster, template: "/{video_id}/poster", methods: [.post]),
        Route(kind: .job, template: "/jobs/{job_id}", methods: [.get, .head, .delete]),
        Route(kind: .jobOutput, template: "/jobs/{job_id}/output", methods: [.get, .head]),
        Route(kind: .jobEvents, template: "/jobs/{job_id}/events", methods: [.get]),
    ]

    static let upload = table.first { $0.kind == .transcode }!
    static let posterRoute = table.first { $0.kind == .poster }!
    static let aboutRoute = table.first { $0.kind == .about }!

    /// Ids that name a route rather than a video: every literal route's first segment, and `jobs`, kept for the
    /// asynchronous jobs' routes so that no client comes to depend on it as an id. docs/openapi.yaml's VideoID
    /// schema and the README list the same.
    public static let reservedIDs: [String] = {
        var ids: [String] = []
        for route in table {
            guard let first = route.template.split(separator: "/").first, !first.hasPrefix("{"),
                !ids.contains(String(first)) else { continue }
            ids.append(String(first))
        }
        return ids
    }()

    /// The 400 of a video sent to a reserved id: a 405 would say only that POST is wrong there, not why.
    static func reservedIDProblem(_ id: String) -> Problem {
        Problem(.badRequest, "'\(id)' is reserved and cannot be a video id (reserved: \(reservedIDs.joined(separator: ", ")))")
    }

    /// Every method some route serves, and OPTIONS: what the server answers `OPTIONS *` with (RFC 9110 §9.3.7).
    public static let serverWideMethods: [HTTPRequest.Method] = {
        var methods: [HTTPRequest.Method] = []
        for method in table.flatMap(\.methods) + [.options] where !methods.contains(method) { methods.append(method) }
        return methods
    }()

    /// The route a request target's path segments belong to.
    static func route(for segments: [String]) -> Route {
        if segments.count >= 2 && segments.count <= 3 && segments[0] == "jobs" {
            let kind: Route.Kind? = segments.count == 2 ? .job : segments[2] == "output" ? .jobOutput
                : segments[2] == "events" ? .jobEvents : nil
            if let kind, let route = table.first(where: { $0.kind == kind }) { return route }
        }
        if segments.count == 2 && segments[1] == "poster" { return posterRoute }
        return table.first { segments.count == 1 && "/" + segments[0] == $0.template } ?? upload
    }
}

extension Route {
    /// The answer to a method this route does not serve: 405 with `Allow`, except that a path that is no video id
    /// (the root, several segments, a bad id) names no resource at all, and gets 404.
    func refusal(of method: HTTPRequest.Method, _ segments: [String]) -> Problem {
        if let missing = missingResource(segments) { return missing }
        // The literal route itself (POST /about): a video sent to a reserved id. Under it (POST /jobs/<id>): 405.
        if method == .post, kind != .transcode, kind != .poster, segments.count == 1, let id = segments.first {
            return Routes.reservedIDProblem(id)
        }
        let detail = kind == .transcode || kind == .poster ? "use POST to send a video" : "\(method) is not allowed here"
        return Problem(.methodNotAllowed, detail, headers: [.allow: allow])
    }

    /// The answer to OPTIONS on this route's path (RFC 9110 §9.3.7): 204 with the route's `Allow`, or the 404 of a
    /// path that names no resource.
    func options(_ segments: [String]) throws(Problem) -> ServerResponse {
        if let missing = missingResource(segments) { throw missing }
        return ServerResponse(status: .noContent, headerFields: [.allow: allow])
    }

    /// The 404 of a path routed to `/{video_id}` that is no video id; nil for a path that names this route.
    private func missingResource(_ segments: [String]) -> Problem? {
        if kind == .poster { return (try? validateVideoID([segments[0]])) == nil ? Problem(.notFound, "no such resource") : nil }
        guard kind == .transcode else { return nil }
        if segments.isEmpty {
            return Problem(.notFound, "POST a video to /<video_id>; GET /about for the service's state")
        }
        return (try? validateVideoID(segments)) == nil ? Problem(.notFound, "no such resource") : nil
    }
}
