import CLinux
import Glibc
import SystemSupport

/// A request body on its way into the handler's file (`RequestBody.write(to:)`). The loop moves it from the socket
/// into this body's own pipe by splice(2), so the bytes never enter user space; the loop's `FileWriter` moves it
/// from the pipe into the file, so the loop never waits on the disk. What arrived with the head is already in our
/// buffer, and the writer writes it from a copy.
///
/// The writer's jobs hold this object, so its descriptors stay open until the last job is done, however the
/// exchange ends, and close with it.
final class BodySplice: @unchecked Sendable {
    // @unchecked: the descriptors never change, and the counts are read and written on the loop thread only.
    /// The loop's own duplicate of the handler's descriptor.
    let file: Int32
    /// -1 when no pipe could be made, and the body is then copied from the read buffer. The loop's end (write) does
    /// not block; the writer's end (read) does, so that splicing on into a destination that can block (a FIFO, a
    /// socket) waits there instead of failing with EAGAIN.
    let pipeRead: Int32
    let pipeWrite: Int32
    let pipeCapacity: Int
    /// Bytes handed to the writer and not yet reported back, and how many of them wait in the pipe.
    var inFlight: Int64 = 0
    var inPipe = 0
    /// Bytes the writer has put in the file.
    var written: Int64 = 0
    /// The pipe is full (or was when the socket last said "would block"): reading waits for the writer's next report.
    var paused = false

    init(file: Int32) {
        self.file = file
        var fds: [Int32] = [-1, -1]
        if (try? syscallValue("pipe2") { clinux_pipe_nonblock(&fds) }) != nil {
            _ = try? syscallValue("fcntl") { fcntl(fds[0], F_SETFL, 0) }
            pipeRead = fds[0]
            pipeWrite = fds[1]
            // 256 KiB moves a large body in few calls; past the user's pipe allowance the kernel refuses and the pipe
            // keeps its default 64 KiB.
            pipeCapacity = Int((try? syscallValue("fcntl") { clinux_set_pipe_size(fds[1], 256 << 10) }) ?? 64 << 10)
        } else {
            (pipeRead, pipeWrite, pipeCapacity) = (-1, -1, 0)
        }
    }

    deinit {
        closeDescriptor(file)
        if pipeRead >= 0 {
            closeDescriptor(pipeRead)
            closeDescriptor(pipeWrite)
        }
    }
}

extension Connection {
    /// From the handler (hopped onto the loop): put the rest of body `id` into `descriptor`, which is ours to close.
    func spliceRequested(_ id: UInt64, into descriptor: Int32) {
        guard let ex = exchange, ex.id == id, !ex.bodyComplete, !ex.discardTried, !closed, !closing, bodySplice == nil
        else {
            // The exchange is over: its body has already failed or finished, and the handler has been told.
            closeDescriptor(descriptor)
            return
        }
        bodySplice = BodySplice(file: descriptor)
        bodyDemanded(id)
    }

    /// Body bytes that came through the parser (with the head, or while no pipe was at hand) go to the file too.
    func spliceBuffered(_ bytes: ArraySlice<UInt8>, _ splice: BodySplice) {
        let copy = Array(bytes)
        splice.inFlight += Int64(copy.count)
        loop.fileWriter.submit { [loop, self] in
            let failure = copy.withUnsafeBytes { writeAll($0, to: splice.file) }
            loop.execute { self.spliceWritten(splice, copy.count, fromPipe: false, failure) }
        }
    }

    /// Reading for a splice: straight from the socket into the pipe, and the writer told to empty it into the file.
    /// False when the plain read path must run instead (bytes are still buffered, or there is no pipe).
    func spliceFromSocket() -> Bool {
        guard let splice = bodySplice, splice.pipeWrite >= 0, let ex = exchange, inboundStart == inbound.count,
            var left = parser.lengthBodyRemaining, left > 0
        else { return false }
        // A bounded batch per wake-up, like every other reader on the loop.
        batch: for _ in 0..<16 where left > 0 {
            let room = splice.pipeCapacity - splice.inPipe
            guard room > 0 else {
                splice.paused = true
                break
            }
            let moved: Int
            do {
                switch try Sys.splice(from: descriptor, to: splice.pipeWrite, count: Int(min(left, Int64(room)))) {
                case .wouldBlock:
                    // The socket is empty, or the pipe is full after all (partly filled pages count whole). With
                    // bytes in the pipe the writer will report soon, and reading resumes then either way.
                    if splice.inPipe > 0 { splice.paused = true }
                    break batch
                case .processed(0):
                    if !bodyCutShort() { abort() }
                    return true
                case .processed(let n): moved = n
                }
            } catch {
                abort()
                return true
            }
            splice.inPipe += moved
            splice.inFlight += Int64(moved)
            loop.fileWriter.submit { [loop, self] in
                let failure = FileWriter.drain(moved, from: splice.pipeRead, into: splice.file)
                loop.execute { self.spliceWritten(splice, moved, fromPipe: true, failure) }
            }
            context.splicedBytes.add(Int64(moved), ordering: .relaxed)
            left -= Int64(moved)
            parser.skipBody(Int64(moved))
            bodyReceived += UInt64(moved)
        }
        bodyProgressed()
        if left == 0 {
            _ = try? parser.parse([])  // the `.end`
            ex.bodyComplete = true
            ex.bodyDemand = false
            finishBody(ex)
        }
        return true
    }

    /// The writer's report (on the loop): `count` bytes are in the file, or the file refused them.
    func spliceWritten(_ splice: BodySplice, _ count: Int, fromPipe: Bool, _ failure: Errno?) {
        splice.inFlight -= Int64(count)
        if fromPipe { splice.inPipe -= count }
        // A splice the exchange has dropped (it ended, failed or the client left) only waits for its last job.
        guard splice === bodySplice, !closed else { return }
        if let failure {
            failSplice(failure)
        } else {
            splice.written += Int64(count)
            splice.paused = false
            if let ex = exchange, ex.bodyComplete { finishBody(ex) }  // which waits for the last write itself
        }
        drive()
    }

    /// The body has been read to its end: tell the handler, once its file holds every byte when it was spliced.
    func finishBody(_ ex: Exchange) {
        if let splice = bodySplice {
            guard splice.inFlight == 0 else { return }  // the writer's last report comes back here
            ex.body?.finishSplice(splice.written)
            dropSplice()
        } else {
            ex.body?.finish()
        }
        finishExchangeIfDone()
    }

    /// The file refused the bytes (disk full…): the handler hears it, and since the rest of the body can no longer
    /// be followed, the connection closes after the handler's answer.
    private func failSplice(_ code: Errno) {
        dropSplice()
        exchange?.bodyDemand = false
        exchange?.body?.fail(.writeFailed(code))
        needsDrive = true
    }

    /// Forgets the splice; its descriptors close once the writer has finished what it was given.
    func dropSplice() {
        bodySplice = nil
    }
}
