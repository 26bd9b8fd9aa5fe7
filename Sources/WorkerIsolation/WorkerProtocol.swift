import SystemSupport
import Transcoding

// The boundaries between a pool thread (the parent), its warm template process and the one-job processes the
// template forks: what crosses their Unix socketpairs, and nothing else. One message per datagram (SOCK_SEQPACKET),
// so no side ever reassembles a stream; a closed socket is the other side's death.
//
//   parent → template  spawn              with one descriptor: the new child's end of a fresh socketpair
//                      reap(pid, grace)   wait for that child's end (kill it after `grace` ms) and say how it ended
//   template → parent  ready              the template's sandbox is in force; spawns may come
//                      spawned(pid)       the child is forked (it says ready on its own socket once confined)
//                      spawnFailed(errno) fork(2) failed
//                      reaped(pid, status) the wait status
//   parent → child     job(id, options)   with the input and output descriptors attached (SCM_RIGHTS), then a
//                                         split pass's segments (`options.splitPass`, SplitPassJob.swift)
//                      cancel(id)         stop job `id` at its next checkpoint (a stale id is ignored)
//   child → parent     ready              the child's own filter is in force; its one job may come
//                      progress(id, f)    the share of the input encoded so far, in steps of at least 1 %
//                      finished(id, …)    the report, a typed error, or "out of memory"; then the child exits
//
// The template never reads a job's bytes, and a child never sees a second job. The parent trusts nothing a child
// says beyond a report's figures (a confined process can lie, but it can only lie about its own job), and trusts
// the template only for the pids it forked.

/// One message of the worker protocol.
enum WorkerMessage: Equatable, Sendable {
    case job(id: UInt64, options: TranscodeOptions)
    case cancel(id: UInt64)
    case ready
    case finished(id: UInt64, WorkerOutcome)
    case progress(id: UInt64, fraction: Double)
    /// Frames are being encoded, under this time limit (seconds from the job's start; nil: none); `finishing`: the
    /// last one, with only the file's completion left.
    case alive(id: UInt64, timeLimit: Double?, finishing: Bool)
    case spawn
    case spawned(pid: Int32)
    case spawnFailed(errno: Int32)
    case reap(pid: Int32, graceMilliseconds: UInt32)
    case reaped(pid: Int32, status: Int32)

    /// The largest message either side sends (a report with long codec names); the receiver's buffer.
    static let maximumSize = 16 * 1024
}

/// What the child answers for one job.
enum WorkerOutcome: Equatable, Sendable {
    case report(TranscodeReport)
    case failed(TranscodeError)
    /// The job's allocations hit `--job-memory` (libav answered ENOMEM).
    case outOfMemory
}

/// A message that does not parse: the peer is broken or hostile, and the connection ends.
struct WorkerProtocolError: Error, CustomStringConvertible {
    var description: String
}

extension WorkerMessage {
    private enum Tag: UInt8 {
        case job = 1, cancel, ready, finished, spawn, spawned, spawnFailed, reap, reaped, progress, alive
    }

    func encoded() -> [UInt8] {
        var writer = WireWriter()
        switch self {
        case .job(let id, let options):
            writer.byte(Tag.job.rawValue)
            writer.integer(id)
            writer.options(options)
        case .cancel(let id):
            writer.byte(Tag.cancel.rawValue)
            writer.integer(id)
        case .ready:
            writer.byte(Tag.ready.rawValue)
        case .finished(let id, let outcome):
            writer.byte(Tag.finished.rawValue)
            writer.integer(id)
            writer.outcome(outcome)
        case .progress(let id, let fraction):
            writer.byte(Tag.progress.rawValue)
            writer.integer(id)
            writer.double(fraction)
        case .alive(let id, let timeLimit, let finishing):
            writer.byte(Tag.alive.rawValue)
            writer.integer(id)
            writer.optional(timeLimit) { $0.double($1) }
            writer.bool(finishing)
        case .spawn:
            writer.byte(Tag.spawn.rawValue)
        case .spawned(let pid):
            writer.byte(Tag.spawned.rawValue)
            writer.integer(pid)
        case .spawnFailed(let errno):
            writer.byte(Tag.spawnFailed.rawValue)
            writer.integer(errno)
        case .reap(let pid, let grace):
            writer.byte(Tag.reap.rawValue)
            writer.integer(pid)
            writer.integer(grace)
        case .reaped(let pid, let status):
            writer.byte(Tag.reaped.rawValue)
            writer.integer(pid)
            writer.integer(status)
        }
        return writer.bytes
    }

    init(decoding bytes: some Collection<UInt8>) throws(WorkerProtocolError) {
        var reader = WireReader(Array(bytes))
        guard let tag = Tag(rawValue: try reader.byte()) else { throw WorkerProtocolError(description: "unknown message") }
        switch tag {
        case .job: self = .job(id: try reader.integer(), options: try reader.options())
        case .cancel: self = .cancel(id: try reader.integer())
        case .ready: self = .ready
        case .finished: self = .finished(id: try reader.integer(), try reader.outcome())
        case .progress: self = .progress(id: try reader.integer(), fraction: try reader.double())
        case .alive:
            self = .alive(
                id: try reader.integer(),
                timeLimit: try reader.optional { reader throws(WorkerProtocolError) in try reader.double() },
                finishing: try reader.bool())
        case .spawn: self = .spawn
        case .spawned: self = .spawned(pid: try reader.integer())
        case .spawnFailed: self = .spawnFailed(errno: try reader.integer())
        case .reap: self = .reap(pid: try reader.integer(), graceMilliseconds: try reader.integer())
        case .reaped: self = .reaped(pid: try reader.integer(), status: try reader.integer())
        }
        guard reader.isAtEnd else { throw WorkerProtocolError(description: "trailing bytes") }
    }
}

/// Little-endian fixed-width fields, length-prefixed strings, a byte before each optional.
struct WireWriter {
    private(set) var bytes: [UInt8] = []

    mutating func byte(_ value: UInt8) { bytes.append(value) }
    mutating func bool(_ value: Bool) { byte(value ? 1 : 0) }
    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func int(_ value: Int) { integer(Int64(value)) }
    mutating func double(_ value: Double) { integer(value.bitPattern) }
    mutating func string(_ value: String) {
        let utf8 = Array(value.utf8.prefix(4096))
        integer(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }
    mutating func optional<T>(_ value: T?, _ write: (inout WireWriter, T) -> Void) {
        bool(value != nil)
        if let value { write(&self, value) }
    }

    mutating func options(_ options: TranscodeOptions) {
        optional(options.crf) { $0.int($1) }
        optional(options.quality) { $0.string($1.rawValue) }
        optional(options.codec) { $0.string($1.rawValue) }
        optional(options.format) { $0.string($1.rawValue) }
        string(options.preset)
        optional(options.maxWidth) { $0.int($1) }
        optional(options.maxHeight) { $0.int($1) }
        bool(options.audio)
        int(options.threads)
        int(options.limits.maxPixels)
        double(options.limits.maxDurationSeconds)
        int(options.limits.maxStreams)
        int(options.limits.probeSize)
        optional(options.limits.jobTimeLimitSeconds) { $0.double($1) }
        double(options.limits.jobTimePerVideoSecond)
        optional(options.limits.stallLimitSeconds) { $0.double($1) }
        int(options.limits.maxFrames)
        string(options.hdr.rawValue)
        string(options.deinterlace.rawValue)
        optional(options.poster) { writer, poster in
            writer.optional(poster.at) { $0.double($1) }
            writer.string(poster.format.rawValue)
        }
        optional(options.segment) { $0.segmentWindow($1) }
        optional(options.splitPass) { $0.splitPass($1) }
    }

    mutating func outcome(_ outcome: WorkerOutcome) {
        switch outcome {
        case .report(let report):
            byte(0)
            string(report.inputFormat)
            string(report.inputVideoCodec)
            int(report.width)
            int(report.height)
            int(report.videoFrames)
            integer(report.audioSamples)
            bool(report.hasAudio)
            bool(report.audioCopied)
            optional(report.inputDuration) { $0.double($1) }
            double(report.outputDuration)
            integer(report.inputBytes)
            integer(report.outputBytes)
            double(report.seconds)
            int(report.threads)
            integer(UInt16(min(report.videoFilters.count, Int(UInt16.max))))
            for stage in report.videoFilters.prefix(Int(UInt16.max)) { string(stage) }
            string(report.videoFilterGraph)
            int(report.videoFilterRebuilds)
        case .failed(let error):
            byte(1)
            self.error(error)
        case .outOfMemory:
            byte(2)
        }
    }

    mutating func error(_ error: TranscodeError) {
        switch error {
        case .notAVideo(let detected): byte(0); optional(detected) { $0.string($1) }
        case .noVideoStream: byte(1)
        case .unsupportedCodec(let codec): byte(2); string(codec)
        case .corruptInput(let detail): byte(3); string(detail)
        case .limitExceeded(let limit): byte(4); string(limit.rawValue)
        case .cancelled: byte(5)
        case .io(let errno): byte(6); integer(errno.rawValue)
        case .internal(let code, let message): byte(7); integer(code); string(message)
        case .invalidOption(let detail): byte(8); string(detail)
        case .pastTheEnd(let at, let last): byte(9); double(at); double(last)
        }
    }
}

struct WireReader {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position == bytes.count }

    private static let truncated = WorkerProtocolError(description: "truncated message")

    mutating func byte() throws(WorkerProtocolError) -> UInt8 {
        guard position < bytes.count else { throw Self.truncated }
        defer { position += 1 }
        return bytes[position]
    }
    mutating func bool() throws(WorkerProtocolError) -> Bool {
        switch try byte() {
        case 0: false
        case 1: true
        default: throw WorkerProtocolError(description: "not a boolean")
        }
    }
    mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) throws(WorkerProtocolError) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - position >= size else { throw Self.truncated }
        var value = T.zero
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: bytes[position..<position + size]) }
        position += size
        return T(littleEndian: value)
    }
    mutating func int() throws(WorkerProtocolError) -> Int {
        let value: Int64 = try integer()
        guard let narrowed = Int(exactly: value) else { throw WorkerProtocolError(description: "integer out of range") }
        return narrowed
    }
    mutating func double() throws(WorkerProtocolError) -> Double { Double(bitPattern: try integer()) }
    mutating func string() throws(WorkerProtocolError) -> String {
        let count = Int(try integer(UInt16.self))
        guard bytes.count - position >= count else { throw Self.truncated }
        defer { position += count }
        return String(decoding: bytes[position..<position + count], as: UTF8.self)
    }
    mutating func optional<T>(_ read: (inout WireReader) throws(WorkerProtocolError) -> T) throws(WorkerProtocolError) -> T? {
        try bool() ? try read(&self) : nil
    }

    /// A string naming one case of `Choice`.
    mutating func choice<Choice: RawRepresentable>(_: Choice.Type = Choice.self) throws(WorkerProtocolError) -> Choice
    where Choice.RawValue == String {
        let text = try string()
        guard let value = Choice(rawValue: text) else { throw WorkerProtocolError(description: "unknown value \(text)") }
        return value
    }

    mutating func options() throws(WorkerProtocolError) -> TranscodeOptions {
        var options = TranscodeOptions()
        options.crf = try optional { reader throws(WorkerProtocolError) in try reader.int() }
        options.quality = try optional { reader throws(WorkerProtocolError) in try reader.choice() }
        options.codec = try optional { reader throws(WorkerProtocolError) in try reader.choice() }
        options.format = try optional { reader throws(WorkerProtocolError) in try reader.choice() }
        options.preset = try string()
        options.maxWidth = try optional { reader throws(WorkerProtocolError) in try reader.int() }
        options.maxHeight = try optional { reader throws(WorkerProtocolError) in try reader.int() }
        options.audio = try bool()
        options.threads = try int()
        options.limits.maxPixels = try int()
        options.limits.maxDurationSeconds = try double()
        options.limits.maxStreams = try int()
        options.limits.probeSize = try int()
        options.limits.jobTimeLimitSeconds = try optional { reader throws(WorkerProtocolError) in try reader.double() }
        options.limits.jobTimePerVideoSecond = try double()
        options.limits.stallLimitSeconds = try optional { reader throws(WorkerProtocolError) in try reader.double() }
        options.limits.maxFrames = try int()
        let hdr = try string()
        guard let hdrChoice = TranscodeOptions.HDR(rawValue: hdr) else {
            throw WorkerProtocolError(description: "unknown hdr \(hdr)")
        }
        options.hdr = hdrChoice
        let deinterlace = try string()
        guard let deinterlaceChoice = TranscodeOptions.Deinterlace(rawValue: deinterlace) else {
            throw WorkerProtocolError(description: "unknown deinterlace \(deinterlace)")
        }
        options.deinterlace = deinterlaceChoice
        options.poster = try optional { reader throws(WorkerProtocolError) in
            TranscodeOptions.Poster(
                at: try reader.optional { reader throws(WorkerProtocolError) in try reader.double() },
                format: try reader.choice())
        }
        options.segment = try optional { reader throws(WorkerProtocolError) in try reader.segmentWindow() }
        options.splitPass = try optional { reader throws(WorkerProtocolError) in try reader.splitPass() }
        return options
    }

    mutating func outcome() throws(WorkerProtocolError) -> WorkerOutcome {
        switch try byte() {
        case 0:
            var report = TranscodeReport(
                inputFormat: try string(), inputVideoCodec: try string(), width: try int(), height: try int(),
                videoFrames: try int(), audioSamples: try integer(), hasAudio: try bool(), audioCopied: try bool(),
                inputDuration: try optional { reader throws(WorkerProtocolError) in try reader.double() },
                outputDuration: try double(), inputBytes: try integer(), outputBytes: try integer(),
                seconds: try double(), threads: try int())
            let stages = Int(try integer(UInt16.self))
            report.videoFilters = try (0..<stages).map { _ throws(WorkerProtocolError) in try string() }
            report.videoFilterGraph = try string()
            report.videoFilterRebuilds = try int()
            return .report(report)
        case 1: return .failed(try error())
        case 2: return .outOfMemory
        default: throw WorkerProtocolError(description: "unknown outcome")
        }
    }

    mutating func error() throws(WorkerProtocolError) -> TranscodeError {
        switch try byte() {
        case 0: return .notAVideo(detected: try optional { reader throws(WorkerProtocolError) in try reader.string() })
        case 1: return .noVideoStream
        case 2: return .unsupportedCodec(try string())
        case 3: return .corruptInput(try string())
        case 4:
            let name = try string()
            guard let limit = TranscodeError.Limit(rawValue: name) else {
                throw WorkerProtocolError(description: "unknown limit \(name)")
            }
            return .limitExceeded(limit)
        case 5: return .cancelled
        case 6: return .io(Errno(rawValue: try integer()))
        case 7: return .internal(averror: try integer(), message: try string())
        case 8: return .invalidOption(try string())
        case 9: return .pastTheEnd(at: try double(), last: try double())
        default: throw WorkerProtocolError(description: "unknown error")
        }
    }
}
