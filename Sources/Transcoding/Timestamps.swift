import CFFmpeg

/// Timestamps beyond ±2^48 ticks are damage, not time (2^48 ticks of 1/90000 s is 99 years); treating them as
/// missing keeps every sum and difference of two timestamps far from overflow.
let timestampBound: Int64 = 1 << 48

/// The timestamp if it is present and plausible, else nil.
func saneTimestamp(_ value: Int64) -> Int64? {
    value == shim_nopts_value() || value > timestampBound || value < -timestampBound ? nil : value
}

/// A duration clamped into 0...timestampBound.
func saneDuration(_ value: Int64) -> Int64 { min(max(value, 0), timestampBound) }
