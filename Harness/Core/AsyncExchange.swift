import Foundation
import SystemSupport

/// One request as an async job (`harness --async`): 202 with a Location, the job's Server-Sent Events read to the
/// end of the stream (the final state), then the result downloaded. Whatever is not the expected answer at a step
/// is returned as that step's answer, so the report counts it under its status as it would a synchronous one.
enum AsyncExchange {
    /// The most of an event stream read back: a job has about a hundred small events.
    static let eventStreamLimit = 1 << 20

    static func run(_ client: UploadClient, target: String, input: InputVideo, deadline: UInt64) -> UploadClient.Outcome {
        let submitted = client.post(
            target: target, input: input.fd, size: input.size, deadline: deadline, fields: "Prefer: respond-async\r\n")
        guard case .answered(let accepted) = submitted else { return submitted }
        guard accepted.status == 202, let location = accepted.fields[.location] else {
            return accepted.status == 202
                ? .failed(Failure(cause: .invalidOutput, detail: "202 without Location")) : submitted
        }
        let followed = client.get(target: location + "/events", deadline: deadline)
        guard case .answered(let events) = followed else { return cancelIfTimedOut(followed, client, location) }
        guard events.status == 200 else { return followed }
        let text = String(decoding: events.body.contents(limit: eventStreamLimit), as: UTF8.self)
        if let failure = finalStateFailure(text) { return .failed(failure) }
        return cancelIfTimedOut(client.get(target: location + "/output", deadline: deadline), client, location)
    }

    /// Seconds the DELETE of a job given up on may take.
    static let cancelSeconds: UInt64 = 5

    /// A job the harness stops waiting for is deleted, as a client that gives up should: leaving does not cancel an
    /// async job, and one left running would hold a worker the next requests are timed against.
    private static func cancelIfTimedOut(_ outcome: UploadClient.Outcome, _ client: UploadClient, _ location: String)
        -> UploadClient.Outcome
    {
        if case .failed(let failure) = outcome, failure.cause == .timeout {
            _ = client.request("DELETE", target: location, deadline: monotonicNanos() + cancelSeconds * 1_000_000_000)
        }
        return outcome
    }

    /// Nil when the stream's last event says `succeeded`; otherwise the failure, under the status the job's problem
    /// names (what a synchronous request would have been answered).
    static func finalStateFailure(_ stream: String) -> Failure? {
        let data = stream.split(separator: "\n").last { $0.hasPrefix("data:") }?.dropFirst("data:".count)
        let document = data.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        guard let document else { return Failure(cause: .invalidOutput, detail: "the event stream has no final state") }
        let state = document["state"] as? String ?? "none"
        if state == "succeeded" { return nil }
        if let status = (document["error"] as? [String: Any])?["status"] as? Int {
            return Failure(cause: .httpStatus(status), detail: "job \(state): HTTP \(status)")
        }
        return Failure(cause: .invalidOutput, detail: "the job ended \(state)")
    }
}
