#!/usr/bin/env bash
# Runs the CLI under AddressSanitizer/LeakSanitizer over good and hostile inputs; any leak or memory error fails.
# (valgrind 3.19 cannot read the DWARF 5 that Swift 6.3 emits, hence the sanitizer.)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --scratch-path .build-asan --sanitize=address --product ffmpeg-processor >/dev/null
swift build --product transcode-bench >/dev/null
BIN=.build-asan/debug/ffmpeg-processor
GEN=$(swift build --show-bin-path)/transcode-bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$GEN" generate "$WORK/good.mp4" --width 320 --height 240 --seconds 1 >/dev/null
# The filter graph's stages: tone mapping (10-bit HLG HEVC), bwdif (interlaced), compositing (animated GIF).
"$GEN" generate "$WORK/hlg.mov" --width 320 --height 240 --seconds 1 --signal hlg --codec libx265 --container mov >/dev/null
"$GEN" generate "$WORK/interlaced.ts" --width 320 --height 240 --seconds 1 --interlaced --container mpegts >/dev/null
"$GEN" gif "$WORK/animated.gif" >/dev/null
head -c $(( $(stat -c %s "$WORK/good.mp4") / 2 )) "$WORK/good.mp4" > "$WORK/half.mp4"
printf '#EXTM3U\n#EXTINF:1,\n%s\n' "$WORK/good.mp4" > "$WORK/list.m3u8"
printf 'ffconcat version 1.0\nfile %s\n' "$WORK/good.mp4" > "$WORK/list.ffconcat"
python3 -c "import random,sys; random.seed(7); sys.stdout.buffer.write(random.randbytes(100000))" > "$WORK/noise.bin"
: > "$WORK/empty.bin"
failed=0
for input in good.mp4 hlg.mov interlaced.ts animated.gif half.mp4 list.m3u8 list.ffconcat noise.bin empty.bin Tests/Media/trial_video.mp4; do
    path=$input; [[ $input == */* ]] || path=$WORK/$input
    set +e
    ASAN_OPTIONS=detect_leaks=1:exitcode=99 "$BIN" transcode "$path" "$WORK/out.mp4" >"$WORK/log" 2>&1
    status=$?
    set -e
    if [[ $status -eq 99 ]] || grep -q 'Sanitizer' "$WORK/log"; then
        echo "LEAK or memory error on $input:"; cat "$WORK/log"; failed=1
    else
        echo "clean: $input (exit $status)"
    fi
done
exit $failed
