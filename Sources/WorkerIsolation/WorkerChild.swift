import CLinux
import Foundation
import Glibc
import SystemSupport
import Transcoding

/// One job's process, forked by the template (WorkerTemplate.swift) before its job exists: it takes its own socket
/// as descriptor 3, loads the job filter on top of the template's, says ready, then transcodes the one job that
/// comes and exits. Everything a hostile input can reach runs here, and nothing of another job ever has: no
/// earlier job's heap, descriptors or frames were ever in this process.
///
/// Two threads: the main one reads the socket (the job, or a cancel for it), the job thread runs the transcode on a
/// deep stack, answers, and ends the process.
enum WorkerChild {
    /// Where the child keeps its end of its socketpair (the template's own socket had that number).
    static let socketDescriptor: Int32 = 3

    /// `socket`: the child's end, as received by the template; `template`: the template's pid, this process's parent.
    static func run(socket: Int32, template: pid_t, faults: WorkerFaults, jobMemory: Int64?) -> Never {
        // Dies with the template, which dies with its pool thread.
        _ = try? syscallValue("prctl") { clinux_set_parent_death_signal(SIGKILL) }
        if getppid() != template { _exit(0) }
        // dup2 closes the template's socket on that number: from here the child cannot speak to the template.
        guard (try? syscallValue("dup2", { dup2(socket, socketDescriptor) })) != nil else { _exit(70) }
        closeDescriptor(socket)
        let channel = WorkerChannel(descriptor: socketDescriptor)
        let runner = JobRunner(channel: channel, faults: faults, jobMemory: jobMemory)
        // Started before the job filter, which reaches it all the same (TSYNC).
        runner.start()
        do {
            if !faults.unconfined { try SeccompPolicy.load(.job) }
            try channel.send(.ready)
        } catch {
            printToStandardError("worker \(getpid()): \(error)")
            _exit(70)
        }
        var jobs = 0
        while true {
            // The parent closing its end (the service is stopping, or gave up on this job) ends the process.
            let (message, descriptors) = channel.receiveOrExit("worker")
            switch message {
            case .job(let id, let options)
            where descriptors.count == 2 + (options.splitPass?.extraDescriptors ?? 0) && jobs == 0:
                jobs += 1
                runner.submit(
                    JobRunner.Job(
                        id: id, options: options, input: descriptors[0], output: descriptors[1],
                        extra: Array(descriptors.dropFirst(2))))
            case .cancel(let id) where descriptors.isEmpty:
                runner.cancel(id)
            default:
                // A second job, or descriptors where none belong: a broken parent, never something to serve.
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
        /// A split pass's segments.
        let extra: [Int32]
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
            work(take())
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
            outcome = .report(try WorkerJob.run(
                input: job.input, output: job.output, extra: job.extra, options: job.options,
                cancellation: cancellation,
                progress: { [channel] fraction in try? channel.send(.progress(id: job.id, fraction: fraction)) },
                alive: { [channel] limit, finishing in
                    try? channel.send(.alive(id: job.id, timeLimit: limit, finishing: finishing))
                }))
        } catch .io(.noMemory) {
            outcome = .outOfMemory
        } catch .internal(let code, _) where code == -ENOMEM {
            outcome = .outOfMemory
        } catch {
            outcome = .failed(error)
        }
        #if DEBUG
        if let fault = faults.fault(in: job.input) {
            if let lie = fault.lie(id: job.id, output: job.output) {
                try? channel.send(lie.message, descriptors: lie.descriptors)
            }
            outcome = fault.inject(jobMemory: jobMemory)
        }
        #endif
        for fd in [job.input, job.output] + job.extra { closeDescriptor(fd) }
        // The parent may be gone (it gave up on the job): nobody is left to answer, and the process ends either way.
        try? channel.send(.finished(id: job.id, outcome))
        _exit(0)
    }
}
