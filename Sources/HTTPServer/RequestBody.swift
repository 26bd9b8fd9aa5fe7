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
    }

    private let state = Locked(State())
    /// Tells the loop that the handler is waiting for bytes; called outside the lock.
    private let onDemand: @Sendable () -> Void

    init(onDemand: @escaping @Sendable () -> Void) {
        self.onDemand = onDemand
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
        let waiter = state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
            guard s.error == nil, !s.finished else { return nil }
            s.error = error
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(throwing: error)
    }
}
