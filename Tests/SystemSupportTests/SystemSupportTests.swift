import Foundation
import Glibc
import SystemSupport
import Testing
import TestSupport

@Suite("The syscall wrapper")
struct SyscallTests {
    @Test("EINTR is retried until the call completes")
    func retriesInterrupts() throws {
        var attempts = 0
        let result = try syscallValue("fake") { () -> Int32 in
            attempts += 1
            if attempts < 3 {
                errno = EINTR
                return -1
            }
            return 42
        }
        #expect(result == 42)
        #expect(attempts == 3)
    }

    @Test("EAGAIN is .wouldBlock, not an error; syscallValue turns it into one")
    func wouldBlock() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        #expect(fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0)
        defer { close(fds[0]); close(fds[1]) }
        var byte: UInt8 = 0
        let result = try syscall("read") { read(fds[0], &byte, 1) }
        guard case .wouldBlock = result else {
            Issue.record("an empty non-blocking pipe read \(result), not .wouldBlock")
            return
        }
        #expect(throws: IOError.self) { try syscallValue("read") { read(fds[0], &byte, 1) } }
    }

    @Test("other failures throw the call's name and the named errno")
    func namedFailure() {
        do {
            _ = try syscallValue("open") { open("/nonexistent/file", O_RDONLY) }
            Issue.record("opening a missing file succeeded")
        } catch {
            #expect(error.call == "open")
            #expect(error.errno == .noSuchFileOrDirectory)
            #expect(!error.errno.isDiskFull)
        }
        #expect(Errno.noSpace.isDiskFull && Errno.diskQuotaExceeded.isDiskFull)
    }
}

@Suite("Descriptor ownership")
struct OwnedDescriptorTests {
    private static func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

    @Test("an owned descriptor is closed when its owner ends, and not after release()")
    func closesOnDrop() throws {
        let scratch = try Scratch()
        var raw: Int32 = -1
        do {
            let file = try OwnedDescriptor.anonymousFile(in: scratch.url.path)
            raw = file.rawValue
            #expect(Self.isOpen(raw))
        }
        #expect(!Self.isOpen(raw))

        let released = try OwnedDescriptor.anonymousFile(in: scratch.url.path).release()
        #expect(Self.isOpen(released))
        close(released)
    }

    @Test("an anonymous file has no name in its folder, by O_TMPFILE or by the unlinked-name fallback",
          arguments: [OwnedDescriptor.AnonymousMethod.tmpfile, .unlinkedName])
    func anonymousFilesHaveNoName(method: OwnedDescriptor.AnonymousMethod) throws {
        let scratch = try Scratch()
        let file = try OwnedDescriptor.anonymousFile(in: scratch.url.path, method: method)
        let written = [UInt8](repeating: 7, count: 4096)
        #expect(write(file.rawValue, written, written.count) == written.count)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty)
        #expect(fcntl(file.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        var info = stat()
        #expect(fstat(file.rawValue, &info) == 0)
        #expect(info.st_nlink == 0, "the file still has a link")
        #expect(info.st_size == 4096)
    }

    @Test("an anonymous file in a missing folder is a typed error")
    func missingFolder() {
        #expect(throws: IOError.self) { _ = try OwnedDescriptor.anonymousFile(in: "/nonexistent/folder") }
    }
}

@Suite("Locked")
struct LockedTests {
    @Test("increments from many threads all land")
    func noLostUpdates() async {
        let counter = Locked(0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask { for _ in 0..<10_000 { counter.withLock { $0 += 1 } } }
            }
        }
        #expect(counter.withLock { $0 } == 80_000)
    }
}
