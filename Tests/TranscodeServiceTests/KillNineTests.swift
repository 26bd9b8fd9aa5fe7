import Foundation
import Glibc
import SystemSupport
import TestSupport
import Testing

/// What `kill -9` could leave of a service's temp files, checked where it would show. The folder being empty proves
/// nothing on its own: anonymous files never have a name, not even while the service holds them.
@Suite("the real binary killed with -9")
struct KillNineTests {
    static let bigUpload = 64 << 20

    @Test("kill -9 with jobs running, queued and uploading: no descriptor into the temp folder survives, its space comes back, no name is left")
    func killNine() async throws {
        try await onThread {
            let scratch = try Scratch()
            let folder = try ServiceTempFolder(scratch.url.path)
            let (process, port) = try launchService(tmpDir: folder.path, wrapper: folder.wrapper)
            defer { if process.isRunning { process.terminate() } }
            guard port > 0 else { return }
            let pid = process.processIdentifier
            try folder.open(asSeenBy: pid)
            if folder.isPrivate { #expect(folder.isTmpfs(asSeenBy: pid), "the service's temp folder is not its own tmpfs") }
            let freeBefore = try folder.freeBytes()

            // One job running and one queued (both uploaded), and two large uploads still in progress.
            let jobs = [try startSlowUpload(port: port), try startSlowUpload(port: port)]
            var uploads: [TestClient] = []
            for id in ["big-1", "big-2"] {
                let client = try TestClient(port: port)
                try client.send("POST /\(id) HTTP/1.1\r\nHost: t\r\nContent-Length: \(Self.bigUpload + 1)\r\n\r\n")
                try client.send([UInt8](repeating: 0x5A, count: Self.bigUpload))
                uploads.append(client)
            }
            #expect(try waitForAbout(port: port) { $0.contains("\"running\":1") && $0.contains("\"queued\":3") },
                    "one job running, one queued and two uploading before the kill")
            let uploaded = Int64(2 * Clips.slow.count + 2 * Self.bigUpload)
            #expect(waitUntil(30) { (try? freeBefore - folder.freeBytes()) ?? 0 >= Int64(2 * Self.bigUpload) },
                    "the uploads never took the temp folder's space")
            let freeAtKill = try folder.freeBytes()
            if folder.isPrivate {
                // Nothing else writes there: the drop is the uploads, plus the running job's output and page rounding.
                #expect(freeBefore - freeAtKill <= uploaded + (16 << 20), "\(freeBefore - freeAtKill) bytes held")
            }
            let held = descriptorsInto(folder.path)
            #expect(held.count >= 4, "an input file for each admitted upload: \(held)")
            // The service's, or a job's process (a running job's two files are in the child its template forked for
            // it under --isolation process, the service's grandchild).
            #expect(held.allSatisfy { ($0.pid == pid || parent(of: $0.pid).flatMap(parent(of:)) == pid) && $0.target.hasSuffix(" (deleted)") },
                    "\(held)")
            #expect(try folder.entries().isEmpty, "even while held, the files have no name")

            kill(pid, SIGKILL)
            // Not Process.waitUntilExit(): it also waits for the end of the service's stderr, which a process that
            // inherited it would hold open, and the check below would then come too late to see that process.
            #expect(waitUntil(10) { hasExited(pid) }, "the service outlived kill -9")
            _ = (jobs, uploads)

            // A job's process dies of the service's death too (PR_SET_PDEATHSIG), a moment after it: the template's
            // signal comes when the kernel tears down the pool thread that started it, the child's with the template.
            _ = waitUntil(10) { descriptorsInto(folder.path).isEmpty }
            let left = descriptorsInto(folder.path)
            #expect(left.isEmpty, "descriptors into the temp folder after the kill: \(left)")
            // On the service's own tmpfs all of it comes back; on a shared filesystem, at least the large uploads.
            let owed = folder.isPrivate ? freeBefore - freeAtKill - (1 << 20) : Int64(2 * Self.bigUpload - (32 << 20))
            let returned = waitUntil(10) { (try? folder.freeBytes() - freeAtKill) ?? 0 >= owed }
            let back = try folder.freeBytes() - freeAtKill
            #expect(returned, "\(back) of the \(freeBefore - freeAtKill) bytes held came back")
            #expect(try folder.entries().isEmpty, "names left in the temp folder (the unlinked-name fallback?)")
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
        }
    }
}

/// The folder the killed service keeps its temp files in. Where unprivileged user namespaces allow it, a tmpfs
/// mounted for the service alone (`unshare` gives it a mount namespace of its own), so that the folder's free space
/// moves with the service's files and nothing else; elsewhere the scratch folder itself, on a filesystem that other
/// programs write to as well.
final class ServiceTempFolder {
    let path: String
    /// Prefix of the service's command line.
    let wrapper: [String]
    /// True when the folder is a tmpfs of the service's own.
    let isPrivate: Bool
    /// The folder as the service sees it, held open so that it outlives the service (and its mount namespace).
    private var descriptor: Int32 = -1

    init(_ path: String) throws {
        self.path = path
        let namespace = ["--user", "--map-root-user", "--mount", "--", "/bin/sh", "-c"]
        if let unshare = which("unshare"),
            try run(unshare, namespace + ["mount -t tmpfs fp-probe \"$0\"", path]).status == 0
        {
            wrapper = [unshare] + namespace + ["mount -t tmpfs -o size=512m,mode=0700 fp-temp \"$0\" && exec \"$@\"", path]
            isPrivate = true
        } else {
            wrapper = []
            isPrivate = false
        }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Opens the folder: through the service's own root (/proc/PID/root) when it has a mount of its own.
    func open(asSeenBy pid: pid_t) throws {
        let seen = isPrivate ? "/proc/\(pid)/root\(path)" : path
        descriptor = try syscallValue("open") { Glibc.open(seen, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    }

    /// True when `pid`'s mount table has a tmpfs mounted on the folder.
    func isTmpfs(asSeenBy pid: pid_t) -> Bool {
        // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS"
        let table = (try? String(contentsOfFile: "/proc/\(pid)/mountinfo", encoding: .utf8)) ?? ""
        return table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4] == path, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count
            else { return false }
            return fields[dash + 1] == "tmpfs"
        }
    }

    /// Bytes an unprivileged writer could still put on the folder's filesystem.
    func freeBytes() throws -> Int64 {
        var info = statvfs()
        _ = try syscallValue("fstatvfs") { fstatvfs(descriptor, &info) }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// Every name in the folder, hidden ones included.
    func entries() throws -> [String] {
        let copy = try syscallValue("dup") { dup(descriptor) }
        guard let directory = fdopendir(copy) else {
            close(copy)
            throw IOError(call: "fdopendir", errno: .badFileDescriptor)
        }
        defer { closedir(directory) }
        // The copy shares the original's offset, which an earlier listing left at the end.
        rewinddir(directory)
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// Every descriptor of every process on the machine this test may inspect (/proc/*/fd) that points into `folder`.
func descriptorsInto(_ folder: String) -> [(pid: Int32, target: String)] {
    let files = FileManager.default
    let processes = ((try? files.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
    return processes.flatMap { pid -> [(pid: Int32, target: String)] in
        let entries = (try? files.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return entries.compactMap { entry in
            guard let target = try? files.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(entry)"),
                target.hasPrefix(folder + "/")
            else { return nil }
            return (pid, target)
        }
    }
}

/// The parent's process id (field 4 of /proc/<pid>/stat), nil once `pid` is gone.
func parent(of pid: Int32) -> Int32? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return fields.count > 1 ? Int32(fields[1]) : nil
}

/// True once `pid` has ended: gone, or a zombie waiting to be reaped (its descriptors are closed by then).
func hasExited(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return true }
    return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
}
