import CLinux
import SystemSupport
@testable import WorkerIsolation
import Testing
import Transcoding

/// A split job's passes cross the worker protocol whole, and what a plan or cut pass writes back is read only when
/// it is a plan: the parent trusts a worker's answer for nothing it cannot check.
@Suite("split passes on the wire")
struct SplitPassWireTests {
    static let plan = SegmentPlan(
        segments: [
            SegmentPlan.Segment(index: 0, firstPacket: 0, endPacket: 52, start: nil, end: 25_600, seconds: 2),
            SegmentPlan.Segment(index: 1, firstPacket: 50, endPacket: 100, start: 25_600, end: 51_200, seconds: 2),
            SegmentPlan.Segment(index: 2, firstPacket: 100, endPacket: 130, start: 51_200, end: nil, seconds: 1.2),
        ],
        streamIndex: 1, timeBase: Rational(1, 12800), frameRate: Rational(25, 1), origin: -1024, keyframes: [],
        packets: 130, duration: 5.2)

    static let passes: [TranscodeOptions.SplitPass] = [
        .plan(segmentSeconds: 8, minimumSeconds: 4, skipUpTo: 20), .cut(plan), .stitch(segments: 3),
    ]

    @Test("each pass rides a job's options and decodes to itself; a cut or damaged one is refused", arguments: passes)
    func roundTrip(_ pass: TranscodeOptions.SplitPass) throws {
        var options = TranscodeOptions()
        options.splitPass = pass
        let message = WorkerMessage.job(id: 3, options: options)
        let bytes = message.encoded()
        #expect(try WorkerMessage(decoding: bytes) == message)
        for length in 0..<bytes.count {
            #expect(throws: WorkerProtocolError.self) { try WorkerMessage(decoding: bytes.prefix(length)) }
        }
    }

    @Test("a plan pass's answer reads back as the plan (no keyframe list); nothing written is no plan (the upload was transcoded whole)")
    func planReadBack() throws {
        var some = WireWriter()
        some.optional(Self.plan) { $0.segmentPlan($1) }
        let planned = try Self.file(some.bytes)
        #expect(try WorkerJob.plan(from: planned.rawValue) == Self.plan)
        let unplanned = try Self.file([])
        #expect(try WorkerJob.plan(from: unplanned.rawValue) == nil)
        var none = WireWriter()
        none.optional(SegmentPlan?.none) { $0.segmentPlan($1) }
        let empty = try Self.file(none.bytes)
        #expect(throws: WorkerJob.AnswerError.self) { try WorkerJob.plan(from: empty.rawValue) }
        var shifts = WireWriter()
        for shift: Int64 in [0, -1024, 512] { shifts.integer(shift) }
        let cut = try Self.file(shifts.bytes)
        #expect(try WorkerJob.shifts(from: cut.rawValue, count: 3) == [0, -1024, 512])
        #expect(throws: WorkerJob.AnswerError.self) { try WorkerJob.shifts(from: cut.rawValue, count: 2) }
    }

    @Test("a plan whose segments go backwards, that has none or too many, or an answer too large, is refused")
    func badPlans() throws {
        var backwards = Self.plan
        backwards.segments[2].firstPacket = 10
        var empty = Self.plan
        empty.segments = []
        var many = Self.plan
        many.segments = (0...SegmentPlan.maximumSegments).map {
            SegmentPlan.Segment(index: $0, firstPacket: $0, endPacket: $0 + 1, start: nil, end: nil, seconds: 1)
        }
        for plan in [backwards, empty, many] {
            var writer = WireWriter()
            writer.optional(plan) { $0.segmentPlan($1) }
            let answer = try Self.file(writer.bytes)
            #expect(throws: WorkerJob.AnswerError.self) { try WorkerJob.plan(from: answer.rawValue) }
        }
        let huge = [UInt8](repeating: 1, count: 1 << 20)
        let large = try Self.file(huge)
        #expect(throws: WorkerJob.AnswerError.self) { try WorkerJob.plan(from: large.rawValue) }
        var stitch = TranscodeOptions()
        stitch.splitPass = .stitch(segments: SegmentPlan.maximumSegments + 1)
        #expect(throws: WorkerProtocolError.self) {
            try WorkerMessage(decoding: WorkerMessage.job(id: 1, options: stitch).encoded())
        }
    }

    @Test("a stitch of the most segments fits one message and the worker's descriptor limit")
    func descriptorRoom() {
        // stdio, the socket, the input and the output, then the segments.
        #expect(Sandbox.Limits(addressSpace: nil).descriptors >= 6 + SegmentPlan.maximumSegments)
        #expect(Int(CLINUX_MAX_PASSED_FDS) >= 2 + SegmentPlan.maximumSegments)
    }

    /// An anonymous file holding `bytes`, as a pass's output would after the worker wrote it. Bound to a name by
    /// the caller: a temporary would close it before the read.
    static func file(_ bytes: [UInt8]) throws -> OwnedDescriptor {
        let file = try OwnedDescriptor.anonymousFile(in: "/tmp")
        #expect(bytes.withUnsafeBytes { writeAll($0, to: file.rawValue) } == nil)
        return file
    }
}
