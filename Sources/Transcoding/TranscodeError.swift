import CFFmpeg
import Glibc
import SystemSupport

/// Why a transcode failed, in words safe to show a client: no paths, no pointers.
public enum TranscodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No whitelisted demuxer accepts the input (`detected` names what libav thought it was, if anything).
    case notAVideo(detected: String?)
    /// The container opened but holds no video stream.
    case noVideoStream
    /// The video stream's codec has no decoder here (or none we allow).
    case unsupportedCodec(String)
    /// The container was recognised but its data cannot be read or decoded.
    case corruptInput(String)
    /// A configured limit was exceeded.
    case limitExceeded(Limit)
    /// The job was cancelled by its owner.
    case cancelled
    /// A system call failed with this errno (`isDiskFull`: the service answers 507).
    case io(Errno)
    /// libav failed where it should not have; the code and its text are kept for the logs.
    case `internal`(averror: Int32, message: String)
    /// An option value out of its range; nothing was done.
    case invalidOption(String)
    /// A poster was asked for at a time after the video's last frame (seconds; the last frame's time).
    case pastTheEnd(at: Double, last: Double)

    public enum Limit: String, Sendable, Equatable {
        case pixels, duration, frames, streams, jobTime = "job time"
        /// No frame was encoded for the stall limit: a hang, whatever the time limit.
        case stall
        /// The job needed more address space than its process is allowed (the service's `--job-memory`).
        case memory
    }

    public var description: String {
        switch self {
        case .notAVideo(let detected):
            if let detected { return "not a video: the \(detected) format is not accepted" }
            return "not a video: no supported container recognises the input"
        case .noVideoStream: return "the input has no video stream"
        case .unsupportedCodec(let codec): return "unsupported video codec: \(codec)"
        case .corruptInput(let detail): return "corrupt input: \(detail)"
        case .limitExceeded(.memory): return "limit exceeded: memory (the input needs more than --job-memory allows)"
        case .limitExceeded(let limit): return "limit exceeded: \(limit.rawValue)"
        case .cancelled: return "cancelled"
        case .io(let errno): return "I/O error: \(errno)"
        case .internal(let code, let message): return "internal error \(code): \(message)"
        case .invalidOption(let detail): return "invalid option: \(detail)"
        case .pastTheEnd(let at, let last):
            return "at=\(secondsText(at)) is past the end: the last frame starts at \(secondsText(last)) s"
        }
    }

    /// True when the input itself (not this machine) is at fault: the CLI exits 2, the service answers 4xx.
    public var isInputError: Bool {
        switch self {
        case .notAVideo, .noVideoStream, .unsupportedCodec, .corruptInput, .limitExceeded, .invalidOption, .pastTheEnd:
            true
        case .cancelled, .io, .internal: false
        }
    }
}

extension TranscodeError {
    /// An allocation we asked libav for failed: under the job's memory limit that is the limit (413), else the
    /// machine's trouble, kept as an internal error.
    static func allocationFailed(_ what: String) -> TranscodeError {
        JobMemory.declaredLimit != nil ? .limitExceeded(.memory) : .internal(averror: shim_averror(ENOMEM), message: what)
    }
}

/// The text of a libav error code.
func averrorText(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 128)
    shim_err2str(code, &buffer, buffer.count)
    return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// Maps a negative libav return value to a typed error; libav passes errno values through as AVERROR(errno).
package func libavError(_ code: Int32, _ what: String) -> TranscodeError {
    if code == shim_averror_exit() { return .cancelled }
    if JobMemory.isExhausted(code) { return .limitExceeded(.memory) }
    if code < 0 && code > -4096 { return .io(Errno(rawValue: -code)) }
    return .internal(averror: code, message: "\(what): \(averrorText(code))")
}

/// Throws the typed error for a negative libav return value, returns it otherwise.
@discardableResult
package func check(_ code: Int32, _ what: @autoclosure () -> String) throws(TranscodeError) -> Int32 {
    if code < 0 { throw libavError(code, what()) }
    return code
}
