import Foundation
import Glibc
import MediaFixtures
import TestSupport
import Testing
import Transcoding

/// The clips the transcoder is checked against, generated in-process (a moving pattern and a tone).
struct Fixture: CustomTestStringConvertible, Sendable {
    let name: String
    let file: String
    let clip: SyntheticClip?

    var testDescription: String { name }

    static func make(_ name: String, _ file: String, _ configure: (inout SyntheticClip) -> Void) -> Fixture {
        Fixture(name: name, file: file, clip: smallClip(configure))
    }

    static let all: [Fixture] = [
        make("H.264 + AAC in MP4", "a.mp4") { _ in },
        make("MPEG-4 Part 2 + MP2 in AVI", "b.avi") { $0.container = "avi"; $0.videoCodec = "mpeg4"; $0.audioCodec = "mp2" },
        make("MJPEG in AVI, no audio, odd size 321x241", "c.avi") {
            $0.container = "avi"; $0.videoCodec = "mjpeg"; $0.audioCodec = nil; $0.width = 321; $0.height = 241
        },
        make("VP8 + Vorbis in WebM", "d.webm") { $0.container = "webm"; $0.videoCodec = "libvpx"; $0.audioCodec = "libvorbis" },
        make("VP9 in Matroska, 5.1 audio", "e.mkv") {
            $0.container = "matroska"; $0.videoCodec = "libvpx-vp9"; $0.audioCodec = "aac"; $0.channels = 6; $0.sampleRate = 48000
        },
        make("variable frame rate H.264 in MP4, mono audio", "f.mp4") { $0.variableFrameRate = true; $0.channels = 1 },
        make("90° display rotation", "g.mp4") { $0.rotation = 90; $0.audioCodec = nil },
        make("MPEG-TS with H.264 + MP2", "h.ts") { $0.container = "mpegts"; $0.audioCodec = "mp2" },
        Fixture(name: "the trial clip (480x300, VFR)", file: "trial_video.mp4", clip: nil),
    ]

    /// Writes the fixture into `scratch` (or finds the committed trial clip); returns its path and, for generated
    /// clips, how many frames were encoded into it.
    func materialise(in scratch: Scratch) throws -> (path: String, frames: Int?) {
        guard let clip else { return (TestMedia.trialClip, nil) }
        let path = scratch.path(file)
        let info = try clip.write(to: path)
        return (path, info.videoFrames)
    }
}

/// The fixtures' clip: 1.5 s at 160x120, then whatever the case changes.
func smallClip(_ configure: (inout SyntheticClip) -> Void) -> SyntheticClip {
    var clip = SyntheticClip()
    clip.width = 160
    clip.height = 120
    clip.seconds = 1.5
    configure(&clip)
    return clip
}
