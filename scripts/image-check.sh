#!/usr/bin/env bash
# `make image-check`: the container image's runtime stage, proved without a registry or a Docker engine. A Debian
# bookworm root filesystem is built (mmdebstrap, minbase) with exactly the RUNTIME_PACKAGES that deploy/Dockerfile
# installs (read from it: one source of truth), the release binary built as the Dockerfile builds it
# (--static-swift-stdlib) is copied in, and inside it (chroot): no shared library may be missing, the trial clip
# must transcode to an MP4 that decodes with its 11 frames, and `serve` must answer /about, as the unprivileged
# user the image runs as.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "image-check builds and enters a root filesystem: run it as root" >&2; exit 1; }
packages=$(sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"$/\1/p' deploy/Dockerfile)
[ -n "$packages" ] || { echo "no RUNTIME_PACKAGES line in deploy/Dockerfile" >&2; exit 1; }
user=$(sed -n 's/^USER \([0-9]*\):.*$/\1/p' deploy/Dockerfile)

swift build -c release --static-swift-stdlib --scratch-path .build-static --product ffmpeg-processor >/dev/null
BINARY="$(swift build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)/ffmpeg-processor"

ROOT=$(mktemp -d)
cleanup() {
    [ -n "${SERVICE_PID:-}" ] && kill "$SERVICE_PID" 2>/dev/null || true
    umount -l "$ROOT/proc" "$ROOT/sys" 2>/dev/null || true
    rm -rf "$ROOT"
}
trap cleanup EXIT
echo "== a bookworm root filesystem with: $packages"
mmdebstrap --quiet --variant=minbase --include="${packages// /,}" bookworm "$ROOT" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
install -m 0755 "$BINARY" "$ROOT/usr/local/bin/ffmpeg-processor"
install -d -m 1777 "$ROOT/work"
cp Tests/Media/trial_video.mp4 "$ROOT/work/in.mp4"
# What a container runtime gives every container.
mount -t proc proc "$ROOT/proc"
mount --rbind -o ro /sys "$ROOT/sys"

echo "== shared libraries"
missing=$(chroot "$ROOT" ldd /usr/local/bin/ffmpeg-processor | grep 'not found' || true)
[ -z "$missing" ] || { echo "missing in the runtime image:"; echo "$missing"; exit 1; }
echo "all found"

echo "== transcode inside, as user $user"
chroot --userspec="$user:$user" "$ROOT" /usr/local/bin/ffmpeg-processor transcode /work/in.mp4 /work/out.mp4
frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,nb_read_frames \
    -of csv=p=0 "$ROOT/work/out.mp4")
[ "$frames" = "h264,11" ] || { echo "the output decodes as '$frames', not h264 with 11 frames"; exit 1; }
echo "out.mp4: $frames"

echo "== serve inside, /about from outside"
port=$(shuf -i 20000-60000 -n 1)
chroot --userspec="$user:$user" "$ROOT" /usr/local/bin/ffmpeg-processor serve --host 127.0.0.1 --port "$port" \
    --tmp-dir /tmp --shutdown-delay 0 &
SERVICE_PID=$!
for _ in $(seq 100); do
    status=$(curl -s -o "$ROOT/work/about.json" -w '%{http_code}' "http://127.0.0.1:$port/about" || true)
    [ "$status" = 200 ] && break
    kill -0 "$SERVICE_PID" 2>/dev/null || { echo "serve exited inside the image"; exit 1; }
    sleep 0.1
done
[ "$status" = 200 ] || { echo "/about never answered 200"; exit 1; }
cat "$ROOT/work/about.json"; echo
kill -TERM "$SERVICE_PID"
wait "$SERVICE_PID" || { echo "serve did not exit 0 on SIGTERM"; exit 1; }
SERVICE_PID=""
echo "image-check: passed"
