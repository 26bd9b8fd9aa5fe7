import CLinux

/// How the process's allocator treats the memory of finished jobs.
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
}
