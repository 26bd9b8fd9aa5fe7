import Testing
import TranscodeService

@Suite("sizes and durations in flags and environment variables take units")
struct ConfigQuantityTests {
    static let sizes: [(String, Int64)] = [
        ("1073741824", 1 << 30), ("0", 0), ("1GiB", 1 << 30), ("512MiB", 512 << 20), ("4G", 4 << 30),
        ("1G", 1 << 30), ("1g", 1 << 30), ("1 GiB", 1 << 30), ("64K", 64 << 10), ("2KiB", 2048), ("1T", 1 << 40),
        ("10MB", 10_000_000), ("1kB", 1000), ("1GB", 1_000_000_000), ("100B", 100), ("1.5GiB", 3 << 29),
        (" 8GiB ", 8 << 30), ("9223372036854775807", Int64.max),
    ]

    @Test("a size", arguments: sizes)
    func size(text: String, bytes: Int64) {
        #expect(ConfigQuantity.bytes(text) == bytes)
    }

    @Test("not a size", arguments: [
        "", "GiB", "-1", "-1GiB", "1XB", "1 G B", "1GiBs", ".5G", "1.", "1..5G", "0x10", "1e9", "1,000", "9223372036854775808",
        "10000000000T", "1s", "١٢",
    ])
    func notSize(text: String) {
        #expect(ConfigQuantity.bytes(text) == nil)
    }

    static let durations: [(String, Double)] = [
        ("600", 600), ("600s", 600), ("10m", 600), ("10min", 600), ("1h", 3600), ("250ms", 0.25), ("0", 0),
        ("2.5", 2.5), ("1.5m", 90), (" 5 s", 5), ("10M", 600),
    ]

    @Test("a duration", arguments: durations)
    func duration(text: String, seconds: Double) {
        #expect(ConfigQuantity.seconds(text) == seconds)
    }

    @Test("not a duration", arguments: ["", "s", "-5", "-5s", "10 minutes", "5d", "1GiB", "1:30", "inf", "nan", "1e3"])
    func notDuration(text: String) {
        #expect(ConfigQuantity.seconds(text) == nil)
    }
}
