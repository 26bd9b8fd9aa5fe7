import Foundation
import Glibc
import TestSupport
import Testing

/// A rolling restart as a split upload's coordinator sees it: two real replicas, the coordinator's segments going
/// to the other through its `--cluster-url`, so that while they run the coordinator holds no admitted place.
@Suite("the real binary: a draining coordinator finishes its split upload")
struct SplitDrainTests {
    @Test("SIGTERM while a segment waits on a peer: the coordinator outlives the drain's grace, answers 200 with every frame, exits 0")
    func coordinatorFinishes() async throws {
        try await onThread {
            let scratch = try Scratch()
            let (peer, peerPort) = try launchService(tmpDir: scratch.url.path)
            defer {
                kill(peer.processIdentifier, SIGCONT)
                if peer.isRunning { peer.terminate() }
            }
            guard peerPort > 0 else { return }
            let (coordinator, port) = try launchService(
                tmpDir: scratch.url.path,
                arguments: [
                    "--cluster-url", "http://127.0.0.1:\(peerPort)", "--segment-seconds", "1", "--split-min-seconds", "3",
                    "--drain-timeout", "300",
                ])
            defer { if coordinator.isRunning { coordinator.terminate() } }
            guard port > 0 else { return }

            let clip = SplitServiceTests.long
            nonisolated(unsafe) var answer: Result<TestClient.Response, any Error>?
            let answered = DispatchSemaphore(value: 0)
            Thread {
                // However long a loaded machine makes the wait for the answer.
                answer = Result { try post(port: port, "/drained", body: clip.bytes, receiveTimeoutSeconds: 600) }
                answered.signal()
            }.start()
            // The peer runs a segment: the coordinator has cut the upload and given its place back. The peer is
            // then stopped, so that the segment's answer waits for as long as the test needs.
            #expect(try waitForAbout(port: peerPort, seconds: 300) { $0.contains("\"running\":1") })
            kill(peer.processIdentifier, SIGSTOP)
            kill(coordinator.processIdentifier, SIGTERM)
            // The drain gives open connections 3 s once nothing is admitted: without the count of split jobs the
            // coordinator was gone by then, its upload unanswered.
            #expect(!waitUntil(6) { !coordinator.isRunning },
                    "the coordinator exited while its split upload was waiting for a segment")
            kill(peer.processIdentifier, SIGCONT)
            coordinator.waitUntilExit()
            #expect(coordinator.terminationReason == .exit && coordinator.terminationStatus == 0)

            #expect(answered.wait(timeout: .now() + 600) == .success)
            let response = try #require(answer).get()
            #expect(response.status == 200, "\(response.text.prefix(300))")
            #expect(Int(response.header("X-Video-Segments") ?? "") ?? 0 > 1)
            let probe = try Clips.probe(response.body)
            #expect(probe.video?.frameCount == clip.frames)
            #expect(probe.video?.decodeErrors == 0)
        }
    }
}
