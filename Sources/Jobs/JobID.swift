import Glibc
import SystemSupport

/// Async job ids: `<replica>.<32 hex digits>`. The random part (128 bits from the kernel) is the capability to
/// read the job and its result; the replica part lets a balancer route `/jobs/<replica>.` to the job's owner.
public enum JobID {
    /// A fresh id for a job on `replica`.
    public static func make(replica: String) throws(IOError) -> String {
        replica + "." + hex(try randomBytes(16))
    }

    /// The random part of a well-formed id of `replica`'s, which names its result file; nil for any other string,
    /// so a request can never name a file of its own choosing.
    public static func secret(of id: String, replica: String) -> String? {
        guard id.utf8.count == replica.utf8.count + 33, id.hasPrefix(replica + ".") else { return nil }
        let secret = String(id.utf8.suffix(32))!
        guard secret.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return secret
    }

    /// A replica name usable in an id and a URL path: the host name (or `REPLICA_NAME`) reduced to
    /// [A-Za-z0-9-] (its first label), at most 63 characters; "replica" if nothing is left.
    public static func replicaName(_ name: String?) -> String {
        var raw = name ?? ""
        if raw.isEmpty {
            var buffer = [CChar](repeating: 0, count: 256)
            if gethostname(&buffer, buffer.count - 1) == 0 {
                raw = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        // A host name's first label: a dot would make the id ambiguous to a balancer's prefix rule.
        let label = raw.split(separator: ".").first.map(String.init) ?? ""
        let kept = label.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }
        let name = String(String.UnicodeScalarView(kept.prefix(63)))
        return name.isEmpty ? "replica" : name
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
