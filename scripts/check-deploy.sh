#!/usr/bin/env bash
# `make check-deploy`: every file in deploy/ through its own engine's checker. Fails on the first complaint.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_VENV=${TOOLS_VENV:-.venv-tools}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
replicas="web-1=127.0.0.1:3001 web-2=127.0.0.1:3002 127.0.0.1:3003"

echo "== haproxy -c (deploy/haproxy/haproxy.cfg, rendered for three replicas)"
REPLICAS=$replicas deploy/haproxy/render.sh >"$WORK/haproxy.cfg"
haproxy -c -f "$WORK/haproxy.cfg"

echo "== nginx -t (deploy/nginx/nginx.conf, rendered for three replicas)"
REPLICAS=$replicas PID_FILE="$WORK/nginx.pid" ACCESS_LOG=off deploy/nginx/render.sh >"$WORK/nginx.conf"
nginx -t -q -p "$WORK" -c "$WORK/nginx.conf"

echo "== promtool (deploy/prometheus)"
(cd deploy/prometheus && promtool check config prometheus.yml && promtool test rules alerts_test.yml)

echo "== kubernetes-validate --strict (deploy/kubernetes)"
"$TOOLS_VENV/bin/kubernetes-validate" --strict deploy/kubernetes/*.yaml

echo "== systemd-analyze verify (deploy/systemd)"
if command -v systemd-analyze >/dev/null; then
    # verify wants the ExecStart binary to exist; any warning it prints is a failure.
    sed "s|^ExecStart=/usr/local/bin/ffmpeg-processor|ExecStart=/bin/true|" deploy/systemd/ffmpeg-processor.service \
        >"$WORK/ffmpeg-processor.service"
    complaints=$(systemd-analyze verify "$WORK/ffmpeg-processor.service" 2>&1) || { echo "$complaints"; exit 1; }
    [ -z "$complaints" ] || { echo "$complaints"; exit 1; }
    echo "deploy/systemd/ffmpeg-processor.service: OK"
else
    echo "systemd-analyze is not available here: skipped"
fi
