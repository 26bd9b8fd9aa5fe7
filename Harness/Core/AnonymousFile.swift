import CLinux
import Glibc

/// A file with no name, for a response body: it vanishes when closed or when the process dies, so a thousand answers
/// never pile up on disk after a crash.
final class AnonymousFile {
    let fd: Int32

    init(directory: String) throws(HarnessError) {
        var fd = open(directory, clinux_o_tmpfile() | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 {
            // Filesystems without O_TMPFILE: a named file unlinked at once.
            var template = Array((directory + "/harness-XXXXXX").utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            if fd >= 0 {
                template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        guard fd >= 0 else { throw HarnessError("cannot create a temp file in \(directory): \(String(cString: strerror(errno)))") }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Writes all of `bytes`; a full disk is an error the caller reports, not a short write.
    func write(_ bytes: ArraySlice<UInt8>) throws(HarnessError) {
        let failure: Int32 = bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += n
            }
            return 0
        }
        if failure != 0 { throw HarnessError("writing a response body: \(String(cString: strerror(failure)))") }
    }

    static var defaultDirectory: String {
        getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    }
}
