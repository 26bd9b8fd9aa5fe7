import TestSupport
import Testing

@testable import HTTPServer

@Suite("ByteBuffer")
struct ByteBufferTests {
    @Test("appends of every kind, across growth, read back in order; a suffix reads from its offset")
    func appends() {
        var buffer = ByteBuffer()
        var expected: [UInt8] = []
        var generator = SplitMix(seed: 7)
        for round in 0..<200 {
            switch round % 4 {
            case 0:
                let bytes = (0..<Int(generator.next() % 700)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                buffer.append(bytes)
                expected += bytes
            case 1:
                buffer.append("static text\r\n")
                expected += Array("static text\r\n".utf8)
            case 2:
                let text = "ünïcode \(round) and a longer string than fits inline"
                buffer.append(utf8: text)
                expected += Array(text.utf8)
            default:
                buffer.append(UInt8(round))
                expected.append(UInt8(round))
            }
        }
        let same = buffer.bytes == expected
        #expect(same)
        #expect(buffer.count == expected.count)
        let suffix = buffer.withUnsafeBytes(from: 100) { Array($0) }
        let suffixSame = suffix == Array(expected[100...])
        #expect(suffixSame)
    }

    @Test("emptying keeps a small allocation and gives a large one back")
    func emptying() {
        var buffer = ByteBuffer()
        buffer.append([UInt8](repeating: 1, count: 1000))
        let small = buffer.capacity
        buffer.removeAll(keepingCapacityUpTo: 4096)
        #expect(buffer.count == 0 && buffer.capacity == small)
        buffer.append([UInt8](repeating: 2, count: 10_000))
        buffer.removeAll(keepingCapacityUpTo: 4096)
        #expect(buffer.count == 0 && buffer.capacity == 0)
        buffer.append("again")
        #expect(buffer.bytes == Array("again".utf8))
    }
}
