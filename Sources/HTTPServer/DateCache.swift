import Glibc

/// The `Date` field line, formatted once a second rather than per response. Loop-confined.
final class DateCache {
    private var second: Int = -1
    private(set) var fieldLine: [UInt8] = []

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n` (RFC 9110 IMF-fixdate).
    func current() -> [UInt8] {
        let now = time(nil)
        if now != second {
            second = now
            fieldLine = Array("Date: \(Self.format(now))\r\n".utf8)
        }
        return fieldLine
    }

    static func format(_ seconds: Int) -> String {
        var t = seconds
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(1900 + parts.tm_year) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
