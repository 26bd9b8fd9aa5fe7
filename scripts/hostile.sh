#!/usr/bin/env bash
# `make hostile`: slowhttptest (Debian's package) against the service, in slowloris mode (heads trickled a line at a
# time) and slow-body mode (an upload trickled a few bytes at a time), 1000 connections each. While each attack is on,
# once its connections have outlived the defences (header timeout; minimum body rate after its grace), `/about` and a
# real upload must be served; afterwards nothing may stay admitted and the service's descriptors must be back to
# their baseline. BUILD (release or debug), CONNECTIONS, UPLOAD_FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-release}
CONNECTIONS=${CONNECTIONS:-1000}
UPLOAD_FILE=${UPLOAD_FILE:-Tests/Media/trial_video.mp4}
BIN=$(swift build -c "$BUILD" --show-bin-path)
OUT=$(mktemp -d)
TMP=$(mktemp -d)
source scripts/service.sh
start_service --tmp-dir "$TMP"
trap 'stop_service; rm -rf "$TMP" "$OUT"' EXIT
PID=$SERVICE_PID
fail() { echo "hostile: FAILED: $*" >&2; exit 1; }
BASELINE_FDS=$(service_fd_baseline)

# attack NAME CHECK_AFTER_SECONDS slowhttptest-options...
attack() {
    local name=$1 after=$2
    shift 2
    slowhttptest "$@" -c "$CONNECTIONS" -r 200 -i 2 -l 30 -p 3 -o "$OUT/$name" -g >"$OUT/$name.log" 2>&1 &
    local attacker=$!
    sleep "$after"
    local open; open=$(( $(service_fds) - BASELINE_FDS ))
    local about; about=$(curl -sS -m 2 -o /dev/null -w '%{http_code} %{time_total}' "$SERVICE_URL/about") ||
        fail "$name: /about did not answer within 2 s"
    [ "${about%% *}" = 200 ] || fail "$name: /about answered ${about%% *}"
    local upload; upload=$(curl -sS -m 60 -o "$OUT/answer.mp4" -w '%{http_code} %{time_total}' \
        --data-binary @"$UPLOAD_FILE" "$SERVICE_URL/hostile-$name") || fail "$name: the upload failed"
    [ "${upload%% *}" = 200 ] || fail "$name: the upload got ${upload%% *}: $(cat "$OUT/answer.mp4")"
    wait "$attacker" || true
    service_settles 30 "$BASELINE_FDS" || fail "$name: not back to baseline: $(service_fds) descriptors (baseline $BASELINE_FDS)"
    local closed; closed=$(grep -a 'closed:' "$OUT/$name.log" | tail -1 | grep -o '[0-9]*$' || echo "?")
    printf '%-10s %s attack connections open at %2d s: %4d; /about %s s; upload %s s; closed by the service: %s;' \
        "$name" "$CONNECTIONS" "$after" "$open" "${about#* }" "${upload#* }" "$closed"
    echo " back to $BASELINE_FDS descriptors"
}

echo "hostile: service pid $PID, $BASELINE_FDS descriptors; slowhttptest $(slowhttptest -h 2>&1 | grep -o 'version [0-9.]*')"
# Heads trickled one header line every 2 s: the 10 s header timeout cuts each connection.
attack slowloris 14 -H -u "$SERVICE_URL/slowloris"
# Uploads of a declared 100 kB trickled a few bytes every 2 s: every one is admitted (and holds a queue place)
# until the minimum body rate, after its 10 s grace, cuts it.
attack slowbody 18 -B -s 100000 -u "$SERVICE_URL/slowbody"
echo "hostile: passed"
