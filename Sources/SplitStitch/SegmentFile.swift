import Glibc
import SystemSupport

/// An anonymous temp file for one segment's cut or answer: no name, gone with its descriptor, even if the process
/// is killed. Shared between the coordinator's tasks, which use it one after the other.
final class SegmentFile: Sendable {
    let descriptor: Int32

    init(directory: String) throws(IOError) {
        descriptor = try OwnedDescriptor.anonymousFile(in: directory).release()
    }

    deinit { closeDescriptor(descriptor) }

    var size: Int64 {
        var info = stat()
        return fstat(descriptor, &info) == 0 ? Int64(info.st_size) : 0
    }
}
