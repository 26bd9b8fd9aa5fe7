#!/usr/bin/env bash
# `make bench-cluster`: does throughput scale with replicas? A generated 720p clip of CLIP_SECONDS (default 4)
# through the shipped HAProxy configuration, to 1 replica pinned to core 0 (taskset) and to 2 replicas pinned to
# cores 0 and 1, each with --workers 1; ROUNDS (default 2) alternating pairs, REQUESTS (default 16) per run at
# concurrency 4, the answers not decoded (the harness would take cores from the replicas). Prints jobs/s per run,
# the median ratio (goal >= 1.8), and what one replica core does per second, for the README's projection.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
REQUESTS=${REQUESTS:-16}
CLIP_SECONDS=${CLIP_SECONDS:-4}
BUILD=release
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d)
source scripts/cluster.sh
trap 'stop_cluster; rm -rf "$WORK"' EXIT
[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores" >&2; exit 1; }
"$BIN/transcode-bench" generate "$WORK/hd.mp4" --width 1280 --height 720 --seconds "$CLIP_SECONDS" >/dev/null
SHUTDOWN_DELAY=0

# run REPLICAS: that many replicas, replica i pinned to core i-1; prints jobs/s.
run() {
    local i
    for i in $(seq "$1"); do start_replica "r$i" "" taskset -c $((i - 1)); done
    start_haproxy "$(free_port)"
    "$BIN/harness" --url "http://127.0.0.1:$BALANCER_PORT" --file "$WORK/hd.mp4" --requests "$REQUESTS" \
        --concurrency 4 --no-verify --timeout 600 --json "$WORK/run.json" >"$WORK/run.txt" 2>&1
    [ "$(report_field "$WORK/run.json" succeeded)" = "$REQUESTS" ] || { cat "$WORK/run.txt" >&2; exit 1; }
    report_field "$WORK/run.json" jobsPerSecond
    stop_balancer
    for i in $(seq "$1"); do kill "${REPLICA_PID[r$i]}"; wait "${REPLICA_PID[r$i]}" 2>/dev/null || true; done
    REPLICA_PID=(); REPLICA_PORT=()
}

echo "720p ${CLIP_SECONDS} s clip ($(stat -c %s "$WORK/hd.mp4") bytes) x $REQUESTS through HAProxy, --workers 1 per replica"
printf '%-6s %14s %14s %8s\n' round "1 replica/s" "2 replicas/s" ratio
ratios=()
ones=()
for round in $(seq "$ROUNDS"); do
    one=$(run 1)
    two=$(run 2)
    ratio=$(echo "$two / $one" | bc -l)
    ratios+=("$ratio")
    ones+=("$one")
    printf '%-6s %14.3f %14.3f %8.2f\n' "$round" "$one" "$two" "$ratio"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
printf 'ratio (2 replicas / 1), median of %d rounds: %.2f  (goal >= 1.8)\n' "$ROUNDS" "$(median "${ratios[@]}")"
printf 'one replica on one core: %.3f jobs/s of this clip\n' "$(median "${ones[@]}")"
