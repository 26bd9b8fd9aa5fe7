import CLinux
import Glibc

/// What a container lets this process use, as opposed to what the node has: the CPU quota and memory limit of its
/// cgroup (v2) and its ancestors, and the CPUs of its affinity mask. A pod limited to 2 CPUs on a 64-core node must
/// not start 64 workers or let libav start dozens of threads each.
public struct ContainerLimits: Sendable, Equatable {
    /// CPUs that the tightest `cpu.max` on the way to the root allows, rounded up; nil when none sets a quota.
    public var quotaCPUs: Int?
    /// CPUs in the affinity mask (`taskset`, cpusets); nil when it could not be read.
    public var affinityCPUs: Int?
    /// CPUs online on the node, the last resort.
    public var onlineCPUs: Int
    /// The tightest `memory.max` on the way to the root; nil when none sets one.
    public var memoryMax: Int64?

    public init(quotaCPUs: Int? = nil, affinityCPUs: Int? = nil, onlineCPUs: Int, memoryMax: Int64? = nil) {
        self.quotaCPUs = quotaCPUs
        self.affinityCPUs = affinityCPUs
        self.onlineCPUs = onlineCPUs
        self.memoryMax = memoryMax
    }

    /// The CPUs this process can keep busy: the smaller of the quota and the affinity mask, at least 1.
    public var cores: Int { max(min(quotaCPUs ?? .max, affinityCPUs ?? onlineCPUs), 1) }

    /// One line for the start-up log: the figures and where each came from.
    public var summary: String {
        "cores=\(cores) (cpu.max: \(quotaCPUs.map(String.init) ?? "none"), affinity: "
            + "\(affinityCPUs.map(String.init) ?? "unknown"), online: \(onlineCPUs)) "
            + "memory.max=\(memoryMax.map(String.init) ?? "none")"
    }

    /// This process's limits. The paths are parameters so that tests can give a made-up cgroup tree.
    public static func current(cgroupRoot: String = "/sys/fs/cgroup", selfCgroup: String = "/proc/self/cgroup")
        -> ContainerLimits
    {
        var limits = ContainerLimits(affinityCPUs: affinityCPUs(), onlineCPUs: max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1))
        guard let membership = try? readSmallFile(atPath: selfCgroup), let path = cgroupPath(selfCgroup: membership)
        else { return limits }
        // A limit anywhere above also holds here (a pod's limit sits on the pod's cgroup, the container's below it),
        // so the tightest one on the way up counts.
        for directory in ancestors(of: path).map({ cgroupRoot + $0 }) {
            if let text = try? readSmallFile(atPath: directory + "/cpu.max"), let cpus = cpus(cpuMax: text) {
                limits.quotaCPUs = min(limits.quotaCPUs ?? .max, cpus)
            }
            if let text = try? readSmallFile(atPath: directory + "/memory.max"), let bytes = bytes(memoryMax: text) {
                limits.memoryMax = min(limits.memoryMax ?? .max, bytes)
            }
        }
        return limits
    }

    /// CPUs that a cgroup v2 `cpu.max` ("QUOTA PERIOD", microseconds) allows: the quota over the period, rounded up
    /// (1.5 CPUs keep 2 threads busy part of the time), at least 1; nil for "max" (no quota) or text that is not
    /// `cpu.max`'s.
    public static func cpus(cpuMax text: String) -> Int? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, let quota = Int64(fields[0]), let period = Int64(fields[1]), quota > 0, period > 0
        else { return nil }
        return Int(max((quota + period - 1) / period, 1))
    }

    /// Bytes that a cgroup v2 `memory.max` allows; nil for "max" or text that is not a number.
    public static func bytes(memoryMax text: String) -> Int64? {
        Int64(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first ?? "").flatMap { $0 > 0 ? $0 : nil }
    }

    /// The cgroup v2 path ("/kubepods/pod1/c1") from `/proc/self/cgroup`: its "0::" line; nil without one (cgroup v1).
    public static func cgroupPath(selfCgroup text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            let path = line.dropFirst(3)
            return path.hasPrefix("/") ? String(path) : nil
        }
        return nil
    }

    /// "/a/b" → ["/a/b", "/a", ""]: each cgroup from this one up to the root (the mount point itself).
    static func ancestors(of path: String) -> [String] {
        var parts = path.split(separator: "/").map(String.init)
        var paths: [String] = []
        while !parts.isEmpty {
            paths.append("/" + parts.joined(separator: "/"))
            parts.removeLast()
        }
        return paths + [""]
    }

    /// CPUs in this process's affinity mask.
    static func affinityCPUs() -> Int? {
        // More than 1024 CPUs (cpu_set_t's size) answers EINVAL: the online count stands in then.
        guard let count = try? syscallValue("sched_getaffinity", { clinux_affinity_cpus() }), count > 0 else { return nil }
        return Int(count)
    }
}
