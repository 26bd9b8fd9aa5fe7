#!/usr/bin/env bash
# `make bench`: in-process transcoding against the ffmpeg CLI, same files, same settings, one run, side by side; then
# what the video filter stages cost per 1080p frame. BASELINE=<git ref> (`make bench-engine BASELINE=main`) also builds
# that commit's transcode-bench in .build-old and alternates it with this one on the 720p clip, ROUNDS times each.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)
OUT=bench-out
mkdir -p "$OUT"
TRIAL=${TRIAL:-Tests/Media/trial_video.mp4}
TRIAL_COUNT=${TRIAL_COUNT:-50}
HD_COUNT=${HD_COUNT:-3}

now() { date +%s.%N; }
# The CLI with the engine's settings spelled out (they are also its defaults).
cli() { ffmpeg -nostdin -v error -y -i "$1" -c:v libx264 -preset medium -crf 23 -pix_fmt yuv420p -c:a aac \
    -movflags +faststart "${@:3}" "$2"; }
cli_loop() { # input count extra-args...
    local input=$1 count=$2; shift 2
    local start; start=$(now)
    for _ in $(seq "$count"); do cli "$input" "$OUT/cli.mp4" "$@"; done
    echo "$(now) - $start" | bc
}
ours_loop() { "$BIN/transcode-bench" run "$1" --count "$2" --output-directory "$OUT" | cut -d' ' -f1; }
ratio() { echo "scale=2; $1 / $2" | bc; }

"$BIN/transcode-bench" generate "$OUT/hd.mp4" --width 1280 --height 720 --seconds 5 >/dev/null

printf '%-44s %10s %10s %8s\n' "case" "ours (s)" "CLI (s)" "CLI/ours"
row() { printf '%-44s %10.2f %10.2f %8s\n' "$1" "$2" "$3" "$(ratio "$3" "$2")x"; }

ours=$(ours_loop "$TRIAL" "$TRIAL_COUNT")
cli_default=$(cli_loop "$TRIAL" "$TRIAL_COUNT")
cli_pass=$(cli_loop "$TRIAL" "$TRIAL_COUNT" -fps_mode passthrough)
row "trial clip x$TRIAL_COUNT (CLI default, CFR)" "$ours" "$cli_default"
row "trial clip x$TRIAL_COUNT (CLI -fps_mode passthrough)" "$ours" "$cli_pass"

ours=$(ours_loop "$OUT/hd.mp4" "$HD_COUNT")
cli_hd=$(cli_loop "$OUT/hd.mp4" "$HD_COUNT")
row "720p 5 s clip x$HD_COUNT" "$ours" "$cli_hd"

# What the filter stages cost: the same 1080p clip with the stage on and off, alternated, FILTER_ROUNDS each.
FILTER_ROUNDS=${FILTER_ROUNDS:-5}
FILTER_COUNT=${FILTER_COUNT:-1}
"$BIN/transcode-bench" generate "$OUT/hlg1080.mov" --width 1920 --height 1080 --seconds 2 --frame-rate 25 \
    --signal hlg --codec libx265 --container mov >/dev/null
"$BIN/transcode-bench" generate "$OUT/int1080.ts" --width 1920 --height 1080 --seconds 2 --frame-rate 25 \
    --interlaced --container mpegts >/dev/null
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The stage's cost per frame in ms: median seconds with it, less without, over the frames of one run.
stage_cost() { # label input on-args off-args
    local on=() off=() frames
    for _ in $(seq "$FILTER_ROUNDS"); do
        on+=("$("$BIN/transcode-bench" run "$2" --count "$FILTER_COUNT" --output-directory "$OUT" $3 | cut -d' ' -f1)")
        read -r t frames < <("$BIN/transcode-bench" run "$2" --count "$FILTER_COUNT" --output-directory "$OUT" $4)
        off+=("$t")
    done
    local a b
    a=$(printf '%s\n' "${on[@]}" | median); b=$(printf '%s\n' "${off[@]}" | median)
    printf '%-44s %10.2f %10.2f %8.1f ms/frame\n' "$1" "$a" "$b" "$(echo "($a - $b) * 1000 / $frames" | bc -l)"
}
echo
printf '%-44s %10s %10s %8s\n' "1080p stage cost (x$FILTER_COUNT, median of $FILTER_ROUNDS)" "on (s)" "off (s)" "per frame"
stage_cost "tonemap(hlg->bt709) vs hdr=keep" "$OUT/hlg1080.mov" "--hdr tonemap" "--hdr keep"
stage_cost "bwdif vs deinterlace=off" "$OUT/int1080.ts" "--deinterlace auto" "--deinterlace off"

# This engine against BASELINE's, alternated on the 720p SDR progressive clip (the common path).
if [[ -n ${BASELINE:-} ]]; then
    OLD_SRC=.build-old/src
    rm -rf "$OLD_SRC" && mkdir -p "$OLD_SRC"
    git archive "$BASELINE" | tar -x -C "$OLD_SRC"
    swift build -c release --package-path "$OLD_SRC" --scratch-path .build-old/build --product transcode-bench >/dev/null
    OLD_BIN=$(swift build -c release --package-path "$OLD_SRC" --scratch-path .build-old/build --show-bin-path)
    ROUNDS=${ROUNDS:-7}
    old=() new=()
    for _ in $(seq "$ROUNDS"); do
        old+=("$("$OLD_BIN/transcode-bench" run "$OUT/hd.mp4" --count "$HD_COUNT" --output-directory "$OUT" | cut -d' ' -f1)")
        new+=("$(ours_loop "$OUT/hd.mp4" "$HD_COUNT")")
    done
    a=$(printf '%s\n' "${old[@]}" | median); b=$(printf '%s\n' "${new[@]}" | median)
    echo
    echo "720p SDR x$HD_COUNT, $ROUNDS alternated rounds: $BASELINE (swscale): ${old[*]}"
    echo "720p SDR x$HD_COUNT, $ROUNDS alternated rounds: this tree (graph): ${new[*]}"
    printf 'median %s %.3f s, this tree %.3f s: %+.2f %%\n' "$BASELINE" "$a" "$b" "$(echo "($b - $a) * 100 / $a" | bc -l)"
fi
