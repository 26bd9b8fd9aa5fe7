/// A connection's queued output. Appending is a capacity check and a memcpy and emptying is setting a count, where
/// `[UInt8]`'s `append(contentsOf:)` and `removeAll(keepingCapacity:)` cost hundreds of instructions per response.
/// Noncopyable: its one owner frees the memory.
struct ByteBuffer: ~Copyable {
    private var storage: UnsafeMutableRawPointer?
    private(set) var capacity = 0
    private(set) var count = 0

    init() {}

    deinit { storage?.deallocate() }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        let base = reserve(bytes.count)
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func append(utf8 text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    mutating func append(_ byte: UInt8) {
        let base = reserve(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// Empties the buffer, and gives the memory back when it is larger than `limit`: an idle connection should not
    /// keep the peak of one big response.
    mutating func removeAll(keepingCapacityUpTo limit: Int) {
        count = 0
        if capacity > limit {
            storage?.deallocate()
            storage = nil
            capacity = 0
        }
    }

    /// The bytes from `offset` to the end.
    func withUnsafeBytes<R, E: Error>(
        from offset: Int, _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        precondition(offset >= 0 && offset <= count, "offset outside the buffer")
        return try body(UnsafeRawBufferPointer(start: storage.map { $0 + offset }, count: count - offset))
    }

    /// A copy of the contents.
    var bytes: [UInt8] { withUnsafeBytes(from: 0) { Array($0) } }

    /// Makes room for `extra` more bytes and returns the (possibly moved) storage.
    private mutating func reserve(_ extra: Int) -> UnsafeMutableRawPointer {
        let needed = count + extra
        if let storage, needed <= capacity { return storage }
        let grown = max(needed, capacity * 2, 512)
        let moved = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 16)
        if let storage {
            moved.copyMemory(from: storage, byteCount: count)
            storage.deallocate()
        }
        storage = moved
        capacity = grown
        return moved
    }
}
