import Testing

@testable import HTTPServer

/// `BodyDiscard` alone, fed like a socket feeds it: its outcome depends on the body's bytes and the bound, never on
/// how the bytes are cut up.
@Suite("BodyDiscard")
struct BodyDiscardTests {
    enum Outcome: Equatable {
        case complete(dropped: Int64, rest: [UInt8])
        case needsMore
        case overBound
        case refused(Int)
    }

    /// Parses the head of `request`, then discards its body with `bound`, fed in pieces that end at `cuts`. The
    /// buffer keeps every byte fed, so an index into it is one into `request`.
    static func discard(_ request: [UInt8], bound: Int64, cuts: [Int]) -> Outcome {
        var parser = HTTPParser(limits: .init())
        var buffer: [UInt8] = []
        var start = 0
        var discard: BodyDiscard?
        var fed = 0
        for cut in cuts + [request.count] where cut >= fed {
            buffer += request[fed..<cut]
            fed = cut
            do {
                if discard == nil {
                    let (event, consumed) = try parser.parse(buffer[start...])
                    start += consumed
                    guard case .head = event else { continue }
                    guard let fresh = BodyDiscard(parser: parser, bound: bound) else { return .overBound }
                    discard = fresh
                }
                let (progress, consumed) = try discard!.consume(buffer[start...], with: &parser)
                start += consumed
                switch progress {
                case .needsMore: continue
                case .overBound: return .overBound
                case .complete: return .complete(dropped: discard!.dropped, rest: Array(request[start...]))
                }
            } catch {
                return .refused(error.status.code)
            }
        }
        return .needsMore
    }

    static let next = Array("GET /next HTTP/1.1\r\nHost: t\r\n\r\n".utf8)

    static func request(_ body: ServerDiscardTests.Body) -> (bytes: [UInt8], bodyLength: Int) {
        let head = Array("GET /about HTTP/1.1\r\nHost: t\r\n\(body.fields)\r\n".utf8)
        let bytes = Array(body.bytes.utf8)
        return (head + bytes + next, bytes.count)
    }

    @Test("a valid body is complete when its wire bytes fit the bound and over it when they do not, whole or split anywhere",
          arguments: ServerDiscardTests.valid)
    func valid(_ body: ServerDiscardTests.Body) {
        let (bytes, length) = Self.request(body)
        for bound in [Int64(1 << 20), Int64(length), Int64(length - 1)] where bound >= 0 {
            let whole = Self.discard(bytes, bound: bound, cuts: [])
            if bound >= length {
                guard case .complete(_, let rest) = whole else {
                    Issue.record("bound \(bound) for \(length) bytes: \(whole)")
                    continue
                }
                #expect(rest == Self.next, "the next request starts right after the body")
            } else {
                #expect(whole == .overBound, "bound \(bound) for \(length) bytes")
            }
            for cut in 0...bytes.count {
                #expect(Self.discard(bytes, bound: bound, cuts: [cut]) == whole, "bound \(bound), split at \(cut)")
            }
            #expect(Self.discard(bytes, bound: bound, cuts: Array(0...bytes.count)) == whole, "byte by byte")
        }
    }

    @Test("a broken body is refused with 400 whole or split anywhere", arguments: ServerDiscardTests.malformed)
    func malformed(_ body: ServerDiscardTests.Body) {
        let (bytes, _) = Self.request(body)
        let whole = Self.discard(bytes, bound: 1 << 20, cuts: [])
        #expect(whole == .refused(400))
        for cut in 0...bytes.count {
            #expect(Self.discard(bytes, bound: 1 << 20, cuts: [cut]) == whole, "split at \(cut)")
        }
    }

    @Test("a Content-Length past the bound is over it before any body byte is read")
    func lengthPastTheBound() {
        let request = Array("GET /about HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n".utf8)
        #expect(Self.discard(request, bound: 100, cuts: []) == .overBound)
        #expect(Self.discard(request, bound: 101, cuts: []) == .needsMore)
    }

    @Test("what a discard dropped is the body after chunked decoding")
    func droppedCount() {
        let body = ServerDiscardTests.Body.chunked("", "A\r\n0123456789\r\n1;x=y\r\nx\r\n0\r\nT: 1\r\n\r\n")
        guard case .complete(let dropped, _) = Self.discard(Self.request(body).bytes, bound: 1 << 20, cuts: []) else {
            Issue.record("not complete")
            return
        }
        #expect(dropped == 11)
    }
}
