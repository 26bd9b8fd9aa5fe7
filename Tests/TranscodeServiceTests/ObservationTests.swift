import Foundation
import Glibc
import Logging
import Synchronization
import SystemSupport
import TestSupport
import TranscodeService
import Testing

/// Every response the service sends, the server's own answers included, is counted in `/metrics` and logged once.
@Suite("observation: one log line and one count per response")
struct ObservationTests {
    /// An answer the HTTP layer gives itself, how to provoke it, and what it must leave in the log and the metrics.
    struct ServerAnswer: Sendable, CustomTestStringConvertible {
        let status: Int
        let route: String
        let method: String
        let level: Logger.Level
        /// The statuses of the other requests the provocation makes, each logged and counted on the transcode route.
        var others: [Int] = []
        let configure: @Sendable (inout ServiceConfig) -> Void
        let provoke: @Sendable (RunningService) throws -> Void

        var testDescription: String { "\(status)" }

        /// Sends `request` on a new connection and expects `status` back.
        static func answer(
            _ status: Int, route: String = "other", method: String = "-", level: Logger.Level = .info,
            to request: String, configure: @escaping @Sendable (inout ServiceConfig) -> Void = { _ in }
        ) -> ServerAnswer {
            ServerAnswer(status: status, route: route, method: method, level: level, configure: configure) { running in
                let client = try TestClient(port: running.port)
                try? client.send(request)
                #expect(try client.readResponse().status == status)
            }
        }
    }

    static let serverAnswers: [ServerAnswer] = [
        .answer(400, to: "NONSENSE\r\n\r\n"),
        .answer(408, route: "transcode", method: "POST", to: "POST /slow HTTP/1.1\r\nHost: t\r\n") { $0.headerTimeout = 1 },
        .answer(413, route: "transcode", method: "POST", to: "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n") {
            $0.maxBody = 1000
        },
        .answer(431, method: "GET", to: "GET /flood HTTP/1.1\r\nHost: t\r\n" + String(repeating: "X-F: v\r\n", count: 150) + "\r\n"),
        .answer(505, level: .warning, to: "GET /about HTTP/2.0\r\nHost: t\r\n\r\n"),
        // An upload cut short by the client's half-close: it can still read its 400, and that is what is counted.
        ServerAnswer(status: 400, route: "transcode", method: "POST", level: .info, configure: { _ in }) { running in
            let client = try TestClient(port: running.port)
            try client.send("POST /cut HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
            try client.send([UInt8](repeating: 0, count: 1000))
            shutdown(client.fd, Int32(SHUT_WR))
            let answer = try client.readResponse()
            #expect(answer.status == 400)
            #expect(answer.text.contains("cut short"), "\(answer.text)")
        },
        // The holder, which leaves before its answer, is the 499.
        ServerAnswer(status: 503, route: "other", method: "-", level: .warning, others: [499], configure: { $0.maxConnections = 1 }) { running in
            // Inside its handler, waiting for the rest of its upload: never closed to make room.
            let holder = try TestClient(port: running.port)
            try holder.send("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nab")
            #expect(waitUntil(10) { running.service.pool.counters.admitted.load(ordering: .relaxed) == 1 })
            let refused = try TestClient(port: running.port)
            #expect(try refused.readResponse().status == 503)
            holder.reset()
            #expect(waitUntil(10) { running.service.openConnections == 0 }, "the slot is free again for /metrics")
        },
    ]

    @Test("each answer the server gives itself is counted under its status and logged once", arguments: serverAnswers)
    func serverAnswer(_ answer: ServerAnswer) async throws {
        try await onThread {
            let log = LogCapture()
            let running = try RunningService(workers: 1, logger: log.logger(.info), configure: answer.configure)
            defer { running.stop() }
            try answer.provoke(running)

            #expect(waitUntil { log.requestLines.count >= 1 + answer.others.count })
            let lines = log.requestLines
            #expect(lines.compactMap { $0.fields["status"].flatMap { Int($0) } }.sorted() == ([answer.status] + answer.others).sorted(), "\(lines)")
            let line = try #require(lines.first { $0.fields["status"] == "\(answer.status)" })
            #expect(line.fields["method"] == answer.method, "\(line)")
            #expect(line.fields["id"] == "-" && line.fields["queue_ms"] == "-", "\(line)")
            #expect(Int(line.fields["bytes_out"] ?? "") ?? 0 > 0, "the problem document: \(line)")
            #expect(line.level == answer.level)

            let metrics = try running.get("/metrics").text
            let labels = ["route": answer.route, "status": "\(answer.status)"]
            #expect(sample(metrics, "ffmpeg_processor_requests_total", labels) == 1, "\(metrics)")
            for other in answer.others {
                #expect(sample(metrics, "ffmpeg_processor_requests_total", ["route": "transcode", "status": "\(other)"]) == 1)
            }
            #expect(sample(metrics, "ffmpeg_processor_rejections_total") ?? 0 == (answer.status == 503 ? 1 : 0))
        }
    }

    @Test("a POST gets one log line with its id, status and body bytes; a job's timings are '-' when none ran",
          arguments: [("/logged", 200), ("/refused?crf=99", 400)])
    func postLine(target: String, status: Int) async throws {
        try await onThread {
            let log = LogCapture()
            let running = try RunningService(logger: log.logger(.info))
            defer { running.stop() }
            let response = try running.post(target, body: Clips.small.bytes)
            #expect(response.status == status, "\(response.text)")

            #expect(waitUntil { !log.requestLines.isEmpty })
            let lines = log.requestLines
            #expect(lines.count == 1, "\(lines)")
            let line = try #require(lines.first)
            let id = String(target.dropFirst().prefix { $0 != "?" })
            #expect(line.fields["id"] == id)
            #expect(line.fields["method"] == "POST")
            #expect(line.fields["path"] == target)
            #expect(line.fields["status"] == "\(status)")
            #expect(line.fields["bytes_out"] == "\(response.body.count)")
            #expect(Int(line.fields["total_ms"] ?? "") != nil)
            #expect(line.level == .info)
            // A refused upload's body (within the server's discard bound) is read only to be dropped before the
            // answer, so that the connection goes on: it came in all the same, and is counted.
            #expect(line.fields["bytes_in"] == "\(Clips.small.bytes.count)")
            if status == 200 {
                #expect(Int(line.fields["queue_ms"] ?? "") != nil && Int(line.fields["transcode_ms"] ?? "") != nil, "\(line)")
            } else {
                // Refused before any job.
                #expect(line.fields["queue_ms"] == "-" && line.fields["transcode_ms"] == "-", "\(line)")
            }
            let metrics = try running.get("/metrics").text
            #expect(sample(metrics, "ffmpeg_processor_requests_total", ["route": "transcode", "status": "\(status)"]) == 1)
        }
    }

    @Test("with the logger at info, health checks and scrapes write nothing, yet are counted")
    func healthChecksQuietAtInfo() async throws {
        try await onThread {
            let log = LogCapture()
            let running = try RunningService(logger: log.logger(.info))
            defer { running.stop() }
            let before = log.entries.count
            #expect(try running.get("/about").status == 200)
            let head = try TestClient(port: running.port)
            try head.send("HEAD /about HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try head.readResponse(head: true).status == 200)
            let metrics = try running.get("/metrics").text
            #expect(sample(metrics, "ffmpeg_processor_requests_total", ["route": "about", "status": "200"]) == 2)
            #expect(Array(log.entries.dropFirst(before)).isEmpty)
        }
    }

    @Test("/about and /metrics are logged at debug, a draining /about's 503 too")
    func healthChecksAtDebug() async throws {
        try await onThread {
            let log = LogCapture()
            let running = try RunningService(logger: log.logger(.debug))
            defer { running.stop() }
            #expect(try running.get("/about").status == 200)
            #expect(try running.get("/metrics?x=1").status == 200)
            running.service.lifecycle.beginDraining()
            #expect(try running.get("/about").status == 503)

            #expect(waitUntil { log.requestLines.count == 3 })
            let lines = log.requestLines
            #expect(lines.map { $0.fields["path"] } == ["/about", "/metrics?x=1", "/about"])
            #expect(lines.map { $0.fields["status"] } == ["200", "200", "503"])
            #expect(lines.allSatisfy { $0.level == .debug }, "\(lines)")
        }
    }
}

/// What a logger of the test's own received: each test builds its Logger on this, with no global bootstrap.
final class LogCapture: Sendable {
    struct Entry: Sendable, CustomStringConvertible {
        let level: Logger.Level
        let message: String

        /// The `name=value` fields of a request line.
        var fields: [String: String] {
            var fields: [String: String] = [:]
            for part in message.split(separator: " ") {
                let pair = part.split(separator: "=", maxSplits: 1)
                if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
            }
            return fields
        }

        var description: String { "[\(level)] \(message)" }
    }

    private let stored = Locked<[Entry]>([])

    var entries: [Entry] { stored.withLock { $0 } }
    var requestLines: [Entry] { entries.filter { $0.message.hasPrefix("request ") } }

    func logger(_ level: Logger.Level) -> Logger {
        var logger = Logger(label: "observation-test") { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel = Logger.Level.trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            capture.stored.withLock { $0.append(Entry(level: event.level, message: event.message.description)) }
        }
    }
}

/// The value of the sample `name{labels…}` (all of `labels` among its labels) in a Prometheus text exposition.
func sample(_ exposition: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " ") else { continue }
        let series = line[..<space]
        let seriesName = series.prefix { $0 != "{" }
        guard seriesName == name else { continue }
        let labelText = series.dropFirst(seriesName.count).trimmingCharacters(in: CharacterSet(charactersIn: "{}"))
        let present = Set(labelText.split(separator: ",").map(String.init))
        guard labels.allSatisfy({ present.contains("\($0.key)=\"\($0.value)\"") }) else { continue }
        return Double(line[line.index(after: space)...])
    }
    return nil
}
