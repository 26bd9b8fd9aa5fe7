#!/usr/bin/env bash
# wrk against GET /about of http-bench-server (one event-loop thread) and of nginx (one worker) serving the same
# bytes; prints both requests/second and the ratio. Needs: apt-get install wrk nginx-light.
# Servers are pinned to CPU 0 and wrk to CPU 1 (when there are two), so each side gets one core. ROUNDS (5) runs of
# DURATION (5s) each, alternating between the two servers; the figure to quote is the median ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
SWIFT_PORT=${SWIFT_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
source scripts/about-bench.sh

for tool in wrk nginx; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk nginx-light" >&2; exit 1; }
done
if [ "$(nproc)" -ge 2 ]; then SERVER_CPU="taskset -c 0"; CLIENT_CPU="taskset -c 1"; else SERVER_CPU=""; CLIENT_CPU=""; fi

swift build -c release --product http-bench-server >/dev/null
BIN="$(swift build -c release --show-bin-path)/http-bench-server"

WORK=$(mktemp -d)
cleanup() {
    [ -n "${SWIFT_PID:-}" ] && kill "$SWIFT_PID" 2>/dev/null || true
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    sleep 0.2
    rm -rf "$WORK"
}
trap cleanup EXIT

nginx_about_conf "$WORK" "$NGINX_PORT" daemon

wait_port() {
    wait_about "$1" 10 || { echo "server on port $1 did not come up" >&2; exit 1; }
}

rps() { awk '/Requests\/sec/ {print $2}'; }

$SERVER_CPU "$BIN" "$SWIFT_PORT" 1 >"$WORK/swift.log" 2>&1 &
SWIFT_PID=$!
wait_port "$SWIFT_PORT"
$SERVER_CPU nginx -c "$WORK/nginx.conf" -p "$WORK"
wait_port "$NGINX_PORT"

# CPU ticks (user, system) the serving process spent: per request, this is steadier than req/s on a shared machine.
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
# run PID PORT → wrk output, then a line "cpu <user µs/req> <system µs/req>"
run() {
    local before after out
    before=$(ticks "$1")
    out=$($CLIENT_CPU wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$2/about")
    after=$(ticks "$1")
    echo "$out"
    echo "$out" | awk -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" '/requests in/ {
        split(b, x, " "); split(a, y, " ")
        printf "cpu %.2f %.2f\n", (y[1] - x[1]) * 1e6 / hz / $1, (y[2] - x[2]) * 1e6 / hz / $1 }'
}
cpu() { awk '/^cpu / {printf "%s µs user + %s µs system per request", $2, $3}'; }

NGINX_WORKER=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)
# The machine is shared and noisy: ROUNDS alternating pairs, each pair's ratio taken side by side, and the median.
echo "wrk -t1 -c$CONNECTIONS -d$DURATION GET /about, $ROUNDS alternating rounds"
RATIOS=()
for round in $(seq 1 "$ROUNDS"); do
    SWIFT_OUT=$(run "$SWIFT_PID" "$SWIFT_PORT")
    NGINX_OUT=$(run "$NGINX_WORKER" "$NGINX_PORT")
    SWIFT_RPS=$(echo "$SWIFT_OUT" | rps)
    NGINX_RPS=$(echo "$NGINX_OUT" | rps)
    RATIO=$(awk -v a="$SWIFT_RPS" -v b="$NGINX_RPS" 'BEGIN { printf "%.2f", a / b }')
    RATIOS+=("$RATIO")
    printf 'round %d  http-bench-server: %s req/s (%s)  nginx: %s req/s (%s)  ratio %s\n' "$round" \
        "$SWIFT_RPS" "$(echo "$SWIFT_OUT" | cpu)" "$NGINX_RPS" "$(echo "$NGINX_OUT" | cpu)" "$RATIO"
done
echo "--- last round, http-bench-server (1 loop thread)"; echo "$SWIFT_OUT"
echo "--- last round, nginx (1 worker)"; echo "$NGINX_OUT"
echo
printf 'ratio (ours/nginx), median of %d rounds: %s  (rounds: %s)\n' "$ROUNDS" \
    "$(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')" \
    "${RATIOS[*]}"
