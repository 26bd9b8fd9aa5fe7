import Foundation
import Transcoding

/// Runs libav work (probe, cut, stitch) on a thread of its own: never on Swift's cooperative pool, which a
/// demuxer's blocking reads would starve. Cancelling the calling task raises `cancellation`.
func onLibavThread<T: Sendable>(
    _ cancellation: TranscodeCancellation, _ body: @escaping @Sendable () throws(TranscodeError) -> T
) async throws(TranscodeError) -> T {
    let result: Result<T, TranscodeError> = await withTaskCancellationHandler {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Result { () throws(TranscodeError) -> T in try body() })
            }
            // As the pool's threads: libav's demuxers and encoders use deep stacks.
            thread.stackSize = 16 << 20
            thread.start()
        }
    } onCancel: {
        cancellation.cancel()
    }
    return try result.get()
}
