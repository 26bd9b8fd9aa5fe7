#!/usr/bin/env bash
# `--isolation process` against `--isolation thread`, side by side in one run (part of `make bench-service`), on the
# release service, each mode on a fresh service:
#   throughput  the trial clip, SMALL_REQUESTS requests at concurrency 64 (no decoding check: it would take cores
#               from the service): jobs/s; the goal is process within 5 % of thread
#   harness     the trial clip, HARNESS_REQUESTS requests all at once, every answer decoded: percent valid
#   hand-off    the trial clip, HANDOFF_REQUESTS requests one at a time: the mean of
#               ffmpeg_processor_handoff_seconds, the pool thread's time for a job less the engine's own (in a worker
#               process: the message, the descriptors, the answer, the wake-ups), in microseconds
#   peak RSS    VmHWM of the serving process after all of it, and the largest worker process's (process mode)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)
OUT=bench-out/isolation
rm -rf "$OUT" && mkdir -p "$OUT"
TRIAL=${TRIAL:-Tests/Media/trial_video.mp4}
SMALL_REQUESTS=${SMALL_REQUESTS:-200}
HARNESS_REQUESTS=${HARNESS_REQUESTS:-1000}
HANDOFF_REQUESTS=${HANDOFF_REQUESTS:-200}
source scripts/service.sh

harness() { # label requests concurrency [harness options...]
    local label=$1 requests=$2 concurrency=$3
    shift 3
    "$BIN/harness" --url "$SERVICE_URL" --file "$TRIAL" --requests "$requests" --concurrency "$concurrency" \
        --timeout 600 --json "$OUT/$label.json" "$@" >"$OUT/$label.txt" 2>&1 || { cat "$OUT/$label.txt" >&2; return 1; }
}
field() { sed -n "s/.*\"$2\" : \\([0-9.e+-]*\\).*/\\1/p" "$OUT/$1.json" | head -1; }
metric() { curl -fsS "$SERVICE_URL/metrics" | awk -v name="$1" '$1 == name { print $2 }'; }

printf '%-8s %14s %14s %14s %16s %16s\n' mode "trial jobs/s" "harness valid" "hand-off us" "service peak MB" "worker peak MB"
for mode in ${MODES:-thread process}; do
    start_service --isolation "$mode"
    harness "$mode-handoff" "$HANDOFF_REQUESTS" 1 --no-verify
    handoff_us=$(echo "$(metric ffmpeg_processor_handoff_seconds_sum) / $(metric ffmpeg_processor_handoff_seconds_count) * 1000000" | bc -l)
    harness "$mode-throughput" "$SMALL_REQUESTS" 64 --no-verify
    wall=$(field "$mode-throughput" wallSeconds)
    harness "$mode-harness" "$HARNESS_REQUESTS" "$HARNESS_REQUESTS"
    valid=$(awk '/^success/ { print $2 }' "$OUT/$mode-harness.txt")
    service_peak=$(awk '/^VmHWM/ { print $2 / 1024 }' "/proc/$SERVICE_PID/status")
    worker_peak=0
    for worker in $(pgrep -P "$SERVICE_PID" || true); do
        peak=$(awk '/^VmHWM/ { print $2 / 1024 }' "/proc/$worker/status")
        worker_peak=$(echo "if ($peak > $worker_peak) $peak else $worker_peak" | bc -l)
    done
    stop_service
    rate=$(echo "$SMALL_REQUESTS / $wall" | bc -l)
    eval "rate_$mode=$rate"
    printf '%-8s %14.1f %14s %14.0f %16.1f %16.1f\n' "$mode" "$rate" "${valid:-?}" "$handoff_us" "$service_peak" "$worker_peak"
done
echo "process / thread throughput: $(printf '%.3f' "$(echo "$rate_process / $rate_thread" | bc -l)") (goal >= 0.95)"
