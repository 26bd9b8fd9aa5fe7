import Glibc

/// fstat(2) of `descriptor`, through the one syscall wrapper.
public func fileStatus(of descriptor: Int32) throws(IOError) -> stat {
    var info = stat()
    _ = try syscallValue("fstat") { fstat(descriptor, &info) }
    return info
}

/// stat(2) of `path`, through the one syscall wrapper.
public func fileStatus(atPath path: String) throws(IOError) -> stat {
    var info = stat()
    _ = try syscallValue("stat") { stat(path, &info) }
    return info
}

/// The size of the file open on `descriptor`: what libav wrote through a descriptor of its own, or an upload's.
public func fileSize(of descriptor: Int32) throws(IOError) -> Int64 {
    Int64(try fileStatus(of: descriptor).st_size)
}

extension stat {
    public var isDirectory: Bool { st_mode & S_IFMT == S_IFDIR }
}

/// The whole of a small text file (a /proc or /sys entry), read through the syscall wrapper; at most `limit` bytes.
public func readSmallFile(atPath path: String, limit: Int = 64 << 10) throws(IOError) -> String {
    let file = OwnedDescriptor(taking: try syscallValue("open") { open(path, O_RDONLY | O_CLOEXEC) })
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let wanted = min(chunk.count, limit - bytes.count)
        let count = try syscallValue("read") { chunk.withUnsafeMutableBytes { read(file.rawValue, $0.baseAddress, wanted) } }
        if count == 0 { break }
        bytes += chunk[..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
