import Foundation
import Glibc
import TestSupport
import Testing

@Suite("a full temp directory")
struct DiskFullTests {
    @Test("an upload larger than the free space: 507, nothing left behind, the next request works",
          .enabled(if: getuid() == 0, "mounting a small tmpfs needs root"))
    func diskFull() async throws {
        try await onThread {
            var mounted: Int32 = -1
            let running = try RunningService(workers: 1) { config in
                // A 2 MiB tmpfs inside the service's own scratch folder becomes its temp directory.
                config.tmpDir += "/small"
                try? FileManager.default.createDirectory(atPath: config.tmpDir, withIntermediateDirectories: true)
                mounted = mount("tmpfs", config.tmpDir, "tmpfs", 0, "size=2m")
            }
            defer { running.stop() }
            let folder = running.scratch.path("small")
            guard mounted == 0 else {
                Issue.record("mounting a tmpfs failed")
                return
            }
            defer { umount2(folder, Int32(MNT_DETACH)) }

            let tooBig = [UInt8](repeating: 0x47, count: 3 << 20)
            let response = try running.post("/huge", body: tooBig)
            #expect(response.status == 507, "\(response.text)")
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
            // Polled: a worker process being started at this moment (another test's) holds a copy of this
            // process's descriptors for the instant between its creation and its exec.
            var usage = statvfs()
            _ = waitUntil(5) { statvfs(folder, &usage) == 0 && usage.f_bfree == usage.f_blocks }
            #expect(statvfs(folder, &usage) == 0)
            #expect(usage.f_bfree == usage.f_blocks, "the tmpfs is empty again")

            let next = try running.post("/after", body: Clips.small.bytes)
            #expect(next.status == 200, "\(next.text)")
        }
    }
}
