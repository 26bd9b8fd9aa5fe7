import CLinux
import Glibc
import Transcoding
import SystemSupport

/// What a worker process does to itself before it reads its first job, and what `transcode --sandbox` does before
/// it decodes anything: no core files, bounded memory and descriptors, no way back to privileges, and the
/// system-call allow-list of `SeccompPolicy`. Each step only takes away; none can be undone by the process later.
public enum Sandbox {
    public struct Limits: Sendable, Equatable {
        /// RLIMIT_AS in bytes: every mapping past it fails, so libav's allocations answer ENOMEM. nil: unchanged.
        public var addressSpace: Int64?
        /// RLIMIT_NOFILE: the highest descriptor number plus one. A worker holds stdio, its socket and one job's two
        /// files, or a split pass's segments beside them (at most `SegmentPlan.maximumSegments`); a decoder has no
        /// business with more. The filter lets the job open nothing, so the room gives it no file it was not sent.
        public var descriptors: Int

        public static let defaultDescriptors = 16 + SegmentPlan.maximumSegments

        public init(addressSpace: Int64?, descriptors: Int = defaultDescriptors) {
            self.addressSpace = addressSpace
            self.descriptors = descriptors
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let step: String
        public let code: Int32
        public var description: String { "sandbox: \(step) failed (\(Errno(rawValue: code)))" }
    }

    /// Confines the calling process for good: the limits are the process's, and the filter is loaded into every
    /// thread it has (TSYNC) and inherited by every thread it starts. PR_SET_NO_NEW_PRIVS is per thread: the
    /// kernel sets it on the threads TSYNC reaches.
    /// `policy: nil` leaves the filter out (the measurement run that derives it; debug builds only).
    public static func confine(_ limits: Limits, policy: SeccompPolicy.Kind? = .job) throws(Failure) {
        try setLimit(RLIMIT_CORE, 0, "RLIMIT_CORE")
        if let bytes = limits.addressSpace { try setLimit(RLIMIT_AS, rlim_t(bytes), "RLIMIT_AS") }
        try setLimit(RLIMIT_NOFILE, rlim_t(limits.descriptors), "RLIMIT_NOFILE")
        do {
            _ = try syscallValue("prctl") { clinux_set_no_new_privileges() }
        } catch {
            throw Failure(step: "PR_SET_NO_NEW_PRIVS", code: error.errno.rawValue)
        }
        if let policy {
            try SeccompPolicy.load(policy)
            // The filter refuses real-time priority itself, and would kill the capset the guard makes.
            RealtimeGuard.isNeeded = false
        }
    }

    private static func setLimit(_ resource: __rlimit_resource, _ value: rlim_t, _ name: String) throws(Failure) {
        var limit = rlimit(rlim_cur: value, rlim_max: value)
        do {
            _ = try syscallValue("setrlimit") { setrlimit(Int32(resource.rawValue), &limit) }
        } catch {
            throw Failure(step: name, code: error.errno.rawValue)
        }
    }
}
