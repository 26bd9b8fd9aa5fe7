import CFFmpeg

/// The receive half of a decoder's send/receive pair, shared by the video and audio pipelines and the probe.
enum DecodeLoop {
    /// Failed receives in a row, with no frame between them, after which the decoder is taken to be stuck. libav's
    /// decoders fail once per damaged frame and then move on, so a real input never comes near it.
    static let maxConsecutiveErrors = 64

    /// Calls `receive` until it answers EAGAIN or EOF, running `body` after each frame it yields.
    ///
    /// A failed receive is counted in `errors` and skipped, as the ffmpeg CLI skips a damaged frame; ENOMEM ends the
    /// job. Every turn passes `control`'s checkpoint, and `maxConsecutiveErrors` failures in a row end the job as
    /// corrupt input: a decoder that keeps failing can always be cancelled or timed out, and never pins a worker.
    static func drain(
        receive: () -> Int32, control: JobControl?, errors: inout Int, what: @autoclosure () -> String,
        _ body: () throws(TranscodeError) -> Void
    ) throws(TranscodeError) {
        var consecutive = 0
        while true {
            try control?.checkpoint()
            let status = receive()
            if status == shim_averror_eagain() || status == shim_averror_eof() { return }
            guard status >= 0 else {
                if status == shim_averror(ENOMEM) { throw control?.error(status, what()) ?? libavError(status, what()) }
                errors += 1
                consecutive += 1
                if consecutive >= maxConsecutiveErrors {
                    throw .corruptInput("\(what()): the decoder failed \(consecutive) times in a row")
                }
                continue
            }
            consecutive = 0
            try body()
        }
    }
}
