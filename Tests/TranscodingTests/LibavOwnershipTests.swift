import TestSupport
import Testing
@testable import Transcoding

/// libav keeps raw pointers to our objects (the interrupt callback's opaque, the AVIO callbacks' opaque); the object
/// that installs one must keep what it points to alive for as long as libav may call it.
@Suite("opaque pointers libav keeps are owned by the object that frees the context")
struct LibavOwnershipTests {
    @Test("the muxer keeps its interrupt callback's control alive until the muxer is gone")
    func muxerOwnsItsControl() throws {
        let scratch = try Scratch()
        weak var watched: JobControl?
        var muxer: Muxer?
        do {
            let control = JobControl(cancellation: nil, timeLimitSeconds: nil)
            watched = control
            muxer = try Muxer(.path(scratch.path("out.mp4")), container: .mp4, control: control)
        }
        #expect(watched != nil, "libav holds the control's address, so the muxer must hold the control")
        muxer = nil  // avio_closep in deinit calls the interrupt callback
        #expect(watched == nil)
    }

    @Test("the demuxer keeps its interrupt callback's control alive until the demuxer is gone")
    func demuxerOwnsItsControl() throws {
        weak var watched: JobControl?
        var demuxer: Demuxer?
        do {
            let control = JobControl(cancellation: nil, timeLimitSeconds: nil)
            watched = control
            demuxer = try Demuxer(.path(TestMedia.trialClip), limits: .init(), control: control)
        }
        #expect(watched != nil)
        demuxer = nil
        #expect(watched == nil)
    }
}
