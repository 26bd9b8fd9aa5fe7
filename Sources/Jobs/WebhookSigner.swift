import Crypto
import Foundation

/// Signs a webhook as the Standard Webhooks specification asks: HMAC-SHA256 over `<id>.<timestamp>.<body>` with
/// the secret's bytes, sent as `webhook-signature: v1,<base64>`, so that a receiver can check it with any of that
/// specification's libraries.
public struct WebhookSigner: Sendable {
    /// The key's bytes: swift-crypto's SymmetricKey is not Sendable, so one is made per signature.
    private let key: [UInt8]

    /// `secret`: `whsec_` and the key in base64, as the specification writes secrets (the prefix may be left
    /// out). Nil when the rest is not base64 or is empty.
    public init?(secret: String) {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst("whsec_".count)) : secret
        guard let bytes = Data(base64Encoded: encoded), !bytes.isEmpty else { return nil }
        key = Array(bytes)
    }

    /// The `webhook-signature` value for one delivery.
    public func signature(id: String, timestamp: Int, body: [UInt8]) -> String {
        let content = Array("\(id).\(timestamp).".utf8) + body
        let code = HMAC<SHA256>.authenticationCode(for: content, using: SymmetricKey(data: key))
        return "v1," + Data(code).base64EncodedString()
    }
}
