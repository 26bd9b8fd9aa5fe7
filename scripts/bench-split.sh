#!/usr/bin/env bash
# Split-and-stitch against one job per upload, on the release service, one upload at a time:
#   a generated 40 s 1080p clip (H.264 ultrafast at 6 Mbit/s, keyframes 2-5 s apart, AAC), as issue #20's
#   measurement; one replica with WORKERS workers (default 2), ?split=auto and ?split=off alternated ROUNDS times.
# Prints each upload's wall time and the median ratio off/auto (the speed-up of ONE upload), and checks that both
# answers decode to the same frame count. The two-replica case through HAProxy (--cluster-url) is not built yet.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)
OUT=bench-out/split
mkdir -p "$OUT"
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-2}
CLIP=$OUT/long1080.mp4
source scripts/service.sh
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

if [ ! -s "$CLIP" ]; then
    ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
        -t 40 -c:v libx264 -preset ultrafast -b:v 6M -g 300 -sc_threshold 0 \
        -force_key_frames 0,2,5,10,12,15,20,22,27,30,32,37 -c:a aac -b:a 128k -movflags +faststart "$CLIP"
fi
start_service --workers "$WORKERS" --queue 16
upload() { # split mode; prints seconds
    local started ended
    started=$(date +%s.%N)
    curl -fsS -o "$OUT/out-$1.mp4" -D "$OUT/head-$1.txt" --data-binary @"$CLIP" "$SERVICE_URL/bench?split=$1"
    ended=$(date +%s.%N)
    echo "$ended - $started" | bc -l
}
frames() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }
: >"$OUT/ratios.txt"
for round in $(seq "$ROUNDS"); do
    auto=$(upload auto)
    off=$(upload off)
    segments=$(tr -d '\r' <"$OUT/head-auto.txt" | sed -n 's/^[Xx]-[Vv]ideo-[Ss]egments: //p')
    printf 'round %s: split %.1f s (%s segments), whole %.1f s, load %s\n' "$round" "$auto" "${segments:-none}" "$off" \
        "$(cut -d' ' -f1 /proc/loadavg)"
    echo "$off / $auto" | bc -l >>"$OUT/ratios.txt"
done
[ "$(frames "$OUT/out-auto.mp4")" = "$(frames "$OUT/out-off.mp4")" ] || { echo "frame counts differ" >&2; exit 1; }
curl -fsS "$SERVICE_URL/metrics" | grep -E '^ffmpeg_processor_(split_jobs|segments)_total' || true
printf 'median speed-up of one upload (whole / split), %s workers: %.2fx\n' "$WORKERS" "$(median <"$OUT/ratios.txt")"
