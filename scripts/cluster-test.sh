#!/usr/bin/env bash
# `make cluster-test`: REPLICAS (default 3) replicas on loopback, --workers 1 each, behind the shipped HAProxy
# configuration, then the shipped nginx configuration; the harness uploads the trial clip through them.
#   1. REQUESTS (300) at CONCURRENCY (100) through HAProxy: every answer a valid MP4.
#   2. A rolling restart while the harness runs (ROLLING_REQUESTS at a time, run after run, until the restarts are
#      done): each replica in turn gets SIGTERM, exits after its lame-duck delay and drain, is started again on its
#      port and waits to be healthy. Not one request may fail.
#   3. kill -9 of one replica mid-run: only the requests it held may fail (HAProxy's log of each is printed, and
#      each must name that replica); HAProxy takes it out within its check interval × fall, and once restarted it
#      gets traffic again.
#   4. Step 1 through nginx.
#   Steps 1 and 4 also send ASYNC_REQUESTS (60) async jobs at concurrency 20 (harness --async: submitted, followed by
#   SSE and downloaded, each through the balancer, which must send /jobs/<replica>. to the job's replica), and one
#   job's result is fetched by ranges through it, byte for byte.
# BUILD (release, or debug for CI's reduced run), ROLLING_REQUESTS (300), KILL_REQUESTS (300).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-release}
REPLICA_COUNT=${REPLICAS:-3}
unset REPLICAS  # the render scripts' variable
REQUESTS=${REQUESTS:-300}
CONCURRENCY=${CONCURRENCY:-100}
ROLLING_REQUESTS=${ROLLING_REQUESTS:-300}
KILL_REQUESTS=${KILL_REQUESTS:-300}
ASYNC_REQUESTS=${ASYNC_REQUESTS:-60}
CLIP=Tests/Media/trial_video.mp4
BIN=$(swift build -c "$BUILD" --show-bin-path)
WORK=$(mktemp -d)
source scripts/cluster.sh
trap 'stop_cluster; rm -rf "$WORK"' EXIT
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

harness() { # REPORT REQUESTS CONCURRENCY [HARNESS FLAGS...]
    "$BIN/harness" --url "http://127.0.0.1:$BALANCER_PORT" --file "$CLIP" --requests "$2" --concurrency "$3" \
        --timeout 120 --min-success 0 --json "$1" "${@:4}" >"$1.txt" 2>&1
}

# Async jobs through the balancer (harness --async), then one result by ranges, each range against the whole file.
async_through_balancer() { # STEP NAME
    echo "-- $ASYNC_REQUESTS async jobs at concurrency 20 through $2"
    harness "$WORK/$1-async.json" "$ASYNC_REQUESTS" 20 --async
    local succeeded
    succeeded=$(report_field "$WORK/$1-async.json" succeeded)
    echo "$succeeded of $ASYNC_REQUESTS async jobs valid"
    [ "$succeeded" = "$ASYNC_REQUESTS" ] || { fail "$1: $succeeded of $ASYNC_REQUESTS async jobs"; cat "$WORK/$1-async.json.txt"; }
    local base="http://127.0.0.1:$BALANCER_PORT" location
    location=$(curl -fsS -D - -o /dev/null --data-binary @"$CLIP" -H 'Prefer: respond-async' "$base/ranged" \
        | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    curl -fsS -N --max-time 120 "$base$location/events" | grep -q '"state":"succeeded"' \
        || { fail "$1: $location never succeeded through $2"; return; }
    curl -fsS -o "$WORK/$1-whole.mp4" "$base$location/output"
    local size ranges=0
    size=$(stat -c %s "$WORK/$1-whole.mp4")
    for range in "0-0" "$((size - 1))-" "-100" "100-999"; do
        curl -fsS -H "Range: bytes=$range" -o "$WORK/$1-part" "$base$location/output"
        case $range in
        -*) expected=$(tail -c "${range#-}" "$WORK/$1-whole.mp4" | sha256sum) ;;
        *-) expected=$(tail -c +"$((${range%-} + 1))" "$WORK/$1-whole.mp4" | sha256sum) ;;
        *) first=${range%-*}; last=${range#*-}
           expected=$(tail -c +"$((first + 1))" "$WORK/$1-whole.mp4" | head -c "$((last - first + 1))" | sha256sum) ;;
        esac
        [ "$(sha256sum <"$WORK/$1-part")" = "$expected" ] && ranges=$((ranges + 1)) || fail "$1: range $range differs"
    done
    echo "$ranges of 4 ranges byte-exact through $2"
}

# Runs of the harness one after another, $WORK/STEP-1.json, -2, ..., until $WORK/STEP.stop exists, so that the
# load lasts as long as what it covers does, however long a replica takes to drain and start (its worker
# processes too). In the background; the caller waits for it after making the stop file.
load_until_stopped() { # STEP REQUESTS
    (
        run=0
        while [ ! -e "$WORK/$1.stop" ]; do
            run=$((run + 1))
            harness "$WORK/$1-$run.json" "$2" 30
        done
    ) &
    load=$!
}

for i in $(seq "$REPLICA_COUNT"); do start_replica "r$i"; done
start_haproxy "$(free_port)"
echo "replicas: $(replica_list)behind HAProxy on $BALANCER_PORT"

echo "== 1. $REQUESTS uploads at concurrency $CONCURRENCY through HAProxy"
harness "$WORK/step1.json" "$REQUESTS" "$CONCURRENCY"
succeeded=$(report_field "$WORK/step1.json" succeeded)
echo "$succeeded of $REQUESTS valid"
[ "$succeeded" = "$REQUESTS" ] || { fail "step 1: $succeeded of $REQUESTS valid"; cat "$WORK/step1.json.txt"; }
async_through_balancer step1 HAProxy

echo "== 2. rolling restart while uploads run, $ROLLING_REQUESTS at a time until every replica is back"
load_until_stopped step2 "$ROLLING_REQUESTS"
sleep 1
for name in $(printf '%s\n' "${!REPLICA_PORT[@]}" | sort); do
    started=$SECONDS
    kill -TERM "${REPLICA_PID[$name]}"
    wait "${REPLICA_PID[$name]}" || fail "step 2: $name exited with $?"
    start_replica "$name" "${REPLICA_PORT[$name]}"
    # Back in rotation: HAProxy's rise (2 checks, 1 s apart) once the replica answers /about with 200.
    for _ in $(seq 300); do grep -q "replicas/$name is UP" <(tail -n 5 "$WORK/haproxy.log") && break; sleep 0.1; done
    echo "$name: restarted and back in rotation in $((SECONDS - started)) s"
done
touch "$WORK/step2.stop"
wait "$load" || true
runs=$(ls "$WORK"/step2-*.json | wc -l)
succeeded=0; failed_requests=0
for report in "$WORK"/step2-*.json; do
    succeeded=$((succeeded + $(report_field "$report" succeeded)))
    failed_requests=$((failed_requests + $(report_field "$report" failed)))
done
echo "$succeeded valid, $failed_requests failed, in $runs runs of $ROLLING_REQUESTS"
[ "$failed_requests" = 0 ] && [ "$succeeded" = $((runs * ROLLING_REQUESTS)) ] \
    || { fail "step 2: $failed_requests failed during the rolling restart"; cat "$WORK"/step2-*.json.txt; }

echo "== 3. kill -9 of one replica while uploads run, $KILL_REQUESTS at a time until it is back and serving"
victim=r2
log_start=$(($(wc -l <"$WORK/haproxy.log") + 1))
load_until_stopped step3 "$KILL_REQUESTS"
sleep 1
lines_before=$(wc -l <"$WORK/haproxy.log")
killed=$(date +%s.%N)
kill -9 "${REPLICA_PID[$victim]}"
wait "${REPLICA_PID[$victim]}" 2>/dev/null || true
down=""
for _ in $(seq 100); do
    if tail -n "+$((lines_before + 1))" "$WORK/haproxy.log" | grep -q "replicas/$victim is DOWN"; then
        down=$(date +%s.%N)
        break
    fi
    sleep 0.05
done
if [ -n "$down" ]; then
    detection=$(echo "$down - $killed" | bc -l)
    printf 'HAProxy took %s out after %.1f s (a refused connection marks it down; checks every 1 s, fall 2)\n' \
        "$victim" "$detection"
    [ "$(echo "$detection <= 3" | bc -l)" = 1 ] || fail "step 3: $victim taken out only after $detection s"
else
    fail "step 3: HAProxy never marked $victim down"
fi
start_replica "$victim" "${REPLICA_PORT[$victim]}"
for _ in $(seq 600); do [ "$(replica_transcodes "$victim")" -gt 0 ] && break; sleep 0.1; done
served=$(replica_transcodes "$victim")
echo "$victim restarted: $served uploads served since"
[ "$served" -gt 0 ] || fail "step 3: the restarted $victim got no traffic"
touch "$WORK/step3.stop"
wait "$load" || true
failed_requests=0
for report in "$WORK"/step3-*.json; do failed_requests=$((failed_requests + $(report_field "$report" failed))); done
# HAProxy's log of this step's requests that did not end in 200: each must have been on the killed replica.
tail -n "+$log_start" "$WORK/haproxy.log" | grep -E '"POST ' | grep -vE ' 200 [0-9]+ ' >"$WORK/step3-failed.log" || true
echo "$failed_requests failed; HAProxy's log of them:"
sed 's/^/  /' "$WORK/step3-failed.log"
logged=$(wc -l <"$WORK/step3-failed.log")
elsewhere=$(grep -vc "replicas/$victim " "$WORK/step3-failed.log" || true)
[ "$logged" = "$failed_requests" ] || fail "step 3: the harness counted $failed_requests failures, HAProxy logged $logged"
[ "$elsewhere" = 0 ] || fail "step 3: $elsewhere failed requests were not on $victim"

echo "== 4. $REQUESTS uploads at concurrency $CONCURRENCY through nginx"
stop_balancer
start_nginx "$(free_port)"
harness "$WORK/step4.json" "$REQUESTS" "$CONCURRENCY"
succeeded=$(report_field "$WORK/step4.json" succeeded)
echo "$succeeded of $REQUESTS valid"
[ "$succeeded" = "$REQUESTS" ] || { fail "step 4: $succeeded of $REQUESTS valid"; cat "$WORK/step4.json.txt"; }
async_through_balancer step4 nginx

[ "$failed" = 0 ] && echo "cluster test: passed" || { echo "cluster test: FAILED"; exit 1; }
