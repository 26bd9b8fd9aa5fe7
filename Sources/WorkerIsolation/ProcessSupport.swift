import Glibc
import SystemSupport

/// The OOM killer's count for this service's cgroup (v2 `memory.events`, v1 `memory.oom_control`): a SIGKILL that
/// came while it grew was the kernel's.
struct OOMKillCounter {
    private let path: String?

    /// `path`: the file to read; by default the one of this process's cgroup.
    init(path: String? = OOMKillCounter.locate()) {
        self.path = path
    }

    func count() -> Int? {
        guard let path, let text = try? readSmallFile(atPath: path) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.dropFirst("oom_kill ".count))
        }
        return nil
    }

    /// v2's `memory.events` or v1's `memory.oom_control` of the cgroup `/proc/self/cgroup` names (`groups`), under
    /// `root`; nil where neither can be read (no cgroup memory controller, or not mounted).
    static func locate(groups: String? = try? readSmallFile(atPath: "/proc/self/cgroup"), root: String = "/sys/fs/cgroup") -> String? {
        guard let groups else { return nil }
        for line in groups.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let group = fields[2] == "/" ? "" : String(fields[2])
            let candidates = fields[0] == "0"
                ? ["\(root)\(group)/memory.events", "\(root)/memory.events"]
                : fields[1].split(separator: ",").contains("memory")
                    ? ["\(root)/memory\(group)/memory.oom_control", "\(root)/memory/memory.oom_control"] : []
            if let found = candidates.first(where: { (try? readSmallFile(atPath: $0)) != nil }) { return found }
        }
        return nil
    }
}

/// Sends `signal` to `pid`; a process already gone (ESRCH) is what the caller wanted anyway.
func signalProcess(_ pid: pid_t, _ signal: Int32) {
    _ = try? syscallValue("kill") { kill(pid, signal) }
}

/// A NULL-terminated array of C strings that lives for the call.
func withCStrings<T>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
