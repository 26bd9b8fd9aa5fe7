import CFFmpeg
import Transcoding

/// The moving pictures of `SyntheticClip`. Rows are copied from ramps rather than computed per pixel: fixtures are made
/// in debug builds, where per-pixel loops crawl.
enum SyntheticPicture {
    /// Gives `frame` a writable picture of the encoder's size and format.
    static func prepare(_ frame: UnsafeMutablePointer<AVFrame>, for encoder: UnsafeMutablePointer<AVCodecContext>) throws(TranscodeError) {
        if frame.pointee.data.0 == nil {
            frame.pointee.format = encoder.pointee.pix_fmt.rawValue
            frame.pointee.width = encoder.pointee.width
            frame.pointee.height = encoder.pointee.height
            try check(av_frame_get_buffer(frame, 0), "picture")
        }
        try check(av_frame_make_writable(frame), "picture")
    }

    /// 8-bit 4:2:0: a diagonal gradient scrolling right, with a bright square bouncing across it.
    static func fill8(_ frame: UnsafeMutablePointer<AVFrame>, index: Int) {
        let w = Int(frame.pointee.width), h = Int(frame.pointee.height)
        let ramp = (0..<(w + 256)).map { UInt8(truncatingIfNeeded: $0) }
        let luma = frame.pointee.data.0!, lumaStride = Int(frame.pointee.linesize.0)
        let boxX = (index * 7) % max(w - 32, 1), boxY = (index * 3) % max(h - 32, 1)
        ramp.withUnsafeBufferPointer { source in
            for y in 0..<h {
                let row = luma + y * lumaStride
                row.update(from: source.baseAddress! + ((y * 2 + index * 5) & 255), count: w)
                if y >= boxY && y < boxY + 32 { (row + boxX).update(repeating: 235, count: min(32, w - boxX)) }
            }
        }
        fillChroma8(frame, index: index)
    }

    /// 8-bit 4:2:0 made of two fields half a frame apart, the top one first (as a camera scanning fields sees it):
    /// vertical bars sliding 4 pixels a field and a square sliding 6, so every moving edge combs when the fields are
    /// shown together. The motion is slow against the bars' period, so that weaving fields further apart in time combs
    /// more (what the `idet` filter measures to tell field order from progressive).
    static func fillFields8(_ frame: UnsafeMutablePointer<AVFrame>, index: Int) {
        let w = Int(frame.pointee.width), h = Int(frame.pointee.height)
        // Bars 32 pixels wide; a row starts some way into this strip.
        let strip = (0..<(w + 64)).map { ($0 / 32) % 2 == 0 ? UInt8(40) : UInt8(200) }
        let luma = frame.pointee.data.0!, lumaStride = Int(frame.pointee.linesize.0)
        strip.withUnsafeBufferPointer { source in
            for y in 0..<h {
                // Even lines are the top field, at time 2 × index; odd lines the bottom field, half a frame later.
                let time = index * 2 + (y & 1)
                let row = luma + y * lumaStride
                row.update(from: source.baseAddress! + (64 - (time * 4) % 64), count: w)
                let boxX = (time * 6) % max(w - 48, 1)
                if y >= h / 4 && y < h / 4 + 48 { (row + boxX).update(repeating: 235, count: min(48, w - boxX)) }
            }
        }
        fillChroma8(frame, index: index)
    }

    /// 8-bit RGBA in four vertical quarters: fully transparent black, half-transparent red (alpha 128), opaque red,
    /// and opaque green bars sliding a few pixels a frame. Compositing shows in the first two quarters; dropping the
    /// alpha would show black and pure red there.
    static func fillRGBA(_ frame: UnsafeMutablePointer<AVFrame>, index: Int) {
        let w = Int(frame.pointee.width), h = Int(frame.pointee.height)
        var row = [UInt8](repeating: 0, count: w * 4)
        let data = frame.pointee.data.0!, stride = Int(frame.pointee.linesize.0)
        for y in 0..<h {
            for x in 0..<w {
                let pixel: [UInt8] =
                    switch 4 * x / w {
                    case 0: [0, 0, 0, 0]
                    case 1: [255, 0, 0, 128]
                    case 2: [255, 0, 0, 255]
                    default: (x + y / 8 + index * 3) / 8 % 2 == 0 ? [0, 200, 0, 255] : [0, 60, 0, 255]
                    }
                row.replaceSubrange(x * 4..<x * 4 + 4, with: pixel)
            }
            row.withUnsafeBufferPointer { (data + y * stride).update(from: $0.baseAddress!, count: w * 4) }
        }
    }

    /// An 8-bit 4:2:0 picture unlike the moving pattern: black, or a checkerboard of 40-pixel squares at black and
    /// white (informative, but with a histogram of two spikes where the pattern's is flat).
    static func fillOpening8(_ frame: UnsafeMutablePointer<AVFrame>, _ opening: SyntheticClip.Opening) {
        let w = Int(frame.pointee.width), h = Int(frame.pointee.height)
        for y in 0..<h {
            let row = frame.pointee.data.0! + y * Int(frame.pointee.linesize.0)
            for x in 0..<w { row[x] = opening == .black || (x / 40 + y / 40) % 2 == 0 ? 16 : 235 }
        }
        for (plane, stride) in [(frame.pointee.data.1!, Int(frame.pointee.linesize.1)), (frame.pointee.data.2!, Int(frame.pointee.linesize.2))] {
            for y in 0..<((h + 1) / 2) { (plane + y * stride).update(repeating: 128, count: (w + 1) / 2) }
        }
    }

    private static func fillChroma8(_ frame: UnsafeMutablePointer<AVFrame>, index: Int) {
        let w = Int(frame.pointee.width), h = Int(frame.pointee.height)
        let chromaRamp = (0..<(w / 2 + 65)).map { UInt8(128 + $0 % 64) }
        chromaRamp.withUnsafeBufferPointer { source in
            for (plane, stride) in [(frame.pointee.data.1!, Int(frame.pointee.linesize.1)), (frame.pointee.data.2!, Int(frame.pointee.linesize.2))] {
                for y in 0..<((h + 1) / 2) {
                    (plane + y * stride).update(from: source.baseAddress! + ((index - y) & 63), count: (w + 1) / 2)
                }
            }
        }
    }

    /// 10-bit 4:2:0 (yuv420p10le) over the whole code range: in the top half a grey ramp from black (64) to the
    /// brightest code (940) scrolling right, in the bottom half six strongly coloured blocks of middle brightness. As
    /// an HDR signal it spans black to the transfer's peak, so tone mapping has highlights to compress.
    static func fill10(_ frame: UnsafeMutablePointer<AVFrame>, index: Int, flatLevel: Int? = nil) {
        let w = Int(frame.pointee.width), h = Int(frame.pointee.height)
        let cw = (w + 1) / 2, ch = (h + 1) / 2
        let shift = (index * 4) % max(w, 1)
        // Luma codes 64...940 across twice the width, so that the scroll never runs out of ramp.
        let ramp = (0..<(2 * w)).map { UInt16(64 + (876 * ($0 % w)) / max(w - 1, 1)) }
        let blocks: [(y: UInt16, cb: UInt16, cr: UInt16)] = [
            (500, 300, 800), (600, 250, 350), (450, 800, 400), (650, 700, 650), (420, 400, 300), (550, 650, 250),
        ]
        func rows(_ plane: Int) -> (UnsafeMutablePointer<UInt16>, Int) {
            let data = [frame.pointee.data.0, frame.pointee.data.1, frame.pointee.data.2][plane]!
            let stride = Int([frame.pointee.linesize.0, frame.pointee.linesize.1, frame.pointee.linesize.2][plane]) / 2
            return (UnsafeMutableRawPointer(data).assumingMemoryBound(to: UInt16.self), stride)
        }
        let (luma, lumaStride) = rows(0)
        if let flatLevel {
            for y in 0..<h { (luma + y * lumaStride).update(repeating: UInt16(flatLevel), count: w) }
            for plane in 1...2 {
                let (data, stride) = rows(plane)
                for y in 0..<ch { (data + y * stride).update(repeating: 512, count: cw) }
            }
            return
        }
        let blockWidth = max(w / blocks.count, 1)
        var blockRow = [UInt16](repeating: 0, count: w)
        for x in 0..<w { blockRow[x] = blocks[min(x / blockWidth, blocks.count - 1)].y }
        ramp.withUnsafeBufferPointer { source in
            for y in 0..<h {
                let row = luma + y * lumaStride
                if y < h / 2 {
                    row.update(from: source.baseAddress! + (w - shift), count: w)
                } else {
                    blockRow.withUnsafeBufferPointer { row.update(from: $0.baseAddress!, count: w) }
                }
            }
        }
        for (plane, pick) in [(1, \(y: UInt16, cb: UInt16, cr: UInt16).cb), (2, \.cr)] {
            let (data, stride) = rows(plane)
            var colours = [UInt16](repeating: 512, count: cw)
            for x in 0..<cw { colours[x] = blocks[min(2 * x / blockWidth, blocks.count - 1)][keyPath: pick] }
            for y in 0..<ch {
                let row = data + y * stride
                if 2 * y < h / 2 {
                    row.update(repeating: 512, count: cw)
                } else {
                    colours.withUnsafeBufferPointer { row.update(from: $0.baseAddress!, count: cw) }
                }
            }
        }
    }
}
