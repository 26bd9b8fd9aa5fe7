import Glibc
import SystemSupport

/// A file with no name, for a response body: it vanishes when closed or when the process dies, so a thousand answers
/// never pile up on disk after a crash.
final class AnonymousFile {
    private let file: OwnedDescriptor
    var fd: Int32 { file.rawValue }

    init(directory: String) throws(HarnessError) {
        do { file = try OwnedDescriptor.anonymousFile(in: directory) } catch {
            throw HarnessError("cannot create a temp file in \(directory): \(error.errno)")
        }
    }

    /// Writes all of `bytes`; a full disk is an error the caller reports, not a short write.
    func write(_ bytes: ArraySlice<UInt8>) throws(HarnessError) {
        let failure: Errno? = bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                do throws(IOError) {
                    offset += try syscallValue("write") { Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
                } catch {
                    return error.errno
                }
            }
            return nil
        }
        if let failure { throw HarnessError("writing a response body: \(failure)") }
    }

    /// The first `limit` bytes written, read back (a small body such as an event stream).
    func contents(limit: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: limit)
        let n = (try? syscallValue("pread") { bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, limit, 0) } }) ?? 0
        return Array(bytes.prefix(max(n, 0)))
    }

    static var defaultDirectory: String {
        getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    }
}
