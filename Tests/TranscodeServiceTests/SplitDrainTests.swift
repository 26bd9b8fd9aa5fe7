import Foundation
import Glibc
import TestSupport
import Testing

/// A rolling restart as a split upload's coordinator sees it: two real replicas, the coordinator's segments going
/// to the other through its `--cluster-url`, so that while they run the coordinator holds no admitted place.
@Suite("the real binary: a draining coordinator finishes its split upload")
struct SplitDrainTests {
    @Test("SIGTERM while the upload's segments run on a peer: the coordinator still answers 200 with every frame, then exits 0")
    func coordinatorFinishes() async throws {
        try await onThread {
            let scratch = try Scratch()
            let (peer, peerPort) = try launchService(tmpDir: scratch.url.path)
            defer { if peer.isRunning { peer.terminate() } }
            guard peerPort > 0 else { return }
            let (coordinator, port) = try launchService(
                tmpDir: scratch.url.path,
                arguments: [
                    "--cluster-url", "http://127.0.0.1:\(peerPort)", "--segment-seconds", "1", "--split-min-seconds", "3",
                    "--drain-timeout", "300",
                ])
            defer { if coordinator.isRunning { coordinator.terminate() } }
            guard port > 0 else { return }

            // 18 one-second segments at preset slower, one at a time on the peer: they outlast the 3 s the drain
            // gives open connections, which alone used to let a short split finish (this failed so without the fix).
            let clip = SplitServiceTests.manyKeyframes
            nonisolated(unsafe) var answer: Result<TestClient.Response, any Error>?
            let answered = DispatchSemaphore(value: 0)
            Thread {
                answer = Result { try post(port: port, "/drained?preset=slower", body: clip.bytes) }
                answered.signal()
            }.start()
            // The peer runs a segment: the coordinator has cut the upload and given its place back.
            #expect(try waitForAbout(port: peerPort, seconds: 120) { $0.contains("\"running\":1") })
            kill(coordinator.processIdentifier, SIGTERM)
            coordinator.waitUntilExit()
            #expect(coordinator.terminationReason == .exit && coordinator.terminationStatus == 0)

            #expect(answered.wait(timeout: .now() + 120) == .success)
            let response = try #require(answer).get()
            #expect(response.status == 200, "\(response.text.prefix(300))")
            #expect(Int(response.header("X-Video-Segments") ?? "") ?? 0 > 1)
            let probe = try Clips.probe(response.body)
            #expect(probe.video?.frameCount == clip.frames)
            #expect(probe.video?.decodeErrors == 0)
        }
    }
}
