import Foundation
import TestSupport
import Testing
@testable import TranscodeService
import Transcoding

/// Answers a reader of the README would predict: a song is "no video stream" whatever its container, an id the
/// service keeps for itself is refused with the reason, and booleans are read in any letter case.
@Suite("sound-only uploads, reserved ids and boolean values get the answers the README gives")
struct RequestAnswerTests {
    @Test("an MP3 upload is 422 'no video stream', as an M4A is",
          .enabled(if: which("ffmpeg") != nil, "the ffmpeg CLI is installed by `make deps`"))
    func mp3() async throws {
        try await onThread {
            let scratch = try Scratch()
            let song = scratch.path("song.mp3")
            let made = try run(which("ffmpeg")!, ["-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine", "-t", "0.5", song])
            try #require(made.status == 0, "\(made.err)")
            let running = try RunningService()
            defer { running.stop() }
            for (name, body) in [("mp3", Array(try Data(contentsOf: URL(fileURLWithPath: song)))), ("m4a", Clips.audioOnly)] {
                let response = try running.post("/\(name)", body: body)
                #expect(response.status == 422, "\(name): \(response.text)")
                #expect(response.header("Content-Type") == "application/problem+json")
                #expect(response.text.contains("no video stream"), "\(name): \(response.text)")
            }
        }
    }

    @Test("a raw DV upload (a camcorder's file) is transcoded in the sandboxed worker with all its frames",
          .enabled(if: which("ffmpeg") != nil, "the ffmpeg CLI is installed by `make deps`"))
    func rawDV() async throws {
        let response = try await onThread {
            let scratch = try Scratch()
            let tape = scratch.path("tape.dv")
            let made = try run(which("ffmpeg")!, ["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=720x576:rate=25",
                                                  "-t", "0.4", "-target", "pal-dv", tape])
            try #require(made.status == 0, "\(made.err)")
            let running = try RunningService()
            defer { running.stop() }
            return try running.post("/tape", body: Array(try Data(contentsOf: URL(fileURLWithPath: tape))))
        }
        try #require(response.status == 200, "\(response.text)")
        let answer = try Clips.probe(response.body)
        #expect(answer.video?.codec == "h264")
        #expect(answer.video?.frameCount == 10)
    }

    @Test("a video sent to a reserved id is a 400 that names the reserved ids", arguments: Routes.reservedIDs)
    func reservedID(id: String) async throws {
        let response = try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            return try running.post("/\(id)", body: Clips.small.bytes)
        }
        #expect(response.status == 400, "\(response.text)")
        #expect(response.header("Content-Type") == "application/problem+json")
        #expect(response.text.contains("'\(id)' is reserved"), "\(response.text)")
        #expect(response.text.contains("about, metrics, jobs"), "\(response.text)")
    }

    @Test("every literal route's segment, and jobs, is reserved")
    func reservedIDsFollowTheRoutes() {
        #expect(Set(Routes.reservedIDs) == ["about", "metrics", "jobs"])
        for route in Routes.table where !route.template.hasPrefix("/{") {
            let first = route.template.split(separator: "/").first.map(String.init) ?? ""
            #expect(Routes.reservedIDs.contains(first), "\(route.template)")
        }
    }

    @Test("audio= reads its values in any letter case",
          arguments: [("TRUE", true), ("True", true), ("YES", true), ("On", true), ("FALSE", false), ("No", false),
                      ("OFF", false), ("0", false)])
    func audioValue(text: String, audio: Bool) throws {
        var base = TranscodeOptions()
        base.audio = !audio
        #expect(try applyQuery([("audio", text)], to: base).audio == audio)
    }

    @Test("audio=FALSE drops the sound from the answer")
    func audioFalseOverHTTP() async throws {
        let response = try await onThread {
            let running = try RunningService()
            defer { running.stop() }
            return try running.post("/quiet?audio=FALSE", body: Clips.small.bytes)
        }
        try #require(response.status == 200, "\(response.text)")
        let answer = try Clips.probe(response.body)
        #expect(answer.audio == nil)
        #expect(answer.video?.frameCount == Clips.small.frames)
    }
}
