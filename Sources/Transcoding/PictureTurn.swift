import CFFmpeg

/// A display rotation turned into pixels, for a container that cannot carry the rotation itself: this libav's
/// Matroska muxer writes no display matrix, so a phone's portrait video would play on its side in WebM.
enum PictureTurn: Int, Equatable {
    case clockwise = 90, half = 180, counterclockwise = 270

    /// The turn the ffmpeg CLI's autorotation makes for `stream`'s display matrix (nil: none, or not a quarter turn).
    init?(_ stream: UnsafeMutablePointer<AVStream>) {
        var size = 0
        guard let matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size), size >= 36 else { return nil }
        let degrees = matrix.withMemoryRebound(to: Int32.self, capacity: 9) { av_display_rotation_get($0) }
        guard degrees.isFinite else { return nil }
        // The matrix says how far the picture is turned counter-clockwise; showing it upright turns it back.
        var theta = (-degrees).truncatingRemainder(dividingBy: 360)
        if theta < 0 { theta += 360 }
        let quarter = (theta / 90).rounded()
        guard abs(theta - quarter * 90) < 1 else { return nil }
        self.init(rawValue: Int(quarter.truncatingRemainder(dividingBy: 4)) * 90)
    }

    /// Width and height trade places.
    var swapsSides: Bool { self != .half }

    /// The filters, as the CLI's autorotation chooses them.
    var filters: String {
        switch self {
        case .clockwise: "transpose=clock"
        case .half: "hflip,vflip"
        case .counterclockwise: "transpose=cclock"
        }
    }
}
