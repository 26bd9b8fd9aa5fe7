#!/usr/bin/env bash
# User-space instructions per GET /about, for http-bench-server and for nginx (one worker), counted by callgrind: a
# figure the machine's noise cannot move, unlike req/s. Each server runs under `valgrind --tool=callgrind` twice,
# once only started and stopped, once with `wrk -t1 -c64 -d$DURATION` against it; the difference over wrk's request
# count is the cost of one request. Needs: apt-get install valgrind wrk nginx-light (make bench-deps).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
PORT=${PORT:-18090}
source scripts/about-bench.sh
for tool in valgrind wrk nginx; do
    command -v "$tool" >/dev/null || { echo "missing $tool: make bench-deps" >&2; exit 1; }
done
swift build -c release --product http-bench-server >/dev/null

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Without its debug info: valgrind 3.19's DWARF reader gives up on what Swift 6.3 writes ("possibly corrupted
# debuginfo file"), and instruction counts need no symbols.
BIN="$WORK/http-bench-server"
objcopy --strip-debug "$(swift build -c release --show-bin-path)/http-bench-server" "$BIN"
nginx_about_conf "$WORK" "$PORT" foreground

# count LOAD COMMAND... → sets IR (instructions of the whole run) and REQUESTS (wrk's count, 0 without load).
count() {
    local load=$1; shift
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" "$@" >"$WORK/server.log" 2>&1 &
    local pid=$!
    wait_about "$PORT" 20 || { echo "server did not come up: $*" >&2; cat "$WORK/server.log" >&2; exit 1; }
    REQUESTS=0
    if [ "$load" = wrk ]; then
        REQUESTS=$(wrk -t1 -c64 -d"$DURATION" "http://127.0.0.1:$PORT/about" | awk '/requests in/ { print $1 }')
    fi
    kill "$pid"
    # nginx without a master process may linger on open keep-alive connections: ask harder after 10 s.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -QUIT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    IR=$(awk '/^summary:/ { print $2 }' "$WORK/callgrind.out")
}

per_request() {
    count idle "$@"
    local idle=$IR
    count wrk "$@"
    echo $(((IR - idle) / REQUESTS))
}

echo "user-space instructions per GET /about (callgrind; wrk -t1 -c64 -d$DURATION minus an idle run)"
# Assignments, so that a server that fails to come up stops the script instead of printing an empty figure.
OURS=$(per_request "$BIN" "$PORT" 1)
printf '%-34s %s\n' "http-bench-server (1 loop thread)" "$OURS"
NGINX=$(per_request nginx -c "$WORK/nginx.conf" -p "$WORK")
printf '%-34s %s\n' "nginx (1 worker)" "$NGINX"
