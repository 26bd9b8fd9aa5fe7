#!/usr/bin/env bash
# `make soak`: rounds of the harness against one service, a tenth of the clients walking away at random moments
# (mid-upload, while their job waits or runs, mid-download; half with a reset). After every round, once the service
# is idle: the temp folder is empty, no descriptor points into it, and the service's descriptor count is back to
# its value before the first request. Across rounds, resident memory must not keep growing: once the first half of
# the rounds has warmed the allocator up (an arena per thread that ran a job, freed job memory kept for the next),
# the last round's RSS may exceed the middle round's by at most RSS_SLACK_MB.
# Settings (environment): ROUNDS, REQUESTS, CONCURRENCY, DISCONNECT (percent), BUILD (release or debug),
# SOAK_FILE (the clip; default the trial clip in Tests/Media), RSS_SLACK_MB; ISOLATION (process or thread) is the
# service's own variable.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-10}
REQUESTS=${REQUESTS:-200}
CONCURRENCY=${CONCURRENCY:-50}
DISCONNECT=${DISCONNECT:-10}
BUILD=${BUILD:-release}
SOAK_FILE=${SOAK_FILE:-Tests/Media/trial_video.mp4}
RSS_SLACK_MB=${RSS_SLACK_MB:-16}
BIN=$(swift build -c "$BUILD" --show-bin-path)

TMP=$(mktemp -d)
source scripts/service.sh
start_service --tmp-dir "$TMP"
trap 'stop_service; rm -rf "$TMP"' EXIT
PID=$SERVICE_PID
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$PID/status"; }
fail() { echo "soak: FAILED: $*" >&2; exit 1; }

BASELINE_FDS=$(service_fd_baseline)
args=(--url "$SERVICE_URL" --requests "$REQUESTS" --concurrency "$CONCURRENCY" --disconnect "$DISCONNECT" --timeout 300)
[ -f "$SOAK_FILE" ] && args+=(--file "$SOAK_FILE")
echo "soak: $ROUNDS rounds of $REQUESTS requests at concurrency $CONCURRENCY, $DISCONNECT % disconnecting;" \
    "service pid $PID, $BASELINE_FDS descriptors, $(rss_kb) kB resident before the first request"

warm_rss=""
for round in $(seq "$ROUNDS"); do
    report=$("$BIN/harness" "${args[@]}") || { echo "$report"; fail "round $round: not every kept request got a valid MP4"; }
    service_settles 10 "$BASELINE_FDS" || fail "round $round: not settled after 10 s: $(service_fds) descriptors (baseline $BASELINE_FDS): $(ls -l /proc/$PID/fd | tail -n +2 | awk '{ print $NF }' | tr '\n' ' ')"
    [ -z "$(ls -A "$TMP")" ] || fail "round $round: files left in the temp folder: $(ls -A "$TMP")"
    if ls -l "/proc/$PID/fd" | grep -q "$TMP"; then fail "round $round: a descriptor still points into the temp folder"; fi
    # Under --isolation process (ISOLATION=thread makes the same run in-process): an idle worker holds its stdio
    # and its socket, nothing of a finished job.
    for worker in $(pgrep -P "$PID" || true); do
        held=$(ls "/proc/$worker/fd" 2>/dev/null | wc -l)
        [ "$held" -le 4 ] || fail "round $round: worker $worker holds $held descriptors: $(ls -l /proc/$worker/fd | tail -n +2 | awk '{ print $NF }' | tr '\n' ' ')"
    done
    rss=$(rss_kb)
    [ "$round" -ne $(( (ROUNDS + 1) / 2 )) ] || warm_rss=$rss
    abandoned=$(echo "$report" | awk '/^abandoned/ { print $2 }')
    latency=$(echo "$report" | awk '/^latency/ { $1 = ""; print }')
    printf 'round %2d: %s  abandoned %s  descriptors %s  rss %d kB  latency%s\n' "$round" \
        "$(echo "$report" | awk '/^success/ { print $2, $3 }')" "${abandoned:-0}" "$(service_fds)" "$rss" "$latency"
done
growth=$(( (rss - warm_rss) / 1024 ))
echo "soak: RSS after round $(( (ROUNDS + 1) / 2 )) $warm_rss kB, after the last $rss kB (growth $growth MB, allowed $RSS_SLACK_MB MB)"
[ "$growth" -le "$RSS_SLACK_MB" ] || fail "resident memory grew by $growth MB over $ROUNDS rounds"
echo "soak: passed"
