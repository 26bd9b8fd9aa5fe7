import Foundation
import MediaFixtures
import TestSupport
import Testing
@testable import Transcoding

/// An input with a given audio track, and what the transcoder should do with it.
struct AudioCase: CustomTestStringConvertible, Sendable {
    let name: String
    let file: String
    let clip: SyntheticClip

    var testDescription: String { name }

    static func make(_ name: String, _ file: String, _ configure: (inout SyntheticClip) -> Void) -> AudioCase {
        AudioCase(name: name, file: file, clip: smallClip(configure))
    }

    static let copied: [AudioCase] = [
        make("AAC-LC stereo 44.1 kHz in MP4", "lc.mp4") { _ in },
        make("AAC-LC mono 48 kHz in MP4, variable frame rate", "mono.mp4") {
            $0.channels = 1; $0.sampleRate = 48000; $0.variableFrameRate = true
        },
        make("AAC-LC 5.1 in Matroska", "surround.mkv") { $0.container = "matroska"; $0.channels = 6; $0.sampleRate = 48000 },
        make("AAC-LC in FLV", "lc.flv") { $0.container = "flv"; $0.videoCodec = "flv" },
    ]

    static let encoded: [AudioCase] = [
        make("MP2 in AVI", "mp2.avi") { $0.container = "avi"; $0.videoCodec = "mpeg4"; $0.audioCodec = "mp2" },
        make("PCM in AVI", "pcm.avi") { $0.container = "avi"; $0.videoCodec = "mpeg4"; $0.audioCodec = "pcm_s16le" },
        make("Vorbis in WebM", "vorbis.webm") { $0.container = "webm"; $0.videoCodec = "libvpx"; $0.audioCodec = "libvorbis" },
        make("AAC Main (not LC) in MP4", "main.mp4") { $0.audioProfile = "aac_main" },
        make("AAC Main (not LC) in MPEG-TS", "main.ts") { $0.container = "mpegts"; $0.audioProfile = "aac_main" },
    ]
}

@Suite("AAC-LC audio is copied, other audio encoded")
struct AudioCopyTests {
    @Test("AAC-LC is copied: the input's packets byte for byte, the same sound", arguments: AudioCase.copied)
    func copiesAACLC(_ audioCase: AudioCase) async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path(audioCase.file), output = scratch.path("out.mp4")
            try audioCase.clip.write(to: input)

            let report = try transcode(input: .path(input), output: .path(output), options: fast)

            #expect(report.hasAudio && report.audioCopied)
            #expect(report.summary.contains(" audio=aac(copy) "), "\(report.summary)")
            let before = try MediaProbe.packets(.path(input), of: .audio)
            let after = try MediaProbe.packets(.path(output), of: .audio)
            #expect(after.count == before.count)
            #expect(firstDifference(after.map(\.bytes), before.map(\.bytes)) == nil)
            // Same place in time, to the input container's precision (Matroska and FLV count milliseconds).
            let drift = zip(before, after).map { abs(($0.time ?? -1) - ($1.time ?? 1)) }.max()
            #expect(try #require(drift) <= 0.0011)
            try expectSameSound(input: input, output: output, report: report)
        }
    }

    @Test("ADTS AAC-LC in MPEG-TS is copied: each packet without its ADTS header")
    func copiesADTS() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.ts"), output = scratch.path("out.mp4")
            var clip = SyntheticClip()
            clip.container = "mpegts"
            clip.seconds = 1.5
            try clip.write(to: input)
            #expect(try MediaProbe.probe(.path(input)).audio?.codec == "aac")

            let report = try transcode(input: .path(input), output: .path(output), options: fast)

            #expect(report.audioCopied)
            let before = try MediaProbe.packets(.path(input), of: .audio)
            let after = try MediaProbe.packets(.path(output), of: .audio)
            #expect(before.allSatisfy { $0.bytes.count > 7 && $0.bytes[0] == 0xff && $0.bytes[1] & 0xf6 == 0xf0 })
            // 7 bytes: these headers carry no CRC.
            #expect(after.count == before.count)
            #expect(firstDifference(after.map(\.bytes), before.map { Array($0.bytes.dropFirst(7)) }) == nil)
            try expectSameSound(input: input, output: output, report: report)
        }
    }

    @Test("broken audio timestamps: a step back is dropped, a wild jump closed up, the job still succeeds")
    func brokenTimestamps() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.ts"), output = scratch.path("out.mp4")
            var clip = SyntheticClip()
            clip.container = "mpegts"
            clip.seconds = 2
            try clip.write(to: input)
            // The third PES goes back to 0, the fifth jumps an hour ahead (within the duration limit); the parser
            // times the other frames of each PES from its first.
            try setAudioPTS(in: input, [2: 0, 4: 324_000_000])
            let before = try MediaProbe.packets(.path(input), of: .audio)
            #expect(before.contains { ($0.time ?? 0) >= 3600 })

            let report = try transcode(input: .path(input), output: .path(output), options: fast)

            #expect(report.audioCopied)
            let after = try MediaProbe.packets(.path(output), of: .audio)
            #expect(after.count < before.count && after.count >= before.count - 16, "\(before.count) -> \(after.count)")
            let times = after.compactMap(\.time)
            #expect(times.count == after.count && zip(times, times.dropFirst()).allSatisfy { $0 < $1 })
            let probe = try MediaProbe.probe(.path(output), decode: true)
            let audio = try #require(probe.audio), video = try #require(probe.video)
            #expect(audio.decodeErrors == 0)
            #expect(abs(try #require(audio.decodedDuration) - (try #require(video.decodedDuration))) < 0.5)
            #expect(report.outputDuration < 3 && (probe.duration ?? 0) < 3)
        }
    }

    @Test("other audio is encoded to AAC-LC", arguments: AudioCase.encoded)
    func encodesOtherAudio(_ audioCase: AudioCase) async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path(audioCase.file), output = scratch.path("out.mp4")
            try audioCase.clip.write(to: input)
            let source = try #require(try MediaProbe.probe(.path(input), decode: true).audio)

            let report = try transcode(input: .path(input), output: .path(output), options: fast)

            #expect(report.hasAudio && !report.audioCopied)
            #expect(report.summary.contains(" audio=aac(encoded) "), "\(report.summary)")
            let audio = try #require(try MediaProbe.probe(.path(output), decode: true).audio)
            #expect(audio.codec == "aac" && audio.profile == "LC")
            #expect(audio.decodeErrors == 0)
            // Encoded, not copied: no packet of the output is one of the input's.
            let inputPackets = Set(try MediaProbe.packets(.path(input), of: .audio).map(\.bytes))
            #expect(try MediaProbe.packets(.path(output), of: .audio).allSatisfy { !inputPackets.contains($0.bytes) })
            let span = try #require(audio.decodedDuration), sourceSpan = try #require(source.decodedDuration)
            #expect(abs(span - sourceSpan) < 0.1, "input \(sourceSpan) s, output \(span) s")
            #expect(abs(Int(report.audioSamples) - (source.sampleCount ?? 0) * audio.sampleRate / source.sampleRate) <= 1024)
        }
    }

    @Test("audio off: no audio track, whatever the input holds")
    func audioOff() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 0.5
            try clip.write(to: scratch.path("in.mp4"))
            var options = fast
            options.audio = false
            let report = try transcode(input: .path(scratch.path("in.mp4")), output: .path(scratch.path("out.mp4")), options: options)
            #expect(!report.hasAudio && !report.audioCopied && report.audioSamples == 0)
            #expect(report.summary.contains(" audio=none "))
            let probe = try MediaProbe.probe(.path(scratch.path("out.mp4")), decode: true)
            #expect(probe.audio == nil)
            #expect(probe.video?.frameCount == report.videoFrames)
        }
    }

    @Test("the copy matches `ffmpeg -c:a copy`: same priming, start and length",
          .enabled(if: which("ffmpeg") != nil, "the ffmpeg CLI is installed by `make deps`"))
    func matchesCLICopy() async throws {
        try await onThread {
            let scratch = try Scratch()
            var clip = SyntheticClip()
            clip.seconds = 2
            try clip.write(to: scratch.path("in.mp4"))
            try transcode(input: .path(scratch.path("in.mp4")), output: .path(scratch.path("ours.mp4")), options: fast)
            let cli = try run(which("ffmpeg")!, ["-nostdin", "-v", "error", "-i", scratch.path("in.mp4"), "-c:a", "copy",
                                                 "-c:v", "libx264", "-preset", "ultrafast", scratch.path("cli.mp4")])
            #expect(cli.status == 0, "\(cli.err)")
            let ours = try MediaProbe.packets(.path(scratch.path("ours.mp4")), of: .audio)
            let theirs = try MediaProbe.packets(.path(scratch.path("cli.mp4")), of: .audio)
            #expect(ours.count == theirs.count)
            #expect(firstDifference(ours, theirs) == nil)
            let a = try #require(try MediaProbe.probe(.path(scratch.path("ours.mp4")), decode: true).audio)
            let b = try #require(try MediaProbe.probe(.path(scratch.path("cli.mp4")), decode: true).audio)
            #expect(a.sampleCount == b.sampleCount)
            #expect(a.decodedDuration == b.decodedDuration)
        }
    }

    /// Rewrites the PTS of the audio PES packets numbered in `values` (0 is the first) in an MPEG-TS file.
    private func setAudioPTS(in path: String, _ values: [Int: Int64]) throws {
        var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var number = 0
        for packet in stride(from: 0, to: data.count - 187, by: 188) where data[packet] == 0x47 && data[packet + 1] & 0x40 != 0 {
            let adaptation = data[packet + 3] >> 4 & 3
            guard adaptation & 1 != 0 else { continue }
            let pes = packet + 4 + (adaptation & 2 != 0 ? 1 + Int(data[packet + 4]) : 0)
            // Our muxer's audio stream id, with a PTS.
            guard pes + 14 <= data.count, data[pes..<pes + 4] == [0, 0, 1, 0xc0], data[pes + 7] & 0x80 != 0 else { continue }
            if let value = values[number] {
                let at = pes + 9
                data[at] = data[at] & 0xf0 | UInt8(value >> 29 & 0x0e) | 1
                data[at + 1] = UInt8(value >> 22 & 0xff)
                data[at + 2] = UInt8(value >> 14 & 0xfe) | 1
                data[at + 3] = UInt8(value >> 7 & 0xff)
                data[at + 4] = UInt8(value << 1 & 0xfe) | 1
            }
            number += 1
        }
        #expect(number > values.keys.max() ?? 0, "only \(number) audio PES packets")
        try Data(data).write(to: URL(fileURLWithPath: path))
    }

    /// The index of the first packet that differs (or of the first missing one), to keep failures readable.
    private func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> Int? {
        a.indices.first { $0 >= b.count || a[$0] != b[$0] } ?? (b.count > a.count ? a.count : nil)
    }

    private var fast: TranscodeOptions {
        var options = TranscodeOptions()
        options.preset = "ultrafast"
        return options
    }

    /// The output decodes to as many samples as the input, over the same span, within one AAC frame, and the report
    /// counts them.
    private func expectSameSound(input: String, output: String, report: TranscodeReport) throws {
        let source = try #require(try MediaProbe.probe(.path(input), decode: true).audio)
        let result = try MediaProbe.probe(.path(output), decode: true)
        let audio = try #require(result.audio)
        #expect(audio.codec == "aac" && audio.profile == "LC")
        #expect(audio.sampleRate == source.sampleRate && audio.channels == source.channels)
        #expect(audio.channelLayout == source.channelLayout)
        #expect(audio.decodeErrors == 0)
        let samples = try #require(audio.sampleCount), sourceSamples = try #require(source.sampleCount)
        #expect(samples > 0 && abs(samples - sourceSamples) <= 1024, "input \(sourceSamples), output \(samples)")
        #expect(abs(Int(report.audioSamples) - sourceSamples) <= 1024, "input \(sourceSamples), report \(report.audioSamples)")
        let span = try #require(audio.decodedDuration), sourceSpan = try #require(source.decodedDuration)
        #expect(abs(span - sourceSpan) <= 1024 / Double(source.sampleRate), "input \(sourceSpan) s, output \(span) s")
        #expect(result.video?.frameCount == report.videoFrames)
    }
}
