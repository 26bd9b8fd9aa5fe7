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

    /// The `curl` lines of the shell blocks under "## The API", but the async flow's.
    static func examples() throws -> [Example] {
        let text = try String(contentsOfFile: readme, encoding: .utf8)
        guard let start = text.range(of: "\n## The API\n") else { throw DocumentError("README.md has no '## The API'") }
        // Up to the next section, or to the async flow, which `asyncFlowRuns` runs in its order.
        let section = (text[start.upperBound...].components(separatedBy: "\n## ").first ?? "")
            .components(separatedBy: "\n### Async jobs\n").first ?? ""
        return section.split(separator: "\n").filter { $0.hasPrefix("curl ") }.map { line in
            let parts = line.components(separatedBy: "  #")
            return Example(command: parts[0].trimmingCharacters(in: .whitespaces),
                           comment: parts.dropFirst().joined(separator: "#").trimmingCharacters(in: .whitespaces))
        }
    }

    /// How the README writes a job id it cannot know (`/jobs/web-1.9f3c…`): those lines are the async flow, run in
    /// order by `asyncFlowRuns` with the id the first one is given.
    static let elidedJob = "web-1.9f3c…"

    /// The async flow's lines, in order: the upload asking for a job, then the lines that use its id.
    static func asyncFlow() throws -> [Example] {
        let text = try String(contentsOfFile: readme, encoding: .utf8)
        guard let start = text.range(of: "\n### Async jobs\n") else { throw DocumentError("README.md has no '### Async jobs'") }
        let block = text[start.upperBound...].components(separatedBy: "```").dropFirst().first ?? ""
        return block.split(separator: "\n").filter { $0.hasPrefix("curl ") }.map { line in
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
        case "in.mov", "long.mov":
            clip.container = "mov"
            // Long enough for the poster example's at=2.
            clip.seconds = 2.5
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
            let (status, printed) = try Self.runCurl(command, curl: curl, in: scratch)
            #expect(status == 0)
            #expect(printed.hasSuffix("status=200\n"), "\(printed.suffix(600))")
            // `-o FILE` saved the answer: it must decode as a video, or be the image it says it is.
            if let index = words.firstIndex(of: "-o") { try Self.checkSaved(scratch.path(words[index + 1])) }
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

    /// A README line as a shell runs it in `scratch`, with its own words, then: fail loudly, give up after two
    /// minutes, and print the status last. Its exit status and what it printed.
    static func runCurl(_ command: String, curl: String, in scratch: Scratch) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command + " -sS --max-time 120 -w '\\nstatus=%{http_code}\\n'"]
        process.currentDirectoryURL = scratch.url
        process.environment = ["PATH": URL(fileURLWithPath: curl).deletingLastPathComponent().path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, printed)
    }

    /// A saved answer: an image by its signature, a video by decoding it.
    static func checkSaved(_ path: String) throws {
        let signatures: [String: [UInt8]] = ["webp": Array("RIFF".utf8), "png": [0x89, 0x50, 0x4e, 0x47], "jpeg": [0xff, 0xd8, 0xff]]
        if let signature = signatures[URL(fileURLWithPath: path).pathExtension] {
            let head = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)).prefix(signature.count))
            #expect(head == signature, "\(path) starts with \(head)")
            return
        }
        let saved = try MediaProbe.probe(.path(path), decode: true)
        #expect((saved.video?.frameCount ?? 0) > 0)
    }

    @Test("the async flow runs as written: 202 with a Location, its status, its events, its result, its deletion")
    func asyncFlowRuns() async throws {
        let curl = try #require(which("curl"), "curl is installed by `make deps`")
        let flow = try Self.asyncFlow()
        #expect(flow.count >= 4 && flow.dropFirst().allSatisfy { $0.command.contains(Self.elidedJob) })
        try await onThread {
            let scratch = try Scratch()
            let live = try LiveService.inProcess { $0.maxBody = 64 << 20; $0.queueBytes = 256 << 20 }
            defer { live.stop() }
            var job: String?
            for example in flow {
                let words = example.command.split(separator: " ").map(String.init)
                for word in words where word.hasPrefix("@") { try Self.writeInput(String(word.dropFirst()), in: scratch) }
                var command = example.command.replacingOccurrences(of: "localhost:3000", with: "localhost:\(live.port)")
                if let job { command = command.replacingOccurrences(of: Self.elidedJob, with: job) }
                let (status, printed) = try Self.runCurl(command, curl: curl, in: scratch)
                #expect(status == 0, "\(command)")
                if job == nil {
                    #expect(printed.hasSuffix("status=202\n"), "\(printed.suffix(600))")
                    let location = printed.split(separator: "\r\n").first { $0.lowercased().hasPrefix("location: /jobs/") }
                    job = try #require(location.map { String($0.dropFirst("location: /jobs/".count)) }, "\(printed)")
                    // The steps after it want the finished job: its result, then its deletion.
                    _ = try waitForJob(port: live.port, job!)
                    continue
                }
                let expected = words.contains("DELETE") ? "status=204\n" : "status=200\n"
                #expect(printed.hasSuffix(expected), "\(command): \(printed.suffix(600))")
                if let index = words.firstIndex(of: "-o") { try Self.checkSaved(scratch.path(words[index + 1])) }
            }
        }
    }

    /// Polls the job's status until it is final; its state.
    func waitForJob(port: Int, _ job: String) throws -> String {
        for _ in 0..<600 {
            let client = try TestClient(port: port)
            try client.send("GET /jobs/\(job) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            let text = try client.readResponse().text
            for state in ["succeeded", "failed", "cancelled"] where text.contains("\"state\":\"\(state)\"") { return state }
            usleep(100_000)
        }
        throw DocumentError("job \(job) never finished")
    }
}
