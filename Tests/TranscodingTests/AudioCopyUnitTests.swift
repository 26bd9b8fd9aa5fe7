import Testing
@testable import Transcoding

@Suite("what decides an AAC copy, and where copied packets go")
struct AudioCopyUnitTests {
    @Test("AudioSpecificConfigs: only plain LC is copied", arguments: [
        // FFmpeg's encoder: LC 44.1 kHz stereo, then a sync extension saying "no SBR".
        ([0x12, 0x10, 0x56, 0xe5, 0x00], true, 44100, 2),
        ([0x11, 0x90], true, 48000, 2),
        ([0x11, 0x88], true, 48000, 1),
        ([0x11, 0xb0], true, 48000, 6),
        ([0x11, 0xb8], true, 48000, 8),
        // Main profile; LTP.
        ([0x0a, 0x10], false, 44100, 2),
        ([0x22, 0x10], false, 44100, 2),
        // HE-AAC signalled explicitly (object type 5), and backward-compatibly (LC, then SBR present).
        ([0x2b, 0x92, 0x08, 0x00], false, 22050, 2),
        ([0x13, 0x90, 0x56, 0xe5, 0xa5, 0x48, 0x80], false, 22050, 2),
        // 960-sample frames; channels from a program config element; cut short.
        ([0x12, 0x14], false, 44100, 2),
        ([0x12, 0x00, 0x00], false, 44100, 0),
        ([0x12], false, 0, 0),
    ] as [([UInt8], Bool, Int, Int)])
    func audioSpecificConfig(bytes: [UInt8], plainLC: Bool, rate: Int, channels: Int) {
        let config = AACConfig(audioSpecificConfig: bytes)
        #expect((config?.isPlainLC ?? false) == plainLC)
        if rate > 0 { #expect(config?.sampleRate == rate) }
        if channels > 0 { #expect(config?.channels == channels) }
    }

    @Test("the config built for ADTS input is the one aac_adtstoasc writes")
    func builtConfig() throws {
        let config = try #require(AACConfig(lcWithSampleRate: 44100, channels: 2))
        #expect(config.audioSpecificConfig == [0x12, 0x10])
        #expect(AACConfig(audioSpecificConfig: config.audioSpecificConfig) == config)
        #expect(AACConfig(lcWithSampleRate: 44100, channels: 7) == nil)
        #expect(AACConfig(lcWithSampleRate: 44000, channels: 2) == nil)
        #expect(AACConfig(lcWithSampleRate: 48000, channels: 8)?.channelConfiguration == 7)
    }

    @Test("ADTS headers")
    func adts() throws {
        // LC, 44.1 kHz, stereo, no CRC, a 371-byte frame with one raw data block.
        let header = try #require(ADTSHeader([0xff, 0xf1, 0x50, 0x80, 0x2e, 0x7f, 0xfc]))
        #expect(header.config == AACConfig(lcWithSampleRate: 44100, channels: 2))
        #expect(header.size == 7 && header.frameLength == 371 && header.blocks == 1)
        // With a CRC; Main profile.
        #expect(ADTSHeader([0xff, 0xf0, 0x50, 0x80, 0x2e, 0x7f, 0xfc])?.size == 9)
        #expect(ADTSHeader([0xff, 0xf1, 0x10, 0x80, 0x2e, 0x7f, 0xfc])?.config.objectType == 1)
        // No sync word; a layer other than 0; a reserved rate; cut short.
        #expect(ADTSHeader([0xff, 0xe1, 0x50, 0x80, 0x2e, 0x7f, 0xfc]) == nil)
        #expect(ADTSHeader([0xff, 0xf3, 0x50, 0x80, 0x2e, 0x7f, 0xfc]) == nil)
        #expect(ADTSHeader([0xff, 0xf1, 0x74, 0x80, 0x2e, 0x7f, 0xfc]) == nil)
        #expect(ADTSHeader([0xff, 0xf1, 0x50]) == nil)
    }

    @Test("copied timestamps: priming kept, steps back dropped, damage placed after the last packet")
    func timeline() {
        var timeline = CopyTimeline(sampleRate: 48000, maxSeconds: 60)
        #expect(timeline.place(-1024, duration: 1024) == -1024)
        #expect(timeline.place(0, duration: 1024) == 0)
        // A duplicate and a step back are dropped.
        #expect(timeline.place(0, duration: 1024) == nil)
        #expect(timeline.place(-500, duration: 1024) == nil)
        #expect(timeline.place(1024, duration: 1024) == 1024)
        // A small gap is kept; a jump past 10 s either way, or no timestamp, is damage.
        #expect(timeline.place(2548, duration: 1024) == 2548)
        #expect(timeline.place(900_000_000, duration: 1024) == 3572)
        #expect(timeline.place(nil, duration: 1024) == 4596)
        #expect(timeline.place(-900_000, duration: 1024) == 5620)
        // Back on track.
        #expect(timeline.place(6644, duration: 500) == 6644)
        // Past the duration limit.
        var limited = CopyTimeline(sampleRate: 1000, maxSeconds: 5)
        #expect(limited.place(5001, duration: 1024) == nil)
        #expect(limited.place(4000, duration: 1024) == 4000)
        #expect(limited.place(5024, duration: 1024) == nil)
    }

    @Test("a first timestamp far before 0 is damage, and starts at 0")
    func firstTimestamp() {
        var timeline = CopyTimeline(sampleRate: 1000, maxSeconds: 60)
        #expect(timeline.place(-5000, duration: 1024) == 0)
        var missing = CopyTimeline(sampleRate: 1000, maxSeconds: 60)
        #expect(missing.place(nil, duration: 1024) == 0)
    }
}
