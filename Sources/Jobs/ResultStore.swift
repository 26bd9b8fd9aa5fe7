import Glibc
import SystemSupport

/// Async jobs' results: the service's one kind of named file, `<secret>.mp4` in `--results-dir`. A result is written
/// as `<secret>.part` and renamed once complete, so a listed `.mp4` is always whole. Whatever an earlier run left
/// is removed at start: a result lives as long as the replica that made it.
public final class ResultStore: Sendable {
    public let directory: String
    /// `--result-bytes`: once the kept results reach it, new async jobs are refused before their upload is read.
    public let budget: Int64
    private let used = Locked<Int64>(0)

    /// Empties the folder of what an earlier run left. The folder itself is made with the first result, so that a
    /// replica that never takes an async job leaves nothing in its temp directory.
    public init(directory: String, budget: Int64) {
        self.directory = directory
        self.budget = budget
        sweep()
    }

    /// Bytes of the results kept now.
    public var usedBytes: Int64 { used.withLock { $0 } }

    /// True when no new async job may start: the kept results fill the budget.
    public var isFull: Bool { usedBytes >= budget }

    /// A new, empty `<secret>.part`, for a worker to write the result into.
    public func create(_ secret: String) throws(IOError) -> OwnedDescriptor {
        do {
            _ = try syscallValue("mkdir") { mkdir(directory, 0o700) }
        } catch where error.errno == .fileExists {
            // Made by an earlier job.
        }
        return OwnedDescriptor(taking: try syscallValue("open") {
            Glibc.open(path(secret, ".part"), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        })
    }

    /// The result is complete: `<secret>.part` becomes `<secret>.mp4`, and its bytes count against the budget.
    public func commit(_ secret: String, bytes: Int64) throws(IOError) {
        _ = try syscallValue("rename") { rename(path(secret, ".part"), path(secret, ".mp4")) }
        used.withLock { $0 += bytes }
    }

    /// Drops an unfinished result.
    public func discard(_ secret: String) { unlink(path(secret, ".part")) }

    /// Deletes a committed result of `bytes` bytes.
    public func remove(_ secret: String, bytes: Int64) {
        if unlink(path(secret, ".mp4")) == 0 { used.withLock { $0 -= bytes } }
    }

    /// The committed result, opened for reading; nil if it is gone.
    public func open(_ secret: String) -> OwnedDescriptor? {
        let descriptor = try? syscallValue("open") { Glibc.open(path(secret, ".mp4"), O_RDONLY | O_CLOEXEC) }
        return descriptor.map { OwnedDescriptor(taking: $0) }
    }

    private func path(_ secret: String, _ suffix: String) -> String { directory + "/" + secret + suffix }

    /// Removes every `.mp4` and `.part` file in the folder (nothing else: the folder may be shared by mistake).
    private func sweep() {
        guard let folder = opendir(directory) else { return }
        defer { closedir(folder) }
        while let entry = readdir(folder) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasSuffix(".mp4") || name.hasSuffix(".part") else { continue }
            unlink(directory + "/" + name)
        }
    }
}
