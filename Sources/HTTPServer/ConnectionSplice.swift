import Glibc
import SystemSupport

/// A request body on its way into the handler's file (`RequestBody.write(to:)`): socket → the loop's pipe → file by
/// splice(2), so the bytes never enter user space. What arrived with the head is already in our buffer and is
/// written from there.
final class BodySplice {
    /// The loop's own duplicate of the handler's descriptor; closed by `dropSplice`.
    let descriptor: Int32
    var written: Int64 = 0

    init(descriptor: Int32) { self.descriptor = descriptor }
}

extension Connection {
    /// From the handler (hopped onto the loop): put the rest of body `id` into `descriptor`, which is ours to close.
    func spliceRequested(_ id: UInt64, into descriptor: Int32) {
        guard let ex = exchange, ex.id == id, !ex.bodyComplete, !closed, !closing, bodySplice == nil else {
            // The exchange is over: its body has already failed or finished, and the handler has been told.
            closeDescriptor(descriptor)
            return
        }
        bodySplice = BodySplice(descriptor: descriptor)
        bodyDemanded(id)
    }

    /// Body bytes that came through the parser (with the head, or before the splice began) go to the file too.
    func spliceBuffered(_ bytes: ArraySlice<UInt8>, _ splice: BodySplice) -> Bool {
        if let code = bytes.withUnsafeBytes({ writeAll($0, to: splice.descriptor) }) {
            failSplice(code)
            return false
        }
        splice.written += Int64(bytes.count)
        return true
    }

    /// Reading for a splice: straight from the socket into the file. False when the plain read path must run
    /// instead (bytes are still buffered, or the loop has no pipe).
    func spliceFromSocket() -> Bool {
        guard let splice = bodySplice, let ex = exchange, inboundStart == inbound.count,
            var left = parser.lengthBodyRemaining, left > 0, let pipe = loop.splicePipe
        else { return false }
        // A bounded batch per wake-up, like every other reader on the loop.
        for _ in 0..<16 where left > 0 {
            let moved: Int
            do {
                switch try Sys.splice(from: descriptor, to: pipe.write, count: Int(min(left, Int64(pipe.capacity)))) {
                case .wouldBlock: return true
                case .processed(0):
                    abort()  // the client closed mid-body
                    return true
                case .processed(let n): moved = n
                }
            } catch {
                abort()
                return true
            }
            if let code = pipeToFile(moved, pipe: pipe, file: splice.descriptor) {
                loop.emptySplicePipe()
                failSplice(code)
                return true
            }
            splice.written += Int64(moved)
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

    /// Moves `count` bytes from the pipe into the file; the errno of a failure, or nil.
    private func pipeToFile(_ count: Int, pipe: EventLoop.SplicePipe, file: Int32) -> Errno? {
        var pending = count
        while pending > 0 {
            do {
                guard case .processed(let n) = try Sys.splice(from: pipe.read, to: file, count: pending), n > 0 else {
                    return .ioError
                }
                pending -= n
            } catch where error.errno == .invalidArgument {
                // A filesystem that cannot take a splice: through the loop's buffer, then.
                let room = loop.readBuffer
                let buffer = UnsafeMutableRawBufferPointer(rebasing: room[0..<min(pending, room.count)])
                guard case .processed(let n)? = try? Sys.read(pipe.read, buffer), n > 0 else { return .ioError }
                if let code = writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), to: file) { return code }
                pending -= n
            } catch {
                return error.errno
            }
        }
        return nil
    }

    /// The body is complete: tell the handler (with what the splice wrote, when it was one).
    func finishBody(_ ex: Exchange) {
        if let splice = bodySplice {
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

    func dropSplice() {
        guard let splice = bodySplice else { return }
        closeDescriptor(splice.descriptor)
        bodySplice = nil
    }
}

extension EventLoop {
    struct SplicePipe {
        var read: Int32
        var write: Int32
        var capacity: Int
    }
}
