#!/usr/bin/env bash
# `make cluster-test`: REPLICAS (default 3) replicas on loopback, --workers 1 each, behind the shipped HAProxy
# configuration, then the shipped nginx configuration, then with no balancer; the harness uploads the trial clip.
#   1. REQUESTS (300) at CONCURRENCY (100) through HAProxy: every answer a valid MP4.
#   2. A rolling restart while the harness runs (ROLLING_REQUESTS at a time, run after run, until the restarts are
#      done): each replica in turn gets SIGTERM, exits after its lame-duck delay and drain, is started again on its
#      port and waits to be back in rotation. Not one request may fail.
#   3. kill -9 of one replica mid-run: only the requests it held may fail (HAProxy's log of each is printed, and
#      each must name that replica); HAProxy takes it out within its check interval × fall, and once restarted it
#      gets traffic again.
#   4. Step 1 through nginx.
#   5. Step 2 through nginx, which has no health checks: it learns of the restart only from the replica's answers
#      (`Connection: close` through the lame duck, then a refused connection or a 503 that it retries).
#   6. Step 2 with no balancer: the harness keeps a connection to a replica for upload after upload until the
#      replica closes it, then connects to the next (--keep-alive), as the clients of a Kubernetes Service do.
#   7. The balancers' own errors, each balancer in front of a replica that is not up: a Content-Length over
#      --max-body gets 413, an upload gets HAProxy's 503 and nginx's 502, every one problem+json.
#   8. Split uploads (a generated SPLIT_SECONDS (30) s clip, a keyframe every 2 s, --segment-seconds 2) on fresh
#      replicas s1-s3 with --cluster-url = HAProxy: one upload to s1, and s3, which takes only segments, gets kill -9
#      while it encodes one: the upload still answers 200 with every frame, decoding cleanly, the segment retried.
#   9. Step 2 with split uploads (SPLIT_REQUESTS (6) at a time, concurrency 3) through HAProxy: 0 failures.
#   Steps 1 and 4 also send ASYNC_REQUESTS (60) async jobs at concurrency 20 (harness --async: submitted, followed by
#   SSE and downloaded, each through the balancer, which must send /jobs/<replica>. to the job's replica), and one
#   job's result is fetched by ranges through it, byte for byte.
# BUILD (release, or debug for CI's reduced run), ROLLING_REQUESTS (300), KILL_REQUESTS (300); STEPS (all: 1-9) runs
# only the steps listed ("5 6"), with the balancer each needs.
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
SPLIT_SECONDS=${SPLIT_SECONDS:-30}
SPLIT_REQUESTS=${SPLIT_REQUESTS:-6}
CLIP=Tests/Media/trial_video.mp4
BIN=$(swift build -c "$BUILD" --show-bin-path)
WORK=$(mktemp -d)
source scripts/cluster.sh
trap 'stop_cluster; rm -rf "$WORK"' EXIT
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

STEPS=${STEPS:-1 2 3 4 5 6 7 8 9}
runs_step() { [[ " $STEPS " == *" $1 "* ]]; }

# Where the harness sends its uploads: the balancer, or (`direct`) every replica with kept connections.
TARGET=()
through_balancer() { TARGET=(--url "http://127.0.0.1:$BALANCER_PORT"); }
direct() {
    TARGET=(--keep-alive)
    local replica
    for replica in $(replica_list); do TARGET+=(--url "http://${replica#*=}"); done
}

harness() { # REPORT REQUESTS CONCURRENCY [HARNESS FLAGS...]
    "$BIN/harness" "${TARGET[@]}" --file "$CLIP" --requests "$2" --concurrency "$3" \
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
load_until_stopped() { # STEP REQUESTS [CONCURRENCY]
    (
        run=0
        while [ ! -e "$WORK/$1.stop" ]; do
            run=$((run + 1))
            harness "$WORK/$1-$run.json" "$2" "${3:-30}"
        done
    ) &
    load=$!
}

# A replica is back in rotation: behind HAProxy once its checks have passed (rise 2, 1 s apart); behind nginx, which
# has no checks, once it has served an upload again; for kept connections, as soon as it listens.
in_rotation_haproxy() {
    for _ in $(seq 300); do grep -q "replicas/$1 is UP" <(tail -n 5 "$WORK/haproxy.log") && return; sleep 0.1; done
}
in_rotation_nginx() {
    for _ in $(seq 600); do [ "$(replica_transcodes "$1")" -gt 0 ] && return; sleep 0.1; done
    fail "step $2: nginx sent nothing to the restarted $1 within 60 s"
}
in_rotation_listening() { :; }

# rolling_restart STEP HOW [REQUESTS CONCURRENCY]: SIGTERM to each replica in turn under load (REQUESTS at a time,
# default ROLLING_REQUESTS), each started again and back in rotation (in_rotation_HOW) before the next; then every
# upload of every run must have come back valid.
rolling_restart() {
    local requests=${3:-$ROLLING_REQUESTS}
    echo "== $1. rolling restart ($2) while uploads of $(basename "$CLIP") run, $requests at a time until every replica is back"
    load_until_stopped "step$1" "$requests" "${4:-30}"
    sleep 1
    local name started
    for name in $(printf '%s\n' "${!REPLICA_PORT[@]}" | sort); do
        started=$SECONDS
        kill -TERM "${REPLICA_PID[$name]}"
        wait "${REPLICA_PID[$name]}" || fail "step $1: $name exited with $?"
        start_replica "$name" "${REPLICA_PORT[$name]}"
        "in_rotation_$2" "$name" "$1"
        echo "$name: restarted and back in rotation in $((SECONDS - started)) s"
    done
    touch "$WORK/step$1.stop"
    wait "$load" || true
    local runs succeeded=0 failed_requests=0 connections=0 report
    runs=$(ls "$WORK"/step"$1"-*.json | wc -l)
    for report in "$WORK"/step"$1"-*.json; do
        succeeded=$((succeeded + $(report_field "$report" succeeded)))
        failed_requests=$((failed_requests + $(report_field "$report" failed)))
        connections=$((connections + $(report_field "$report" connections)))
    done
    echo "$succeeded valid, $failed_requests failed, in $runs runs of $requests over $connections connections"
    [ "$failed_requests" = 0 ] && [ "$succeeded" = $((runs * requests)) ] \
        || { fail "step $1: $failed_requests failed during the rolling restart"; cat "$WORK"/step"$1"-*.json.txt; }
}

# step_load STEP: REQUESTS at CONCURRENCY through the current target, every answer a valid MP4.
step_load() {
    echo "== $1. $REQUESTS uploads at concurrency $CONCURRENCY through $2"
    harness "$WORK/step$1.json" "$REQUESTS" "$CONCURRENCY"
    local succeeded
    succeeded=$(report_field "$WORK/step$1.json" succeeded)
    echo "$succeeded of $REQUESTS valid"
    grep -E '^(latency|throughput)' "$WORK/step$1.json.txt" | sed 's/^/  /'
    [ "$succeeded" = "$REQUESTS" ] || { fail "step $1: $succeeded of $REQUESTS valid"; cat "$WORK/step$1.json.txt"; }
}

kill_one() {
    echo "== 3. kill -9 of one replica while uploads run, $KILL_REQUESTS at a time until it is back and serving"
    local victim=r2 log_start lines_before killed down detection served failed_requests report logged elsewhere
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

}

for i in $(seq "$REPLICA_COUNT"); do start_replica "r$i"; done
if runs_step 1 || runs_step 2 || runs_step 3; then
    start_haproxy "$(free_port)"
    through_balancer
    echo "replicas: $(replica_list)behind HAProxy on $BALANCER_PORT"
    if runs_step 1; then
        step_load 1 HAProxy
        async_through_balancer step1 HAProxy
    fi
    if runs_step 2; then rolling_restart 2 haproxy; fi
    if runs_step 3; then kill_one; fi
    stop_balancer
fi
if runs_step 4 || runs_step 5; then
    start_nginx "$(free_port)"
    through_balancer
    echo "replicas: $(replica_list)behind nginx on $BALANCER_PORT"
    if runs_step 4; then
        step_load 4 nginx
        async_through_balancer step4 nginx
    fi
    if runs_step 5; then rolling_restart 5 nginx; fi
    stop_balancer
fi
if runs_step 6; then
    direct
    rolling_restart 6 listening
fi
if runs_step 7; then
    echo "== 7. the balancers' own errors, with no replica up: problem+json"
    down=127.0.0.1:$(free_port)
    run_haproxy "$WORK/haproxy-down" "$(free_port)" "$down"
    check_balancer_errors HAProxy 503 || fail "step 7: HAProxy's own errors"
    stop_balancer
    run_nginx "$WORK/nginx-down" "$(free_port)" "$down"
    check_balancer_errors nginx 502 || fail "step 7: nginx's own errors"
    stop_balancer
fi

if runs_step 8 || runs_step 9; then
    source scripts/cluster-split.sh
    split_cluster
    if runs_step 8; then kill_segment_replica; fi
    if runs_step 9; then rolling_restart 9 haproxy "$SPLIT_REQUESTS" 3; fi
    stop_balancer
fi

[ "$failed" = 0 ] && echo "cluster test: passed" || { echo "cluster test: FAILED"; exit 1; }
