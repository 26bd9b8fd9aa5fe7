import Foundation
import MediaFixtures
import SystemSupport
import Transcoding

/// One video the harness uploads, opened once and read by every thread with pread.
public final class InputVideo: Sendable {
    public let path: String
    public let size: Int64
    /// What a valid answer must decode to; nil when outputs are not verified.
    public let expectation: Expectation?
    let fd: Int32

    public struct Expectation: Sendable, Equatable {
        public var frames: Int
        /// First frame's start to the last frame's end, seconds.
        public var duration: Double
        /// One frame's share of the duration: the tolerance on the output's duration.
        public var frameDuration: Double { frames > 0 ? duration / Double(frames) : 0 }

        public init(frames: Int, duration: Double) {
            self.frames = frames
            self.duration = duration
        }
    }

    public init(path: String, expectation: Expectation?) throws(HarnessError) {
        let fd: Int32
        do { fd = try syscallValue("open") { open(path, O_RDONLY | O_CLOEXEC) } } catch {
            throw HarnessError("cannot open \(path): \(error.errno)")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw HarnessError("\(path) is not a regular file")
        }
        self.fd = fd
        self.path = path
        self.size = Int64(info.st_size)
        self.expectation = expectation
    }

    deinit { close(fd) }

    /// Opens `path` and, when verifying, decodes it once to learn the frame count and duration answers must keep.
    public static func load(_ path: String, verify: Bool) throws(HarnessError) -> InputVideo {
        let unverified = try InputVideo(path: path, expectation: nil)
        guard verify else { return unverified }
        let probe: MediaProbe
        do { probe = try MediaProbe.probe(.path(path), decode: true) } catch {
            throw HarnessError("\(path) is not a usable video: \(error)")
        }
        guard let video = probe.video, let frames = video.frameCount, frames > 0, let duration = video.decodedDuration else {
            throw HarnessError("\(path) has no decodable video stream")
        }
        return try InputVideo(path: path, expectation: Expectation(frames: frames, duration: duration))
    }

    /// Every regular, non-hidden file of `directory` in name order; files that are not videos are skipped with a
    /// note on stderr when verifying (they could never succeed), and all kept otherwise.
    public static func loadDirectory(_ directory: String, verify: Bool) throws(HarnessError) -> [InputVideo] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw HarnessError("cannot list \(directory): \(error.localizedDescription)")
        }
        var inputs: [InputVideo] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let path = (directory as NSString).appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            do { inputs.append(try load(path, verify: verify)) } catch {
                FileHandle.standardError.write(Data("harness: skipping \(error)\n".utf8))
            }
        }
        guard !inputs.isEmpty else { throw HarnessError("no video in \(directory)") }
        return inputs
    }

    /// The default upload, as in the original experiment: a 6-second 640x360 clip with audio, generated with libav so
    /// the harness runs with no media at hand. Its frame count and duration come from the generator itself.
    public static func generate(in directory: String, width: Int = 640, height: Int = 360, seconds: Double = 6)
        throws(HarnessError) -> InputVideo
    {
        var clip = SyntheticClip()
        clip.width = width
        clip.height = height
        clip.seconds = seconds
        let path = (directory as NSString).appendingPathComponent("harness-\(width)x\(height)-\(seconds)s.mp4")
        let info: SyntheticClip.Info
        do { info = try clip.write(to: path) } catch { throw HarnessError("generating the clip: \(error)") }
        return try InputVideo(path: path, expectation: Expectation(frames: info.videoFrames, duration: info.videoDuration))
    }
}
