import Glibc
import SystemSupport
import Testing
import TestSupport

@Suite("file status through the syscall wrapper")
struct FileStatusTests {
    @Test("fileSize(of:) is what was written; a missing path is a typed error naming stat")
    func sizes() throws {
        let scratch = try Scratch()
        let file = try OwnedDescriptor.anonymousFile(in: scratch.url.path)
        #expect(try fileSize(of: file.rawValue) == 0)
        let bytes = [UInt8](repeating: 7, count: 12345)
        #expect(bytes.withUnsafeBytes { writeAll($0, to: file.rawValue) } == nil)
        #expect(try fileSize(of: file.rawValue) == 12345)
        #expect(try fileStatus(atPath: scratch.url.path).isDirectory)
        #expect { try fileStatus(atPath: scratch.path("missing")) } throws: { error in
            (error as? IOError).map { $0.call == "stat" && $0.errno == .noSuchFileOrDirectory } ?? false
        }
    }
}
