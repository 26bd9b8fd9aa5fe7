/// The video codecs an answer can be written in. Each has its own encoder, its own `crf` scale and the settings that
/// make its output play in browsers; the values come from measurements (docs/BENCHMARKS.md, `make bench-codecs`).
public enum VideoCodec: String, Sendable, CaseIterable {
    case h264, hevc, av1, vp9

    /// The libav encoder that writes it.
    public var encoderName: String {
        switch self {
        case .h264: "libx264"
        case .hevc: "libx265"
        case .av1: "libsvtav1"
        case .vp9: "libvpx-vp9"
        }
    }

    /// The encoder's own constant-quality scale: lower is better and larger.
    public var crfRange: ClosedRange<Int> {
        switch self {
        case .h264, .hevc: 0...51
        case .av1: 1...63
        case .vp9: 0...63
        }
    }

    /// The `crf` used when the request names neither `crf` nor `quality`: `quality=medium`.
    public var defaultCRF: Int { crf(for: .medium) }

    /// `quality` on this codec's scale, chosen so that the codecs land at comparable PSNR: each value is where the
    /// codec's PSNR meets x264's at crf 18, 23 (the CLI's default) and 28 on two generated 640x360 clips (grain and
    /// fine detail; docs/BENCHMARKS.md, 2026-12-07).
    public func crf(for quality: TranscodeOptions.Quality) -> Int {
        switch (self, quality) {
        case (.h264, .low): 28
        case (.h264, .medium): 23
        case (.h264, .high): 18
        case (.hevc, .low): 28
        case (.hevc, .medium): 22
        case (.hevc, .high): 18
        case (.av1, .low): 45
        case (.av1, .medium): 36
        case (.av1, .high): 27
        case (.vp9, .low): 45
        case (.vp9, .medium): 35
        case (.vp9, .high): 26
        }
    }

    /// Whether `preset` (x264's names) means something to the encoder: x265 takes the same names. SVT-AV1's and
    /// libvpx's speed settings are fixed at the values measured to serve (see `privateOptions`).
    public var takesPreset: Bool { self == .h264 || self == .hevc }

    /// The encoder's private options besides `crf`; `hdr10` goes into the bitstream where FFmpeg 5.1's wrapper can
    /// pass it (x265's SEI, SVT-AV1's metadata OBUs; 5.1 reads no side data from frames). VP9 has no place for it,
    /// and x264's SEI is not read back by 5.1's H.264 decoder, so neither gets it there: their containers carry it.
    func privateOptions(preset: String, crf: Int, hdr10: HDR10Metadata? = nil) -> [String: String] {
        switch self {
        case .h264: ["preset": preset, "crf": String(crf)]
        // x265 writes its banner and statistics to stderr unless told not to.
        case .hevc:
            ["preset": preset, "crf": String(crf),
             "x265-params": (["log-level=error"] + (hdr10?.x265Parameters ?? [])).joined(separator: ":")]
        // Preset 8: 1.8-2.5x x264 medium's CPU time; preset 6 makes 10-16 % fewer bytes for 1.6-1.8x preset 8's
        // time, preset 10 more bytes at lower PSNR (docs/BENCHMARKS.md).
        case .av1:
            ["preset": "8", "crf": String(crf)].merging(
                hdr10.map { ["svtav1-params": $0.svtAV1Parameters.joined(separator: ":")] } ?? [:]) { a, _ in a }
        // Constant quality needs a zero bit rate (set on the context); row-mt lets 2+ threads share one tile column
        // at small sizes; cpu-used 2 makes 4 % fewer bytes (+0.3 dB) for 1.4x cpu-used 4's time.
        case .vp9: ["crf": String(crf), "deadline": "good", "cpu-used": "4", "row-mt": "1"]
        }
    }

    /// The sample entry an MP4 carries, when it is not the muxer's default: Safari plays HEVC only as `hvc1`
    /// (parameter sets in the sample entry), not libav's default `hev1`.
    var mp4Tag: UInt32? {
        switch self {
        case .hevc: fourCC("hvc1")
        default: nil
        }
    }
}

/// The containers an answer can be written in; each takes some codecs and one audio codec.
public enum Container: String, Sendable, CaseIterable {
    case mp4, webm

    /// The codecs it takes, the first being its default.
    public var videoCodecs: [VideoCodec] {
        switch self {
        case .mp4: [.h264, .hevc, .av1]
        case .webm: [.vp9, .av1]
        }
    }

    /// The audio it carries: AAC in MP4 (every MP4 player has it), Opus in WebM (the only choice besides Vorbis).
    public var audioEncoderName: String {
        switch self {
        case .mp4: "aac"
        case .webm: "libopus"
        }
    }

    public var mimeType: String { "video/\(rawValue)" }
    public var fileExtension: String { rawValue }

    /// The valid combinations, for the 400 that refuses another.
    public static var combinationsText: String {
        allCases.map { "\($0.rawValue) with \($0.videoCodecs.map(\.rawValue).joined(separator: ", "))" }
            .joined(separator: "; ")
    }
}

func fourCC(_ text: StaticString) -> UInt32 {
    let bytes = UnsafeBufferPointer(start: text.utf8Start, count: 4)
    return UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
}
