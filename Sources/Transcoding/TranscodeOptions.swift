/// Output settings and input limits for one transcode. Defaults equal `ffmpeg -i in out.mp4` with this libav.
public struct TranscodeOptions: Sendable, Equatable {
    /// The video codec; nil: the container's default (H.264 in MP4, VP9 in WebM).
    public var codec: VideoCodec? = nil
    /// The container; nil: the codec's (WebM for VP9, MP4 for the others).
    public var format: Container? = nil
    /// Constant rate factor on the codec's own scale (`VideoCodec.crfRange`); nil: `quality`'s, or the codec's default.
    public var crf: Int? = nil
    /// A codec-neutral quality, mapped to each codec's `crf` at comparable PSNR; not together with `crf`.
    public var quality: Quality? = nil
    /// x264/x265 preset, one of `TranscodeOptions.presets`; AV1 and VP9 have their speed fixed (`VideoCodec`).
    public var preset: String = "medium"
    /// Largest output width; the picture is scaled down keeping its aspect ratio. `nil`: the input's.
    public var maxWidth: Int? = nil
    /// Largest output height, as `maxWidth`.
    public var maxHeight: Int? = nil
    /// Whether the first audio stream is kept: copied when it is AAC-LC already, else re-encoded to AAC-LC.
    public var audio: Bool = true
    /// Encoder and decoder threads; 0 lets libav pick one per core.
    public var threads: Int = 0
    /// What becomes of HDR (PQ or HLG) video: tone-mapped to BT.709 SDR, or kept as it is.
    public var hdr: HDR = .tonemap
    /// Whether interlaced video is deinterlaced.
    public var deinterlace: Deinterlace = .auto
    public var limits: Limits = Limits()
    /// Set for one segment of a split job: only that window's frames are encoded, at their original timestamps.
    public var segment: SegmentWindow? = nil
    /// Set for one of a split job's passes over the upload: the job plans, cuts or stitches instead of transcoding.
    public var splitPass: SplitPass? = nil
    /// When set, the job writes one frame as an image (`poster(input:output:options:)`) instead of the video.
    public var poster: Poster? = nil

    public struct Limits: Sendable, Equatable {
        /// Largest width × height accepted from the input (declared or decoded). Default: 8K UHD.
        public var maxPixels: Int = 7680 * 4320
        /// Longest input accepted, in seconds.
        public var maxDurationSeconds: Double = 4 * 3600
        /// Most streams an input may hold.
        public var maxStreams: Int = 32
        /// Bytes libav may read to recognise the container and its streams.
        public var probeSize: Int = 5_000_000
        /// Most video frames an input may hold (declared by the container, or decoded): 4 hours at 120 fps. The
        /// duration limit alone does not bound them, since timestamps may be as close as one tick.
        public var maxFrames: Int = 4 * 3600 * 120
        /// Wall-clock limit of one job, in seconds; `nil`: none. With `jobTimePerVideoSecond`, the floor.
        public var jobTimeLimitSeconds: Double? = nil
        /// Seconds added to `jobTimeLimitSeconds` per second of the input's video, for a 1920x1080 output (in
        /// proportion to the output's pixels), once the input says how long it is: a long video is not a hang.
        public var jobTimePerVideoSecond: Double = 0
        /// A job that encodes no frame for this long, once it has started encoding, is stopped whatever its time
        /// limit: the bound on a hang once the limit has grown with a long video. `nil`: none.
        public var stallLimitSeconds: Double? = nil

        public init() {}

        /// The time limit of a job that writes `videoSeconds` of `width`x`height` video: the floor, plus
        /// `jobTimePerVideoSecond` per second at 1080p's pixel count; the floor alone when the length is unknown.
        public func jobTimeLimit(videoSeconds: Double?, width: Int, height: Int) -> Double? {
            guard let floor = jobTimeLimitSeconds else { return nil }
            guard let videoSeconds, videoSeconds.isFinite, videoSeconds > 0 else { return floor }
            let seconds = min(videoSeconds, maxDurationSeconds)
            return floor + jobTimePerVideoSecond * seconds * Double(width * height) / Double(1920 * 1080)
        }

        /// The longest limit `jobTimeLimit` can give within these limits: what a worker's parent allows a worker
        /// to claim.
        public var longestJobTimeLimit: Double? {
            jobTimeLimit(videoSeconds: maxDurationSeconds, width: maxPixels, height: 1)
        }
    }

    /// HDR (PQ or HLG transfer) input: `tonemap` makes BT.709 SDR that every player shows as meant; `keep` keeps the
    /// HDR signal and its colour tags: 10-bit from a 10-bit input in HEVC, AV1 and VP9; 8-bit in H.264, as the ffmpeg
    /// CLI does, for players that handle HLG or PQ in H.264.
    public enum HDR: String, Sendable, CaseIterable { case tonemap, keep }

    /// Interlaced input (the stream or its frames say so): `auto` deinterlaces it, one frame per frame; `off` encodes
    /// the fields as they are, combing and all.
    public enum Deinterlace: String, Sendable, CaseIterable { case auto, off }

    public enum Quality: String, Sendable, CaseIterable { case low, medium, high }

    /// The codec written: the one asked for, else the container's default.
    public var videoCodec: VideoCodec { codec ?? format?.videoCodecs.first ?? .h264 }
    /// The container written: the one asked for, else the first that takes the codec.
    public var container: Container {
        format ?? Container.allCases.first { $0.videoCodecs.contains(videoCodec) } ?? .mp4
    }
    /// The `crf` given to the encoder.
    public var encoderCRF: Int { crf ?? videoCodec.crf(for: quality ?? .medium) }

    /// `text` as a value of `Choice`, or an `invalidOption` naming `name` and the values it takes.
    public static func parse<Choice: RawRepresentable & CaseIterable>(
        _ name: String, _ text: String, as _: Choice.Type = Choice.self
    ) throws(TranscodeError) -> Choice where Choice.RawValue == String {
        if let choice = Choice(rawValue: text) { return choice }
        let values = Choice.allCases.map(\.rawValue)
        throw .invalidOption(
            "\(name) must be \(values.dropLast().joined(separator: ", ")) or \(values.last!), not '\(text)'")
    }

    public static let presets = [
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
    ]

    public init() {}

    /// Rejects any value out of range instead of clamping it: a caller asking for crf 60 has made a mistake.
    public func validate() throws(TranscodeError) {
        guard container.videoCodecs.contains(videoCodec) else {
            throw .invalidOption(
                "\(container.rawValue) cannot carry \(videoCodec.rawValue); valid: \(Container.combinationsText)")
        }
        if let crf {
            guard quality == nil else { throw .invalidOption("give crf or quality, not both") }
            let range = videoCodec.crfRange
            guard range.contains(crf) else {
                throw .invalidOption(
                    "crf for \(videoCodec.rawValue) must be \(range.lowerBound)...\(range.upperBound), not \(crf)")
            }
        }
        guard Self.presets.contains(preset) else {
            throw .invalidOption("preset must be one of \(Self.presets.joined(separator: ", ")), not \(preset)")
        }
        // A preset the encoder would ignore is a mistake the caller should hear of.
        guard videoCodec.takesPreset || preset == "medium" else {
            throw .invalidOption("preset applies to h264 and hevc only; \(videoCodec.rawValue)'s speed is fixed")
        }
        for (name, value) in [("width", maxWidth), ("height", maxHeight)] {
            if let value, !(16...16384).contains(value) {
                throw .invalidOption("\(name) must be 16...16384, not \(value)")
            }
        }
        guard (0...64).contains(threads) else { throw .invalidOption("threads must be 0...64, not \(threads)") }
        guard limits.maxPixels >= 256 else { throw .invalidOption("max pixels must be at least 256") }
        guard limits.maxDurationSeconds > 0 else { throw .invalidOption("max duration must be positive") }
        guard limits.maxFrames >= 1 else { throw .invalidOption("max frames must be at least 1") }
        guard limits.maxStreams >= 1 else { throw .invalidOption("max streams must be at least 1") }
        guard limits.probeSize >= 32 * 1024 else { throw .invalidOption("probe size must be at least 32 KiB") }
        if let at = poster?.at, !(at >= 0 && at <= limits.maxDurationSeconds) {
            throw .invalidOption("at must be 0...\(Int(limits.maxDurationSeconds)) seconds or auto")
        }
        if let limit = limits.jobTimeLimitSeconds, limit <= 0 {
            throw .invalidOption("job time limit must be positive")
        }
        guard limits.jobTimePerVideoSecond >= 0, limits.jobTimePerVideoSecond.isFinite else {
            throw .invalidOption("job time per video second must be 0 or more")
        }
        if let stall = limits.stallLimitSeconds, !(stall > 0) {
            throw .invalidOption("stall limit must be positive")
        }
    }
}
