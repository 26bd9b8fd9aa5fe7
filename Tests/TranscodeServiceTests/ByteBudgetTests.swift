import Foundation
import Glibc
import TestSupport
import Testing

/// `--queue-bytes` bounds the upload bytes held at once. A Content-Length upload reserves its size at admission; a
/// chunked one declared none, so its bytes count as they arrive.
@Suite("the byte budget counts chunked uploads too")
struct ByteBudgetTests {
    static let mebibyte = 1 << 20

    /// The head and one chunk of `size` bytes of filler; the last chunk too when `finished`.
    static func chunkedUpload(_ target: String, size: Int, finished: Bool) -> [UInt8] {
        Array("POST \(target) HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\(String(size, radix: 16))\r\n".utf8)
            + [UInt8](repeating: 0x78, count: size) + Array((finished ? "\r\n0\r\n\r\n" : "").utf8)
    }

    /// Sizes of the files this process holds open in `folder` (the service's anonymous temp files).
    static func openFileSizes(under folder: String) -> [Int64] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return entries.compactMap { entry in
            let link = "/proc/self/fd/" + entry
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link), target.hasPrefix(folder)
            else { return nil }
            var info = stat()
            return stat(link, &info) == 0 ? Int64(info.st_size) : nil
        }
    }

    @Test("a chunked upload past the budget gets 503 + Retry-After; the bytes come back and the file is gone")
    func chunkedPastTheBudget() async throws {
        try await onThread {
            let running = try RunningService(workers: 1, queue: 8) { $0.queueBytes = Int64(3 * Self.mebibyte) }
            defer { running.stop() }
            // A holds 2.5 MiB of the 3 MiB budget, its body not finished.
            let holder = try TestClient(port: running.port, receiveTimeoutSeconds: 30)
            try holder.send(Self.chunkedUpload("/holder", size: 5 * Self.mebibyte / 2, finished: false))
            #expect(waitUntil(10) { Self.openFileSizes(under: running.scratch.url.path).contains(Int64(5 * Self.mebibyte / 2)) })

            // B's whole 1 MiB body would fit in an empty budget, not beside A's.
            let late = try TestClient(port: running.port)
            try late.send(Self.chunkedUpload("/late", size: Self.mebibyte, finished: true))
            let refused = try late.readResponse()
            #expect(refused.status == 503)
            #expect(Int(refused.header("Retry-After") ?? "") ?? 0 >= 1)
            #expect(late.isClosedByPeer(), "the rest of a refused body is never read")

            // A finishes (its filler is no video); then the budget is whole again and no file is left.
            try holder.send("\r\n0\r\n\r\n")
            #expect(try holder.readResponse().status == 415)
            #expect(try running.wait(seconds: 10) { $0["queued"] as? Int == 0 && $0["running"] as? Int == 0 })
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
            let again = try TestClient(port: running.port)
            try again.send(Self.chunkedUpload("/again", size: 5 * Self.mebibyte / 2, finished: true))
            #expect(try again.readResponse().status == 415, "the refused and the finished uploads gave their bytes back")
        }
    }

    @Test("a chunked upload past --max-body gets 413, and its bytes come back to the budget")
    func chunkedPastMaxBody() async throws {
        try await onThread {
            let running = try RunningService(workers: 1, queue: 8) {
                $0.maxBody = Int64(Self.mebibyte)
                $0.queueBytes = Int64(3 * Self.mebibyte / 2)
            }
            defer { running.stop() }
            let big = try TestClient(port: running.port)
            try big.send(Self.chunkedUpload("/big", size: 5 * Self.mebibyte / 4, finished: true))
            #expect(try big.readResponse().status == 413)
            #expect(try running.wait(seconds: 10) { $0["queued"] as? Int == 0 })
            #expect(running.tempFilesClosed(), "\(running.openTempFiles)")
            // Were the 413's bytes still held, 900 KiB more would not fit in 1.5 MiB.
            let next = try TestClient(port: running.port)
            try next.send(Self.chunkedUpload("/next", size: 900 << 10, finished: true))
            #expect(try next.readResponse().status == 415)
        }
    }
}
