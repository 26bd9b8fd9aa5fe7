#!/usr/bin/env bash
# Uploads into a file, spliced (socket → pipe → file in the kernel, `RequestBody.write(to:)`) against copied chunk
# by chunk through the process (how bodies went before), in one run on one server: http-bench-server's POST /splice
# and POST /copy. Prints per case the wall time and the server's CPU seconds (user + system) per GiB.
# SIZE_MB (default 1024) and ROUNDS (default 3, alternating).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18090}
swift build -c release --product http-bench-server >/dev/null
BIN="$(swift build -c release --show-bin-path)/http-bench-server"
WORK=$(mktemp -d)
"$BIN" "$PORT" >"$WORK/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q listening "$WORK/server.log" && break; sleep 0.1; done
head -c $((SIZE_MB << 20)) /dev/urandom >"$WORK/body.bin"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
hz=$(getconf CLK_TCK)
declare -A wall cpu
for round in $(seq "$ROUNDS"); do
    for path in splice copy; do
        before=$(cpu_ticks)
        seconds=$(curl -sS -o "$WORK/answer" -w '%{time_total}' -X POST -H 'Content-Type: application/octet-stream' \
            -T "$WORK/body.bin" "http://127.0.0.1:$PORT/$path")
        [ "$(tr -d '\n' <"$WORK/answer")" = "$((SIZE_MB << 20))" ] || { echo "bad answer: $(cat "$WORK/answer")"; exit 1; }
        wall[$path]="${wall[$path]:-} $seconds"
        cpu[$path]="${cpu[$path]:-} $(echo "($(cpu_ticks) - $before) / $hz" | bc -l)"
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
printf '%-8s %12s %22s\n' "body" "wall s" "server CPU s per GiB"
for path in splice copy; do
    w=$(echo "${wall[$path]}" | median)
    c=$(echo "${cpu[$path]}" | median)
    printf '%-8s %12.2f %22.3f\n' "$path" "$w" "$(echo "$c * 1024 / $SIZE_MB" | bc -l)"
done
echo "(medians of $ROUNDS rounds of a $SIZE_MB MiB curl upload over loopback)"
