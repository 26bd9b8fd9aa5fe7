import Foundation
import TestSupport
import Transcoding

/// Compares one answer with what the document says of its endpoint and status: the content type, the headers
/// (present when required, or when the recipe's case must carry them; conforming to their schema when present),
/// and the body against its media type's schema.
struct ResponseCheck {
    let document: APIDocument
    var schemas: SchemaCheck { SchemaCheck(document: document) }

    /// Everything in `response` that disagrees with the document; empty when it conforms.
    func problems(_ response: TestClient.Response, _ endpoint: Endpoint, _ recipe: Recipe) throws -> [String] {
        guard response.status == recipe.status else {
            return ["answered \(response.status), not \(recipe.status): \(response.text.prefix(300))"]
        }
        guard let documented = try document.response(endpoint, response.status) else {
            return ["\(response.status) is not documented for \(endpoint)"]
        }
        var problems: [String] = []

        let mediaType = response.header("Content-Type").map {
            $0.split(separator: ";")[0].trimmingCharacters(in: .whitespaces).lowercased()
        }
        let schema = mediaType.flatMap { documented.content[$0] }
        if documented.content.isEmpty {
            if let mediaType { problems.append("a \(mediaType) body where the document has none") }
        } else if schema == nil {
            problems.append("Content-Type \(mediaType ?? "none") is not one of \(documented.content.keys.sorted())")
        }

        for name in recipe.expectedHeaders where documented.headers[name.lowercased()] == nil {
            problems.append("the recipe expects \(name), which the document does not list")
        }
        for header in documented.headers.values {
            guard let value = response.header(header.name) else {
                let expected = recipe.expectedHeaders.contains { $0.lowercased() == header.name.lowercased() }
                if header.required || expected { problems.append("no \(header.name) field") }
                continue
            }
            let errors = try schemas.errors(try schemas.headerValue(value, header.schema), header.schema, at: header.name)
            problems += errors
        }

        // A HEAD answer has no body to look at.
        guard endpoint.method != "HEAD", let mediaType, let schema else { return problems }
        if mediaType.hasSuffix("json") {
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(response.body)) else {
                return problems + ["the body is not JSON: \(response.text.prefix(300))"]
            }
            problems += try schemas.errors(value, schema)
            if mediaType == "application/problem+json", value["status"] != .int(response.status) {
                problems.append("the problem's status \(value["status"] ?? .null) is not the answer's \(response.status)")
            }
        } else if mediaType == "video/mp4" && response.status == 206 {
            problems += Self.rangeProblems(response)
        } else if mediaType == "video/mp4" {
            problems += Self.videoProblems(response.body)
        } else if mediaType == "text/event-stream" {
            problems += Self.eventStreamProblems(response.text)
        } else if mediaType.hasPrefix("image/") {
            problems += Self.imageProblems(response.body, mediaType)
        } else if mediaType == "text/plain" {
            problems += Self.prometheusProblems(response.text)
        } else {
            problems.append("the check cannot read a \(mediaType) body")
        }
        return problems
    }

    /// An MP4 answer must decode to H.264 video.
    static func videoProblems(_ body: [UInt8]) -> [String] {
        do {
            let scratch = try Scratch()
            try Data(body).write(to: URL(fileURLWithPath: scratch.path("answer.mp4")))
            let probe = try MediaProbe.probe(.path(scratch.path("answer.mp4")), decode: true)
            guard let video = probe.video, video.codec == "h264", (video.frameCount ?? 0) > 0 else {
                return ["the MP4 holds no decodable H.264 video: \(probe)"]
            }
            return []
        } catch {
            return ["the MP4 does not decode: \(error)"]
        }
    }

    /// A part of a file: as long as its Content-Range says.
    static func rangeProblems(_ response: TestClient.Response) -> [String] {
        let numbers = (response.header("Content-Range") ?? "").split { !$0.isNumber }.compactMap { Int($0) }
        guard numbers.count == 3, numbers[1] - numbers[0] + 1 == response.body.count else {
            return ["\(response.body.count) bytes under Content-Range \(response.header("Content-Range") ?? "none")"]
        }
        return []
    }

    /// The WHATWG event stream format: `field: value` lines and comments, events ended by an empty line.
    static func eventStreamProblems(_ text: String) -> [String] {
        guard text.hasSuffix("\n\n") else { return ["the event stream does not end with an empty line"] }
        let fields: Set<Substring> = ["id", "event", "data", "retry"]
        return text.split(separator: "\n").filter { line in
            !line.hasPrefix(":") && !fields.contains(line.prefix { $0 != ":" })
        }.map { "not an event stream line: \($0.prefix(80))" }
    }

    /// An image answer must be of its type (its signature) and decode to pixels (the ffmpeg CLI, where installed).
    static func imageProblems(_ body: [UInt8], _ mediaType: String) -> [String] {
        let signatures: [String: [UInt8?]] = [
            "image/jpeg": [0xff, 0xd8, 0xff], "image/png": [0x89, 0x50, 0x4e, 0x47],
            "image/webp": [0x52, 0x49, 0x46, 0x46, nil, nil, nil, nil, 0x57, 0x45, 0x42, 0x50],
        ]
        guard let signature = signatures[mediaType] else { return ["the check cannot read a \(mediaType) body"] }
        guard body.count > signature.count, zip(signature, body).allSatisfy({ $0.0 == nil || $0.0 == $0.1 }) else {
            return ["the body is not a \(mediaType): \(body.prefix(12))"]
        }
        guard let ffmpeg = which("ffmpeg") else { return [] }
        do {
            let scratch = try Scratch()
            try Data(body).write(to: URL(fileURLWithPath: scratch.path("answer.image")))
            let decoded = try run(ffmpeg, ["-nostdin", "-v", "error", "-i", scratch.path("answer.image"), "-f", "rawvideo",
                                           "-pix_fmt", "rgb24", scratch.path("raw")])
            let size = (try? FileManager.default.attributesOfItem(atPath: scratch.path("raw"))[.size] as? Int) ?? 0
            return decoded.status == 0 && size > 0 ? [] : ["the \(mediaType) does not decode: \(decoded.err.suffix(300))"]
        } catch {
            return ["the \(mediaType) does not decode: \(error)"]
        }
    }

    /// The Prometheus text format: comments, and `name{labels} value` samples.
    static func prometheusProblems(_ text: String) -> [String] {
        let sample = try! NSRegularExpression(pattern: #"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEInfNa]+$"#)
        let lines = text.split(separator: "\n").map(String.init)
        let samples = lines.filter { !$0.hasPrefix("#") }
        guard !samples.isEmpty else { return ["no samples in the metrics: \(text.prefix(300))"] }
        return samples.filter { sample.firstMatch(in: $0, range: NSRange($0.startIndex..., in: $0)) == nil }
            .map { "not a Prometheus sample: \($0)" }
    }
}
