#!/usr/bin/env bash
# GET /about while every worker transcodes (issue goal: p99 < 5 ms). The release service with its defaults gets a
# stream of 720p uploads from the harness that keeps all its workers busy; meanwhile /about is measured twice: as a
# health check would ask (one connection, requests one after another, curl's own timing) and flat out (wrk -t1 -c64
# --latency). Fails if the workers were not all busy throughout. Runs with the workers at nice 0, at the default
# nice 10 and under SCHED_IDLE (--worker-policy idle), side by side. PROBES (default 500), DURATION (wrk, default
# 10s), POLICIES (default "nice:0 nice:10 idle").
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
percentile() { sort -g "$OUT/probe.txt" | awk -v p="$1" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999); print a[i < 1 ? 1 : i] * 1000 }'; }

# measure POLICY (nice:N or idle): one service, its workers kept busy, /about measured both ways.
measure() {
    case "$1" in
        nice:*) start_service --worker-policy nice --worker-nice "${1#nice:}" ;;
        *) start_service --worker-policy "$1" ;;
    esac
    local workers; workers=$(curl -fsS "$SERVICE_URL/about" | grep -o '"workers":[0-9]*' | cut -d: -f2)
    # Twice as many uploads in flight as workers, for longer than the measurements take.
    "$BIN/harness" --url "$SERVICE_URL" --file "$OUT/hd.mp4" --requests $((workers * 8)) \
        --concurrency $((workers * 2)) --no-verify --timeout 3600 >"$OUT/harness.txt" 2>&1 &
    local load=$!
    busy() { curl -fsS "$SERVICE_URL/about" | grep -q "\"running\":$workers,"; }
    for _ in $(seq 300); do busy && break; sleep 0.1; done
    busy || { echo "the workers did not all get busy" >&2; exit 1; }
    # One connection, one request after another: curl reuses it for every URL given.
    local urls=()
    for _ in $(seq "$PROBES"); do urls+=("$SERVICE_URL/about"); done
    curl -sS -w '\nTIME %{time_total}\n' "${urls[@]}" | awk '$1 == "TIME" { print $2 }' >"$OUT/probe.txt"
    busy || { echo "a worker went idle during the probes: not the figures of a busy service" >&2; exit 1; }
    wrk -t1 -c64 -d"$DURATION" --latency "$SERVICE_URL/about" >"$OUT/wrk.txt"
    busy || { echo "a worker went idle during wrk: not the figures of a busy service" >&2; exit 1; }
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    stop_service
    printf '%-12s %6.2f %6.2f %6.2f   %10s %8s %8s\n' "$1" "$(percentile 50)" "$(percentile 99)" "$(percentile 100)" \
        "$(awk '/Requests\/sec/ { print $2 }' "$OUT/wrk.txt")" "$(awk '$1 == "50%" { print $2 }' "$OUT/wrk.txt")" \
        "$(awk '$1 == "99%" { print $2 }' "$OUT/wrk.txt")"
}

echo "GET /about while every worker transcodes 720p ($(nproc) cores); sequential: $PROBES requests on one"
echo "connection, ms; wrk: -t1 -c64 $DURATION"
printf '%-12s %6s %6s %6s   %10s %8s %8s\n' "workers" "p50" "p99" "max" "wrk req/s" "p50" "p99"
for policy in ${POLICIES:-nice:0 nice:10 idle}; do measure "$policy"; done
