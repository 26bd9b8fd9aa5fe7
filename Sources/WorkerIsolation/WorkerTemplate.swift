import CLinux
import Glibc
import SystemSupport
import Transcoding

/// The warm template (`ffmpeg-processor worker`, started by a pool thread), as Chromium's and Android's zygotes:
/// libav loaded and relocated, the sandbox's limits and its own filter in force, and never a byte of a job read.
/// For each job the pool thread asks it for a fresh process; it forks one (WorkerChild.swift), which confines
/// itself further, takes that one job and exits. The template also waits for its children, since only a parent
/// can, and tells the pool thread how each ended.
///
/// Single-threaded by design: fork copies only the calling thread, so a template with others could hand a child a
/// lock that no thread of the child will ever release.
public enum WorkerTemplate {
    public static func run(parent: pid_t, jobMemory: Int64?) -> Never {
        // Dies with the pool thread that started it (PDEATHSIG follows the thread, and each pool thread owns its
        // template). If that thread ended before the prctl, the parent is already someone else.
        _ = try? syscallValue("prctl") { clinux_set_parent_death_signal(SIGKILL) }
        if getppid() != parent { _exit(0) }
        // Ctrl-C in a terminal reaches the whole process group; the service drains on it, so neither the template
        // nor a child running a job may die of it. Writes to a gone parent answer EPIPE. Children inherit all three.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        JobMemory.keepFreedMemoryForNextJob()
        let faults = WorkerFaults.fromEnvironment()
        let channel = WorkerChannel(descriptor: WorkerChild.socketDescriptor)
        // Before the filter (memfd_create is not on it) and before the first fork: every child starts warm. A
        // failure costs only speed.
        do { try Warmup.run() } catch { printToStandardError("worker template \(getpid()): warm-up failed: \(error)") }
        do {
            try Sandbox.confine(Sandbox.Limits(addressSpace: jobMemory), policy: faults.unconfined ? nil : .template)
            try channel.send(.ready)
        } catch {
            printToStandardError("worker template \(getpid()): \(error)")
            _exit(70)
        }
        let template = getpid()
        var children = Set<pid_t>()
        while true {
            // The pool thread closing its end (the service is stopping) ends the process, and its children with it.
            let (message, descriptors) = channel.receiveOrExit("worker template")
            let answer: WorkerMessage
            switch message {
            case .spawn where descriptors.count == 1:
                let pid: pid_t
                do {
                    pid = try syscallValue("fork") { clinux_fork() }
                } catch {
                    closeDescriptor(descriptors[0])
                    answer = .spawnFailed(errno: error.errno.rawValue)
                    break
                }
                if pid == 0 { WorkerChild.run(socket: descriptors[0], template: template, faults: faults, jobMemory: jobMemory) }
                closeDescriptor(descriptors[0])
                children.insert(pid)
                answer = .spawned(pid: pid)
            case .reap(let pid, let grace) where descriptors.isEmpty && children.contains(pid):
                children.remove(pid)
                answer = .reaped(pid: pid, status: reapWithinGrace(pid, milliseconds: grace))
            default:
                printToStandardError("worker template \(getpid()): unexpected message \(message) with \(descriptors.count) descriptors")
                _exit(71)
            }
            do {
                try channel.send(answer)
            } catch {
                _exit(0)
            }
        }
    }

    /// The wait status of a child once it has exited: waited for up to `milliseconds`, then killed and waited for.
    private static func reapWithinGrace(_ pid: pid_t, milliseconds: UInt32) -> Int32 {
        let deadline = monotonicNanos() + UInt64(milliseconds) * 1_000_000
        var status: Int32 = 0
        while true {
            let reaped = (try? syscallValue("waitpid") { waitpid(pid, &status, WNOHANG) }) ?? -1
            if reaped == pid { return status }
            if reaped < 0 { return -1 }
            if monotonicNanos() > deadline { break }
            usleep(1_000)
        }
        _ = try? syscallValue("kill") { kill(pid, SIGKILL) }
        return (try? syscallValue("waitpid") { waitpid(pid, &status, 0) }) == pid ? status : -1
    }
}
