import CLinux
import Dispatch
import Glibc
import SystemSupport

/// Where request bodies meet the disk: a thread of its own, so that a slow or throttled disk (dirty-page throttling
/// under several large uploads) stalls only the uploads waiting on it, never the event loop, `/about` included.
/// nginx moves the same work to its thread pools (`aio threads`). One per loop; jobs run in the order they were
/// submitted, which keeps a body's pieces in order.
///
/// A thread rather than a DispatchQueue: a queue's jobs run on Dispatch's shared worker threads, the ones Swift's
/// tasks run on here too, and a write stuck on the disk would hold one of them.
final class FileWriter: Sendable {
    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        var closed = false
    }
    private let queue = Locked(Queue())
    private let ready = DispatchSemaphore(value: 0)

    init(name: String) {
        let thread = Unmanaged.passRetained(Worker(writer: self, name: name))
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            Unmanaged<Worker>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, thread.toOpaque())
        precondition(rc == 0, "pthread_create for the file writer: \(rc)")
        pthread_detach(tid)
    }

    /// Runs `job` on the writer's thread, after every job submitted before it.
    func submit(_ job: @escaping @Sendable () -> Void) {
        queue.withLock { $0.jobs.append(job) }
        ready.signal()
    }

    /// Lets the thread end once the jobs already submitted are done.
    func close() {
        queue.withLock { $0.closed = true }
        ready.signal()
    }

    private final class Worker {
        let writer: FileWriter
        let name: String
        init(writer: FileWriter, name: String) { (self.writer, self.name) = (writer, name) }

        func run() {
            _ = clinux_set_thread_name(pthread_self(), String(name.prefix(15)))
            while true {
                writer.ready.wait()
                let job = writer.queue.withLock { queue -> (@Sendable () -> Void)? in
                    queue.jobs.isEmpty ? nil : queue.jobs.removeFirst()
                }
                if let job {
                    job()
                } else if writer.queue.withLock({ $0.closed && $0.jobs.isEmpty }) {
                    return
                }
            }
        }
    }

    /// Writes all of `bytes` to `descriptor` from the writer's queue; the errno of a failure, or nil.
    func write(_ bytes: [UInt8], to descriptor: Int32) async -> Errno? {
        await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: bytes.withUnsafeBytes { writeAll($0, to: descriptor) }) }
        }
    }

    /// Moves `count` bytes, already in `pipe`, into `file`: by splice where the file takes it, else through a buffer.
    /// Blocking is the point here: this runs on the writer's queue. The errno of a failure, or nil.
    static func drain(_ count: Int, from pipe: Int32, into file: Int32) -> Errno? {
        var pending = count
        while pending > 0 {
            do {
                let moved = try syscallValue("splice") { clinux_splice_move(pipe, file, pending) }
                guard moved > 0 else { return .ioError }
                pending -= moved
            } catch where error.errno == .invalidArgument {
                // A file that cannot take a splice (some filesystems, O_APPEND): through user space, then.
                return copy(pending, from: pipe, into: file)
            } catch {
                return error.errno
            }
        }
        return nil
    }

    private static func copy(_ count: Int, from pipe: Int32, into file: Int32) -> Errno? {
        var buffer = [UInt8](repeating: 0, count: min(count, 64 << 10))
        var pending = count
        while pending > 0 {
            let result = buffer.withUnsafeMutableBytes { raw in
                try? Sys.read(pipe, UnsafeMutableRawBufferPointer(rebasing: raw[0..<min(pending, raw.count)]))
            }
            guard case .processed(let n)? = result, n > 0 else { return .ioError }
            if let failure = buffer.withUnsafeBytes({ writeAll(UnsafeRawBufferPointer(rebasing: $0[0..<n]), to: file) }) {
                return failure
            }
            pending -= n
        }
        return nil
    }
}
