import Foundation
import TestSupport
import TranscodeService
import Testing

/// The log names the client. Behind a balancer the peer is the balancer, so its X-Forwarded-For is read, but only
/// from a peer listed in --trusted-proxy: anyone else could write any address into the field.
@Suite("the client's address in the log, and X-Forwarded-For only from trusted proxies")
struct ClientAddressTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let trusted: String?
        let forwardedFor: String?
        let client: String
        let testDescription: String
    }

    static let cases: [Case] = [
        Case(trusted: nil, forwardedFor: nil, client: "127.0.0.1", testDescription: "no proxy: the peer"),
        Case(trusted: nil, forwardedFor: "203.0.113.7", client: "127.0.0.1",
             testDescription: "an untrusted peer's X-Forwarded-For is ignored"),
        Case(trusted: "127.0.0.1", forwardedFor: "203.0.113.7", client: "203.0.113.7",
             testDescription: "a trusted proxy's X-Forwarded-For names the client"),
        Case(trusted: "127.0.0.0/8,10.0.0.0/8", forwardedFor: "198.51.100.9, 203.0.113.7, 10.1.2.3",
             client: "203.0.113.7", testDescription: "read from the right, past every trusted hop, to the first that is not"),
        Case(trusted: "127.0.0.1", forwardedFor: "2001:db8::1", client: "2001:db8::1", testDescription: "an IPv6 client"),
        Case(trusted: "127.0.0.1", forwardedFor: "203.0.113.7, evil id=x", client: "127.0.0.1",
             testDescription: "what is not an address stops the walk: no forged text reaches the log"),
        Case(trusted: "127.0.0.1", forwardedFor: "127.0.0.1", client: "127.0.0.1",
             testDescription: "only trusted hops: the leftmost of them"),
    ]

    @Test("the client= field of the request line", arguments: cases)
    func client(_ example: Case) async throws {
        try await onThread {
            let log = LogCapture()
            let running = try RunningService(logger: log.logger(.info)) { config in
                if let trusted = example.trusted { config.trustedProxies = ServiceConfig.trustedProxies(parsing: trusted)! }
            }
            defer { running.stop() }
            let extra = example.forwardedFor.map { "X-Forwarded-For: \($0)\r\n" } ?? ""
            let client = try TestClient(port: running.port)
            try client.send("GET /nothing-here HTTP/1.1\r\nHost: t\r\n\(extra)\r\n")
            #expect(try client.readResponse().status == 405)
            #expect(waitUntil(5) { !log.requestLines.isEmpty })
            let line = try #require(log.requestLines.first)
            #expect(line.fields["client"] == example.client, "\(line)")
        }
    }

    @Test("--trusted-proxy takes addresses and CIDR networks, and refuses anything else")
    func parsing() {
        let ranges = ServiceConfig.trustedProxies(parsing: "127.0.0.1, 10.0.0.0/8,::1,2001:db8::/32")
        #expect(ranges?.map(\.description) == ["127.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32"])
        for bad in ["localhost", "10.0.0.0/33", "10.0.0.0/x", "1.2.3", "127.0.0.1,", "::1/129"] {
            #expect(ServiceConfig.trustedProxies(parsing: bad) == nil, "\(bad)")
        }
    }
}
