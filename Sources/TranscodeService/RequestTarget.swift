import Transcoding

/// A request target split into its path segments (percent-decoded) and query pairs; anything ambiguous is an error
/// rather than a guess.
struct RequestTarget {
    var segments: [String]
    var query: [(String, String)]

    init(_ target: String) throws(Problem) {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = parts.first.map(String.init) ?? ""
        guard path.hasPrefix("/") else { throw Problem(.badRequest, "the request target must be a path") }
        segments = try path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            (segment) throws(Problem) -> String in try percentDecode(segment)
        }
        if segments == [""] { segments = [] }
        query = []
        if parts.count == 2 && !parts[1].isEmpty {
            for pair in parts[1].split(separator: "&", omittingEmptySubsequences: false) {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = try percentDecode(kv[0])
                let value = kv.count == 2 ? try percentDecode(kv[1]) : ""
                query.append((key, value))
            }
        }
    }
}

/// The id of `POST /<video_id>`: 1–128 of [A-Za-z0-9._-], not "." or "..", nor a reserved id (`Routes.reservedIDs`).
/// It names the job in logs and headers, never a file.
func validateVideoID(_ segments: [String]) throws(Problem) -> String {
    guard segments.count == 1, let id = segments.first else {
        throw Problem(.badRequest, "the video id must be a single path segment")
    }
    guard (1...128).contains(id.utf8.count) else { throw Problem(.badRequest, "the video id must be 1 to 128 characters") }
    guard id != "." && id != ".." else { throw Problem(.badRequest, "the video id cannot be \(id)") }
    guard !Routes.reservedIDs.contains(id) else { throw Routes.reservedIDProblem(id) }
    guard id.utf8.allSatisfy({ byte in
        (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
            || byte == 0x2e || byte == 0x5f || byte == 0x2d
    }) else {
        throw Problem(.badRequest, "the video id may hold only letters, digits, '.', '_' and '-'")
    }
    return id
}

/// Applies `?height=&width=&crf=&quality=&preset=&audio=&hdr=&deinterlace=&codec=&format=` to `base`; unknown,
/// repeated or out-of-range values, and codecs the container cannot carry, are refused.
func applyQuery(_ query: [(String, String)], to base: TranscodeOptions) throws(Problem) -> TranscodeOptions {
    var options = base
    var seen: Set<String> = []
    for (key, value) in query {
        guard seen.insert(key).inserted else { throw Problem(.badRequest, "query parameter \(key) is repeated") }
        func integer() throws(Problem) -> Int {
            guard !value.isEmpty, value.utf8.count <= 6, value.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let number = Int(value) else {
                throw Problem(.badRequest, "\(key) must be a whole number, not '\(value)'")
            }
            return number
        }
        switch key {
        case "height": options.maxHeight = try integer()
        case "width": options.maxWidth = try integer()
        case "crf": options.crf = try integer()
        case "quality":
            do { options.quality = try TranscodeOptions.parse(key, value) } catch { throw Problem(.badRequest, "\(error)") }
        case "codec":
            do { options.codec = try TranscodeOptions.parse(key, value) } catch { throw Problem(.badRequest, "\(error)") }
        case "format":
            do { options.format = try TranscodeOptions.parse(key, value) } catch { throw Problem(.badRequest, "\(error)") }
        case "preset": options.preset = value
        case "audio":
            switch value.lowercased() {
            case "1", "true", "yes", "on": options.audio = true
            case "0", "false", "no", "off": options.audio = false
            default: throw Problem(.badRequest, "audio must be true or false, not '\(value)'")
            }
        case "hdr":
            do { options.hdr = try TranscodeOptions.parse(key, value) } catch { throw Problem(.badRequest, "\(error)") }
        case "deinterlace":
            do { options.deinterlace = try TranscodeOptions.parse(key, value) } catch { throw Problem(.badRequest, "\(error)") }
        default:
            throw Problem(
                .badRequest, "unknown query parameter '\(key)' (known: \(knownQueryParameters.joined(separator: ", ")))")
        }
    }
    do {
        try options.validate()
    } catch {
        throw Problem(.badRequest, "\(error)")
    }
    return options
}

/// Applies `?at=&width=&height=&format=&hdr=&deinterlace=` of `POST /<video_id>/poster` to `base`: the image's
/// time (seconds, or `auto`), its largest size, its format (jpeg, webp, png) and the conversions the video gets.
func applyPosterQuery(_ query: [(String, String)], to base: TranscodeOptions) throws(Problem) -> TranscodeOptions {
    var poster = TranscodeOptions.Poster()
    var rest: [(String, String)] = []
    var seen: Set<String> = []
    for (key, value) in query {
        guard seen.insert(key).inserted else { throw Problem(.badRequest, "query parameter \(key) is repeated") }
        switch key {
        case "at":
            guard value != "auto" else { continue }
            // Decimal seconds only: no exponent, sign, inf or nan.
            guard !value.isEmpty, value.utf8.count <= 12,
                value.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == 0x2e }), let seconds = Double(value)
            else { throw Problem(.badRequest, "at must be seconds (e.g. 2.5) or auto, not '\(value)'") }
            poster.at = seconds
        case "format":
            do { poster.format = try TranscodeOptions.parse(key, value) } catch { throw Problem(.badRequest, "\(error)") }
        case "width", "height", "hdr", "deinterlace": rest.append((key, value))
        default:
            throw Problem(.badRequest, "unknown query parameter '\(key)' (known: at, width, height, format, hdr, deinterlace)")
        }
    }
    var options = try applyQuery(rest, to: base)
    options.poster = poster
    do { try options.validate() } catch { throw Problem(.badRequest, "\(error)") }
    return options
}

let knownQueryParameters = [
    "height", "width", "crf", "quality", "preset", "audio", "hdr", "deinterlace", "codec", "format", "split",
]

/// Strict percent-decoding: a '%' must start two hex digits, and the result must be UTF-8 without control bytes.
private func percentDecode(_ text: Substring) throws(Problem) -> String {
    var bytes: [UInt8] = []
    var iterator = text.utf8.makeIterator()
    func hex(_ byte: UInt8?) -> UInt8? {
        switch byte {
        case .some(let b) where (0x30...0x39).contains(b): b - 0x30
        case .some(let b) where (0x41...0x46).contains(b): b - 0x41 + 10
        case .some(let b) where (0x61...0x66).contains(b): b - 0x61 + 10
        default: nil
        }
    }
    while let byte = iterator.next() {
        if byte == UInt8(ascii: "%") {
            guard let high = hex(iterator.next()), let low = hex(iterator.next()) else {
                throw Problem(.badRequest, "bad percent-encoding in the request target")
            }
            bytes.append(high << 4 | low)
        } else {
            bytes.append(byte)
        }
    }
    guard let decoded = String(validating: bytes, as: UTF8.self), !bytes.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
        throw Problem(.badRequest, "the request target decodes to invalid characters")
    }
    return decoded
}
