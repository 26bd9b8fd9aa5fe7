import CFFmpeg

/// The output's audio track, made from the input's first audio stream one demuxed packet at a time.
protocol AudioOutput: AnyObject {
    var input: UnsafeMutablePointer<AVStream> { get }
    /// Whether the input's packets went into the output as they were, rather than decoded and encoded again.
    var isCopy: Bool { get }
    /// Samples written at or after the output's time 0 (encoder priming, which players skip, not counted).
    var samplesWritten: Int64 { get }
    /// Takes one packet of `input`, or nil once the input has ended.
    func process(_ packet: UnsafeMutablePointer<AVPacket>?, muxer: Muxer, control: JobControl) throws(TranscodeError)
}

/// The container's own audio is copied (lossless, and nearly free): AAC-LC in MP4, Opus in WebM; any other audio is
/// re-encoded to it. Nil when the input's audio can be neither: the video is still worth delivering.
func makeAudioOutput(
    stream: UnsafeMutablePointer<AVStream>, muxer: Muxer, options: TranscodeOptions, startTime: Int64
) throws(TranscodeError) -> (any AudioOutput)? {
    switch muxer.container {
    case .mp4: if let copy = try AudioCopy(stream: stream, muxer: muxer, options: options, startTime: startTime) { return copy }
    case .webm: if let copy = try OpusCopy(stream: stream, muxer: muxer, options: options, startTime: startTime) { return copy }
    }
    return try AudioPipeline(stream: stream, muxer: muxer, options: options, startTime: startTime)
}

extension AudioPipeline: AudioOutput {
    var isCopy: Bool { false }
    var samplesWritten: Int64 { samplesEncoded }

    func process(_ packet: UnsafeMutablePointer<AVPacket>?, muxer: Muxer, control: JobControl) throws(TranscodeError) {
        try decode(packet, muxer: muxer, control: control)
    }
}
