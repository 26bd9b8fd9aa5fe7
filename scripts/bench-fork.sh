#!/usr/bin/env bash
# What one process per job costs (part of `make bench-service`), on the release service under --isolation process:
#   fork        the mean of ffmpeg_processor_worker_fork_seconds: from asking the template for a child to the child
#               saying ready (off the request's path: the next child is forked once an answer has gone back)
#   P1          the trial clip, P1_REQUESTS requests at concurrency 64 (no decoding check): jobs/s
# With BASELINE=<git ref> (e.g. the commit before one process per job), that commit's service is built in
# .build-old and P1 runs alternately on it and on this tree, ROUNDS times; the comparison is the median of the
# rounds' new/old ratios, which cancels slow drifts in the machine's load. The goal: new/old >= 0.95.
set -euo pipefail
cd "$(dirname "$0")/.."
NEW_BIN=$(swift build -c release --show-bin-path)
OUT=bench-out/fork
rm -rf "$OUT" && mkdir -p "$OUT"
TRIAL=${TRIAL:-Tests/Media/trial_video.mp4}
P1_REQUESTS=${P1_REQUESTS:-200}
ROUNDS=${ROUNDS:-5}
source scripts/service.sh
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

p1() { # binary label: jobs/s of P1 on a fresh service started from that binary
    BIN=$1 start_service --isolation process
    "$1/harness" --url "$SERVICE_URL" --file "$TRIAL" --requests "$P1_REQUESTS" --concurrency 64 --no-verify \
        --timeout 600 --json "$OUT/$2.json" >"$OUT/$2.txt" 2>&1 || { cat "$OUT/$2.txt" >&2; return 1; }
    if [[ $2 == new* ]]; then
        curl -fsS "$SERVICE_URL/metrics" >"$OUT/$2.metrics"
    fi
    stop_service
    local wall; wall=$(sed -n 's/.*"wallSeconds" : \([0-9.e+-]*\).*/\1/p' "$OUT/$2.json" | head -1)
    echo "$P1_REQUESTS / $wall" | bc -l
}
fork_ms() { # metrics file
    local sum count
    sum=$(awk '$1 == "ffmpeg_processor_worker_fork_seconds_sum" { print $2 }' "$1")
    count=$(awk '$1 == "ffmpeg_processor_worker_fork_seconds_count" { print $2 }' "$1")
    echo "$sum * 1000 / $count" | bc -l
}

if [[ -z ${BASELINE:-} ]]; then
    rate=$(p1 "$NEW_BIN" new)
    printf 'P1 (%s x%s at concurrency 64): %.1f jobs/s; fork and confine per job: %.2f ms (mean)\n' \
        "$(basename "$TRIAL")" "$P1_REQUESTS" "$rate" "$(fork_ms "$OUT/new.metrics")"
    exit 0
fi

OLD_SRC=.build-old/src
rm -rf "$OLD_SRC" && mkdir -p "$OLD_SRC"
git archive "$BASELINE" | tar -x -C "$OLD_SRC"
swift build -c release --package-path "$OLD_SRC" --scratch-path .build-old/build --product ffmpeg-processor >/dev/null
swift build -c release --package-path "$OLD_SRC" --scratch-path .build-old/build --product harness >/dev/null
OLD_BIN=$(swift build -c release --package-path "$OLD_SRC" --scratch-path .build-old/build --show-bin-path)

echo "P1 ($(basename "$TRIAL") x$P1_REQUESTS at concurrency 64, --isolation process), $BASELINE vs this tree, $ROUNDS alternated rounds:"
printf '%6s %12s %12s %10s %12s\n' round "old jobs/s" "new jobs/s" "new/old" "fork ms"
ratios=()
for round in $(seq "$ROUNDS"); do
    old=$(p1 "$OLD_BIN" "old-$round")
    new=$(p1 "$NEW_BIN" "new-$round")
    ratio=$(echo "$new / $old" | bc -l)
    ratios+=("$ratio")
    printf '%6s %12.1f %12.1f %10.3f %12.2f\n' "$round" "$old" "$new" "$ratio" "$(fork_ms "$OUT/new-$round.metrics")"
done
printf 'median new/old: %.3f (goal >= 0.95)\n' "$(printf '%s\n' "${ratios[@]}" | median)"
