import CLinux
import Glibc
import SystemSupport

/// A pool thread's side of its template (WorkerTemplate.swift): starting it, asking it for a child and waiting
/// until the child has confined itself, having it reap a child (only a parent can), and letting it go.
extension WorkerProcess {

    func spawnTemplate() throws(StartFailure) -> Peer {
        let ends: (parent: Int32, child: Int32)
        do { ends = try WorkerChannel.pair() } catch { throw StartFailure("socketpair: \(error)") }
        let parentEnd = OwnedDescriptor(taking: ends.parent)
        let childEnd = OwnedDescriptor(taking: ends.child)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        guard clinux_spawn_dup2(&actions, childEnd.rawValue, WorkerChild.socketDescriptor) == 0,
            clinux_spawn_close_from(&actions, WorkerChild.socketDescriptor + 1) == 0,
            clinux_spawn_set_default_signals(&attributes) == 0
        else { throw StartFailure("posix_spawn attributes") }
        var pid: pid_t = 0
        // posix_spawn answers its error number rather than setting errno.
        let status = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in posix_spawn(&pid, settings.executable, &actions, &attributes, argv, envp) }
        }
        childEnd.close()
        guard status == 0 else { throw StartFailure("posix_spawn \(settings.executable): \(Errno(rawValue: status))") }
        return try awaitReady(Peer(pid: pid, socket: parentEnd), what: "the template") {
            waitForTemplate($0, block: true)
        }
    }

    /// `started` once it says ready; else it is killed, reaped by `reap`, and the failure says how it ended.
    private func awaitReady(_ started: Peer, what: String, reap: (pid_t) -> Int32?) throws(StartFailure) -> Peer {
        do {
            if case .ready = try expectMessage(started, what: what) { return started }
            throw StartFailure("\(what) sent something else than ready")
        } catch {
            signalProcess(started.pid, SIGKILL)
            let ending = reap(started.pid).map(Self.ending)
            throw StartFailure("\(error) (\(ending ?? "not reaped"))")
        }
    }

    /// The next message from `peer`, within the start timeout.
    private func expectMessage(_ peer: Peer, what: String) throws(StartFailure) -> WorkerMessage {
        do {
            guard try peer.channel.waitReadable(milliseconds: Int32(settings.startTimeout * 1000)) else {
                throw StartFailure("\(what) did not answer within \(settings.startTimeout) s")
            }
            guard let (message, descriptors) = try peer.channel.receive() else { throw StartFailure("\(what) ended") }
            for fd in descriptors { closeDescriptor(fd) }
            guard descriptors.isEmpty else { throw StartFailure("\(what) sent descriptors") }
            return message
        } catch let failure as StartFailure {
            throw failure
        } catch {
            throw StartFailure("\(what): \(error)")
        }
    }

    /// Asks the template for a fresh child and waits until the child has confined itself.
    func forkChild() throws(StartFailure) -> Peer {
        guard let template else { throw StartFailure("no template") }
        let ends: (parent: Int32, child: Int32)
        do { ends = try WorkerChannel.pair() } catch { throw StartFailure("socketpair: \(error)") }
        let parentEnd = OwnedDescriptor(taking: ends.parent)
        let pid: pid_t
        do {
            let childEnd = OwnedDescriptor(taking: ends.child)
            do {
                try template.channel.send(.spawn, descriptors: [childEnd.rawValue])
            } catch {
                dropTemplate()
                throw StartFailure("the template is gone: \(error)")
            }
            let answer: WorkerMessage
            do { answer = try expectMessage(template, what: "the template") } catch {
                dropTemplate()
                throw error
            }
            switch answer {
            case .spawned(let spawned): pid = spawned
            case .spawnFailed(let code): throw StartFailure("fork: \(Errno(rawValue: code))")
            default:
                dropTemplate()
                throw StartFailure("the template answered \(answer) to a spawn")
            }
        }
        return try awaitReady(Peer(pid: pid, socket: parentEnd), what: "the child") { reapChild($0) }
    }

    /// A child's wait status, through the template that forked it (only a parent can wait); it waits up to the kill
    /// grace, then kills. Nil if the template cannot tell (it died, and its children with it).
    func reapChild(_ pid: pid_t) -> Int32? {
        guard let template else { return nil }
        do {
            try template.channel.send(.reap(pid: pid, graceMilliseconds: UInt32(settings.killGrace * 1000)))
            guard case .reaped(pid, let status) = try expectMessage(template, what: "the template"), status != -1 else {
                dropTemplate()
                return nil
            }
            return status
        } catch {
            dropTemplate()
            return nil
        }
    }

    /// Closes the template's socket, which it takes as the order to exit (its children die with it), and waits.
    func dropTemplate() {
        guard let dropped = template else { return }
        template = nil
        let pid = dropped.pid
        _ = consume dropped
        let deadline = monotonicNanos() + UInt64(settings.killGrace * 1e9)
        while waitForTemplate(pid, block: false) == nil {
            if monotonicNanos() > deadline {
                signalProcess(pid, SIGKILL)
                _ = waitForTemplate(pid, block: true)
                return
            }
            usleep(2_000)
        }
    }

    /// The template's wait status once it has ended (nil while it runs, unless `block`): it is this process's child.
    private func waitForTemplate(_ pid: pid_t, block: Bool) -> Int32? {
        var status: Int32 = 0
        let reaped = try? syscallValue("waitpid") { waitpid(pid, &status, block ? 0 : WNOHANG) }
        return reaped == pid ? status : nil
    }
}
