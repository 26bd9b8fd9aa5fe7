import Foundation

/// How the run shows itself while going: one line rewritten in place on a terminal, a plain line every few seconds
/// in a log, or nothing (tests).
public enum ProgressStyle: Sendable {
    case live
    case lines(everySeconds: Double)
    case silent

    /// `.live` when stderr is a terminal, else a line every 5 s.
    public static var automatic: ProgressStyle { isatty(STDERR_FILENO) != 0 ? .live : .lines(everySeconds: 5) }

    var interval: Double? {
        switch self {
        case .live: 0.25
        case .lines(let seconds): seconds
        case .silent: nil
        }
    }

    func show(done: Int, total: Int, succeeded: Int, abandoned: Int, elapsed: Double, final: Bool) {
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let walkedAway = abandoned > 0 ? ", \(abandoned) abandoned" : ""
        let line =
            "\(done)/\(total) done, \(succeeded) ok, \(done - succeeded - abandoned) failed\(walkedAway), "
            + String(format: "%.1f req/s, %.1f s", rate, elapsed)
        switch self {
        case .live: FileHandle.standardError.write(Data("\r\u{1B}[K\(line)\(final ? "\n" : "")".utf8))
        case .lines: FileHandle.standardError.write(Data("harness: \(line)\n".utf8))
        case .silent: break
        }
    }
}
