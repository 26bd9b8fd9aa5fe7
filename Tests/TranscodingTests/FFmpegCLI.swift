import Foundation
import TestSupport
import Testing

/// The ffmpeg CLI as a measuring instrument, where its filters are the reference: idet, psnr, signalstats, and raw
/// picture samples. Installed by `make deps`. Each run uses one thread: the rest of the test run shares the machine.
enum FFmpegCLI {
    static let path = which("ffmpeg")
    static var available: Bool { path != nil }

    struct CLIError: Error, CustomStringConvertible {
        let description: String
    }

    /// stderr of `ffmpeg -i input… -lavfi graph -f null -`, which is where the measuring filters report.
    static func measure(_ inputs: [String], _ graph: String) throws -> String {
        var arguments = ["-nostdin", "-v", "info", "-threads", "1", "-filter_complex_threads", "1"]
        for input in inputs { arguments += ["-i", input] }
        let result = try run(path!, arguments + ["-lavfi", graph, "-an", "-f", "null", "-"])
        guard result.status == 0 else { throw CLIError(description: "ffmpeg failed: \(result.err.suffix(600))") }
        return result.err
    }

    /// The `idet` filter's multi-frame verdicts over every frame of `file`.
    struct FieldVerdicts: Equatable, CustomStringConvertible {
        var tff = 0, bff = 0, progressive = 0, undetermined = 0
        var description: String { "TFF \(tff), BFF \(bff), progressive \(progressive), undetermined \(undetermined)" }
    }

    static func idet(_ file: String) throws -> FieldVerdicts {
        let text = try measure([file], "[0:v]idet")
        // The CLI configures its graph once to probe it, then for the frames; the last report is the frames'.
        guard let line = text.split(separator: "\n").last(where: { $0.contains("Multi frame detection:") }) else {
            throw CLIError(description: "no idet report in: \(text.suffix(600))")
        }
        func count(_ name: String) -> Int {
            guard let range = line.range(of: name + ":") else { return -1 }
            return Int(line[range.upperBound...].drop { $0 == " " }.prefix { $0.isNumber }) ?? -1
        }
        return FieldVerdicts(
            tff: count("TFF"), bff: count("BFF"), progressive: count("Progressive"), undetermined: count("Undetermined"))
    }

    /// Average PSNR (all planes, dB) of `file`'s video against `reference`'s video put through `chain`.
    static func psnr(_ file: String, against reference: String, through chain: String) throws -> Double {
        let text = try measure([file, reference], "[1:v]\(chain)[reference];[0:v][reference]psnr")
        guard let range = text.range(of: "average:", options: .backwards),
            let value = Double(text[range.upperBound...].prefix { !$0.isWhitespace })
        else { throw CLIError(description: "no PSNR in: \(text.suffix(600))") }
        return value
    }

    /// Average PSNR of two images (or first frames) compared in RGB: a JPEG decodes to full-range BT.601 YUV, and
    /// letting the filter pick a common YUV format measures swscale's range handling rather than the pictures.
    static func psnrRGB(_ file: String, against reference: String) throws -> Double {
        let text = try measure([file, reference], "[0:v]format=rgb24[a];[1:v]format=rgb24[b];[a][b]psnr")
        guard let range = text.range(of: "average:", options: .backwards),
            let value = Double(text[range.upperBound...].prefix { !$0.isWhitespace })
        else { throw CLIError(description: "no PSNR in: \(text.suffix(600))") }
        return value
    }

    /// Mean luma (8-bit code) and mean saturation over every frame, from the `signalstats` filter.
    static func signalStats(_ file: String, through chain: String? = nil) throws -> (luma: Double, saturation: Double) {
        let graph = "[0:v]" + (chain.map { $0 + "," } ?? "") + "signalstats,metadata=print:file=-"
        guard let path else { throw CLIError(description: "no ffmpeg") }
        let result = try run(path, ["-nostdin", "-v", "error", "-threads", "1", "-filter_complex_threads", "1", "-i", file,
                                    "-lavfi", graph, "-an", "-f", "null", "-"])
        guard result.status == 0 else { throw CLIError(description: "ffmpeg failed: \(result.err.suffix(600))") }
        func mean(_ key: String) -> Double {
            let values = result.out.split(separator: "\n").compactMap { line -> Double? in
                guard line.hasPrefix("lavfi.signalstats.\(key)=") else { return nil }
                return Double(line.split(separator: "=")[1])
            }
            return values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
        }
        return (mean("YAVG"), mean("SATAVG"))
    }

    /// The raw 8-bit samples of one plane (0: Y, 1: U, 2: V) of the first frame, inside `crop` (w:h:x:y, in that
    /// plane's own pixels).
    static func samples(_ file: String, plane: Int, crop: String) throws -> [UInt8] {
        let name = ["y", "u", "v"][plane]
        let result = try runData(path!, ["-nostdin", "-v", "error", "-i", file, "-frames:v", "1", "-vf",
                                         "extractplanes=\(name),crop=\(crop)", "-f", "rawvideo", "-"])
        return result
    }

    private static func runData(_ executable: String, _ arguments: [String]) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CLIError(description: "ffmpeg \(arguments) failed") }
        return Array(data)
    }
}

extension Array where Element == UInt8 {
    var mean: Double { isEmpty ? .nan : Double(reduce(0) { $0 + Int($1) }) / Double(count) }
}
