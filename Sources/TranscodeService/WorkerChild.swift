import CLinux
import Foundation
import Glibc
import SystemSupport
import Transcoding

/// The worker process's side (`ffmpeg-processor worker`, started by a pool thread): confine itself, say ready,
/// then transcode one job at a time from the socket on descriptor 3 until the parent closes it. Everything a
/// hostile input can reach runs here, never in the service.
///
/// Two threads: the main one reads the socket (a job, or a cancel for the job running), the job thread runs the
/// transcode on a deep stack and answers. A job's descriptors are closed before its answer is sent, so once the
/// parent has the answer this process holds nothing of the job.
public enum WorkerChild {
    /// Where the parent puts the child's end of the socketpair.
    public static let socketDescriptor: Int32 = 3

    public static func run(parent: pid_t, jobMemory: Int64?) -> Never {
        // Dies with the pool thread that started it (PDEATHSIG follows the thread, and each pool thread owns its
        // worker). If that thread ended before the prctl, the parent is already someone else.
        _ = try? syscallValue("prctl") { clinux_set_parent_death_signal(SIGKILL) }
        if getppid() != parent { _exit(0) }
        // Ctrl-C in a terminal reaches the whole process group; the service drains on it, so its workers must not
        // die of it. Writes to a gone parent answer EPIPE.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        JobMemory.keepFreedMemoryForNextJob()
        let faults = WorkerFaults.fromEnvironment()
        let channel = WorkerChannel(descriptor: socketDescriptor)
        let runner = JobRunner(channel: channel, faults: faults, jobMemory: jobMemory)
        // Started before the filter, which reaches it all the same (TSYNC): its creation is then no call the
        // allow-list needs, and the measurement that derives the list sees everything it does after start-up.
        runner.start()
        do {
            try Sandbox.confine(Sandbox.Limits(addressSpace: jobMemory), seccomp: !faults.unconfined)
            try channel.send(.ready)
        } catch {
            printToStandardError("worker \(getpid()): \(error)")
            _exit(70)
        }
        while true {
            let received: (message: WorkerMessage, descriptors: [Int32])?
            do {
                received = try channel.receive()
            } catch {
                printToStandardError("worker \(getpid()): \(error)")
                _exit(71)
            }
            // The parent closed its end: recycled, or the service is stopping. A running job is abandoned with it.
            guard let (message, descriptors) = received else { _exit(0) }
            switch message {
            case .job(let id, let options) where descriptors.count == 2:
                runner.submit(JobRunner.Job(id: id, options: options, input: descriptors[0], output: descriptors[1]))
            case .cancel(let id):
                for fd in descriptors { closeDescriptor(fd) }
                runner.cancel(id)
            default:
                printToStandardError("worker \(getpid()): unexpected message \(message) with \(descriptors.count) descriptors")
                _exit(71)
            }
        }
    }
}

/// The job thread and its one-job mailbox.
private final class JobRunner: @unchecked Sendable {
    struct Job {
        let id: UInt64
        let options: TranscodeOptions
        let input: Int32
        let output: Int32
    }

    private let channel: WorkerChannel
    private let faults: WorkerFaults
    private let jobMemory: Int64?
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var pending: Job?
    private var running: (id: UInt64, cancellation: TranscodeCancellation)?
    private var waiting = false

    init(channel: WorkerChannel, faults: WorkerFaults, jobMemory: Int64?) {
        self.channel = channel
        self.faults = faults
        self.jobMemory = jobMemory
    }

    /// Returns once the thread waits for its first job: whatever Foundation does to start a thread (it asks for
    /// the thread's name, a call the filter would kill) is over before the filter is loaded.
    func start() {
        let thread = Thread { [self] in
            while true { work(take()) }
        }
        // As the pool's threads: x264 and the decoders use deep stacks.
        thread.stackSize = 16 << 20
        thread.start()
        condition.lock()
        while !waiting { condition.wait() }
        condition.unlock()
    }

    func submit(_ job: Job) {
        condition.lock()
        defer { condition.unlock() }
        guard pending == nil, running == nil else {
            // The parent sends one job at a time; a second one is a broken parent, not something to queue.
            printToStandardError("worker \(getpid()): a job arrived while another ran")
            _exit(71)
        }
        pending = job
        running = (job.id, TranscodeCancellation())
        condition.broadcast()
    }

    func cancel(_ id: UInt64) {
        condition.lock()
        defer { condition.unlock() }
        if let running, running.id == id { running.cancellation.cancel() }
    }

    private func take() -> (Job, TranscodeCancellation) {
        condition.lock()
        defer { condition.unlock() }
        if !waiting {
            waiting = true
            condition.broadcast()
        }
        while pending == nil { condition.wait() }
        let job = pending!
        pending = nil
        return (job, running!.cancellation)
    }

    private func work(_ taken: (Job, TranscodeCancellation)) {
        let (job, cancellation) = taken
        var outcome: WorkerOutcome
        do {
            outcome = .report(try transcode(
                input: .fileDescriptor(job.input), output: .fileDescriptor(job.output), options: job.options,
                cancellation: cancellation))
        } catch .io(.noMemory) {
            outcome = .outOfMemory
        } catch .internal(let code, _) where code == -ENOMEM {
            outcome = .outOfMemory
        } catch {
            outcome = .failed(error)
        }
        #if DEBUG
        if let fault = faults.fault(in: job.input) { outcome = fault.inject(jobMemory: jobMemory) }
        #endif
        closeDescriptor(job.input)
        closeDescriptor(job.output)
        condition.lock()
        running = nil
        condition.unlock()
        do {
            try channel.send(.finished(id: job.id, outcome))
        } catch {
            // The parent is gone or recycling this process: nobody is left to answer.
            _exit(0)
        }
    }
}
