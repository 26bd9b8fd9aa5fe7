import Foundation
import TestSupport
import Testing
@testable import TranscodeService
import Transcoding

/// docs/openapi.yaml against the service, both ways: what the service serves is documented, and what is documented
/// is what it answers.
@Suite("the API document (docs/openapi.yaml) describes the service")
struct APIDocumentTests {
    /// One documented (or produced) answer.
    struct Key: Hashable, Comparable, CustomStringConvertible {
        let endpoint: Endpoint
        let status: Int
        var description: String { "\(endpoint) \(status)" }
        static func < (a: Key, b: Key) -> Bool { (a.endpoint, a.status) < (b.endpoint, b.status) }
    }

    @Test("the served routes are exactly the documented operations that can succeed")
    func routesAreDocumented() throws {
        let document = try APIDocument.load()
        let succeeding = Set(document.operations.filter { $0.value.keys.contains { (200..<300).contains($0) } }.keys)
        let served = Set(RecipeBook.served)
        #expect(served.subtracting(succeeding).isEmpty, "served, not documented: \(served.subtracting(succeeding).sorted())")
        #expect(succeeding.subtracting(served).isEmpty, "documented, not served: \(succeeding.subtracting(served).sorted())")
        let paths = Set(document.root["paths"]?.object?.keys.map { $0 } ?? [])
        #expect(paths == Set(Routes.table.map(\.template)))
    }

    @Test("every method a route does not serve is documented as a 405 whose Allow is the route table's")
    func refusedMethodsAreDocumented() throws {
        let document = try APIDocument.load()
        for route in Routes.table {
            for endpoint in RecipeBook.refused where endpoint.path == route.template {
                let answer = try document.response(endpoint, 405)
                #expect(answer != nil, "\(endpoint) has no 405")
                #expect(answer?.headers["allow"]?.required == true, "\(endpoint)'s 405 does not require Allow")
                #expect(answer?.headers["allow"]?.schema["const"] == .string(route.allow), "\(endpoint)")
                let statuses = document.operations[endpoint]?.keys.sorted() ?? []
                #expect(statuses.allSatisfy { $0 == 404 || $0 == 405 }, "\(endpoint) is refused, yet documents \(statuses)")
            }
        }
    }

    @Test("every documented status has a recipe (or an exemption), and every recipe's status is documented")
    func recipesCoverTheDocument() throws {
        let document = try APIDocument.load()
        let documented = Set(document.operations.flatMap { endpoint, answers in answers.keys.map { Key(endpoint: endpoint, status: $0) } })
        let cooked = Set(RecipeBook.all.flatMap { recipe in recipe.endpoints.map { Key(endpoint: $0, status: recipe.status) } })
        let exempt = Set(RecipeBook.exemptions.map { Key(endpoint: $0.endpoint, status: $0.status) })
        let uncooked = documented.subtracting(cooked).subtracting(exempt)
        #expect(uncooked.isEmpty, "documented, with no recipe: \(uncooked.sorted())")
        #expect(cooked.subtracting(documented).isEmpty, "produced, not documented: \(cooked.subtracting(documented).sorted())")
        #expect(exempt.subtracting(documented).isEmpty, "exempt, not documented: \(exempt.subtracting(documented).sorted())")
        #expect(exempt.intersection(cooked).isEmpty, "exempt, yet with a recipe: \(exempt.intersection(cooked).sorted())")
    }

    @Test("each recipe gets its documented status, content type, headers and body", arguments: Setting.allCases)
    func recipesProduceTheirAnswers(setting: Setting) async throws {
        let document = try APIDocument.load()
        let recipes = RecipeBook.all.filter { $0.setting == setting }
        #expect(!recipes.isEmpty)
        let problems = try await onThread { () throws -> [String] in
            let live = try setting.start()
            var problems: [String] = []
            do {
                for recipe in recipes {
                    for endpoint in recipe.endpoints {
                        let response = try Self.exchange(recipe.request(endpoint), endpoint, port: live.port)
                        let found = try ResponseCheck(document: document).problems(response, endpoint, recipe)
                        problems += found.map { "\(endpoint) \(recipe): \($0)" }
                    }
                }
            } catch {
                problems.append("\(error)")
            }
            if let stopped = live.stop() { problems.append(stopped) }
            return problems
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    @Test("OPTIONS * gets the status and the Allow that the document's x-options-asterisk states, the route table's methods")
    func optionsAsterisk() async throws {
        let document = try APIDocument.load()
        let stated = try #require(document.root["x-options-asterisk"])
        let response = try await onThread { () throws -> TestClient.Response in
            let live = try Setting.standard.start()
            defer { live.stop() }
            return try Self.exchange(Array("OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n".utf8), Endpoint("OPTIONS", "*"), port: live.port)
        }
        #expect(stated["status"] == .int(response.status))
        #expect(stated["allow"] == response.header("Allow").map(JSONValue.string))
        #expect(stated["allow"] == .string(Routes.serverWideMethods.map(\.rawValue).joined(separator: ", ")))
    }

    @Test("GET /about has every member the About schema requires, each of its type; the check reports one missing or mistyped")
    func aboutMatchesItsSchema() async throws {
        let document = try APIDocument.load()
        let about = try await onThread { () throws -> JSONValue in
            let live = try Setting.standard.start()
            defer { live.stop() }
            let response = try Self.exchange(RecipeBook.head(Endpoint("GET", "/about")), Endpoint("GET", "/about"), port: live.port)
            return try JSONDecoder().decode(JSONValue.self, from: Data(response.body))
        }
        let check = SchemaCheck(document: document)
        let schema = try document.schema("About")
        let errors = try check.errors(about, schema)
        #expect(errors.isEmpty, "\(errors)")
        #expect(about["status"] == .string("ok") && about["workers"] == .int(1))
        #expect(about["version"] == document.root["info"]?["version"], "the document's version is the service's")

        var broken = try #require(about.object)
        broken["workers"] = nil
        broken["running"] = .string("0")
        let brokenErrors = try check.errors(.object(broken), schema)
        #expect(brokenErrors.contains { $0.contains("workers is missing") }, "\(brokenErrors)")
        #expect(brokenErrors.contains { $0.contains("$.running") }, "\(brokenErrors)")
    }

    /// What each query parameter sets, to compare with the document's defaults.
    static let effects: [String: @Sendable (TranscodeOptions) -> String?] = [
        "height": { $0.maxHeight.map(String.init) },
        "width": { $0.maxWidth.map(String.init) },
        "crf": { String($0.encoderCRF) },
        "quality": { $0.quality?.rawValue ?? "medium" },
        "codec": { $0.videoCodec.rawValue },
        "format": { $0.container.rawValue },
        "preset": { $0.preset },
        "audio": { String($0.audio) },
        "hdr": { $0.hdr.rawValue },
        "deinterlace": { $0.deinterlace.rawValue },
        // Not an output setting but the route's: whether the upload may be split (Routes.splitChoice).
        "split": { _ in nil },
    ]

    @Test("each documented query parameter's range, values and default are what the service accepts and assumes")
    func queryParametersMatch() throws {
        let document = try APIDocument.load()
        // `callback` is the job's, not a transcode option (WebhookTests checks it).
        let parameters = try document.parameters(RecipeBook.upload).values.filter {
            $0["in"]?.string == "query" && $0["name"]?.string != "callback"
        }
        #expect(parameters.count == Self.effects.count)
        func accepted(_ name: String, _ value: String) -> TranscodeOptions? {
            guard let (_, query) = try? Routes.splitChoice([(name, value)]) else { return nil }
            return try? applyQuery(query, to: TranscodeOptions())
        }
        for parameter in parameters {
            let name = try #require(parameter["name"]?.string)
            let schema = try document.resolve(try #require(parameter["schema"]))
            let effect = try #require(Self.effects[name], "a documented query parameter this test does not know: \(name)")
            if let low = schema["minimum"]?.number.map(Int.init), let high = schema["maximum"]?.number.map(Int.init) {
                #expect(accepted(name, String(low)).map(effect) == String(low), "\(name)=\(low)")
                #expect(accepted(name, String(high)).map(effect) == String(high), "\(name)=\(high)")
                if low > 0 { #expect(accepted(name, String(low - 1)) == nil, "\(name)=\(low - 1)") }
                #expect(accepted(name, String(high + 1)) == nil, "\(name)=\(high + 1)")
            }
            if let values = schema["enum"]?.array?.compactMap(\.string) {
                for value in values { #expect(accepted(name, value) != nil, "\(name)=\(value)") }
                #expect(accepted(name, "not-a-value") == nil)
            }
            if let fallback = schema["default"] {
                let text = fallback.string ?? fallback.description
                let applied = accepted(name, text)
                #expect(applied != nil && effect(TranscodeOptions()) == effect(applied!), "\(name)'s default")
            }
        }
        #expect(accepted("not-a-parameter", "1") == nil)
    }

    @Test("the video_id schema accepts exactly the ids the service accepts")
    func videoIDMatches() throws {
        let document = try APIDocument.load()
        let schema = try #require(try document.parameters(RecipeBook.upload)["video_id"]?["schema"])
        let check = SchemaCheck(document: document)
        let ids = [
            "a", "clip-7", "A.b_c-9", "...", ".a", "a.", "-", "_", String(repeating: "x", count: 128), ".", "..", "",
            String(repeating: "x", count: 129), "a b", "é", "a/b", "a:b", "a%2F", "a\u{7f}",
        ] + Routes.reservedIDs + Routes.reservedIDs.map { $0.uppercased() }
        for id in ids {
            let documented = try check.errors(.string(id), schema).isEmpty
            let served = (try? validateVideoID([id])) != nil
            #expect(documented == served, "\"\(id)\": the document says \(documented), the service \(served)")
        }
    }

    /// Sends `request` on a new connection and reads one answer. A server that answers before the whole request
    /// is sent may close first; the answer is read all the same.
    static func exchange(_ request: [UInt8], _ endpoint: Endpoint, port: Int) throws -> TestClient.Response {
        let client = try TestClient(port: port, receiveTimeoutSeconds: 60)
        if !request.isEmpty { try? client.send(request) }
        return try client.readResponse(head: endpoint.method == "HEAD")
    }
}
