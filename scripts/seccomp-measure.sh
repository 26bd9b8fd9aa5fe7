#!/usr/bin/env bash
# Derives the worker processes' system-call allow-lists (Sources/WorkerIsolation/SeccompPolicy.swift) by measurement.
#
# A debug service runs its templates and their one-job children with the whole sandbox but the filters
# (FFMPEG_PROCESSOR_WORKER_UNCONFINED=1, which only debug builds read). `strace -f -c` attaches to every template
# once it has said ready (so its start-up, which runs before its filter is loaded, is not counted) and follows the
# children it forks, and these jobs go through them:
#   - the trial clip (Tests/Media), with and without options;
#   - every fixture format the fuzzer seeds from (mp4/H.264+AAC, avi/MPEG-4+MP2, webm/VP8+Vorbis, mkv, mpegts+MP2,
#     flv, ADTS AAC in mpegts), each as is, scaled, and without audio;
#   - a 720p clip, so that x264 and the decoders run their frame threads;
#   - every output codec (HEVC, AV1 in MP4 and WebM, VP9 with Opus), 10-bit HDR kept in each, and a poster in each
#     image format;
#   - every filter path: HLG and PQ (10-bit HEVC, tone-mapped, and kept with hdr=keep), an interlaced clip
#     (bwdif, and deinterlace=off), the animated GIF fixture;
#   - MUTANTS mutants of the fuzzer's (make fuzz-media's corpus, seed SEED);
#   - bad inputs: text, an empty-looking header, a truncated clip, random bytes;
#   - a job cancelled mid-way (the client leaves) and one past its time limit.
# The table it prints is the union of both lists: the template's own calls (fork, wait4, kill, and what a child does
# between its fork and its own filter: dup2, prctl, seccomp, getppid) are SeccompPolicy.templateOnly; every other
# call in it must be in the job list, and nothing else needs to be.
#
#   scripts/seccomp-measure.sh            # or MUTANTS=1000 SEED=7 scripts/seccomp-measure.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MUTANTS=${MUTANTS:-300}
SEED=${SEED:-7}
OUT=bench-out/seccomp
rm -rf "$OUT" && mkdir -p "$OUT/inputs"
command -v strace >/dev/null || { echo "strace is missing: make seccomp-measure installs it" >&2; exit 1; }
swift build --product ffmpeg-processor >/dev/null
swift build -c release --product media-fuzz >/dev/null
swift build -c release --product transcode-bench >/dev/null
DEBUG_BIN=$(swift build --show-bin-path)
RELEASE_BIN=$(swift build -c release --show-bin-path)

"$RELEASE_BIN/media-fuzz" --count "$MUTANTS" --seed "$SEED" --work-directory "$OUT/fuzz" \
    --save-mutants "$OUT/mutants" >/dev/null
"$RELEASE_BIN/transcode-bench" generate "$OUT/inputs/hd.mp4" --width 1280 --height 720 --seconds 2 >/dev/null
for signal in hlg pq; do
    "$RELEASE_BIN/transcode-bench" generate "$OUT/inputs/$signal.mov" --width 640 --height 360 --seconds 1 \
        --signal "$signal" --codec libx265 --container mov >/dev/null
done
"$RELEASE_BIN/transcode-bench" generate "$OUT/inputs/interlaced.mp4" --width 720 --height 480 --seconds 1 --interlaced >/dev/null
"$RELEASE_BIN/transcode-bench" gif "$OUT/inputs/animated.gif" >/dev/null
cp Tests/Media/trial_video.mp4 "$OUT/inputs/"
head -c 4000 Tests/Media/trial_video.mp4 >"$OUT/inputs/truncated.mp4"
printf 'this is not a video\n' >"$OUT/inputs/text.txt"
head -c 65536 /dev/urandom >"$OUT/inputs/random.bin"
printf '\x00\x00\x00\x18ftypmp42' >"$OUT/inputs/header-only.mp4"

BIN=$DEBUG_BIN
source scripts/service.sh
FFMPEG_PROCESSOR_WORKER_UNCONFINED=1 start_service --workers 2 --job-timeout 3
pids=()
for _ in $(seq 100); do
    mapfile -t pids < <(pgrep -P "$SERVICE_PID" || true)
    [ "${#pids[@]}" -ge 2 ] && break
    sleep 0.1
done
[ "${#pids[@]}" -ge 2 ] || { echo "no worker processes" >&2; exit 1; }
sleep 1
strace -f -c -o "$OUT/strace.txt" "${pids[@]/#/-p}" &
STRACE=$!
sleep 1

post() { # file query
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 60 --data-binary @"$1" "$SERVICE_URL/measure$2" || true
}
{
    for file in "$OUT"/inputs/* "$OUT"/fuzz/seed.*; do
        post "$file" ""
        post "$file" "?height=120&preset=ultrafast"
        post "$file" "?audio=0&crf=30"
    done
    for file in "$OUT"/inputs/hlg.mov "$OUT"/inputs/pq.mov; do post "$file" "?hdr=keep"; done
    post "$OUT/inputs/interlaced.mp4" "?deinterlace=off"
    # Every encoder and container (x265, SVT-AV1, libvpx, libopus; WebM), 10-bit HDR kept, and the posters' encoders.
    for query in "?codec=hevc" "?codec=av1" "?codec=vp9" "?codec=av1&format=webm"; do
        post "$OUT/inputs/hd.mp4" "$query"
        for file in "$OUT"/inputs/hlg.mov "$OUT"/inputs/pq.mov; do post "$file" "$query&hdr=keep"; done
    done
    for format in jpeg webp png; do post "$OUT/inputs/hd.mp4" "/poster?at=1&format=$format"; done
    for file in "$OUT"/mutants/*; do post "$file" "?preset=ultrafast"; done
    # Cancelled: the client gives up mid-job. Timed out: the 3 s job limit stops a slow preset.
    curl -s -o /dev/null --max-time 1 --data-binary @"$OUT/inputs/hd.mp4" "$SERVICE_URL/cancelled?preset=veryslow" || true
    post "$OUT/inputs/hd.mp4" "?preset=placebo"
} | sort | uniq -c >"$OUT/statuses.txt"
sleep 2
kill -INT "$STRACE" 2>/dev/null || true  # it ends by itself if the workers it follows are gone
wait "$STRACE" || true
stop_service
echo "answers (count status):"
cat "$OUT/statuses.txt"
echo "system calls made by the templates after start-up, and by every child they forked:"
cat "$OUT/strace.txt"
