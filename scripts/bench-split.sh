#!/usr/bin/env bash
# `make bench-split`: does one long upload get faster when split (issue #20)? A generated 1080p clip of
# CLIP_SECONDS (default 40; H.264 ultrafast at 6 Mbit/s, a keyframe every 2-5 s, AAC), one upload at a time, ROUNDS
# (default 2) alternating pairs:
#   cluster  through the shipped HAProxy configuration: one replica pinned to core 0 with --split off, against two
#            replicas pinned to cores 0 and 1 with --cluster-url = that HAProxy (goal: at least 1.8x);
#            each --workers 1
#   single   one replica, --workers WORKERS (default 2), ?split=auto against ?split=off (goal: at least 0.95x)
# PARTS (default "cluster single") picks them; BIN (default the release build) the binaries. Prints each upload's
# seconds and segments, the median ratio, and checks that split and whole answers decode to the same frame count.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$(swift build -c release --show-bin-path)}
ROUNDS=${ROUNDS:-2}
WORKERS=${WORKERS:-2}
CLIP_SECONDS=${CLIP_SECONDS:-40}
PARTS=${PARTS:-cluster single}
WORK=$(mktemp -d)
OUT=bench-out/split
mkdir -p "$OUT"
source scripts/cluster.sh
trap 'stop_cluster; rm -rf "$WORK"' EXIT
SHUTDOWN_DELAY=0
CLIP=$OUT/long1080-$CLIP_SECONDS.mp4
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

if [ ! -s "$CLIP" ]; then
    keys=$(awk -v end="$CLIP_SECONDS" 'BEGIN { t = 0; s = "0"; srand(20); while (1) { t += 2 + int(rand() * 4); if (t >= end) break; s = s "," t } print s }')
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=25" -f lavfi -i sine=frequency=440:sample_rate=48000 \
        -t "$CLIP_SECONDS" -c:v libx264 -preset ultrafast -b:v 6M -g 1000 -sc_threshold 0 -force_key_frames "$keys" \
        -c:a aac -b:a 128k -movflags +faststart "$CLIP"
fi
echo "clip: $CLIP_SECONDS s of 1080p25, $(stat -c %s "$CLIP") bytes"

upload() { # url name: prints "seconds segments"
    local started ended
    started=$(date +%s.%N)
    curl -fsS -o "$OUT/$2.mp4" -D "$OUT/$2.head" --data-binary @"$CLIP" "$1"
    ended=$(date +%s.%N)
    echo "$(echo "$ended - $started" | bc -l) $(tr -d '\r' <"$OUT/$2.head" | sed -n 's/^[Xx]-[Vv]ideo-[Ss]egments: //p')"
}

# cluster_run REPLICAS SPLIT: replicas pinned a core each behind HAProxy, segments through it; the upload's
# "seconds segments" in $OUT/cluster-REPLICAS.result. Runs in this shell (not a $(...)), so that the EXIT trap
# stops whatever it started.
cluster_run() {
    local i port replica
    port=$(free_port)
    for i in $(seq "$1"); do
        # The balancer's port is chosen before anything listens on it: no replica may take it.
        replica=$(free_port)
        while [ "$replica" = "$port" ]; do replica=$(free_port); done
        REPLICA_ARGS="--split $2 --cluster-url http://127.0.0.1:$port" start_replica "r$i" "$replica" taskset -c $((i - 1))
    done
    start_haproxy "$port"
    upload "http://127.0.0.1:$port/bench" "cluster-$1" >"$OUT/cluster-$1.result"
    stop_balancer
    for i in $(seq "$1"); do kill "${REPLICA_PID[r$i]}"; wait "${REPLICA_PID[r$i]}" 2>/dev/null || true; done
    REPLICA_PID=(); REPLICA_PORT=()
}

if [[ " $PARTS " == *" cluster "* ]]; then
    ratios=()
    for round in $(seq "$ROUNDS"); do
        cluster_run 1 off
        cluster_run 2 auto
        read -r one _ <"$OUT/cluster-1.result"
        read -r two segments <"$OUT/cluster-2.result"
        [ -n "${segments:-}" ] || { echo "the upload to 2 replicas was not split (CLIP_SECONDS <= --split-min-seconds?)" >&2; exit 1; }
        ratios+=("$(echo "$one / $two" | bc -l)")
        printf 'cluster round %s: 1 replica whole %.1f s, 2 replicas split %.1f s (%s segments), load %s\n' \
            "$round" "$one" "$two" "${segments:-no}" "$(cut -d' ' -f1 /proc/loadavg)"
    done
    [ "$(frames "$OUT/cluster-1.mp4")" = "$(frames "$OUT/cluster-2.mp4")" ] || { echo "frame counts differ" >&2; exit 1; }
    printf 'cluster: one upload, whole on 1 replica / split on 2: %.2fx (median; goal >= 1.8)\n' "$(median "${ratios[@]}")"
fi

if [[ " $PARTS " == *" single "* ]]; then
    # start_replica passes --workers 1; the later --workers wins.
    REPLICA_ARGS="--workers $WORKERS" start_replica single
    curl -fsS "http://127.0.0.1:${REPLICA_PORT[single]}/about" | grep -q "\"workers\":$WORKERS," \
        || { echo "the replica did not take --workers $WORKERS" >&2; exit 1; }
    ratios=()
    for round in $(seq "$ROUNDS"); do
        read -r auto segments <<<"$(upload "http://127.0.0.1:${REPLICA_PORT[single]}/bench?split=auto" single-auto)"
        [ -n "${segments:-}" ] || { echo "the upload with split=auto was not split" >&2; exit 1; }
        read -r off _ <<<"$(upload "http://127.0.0.1:${REPLICA_PORT[single]}/bench?split=off" single-off)"
        ratios+=("$(echo "$off / $auto" | bc -l)")
        printf 'single round %s: split %.1f s (%s segments), whole %.1f s, load %s\n' \
            "$round" "$auto" "${segments:-no}" "$off" "$(cut -d' ' -f1 /proc/loadavg)"
    done
    [ "$(frames "$OUT/single-auto.mp4")" = "$(frames "$OUT/single-off.mp4")" ] || { echo "frame counts differ" >&2; exit 1; }
    printf 'one replica, %s workers: whole / split %.2fx (median; goal >= 0.95)\n' "$WORKERS" "$(median "${ratios[@]}")"
fi
