#!/usr/bin/env bash
# GET /about while every worker transcodes (issue goal: p99 < 5 ms). The release service with its defaults gets a
# stream of 720p uploads from the harness that keeps all its workers busy; meanwhile /about is measured twice: as a
# health check would ask (one connection, requests one after another, curl's own timing) and flat out (wrk -t1 -c64
# --latency). Fails if the workers were not all busy throughout. PROBES (default 500), DURATION (wrk, default 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
PROBES=${PROBES:-500}
DURATION=${DURATION:-10s}
BIN=$(swift build -c release --show-bin-path)
OUT=bench-out/about-busy
rm -rf "$OUT" && mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "missing wrk: make bench-deps" >&2; exit 1; }
"$BIN/transcode-bench" generate "$OUT/hd.mp4" --width 1280 --height 720 --seconds 10 >/dev/null

source scripts/service.sh
start_service --log-level warning
WORKERS=$(curl -fsS "$SERVICE_URL/about" | grep -o '"workers":[0-9]*' | cut -d: -f2)
# Twice as many uploads in flight as workers, for longer than the measurements take.
"$BIN/harness" --url "$SERVICE_URL" --file "$OUT/hd.mp4" --requests $((WORKERS * 8)) --concurrency $((WORKERS * 2)) \
    --no-verify --timeout 3600 >"$OUT/harness.txt" 2>&1 &
LOAD=$!
trap 'kill $LOAD 2>/dev/null || true; stop_service' EXIT
busy() { curl -fsS "$SERVICE_URL/about" | grep -q "\"running\":$WORKERS,"; }
for _ in $(seq 300); do busy && break; sleep 0.1; done
busy || { echo "the workers did not all get busy" >&2; exit 1; }

# One connection, one request after another: curl reuses it for every URL given.
urls=()
for _ in $(seq "$PROBES"); do urls+=("$SERVICE_URL/about"); done
curl -sS -o /dev/null -w '%{time_total}\n' "${urls[@]}" >"$OUT/probe.txt"
busy || { echo "a worker went idle during the probes: the figures are not of a busy service" >&2; exit 1; }
wrk -t1 -c64 -d"$DURATION" --latency "$SERVICE_URL/about" >"$OUT/wrk.txt"
busy || { echo "a worker went idle during wrk: the figures are not of a busy service" >&2; exit 1; }

percentile() { sort -g "$OUT/probe.txt" | awk -v p="$1" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999); print a[i < 1 ? 1 : i] * 1000 }'; }
echo "GET /about with all $WORKERS workers transcoding 720p ($(nproc) cores):"
printf '  sequential, one connection, %d requests: p50 %.2f ms  p99 %.2f ms  max %.2f ms\n' "$PROBES" \
    "$(percentile 50)" "$(percentile 99)" "$(percentile 100)"
rps=$(awk '/Requests\/sec/ { print $2 }' "$OUT/wrk.txt")
p50=$(awk '$1 == "50%" { print $2 }' "$OUT/wrk.txt")
p99=$(awk '$1 == "99%" { print $2 }' "$OUT/wrk.txt")
echo "  wrk -t1 -c64 $DURATION: $rps req/s, p50 $p50, p99 $p99"
