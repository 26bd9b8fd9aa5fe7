import Foundation
import HTTPServer
import MediaFixtures
import TestSupport
import Testing

/// The judge of "plays in a browser": Debian's Chromium (`make browser-deps`), headless. A page served on loopback
/// (by this package's own HTTP server) plays the service's answer in one muted `<video>` element and, on `ended` or
/// `error`, sends what the element saw back to the same server: the event, the picture's size, the frames decoded
/// (`getVideoPlaybackQuality()`), any `MediaError`. The test waits for that report, not for a guessed time. Skipped
/// when Chromium is not installed.
@Suite("the service's answers play in headless Chromium", .enabled(if: chromium != nil, "make browser-deps installs it"))
struct BrowserPlaybackTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var query: String
        var format: String
        var clip: String
        var testDescription: String { "\(clip) ?\(query)" }
    }

    /// HEVC is left out: Chromium on Linux has no software HEVC decoder (CodecServiceTests checks its tag and decode).
    static let cases: [Case] = [
        Case(query: "codec=h264", format: "mp4", clip: "rotated"),
        Case(query: "codec=av1", format: "mp4", clip: "rotated"),
        Case(query: "codec=vp9", format: "webm", clip: "rotated"),
        Case(query: "codec=av1&format=webm", format: "webm", clip: "rotated"),
        Case(query: "codec=h264", format: "mp4", clip: "hlg"),
    ]

    /// A 1 s 320x240 clip at 25 fps shown turned by 90° (so 240x320 upright), and a 10-bit HLG one (tone-mapped).
    static let clips: [String: [UInt8]] = [
        "rotated": Clips.generate("rotated.mp4") { $0.seconds = 1; $0.rotation = 90 }.bytes,
        "hlg": Clips.generate("hlg.mp4") { $0.seconds = 1; $0.videoCodec = "libx265"; $0.signal = .hlg }.bytes,
    ]

    @Test("ended, upright, every frame decoded, no MediaError", arguments: cases)
    func plays(_ test: Case) async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let response = try running.post("/b?\(test.query)", body: Self.clips[test.clip]!)
            #expect(response.status == 200, "\(response.text)")
            let seen = try Self.play(response.body, type: "video/\(test.format)")
            #expect(seen["state"] as? String == "ended", "\(seen)")
            #expect(seen["error"] is NSNull, "\(seen)")
            let (width, height) = test.clip == "rotated" ? (240, 320) : (320, 240)
            #expect(seen["width"] as? Int == width && seen["height"] as? Int == height, "\(seen)")
            #expect(seen["frames"] as? Int == 25, "\(seen)")
        }
    }

    @Test("a poster loads as an <img> at its natural size, in each format", arguments: ["jpeg", "webp", "png"])
    func posterLoads(_ format: String) async throws {
        try await onThread {
            let running = try RunningService(workers: 1)
            defer { running.stop() }
            let response = try running.post("/b/poster?at=0.5&width=120&format=\(format)", body: Self.clips["rotated"]!)
            #expect(response.status == 200, "\(response.text)")
            let seen = try Self.play(response.body, type: "image/\(format)", page: Self.imagePage)
            #expect(seen["state"] as? String == "load", "\(seen)")
            #expect(seen["width"] as? Int == 120 && seen["height"] as? Int == 160, "\(seen)")
        }
    }

    static let imagePage = """
        <!doctype html><meta charset="utf-8">
        <img id="i" src="/answer">
        <script>
        const i = document.getElementById("i");
        let sent = false;
        function report(state) {
          if (sent) return;
          sent = true;
          fetch("/report", {method: "POST", body: JSON.stringify({state, width: i.naturalWidth, height: i.naturalHeight})});
        }
        i.addEventListener("load", () => report("load"));
        i.addEventListener("error", () => report("error"));
        // The parser may yield between the <img> and this script: an image already settled fired its event unheard.
        if (i.complete) report(i.naturalWidth > 0 ? "load" : "error");
        </script>
        """

    static let page = """
        <!doctype html><meta charset="utf-8">
        <video id="v" muted playsinline preload="auto" src="/answer"></video>
        <script>
        const v = document.getElementById("v");
        function report(state) {
          const q = v.getVideoPlaybackQuality();
          fetch("/report", {method: "POST", body: JSON.stringify({state, width: v.videoWidth, height: v.videoHeight,
            frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,
            error: v.error ? v.error.code + ": " + v.error.message : null})});
        }
        v.addEventListener("ended", () => report("ended"));
        v.addEventListener("error", () => report("error"));
        v.play().catch(e => report("play refused: " + e));
        </script>
        """

    /// Serves `page` and `video` (or an image) on loopback, opens the page in Chromium and returns the page's report.
    static func play(_ video: [UInt8], type: String, page: String = page) throws -> [String: Any] {
        let report = Report()
        let server = Server(configuration: ServerConfiguration()) { request, body in
            switch request.path {
            case "/page.html":
                return ServerResponse(status: .ok, headerFields: [.contentType: "text/html"], body: .bytes(Array(page.utf8)))
            case "/answer":
                return ServerResponse(status: .ok, headerFields: [.contentType: type], body: .bytes(video))
            case "/report":
                report.deliver((try? await body.collect(upTo: 1 << 16)) ?? [])
                return ServerResponse(status: .noContent)
            default:
                return ServerResponse(status: .notFound)
            }
        }
        let port = try server.start()
        defer { server.shutdown() }
        let profile = try Scratch()
        let browser = Process()
        browser.executableURL = URL(fileURLWithPath: chromium!)
        browser.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
            "--user-data-dir=\(profile.url.path)", "http://127.0.0.1:\(port)/page.html",
        ]
        browser.standardOutput = FileHandle.nullDevice
        browser.standardError = FileHandle.nullDevice
        try browser.run()
        defer {
            browser.terminate()
            browser.waitUntilExit()
        }
        // A 1 s clip plays in about a second; a minute covers a browser starting on a loaded machine.
        guard let bytes = report.wait(seconds: 60) else { return ["state": "no report within 60 s"] }
        return (try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]) ?? ["state": String(decoding: bytes, as: UTF8.self)]
    }
}

/// The page's one report, handed from the server's task to the waiting test.
final class Report: @unchecked Sendable {
    private let lock = NSLock()
    private let arrived = DispatchSemaphore(value: 0)
    private var bytes: [UInt8]?

    func deliver(_ body: [UInt8]) {
        lock.withLock { if bytes == nil { bytes = body; arrived.signal() } }
    }

    func wait(seconds: Double) -> [UInt8]? {
        guard arrived.wait(timeout: .now() + seconds) == .success else { return nil }
        return lock.withLock { bytes }
    }
}

/// Debian's Chromium, when installed.
let chromium = which("chromium")
