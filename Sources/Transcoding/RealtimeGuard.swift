import CLinux

/// SVT-AV1 run as root gives every thread it starts SCHED_FIFO priority 99, which on a small machine starves
/// everything else, the service's event loop included. Before it starts them, the encoding thread gives up
/// CAP_SYS_NICE (threads inherit the loss), so that the request fails with EPERM and SVT carries on at normal
/// priority. The worker processes' seccomp filter refuses the call already and has no capset on its list, so a
/// confined process skips this.
package enum RealtimeGuard {
    /// False once the process is confined (`Sandbox.confine`).
    nonisolated(unsafe) package static var isNeeded = true

    static func dropForThisThread() {
        guard isNeeded else { return }
        // Failure leaves the thread as it was: no worse than without the guard.
        _ = clinux_drop_sys_nice_this_thread()
    }
}
