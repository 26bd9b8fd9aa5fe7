import HTTPServer
import HTTPTypes
import Jobs

/// What a `Range` field asks of a representation of `size` bytes (RFC 9110 §14): one byte range, or nothing the
/// server must honour. Several ranges are answered with the whole file (a server may ignore Range), which spares
/// multipart/byteranges for a video player that never asks for them.
enum ByteRangeRequest: Equatable {
    /// Ignore the field: absent, malformed, another unit, or several ranges.
    case whole
    /// The first and last byte positions, inclusive.
    case range(first: Int64, last: Int64)
    /// A well-formed range that lies wholly past the end: 416.
    case unsatisfiable

    init(_ field: String?, size: Int64) {
        self = .whole
        guard let field else { return }
        let trimmed = field.split(separator: " ", omittingEmptySubsequences: true).joined()
        guard trimmed.lowercased().hasPrefix("bytes=") else { return }
        let spec = trimmed.dropFirst("bytes=".count)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return }
        let start = spec[..<dash]
        let end = spec[spec.index(after: dash)...]
        func number(_ text: Substring) -> Int64? {
            guard !text.isEmpty, text.count <= 18, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) else { return nil }
            return Int64(text)
        }
        if start.isEmpty {
            // A suffix: the last N bytes.
            guard let count = number(end) else { return }
            guard count > 0, size > 0 else {
                self = .unsatisfiable
                return
            }
            self = .range(first: max(size - count, 0), last: size - 1)
            return
        }
        guard let first = number(start) else { return }
        var last = size - 1
        if !end.isEmpty {
            guard let given = number(end), given >= first else { return }
            last = min(given, size - 1)
        }
        self = first < size ? .range(first: first, last: last) : .unsatisfiable
    }
}

/// Entity tags as `If-None-Match` and `If-Range` compare them. Ours are strong; `If-None-Match` compares weakly
/// (a `W/` prefix is ignored), `If-Range` strongly.
enum EntityTags {
    static func anyMatches(_ field: String, _ tag: String) -> Bool {
        field.split(separator: ",").contains { candidate in
            let trimmed = candidate.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()
            let text = String(trimmed)
            return text == "*" || text == tag || text == "W/" + tag
        }
    }
}

extension Routes {
    /// The result of a succeeded job, sent with sendfile: whole, or one byte range (206), or 416. 409 while the job
    /// is not done (or failed, or was cancelled).
    func jobOutput(_ request: HTTPRequest, _ id: String) throws(Problem) -> ServerResponse {
        let status = try job(id)
        guard status.state == .succeeded, let size = status.resultBytes, let secret = jobs.resultSecret(id) else {
            let why = status.state.isFinal ? "the job is \(status.state.rawValue): it has no result"
                : "the job is \(status.state.rawValue): its result is not ready yet (follow /jobs/\(id)/events)"
            throw Problem(.conflict, why)
        }
        // The result never changes once made: its secret and size tell it from any other.
        let tag = "\"\(secret.prefix(16))-\(size)\""
        var fields: HTTPFields = [.eTag: tag, .acceptRanges: "bytes", .cacheControl: "private, no-transform"]
        if let condition = request.headerFields[.ifNoneMatch], EntityTags.anyMatches(condition, tag) {
            return ServerResponse(status: .notModified, headerFields: fields)
        }
        guard let file = jobs.store.open(secret) else { throw Problem(.gone, "the job's result has been removed") }
        // What the job made: an MP4, a WebM or a poster's image (its record says which).
        let type = status.details["Content-Type"] ?? "video/mp4"
        fields[.contentType] = type
        fields[.contentDisposition] = "inline; filename=\"\(status.videoID).\(Self.fileExtension(type))\""
        // If-Range names the version the client holds a part of; any other version is sent whole.
        let rangeApplies = request.headerFields[.ifRange].map { $0 == tag } ?? true
        switch rangeApplies ? ByteRangeRequest(request.headerFields[.range], size: size) : .whole {
        case .whole:
            return ServerResponse(status: .ok, headerFields: fields, body: .file(descriptor: file.release(), length: size))
        case .range(let first, let last):
            fields[.contentRange] = "bytes \(first)-\(last)/\(size)"
            return ServerResponse(
                status: .partialContent, headerFields: fields,
                body: .fileRegion(descriptor: file.release(), offset: first, length: last - first + 1))
        case .unsatisfiable:
            throw Problem(
                .rangeNotSatisfiable, "the range lies past the result's \(size) bytes",
                headers: [.contentRange: "bytes */\(size)", .acceptRanges: "bytes"])
        }
    }

    /// A download's file name extension for its media type.
    static func fileExtension(_ type: String) -> String {
        ["video/webm": "webm", "image/jpeg": "jpeg", "image/webp": "webp", "image/png": "png"][type] ?? "mp4"
    }
}
