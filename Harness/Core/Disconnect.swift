/// A request the harness walks away from on purpose (`--disconnect`), to check that the service gives back what a
/// vanished client held: its temp file, its worker, its descriptors.
public struct Disconnect: Sendable, Equatable {
    public enum Moment: Sendable, Equatable {
        /// After this many body bytes, mid-upload.
        case uploading(afterBytes: Int64)
        /// This long after the last body byte, while the job is queued or running.
        case waiting(milliseconds: Int)
        /// After this many bytes of the answer (head included), mid-download.
        case receiving(afterBytes: Int64)
    }

    public var moment: Moment
    /// A reset (SO_LINGER 0, like a crashed client) rather than an orderly close.
    public var reset: Bool

    /// Whether a request walks away, and when: `percent` of the requests, at moments spread over the whole
    /// exchange, and half of them with a reset. `random` draws 64 random bits. (A closure, not an `inout`
    /// generator: ThreadSanitizer's instrumentation crashes on an `inout` SystemRandomNumberGenerator, whose size
    /// is zero.)
    public static func plan(
        percent: Double, uploadBytes: Int64, random: () -> UInt64 = { UInt64.random(in: .min ... .max) }
    ) -> Disconnect? {
        guard percent > 0 else { return nil }
        guard Double(random() % 1_000_000) < percent * 10_000 else { return nil }
        let reset = random() & 1 == 0
        let moment: Moment =
            switch random() % 3 {
            case 0: .uploading(afterBytes: Int64(random() % UInt64(max(uploadBytes, 1))))
            case 1: .waiting(milliseconds: Int(random() % 2000))
            // The answer's size is unknown before it comes; most answers of a test clip exceed 64 KiB.
            default: .receiving(afterBytes: Int64(random() % (64 << 10)))
            }
        return Disconnect(moment: moment, reset: reset)
    }
}
