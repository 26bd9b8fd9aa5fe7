import Foundation
import MediaFixtures
import TestSupport
import TranscodeService

/// How to make one documented answer on demand: the bytes a client sends (to a concrete path of the endpoint) and
/// the service they go to. Every documented (method, path, status) needs a recipe or an exemption, and every recipe
/// must produce a documented status.
struct Recipe: Sendable, CustomStringConvertible {
    let status: Int
    let endpoints: [Endpoint]
    let setting: Setting
    /// The case, in words, for failure messages.
    let name: String
    /// Headers the document lists as optional that this case must carry.
    var expectedHeaders: [String] = []
    /// The request's bytes for one endpoint; empty for a connection that sends nothing.
    let request: @Sendable (Endpoint) -> [UInt8]

    var description: String { "\(status) (\(name))" }
}

/// A documented status that no request can produce on demand, and why.
struct Exemption: Sendable {
    let endpoint: Endpoint
    let status: Int
    let reason: String
}

enum RecipeBook {
    /// The endpoints the route table serves (OPTIONS on every path among them), and the methods of its paths it
    /// refuses.
    static let served: [Endpoint] = Routes.table.flatMap { route in route.allowed.map { Endpoint($0.rawValue, route.template) } }
    static let refused: [Endpoint] = Routes.table.flatMap { route in
        APIDocument.methods.map { Endpoint($0, route.template) }.filter { !served.contains($0) && !reserved.contains($0) }
    }
    /// A POST to a literal route's path: a video sent to a reserved id, a 400 that says so rather than a 405.
    static let reserved: [Endpoint] = Routes.table.filter { route in
        !route.template.hasPrefix("/{") && route.template.split(separator: "/").count == 1
    }.map { Endpoint("POST", $0.template) }
    static let upload = Endpoint("POST", "/{video_id}")
    static let poster = Endpoint("POST", "/{video_id}/poster")
    static let about = [Endpoint("GET", "/about"), Endpoint("HEAD", "/about")]
    static let metrics = Endpoint("GET", "/metrics")
    static let options = Routes.table.map { Endpoint("OPTIONS", $0.template) }
    static let jobStatus = [Endpoint("GET", "/jobs/{job_id}"), Endpoint("HEAD", "/jobs/{job_id}")]
    static let jobDelete = Endpoint("DELETE", "/jobs/{job_id}")
    static let jobOutput = [Endpoint("GET", "/jobs/{job_id}/output"), Endpoint("HEAD", "/jobs/{job_id}/output")]
    static let jobEvents = Endpoint("GET", "/jobs/{job_id}/events")
    static let jobEndpoints = jobStatus + [jobDelete] + jobOutput + [jobEvents]

    /// Empty: every documented status is produced. 500 has a recipe (the temp directory vanishes under the
    /// service); 507 runs the service in a namespace of its own with a small tmpfs.
    static let exemptions: [Exemption] = []

    /// A concrete path for a template.
    static func path(_ endpoint: Endpoint) -> String {
        endpoint.path.replacingOccurrences(of: "{video_id}", with: "clip-7")
            .replacingOccurrences(of: "{job_id}", with: JobFixture.unknown)
    }

    /// `METHOD` on the endpoint's path for the job `kind`, with `fields`.
    static func job(_ endpoint: Endpoint, _ kind: JobFixture.Kind, _ fields: [String] = []) -> [UInt8] {
        head(endpoint, target: endpoint.path.replacingOccurrences(of: "{job_id}", with: JobFixture.id(kind)), fields)
    }

    /// `METHOD path HTTP/1.1`, the Host field and `fields`, and the empty line.
    static func head(_ endpoint: Endpoint, target: String? = nil, version: String = "HTTP/1.1", _ fields: [String] = [])
        -> [UInt8]
    {
        let lines = ["\(endpoint.method) \(target ?? path(endpoint)) \(version)", "Host: test"] + fields
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }

    static var all: [Recipe] {
        serverWide + uploads + jobs + [
            Recipe(status: 200, endpoints: about, setting: .standard, name: "health") { head($0) },
            Recipe(status: 503, endpoints: about, setting: .draining, name: "draining") { head($0) },
            Recipe(status: 503, endpoints: about, setting: .degraded, name: "no worker process can start") { head($0) },
            Recipe(status: 200, endpoints: [metrics], setting: .standard, name: "metrics") { head($0) },
            Recipe(status: 405, endpoints: refused, setting: .standard, name: "a method the path does not serve",
                   expectedHeaders: ["Allow"]) { head($0) },
            Recipe(status: 400, endpoints: reserved, setting: .standard, name: "a video sent to a reserved id") {
                head($0, ["Content-Length: 1"]) + [0]
            },
            Recipe(status: 404, endpoints: refused.filter { $0.path == upload.path } + [Endpoint("OPTIONS", upload.path)],
                   setting: .standard, name: "a path that is no video id") { head($0, target: "/no%20such") },
            Recipe(status: 404, endpoints: refused.filter { $0.path == poster.path } + [Endpoint("OPTIONS", poster.path)],
                   setting: .standard, name: "a poster path that is no video id") { head($0, target: "/no%20such/poster") },
            Recipe(status: 204, endpoints: options, setting: .standard, name: "the path's methods",
                   expectedHeaders: ["Allow"]) { head($0) },
        ]
    }

    /// The answers the server gives itself, before any route, to every served endpoint.
    static let serverWide: [Recipe] = [
        Recipe(status: 400, endpoints: served, setting: .standard, name: "HTTP/1.1 without Host") {
            Array("\($0.method) \(path($0)) HTTP/1.1\r\n\r\n".utf8)
        },
        Recipe(status: 408, endpoints: served, setting: .impatient, name: "a head that never ends") {
            Array("\($0.method) \(path($0)) HTTP/1.1\r\nHost: test\r\n".utf8)
        },
        Recipe(status: 413, endpoints: served, setting: .standard, name: "Content-Length over the limit") {
            head($0, ["Content-Length: \(Setting.maxBody + 1)"])
        },
        Recipe(status: 414, endpoints: served, setting: .standard, name: "a 9 KB request line") {
            head($0, target: path($0) + "?" + String(repeating: "a", count: 9000))
        },
        Recipe(status: 417, endpoints: served, setting: .standard, name: "Expect: something else") {
            head($0, ["Expect: something-else"])
        },
        Recipe(status: 431, endpoints: served, setting: .standard, name: "101 header fields") {
            head($0, (0...100).map { "X-Field-\($0): v" })
        },
        Recipe(status: 501, endpoints: served, setting: .standard, name: "Transfer-Encoding: gzip") {
            head($0, ["Transfer-Encoding: gzip"])
        },
        Recipe(status: 503, endpoints: served, setting: .crowded, name: "a connection over the limit") { _ in [] },
        Recipe(status: 505, endpoints: served, setting: .standard, name: "HTTP/1.2") { head($0, version: "HTTP/1.2") },
    ]

    /// What only the async jobs' routes answer.
    static let jobs: [Recipe] = [
        Recipe(status: 404, endpoints: jobEndpoints, setting: .standard, name: "a job this replica does not have") {
            head($0)
        },
        Recipe(status: 410, endpoints: jobEndpoints, setting: .expired, name: "a job past --result-ttl") {
            job($0, .expired)
        },
        Recipe(status: 200, endpoints: jobStatus, setting: .jobs, name: "a succeeded job") { job($0, .succeeded) },
        Recipe(status: 204, endpoints: [jobDelete], setting: .jobs, name: "a failed job deleted") { job($0, .deletable) },
        Recipe(status: 200, endpoints: jobOutput, setting: .jobs, name: "the whole result") { job($0, .succeeded) },
        Recipe(status: 206, endpoints: jobOutput, setting: .jobs, name: "its first 100 bytes") {
            job($0, .succeeded, ["Range: bytes=0-99"])
        },
        Recipe(status: 304, endpoints: jobOutput, setting: .jobs, name: "If-None-Match: *") {
            job($0, .succeeded, ["If-None-Match: *"])
        },
        Recipe(status: 416, endpoints: jobOutput, setting: .jobs, name: "a range past the end") {
            job($0, .succeeded, ["Range: bytes=99999999-"])
        },
        Recipe(status: 409, endpoints: jobOutput, setting: .jobs, name: "a failed job's result") { job($0, .failed) },
        Recipe(status: 200, endpoints: [jobEvents], setting: .jobs, name: "a finished job's events") {
            job($0, .succeeded)
        },
    ]

    /// What only an upload can be answered.
    static let uploads: [Recipe] = [
        Recipe(status: 200, endpoints: [upload], setting: .standard, name: "the trial clip") {
            let clip = Media.trial
            return head($0, ["Content-Length: \(clip.count)"]) + clip
        },
        Recipe(status: 200, endpoints: [upload], setting: .standard, name: "the trial clip scaled, hdr kept, not deinterlaced") {
            let clip = Media.trial
            return head($0, target: path($0) + "?height=150&hdr=keep&deinterlace=off", ["Content-Length: \(clip.count)"]) + clip
        },
        Recipe(status: 202, endpoints: [upload], setting: .standard, name: "the trial clip, Prefer: respond-async",
               expectedHeaders: ["Location", "Preference-Applied"]) {
            let clip = Media.trial
            return head($0, ["Prefer: respond-async", "Content-Length: \(clip.count)"]) + clip
        },
        Recipe(status: 200, endpoints: [poster], setting: .standard, name: "a PNG of the trial clip at 1 s") {
            let clip = Media.trial
            return head($0, target: path($0) + "?at=1&format=png&width=240", ["Content-Length: \(clip.count)"]) + clip
        },
        Recipe(status: 200, endpoints: [poster], setting: .standard, name: "the trial clip's auto poster") {
            let clip = Media.trial
            return head($0, ["Content-Length: \(clip.count)"]) + clip
        },
        Recipe(status: 400, endpoints: [poster], setting: .standard, name: "a poster format that is none of the documented") {
            head($0, target: path($0) + "?format=gif")
        },
        Recipe(status: 422, endpoints: [poster], setting: .standard, name: "at past the end") {
            let clip = Media.trial
            return head($0, target: path($0) + "?at=60", ["Content-Length: \(clip.count)"]) + clip
        },
        Recipe(status: 400, endpoints: [upload], setting: .standard, name: "crf out of range") {
            head($0, target: path($0) + "?crf=52")
        },
        Recipe(status: 400, endpoints: [upload], setting: .standard, name: "an hdr mode that is none of the documented") {
            head($0, target: path($0) + "?hdr=bright")
        },
        Recipe(status: 400, endpoints: [upload], setting: .standard, name: "the id ..") {
            head($0, target: "/..")
        },
        Recipe(status: 400, endpoints: [upload, poster], setting: .standard, name: "an empty body") {
            head($0, ["Content-Length: 0"])
        },
        Recipe(status: 411, endpoints: [upload, poster], setting: .standard, name: "no Content-Length") { head($0) },
        Recipe(status: 415, endpoints: [upload, poster], setting: .standard, name: "text") {
            let text = Array(String(repeating: "this is not a video\n", count: 200).utf8)
            return head($0, ["Content-Length: \(text.count)"]) + text
        },
        Recipe(status: 422, endpoints: [upload, poster], setting: .standard, name: "no video stream") {
            let sound = Media.soundOnly
            return head($0, ["Content-Length: \(sound.count)"]) + sound
        },
        Recipe(status: 500, endpoints: [upload, poster], setting: .noTempDir, name: "the temp directory removed") {
            head($0, ["Content-Length: 1000", "Expect: 100-continue"])
        },
        Recipe(status: 503, endpoints: [upload, poster], setting: .standard, name: "past the upload budget",
               expectedHeaders: ["Retry-After"]) {
            head($0, ["Content-Length: \(Setting.uploadBudget + 1)", "Expect: 100-continue"])
        },
        Recipe(status: 503, endpoints: [upload, poster], setting: .draining, name: "draining", expectedHeaders: ["Retry-After"]) {
            head($0, ["Content-Length: 1000", "Expect: 100-continue"])
        },
        Recipe(status: 503, endpoints: [upload, poster], setting: .degraded, name: "no worker process can start",
               expectedHeaders: ["Retry-After"]) {
            head($0, ["Content-Length: 1000", "Expect: 100-continue"])
        },
        Recipe(status: 507, endpoints: [upload, poster], setting: .diskFull, name: "1 MiB into a 256 KiB tmpfs") {
            let body = [UInt8](repeating: 0x47, count: 1 << 20)
            return head($0, ["Content-Length: \(body.count)"]) + body
        },
    ]
}

/// Media the recipes send, made once per process.
enum Media {
    static let trial: [UInt8] = Array(try! Data(contentsOf: URL(fileURLWithPath: TestMedia.trialClip)))
    static let text: [UInt8] = Array(String(repeating: "this is not a video\n", count: 200).utf8)

    static let soundOnly: [UInt8] = {
        let folder = try! Scratch()
        var clip = SyntheticClip()
        clip.videoCodec = nil
        clip.seconds = 0.5
        try! clip.write(to: folder.path("sound.m4a"))
        return Array(try! Data(contentsOf: URL(fileURLWithPath: folder.path("sound.m4a"))))
    }()
}
