import TestSupport
import Testing

@testable import HTTPServer

@Suite("peer addresses, address ranges, and what the observer is told of them")
struct PeerAddressTests {
    @Test("addresses parse from text and print back in their usual form",
          arguments: ["127.0.0.1", "203.0.113.7", "::1", "2001:db8::1", "fe80::1:2:3:4", "0.0.0.0"])
    func roundTrip(_ text: String) throws {
        let address = try #require(PeerAddress(text))
        #expect(address.description == text)
        #expect(address.isIPv4 == text.contains("."))
    }

    @Test("what is not an address does not parse", arguments: ["", "localhost", "1.2.3", "1.2.3.4.5", "256.1.1.1",
                                                                  "203.0.113.7:80", " 203.0.113.7", "::g", "1.2.3.4 "])
    func notAnAddress(_ text: String) {
        #expect(PeerAddress(text) == nil)
    }

    @Test("a range holds the addresses under its prefix, and no other")
    func ranges() throws {
        let tenEight = try #require(AddressRange("10.0.0.0/8"))
        #expect(tenEight.contains(PeerAddress("10.255.0.1")!))
        #expect(!tenEight.contains(PeerAddress("11.0.0.1")!))
        #expect(!tenEight.contains(PeerAddress("::ffff:b00:1")!), "11.0.0.1 as IPv4-mapped IPv6 is outside too")
        let one = try #require(AddressRange("127.0.0.1"))
        #expect(one.contains(PeerAddress("127.0.0.1")!) && !one.contains(PeerAddress("127.0.0.2")!))
        let v6 = try #require(AddressRange("2001:db8::/32"))
        #expect(v6.contains(PeerAddress("2001:db8:ffff::1")!) && !v6.contains(PeerAddress("2001:db9::1")!))
        #expect(!v6.contains(PeerAddress("32.1.13.184")!), "no IPv4 address is in an IPv6 network")
        let everything = try #require(AddressRange("0.0.0.0/0"))
        #expect(everything.contains(PeerAddress("198.51.100.1")!) && !everything.contains(PeerAddress("::1")!))
        for bad in ["10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "::/129", "x/8"] { #expect(AddressRange(bad) == nil, "\(bad)") }
    }

    @Test("the observer gets the peer's address, and X-Forwarded-For only when the configuration asks for it",
          arguments: [false, true])
    func observed(asksForForwardedFor: Bool) async throws {
        let seen = Recorder<String>()
        let configuration = ServerConfiguration(observesForwardedFor: asksForForwardedFor)
        try await withServer(
            configuration, fastPath: { _ in ServerResponse(status: .ok) },
            observer: { seen.add("\($0.peer?.description ?? "-") \($0.forwardedFor ?? "-")") }
        ) { port, _ in
            try await blocking {
                let client = try TestClient(port: port)
                try client.send("GET /about HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n")
                _ = try client.readResponse()
            }
        }
        #expect(seen.values == ["127.0.0.1 " + (asksForForwardedFor ? "203.0.113.7" : "-")])
    }
}
