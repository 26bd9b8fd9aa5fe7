/// What an MPEG-4 AudioSpecificConfig (ISO 14496-3 1.6.2.1) or an ADTS header says about an AAC stream: enough to
/// tell plain AAC-LC, which an MP4 carries as it is, from everything else.
struct AACConfig: Equatable {
    /// MPEG-4 audio object type: 1 Main, 2 LC, 3 SSR, 4 LTP, 5 SBR (HE-AAC), 29 PS (HE-AAC v2), ...
    var objectType: Int
    /// Index into `AACConfig.sampleRates`; 15 when the rate is written out.
    var samplingIndex: Int
    var sampleRate: Int
    /// 1...6 that many channels, 7 is 7.1; 0 means a program config element describes them.
    var channelConfiguration: Int
    /// Samples per frame: 1024, or 960 for the rare short-frame variant.
    var frameLength = 1024
    /// An SBR extension is signalled, which makes it HE-AAC decoded at twice the rate.
    var sbr = false
    /// GASpecificConfig's extension flag, which only error-resilient object types may set.
    var extensionFlag = false

    static let sampleRates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]

    static let lc = 2

    /// AAC-LC with 1024-sample frames and a standard channel configuration: what our own encoder would make.
    var isPlainLC: Bool {
        objectType == Self.lc && !sbr && !extensionFlag && frameLength == 1024
            && (1...7).contains(channelConfiguration) && (1...96000).contains(sampleRate)
    }

    /// Channels of `channelConfiguration`, nil for 0 (a program config element).
    var channels: Int? {
        switch channelConfiguration {
        case 1...6: channelConfiguration
        case 7: 8
        default: nil
        }
    }

    /// The two-byte AudioSpecificConfig MP4 needs for this stream (standard rates only), as `aac_adtstoasc` writes it.
    var audioSpecificConfig: [UInt8] {
        let bits = objectType << 11 | samplingIndex << 7 | channelConfiguration << 3
        return [UInt8(truncatingIfNeeded: bits >> 8), UInt8(truncatingIfNeeded: bits)]
    }

    init(objectType: Int, samplingIndex: Int, sampleRate: Int, channelConfiguration: Int) {
        self.objectType = objectType
        self.samplingIndex = samplingIndex
        self.sampleRate = sampleRate
        self.channelConfiguration = channelConfiguration
    }

    /// Plain AAC-LC at a standard rate with `channels` channels, or nil when no channel configuration says that many.
    init?(lcWithSampleRate rate: Int, channels: Int) {
        guard let index = Self.sampleRates.firstIndex(of: rate) else { return nil }
        let configuration: Int
        switch channels {
        case 1...6: configuration = channels
        case 8: configuration = 7
        default: return nil
        }
        self.init(objectType: Self.lc, samplingIndex: index, sampleRate: rate, channelConfiguration: configuration)
    }

    /// Parses an AudioSpecificConfig (MP4, Matroska and FLV extradata); nil when it is cut short or malformed.
    init?<Bytes: RandomAccessCollection>(audioSpecificConfig bytes: Bytes) where Bytes.Element == UInt8, Bytes.Index == Int {
        var reader = BitReader(bytes)
        guard let objectType = reader.objectType(), let (index, rate) = reader.samplingFrequency(),
            let channelConfiguration = reader.read(4)
        else { return nil }
        self.init(objectType: objectType, samplingIndex: index, sampleRate: rate, channelConfiguration: channelConfiguration)
        // Explicit (hierarchical) HE-AAC signalling names SBR or PS first; nothing more needs reading.
        if objectType == 5 || objectType == 29 {
            sbr = true
            return
        }
        // GASpecificConfig, for the object types that have one.
        guard [1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23].contains(objectType) else { return }
        guard let shortFrames = reader.read(1), let dependsOnCoreCoder = reader.read(1) else { return nil }
        frameLength = shortFrames == 1 ? 960 : 1024
        if dependsOnCoreCoder == 1 { guard reader.read(14) != nil else { return nil } }
        guard let extensionFlag = reader.read(1) else { return nil }
        self.extensionFlag = extensionFlag == 1
        // A program config element (configuration 0) or extension fields would come next; `isPlainLC` refuses both,
        // so they are not parsed, and neither is what follows them.
        guard channelConfiguration != 0, extensionFlag == 0 else { return }
        // Backward-compatible HE-AAC signalling: a sync extension after the LC config (FFmpeg's own encoder writes
        // one saying "no SBR").
        if reader.remaining >= 16, reader.read(11) == 0x2b7, let extensionType = reader.objectType(), extensionType == 5 {
            sbr = reader.read(1) == 1
        }
    }
}

/// The fixed and variable parts of an ADTS frame header (ISO 13818-7 6.2), the framing MPEG-TS carries AAC in.
struct ADTSHeader: Equatable {
    var config: AACConfig
    /// 7, or 9 with a CRC.
    var size: Int
    /// Header and payload, bytes.
    var frameLength: Int
    /// Raw data blocks (AAC frames of 1024 samples) in this ADTS frame.
    var blocks: Int

    init?<Bytes: RandomAccessCollection>(_ bytes: Bytes) where Bytes.Element == UInt8, Bytes.Index == Int {
        var reader = BitReader(bytes)
        guard reader.read(12) == 0xfff, reader.read(1) != nil, reader.read(2) == 0,
            let protectionAbsent = reader.read(1), let profile = reader.read(2), let index = reader.read(4),
            index < AACConfig.sampleRates.count, reader.read(1) != nil, let channelConfiguration = reader.read(3),
            reader.read(4) != nil, let frameLength = reader.read(13), reader.read(11) != nil, let blocks = reader.read(2)
        else { return nil }
        config = AACConfig(
            objectType: profile + 1, samplingIndex: index, sampleRate: AACConfig.sampleRates[index],
            channelConfiguration: channelConfiguration)
        size = protectionAbsent == 1 ? 7 : 9
        self.frameLength = frameLength
        self.blocks = blocks + 1
    }
}

/// Reads big-endian bit fields; nil past the end.
private struct BitReader<Bytes: RandomAccessCollection> where Bytes.Element == UInt8, Bytes.Index == Int {
    let bytes: Bytes
    private var position = 0

    init(_ bytes: Bytes) { self.bytes = bytes }

    var remaining: Int { bytes.count * 8 - position }

    mutating func read(_ count: Int) -> Int? {
        guard count <= remaining else { return nil }
        var value = 0
        for _ in 0..<count {
            let byte = bytes[bytes.startIndex + position / 8]
            value = value << 1 | Int(byte >> (7 - UInt8(position % 8)) & 1)
            position += 1
        }
        return value
    }

    mutating func objectType() -> Int? {
        guard let type = read(5) else { return nil }
        return type == 31 ? read(6).map { 32 + $0 } : type
    }

    mutating func samplingFrequency() -> (index: Int, rate: Int)? {
        guard let index = read(4) else { return nil }
        if index == 15 { return read(24).map { (index, $0) } }
        return index < AACConfig.sampleRates.count ? (index, AACConfig.sampleRates[index]) : nil
    }
}
