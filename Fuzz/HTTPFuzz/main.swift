// libFuzzer target for HTTPParser and the discard of a body nobody reads (BodyDiscard): `make fuzz-http SECONDS=60`
// builds it with --sanitize=fuzzer. FUZZING is defined in debug builds (see Package.swift); release builds, which
// refuse @testable, get a stub.
#if FUZZING
@testable import HTTPServer

/// Everything a parse produced, comparable across fragmentations.
private enum Step: Equatable {
    case head(method: String, path: String, fields: Int, framing: HTTPParser.Framing, keepAlive: Bool, expect: Bool)
    case body(hash: UInt64, count: Int)
    case end
    /// A body nobody reads, read to its end and dropped (`BodyDiscard`): how many body bytes it held.
    case discarded(count: Int64)
    /// A discarded body ran past the bound: the connection closes here.
    case overBound
    case failure(status: Int)
}

private let limits = HTTPParser.Limits(maxRequestLine: 1024, maxHeaderBytes: 4096, maxHeaderCount: 32, maxBodySize: 1 << 20)

/// Small, so that inputs of a few KiB reach it.
private let discardBound: Int64 = 300

/// The requests whose body the server reads and drops, as the service's do: the fast path's `GET /about` (GET and
/// HEAD stand for it, and for the 404s and 405s no handler reads), and `OPTIONS *`.
private func discardsBody(_ head: HTTPParser.Head) -> Bool {
    head.method == .get || head.method == .head || head.isAsteriskForm
}

/// Parses `input` delivered in pieces of at most `piece` bytes, as a socket might deliver it.
private func run(_ input: [UInt8], piece: Int) -> [Step] {
    var parser = HTTPParser(limits: limits)
    var steps: [Step] = []
    var buffer: [UInt8] = []
    var start = 0
    var bodyHash: UInt64 = 0xcbf2_9ce4_8422_2325
    var bodyCount = 0
    var offset = 0
    var discard: BodyDiscard?
    while offset < input.count {
        let end = min(offset + piece, input.count)
        buffer += input[offset..<end]
        offset = end
        parsing: while true {
            if var dropping = discard {
                let progress: BodyDiscard.Progress
                let consumed: Int
                do {
                    (progress, consumed) = try dropping.consume(buffer[start...], with: &parser)
                } catch {
                    steps.append(.failure(status: error.status.code))
                    return steps
                }
                precondition(consumed >= 0 && start + consumed <= buffer.count, "consumed past the input")
                precondition(dropping.budget >= 0 && dropping.dropped <= discardBound, "read past the bound")
                start += consumed
                switch progress {
                case .needsMore:
                    precondition(start == buffer.count, "stopped short of the input")
                    discard = dropping
                    break parsing
                case .complete:
                    steps.append(.discarded(count: dropping.dropped))
                    discard = nil
                    continue parsing
                case .overBound:
                    steps.append(.overBound)
                    return steps
                }
            }
            let event: HTTPParser.Event?
            let consumed: Int
            do {
                (event, consumed) = try parser.parse(buffer[start...])
            } catch {
                steps.append(.failure(status: error.status.code))
                return steps
            }
            precondition(consumed >= 0 && start + consumed <= buffer.count, "consumed past the input")
            start += consumed
            guard let event else { break }
            switch event {
            case .head(let head):
                steps.append(.head(
                    method: head.request.method.rawValue, path: head.request.path ?? "",
                    fields: head.request.headerFields.count, framing: head.framing, keepAlive: head.keepAlive,
                    expect: head.expectContinue))
                if discardsBody(head) && head.framing != .none && head.framing != .length(0) {
                    guard let dropping = BodyDiscard(parser: parser, bound: discardBound) else {
                        steps.append(.overBound)
                        return steps
                    }
                    discard = dropping
                }
            case .body(let bytes):
                // Body chunks may be cut differently; only their concatenation must agree.
                for byte in bytes { bodyHash = (bodyHash ^ UInt64(byte)) &* 0x100_0000_01b3 }
                bodyCount += bytes.count
                precondition(bodyCount <= Int(limits.maxBodySize), "a body past the limit was delivered")
            case .end:
                steps.append(.body(hash: bodyHash, count: bodyCount))
                steps.append(.end)
                bodyHash = 0xcbf2_9ce4_8422_2325
                bodyCount = 0
            }
        }
    }
    return steps
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = run(input, piece: max(input.count, 1))
    // The same bytes in small pieces must give the same messages: fragmentation is invisible to a correct parser.
    let piece = 1 + Int(input.first ?? 0) % 13
    let split = run(input, piece: piece)
    precondition(whole == split, "fragmentation into \(piece)-byte pieces changed the result:\n\(whole)\n\(split)")
    return 0
}
#else
// A declaration, not a statement: the fuzzer build parses this file as a library even where this branch is off.
let stub: Void = print("http-fuzz is a libFuzzer target: run `make fuzz-http SECONDS=60`")
#endif
