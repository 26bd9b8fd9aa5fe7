import Foundation
import Yams

/// A JSON value: what the API document is made of once read, and what a JSON answer decodes to, so one schema
/// check serves both.
enum JSONValue: Equatable, Sendable, Decodable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// JSONDecoder is strict about kinds: `1` never decodes as a Bool, nor `1.5` as an Int.
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// A YAML node, typed by the tag the YAML 1.1 resolver gave it (a quoted `'200'` stays a string).
    init(yaml node: Node) throws {
        switch node {
        case .scalar(let scalar):
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .int: self = .int(node.int!)
            case .float: self = .double(node.float!)
            case .bool: self = .bool(node.bool!)
            case .null: self = .null
            default: self = .string(scalar.string)
            }
        case .sequence(let sequence):
            self = .array(try sequence.map { try JSONValue(yaml: $0) })
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard let name = key.string else { throw DocumentError("a mapping key that is not a string: \(key)") }
                object[name] = try JSONValue(yaml: value)
            }
            self = .object(object)
        case .alias:
            throw DocumentError("the document uses a YAML alias; write it out instead")
        }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { object[key] } else { nil }
    }

    var string: String? { if case .string(let value) = self { value } else { nil } }
    var object: [String: JSONValue]? { if case .object(let value) = self { value } else { nil } }
    var array: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
    var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    /// A number as a Double, for comparing with `minimum` and `maximum`.
    var number: Double? {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .int(let value): "\(value)"
        case .double(let value): "\(value)"
        case .string(let value): "\"\(value)\""
        case .array(let values): "[\(values.map(\.description).joined(separator: ", "))]"
        case .object(let object): "{\(object.keys.sorted().map { "\($0): \(object[$0]!)" }.joined(separator: ", "))}"
        }
    }
}

struct DocumentError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A method on a path template, as the document names them: `POST /{video_id}`.
struct Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    let method: String
    let path: String

    init(_ method: String, _ path: String) {
        self.method = method.uppercased()
        self.path = path
    }

    var description: String { "\(method) \(path)" }

    static func < (a: Endpoint, b: Endpoint) -> Bool { (a.path, a.method) < (b.path, b.method) }
}

/// A documented answer: its headers (by lower-cased name) and its schema per media type, references resolved.
struct DocumentedResponse {
    struct Header {
        let name: String
        let required: Bool
        let schema: JSONValue
    }

    let headers: [String: Header]
    let content: [String: JSONValue]
}

/// docs/openapi.yaml, read with Yams.
struct APIDocument {
    /// Every method an OpenAPI path item can hold.
    static let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    let root: JSONValue
    /// Every documented operation with its answers by status code, references resolved.
    private(set) var operations: [Endpoint: [Int: JSONValue]] = [:]

    /// The document of this repository, found from this file's place in the tree.
    static func load() throws -> APIDocument {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../docs/openapi.yaml").standardizedFileURL.path
        return try APIDocument(yaml: String(contentsOfFile: path, encoding: .utf8))
    }

    init(yaml: String) throws {
        guard let node = try Yams.compose(yaml: yaml) else { throw DocumentError("the document is empty") }
        root = try JSONValue(yaml: node)
        operations = try readOperations()
    }

    /// Follows `$ref` (local references only) until the value is no reference.
    func resolve(_ value: JSONValue) throws -> JSONValue {
        var value = value
        var seen: Set<String> = []
        while let reference = value["$ref"]?.string {
            guard seen.insert(reference).inserted else { throw DocumentError("a reference loop at \(reference)") }
            guard reference.hasPrefix("#/") else { throw DocumentError("a reference outside the document: \(reference)") }
            var target = root
            for part in reference.dropFirst(2).split(separator: "/") {
                let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                guard let next = target[key] else { throw DocumentError("\(reference) names nothing") }
                target = next
            }
            value = target
        }
        return value
    }

    private func readOperations() throws -> [Endpoint: [Int: JSONValue]] {
        var result: [Endpoint: [Int: JSONValue]] = [:]
        for (path, item) in root["paths"]?.object ?? [:] {
            for method in Self.methods {
                guard let operation = item[method] else { continue }
                var responses: [Int: JSONValue] = [:]
                for (code, response) in operation["responses"]?.object ?? [:] {
                    guard let status = Int(code) else { throw DocumentError("\(method) \(path): status \(code) is not a number") }
                    responses[status] = try resolve(response)
                }
                result[Endpoint(method, path)] = responses
            }
        }
        return result
    }

    /// The documented answer of `endpoint` with `status`, or nil.
    func response(_ endpoint: Endpoint, _ status: Int) throws -> DocumentedResponse? {
        guard let response = operations[endpoint]?[status] else { return nil }
        var headers: [String: DocumentedResponse.Header] = [:]
        for (name, header) in response["headers"]?.object ?? [:] {
            let header = try resolve(header)
            headers[name.lowercased()] = .init(
                name: name, required: header["required"]?.bool ?? false, schema: header["schema"] ?? .object([:]))
        }
        var content: [String: JSONValue] = [:]
        for (type, media) in response["content"]?.object ?? [:] {
            content[type.lowercased()] = media["schema"] ?? .object([:])
        }
        return DocumentedResponse(headers: headers, content: content)
    }

    /// An operation's parameters (the path item's and its own), references resolved, by name.
    func parameters(_ endpoint: Endpoint) throws -> [String: JSONValue] {
        let item = root["paths"]?[endpoint.path]
        let list = (item?["parameters"]?.array ?? []) + (item?[endpoint.method.lowercased()]?["parameters"]?.array ?? [])
        var result: [String: JSONValue] = [:]
        for parameter in list {
            let parameter = try resolve(parameter)
            if let name = parameter["name"]?.string { result[name] = parameter }
        }
        return result
    }

    /// A schema of `components/schemas`.
    func schema(_ name: String) throws -> JSONValue {
        guard let schema = root["components"]?["schemas"]?[name] else { throw DocumentError("no schema \(name)") }
        return schema
    }
}
