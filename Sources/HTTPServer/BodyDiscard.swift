/// A request body that nobody reads (a fast-path answer, a handler that answered before reading it to its end),
/// read through the parser and dropped, so that the connection and the requests pipelined behind it go on
/// (RFC 9112 §6, §9.3). Its framing is checked byte for byte as an upload's is: the parser that decodes an upload
/// decodes this one, and a broken framing throws the same `HTTPRequestError`.
///
/// The bound counts wire bytes, chunk sizes, extensions and trailers included, and the parser is never shown a
/// byte past it: whether a body ends within the bound, breaks within it or runs past it depends on those bytes
/// alone, never on how the socket cut them up (Fuzz/HTTPFuzz checks this).
struct BodyDiscard {
    enum Progress: Equatable {
        /// Every byte given was consumed, and the body goes on.
        case needsMore
        /// The body has ended (its `.end` taken); what follows is the next request.
        case complete
        /// The bound is reached and the body goes on: the connection cannot be kept.
        case overBound
    }

    /// Wire bytes of the body that may still be read.
    private(set) var budget: Int64
    /// Body bytes (after chunked decoding) dropped so far.
    private(set) var dropped: Int64 = 0

    /// Nil when the body is known to run past `bound` already: the rest of its Content-Length.
    init?(parser: borrowing HTTPParser, bound: Int64) {
        if let remaining = parser.lengthBodyRemaining, remaining > bound { return nil }
        budget = max(bound, 0)
    }

    /// Feeds `input` (the bytes after the head, or after the last call's) through `parser`, dropping the body
    /// bytes; returns how far it got and how many bytes of `input` it consumed.
    mutating func consume(
        _ input: ArraySlice<UInt8>, with parser: inout HTTPParser
    ) throws(HTTPRequestError) -> (progress: Progress, consumed: Int) {
        var consumed = 0
        while true {
            let window = input[(input.startIndex + consumed)...].prefix(Int(clamping: budget))
            let (event, count) = try parser.parse(window)
            consumed += count
            budget -= Int64(count)
            switch event {
            case .body(let bytes): dropped += Int64(bytes.count)
            case .end: return (.complete, consumed)
            case nil: return (budget == 0 ? .overBound : .needsMore, consumed)
            case .head: preconditionFailure("a head inside a body")
            }
        }
    }
}
