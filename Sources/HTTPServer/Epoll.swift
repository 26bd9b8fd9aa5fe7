import CLinux
import Glibc
import SystemSupport

/// epoll's bit flags, translated once so the loop speaks in `.read` / `.write` / `.readHangup`.
struct EpollEvents: OptionSet, Hashable {
    let rawValue: UInt32

    static let read = EpollEvents(rawValue: clinux_epollin())
    static let write = EpollEvents(rawValue: clinux_epollout())
    /// The peer shut down its sending side (FIN); reported even when `.read` is not requested.
    static let readHangup = EpollEvents(rawValue: clinux_epollrdhup())
    static let hangup = EpollEvents(rawValue: clinux_epollhup())
    static let error = EpollEvents(rawValue: clinux_epollerr())
    /// Several loops may watch one listener; the kernel wakes only one of them per connection.
    static let exclusive = EpollEvents(rawValue: clinux_epollexclusive())
}

/// An epoll instance that owns its descriptor and a reusable event array.
final class Epoll {
    private let fd: Int32
    private let events: UnsafeMutableRawPointer
    private let capacity: Int

    init(capacity: Int = 256) throws(IOError) {
        fd = try syscallValue("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        self.capacity = capacity
        events = UnsafeMutableRawPointer.allocate(
            byteCount: clinux_epoll_event_size() * capacity, alignment: 8)
    }

    deinit {
        events.deallocate()
        closeDescriptor(fd)
    }

    func add(_ descriptor: Int32, _ interest: EpollEvents, token: UInt64) throws(IOError) {
        try control(EPOLL_CTL_ADD, descriptor, interest, token)
    }

    func modify(_ descriptor: Int32, _ interest: EpollEvents, token: UInt64) throws(IOError) {
        try control(EPOLL_CTL_MOD, descriptor, interest, token)
    }

    func remove(_ descriptor: Int32) {
        var event = epoll_event()
        // ENOENT (never added, or already gone) is no failure: the caller only wants no more events from it.
        _ = try? syscallValue("epoll_ctl") { epoll_ctl(fd, EPOLL_CTL_DEL, descriptor, &event) }
    }

    private func control(_ op: Int32, _ descriptor: Int32, _ interest: EpollEvents, _ token: UInt64) throws(IOError) {
        var event = epoll_event()
        clinux_epoll_event_set(&event, interest.rawValue, token)
        _ = try syscallValue("epoll_ctl") { epoll_ctl(fd, op, descriptor, &event) }
    }

    /// Waits up to `timeoutMillis` (-1: forever) and returns how many events are ready; read them with `ready(_:)`.
    func wait(timeoutMillis: Int32) throws(IOError) -> Int {
        let raw = events.assumingMemoryBound(to: epoll_event.self)
        switch try syscall("epoll_wait", { epoll_wait(fd, raw, Int32(capacity), timeoutMillis) }) {
        case .processed(let n): return Int(n)
        case .wouldBlock: return 0
        }
    }

    /// The token and events of the `index`th ready event of the last `wait`.
    func ready(_ index: Int) -> (token: UInt64, events: EpollEvents) {
        let event = (events + index * clinux_epoll_event_size()).assumingMemoryBound(to: epoll_event.self)
        return (clinux_epoll_event_data(event), EpollEvents(rawValue: clinux_epoll_event_events(event)))
    }
}
