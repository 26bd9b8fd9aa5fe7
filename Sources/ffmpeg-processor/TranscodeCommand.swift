import ArgumentParser
import Glibc
import SystemSupport
import Transcoding
import WorkerIsolation

/// `ffmpeg-processor transcode IN OUT`: one file, the same engine as the service.
struct TranscodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transcode",
        abstract: "Transcode one file (MP4 or WebM) and print a one-line report.",
        discussion: "Exit status: 0 done, 2 bad input or option, or more memory needed than --job-memory (reason on stderr), 1 internal error."
    )

    @Argument(help: "The input video.") var input: String
    @Argument(help: "The file to write.") var output: String
    @Option(help: "Video codec: h264, hevc, av1 or vp9 (default: the format's, h264 in mp4, vp9 in webm).") var codec: String?
    @Option(help: "Container: mp4 (h264, hevc, av1 + AAC) or webm (vp9, av1 + Opus) (default: the codec's).") var format: String?
    @Option(help: "Constant rate factor on the codec's own scale (h264/hevc 0...51, av1 1...63, vp9 0...63).") var crf: Int?
    @Option(help: "Codec-neutral quality: low, medium (default) or high.") var quality: String?
    @Option(help: "x264/x265 preset (ultrafast ... placebo).") var preset: String = "medium"
    @Option(help: "Largest output width; aspect ratio kept.") var width: Int?
    @Option(help: "Largest output height; aspect ratio kept.") var height: Int?
    @Flag(help: "Drop the audio.") var noAudio = false
    @Option(help: "Encoder and decoder threads (0: one per core).") var threads: Int = 0
    @Option(help: "HDR (PQ or HLG) input: tonemap (to BT.709 SDR) or keep.") var hdr: String = "tonemap"
    @Option(help: "Interlaced input: auto (deinterlace with bwdif) or off.") var deinterlace: String = "auto"
    @Flag(help: "Write one frame as an image (a poster) instead of the video.") var poster = false
    @Option(help: "With --poster: seconds from the start, or auto (the most representative frame of the first 3 s).")
    var at: String = "auto"
    @Option(help: "With --poster: jpeg, webp or png (default: the output's extension, else jpeg).") var imageFormat: String?
    @Flag(help: "Open both files, then confine this process as the service's workers are (seccomp allow-list, no new privileges, no core file) before reading the input.")
    var sandbox = false
    @Option(help: "With --sandbox: the process's address space, bytes (RLIMIT_AS).") var jobMemory: Int64?

    func run() throws {
        var options = TranscodeOptions()
        options.crf = crf
        options.preset = preset
        options.maxWidth = width
        options.maxHeight = height
        options.audio = !noAudio
        options.threads = threads
        do {
            // Parsed here rather than by ArgumentParser, so that a bad value is reported as every other bad option is.
            options.hdr = try TranscodeOptions.parse("hdr", hdr)
            options.deinterlace = try TranscodeOptions.parse("deinterlace", deinterlace)
            options.codec = try codec.map { (text) throws(TranscodeError) in try TranscodeOptions.parse("codec", text) }
            options.format = try format.map { (text) throws(TranscodeError) in try TranscodeOptions.parse("format", text) }
            // `out.webm` says the format as well as --format would.
            if options.format == nil, codec == nil, output.hasSuffix(".webm") { options.format = .webm }
            options.quality = try quality.map { (text) throws(TranscodeError) in try TranscodeOptions.parse("quality", text) }
        } catch {
            printToStandardError("ffmpeg-processor: \(error)")
            throw ExitCode(2)
        }
        // An input that cannot be opened is the caller's mistake (a usage error, 2), unlike an output that cannot
        // be written (1); opening it here is what tells the two apart.
        let inputFile = try openFile(input, O_RDONLY, failure: 2)
        let posterOptions = try poster ? makePosterOptions(options) : nil
        func run(_ input: MediaLocation, _ output: MediaLocation) throws(TranscodeError) -> String {
            if let posterOptions {
                let made = try Transcoding.poster(input: input, output: output, options: posterOptions)
                return "poster=\(made.width)x\(made.height) at=\(made.seconds) s bytes=\(made.bytes)"
            }
            return try transcode(input: input, output: output, options: options).summary
        }
        guard sandbox else {
            return try report { () throws(TranscodeError) in try run(.fileDescriptor(inputFile.rawValue), .path(output)) }
        }
        // Both files opened, then the sandbox: from here the process can only read and write what it holds.
        // Read back as well as written: `+faststart` moves the moov box through the same descriptor.
        let outputFile = try openFile(output, O_RDWR | O_CREAT | O_TRUNC, failure: 1)
        // Before the limit: once confined, the engine cannot ask what it is.
        JobMemory.declareAddressSpaceLimit(jobMemory)
        do {
            try Sandbox.confine(Sandbox.Limits(addressSpace: jobMemory))
        } catch {
            printToStandardError("ffmpeg-processor: \(error)")
            throw ExitCode(1)
        }
        try report { () throws(TranscodeError) in
            try run(.fileDescriptor(inputFile.rawValue), .fileDescriptor(outputFile.rawValue))
        }
    }

    private func makePosterOptions(_ video: TranscodeOptions) throws -> TranscodeOptions {
        var options = video
        var request = TranscodeOptions.Poster()
        do {
            if at != "auto" {
                guard let seconds = Double(at) else { throw TranscodeError.invalidOption("at must be seconds or auto, not '\(at)'") }
                request.at = seconds
            }
            let named = imageFormat
                ?? TranscodeOptions.Poster.ImageFormat.allCases.first { output.hasSuffix(".\($0.rawValue)") }?.rawValue
            if let named { request.format = try TranscodeOptions.parse("image format", named) }
            options.poster = request
        } catch {
            printToStandardError("ffmpeg-processor: \(error)")
            throw ExitCode(2)
        }
        return options
    }

    /// Prints the report, or the error with the exit status for its kind.
    private func report(_ body: () throws(TranscodeError) -> String) throws {
        do {
            print(try body())
        } catch {
            printToStandardError("ffmpeg-processor: \(error)")
            // Straight out, allocating nothing more: after a job that ran out of --job-memory the address space can
            // still be full (freed memory kept by the allocator, thread stacks), and the argument parser's own exit
            // path died there of a failed 16 KiB allocation, turning the 2 into a crash.
            Glibc.exit(error.isInputError ? 2 : 1)
        }
    }

    private func openFile(_ path: String, _ flags: Int32, failure: Int32) throws -> OwnedDescriptor {
        do {
            return OwnedDescriptor(taking: try syscallValue("open") { open(path, flags | O_CLOEXEC, 0o644) })
        } catch {
            printToStandardError("ffmpeg-processor: \(path): \(error.errno)")
            throw ExitCode(failure)
        }
    }
}
