import CFFmpeg
import SystemSupport

/// What libav's interrupt callback consults: the caller's cancellation, the job's deadline and, once frames are
/// being encoded, how long ago the last one was.
final class JobControl {
    let cancellation: TranscodeCancellation?
    private let started = monotonicNanos()
    private var deadline: UInt64?
    private var stallLimit: UInt64?
    private var lastAlive: UInt64?
    /// Why the last check said stop, so that an AVERROR_EXIT can be reported as what it was.
    private(set) var stopReason: TranscodeError?

    init(cancellation: TranscodeCancellation?, timeLimitSeconds: Double?) {
        self.cancellation = cancellation
        self.deadline = timeLimitSeconds.map { started + UInt64($0 * 1e9) }
    }

    /// The limit once the video's length is known (seconds from the job's start), and the stall bound from now on.
    func setTimeLimit(_ seconds: Double?, stallSeconds: Double?) {
        deadline = seconds.map { started + UInt64($0 * 1e9) }
        stallLimit = stallSeconds.map { UInt64($0 * 1e9) }
        noteAlive()
    }

    /// A frame was encoded.
    func noteAlive() { lastAlive = monotonicNanos() }

    /// Nil while the job may go on.
    func shouldStop() -> TranscodeError? {
        if let reason = stopReason { return reason }
        if cancellation?.isCancelled == true {
            stopReason = .cancelled
        } else if let deadline, monotonicNanos() >= deadline {
            stopReason = .limitExceeded(.jobTime)
        } else if let stallLimit, let lastAlive, monotonicNanos() >= lastAlive + stallLimit {
            stopReason = .limitExceeded(.stall)
        }
        return stopReason
    }

    func checkpoint() throws(TranscodeError) {
        if let reason = shouldStop() { throw reason }
    }

    /// Translates libav's failures, turning an interrupted call into the reason it was interrupted.
    func error(_ code: Int32, _ what: String) -> TranscodeError {
        if let reason = stopReason ?? shouldStop() { return reason }
        return libavError(code, what)
    }

    /// The callback libav polls during blocking work. `opaque` is this object, unretained: whoever installs the
    /// callback on a libav context must keep the control for as long as that context lives (Muxer and Demuxer
    /// hold it), since libav calls it up to the context's last close.
    var interruptCallback: AVIOInterruptCB {
        AVIOInterruptCB(
            callback: { opaque in
                guard let opaque else { return 0 }
                let control = Unmanaged<JobControl>.fromOpaque(opaque).takeUnretainedValue()
                return control.shouldStop() == nil ? 0 : 1
            },
            opaque: Unmanaged.passUnretained(self).toOpaque()
        )
    }
}
