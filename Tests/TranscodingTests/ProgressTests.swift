import MediaFixtures
import TestSupport
import Testing
import Transcoding

@Suite("transcode reports its progress from the encoded frames' timestamps")
struct ProgressTests {
    @Test("reports rise in steps of at least 1 %, stay below 1, and reach well past half of a 4 s clip")
    func rises() throws {
        let scratch = try Scratch()
        var clip = SyntheticClip()
        clip.seconds = 4
        let written = try clip.write(to: scratch.path("in.mp4"))
        var reports: [Double] = []
        let report = try transcode(
            input: .path(scratch.path("in.mp4")), output: .path(scratch.path("out.mp4")),
            progress: { reports.append($0) })
        #expect(!reports.isEmpty)
        #expect(zip(reports, reports.dropFirst()).allSatisfy { $1 - $0 >= progressStep }, "\(reports)")
        #expect(reports.allSatisfy { $0 > 0 && $0 <= progressCeiling }, "\(reports)")
        // Once the encoder is flushed, the whole input is encoded: only the trailer is left.
        #expect(reports.last == progressCeiling, "\(reports)")
        #expect(report.videoFrames == written.videoFrames)
    }
}
