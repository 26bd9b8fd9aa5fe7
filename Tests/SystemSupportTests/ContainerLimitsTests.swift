import Foundation
import Glibc
@testable import SystemSupport
import Testing
import TestSupport

@Suite("what the container allows: cgroup v2 cpu.max and memory.max, the affinity mask")
struct ContainerLimitsTests {
    @Test("cpu.max's quota over its period, rounded up, at least 1; none for max or text that is not cpu.max's",
          arguments: [
            ("max 100000\n", nil), ("200000 100000\n", 2), ("150000 100000", 2), ("100000 100000\n", 1),
            ("50000 100000\n", 1), ("1000 100000\n", 1), ("6400000 100000\n", 64), ("max\n", nil), ("", nil),
            ("lots 100000", nil), ("200000 0", nil), ("200000 100000 7", nil),
          ] as [(String, Int?)])
    func cpuMax(text: String, cpus: Int?) {
        #expect(ContainerLimits.cpus(cpuMax: text) == cpus)
    }

    @Test("memory.max in bytes; none for max", arguments: [
        ("max\n", nil), ("2684354560\n", 2_684_354_560), ("1073741824", 1 << 30), ("", nil), ("0\n", nil), ("-1", nil),
    ] as [(String, Int64?)])
    func memoryMax(text: String, bytes: Int64?) {
        #expect(ContainerLimits.bytes(memoryMax: text) == bytes)
    }

    @Test("the cgroup v2 path is the 0:: line of /proc/self/cgroup", arguments: [
        ("0::/kubepods.slice/pod1/cri-c1\n", "/kubepods.slice/pod1/cri-c1"), ("0::/\n", "/"),
        ("12:cpu,cpuacct:/docker/c1\n11:memory:/docker/c1\n", nil), ("1:name=systemd:/x\n0::/y\n", "/y"), ("", nil),
    ] as [(String, String?)])
    func cgroupPath(text: String, path: String?) {
        #expect(ContainerLimits.cgroupPath(selfCgroup: text) == path)
    }

    @Test("cores: the smaller of the quota and the affinity mask, the online count without either, at least 1",
          arguments: [
            (2, 64, 64, 2), (nil, 3, 64, 3), (8, 3, 64, 3), (nil, nil, 5, 5), (4, nil, 64, 4), (nil, nil, 0, 1),
          ] as [(Int?, Int?, Int, Int)])
    func cores(quota: Int?, affinity: Int?, online: Int, cores: Int) {
        #expect(ContainerLimits(quotaCPUs: quota, affinityCPUs: affinity, onlineCPUs: online).cores == cores)
    }

    /// A made-up cgroup tree: `files` by path under the root, and the process's membership.
    static func tree(_ files: [String: String], membership: String) throws -> (Scratch, ContainerLimits) {
        let scratch = try Scratch()
        let root = scratch.path("cgroup")
        for (path, text) in files {
            let url = URL(fileURLWithPath: root + path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: false, encoding: .utf8)
        }
        try membership.write(toFile: scratch.path("self-cgroup"), atomically: false, encoding: .utf8)
        return (scratch, ContainerLimits.current(cgroupRoot: root, selfCgroup: scratch.path("self-cgroup")))
    }

    @Test("the tightest limit from the process's cgroup up to the root counts: a pod's limit holds for its containers")
    func readsTheTree() throws {
        let (_, limits) = try Self.tree([
            "/pod/cpu.max": "150000 100000\n", "/pod/memory.max": "max\n",
            "/pod/c1/cpu.max": "max 100000\n", "/pod/c1/memory.max": "1073741824\n",
            "/memory.max": "4294967296\n",
        ], membership: "0::/pod/c1\n")
        #expect(limits.quotaCPUs == 2)
        #expect(limits.memoryMax == 1 << 30)
        #expect(limits.cores == min(2, limits.affinityCPUs ?? limits.onlineCPUs))
        #expect(limits.summary.contains("cpu.max: 2") && limits.summary.contains("memory.max=1073741824"), "\(limits.summary)")
    }

    @Test("no cgroup files (cgroup v1, or none mounted): no quota, no memory limit, the affinity mask's cores")
    func noFiles() throws {
        let (_, limits) = try Self.tree([:], membership: "0::/somewhere\n")
        #expect(limits.quotaCPUs == nil && limits.memoryMax == nil)
        let affinity = try #require(limits.affinityCPUs)
        #expect(affinity >= 1 && affinity <= limits.onlineCPUs)
        #expect(limits.cores == affinity)
    }
}
