import Foundation

/// Where a file's index sits, read from its bytes: a browser can seek before it has the whole file only when the
/// index comes before the media (MP4's moov before mdat, WebM's Cues before the first Cluster).
public enum ContainerLayout {
    /// The top-level MP4 boxes in file order.
    public static func mp4Boxes(_ path: String) throws -> [String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var boxes: [String] = []
        var offset = 0
        while offset + 8 <= data.count {
            var size = data[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            let type = String(decoding: data[offset + 4..<offset + 8], as: UTF8.self)
            if size == 1, offset + 16 <= data.count { size = data[offset + 8..<offset + 16].reduce(0) { $0 << 8 | Int($1) } }
            if size == 0 { size = data.count - offset }
            guard size >= 8 else { break }
            boxes.append(type)
            offset += size
        }
        return boxes
    }

    /// The Segment's children in file order, by name (SeekHead, Info, Tracks, Cues, Cluster, Void, ...), read as
    /// EBML: each element an ID and a size, both variable-length.
    public static func webmSegmentElements(_ path: String) throws -> [String] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var offset = 0
        /// A variable-length integer; `keepMarker` for IDs, which are compared with their length bits.
        func vint(keepMarker: Bool) -> UInt64? {
            guard offset < bytes.count, bytes[offset] != 0 else { return nil }
            let length = bytes[offset].leadingZeroBitCount + 1
            guard offset + length <= bytes.count else { return nil }
            var value = UInt64(keepMarker ? bytes[offset] : bytes[offset] & (0xff >> length))
            for byte in bytes[offset + 1..<offset + length] { value = value << 8 | UInt64(byte) }
            offset += length
            return value
        }
        let names: [UInt64: String] = [
            0x114D_9B74: "SeekHead", 0x1549_A966: "Info", 0x1654_AE6B: "Tracks", 0x1C53_BB6B: "Cues",
            0x1F43_B675: "Cluster", 0xEC: "Void", 0x1254_C367: "Tags", 0x1043_A770: "Chapters", 0xBF: "CRC-32",
        ]
        // The EBML header, then the Segment, whose children are what we list.
        guard vint(keepMarker: true) == 0x1A45_DFA3, let headerSize = vint(keepMarker: false) else { return [] }
        offset += Int(headerSize)
        guard vint(keepMarker: true) == 0x1853_8067, vint(keepMarker: false) != nil else { return [] }
        var elements: [String] = []
        while offset < bytes.count, let id = vint(keepMarker: true), let size = vint(keepMarker: false) {
            elements.append(names[id] ?? String(id, radix: 16))
            guard size < UInt64(bytes.count - offset + 1) else { break }
            offset += Int(size)
        }
        return elements
    }

    /// Whether the index precedes the media: moov before mdat, or Cues before the first Cluster.
    public static func indexFirst(_ path: String) throws -> Bool {
        if path.hasSuffix(".webm") {
            let elements = try webmSegmentElements(path)
            guard let cues = elements.firstIndex(of: "Cues"), let cluster = elements.firstIndex(of: "Cluster") else { return false }
            return cues < cluster
        }
        let boxes = try mp4Boxes(path)
        guard let moov = boxes.firstIndex(of: "moov"), let mdat = boxes.firstIndex(of: "mdat") else { return false }
        return moov < mdat
    }
}
