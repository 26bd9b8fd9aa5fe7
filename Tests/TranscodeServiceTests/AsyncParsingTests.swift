import Testing
@testable import TranscodeService

@Suite("Range and Prefer as the async routes read them")
struct AsyncParsingTests {
    @Test("single byte ranges, suffixes, open ends; several ranges or bad syntax are ignored; past the end is 416",
          arguments: [
              ("bytes=0-0", ByteRangeRequest.range(first: 0, last: 0)),
              ("bytes=0-", .range(first: 0, last: 999)),
              ("bytes=990-5000", .range(first: 990, last: 999)),
              ("bytes=-10", .range(first: 990, last: 999)),
              ("bytes=-5000", .range(first: 0, last: 999)),
              ("BYTES = 5 - 6", .range(first: 5, last: 6)),
              ("bytes=1000-", .unsatisfiable),
              ("bytes=-0", .unsatisfiable),
              ("bytes=0-1,4-5", .whole),
              ("bytes=5-4", .whole),
              ("items=0-1", .whole),
              ("bytes=a-b", .whole),
              ("bytes=-", .whole),
              ("bytes=+1-2", .whole),
          ])
    func ranges(field: String, expected: ByteRangeRequest) {
        #expect(ByteRangeRequest(field, size: 1000) == expected)
    }

    @Test("respond-async with or without wait, in any case, among other preferences and fields")
    func preferences() {
        #expect(AsyncPreference(["respond-async"]) != nil && AsyncPreference(["respond-async"])?.wait == nil)
        #expect(AsyncPreference(["Respond-Async, wait=10"])?.wait == 10)
        #expect(AsyncPreference(["handling=lenient", "respond-async; foo=bar", "wait=\"7\""])?.wait == 7)
        #expect(AsyncPreference(["respond-async, wait=99999"])?.wait == AsyncPreference.longestWait)
        #expect(AsyncPreference(["respond-async, wait=-1"])?.wait == nil)
        #expect(AsyncPreference(["wait=10"]) == nil)
        #expect(AsyncPreference([]) == nil)
    }

    @Test("If-None-Match lists, weak tags and *")
    func entityTags() {
        #expect(EntityTags.anyMatches("\"a\", \"b\"", "\"b\""))
        #expect(EntityTags.anyMatches("W/\"b\"", "\"b\""))
        #expect(EntityTags.anyMatches("*", "\"b\""))
        #expect(!EntityTags.anyMatches("\"c\"", "\"b\""))
    }
}
