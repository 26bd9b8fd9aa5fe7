import Glibc

/// A value only reachable under a lock, with the API of `Synchronization.Mutex`.
///
/// Why not `Mutex`: on Linux a contended `Mutex` is acquired inside the standard library (a spin, then a
/// priority-inheritance futex), which is not instrumented, so ThreadSanitizer never sees that acquisition and reported
/// the accesses it guards as data races. TSan intercepts `pthread_mutex_lock`, so with this lock it sees every
/// hand-over and reports only real races. Uncontended, both cost one atomic instruction to lock and one to unlock.
public final class Locked<Value>: @unchecked Sendable {
    // Both live on the heap: a pthread mutex must never move, and the value is reached through a pointer (as inside
    // Mutex) so that the lock, not a runtime exclusivity check, is what guards it.
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline let value: UnsafeMutablePointer<Value>

    public init(_ initialValue: sending Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock. The lock is not recursive: `body` must not take it again.
    @inlinable
    public func withLock<Result, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        let rc = pthread_mutex_lock(mutex)
        precondition(rc == 0, "pthread_mutex_lock failed: \(rc)")
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
