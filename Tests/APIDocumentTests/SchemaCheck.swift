import Foundation

/// The part of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that docs/openapi.yaml uses. A keyword it does not know
/// is reported as an error rather than skipped, so a schema can never be more demanding on paper than in this check.
struct SchemaCheck {
    let document: APIDocument

    /// Keywords that describe and constrain nothing.
    private static let annotations: Set<String> = [
        "description", "title", "default", "example", "examples", "format", "contentMediaType",
    ]

    /// What is wrong with `value` against `schema`; empty when it conforms.
    func errors(_ value: JSONValue, _ schema: JSONValue, at path: String = "$") throws -> [String] {
        let schema = try document.resolve(schema)
        guard let keywords = schema.object else { return ["\(path): the schema is not an object"] }
        var errors: [String] = []
        for (keyword, argument) in keywords {
            switch keyword {
            case _ where Self.annotations.contains(keyword): break
            case "type":
                let types = argument.array?.compactMap(\.string) ?? [argument.string ?? ""]
                if !types.contains(where: { Self.has(value, type: $0) }) { errors.append("\(path): \(value) is not \(types)") }
            case "const":
                if !Self.same(value, argument) { errors.append("\(path): \(value) is not \(argument)") }
            case "enum":
                if !(argument.array ?? []).contains(where: { Self.same(value, $0) }) {
                    errors.append("\(path): \(value) is none of \(argument)")
                }
            case "minimum":
                if let number = value.number, let limit = argument.number, number < limit {
                    errors.append("\(path): \(value) is below \(argument)")
                }
            case "maximum":
                if let number = value.number, let limit = argument.number, number > limit {
                    errors.append("\(path): \(value) is above \(argument)")
                }
            case "pattern":
                if let text = value.string, !(try Self.matches(text, argument.string ?? "")) {
                    errors.append("\(path): \(value) does not match \(argument)")
                }
            case "required":
                for name in argument.array?.compactMap(\.string) ?? [] where value.object != nil && value[name] == nil {
                    errors.append("\(path): \(name) is missing")
                }
            case "properties":
                for (name, member) in value.object ?? [:] {
                    if let memberSchema = argument[name] { errors += try self.errors(member, memberSchema, at: "\(path).\(name)") }
                }
            case "additionalProperties":
                let declared = Set(keywords["properties"]?.object?.keys.map { $0 } ?? [])
                for (name, member) in value.object ?? [:] where !declared.contains(name) {
                    if argument.bool == false {
                        errors.append("\(path): \(name) is not allowed")
                    } else if argument.bool == nil {
                        errors += try self.errors(member, argument, at: "\(path).\(name)")
                    }
                }
            case "allOf":
                for part in argument.array ?? [] { errors += try self.errors(value, part, at: path) }
            case "not":
                if try self.errors(value, argument, at: path).isEmpty { errors.append("\(path): \(value) matches \(argument)") }
            default:
                errors.append("\(path): the check does not know the keyword \(keyword)")
            }
        }
        return errors
    }

    /// A header's value as the JSON value its schema speaks of: a number where the schema wants an integer.
    func headerValue(_ text: String, _ schema: JSONValue) throws -> JSONValue {
        let schema = try document.resolve(schema)
        if schema["type"]?.string == "integer", let number = Int(text) { return .int(number) }
        return .string(text)
    }

    private static func has(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("string", .string), ("boolean", .bool), ("null", .null), ("array", .array), ("object", .object),
            ("integer", .int), ("number", .int), ("number", .double):
            true
        case ("integer", .double(let number)): number.rounded() == number
        default: false
        }
    }

    /// JSON equality, where 1 and 1.0 are the same number.
    private static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if let x = a.number, let y = b.number { return x == y }
        return a == b
    }

    /// JSON Schema patterns are unanchored searches (ECMA-262; ours use nothing ICU reads differently).
    private static func matches(_ text: String, _ pattern: String) throws -> Bool {
        let expression = try NSRegularExpression(pattern: pattern)
        return expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}
