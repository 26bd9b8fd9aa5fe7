import CSeccomp
import Glibc

/// The worker's system-call allow-list: what a demux, decode, scale and x264/AAC encode need on descriptors that
/// are already open, plus the socket to the parent. Nothing opens a file, creates a socket, connects, executes a
/// program, traces or signals another process, or creates one; threads stay allowed.
///
/// Measured, not guessed: `make seccomp-measure` (scripts/seccomp-measure.sh) runs the service's templates and
/// their children with the whole sandbox but the filters, attaches `strace -f -c` to each template once it is ready
/// (following every child it forks), and sends them the trial clip, every fixture format (each as is, scaled, and
/// without audio), a 720p clip, HLG and PQ (tone-mapped and kept), an interlaced clip (deinterlaced and not), the
/// animated GIF, 300 fuzz mutants, bad inputs, a cancelled job and a timed-out one. Its table (2026-12-07, glibc
/// 2.36, libav 59; 321 × 200, 34 × 422, 6 × 415): futex, wait4, clone, mprotect, pwrite64, recvmsg, rt_sigprocmask,
/// clone3, mmap, set_robust_list, madvise, rseq, clock_nanosleep, munmap, pread64, brk, sched_getaffinity, sendmsg,
/// newfstatat, close, restart_syscall, prctl, openat, read, gettid, rt_sigaction, dup2, getppid, lseek. Each is
/// below, in the job list or the template's; the few calls added by reading rather than measuring say so, with the
/// reason.
///
/// **What a forbidden call gets.** Most kill the process (SECCOMP_RET_KILL_PROCESS), as in OpenSSH's and Android's
/// media policies: a decoder that makes one is running code nobody wrote for it and must not get a second try. EPERM
/// would let an exploit probe the list call by call and carry on; a kill ends the job at once, and the parent sees
/// SIGSYS, logs it, counts it and starts a fresh process. Some calls answer an error instead, because libraries make
/// them and cope with the refusal:
/// - `openat` gets EACCES, as OpenSSH's filter answers `open`. The measurement caught glibc opening files lazily
///   on libav's behalf: `tzset` reads /etc/localtime when a demuxer formats a creation time, and `iconv_open` loads
///   gconv modules when the MPEG-TS demuxer decodes a DVB service name. Refused, both fall back (UTC; the raw
///   bytes), and the job goes on; killed, a valid MPEG-TS upload would fail.
/// - `sched_setscheduler` and `sched_setaffinity` get EPERM: SVT-AV1 run as root asks real-time priority for its
///   threads, and pins them; it copes with a refusal, and a job's threads must never outrank the service's own.
/// - `clone3` gets ENOSYS: glibc ≥ 2.34 tries it first for every new thread and falls back to `clone` only on
///   ENOSYS, and `clone3` passes its flags in memory, where a filter cannot read them to tell a thread from a
///   process. `clone` passes them in a register, so it is allowed for threads only.
///
/// **Two filters, stacked.** The template (WorkerTemplate.swift) loads `.template` once it is warm: the job list plus
/// what forking and reaping a child takes. Each child it forks inherits that filter and loads `.job` on top before
/// it reads a byte; a call must pass both, so a child can do no more than `.job` allows.
///
/// **W^X.** `mmap` and `mprotect` are allowed only without PROT_EXEC, as OpenSSH's filter masks their protection
/// flags: every library was mapped before either filter, and nothing after needs new code, so memory an exploit
/// writes can never be made executable. A call that asks is killed like any other forbidden call.
public enum SeccompPolicy {
    public enum Kind: Sendable {
        /// The warm template: everything a job needs, plus forking, reaping and confining its children.
        case template
        /// One job's process (and `transcode --sandbox`).
        case job
    }

    /// Allowed whatever their arguments, grouped by why.
    static let allowed: [(why: String, calls: [String])] = [
        ("memory: the heap, libav's frame pools and x264's buffers, thread stacks (madvise frees a finished thread's); "
            + "mmap and mprotect are below, never with PROT_EXEC",
         ["brk", "munmap", "madvise"]),
        ("the job's two descriptors: read with pread, written with pwrite, their size with fstat (glibc's fstat is "
            + "newfstatat with AT_EMPTY_PATH)",
         ["pread64", "pwrite64", "newfstatat", "lseek", "close"]),
        ("stdio: libav's fatal-level log and Swift's crash messages go to stderr",
         ["read", "write"]),
        ("the socket to the parent: a job and its descriptors in, a cancel in, the answer out",
         ["recvmsg", "sendmsg"]),
        ("threads: libav's frame and slice threads and x264's, their locks, per-thread registration",
         ["futex", "set_robust_list", "rseq", "sched_getaffinity", "rt_sigprocmask"]),
        ("transcode --sandbox, measured the same way: glibc installs its thread-cancellation handler when the "
            + "process makes its first thread, which a worker has done before its filter, the CLI after it",
         ["rt_sigaction"]),
        ("x265 and SVT-AV1 (codec=hevc, av1), measured with strace -f on `transcode --sandbox`: libnuma's probe "
            + "(get_mempolicy, read-only) when x265 builds its thread pools; SVT-AV1 asks its own user id",
         ["get_mempolicy", "geteuid"]),
        ("ends: of a thread, and of the process (neither returns, so strace -c cannot count them)",
         ["exit", "exit_group"]),
        ("the kernel's own restart of a sleep or a wait that a stop and continue interrupted (SIGSTOP, a debugger)",
         ["restart_syscall"]),
        ("by reading glibc: realloc of a block above the mmap threshold moves it with mremap; abort() (libav's "
            + "av_assert0) raises SIGABRT with getpid + tgkill, limited to this process below",
         ["mremap", "getpid", "rt_sigreturn"]),
        ("the clock: the vDSO answers these without a system call where the clock source has a fast path; on hosts "
            + "where it has none (some virtual machines' clock sources) glibc makes the real call",
         ["clock_gettime", "clock_getres", "gettimeofday", "time"]),
    ]

    /// What only the template does, beyond the job list: fork each job's process (clone without CLONE_THREAD; its
    /// threads come from the job list's rule), wait for it, kill one that outlives its grace, and what the child
    /// does between the fork and its own filter (move its socket to descriptor 3, PR_SET_PDEATHSIG, getppid,
    /// libseccomp's own probes and load).
    static let templateOnly: [(why: String, calls: [String])] = [
        ("forking and reaping each job's process; the pause between two looks at a child that has a grace to exit",
         ["clone", "wait4", "nanosleep", "clock_nanosleep"]),
        ("abort() in a child before its own filter narrows tgkill to the child's pid (the template's pid is not "
            + "the child's, and a filter cannot name a process that does not exist yet)",
         ["tgkill"]),
        ("the child's first steps, under the template's filter until it loads its own",
         ["dup2", "dup3", "prctl", "seccomp", "getppid", "gettid"]),
    ]

    /// Allowed only with these arguments.
    static func conditionalRules(_ kind: Kind, pid: pid_t) -> [(call: String, why: String, comparisons: [scmp_arg_cmp])] {
        let noExec = UInt64(PROT_EXEC)
        var rules: [(call: String, why: String, comparisons: [scmp_arg_cmp])] = [
            ("mmap", "W^X: never executable", [shim_scmp_masked_eq(2, noExec, 0)]),
            ("mprotect", "W^X: never executable", [shim_scmp_masked_eq(2, noExec, 0)]),
        ]
        if kind == .template {
            rules.append(("kill", "SIGKILL only: to a child that outlives its grace", [shim_scmp_eq(1, UInt64(SIGKILL))]))
        }
        if kind == .job {
            rules.append(("clone", "threads only: CLONE_THREAD set (a new process has it clear)",
                          [shim_scmp_masked_eq(0, shim_clone_thread(), shim_clone_thread())]))
            rules.append(("tgkill", "signals to this process's own threads (abort()); never to another process",
                          [shim_scmp_eq(0, UInt64(pid))]))
        }
        return rules
    }

    /// Denied with an errno instead of the kill, because a library makes them and copes with the answer.
    static let refused: [(call: String, errno: Int32)] = [
        ("openat", EACCES),
        ("open", EACCES),
        ("clone3", ENOSYS),
        // isatty(3), which libav's logger calls when TERM is set, is ioctl(TCGETS): "not a terminal" is true.
        ("ioctl", ENOTTY),
        // SVT-AV1 run as root asks for SCHED_FIFO priority 99 for its threads (glibc applies it with
        // sched_setscheduler in each new thread); refused, pthread_create says EPERM and SVT starts them at normal
        // priority. A job's threads must never outrank the event loop.
        ("sched_setscheduler", EPERM),
        // SVT-AV1 then pins each new thread (here to an empty set, which the kernel would refuse with EINVAL) and
        // goes on whatever the answer: where a job's threads run is the kernel's and the operator's choice.
        ("sched_setaffinity", EPERM),
    ]

    /// Loads the filter into every thread of the process, and so into every thread started from now on.
    static func load(_ kind: Kind) throws(Sandbox.Failure) {
        guard let filter = seccomp_init(shim_scmp_act_kill_process()) else {
            throw Sandbox.Failure(step: "seccomp_init", code: ENOMEM)
        }
        defer { seccomp_release(filter) }
        func number(_ name: String) throws(Sandbox.Failure) -> Int32 {
            let number = seccomp_syscall_resolve_name(name)
            guard number != __NR_SCMP_ERROR else { throw Sandbox.Failure(step: "resolving \(name)", code: EINVAL) }
            return number
        }
        func check(_ status: Int32, _ step: String) throws(Sandbox.Failure) {
            // libseccomp answers -errno itself; nothing here reads errno.
            if status < 0 { throw Sandbox.Failure(step: step, code: -status) }
        }
        for group in allowed + (kind == .template ? templateOnly : []) {
            for call in group.calls {
                try check(seccomp_rule_add_array(filter, shim_scmp_act_allow(), try number(call), 0, nil), call)
            }
        }
        for rule in conditionalRules(kind, pid: getpid()) {
            var comparisons = rule.comparisons
            try check(
                seccomp_rule_add_array(filter, shim_scmp_act_allow(), try number(rule.call), UInt32(comparisons.count),
                                       &comparisons), rule.call)
        }
        for rule in refused {
            try check(seccomp_rule_add_array(filter, shim_scmp_act_errno(rule.errno), try number(rule.call), 0, nil),
                      rule.call)
        }
        // TSYNC: every thread the process has now gets the filter too (the parked job thread; in the CLI, the
        // Dispatch threads beside the caller), or loading fails.
        try check(seccomp_attr_set(filter, SCMP_FLTATR_CTL_TSYNC, 1), "SCMP_FLTATR_CTL_TSYNC")
        try check(seccomp_load(filter), "seccomp_load")
    }
}
