// A tiny server on the HTTPServer library for scripts/bench-http.sh: `GET /about` answers a fixed small JSON
// body from the fast path (on the event loop, no task hop); everything else is 404 from the async handler.
import Glibc
import HTTPServer
import HTTPTypes

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8080 : 8080
let threads = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 1 : 1
let about = ServerResponse(
    status: .ok, headerFields: [.contentType: "application/json"],
    body: .bytes(Array(#"{"service":"ffmpeg-processor","message":"this is an experiment"}"#.utf8)))

// Block the stop signals before any thread exists, so the loop threads inherit the mask and sigwait sees them.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGINT)
sigaddset(&stopSignals, SIGTERM)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

let server = Server(
    configuration: ServerConfiguration(host: "127.0.0.1", port: port, eventLoopThreads: threads),
    fastPath: { request in
        guard request.path == "/about", request.method == .get || request.method == .head else { return nil }
        return about
    },
    handler: { _, _ in ServerResponse(status: .notFound) }
)
let bound = try server.start()
print("http-bench-server listening on 127.0.0.1:\(bound) with \(threads) loop thread(s)")
fflush(nil)
var received: Int32 = 0
sigwait(&stopSignals, &received)
server.shutdown()
