import ArgumentParser
import Glibc
import SystemSupport
import Transcoding
import WorkerIsolation

/// `ffmpeg-processor transcode IN OUT`: one file, the same engine as the service.
struct TranscodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transcode",
        abstract: "Transcode one file to MP4 and print a one-line report.",
        discussion: "Exit status: 0 done, 2 bad input or option, or more memory needed than --job-memory (reason on stderr), 1 internal error."
    )

    @Argument(help: "The input video.") var input: String
    @Argument(help: "The MP4 to write.") var output: String
    @Option(help: "x264 constant rate factor, 0...51.") var crf: Int = 23
    @Option(help: "x264 preset (ultrafast ... placebo).") var preset: String = "medium"
    @Option(help: "Largest output width; aspect ratio kept.") var width: Int?
    @Option(help: "Largest output height; aspect ratio kept.") var height: Int?
    @Flag(help: "Drop the audio.") var noAudio = false
    @Option(help: "Encoder and decoder threads (0: one per core).") var threads: Int = 0
    @Option(help: "HDR (PQ or HLG) input: tonemap (to BT.709 SDR) or keep.") var hdr: String = "tonemap"
    @Option(help: "Interlaced input: auto (deinterlace with bwdif) or off.") var deinterlace: String = "auto"
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
        } catch {
            printToStandardError("ffmpeg-processor: \(error)")
            throw ExitCode(2)
        }
        // An input that cannot be opened is the caller's mistake (a usage error, 2), unlike an output that cannot
        // be written (1); opening it here is what tells the two apart.
        let inputFile = try openFile(input, O_RDONLY, failure: 2)
        guard sandbox else {
            return try report { () throws(TranscodeError) in
                try transcode(input: .fileDescriptor(inputFile.rawValue), output: .path(output), options: options)
            }
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
            try transcode(input: .fileDescriptor(inputFile.rawValue), output: .fileDescriptor(outputFile.rawValue),
                          options: options)
        }
    }

    /// Prints the report, or the error with the exit status for its kind.
    private func report(_ body: () throws(TranscodeError) -> TranscodeReport) throws {
        do {
            print(try body().summary)
        } catch {
            printToStandardError("ffmpeg-processor: \(error)")
            throw ExitCode(error.isInputError ? 2 : 1)
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
