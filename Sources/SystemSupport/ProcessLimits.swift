import Glibc

/// Lifts the soft RLIMIT_NOFILE to the hard one, as nginx's worker_rlimit_nofile or Go's runtime do: the soft limit
/// (often 1024) exists for old select() users, and a server of ten thousand connections (or a load generator with
/// as many clients) needs more. Process-wide, so executables call it once at start. Returns the limit now in force.
@discardableResult
public func raiseDescriptorLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
    if limit.rlim_cur < limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
    }
    return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
}
