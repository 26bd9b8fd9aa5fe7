import Testing
@testable import Transcoding

@Test("libav versions are those of FFmpeg 5.1 or later")
func libavVersions() {
    let versions = LibavVersions.all
    let major = Int(versions["libavformat"]!.split(separator: ".").first!)!
    #expect(major >= 59)
}
