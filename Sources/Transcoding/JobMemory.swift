import CFFmpeg
import CLinux
import Glibc
import SystemSupport

/// How the process's allocator treats the memory of finished jobs, and what a failed allocation means.
public enum JobMemory {
    /// By default glibc hands a freed block above its mmap threshold (dynamic, from 128 KiB) straight back to the
    /// kernel and trims the heap's top past 128 KiB, so every transcode faults its x264 and decoder buffers in
    /// afresh: on the trial clip that was 2,300 page faults and about a third of each job's CPU time. Keeping up to
    /// 32 MiB per arena for the next job cuts it to about 70 faults (16 MiB would do for that clip, 8 MiB would
    /// not); what a large job frees beyond that still goes back. Process-wide, so the executables call it once at
    /// start; the library never does on its own.
    public static func keepFreedMemoryForNextJob() {
        // 32 MiB is glibc's ceiling for the mmap threshold on 64-bit.
        clinux_malloc_thresholds(32 << 20, 32 << 20)
    }

    /// Says that this process runs (or is about to run) under an address-space limit (RLIMIT_AS) of `bytes`, so
    /// that a failed allocation is reported as the job needing more memory than allowed (413) rather than as an
    /// internal error (500). Declared by whoever sets the limit, before it confines the process: the sandbox's
    /// seccomp filter forbids getrlimit, so the engine cannot ask once it runs.
    public static func declareAddressSpaceLimit(_ bytes: Int64?) {
        addressSpaceLimit.withLock { $0 = bytes }
    }

    private static let addressSpaceLimit = Locked<Int64?>(nil)

    /// The declared address-space limit, nil when none.
    public static var declaredLimit: Int64? { addressSpaceLimit.withLock { $0 } }

    /// Whether libav's failure `code` means that the job ran out of the address space it is allowed. ENOMEM says
    /// so; libx264 (and other external encoders) answer AVERROR_EXTERNAL whatever failed, and with our validated
    /// settings the only thing that can fail is an allocation. Without a declared limit neither is the input's
    /// doing: the machine is short of memory, or a library is broken, and the caller reports it as such.
    static func isExhausted(_ code: Int32, underLimit: Bool = declaredLimit != nil) -> Bool {
        underLimit && (code == shim_averror(ENOMEM) || code == shim_averror_external())
    }
}
