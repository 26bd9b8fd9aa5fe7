import Foundation
import TestSupport

/// What the async tests do against a `RunningService`: submit with `Prefer: respond-async`, read the status
/// document, follow it to a state.
extension RunningService {
    /// Posts `body` asking for an async answer; the answer (202, or 200 with `wait=`).
    func submit(_ target: String, body: [UInt8], prefer: String = "respond-async") throws -> TestClient.Response {
        try post(target, body: body, extraHeaders: "Prefer: \(prefer)\r\n")
    }

    /// Submits and returns the job's path (its Location), expecting 202.
    func submitJob(_ target: String, body: [UInt8]) throws -> String {
        let response = try submit(target, body: body)
        guard response.status == 202, let location = response.header("Location") else {
            throw AsyncTestError("expected 202 with Location, got \(response.status): \(response.text)")
        }
        return location
    }

    func request(_ method: String, _ target: String, headers: [String] = []) throws -> TestClient.Response {
        let client = try TestClient(port: port)
        try client.send("\(method) \(target) HTTP/1.1\r\nHost: test\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n")
        return try client.readResponse(head: method == "HEAD")
    }

    /// The status document at `location`, as a dictionary; nil for an answer other than 200.
    func status(_ location: String) throws -> [String: Any]? {
        let response = try get(location)
        guard response.status == 200 else { return nil }
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
    }

    /// Polls the job until `condition` holds on its status (at most `seconds`); every status seen, in order.
    func follow(_ location: String, seconds: Double = 120, until condition: ([String: Any]) -> Bool) throws -> [[String: Any]] {
        var seen: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard let status = try status(location) else { throw AsyncTestError("\(location) is not 200") }
            seen.append(status)
            if condition(status) { return seen }
            usleep(20_000)
        }
        throw AsyncTestError("\(location) never reached the state wanted in \(seconds) s; last: \(seen.last ?? [:])")
    }

    /// Follows the job to a final state.
    func finish(_ location: String) throws -> [String: Any] {
        try follow(location) { ["succeeded", "failed", "cancelled"].contains($0["state"] as? String ?? "") }.last!
    }
}

/// A time of a status document (`started`, `finished`: RFC 3339 with milliseconds) as a `Date`; nil if it is none.
func jobTime(_ value: Any?) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return (value as? String).flatMap { formatter.date(from: $0) }
}

struct AsyncTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A parser that follows the WHATWG "Server-sent events" interpretation rules (§9.2.6): lines end in CRLF, LF or
/// CR; a line starting with ':' is a comment; `field: value` loses one leading space; `data` lines join with LF;
/// an `id` with NUL is ignored; an empty line dispatches the event (nothing if its data is empty) and the last
/// event id persists across events.
struct EventStreamParser {
    struct Event: Equatable {
        var type: String
        var data: String
        var lastEventID: String
    }

    private(set) var events: [Event] = []
    private(set) var comments = 0
    private(set) var retry: Int?
    private var type = ""
    private var data = ""
    private var lastEventID = ""

    /// The text after the last line end fed so far: the start of a line whose end is still to come.
    private var unfinished = ""

    /// Feeds the next piece of the stream, split anywhere (a live stream arrives a chunk at a time).
    mutating func feed(_ text: String) {
        var input = unfinished + text
        // A CR at the very end may be the first half of a CRLF whose LF comes in the next piece: kept back, so that
        // the pair counts as one line end.
        let heldCR = input.hasSuffix("\r")
        if heldCR { input.removeLast() }
        // CRLF first, so it counts as one line end.
        let normalized = input.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        var lines = normalized.components(separatedBy: "\n")
        // The text after the last line end is an incomplete line; a stream that ends there drops it (§9.2.6).
        unfinished = lines.removeLast() + (heldCR ? "\r" : "")
        for line in lines { process(line) }
    }

    private mutating func process(_ line: String) {
        if line.isEmpty {
            if !data.isEmpty {
                if data.hasSuffix("\n") { data.removeLast() }
                events.append(Event(type: type.isEmpty ? "message" : type, data: data, lastEventID: lastEventID))
            }
            data = ""
            type = ""
            return
        }
        if line.hasPrefix(":") {
            comments += 1
            return
        }
        var field = line
        var value = ""
        if let colon = line.firstIndex(of: ":") {
            field = String(line[..<colon])
            value = String(line[line.index(after: colon)...])
            if value.hasPrefix(" ") { value.removeFirst() }
        }
        switch field {
        case "event": type = value
        case "data": data += value + "\n"
        case "id": if !value.contains("\0") { lastEventID = value }
        case "retry": if !value.isEmpty, value.allSatisfy(\.isASCII), value.allSatisfy(\.isNumber) { retry = Int(value) }
        default: break
        }
    }
}
