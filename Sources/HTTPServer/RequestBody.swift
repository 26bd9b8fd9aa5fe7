import Glibc
import SystemSupport

/// Why a request body stopped before its end.
public enum RequestBodyError: Error, Sendable, Equatable {
    /// The peer closed or reset the connection.
    case clientDisconnected
    /// No body bytes arrived within `bodyIdleTimeout`.
    case timeout
    /// The body grew past `maxBodySize`.
    case tooLarge
    /// The body's framing was invalid (e.g. bad chunk size); the server answers 400.
    case malformed(String)
    /// The handler's task was cancelled.
    case cancelled
    /// Writing the body to its file failed (`write(to:)`); ENOSPC and EDQUOT mean the disk is full.
    case writeFailed(Errno)
}

/// A request body, pulled lazily chunk by chunk. The event loop reads from the socket only when the handler asks
/// for the next chunk, so an unread body is backpressure on the client, not memory in the server. The first pull
/// is also what sends `100 Continue` to a client that asked for it.
public struct RequestBody: AsyncSequence, Sendable {
    public typealias Element = [UInt8]

    /// The Content-Length, or nil for a chunked body. 0 for a request without a body.
    public let expectedLength: Int64?
    let source: BodySource?

    init(expectedLength: Int64?, source: BodySource?) {
        self.expectedLength = expectedLength
        self.source = source
    }

    /// A body with no bytes (handy in tests and for bodyless requests).
    public static let empty = RequestBody(expectedLength: 0, source: nil)

    /// A body already in memory, delivered in chunks of `chunkSize` bytes: for testing handlers without a socket.
    public static func bytes(_ bytes: [UInt8], chunkSize: Int = 64 * 1024) -> RequestBody {
        let size = Swift.max(1, chunkSize)
        let chunks = stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<Swift.min($0 + size, bytes.count)]) }
        let feed = InMemoryFeed(chunks)
        let source = BodySource(onDemand: { feed.next() })
        feed.source.withLock { $0 = source }
        return RequestBody(expectedLength: Int64(bytes.count), source: source)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let source: BodySource?

        public mutating func next() async throws -> [UInt8]? {
            guard let source else { return nil }
            return try await source.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: source) }

    /// Appends the whole body to `descriptor` (a regular file, at its current offset) and returns its length. A
    /// Content-Length body from a socket goes socket → pipe → file with splice(2), never through user space (but for
    /// what came with the head); a chunked body, whose framing must be decoded, is written chunk by chunk.
    public func write(to descriptor: Int32) async throws -> Int64 {
        try await write(to: descriptor, admitting: { _ in })
    }

    /// `write(to:)`, asking `admit` before each chunk of a body whose length was not declared (chunked) whether its
    /// bytes may come in: a size known in advance was admitted with the request, one that is not must be admitted as
    /// it arrives (the service's byte budget). `admit` throws to refuse, and its error comes out of `write`, with
    /// the rest of the body unread.
    public func write(to descriptor: Int32, admitting admit: (Int) async throws -> Void) async throws -> Int64 {
        guard let source else { return 0 }
        if expectedLength != nil, source.canSplice {
            return try await source.splice(into: descriptor)
        }
        var written: Int64 = 0
        for try await chunk in self {
            if expectedLength == nil { try await admit(chunk.count) }
            if let code = await source.write(chunk, to: descriptor) {
                throw RequestBodyError.writeFailed(code)
            }
            written += Int64(chunk.count)
        }
        return written
    }

    /// Reads the whole body into memory, throwing `RequestBodyError.tooLarge` past `limit` bytes.
    public func collect(upTo limit: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in self {
            guard bytes.count + chunk.count <= limit else { throw RequestBodyError.tooLarge }
            bytes += chunk
        }
        return bytes
    }
}

/// Plays the event loop's part for `RequestBody.bytes`: one chunk per demand.
private final class InMemoryFeed: Sendable {
    let chunks: Locked<ArraySlice<[UInt8]>>
    let source = Locked<BodySource?>(nil)

    init(_ chunks: [[UInt8]]) { self.chunks = Locked(chunks[...]) }

    func next() {
        guard let source = source.withLock({ $0 }) else { return }
        if let chunk = chunks.withLock({ $0.popFirst() }) { source.deliver(chunk) } else { source.finish() }
    }
}

/// The meeting point of one handler (pulling) and the event loop (pushing one chunk per demand).
final class BodySource: Sendable {
    private struct State {
        var chunk: [UInt8]?
        var finished = false
        var error: RequestBodyError?
        var waiter: CheckedContinuation<[UInt8]?, any Error>?
        var spliceWaiter: CheckedContinuation<Int64, any Error>?
    }

    private let state = Locked(State())
    /// Tells the loop that the handler is waiting for bytes; called outside the lock.
    private let onDemand: @Sendable () -> Void
    /// Hands the loop a descriptor (its own duplicate, which it closes) to splice the rest of the body into.
    private let onSplice: (@Sendable (Int32) -> Void)?
    /// The loop's file writer, for the bodies written chunk by chunk; without one, the handler's task writes.
    private let writer: FileWriter?

    init(
        onDemand: @escaping @Sendable () -> Void, onSplice: (@Sendable (Int32) -> Void)? = nil, writer: FileWriter? = nil
    ) {
        self.onDemand = onDemand
        self.onSplice = onSplice
        self.writer = writer
    }

    /// Writes a chunk to the handler's file, off the cooperative pool where a writer exists: a slow disk then holds
    /// only this upload. The errno of a failure, or nil.
    func write(_ chunk: [UInt8], to descriptor: Int32) async -> Errno? {
        if let writer { return await writer.write(chunk, to: descriptor) }
        return chunk.withUnsafeBytes { writeAll($0, to: descriptor) }
    }

    var canSplice: Bool { onSplice != nil }

    /// Waits until the loop has put the whole body into `descriptor`; returns the bytes it wrote.
    func splice(into descriptor: Int32) async throws -> Int64 {
        guard let onSplice else { preconditionFailure("splice(into:) on a body without a socket") }
        // A duplicate the loop owns: should this task be cancelled and close its file while the loop still works,
        // the loop's descriptor stays valid (and the number cannot be reused under it).
        // Close-on-exec, or a child started meanwhile by anyone in the process would keep the file (and its disk
        // space) alive for as long as it runs.
        let duplicate: Int32
        do {
            duplicate = try syscallValue("fcntl") { fcntl(descriptor, F_DUPFD_CLOEXEC, 0) }
        } catch {
            throw RequestBodyError.writeFailed(error.errno)
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int64, any Error>) in
                let failed = state.withLock { s -> RequestBodyError? in
                    if let error = s.error { return error }
                    s.spliceWaiter = continuation
                    return nil
                }
                if let failed {
                    close(duplicate)
                    continuation.resume(throwing: failed)
                } else {
                    onSplice(duplicate)
                }
            }
        } onCancel: {
            fail(.cancelled)
        }
    }

    func next() async throws -> [UInt8]? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8]?, any Error>) in
                enum Action { case resume([UInt8]?), fail(RequestBodyError), wait }
                let action = state.withLock { s -> Action in
                    if let chunk = s.chunk {
                        s.chunk = nil
                        return .resume(chunk)
                    }
                    if let error = s.error { return .fail(error) }
                    if s.finished { return .resume(nil) }
                    s.waiter = continuation
                    return .wait
                }
                switch action {
                case .resume(let chunk): continuation.resume(returning: chunk)
                case .fail(let error): continuation.resume(throwing: error)
                case .wait: onDemand()
                }
            }
        } onCancel: {
            fail(.cancelled)
        }
    }

    // MARK: Loop side

    func deliver(_ chunk: [UInt8]) {
        let waiter = state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
            guard s.error == nil else { return nil }
            if let waiter = s.waiter {
                s.waiter = nil
                return waiter
            }
            s.chunk = chunk
            return nil
        }
        waiter?.resume(returning: chunk)
    }

    /// The loop has written the whole body (`count` bytes) into the splice descriptor.
    func finishSplice(_ count: Int64) {
        let waiter = state.withLock { s -> CheckedContinuation<Int64, any Error>? in
            guard s.error == nil else { return nil }
            s.finished = true
            defer { s.spliceWaiter = nil }
            return s.spliceWaiter
        }
        waiter?.resume(returning: count)
    }

    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
            guard s.error == nil else { return nil }
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The first failure wins; a finished body cannot fail any more.
    func fail(_ error: RequestBodyError) {
        typealias Waiters = (CheckedContinuation<[UInt8]?, any Error>?, CheckedContinuation<Int64, any Error>?)
        let (waiter, spliceWaiter) = state.withLock { s -> Waiters in
            guard s.error == nil, !s.finished else { return (nil, nil) }
            s.error = error
            defer { s.waiter = nil; s.spliceWaiter = nil }
            return (s.waiter, s.spliceWaiter)
        }
        waiter?.resume(throwing: error)
        spliceWaiter?.resume(throwing: error)
    }
}
