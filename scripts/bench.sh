#!/usr/bin/env bash
# `make bench`: in-process transcoding against the ffmpeg CLI, same files, same settings, one run, side by side.
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
