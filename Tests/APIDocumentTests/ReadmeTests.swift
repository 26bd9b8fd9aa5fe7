import Foundation
import MediaFixtures
import TestSupport
import Testing
import Transcoding

/// The README's API examples, run as a reader would paste them, so that they cannot drift from the service again
/// (one sent PUT for months).
@Suite("the README's API section runs as written")
struct ReadmeTests {
    /// One `curl` line of the section, and its trailing comment.
    struct Example: Sendable, CustomTestStringConvertible {
        var command: String
        var comment: String
        var testDescription: String { command }
    }

    static let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../README.md").standardizedFileURL.path

    /// The `curl` lines of the shell blocks under "## The API", up to the next section.
    static func examples() throws -> [Example] {
        let text = try String(contentsOfFile: readme, encoding: .utf8)
        guard let start = text.range(of: "\n## The API\n") else { throw DocumentError("README.md has no '## The API'") }
        let section = text[start.upperBound...].components(separatedBy: "\n## ").first ?? ""
        return section.split(separator: "\n").filter { $0.hasPrefix("curl ") }.map { line in
            let parts = line.components(separatedBy: "  #")
            return Example(command: parts[0].trimmingCharacters(in: .whitespaces),
                           comment: parts.dropFirst().joined(separator: "#").trimmingCharacters(in: .whitespaces))
        }
    }

    /// The files the examples upload, under the names they give them; a new name needs a fixture here.
    static func writeInput(_ name: String, in scratch: Scratch) throws {
        var clip = SyntheticClip()
        clip.seconds = 0.5
        switch name {
        case "in.mov": clip.container = "mov"
        case "in.mkv": clip.container = "matroska"
        case "big.avi": clip.container = "avi"
        case "phone.mov":
            clip.container = "mov"
            clip.videoCodec = "libx265"
            clip.signal = .hlg
        default: throw DocumentError("the README uploads \(name), which this test has no fixture for")
        }
        try clip.write(to: scratch.path(name))
    }

    @Test("the section has the examples this test knows how to feed")
    func found() throws {
        let examples = try Self.examples()
        #expect(examples.count >= 6, "\(examples.map(\.command))")
        #expect(examples.allSatisfy { $0.command.contains("localhost:3000/") })
    }

    @Test("each curl line gets 200, and what it saves is a video", arguments: try examples())
    func runs(example: Example) async throws {
        let curl = try #require(which("curl"), "curl is installed by `make deps`")
        try await onThread {
            let scratch = try Scratch()
            let words = example.command.split(separator: " ").map(String.init)
            for (index, word) in words.enumerated() {
                if word.hasPrefix("@") { try Self.writeInput(String(word.dropFirst()), in: scratch) }
                if word == "-T" { try Self.writeInput(words[index + 1], in: scratch) }
            }
            let live = try LiveService.inProcess { $0.maxBody = 64 << 20; $0.queueBytes = 256 << 20 }
            defer { live.stop() }
            let command = example.command.replacingOccurrences(of: "localhost:3000", with: "localhost:\(live.port)")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            // The line's own words, then: fail loudly, and print the status last.
            process.arguments = ["-c", command + " -sS -w '\\nstatus=%{http_code}\\n'"]
            process.currentDirectoryURL = scratch.url
            process.environment = ["PATH": URL(fileURLWithPath: curl).deletingLastPathComponent().path]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            #expect(printed.hasSuffix("status=200\n"), "\(printed.suffix(600))")
            // `-o FILE` saved the answer: it must decode as a video.
            if let index = words.firstIndex(of: "-o") {
                let saved = try MediaProbe.probe(.path(scratch.path(words[index + 1])), decode: true)
                #expect((saved.video?.frameCount ?? 0) > 0)
            }
            // A comment that quotes a header ("X-Video-Filters: tonemap(hlg->bt709)...") quotes what `-D -` shows.
            if let colon = example.comment.range(of: ": "), words.contains("-D") {
                let name = example.comment[..<colon.lowerBound]
                let claimed = example.comment[colon.upperBound...].replacingOccurrences(of: "...", with: "")
                let shown = printed.split(separator: "\r\n").first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                #expect(shown?.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).hasPrefix(claimed) == true,
                        "the README says \(example.comment), the service sent \(shown ?? "nothing")")
            }
        }
    }
}
