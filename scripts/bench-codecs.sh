#!/usr/bin/env bash
# `make bench-codecs`: each output codec on the same generated clips, side by side, at its default quality (the
# service's `quality=medium`): encode time, output bytes, and PSNR/SSIM against the lossless source, through
# `ffmpeg-processor transcode` (the service's engine and settings). BUILD=debug uses the debug binary (the encoders
# are C either way); CLIPS="name=lavfi-source ..." replaces the clips; SECONDS_PER_CLIP their length.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c "${BUILD:-release}" --show-bin-path)
OUT=bench-out/codecs
mkdir -p "$OUT"
LENGTH=${SECONDS_PER_CLIP:-2}
# Two kinds of picture: a synthetic scene with motion, text and light film grain, and fine detail that zooms.
CLIPS=${CLIPS:-"grain=testsrc2=size=1280x720:rate=30,noise=alls=3:allf=t zoom=mandelbrot=size=1280x720:rate=30"}
OUTPUTS="h264:mp4 hevc:mp4 av1:mp4 vp9:webm av1:webm"

# Wall and CPU seconds (user + system, all threads): on a shared machine CPU time is the steadier of the two.
TIMEFORMAT='%R %U %S'
# Frames compared by their order, not their timestamps: both files hold every frame, and the source's
# millisecond timestamps would otherwise pair some frames with their neighbours.
measure() { # output source filter
    ffmpeg -nostdin -v info -i "$1" -i "$2" -lavfi \
        "[0:v]settb=1/30,setpts=N[a];[1:v]settb=1/30,setpts=N[b];[a][b]$3" -f null - 2>&1 |
        grep -o "$4[0-9.inf]*" | tail -1 | cut -d: -f2
}

echo "bench-codecs $(date -u +%Y-%m-%dT%H:%MZ) on $(git rev-parse --short HEAD), $(nproc) cores, ${LENGTH} s clips"
printf '%-6s %-10s %7s %7s %10s %8s %8s %8s %7s\n' clip codec "wall s" "CPU s" bytes "PSNR dB" SSIM "bytes %" "CPU x"
for clip in $CLIPS; do
    name=${clip%%=*}
    source="$OUT/$name.mkv"
    [ -f "$source" ] || ffmpeg -nostdin -v error -y -f lavfi -i "${clip#*=},trim=duration=$LENGTH" \
        -pix_fmt yuv420p -c:v ffv1 "$source"
    base_bytes="" base_cpu=""
    for pair in $OUTPUTS; do
        codec=${pair%%:*} format=${pair#*:}
        output="$OUT/$name-$codec.$format"
        read -r wall user system < <({ time "$BIN/ffmpeg-processor" transcode "$source" "$output" --codec "$codec" \
            --format "$format" >/dev/null 2>&1; } 2>&1)
        cpu=$(echo "$user + $system" | bc)
        bytes=$(stat -c %s "$output")
        psnr=$(measure "$output" "$source" psnr average:)
        ssim=$(measure "$output" "$source" ssim All:)
        : "${base_bytes:=$bytes}" "${base_cpu:=$cpu}"
        printf '%-6s %-10s %7.2f %7.2f %10d %8.2f %8.4f %8.1f %7.2f\n' "$name" "$codec/$format" "$wall" "$cpu" "$bytes" \
            "$psnr" "$ssim" "$(echo "100 * $bytes / $base_bytes" | bc -l)" "$(echo "$cpu / $base_cpu" | bc -l)"
    done
done
