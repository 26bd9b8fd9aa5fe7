// A tiny server on the HTTPServer library for scripts/bench-http.sh: `GET /about` answers a fixed small JSON
// body from the fast path (on the event loop, no task hop). For scripts/bench-upload.sh, `POST /splice` and
// `POST /copy` write their body into an anonymous file in $TMPDIR or /tmp, by `RequestBody.write(to:)` (spliced) or
// chunk by chunk through this process (the way bodies went before), and answer with the byte count. Everything
// else is 404 from the async handler.
import CLinux
import Glibc
import HTTPServer
import HTTPTypes

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8080 : 8080
let threads = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 1 : 1
let about = ServerResponse(
    status: .ok, headerFields: [.contentType: "application/json"],
    body: .bytes(Array(#"{"service":"ffmpeg-processor","message":"this is an experiment"}"#.utf8))
).prepared()

// Block the stop signals before any thread exists, so the loop threads inherit the mask and sigwait sees them.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGINT)
sigaddset(&stopSignals, SIGTERM)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

let server = Server(
    // Named, as nginx names itself: both answers carry a Server field.
    configuration: ServerConfiguration(host: "127.0.0.1", port: port, eventLoopThreads: threads, serverName: "ffmpeg-processor"),
    fastPath: { request in
        guard request.path == "/about", request.method == .get || request.method == .head else { return nil }
        return about
    },
    handler: { request, body in
        guard request.method == .post, request.path == "/splice" || request.path == "/copy" else {
            return ServerResponse(status: .notFound)
        }
        let folder = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        let fd = open(folder, clinux_o_tmpfile() | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return ServerResponse(status: .internalServerError) }
        defer { close(fd) }
        do {
            var written: Int64 = 0
            if request.path == "/splice" {
                written = try await body.write(to: fd)
            } else {
                for try await chunk in body {
                    var done = 0
                    while done < chunk.count {
                        let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
                        guard n > 0 else { return ServerResponse(status: .internalServerError) }
                        done += n
                    }
                    written += Int64(chunk.count)
                }
            }
            return ServerResponse(status: .ok, body: .bytes(Array("\(written)\n".utf8)))
        } catch {
            return ServerResponse(status: .badRequest)
        }
    }
)
let bound = try server.start()
print("http-bench-server listening on 127.0.0.1:\(bound) with \(threads) loop thread(s)")
fflush(nil)
var received: Int32 = 0
sigwait(&stopSignals, &received)
server.shutdown()
