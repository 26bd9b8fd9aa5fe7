import Foundation
import TestSupport
import Testing

@Suite("GET /jobs/<id>/events: Server-Sent Events, on a real socket")
struct AsyncEventTests {
    /// Reads a whole event stream (it ends after the job's final state) and parses it as a browser would.
    func stream(_ running: RunningService, _ location: String, lastEventID: String? = nil) throws
        -> (TestClient.Response, EventStreamParser)
    {
        let response = try running.request(
            "GET", location + "/events", headers: lastEventID.map { ["Last-Event-ID: \($0)"] } ?? [])
        var parser = EventStreamParser()
        parser.feed(response.text)
        return (response, parser)
    }

    @Test("progress events then the final state, every one with an id; heartbeats; a reconnect gets what it missed")
    func followAndReconnect() async throws {
        try await onThread {
            let running = try RunningService { $0.eventHeartbeat = 0.05 }
            defer { running.stop() }
            let location = try running.submitJob("/watched?preset=slow", body: Clips.medium)
            let (response, parser) = try stream(running, location)
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "text/event-stream")
            #expect(response.header("Transfer-Encoding") == "chunked")
            let events = parser.events
            #expect(events.map(\.lastEventID) == (1...max(events.count, 1)).map(String.init), "\(events)")
            #expect(events.first?.type == "state")
            #expect(parser.retry == 2000)
            #expect(parser.comments > 0, "no heartbeat in a stream that lasted a transcode")

            let final = try #require(events.last)
            #expect(final.type == "state")
            let document = try JSONSerialization.jsonObject(with: Data(final.data.utf8)) as? [String: Any]
            #expect(document?["state"] as? String == "succeeded" && document?["progress"] as? Double == 1)
            let progress = events.filter { $0.type == "progress" }.compactMap { event -> Double? in
                let object = try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any]
                return object?["progress"] as? Double
            }
            #expect(!progress.isEmpty, "no progress event from the worker: \(events.map(\.type))")
            #expect(progress == progress.sorted() && progress.allSatisfy { $0 > 0 && $0 < 1 }, "\(progress)")

            // A client that saw up to the second event asks again: it gets the rest, the same events, in order.
            let (_, resumed) = try stream(running, location, lastEventID: "2")
            #expect(resumed.events == Array(events.dropFirst(2)))
            let (_, all) = try stream(running, location)
            #expect(all.events == events)
        }
    }

    /// Reads `client`'s event stream a chunk at a time until `enough` holds or the stream ends (true then).
    func read(_ client: TestClient, into parser: inout EventStreamParser, until enough: (EventStreamParser) -> Bool = { _ in false })
        throws -> Bool
    {
        while !enough(parser) {
            guard let chunk = try client.readChunk() else { return true }
            parser.feed(String(decoding: chunk, as: UTF8.self))
        }
        return false
    }

    static func progress(_ event: EventStreamParser.Event?) -> Double {
        let object = event.flatMap { try? JSONSerialization.jsonObject(with: Data($0.data.utf8)) as? [String: Any] }
        return object?["progress"] as? Double ?? 0
    }

    @Test("a client cut off mid-stream reconnects with Last-Event-ID: exactly the events after it, live, then the final state")
    func reconnectMidStream() async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let location = try running.submitJob("/resumed?preset=slow", body: Clips.slow)
            let first = try TestClient(port: running.port, receiveTimeoutSeconds: 120)
            try first.send("GET \(location)/events HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try first.readHead().status == 200)
            var before = EventStreamParser()
            let endedEarly = try read(first, into: &before) { $0.events.filter { $0.type == "progress" }.count >= 2 }
            first.reset()
            try #require(!endedEarly, "the stream ended before two progress events: \(before.events)")
            let lastSeen = try #require(before.events.last)
            // While it is away the job goes on: by the time it is back it has missed events.
            let missed = try running.follow(location, seconds: 60) { status in
                status["state"] as? String != "running" || status["progress"] as? Double ?? 0 >= Self.progress(lastSeen) + 0.03
            }.last!
            try #require(missed["state"] as? String == "running", "the job ended while the client was away: \(missed)")

            let second = try TestClient(port: running.port, receiveTimeoutSeconds: 120)
            try second.send("GET \(location)/events HTTP/1.1\r\nHost: t\r\nLast-Event-ID: \(lastSeen.lastEventID)\r\n\r\n")
            #expect(try second.readHead().status == 200)
            var after = EventStreamParser()
            // The first event after the reconnect, then the job's state: still running, so the rest comes live.
            _ = try read(second, into: &after) { !$0.events.isEmpty }
            #expect(try running.status(location)?["state"] as? String == "running")
            #expect(try read(second, into: &after), "the stream did not end")

            let ids = (before.events + after.events).compactMap { Int($0.lastEventID) }
            #expect(ids == Array(1...max(ids.count, 1)), "ids across the reconnect: \(ids)")
            #expect(after.events.first?.lastEventID == String((Int(lastSeen.lastEventID) ?? 0) + 1))
            #expect(after.events.filter { $0.type == "progress" }.count >= 3, "\(after.events.map(\.type))")
            let final = try #require(after.events.last)
            #expect(final.type == "state" && final.data.contains("\"state\":\"succeeded\""), "\(final)")
            // Nothing missed and nothing twice: the two connections together are the whole stream, as read afterwards.
            let (_, whole) = try stream(running, location)
            #expect(before.events + after.events == whole.events)
        }
    }

    @Test("a cancelled job's stream ends with the cancelled state; an unknown job is 404")
    func cancelledAndUnknown() async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let location = try running.submitJob("/dropped?preset=veryslow", body: Clips.slow)
            _ = try running.follow(location, seconds: 60) { $0["state"] as? String == "running" }
            let watcher = try TestClient(port: running.port, receiveTimeoutSeconds: 60)
            try watcher.send("GET \(location)/events HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(waitUntil(10) { running.service.jobs.watcherCount == 1 })
            #expect(try running.request("DELETE", location).status == 204)
            let response = try watcher.readResponse()
            var parser = EventStreamParser()
            parser.feed(response.text)
            let final = try #require(parser.events.last)
            #expect(final.data.contains("\"state\":\"cancelled\""), "\(final)")
            #expect(waitUntil(10) { running.service.jobs.watcherCount == 0 })
            #expect(try running.request("GET", "/jobs/nobody.0123/events").status == 404)
        }
    }

    @Test("a watcher that leaves mid-stream is forgotten")
    func watcherLeaves() async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let location = try running.submitJob("/left?preset=veryslow", body: Clips.slow)
            let watcher = try TestClient(port: running.port)
            try watcher.send("GET \(location)/events HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(waitUntil(10) { running.service.jobs.watcherCount == 1 })
            watcher.reset()
            #expect(waitUntil(10) { running.service.jobs.watcherCount == 0 })
            #expect(try running.request("DELETE", location).status == 204)
        }
    }
}

@Suite("The SSE parser the tests use follows the WHATWG rules")
struct EventStreamParserTests {
    @Test("fields, comments, multi-line data, CRLF and CR line ends, a persisting id, an unfinished tail")
    func parses() {
        var parser = EventStreamParser()
        parser.feed(": hello\r\nid: 7\r\nevent: progress\r\ndata: a\r\ndata:b\r\n\r\ndata: c\r\rretry: x\n\ndata: tail")
        #expect(parser.events == [
            .init(type: "progress", data: "a\nb", lastEventID: "7"),
            .init(type: "message", data: "c", lastEventID: "7"),
        ])
        #expect(parser.comments == 1 && parser.retry == nil)
    }

    @Test("a stream fed in pieces, split anywhere (a CRLF included), parses as when fed whole", arguments: [1, 2, 3, 5, 8])
    func piecewise(size: Int) {
        // Bytes, not Characters: Swift keeps a CRLF together as one Character, and the split must be able to cut it.
        let text = Array(": hi\r\nid: 1\r\nevent: progress\r\ndata: a\r\n\r\nid: 2\rdata: b\r\rdata: c\n\n".utf8)
        var whole = EventStreamParser()
        whole.feed(String(decoding: text, as: UTF8.self))
        var pieces = EventStreamParser()
        for start in stride(from: 0, to: text.count, by: size) {
            pieces.feed(String(decoding: text[start..<min(start + size, text.count)], as: UTF8.self))
        }
        #expect(whole.events.count == 3)
        #expect(pieces.events == whole.events && pieces.comments == whole.comments)
    }
}
