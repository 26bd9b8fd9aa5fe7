import Foundation
import TestSupport
import Testing
@testable import WorkerIsolation

/// The OOM killer's count, which tells a kill by the kernel from an operator's SIGKILL: found through
/// /proc/self/cgroup under cgroup v2 and v1, and read from either file's format.
@Suite("the OOM killer's count of the service's cgroup")
struct OOMKillCounterTests {
    @Test("cgroup v2: memory.events of the group /proc/self/cgroup names")
    func version2() throws {
        let root = try Scratch()
        try FileManager.default.createDirectory(atPath: root.path("pods/web"), withIntermediateDirectories: true)
        try "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n"
            .write(toFile: root.path("pods/web/memory.events"), atomically: true, encoding: .utf8)
        let path = OOMKillCounter.locate(groups: "0::/pods/web\n", root: root.url.path)
        #expect(path == root.path("pods/web/memory.events"))
        #expect(OOMKillCounter(path: path).count() == 2)
    }

    @Test("cgroup v1: memory.oom_control under the memory controller's mount")
    func version1() throws {
        let root = try Scratch()
        try FileManager.default.createDirectory(atPath: root.path("memory/job"), withIntermediateDirectories: true)
        try "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"
            .write(toFile: root.path("memory/job/memory.oom_control"), atomically: true, encoding: .utf8)
        let groups = "9:name=systemd:/\n4:memory:/job\n1:cpu,cpuacct:/\n"
        let path = OOMKillCounter.locate(groups: groups, root: root.url.path)
        #expect(path == root.path("memory/job/memory.oom_control"))
        #expect(OOMKillCounter(path: path).count() == 7)
    }

    @Test("no memory controller, or no file: no count, and a SIGKILL is then never blamed on the OOM killer")
    func absent() throws {
        let root = try Scratch()
        #expect(OOMKillCounter.locate(groups: "0::/\n", root: root.url.path) == nil)
        #expect(OOMKillCounter.locate(groups: "3:cpu:/x\n", root: root.url.path) == nil)
        #expect(OOMKillCounter(path: nil).count() == nil)
    }
}
