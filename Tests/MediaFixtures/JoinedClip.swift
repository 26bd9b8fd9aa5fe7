import Foundation
import Transcoding

/// Clips one after the other in one MPEG-TS stream. MPEG-TS is a stream of packets, so one file after another is one
/// stream whose pictures change where the next part begins (size, tags, interlacing), as a broadcast's do at an
/// advert; each part starts with a key frame, so every frame of every part decodes.
public struct JoinedClip: Sendable {
    public var parts: [SyntheticClip]

    public init(_ parts: [SyntheticClip]) {
        self.parts = parts.map { part in
            var part = part
            part.container = "mpegts"
            return part
        }
    }

    /// `parts` parts of `framesEach` frames, silent, cycling through `sizes`.
    public static func cycling(sizes: [(width: Int, height: Int)], parts: Int, framesEach: Int) -> JoinedClip {
        JoinedClip((0..<parts).map { index in
            var part = SyntheticClip()
            (part.width, part.height) = sizes[index % sizes.count]
            part.audioCodec = nil
            part.seconds = Double(framesEach) / Double(part.frameRate)
            return part
        })
    }

    /// Writes the stream to `path`; what each part holds.
    @discardableResult
    public func write(to path: String) throws -> [SyntheticClip.Info] {
        var joined = Data()
        var infos: [SyntheticClip.Info] = []
        let partPath = path + ".part"
        defer { try? FileManager.default.removeItem(atPath: partPath) }
        for part in parts {
            infos.append(try part.write(to: partPath))
            joined += try Data(contentsOf: URL(fileURLWithPath: partPath))
        }
        try joined.write(to: URL(fileURLWithPath: path))
        return infos
    }
}
