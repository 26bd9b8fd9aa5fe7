import CFFmpeg

/// The versions of the libav libraries this process runs with, for `/about` and reports.
public enum LibavVersions {
    public static var all: [String: String] {
        [
            "libavformat": render(avformat_version()),
            "libavcodec": render(avcodec_version()),
            "libavutil": render(avutil_version()),
            "libswscale": render(swscale_version()),
            "libswresample": render(swresample_version()),
            "libavfilter": render(avfilter_version()),
        ]
    }

    private static func render(_ v: UInt32) -> String { "\(v >> 16).\((v >> 8) & 0xff).\(v & 0xff)" }
}
