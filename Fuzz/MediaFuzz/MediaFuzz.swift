import ArgumentParser
import Glibc
import MediaFixtures
import Transcoding

/// `media-fuzz`: mutants of real clips through `transcode`. Each must give a valid MP4 or a typed error, within the
/// job time limit; a crash leaves the mutant that caused it in `current.bin` for a regression test.
@main
struct MediaFuzz: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "media-fuzz", abstract: "Transcode mutated clips; fail on a crash, a hang or an invalid output.")

    @Option(help: "Mutants to try.") var count = 1000
    @Option(help: "Random seed (a run is reproducible from it).") var seed: UInt64 = 1
    @Option(help: "Job time limit, seconds.") var timeLimit = 5.0
    @Option(help: "Working folder (seeds, the current mutant, outputs).") var workDirectory = "/tmp/media-fuzz"
    @Option(help: "Extra seed clips.") var seedFile: [String] = []
    @Option(help: "Also keep every mutant in this folder, as mutant-N.bin (scripts/seccomp-measure.sh sends them to a worker).")
    var saveMutants: String?

    func run() throws {
        mkdir(workDirectory, 0o755)
        if let saveMutants { mkdir(saveMutants, 0o755) }
        let seeds = try makeSeeds() + seedFile.map { try readFile($0) }
        var random = SplitMix(seed: seed)
        var outcomes: [String: Int] = [:]
        var failures: [String] = []
        var failed = 0
        let current = workDirectory + "/current.bin"
        let output = workDirectory + "/out.mp4"
        var options = TranscodeOptions()
        options.preset = "ultrafast"
        options.threads = 1
        options.limits.jobTimeLimitSeconds = timeLimit
        for index in 0..<count {
            let original = seeds[Int(random.next() % UInt64(seeds.count))]
            let (mutant, how) = mutate(original, &random)
            try writeFile(current, mutant)
            if let saveMutants { try writeFile("\(saveMutants)/mutant-\(index).bin", mutant) }
            let started = now()
            let outcome: String
            do {
                let report = try transcode(input: .path(current), output: .path(output), options: options)
                let probe = try MediaProbe.probe(.path(output), decode: true)
                if probe.video?.codec != "h264" || probe.video?.frameCount != report.videoFrames {
                    failures.append("#\(index) \(how): output does not decode as the report says")
                }
                outcome = "ok"
            } catch {
                outcome = kind(error)
                if !error.isInputError && error != .limitExceeded(.jobTime) {
                    failures.append("#\(index) \(how): \(error)")
                }
            }
            let seconds = now() - started
            if seconds > timeLimit + 2 { failures.append("#\(index) \(how): ran \(seconds) s, past the time limit") }
            if failures.count > failed {
                // Keep the mutant that failed, so that it can become a regression test.
                try writeFile(workDirectory + "/failure-\(index).bin", mutant)
                failed = failures.count
            }
            outcomes[outcome, default: 0] += 1
            if (index + 1) % 100 == 0 { print("\(index + 1)/\(count) \(outcomes.sorted { $0.key < $1.key })") }
        }
        print("mutants: \(count), outcomes: \(outcomes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        unlink(current)
        unlink(output)
        if !failures.isEmpty {
            print("FAILURES (\(failures.count)):\n" + failures.joined(separator: "\n"))
            throw ExitCode(1)
        }
    }

    private func makeSeeds() throws -> [[UInt8]] {
        let shapes: [(String, String, String?, String?)] = [
            ("mp4", "mp4", "libx264", "aac"), ("avi", "avi", "mpeg4", "mp2"), ("webm", "webm", "libvpx", "libvorbis"),
            ("mkv", "matroska", "libx264", "aac"), ("ts", "mpegts", "libx264", "mp2"), ("flv", "flv", "flv", nil),
            // ADTS-framed AAC, which takes the copy path's header checks and aac_adtstoasc.
            ("aac.ts", "mpegts", "libx264", "aac"),
        ]
        let clips = try shapes.map { shape in
            var clip = SyntheticClip()
            clip.container = shape.1
            clip.videoCodec = shape.2
            clip.audioCodec = shape.3
            clip.width = 160
            clip.height = 120
            clip.seconds = 1
            let path = workDirectory + "/seed." + shape.0
            try clip.write(to: path)
            return try readFile(path)
        }
        // The filter graph's inputs: 10-bit HLG HEVC (tone mapping), interlaced H.264 (bwdif), and an animated GIF
        // (its demuxer and decoder, compositing).
        var filtered: [[UInt8]] = []
        for (name, configure) in [
            ("hlg.mov", { (clip: inout SyntheticClip) in
                clip.container = "mov"; clip.videoCodec = "libx265"; clip.signal = .hlg; clip.audioCodec = nil }),
            ("interlaced.ts", { $0.container = "mpegts"; $0.interlaced = true; $0.audioCodec = "mp2" }),
        ] as [(String, (inout SyntheticClip) -> Void)] {
            var clip = SyntheticClip()
            clip.width = 160
            clip.height = 120
            clip.seconds = 1
            configure(&clip)
            let path = workDirectory + "/seed." + name
            try clip.write(to: path)
            filtered.append(try readFile(path))
        }
        var gif = AnimatedGIF()
        gif.width = 48
        gif.height = 32
        return clips + filtered + [gif.bytes()]
    }
}

private func kind(_ error: TranscodeError) -> String {
    switch error {
    case .notAVideo: "not-a-video"
    case .noVideoStream: "no-video"
    case .unsupportedCodec: "unsupported-codec"
    case .corruptInput: "corrupt"
    case .limitExceeded(let limit): "limit-\(limit)"
    case .cancelled: "cancelled"
    case .io: "io"
    case .internal: "internal"
    case .invalidOption: "invalid-option"
    case .pastTheEnd: "past-the-end"
    }
}

/// One random damage: flipped bits, a cut, a corrupted box size, a duplicated or swapped chunk, noise.
func mutate(_ input: [UInt8], _ random: inout SplitMix) -> ([UInt8], String) {
    var bytes = input
    func position() -> Int { Int(random.next() % UInt64(max(bytes.count, 1))) }
    switch random.next() % 6 {
    case 0:
        let flips = 1 + Int(random.next() % 32)
        for _ in 0..<flips { bytes[position()] ^= UInt8(1 << (random.next() % 8)) }
        return (bytes, "\(flips) bit flips")
    case 1:
        let length = position()
        return (Array(bytes.prefix(length)), "truncated at \(length)")
    case 2:
        // MP4-style box headers: a 4-letter type after a 32-bit size; sizes are what parsers trust most.
        let boxes = (4..<max(bytes.count - 4, 4)).filter { i in
            (0..<4).allSatisfy { (0x61...0x7a).contains(bytes[i + $0]) }
        }
        guard let box = boxes.isEmpty ? nil : boxes[Int(random.next() % UInt64(boxes.count))] else {
            return mutate(input, &random)
        }
        let size = UInt32(truncatingIfNeeded: [0, 1, 7, 8, 0xffff_ffff, 0x7fff_ffff, random.next()][Int(random.next() % 7)])
        for k in 0..<4 { bytes[box - 4 + k] = UInt8(truncatingIfNeeded: size >> (24 - 8 * k)) }
        return (bytes, "box size \(size) at \(box - 4)")
    case 3:
        let start = position(), length = min(1 + Int(random.next() % 4096), bytes.count - start)
        let insertAt = position()
        bytes.insert(contentsOf: bytes[start..<start + length], at: insertAt)
        return (bytes, "duplicated \(length) bytes from \(start) at \(insertAt)")
    case 4:
        let length = 1 + Int(random.next() % 2048)
        guard bytes.count > 2 * length else { return mutate(input, &random) }
        let a = Int(random.next() % UInt64(bytes.count - 2 * length))
        let b = a + length + Int(random.next() % UInt64(bytes.count - a - 2 * length + 1))
        let first = Array(bytes[a..<a + length])
        bytes.replaceSubrange(a..<a + length, with: bytes[b..<b + length])
        bytes.replaceSubrange(b..<b + length, with: first)
        return (bytes, "swapped \(length) bytes at \(a) and \(b)")
    default:
        let start = position(), length = min(1 + Int(random.next() % 512), bytes.count - start)
        for i in start..<start + length { bytes[i] = UInt8(truncatingIfNeeded: random.next()) }
        return (bytes, "\(length) random bytes at \(start)")
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

private func readFile(_ path: String) throws -> [UInt8] {
    guard let file = fopen(path, "rb") else { throw ValidationError("cannot read \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buffer, 1, buffer.count, file)
        if n == 0 { break }
        bytes += buffer[..<n]
    }
    return bytes
}

private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    guard let file = fopen(path, "wb") else { throw ValidationError("cannot write \(path)") }
    defer { fclose(file) }
    guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw ValidationError("short write to \(path)") }
}
