import Foundation
import Glibc
import MediaFixtures
import TestSupport
import Testing
import Transcoding

/// A clip for split-and-stitch, and how it is to be cut.
struct SplitCase: CustomTestStringConvertible, Sendable {
    let name: String
    let clip: SyntheticClip
    let segmentSeconds: Double
    let minimumSeconds: Double
    /// Segments the plan must make, with the last one's length when the tail matters.
    let segments: Int
    var testDescription: String { name }

    static func make(
        _ name: String, segments: Int, segmentSeconds: Double = 4, minimumSeconds: Double = 2,
        _ configure: (inout SyntheticClip) -> Void
    ) -> SplitCase {
        var clip = SyntheticClip()
        clip.keyframeInterval = 50
        configure(&clip)
        return SplitCase(
            name: name, clip: clip, segmentSeconds: segmentSeconds, minimumSeconds: minimumSeconds, segments: segments)
    }

    static let all: [SplitCase] = [
        // Keyframes every 2 s: cuts at 4 and 8, and a 3 s tail, shorter than a segment but not than the minimum.
        make("25 fps, a tail shorter than a segment", segments: 3) { $0.seconds = 11 },
        // 9 s: a cut at 8 would leave a 1 s tail, so 4–9 is one segment.
        make("25 fps, a tail shorter than the minimum joins the segment before", segments: 2) { $0.seconds = 9 },
        make("variable frame rate", segments: 3, segmentSeconds: 3, minimumSeconds: 1.5) {
            $0.seconds = 10; $0.variableFrameRate = true; $0.keyframeInterval = 25
        },
        // Leading B-frames after each keyframe are shown before it: carried as the segment before's post-roll.
        make("open GOP", segments: 2, segmentSeconds: 3, minimumSeconds: 1.5) {
            // 26: the keyframe falls inside a run of B-frames (3), so x264 makes it open.
            $0.seconds = 6; $0.openGOP = true; $0.keyframeInterval = 26; $0.audioCodec = nil
        },
        // MPEG-TS (a start time that is not 0) with interlaced H.264: bwdif runs in every segment.
        make("interlaced MPEG-TS", segments: 2, segmentSeconds: 3, minimumSeconds: 1.5) {
            $0.container = "mpegts"; $0.interlaced = true; $0.seconds = 6; $0.keyframeInterval = 25
        },
        // Audio that is not AAC-LC: the stitch encodes it once over the whole timeline, as the whole-file job does.
        make("MP2 audio in MPEG-TS", segments: 2, segmentSeconds: 3, minimumSeconds: 1.5) {
            $0.container = "mpegts"; $0.audioCodec = "mp2"; $0.seconds = 6; $0.keyframeInterval = 25
        },
        // Keyframes every 2 s, 3 s segments: cuts at 2 and 4, and 4–7 s is the last.
        make("90° display rotation", segments: 3, segmentSeconds: 3, minimumSeconds: 1.5) {
            $0.seconds = 7; $0.rotation = 90; $0.audioCodec = nil
        },
    ]
}

@Suite("split and stitch: segments cut at keyframes, encoded apart, joined into one MP4")
struct SplitStitchTests {
    @Test("cuts: about a segment each, at keyframes, no segment under the minimum")
    func cuts() {
        let every2 = stride(from: 0.0, to: 40, by: 2).map { $0 }
        #expect(SegmentPlan.cuts(keyframes: every2, duration: 40, segmentSeconds: 8, minimumSeconds: 4) == [0, 4, 8, 12, 16])
        // Keyframes 2–5 s apart in a 40 s clip: at least 4 segments at the defaults' 8 s.
        let irregular = [0.0, 3, 5, 10, 12, 15, 20, 22, 27, 30, 32, 37]
        let cuts = SegmentPlan.cuts(keyframes: irregular, duration: 40, segmentSeconds: 8, minimumSeconds: 4)
        #expect(cuts.count >= 4)
        let starts = cuts.map { irregular[$0] } + [40]
        for (a, b) in zip(starts, starts.dropFirst()) { #expect(b - a >= 4, "\(starts)") }
        // One keyframe only: one segment, whatever the length.
        #expect(SegmentPlan.cuts(keyframes: [0], duration: 60, segmentSeconds: 8, minimumSeconds: 4) == [0])
    }

    @Test("every frame once, at the whole-file transcode's timestamps, as good", arguments: SplitCase.all)
    func stitched(_ split: SplitCase) async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mp4")
            let info = try split.clip.write(to: input)
            let whole = scratch.path("whole.mp4")
            let wholeReport = try transcode(input: .path(input), output: .path(whole))

            let stitchedPath = scratch.path("stitched.mp4")
            let plan = try #require(
                try SegmentPlan.probe(.path(input), segmentSeconds: split.segmentSeconds, minimumSeconds: split.minimumSeconds))
            #expect(plan.segments.count == split.segments, "keyframes \(plan.keyframes)")
            // Each segment but the last carries the next one's first frames as post-roll.
            for (a, b) in zip(plan.segments, plan.segments.dropFirst()) {
                #expect(a.endPacket >= b.firstPacket + SegmentPlan.postRollFrames)
            }
            if split.clip.openGOP {
                // The leading frames of each cut are the segment before's post-roll: its packets overlap the next's.
                for (a, b) in zip(plan.segments, plan.segments.dropFirst()) { #expect(a.endPacket > b.firstPacket) }
            }
            for segment in plan.segments.dropFirst() {
                #expect(segment.seconds >= split.minimumSeconds - 0.001, "\(plan.segments)")
            }
            var filters: Set<String> = []
            let report = try splitEncodeStitch(
                plan, input: input, output: stitchedPath, scratch: scratch, reported: { filters.insert($0.videoFiltersText) })
            // Every segment ran the whole file's filter stages (bwdif for the interlaced clip).
            #expect(filters == [wholeReport.videoFiltersText])
            if split.clip.interlaced { #expect(wholeReport.videoFilters.contains("bwdif")) }
            #expect(report.segments == split.segments)
            #expect(report.hasAudio == wholeReport.hasAudio && report.audioCopied == wholeReport.audioCopied)
            #expect(report.audioSamples == wholeReport.audioSamples)
            #expect(report.videoFrames == info.videoFrames)

            let source = try MediaProbe.probe(.path(input), decode: true)
            let result = try MediaProbe.probe(.path(stitchedPath), decode: true)
            let video = try #require(result.video)
            #expect(video.codec == "h264")
            #expect(video.frameCount == info.videoFrames)
            #expect(video.decodeErrors == 0)
            #expect(video.rotation == source.video?.rotation)
            let frame = info.videoDuration / Double(info.videoFrames)
            let span = try #require(video.decodedDuration)
            #expect(abs(span - info.videoDuration) <= max(frame, 0.081), "input \(info.videoDuration) s, output \(span) s")
            if source.audio != nil {
                let audio = try #require(result.audio)
                #expect(audio.codec == "aac" && audio.decodeErrors == 0)
                #expect(abs((audio.decodedDuration ?? 0) - (source.audio?.decodedDuration ?? -1)) < 0.1)
            }
            let boxes = try ContainerLayout.mp4Boxes(stitchedPath)
            #expect((boxes.firstIndex(of: "moov") ?? .max) < (boxes.firstIndex(of: "mdat") ?? -1), "\(boxes)")

            guard FFmpegCLI.available else { return }
            let expected = try frameTimes(whole)
            #expect(expected.count == info.videoFrames)
            #expect(try frameTimes(stitchedPath) == expected)
            let decoded = try run(FFmpegCLI.path!, ["-nostdin", "-v", "error", "-i", stitchedPath, "-f", "null", "-"])
            #expect(decoded.status == 0 && decoded.err.isEmpty, "\(decoded.err.prefix(600))")
            let wholePSNR = try FFmpegCLI.psnr(whole, against: input, through: "null")
            let stitchedPSNR = try FFmpegCLI.psnr(stitchedPath, against: input, through: "null")
            #expect(abs(stitchedPSNR - wholePSNR) <= 0.3, "whole \(wholePSNR) dB, stitched \(stitchedPSNR) dB")

            // At each seam, the frames either side against the whole-file transcode's. The last before it is within
            // 1 dB: without post-roll it measured 0.85-1.39 dB below (x264's macroblock tree gave it no future), with
            // it from 0.21 dB below to 1.71 dB above. The first after it, an IDR where the whole file has a P- or
            // B-frame, measured from 3.8 dB above to 1.06 dB below; frames away from any seam differ by up to 1.23 dB
            // between the two encodes (the MP2 case's frame 49), so 1.5 dB is its bound.
            let wholeFrames = try framePSNR(whole, against: input, scratch: scratch)
            let stitchedFrames = try framePSNR(stitchedPath, against: input, scratch: scratch)
            #expect(wholeFrames.count == info.videoFrames && stitchedFrames.count == info.videoFrames)
            let times = expected.compactMap(Double.init)
            // The output's times are rounded to its timescale (MPEG-TS's 90 kHz ticks to hundredths here).
            let tolerance = zip(times, times.dropFirst()).map { $1 - $0 }.min()! / 2
            for segment in plan.segments.dropFirst() {
                let seam = Double(segment.start! - plan.origin) * plan.timeBase.value
                let first = try #require(times.firstIndex { $0 >= seam - tolerance })
                for (frame, bound) in [(first - 1, 1.0), (first, 1.5)] {
                    #expect(stitchedFrames[frame] >= wholeFrames[frame] - bound, "frame \(frame) at the seam at \(seam) s")
                }
            }
        }
    }

    @Test("a video whose container declares it short is not planned past the header")
    func shortSkipped() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mp4")
            var clip = SyntheticClip()
            clip.seconds = 6
            try clip.write(to: input)
            #expect(try SegmentPlan.probe(.path(input), segmentSeconds: 2, minimumSeconds: 1, skipUpTo: 6.5) == nil)
            #expect(try SegmentPlan.probe(.path(input), segmentSeconds: 2, minimumSeconds: 1, skipUpTo: 5.5) != nil)
        }
    }

    @Test("segments whose SPS/PPS differ are refused, not joined")
    func spsMismatch() async throws {
        try await onThread {
            let scratch = try Scratch()
            let input = scratch.path("in.mp4")
            var clip = SyntheticClip()
            clip.seconds = 6
            clip.keyframeInterval = 50
            clip.audioCodec = nil
            try clip.write(to: input)
            let plan = try #require(try SegmentPlan.probe(.path(input), segmentSeconds: 2, minimumSeconds: 1))
            #expect(plan.segments.count >= 2)
            // Another preset: another reference count in the SPS.
            let error = #expect(throws: TranscodeError.self) {
                try splitEncodeStitch(plan, input: input, output: scratch.path("out.mp4"), scratch: scratch) { index, options in
                    if index == 1 { options.preset = "ultrafast" }
                }
            }
            #expect(error?.description.contains("segment 1's SPS/PPS differ") == true, "\(String(describing: error))")
        }
    }
}

/// What the service does with a plan, on one thread: each segment cut to a descriptor, encoded as a job of its own
/// (video only, its window), then stitched with the source's audio.
@discardableResult
func splitEncodeStitch(
    _ plan: SegmentPlan, input: String, output: String, scratch: Scratch,
    adjust: (Int, inout TranscodeOptions) -> Void = { _, _ in }, reported: (TranscodeReport) -> Void = { _ in }
) throws -> StitchReport {
    var encoded: [Int32] = []
    defer { for fd in encoded { close(fd) } }
    for segment in plan.segments {
        let cut = open(scratch.path("cut\(segment.index).mp4"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let answer = open(scratch.path("seg\(segment.index).mp4"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        #expect(cut >= 0 && answer >= 0)
        defer { close(cut) }
        encoded.append(answer)
        var options = TranscodeOptions()
        options.audio = false
        options.segment = try SegmentSplit.write(segment.index, of: plan, from: .path(input), to: .fileDescriptor(cut))
        adjust(segment.index, &options)
        reported(try transcode(input: .fileDescriptor(cut), output: .fileDescriptor(answer), options: options))
    }
    return try stitch(segments: encoded.map { .fileDescriptor($0) }, source: .path(input), output: .path(output))
}

/// Each frame's PSNR (all planes, dB) against `reference`, from the psnr filter's per-frame statistics.
func framePSNR(_ file: String, against reference: String, scratch: Scratch) throws -> [Double] {
    let stats = scratch.path("psnr-\(UInt32.random(in: 0...UInt32.max)).log")
    _ = try FFmpegCLI.measure([file, reference], "[0:v][1:v]psnr=stats_file=\(stats)")
    let text = try String(contentsOfFile: stats, encoding: .utf8)
    return text.split(separator: "\n").compactMap { line in
        guard let field = line.split(separator: " ").first(where: { $0.hasPrefix("psnr_avg:") }) else { return nil }
        // Identical planes give "inf".
        return Double(field.dropFirst("psnr_avg:".count)) ?? .infinity
    }
}

/// Each decoded frame's presentation time, seconds, as ffprobe prints them.
func frameTimes(_ file: String) throws -> [String] {
    let ffprobe = try #require(which("ffprobe"))
    let result = try run(ffprobe, ["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0", file])
    #expect(result.status == 0)
    // A frame with side data (x264's SEI at each segment's start) gets an empty field after its time.
    return result.out.split(separator: "\n").map { String($0.prefix { $0 != "," }) }
}
