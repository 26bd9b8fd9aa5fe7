import CLinux
import Glibc
import SystemSupport

/// Something the loop watches: a descriptor with an interest set and at most one deadline.
/// Only the loop thread touches it.
class Selectable {
    let descriptor: Int32
    /// Tokens are never reused, so an event for an already closed descriptor cannot reach its successor.
    fileprivate(set) var token: UInt64 = 0
    fileprivate var interest: EpollEvents = []
    fileprivate(set) var isRegistered = false
    /// When `deadlineReached` is due; nil means no timer.
    var deadline: UInt64?
    /// The deadline of this object's entry in the loop's heap (at most one live entry per object).
    fileprivate var scheduledAt: UInt64?

    init(descriptor: Int32) { self.descriptor = descriptor }

    func handle(_ events: EpollEvents) {}
    func deadlineReached() {}
}

/// One thread running `epoll_wait`: it serves its selectables, runs tasks enqueued from other threads (woken by an
/// eventfd) and fires deadlines from a min-heap.
final class EventLoop: @unchecked Sendable {
    private let epoll: Epoll
    private let wakeFD: Int32
    private var selectables: [UInt64: Selectable] = [:]
    private var nextToken: UInt64 = 1
    private var timers = TimerHeap()
    private var running = true
    private var thread: pthread_t?
    /// The monotonic clock as of this turn of the loop, read once after each `epoll_wait` rather than per request,
    /// as nginx does: deadlines are seconds long, so a turn's few microseconds do not matter. Every deadline and
    /// body pace on this loop counts in it.
    private(set) var now = monotonicNanos()

    private struct Pending {
        var tasks: [() -> Void] = []
        var exited = false
    }
    private let pending = Locked(Pending())

    /// Reused for every socket read on this loop; connections copy out only what they keep.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    let dateCache = DateCache()
    /// This loop's idle connections, which the listener may close to stay under the connection limit.
    var reusable = ReusableConnections()
    /// Where this loop's request bodies are written to their files, so that the loop itself never waits on a disk.
    let fileWriter: FileWriter

    init() throws(IOError) {
        epoll = try Epoll()
        fileWriter = FileWriter(name: "http-file-writer")
        wakeFD = try syscallValue("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        do {
            try epoll.add(wakeFD, .read, token: 0)
        } catch {
            closeDescriptor(wakeFD)
            throw error
        }
    }

    deinit {
        readBuffer.deallocate()
        closeDescriptor(wakeFD)
        fileWriter.close()
    }

    // MARK: From any thread

    /// Runs `task` on the loop thread. Once the loop has exited, runs it inline so that whatever it owns (a file
    /// descriptor in a late response) is still released.
    func execute(_ task: @escaping @Sendable () -> Void) {
        let (runInline, wake) = pending.withLock { state -> (Bool, Bool) in
            if state.exited { return (true, false) }
            state.tasks.append(task)
            return (false, state.tasks.count == 1)
        }
        if runInline { task(); return }
        if wake { signalWake() }
    }

    private func signalWake() {
        var one: UInt64 = 1
        _ = try? syscall("write") { Glibc.write(wakeFD, &one, 8) }
    }

    func start(name: String) throws(IOError) {
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let loop = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
            loop.run()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw IOError(call: "pthread_create", errno: Errno(rawValue: rc))
        }
        thread = tid
        _ = clinux_set_thread_name(tid, String(name.prefix(15)))
    }

    /// Asks the loop to run `finalTask` and exit, then waits for its thread.
    func stopAndJoin(_ finalTask: @escaping @Sendable () -> Void) {
        guard thread != nil else {
            // Never started (start() failed part-way): nothing runs the queue, so run the task here.
            finalTask()
            return
        }
        execute { [self] in
            finalTask()
            running = false
        }
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    /// Like `stopAndJoin`, for a caller on this loop's own thread; the thread is detached instead of joined.
    func stopWithoutJoin(_ finalTask: @escaping @Sendable () -> Void) {
        execute { [self] in
            finalTask()
            running = false
        }
        if let thread { pthread_detach(thread) }
        thread = nil
    }

    // MARK: Loop thread only

    var isOnLoop: Bool {
        guard let thread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    func register(_ selectable: Selectable, interest: EpollEvents) throws(IOError) {
        let token = nextToken
        nextToken += 1
        try epoll.add(selectable.descriptor, interest, token: token)
        selectable.token = token
        selectable.interest = interest
        selectable.isRegistered = true
        selectables[token] = selectable
    }

    func setInterest(_ selectable: Selectable, _ interest: EpollEvents) {
        guard selectable.isRegistered, selectable.interest != interest else { return }
        // MOD only fails if the descriptor is gone, and then the owner is already closing it.
        try? epoll.modify(selectable.descriptor, interest, token: selectable.token)
        selectable.interest = interest
    }

    /// Stops epoll reporting on the descriptor but keeps the object (and its deadline) registered.
    /// (EPOLLEXCLUSIVE registrations cannot be modified, only removed and added again.)
    func suspendWatching(_ selectable: Selectable) {
        guard selectable.isRegistered else { return }
        epoll.remove(selectable.descriptor)
    }

    func resumeWatching(_ selectable: Selectable, _ interest: EpollEvents) {
        guard selectable.isRegistered else { return }
        try? epoll.add(selectable.descriptor, interest, token: selectable.token)
        selectable.interest = interest
    }

    func deregister(_ selectable: Selectable) {
        guard selectable.isRegistered else { return }
        epoll.remove(selectable.descriptor)
        selectables[selectable.token] = nil
        selectable.isRegistered = false
        selectable.deadline = nil
    }

    /// Sets or clears the object's deadline. Moving a deadline later costs nothing now: the stale heap entry is
    /// re-pushed when it comes due. Only an earlier deadline pushes a new entry.
    func setDeadline(_ selectable: Selectable, after nanos: UInt64?) {
        guard let nanos else { selectable.deadline = nil; return }
        let due = now &+ nanos
        selectable.deadline = due
        if let scheduled = selectable.scheduledAt, scheduled <= due { return }
        selectable.scheduledAt = due
        timers.push(TimerEntry(due: due, token: selectable.token))
    }

    var allSelectables: [Selectable] { Array(selectables.values) }

    private func run() {
        while running {
            let timeout = nextTimeoutMillis()
            let count: Int
            do {
                count = try epoll.wait(timeoutMillis: timeout)
            } catch {
                // epoll_wait fails only on programming errors (EBADF/EINVAL); spinning would hide them.
                fatalError("\(error)")
            }
            now = monotonicNanos()
            for index in 0..<count {
                let (token, events) = epoll.ready(index)
                if token == 0 {
                    drainWake()
                } else if let selectable = selectables[token] {
                    selectable.handle(events)
                }
            }
            runPendingTasks()
            fireTimers()
        }
        // Tasks enqueued from now on run inline in `execute`; run the ones that raced with the exit.
        let leftovers = pending.withLock { state -> [() -> Void] in
            state.exited = true
            defer { state.tasks = [] }
            return state.tasks
        }
        for task in leftovers { task() }
        selectables.removeAll()
    }

    private func drainWake() {
        var value: UInt64 = 0
        _ = try? syscall("read") { Glibc.read(wakeFD, &value, 8) }
    }

    private func runPendingTasks() {
        let tasks = pending.withLock { state -> [() -> Void] in
            defer { state.tasks.removeAll(keepingCapacity: true) }
            return state.tasks
        }
        for task in tasks { task() }
    }

    private func nextTimeoutMillis() -> Int32 {
        if pending.withLock({ !$0.tasks.isEmpty }) { return 0 }
        guard let first = timers.first else { return -1 }
        let now = monotonicNanos()
        if first.due <= now { return 0 }
        let millis = (first.due - now + 999_999) / 1_000_000
        return Int32(min(millis, 60_000))
    }

    private func fireTimers() {
        guard timers.first != nil else { return }
        while let entry = timers.first, entry.due <= now {
            timers.pop()
            guard let selectable = selectables[entry.token], selectable.scheduledAt == entry.due else { continue }
            selectable.scheduledAt = nil
            guard let deadline = selectable.deadline else { continue }
            if deadline <= now {
                selectable.deadline = nil
                selectable.deadlineReached()
            } else {
                selectable.scheduledAt = deadline
                timers.push(TimerEntry(due: deadline, token: entry.token))
            }
        }
    }
}

struct TimerEntry {
    var due: UInt64
    var token: UInt64
}

/// A binary min-heap on `due`.
struct TimerHeap {
    private var storage: [TimerEntry] = []

    var first: TimerEntry? { storage.first }

    mutating func push(_ entry: TimerEntry) {
        storage.append(entry)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard storage[child].due < storage[parent].due else { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() {
        guard !storage.isEmpty else { return }
        storage.swapAt(0, storage.count - 1)
        storage.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < storage.count, storage[left].due < storage[smallest].due { smallest = left }
            if right < storage.count, storage[right].due < storage[smallest].due { smallest = right }
            if smallest == parent { return }
            storage.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
