import Glibc

/// `count` bytes from the kernel's random source (/dev/urandom, the same pool as getrandom(2), which Glibc's module
/// does not export to Swift): for identifiers that are capabilities, such as an async job's id.
public func randomBytes(_ count: Int) throws(IOError) -> [UInt8] {
    let source = OwnedDescriptor(taking: try syscallValue("open") { open("/dev/urandom", O_RDONLY | O_CLOEXEC) })
    var bytes = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
        let got = try syscallValue("read") {
            bytes.withUnsafeMutableBytes { read(source.rawValue, $0.baseAddress! + filled, count - filled) }
        }
        guard got > 0 else { throw IOError(call: "read", errno: .ioError) }
        filled += got
    }
    return bytes
}
