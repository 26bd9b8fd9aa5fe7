import Foundation

/// A scratch folder per test, removed when the test's `Scratch` goes away.
public final class Scratch: Sendable {
    public let url: URL

    public init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("fp-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// This process's open descriptors that point into `folder`: tests run in parallel, so a leak is looked for by
/// where descriptors point rather than by how many there are.
public func descriptors(under folder: String) -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return entries.compactMap { entry in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + entry) else { return nil }
        return target.hasPrefix(folder) ? target : nil
    }
}

/// Media committed with the repository (Tests/Media), found from this file's place in the tree.
public enum TestMedia {
    /// The original experiment's clip: 480x300 VFR H.264, 11 frames over 9.6 s, no audio.
    public static var trialClip: String { path("trial_video.mp4") }

    public static func path(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Media/\(name)").standardizedFileURL.path
    }
}
