/// Sizes and durations as a person writes them in a flag or an environment variable. One parser for every size
/// flag and every duration flag, so that `--max-body 1GiB` and `JOB_TIMEOUT=10m` mean the same everywhere.
public enum ConfigQuantity {
    /// Bytes from `1GiB`, `512MiB`, `4G`, `1 GiB`, `10MB` or plain `1073741824`; nil if it is none of those, is
    /// negative, or does not fit in 64 bits. `K`, `M`, `G`, `T` alone are powers of 1024, as nginx, systemd and
    /// `ulimit` read them; `KiB`… are too; `kB`, `MB`… are powers of 1000. Letter case does not matter. A fraction
    /// (`1.5GiB`) is rounded down to a whole byte.
    public static func bytes(_ text: String) -> Int64? {
        guard let (number, unit) = split(text) else { return nil }
        let multiplier: Double
        switch unit.lowercased() {
        case "", "b": multiplier = 1
        case "k", "kib": multiplier = 0x1p10
        case "m", "mib": multiplier = 0x1p20
        case "g", "gib": multiplier = 0x1p30
        case "t", "tib": multiplier = 0x1p40
        case "kb": multiplier = 1e3
        case "mb": multiplier = 1e6
        case "gb": multiplier = 1e9
        case "tb": multiplier = 1e12
        default: return nil
        }
        // Plain digits stay exact, past what a Double holds exactly.
        if multiplier == 1, let whole = Int64(number) { return whole }
        guard let value = Double(number) else { return nil }
        let bytes = (value * multiplier).rounded(.down)
        guard bytes < 0x1p63 else { return nil }
        return Int64(bytes)
    }

    /// Seconds from `600s`, `10m`, `1h`, `250ms` or plain `600` (seconds, as before units were accepted); nil if it
    /// is none of those or negative.
    public static func seconds(_ text: String) -> Double? {
        guard let (number, unit) = split(text), let value = Double(number) else { return nil }
        switch unit.lowercased() {
        case "", "s": return value
        case "ms": return value / 1000
        case "m", "min": return value * 60
        case "h": return value * 3600
        default: return nil
        }
    }

    /// "1.5 GiB" as ("1.5", "GiB"): a non-negative decimal number, optional spaces, then letters only.
    private static func split(_ text: String) -> (number: Substring, unit: Substring)? {
        let trimmed = text.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()
        let whole = Substring(String(trimmed))
        let number = whole.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unit = whole.dropFirst(number.count).drop { $0 == " " }
        guard !number.isEmpty, number.first != ".", number.last != ".", number.filter({ $0 == "." }).count <= 1,
            unit.allSatisfy({ $0.isASCII && $0.isLetter })
        else { return nil }
        return (number, unit)
    }
}
