import CLinux
import Glibc
import SystemSupport

/// Brings a process's libav to the state its first job would leave it in: every table libav, x264 and the filters
/// build lazily on first use is built, and the allocator holds the memory a small job frees. The worker template
/// runs it once, before it forks any job's process, so that each child starts from that state (shared, copy on
/// write) instead of paying for it again; it reads no byte of any upload, only `WarmupClip`.
public enum Warmup {
    /// One transcode of `WarmupClip` with the default encoder settings on one thread (a template must have no thread
    /// left when it forks), scaled down, between two files in memory. Its report says which stages ran.
    @discardableResult
    public static func run() throws(TranscodeError) -> TranscodeReport {
        let input = try memoryFile("warmup-input")
        let output = try memoryFile("warmup-output")
        let written = WarmupClip.bytes.withUnsafeBytes { writeAll($0, to: input.rawValue) }
        if let written { throw .io(written) }
        var options = TranscodeOptions()
        options.threads = 1
        // A height below the clip's: the filter graph scales, as most jobs' graphs do.
        options.maxHeight = 32
        return try transcode(input: .fileDescriptor(input.rawValue), output: .fileDescriptor(output.rawValue), options: options)
    }

    private static func memoryFile(_ name: String) throws(TranscodeError) -> OwnedDescriptor {
        do {
            return OwnedDescriptor(taking: try syscallValue("memfd_create") { clinux_memfd(name) })
        } catch {
            throw .io(error.errno)
        }
    }
}
