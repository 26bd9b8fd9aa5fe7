import Foundation

/// An animated GIF written byte by byte (GIF89a), so that a test controls what encoders would tidy away: delays of 0
/// and 1 centisecond, and transparency.
///
/// Every frame covers the whole canvas and is disposed to the background (transparent) before the next, so each
/// shows exactly its own pixels. The left quarter of every frame is transparent; the rest holds bars of the palette's
/// colours sliding a few pixels a frame. The palette's transparent entry is black: a converter that drops the
/// alpha shows black there, one that composites shows its background.
public struct AnimatedGIF: Sendable {
    public var width = 96
    public var height = 64
    /// Each frame's delay in centiseconds, as written in its Graphic Control Extension.
    public var delays: [Int] = [10, 0, 5, 1, 20, 7]

    public init() {}

    /// Palette index 0: transparent (black in the table).
    static let transparentIndex: UInt8 = 0

    /// The delays as browsers play them: under 2 centiseconds becomes 10 (Firefox's FrameTimeout, WebKit's and
    /// Chromium's frameDurationAtIndex).
    public var playedDelays: [Int] { delays.map { $0 < 2 ? 10 : $0 } }
    /// The animation's length as a browser plays it, seconds.
    public var playedSeconds: Double { Double(playedDelays.reduce(0, +)) / 100 }

    public func bytes() -> [UInt8] {
        var out = Array("GIF89a".utf8)
        out += le16(width) + le16(height)
        // A global table of 256 colours (2^(7+1)), 8 bits of colour resolution; background index 0.
        out += [0xF7, Self.transparentIndex, 0]
        for index in 0..<256 { out += Self.colour(index) }
        // NETSCAPE2.0: loop forever, as most animated GIFs say.
        out += [0x21, 0xFF, 0x0B] + Array("NETSCAPE2.0".utf8) + [0x03, 0x01, 0x00, 0x00, 0x00]
        for (frame, delay) in delays.enumerated() {
            // Graphic Control Extension: dispose to background (2), transparent colour flag, the delay, its index.
            out += [0x21, 0xF9, 0x04, 2 << 2 | 1] + le16(delay) + [Self.transparentIndex, 0x00]
            // Image Descriptor: the whole canvas, no local table, not interlaced.
            out += [0x2C] + le16(0) + le16(0) + le16(width) + le16(height) + [0x00]
            out += [8] + subBlocks(lzw(pixels(frame)))
        }
        out.append(0x3B)
        return out
    }

    public func write(to path: String) throws {
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
    }

    /// Entry 0 is the transparent one; the others are saturated hues around the colour wheel at varied brightness.
    static func colour(_ index: Int) -> [UInt8] {
        guard index > 0 else { return [0, 0, 0] }
        let hue = index % 6, level = UInt8(96 + (index * 37) % 160)
        switch hue {
        case 0: return [level, 0, 0]
        case 1: return [level, level, 0]
        case 2: return [0, level, 0]
        case 3: return [0, level, level]
        case 4: return [0, 0, level]
        default: return [level, 0, level]
        }
    }

    func pixels(_ frame: Int) -> [UInt8] {
        var pixels = [UInt8](repeating: Self.transparentIndex, count: width * height)
        for y in 0..<height {
            for x in (width / 4)..<width {
                pixels[y * width + x] = UInt8(1 + ((x + frame * 6) / 8 + y / 16) % 255)
            }
        }
        return pixels
    }

    /// LZW with 8-bit literals only: a clear code before the table would outgrow 9-bit codes keeps every code 9 bits
    /// wide. Larger than real compression, and valid for every decoder.
    private func lzw(_ pixels: [UInt8]) -> [UInt8] {
        let clear = 256, end = 257
        var codes = [clear]
        for (i, pixel) in pixels.enumerated() {
            if i > 0 && i % 250 == 0 { codes.append(clear) }
            codes.append(Int(pixel))
        }
        codes.append(end)
        var bytes: [UInt8] = []
        var accumulator = 0, bits = 0
        for code in codes {
            accumulator |= code << bits
            bits += 9
            while bits >= 8 {
                bytes.append(UInt8(accumulator & 0xFF))
                accumulator >>= 8
                bits -= 8
            }
        }
        if bits > 0 { bytes.append(UInt8(accumulator & 0xFF)) }
        return bytes
    }

    private func subBlocks(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        while start < data.count {
            let count = min(255, data.count - start)
            out.append(UInt8(count))
            out += data[start..<start + count]
            start += count
        }
        out.append(0)
        return out
    }

    private func le16(_ value: Int) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF)] }
}
