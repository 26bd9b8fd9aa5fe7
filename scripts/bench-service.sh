#!/usr/bin/env bash
# The service against the ffmpeg CLI over the same inputs and settings, in one run (part of `make bench`):
#   (a) TRIAL_REQUESTS uploads of the trial clip at concurrency CONCURRENCY vs the CLI over as many copies, xargs -P cores
#   (b) a generated 720p HD_SECONDS s clip with audio, HD_REQUESTS times, likewise
#   (c) one 720p request alone vs one CLI run (-threads 0)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)
OUT=bench-out/service
rm -rf "$OUT" && mkdir -p "$OUT"
TRIAL=${TRIAL:-Tests/Media/trial_video.mp4}
TRIAL_REQUESTS=${TRIAL_REQUESTS:-1000}
HD_REQUESTS=${HD_REQUESTS:-20}
HD_SECONDS=${HD_SECONDS:-10}
CONCURRENCY=${CONCURRENCY:-64}
CORES=$(nproc)
source scripts/service.sh

now() { date +%s.%N; }
# The CLI with the engine's settings spelled out; passthrough keeps the input's frames as the service does (the CLI's
# default for MP4 duplicates frames up to a constant rate).
cli() { ffmpeg -nostdin -v error -y -i "$1" -c:v libx264 -preset medium -crf 23 -pix_fmt yuv420p -c:a aac \
    -movflags +faststart -fps_mode passthrough "${@:3}" "$2"; }
export -f cli

# Seconds for the CLI over COUNT copies of INPUT, CORES at a time.
cli_parallel() { # input count
    local dir="$OUT/cli-$(basename "$1")"
    mkdir -p "$dir"
    for i in $(seq "$2"); do cp "$1" "$dir/in-$i.mp4"; done
    local start; start=$(now)
    find "$dir" -name 'in-*.mp4' -print0 | xargs -0 -P "$CORES" -n 1 bash -c 'cli "$0" "${0%.mp4}.out.mp4"'
    echo "$(now) - $start" | bc
    rm -rf "$dir"
}

# Seconds of wall time for the harness's run; fails unless every answer was a valid MP4 (status, type, length: the
# decoding check is left to `make harness` and the tests so it does not take cores from the service here).
service_run() { # input count concurrency
    "$BIN/harness" --url "$SERVICE_URL" --file "$1" --requests "$2" --concurrency "$3" --no-verify --timeout 3600 \
        --json "$OUT/report.json" >"$OUT/harness.txt" 2>/dev/null || { cat "$OUT/harness.txt" >&2; return 1; }
    sed -n 's/.*"wallSeconds" : \([0-9.e+-]*\).*/\1/p' "$OUT/report.json"
}

"$BIN/transcode-bench" generate "$OUT/hd.mp4" --width 1280 --height 720 --seconds "$HD_SECONDS" >/dev/null

printf '%-40s %10s %8s %10s %8s %9s %s\n' "case" "service s" "jobs/s" "CLI s" "jobs/s" "ratio" "goal"
row() { # label count service-seconds cli-seconds ratio goal
    printf '%-40s %10.2f %8.2f %10.2f %8.2f %8.2fx %s\n' "$1" "$3" "$(echo "$2 / $3" | bc -l)" "$4" \
        "$(echo "$2 / $4" | bc -l)" "$5" "$6"
}

start_service --log-level info
a_service=$(service_run "$TRIAL" "$TRIAL_REQUESTS" "$CONCURRENCY")
b_service=$(service_run "$OUT/hd.mp4" "$HD_REQUESTS" "$CONCURRENCY")
c_service=$(service_run "$OUT/hd.mp4" 1 1)
stop_service

a_cli=$(cli_parallel "$TRIAL" "$TRIAL_REQUESTS")
b_cli=$(cli_parallel "$OUT/hd.mp4" "$HD_REQUESTS")
start=$(now); cli "$OUT/hd.mp4" "$OUT/one.mp4" -threads 0; c_cli=$(echo "$(now) - $start" | bc)

row "(a) trial clip x$TRIAL_REQUESTS, concurrency $CONCURRENCY" "$TRIAL_REQUESTS" "$a_service" "$a_cli" \
    "$(echo "$a_cli / $a_service" | bc -l)" "CLI/service >= 5"
row "(b) 720p ${HD_SECONDS} s clip x$HD_REQUESTS" "$HD_REQUESTS" "$b_service" "$b_cli" \
    "$(echo "$b_cli / $b_service" | bc -l)" "CLI/service >= 1.0"
row "(c) one 720p request alone" 1 "$c_service" "$c_cli" "$(echo "$c_service / $c_cli" | bc -l)" "service/CLI <= 1.1"
