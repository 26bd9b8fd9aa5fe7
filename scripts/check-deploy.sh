#!/usr/bin/env bash
# `make check-deploy`: every file in deploy/ through its own engine's checker, and the rendered HAProxy and nginx
# started with their defaults as ordinary processes. Fails on the first complaint.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_VENV=${TOOLS_VENV:-.venv-tools}
# run_haproxy, run_nginx, check_balancer_errors, free_port, stop_balancer.
source scripts/cluster.sh
WORK=$(mktemp -d)
trap 'stop_balancer; rm -rf "$WORK"' EXIT
replicas="web-1=127.0.0.1:3001 web-2=127.0.0.1:3002 127.0.0.1:3003"

echo "== haproxy -c (deploy/haproxy, rendered for three replicas into a conf.d folder)"
mkdir -p "$WORK/conf.d"
REPLICAS=$replicas REPLICA_WORKERS=2 deploy/haproxy/render.sh >"$WORK/conf.d/ffmpeg-processor.cfg"
# Read after the distribution's main file where there is one, as its unit does with EXTRAOPTS="-f .../conf.d":
# the two must make one valid configuration.
if [ -f /etc/haproxy/haproxy.cfg ]; then
    haproxy -c -q -f /etc/haproxy/haproxy.cfg -f "$WORK/conf.d" && echo "with /etc/haproxy/haproxy.cfg: valid"
fi
# On its own, with a main file that only logs (run_haproxy's): valid without a single warning.
printf 'global\n    log stderr format raw local0 info\n' >"$WORK/haproxy.cfg"
complaints=$(haproxy -c -f "$WORK/haproxy.cfg" -f "$WORK/conf.d" 2>&1) || { echo "$complaints"; exit 1; }
! grep -q WARNING <<<"$complaints" || { echo "$complaints"; exit 1; }
echo "on its own: valid, no warnings"

echo "== nginx -t (deploy/nginx, rendered for three replicas into a conf.d folder)"
rm -rf "$WORK/conf.d" && mkdir -p "$WORK/conf.d"
REPLICAS=$replicas deploy/nginx/render.sh >"$WORK/conf.d/ffmpeg-processor.conf"
# Inside the distribution's http {} where there is one: its nginx.conf with its conf.d include pointed here.
if [ -f /etc/nginx/nginx.conf ]; then
    sed "s|include /etc/nginx/conf.d/\*.conf;|include $WORK/conf.d/*.conf;|" /etc/nginx/nginx.conf >"$WORK/nginx.conf"
    grep -q "include $WORK/conf.d/" "$WORK/nginx.conf" || { echo "/etc/nginx/nginx.conf includes no conf.d/*.conf"; exit 1; }
    nginx -t -q -c "$WORK/nginx.conf" && echo "inside /etc/nginx/nginx.conf: valid"
fi

# Both rendered with their defaults (only the listening port and the replicas chosen) and run as ordinary processes
# on loopback, each with its pid, temp and log files in WORK; nothing listens where their replica should be, so
# every upload gets the balancer's own error.
echo "== HAProxy and nginx started with their defaults, no replica up: their own errors are problem+json"
down=127.0.0.1:$(free_port)
run_haproxy "$WORK/haproxy" "$(free_port)" "$down"
check_balancer_errors HAProxy 503 || { cat "$WORK/haproxy.log"; exit 1; }
kill -0 "$BALANCER_PID" || { cat "$WORK/haproxy.log"; exit 1; }
stop_balancer
run_nginx "$WORK/nginx" "$(free_port)" "$down"
check_balancer_errors nginx 502 || { cat "$WORK/nginx.log"; exit 1; }
kill -0 "$BALANCER_PID" || { cat "$WORK/nginx.log"; exit 1; }
stop_balancer

echo "== promtool (deploy/prometheus)"
# Debian's promtool is built without Kubernetes discovery, and refuses kubernetes_sd_configs as an unknown field. The
# file is checked as it is wherever promtool knows the field; everywhere, a copy whose pod-discovery job reads
# pods_test.json (the labels Kubernetes discovery gives pods) by file discovery is checked, and that job's relabeling
# run over it (promtool check service-discovery, scripts/check-pod-discovery.py).
if complaints=$(cd deploy/prometheus && promtool check config prometheus.yml 2>&1); then
    echo "$complaints"
elif grep -q 'field kubernetes_sd_configs not found' <<<"$complaints"; then
    echo "this promtool has no Kubernetes discovery: prometheus.yml is checked with file discovery in its place"
else
    echo "$complaints"
    exit 1
fi
mkdir -p "$WORK/prometheus"
cp deploy/prometheus/alerts.yml deploy/prometheus/pods_test.json "$WORK/prometheus/"
python3 - "$WORK/prometheus/prometheus.yml" <<'PY'
import sys
text = open("deploy/prometheus/prometheus.yml").read()
kubernetes = "    kubernetes_sd_configs:\n      - role: pod\n"
assert text.count(kubernetes) == 1, "prometheus.yml: no single `kubernetes_sd_configs: - role: pod`"
open(sys.argv[1], "w").write(text.replace(kubernetes, "    file_sd_configs:\n      - files: [pods_test.json]\n"))
PY
(cd "$WORK/prometheus" && promtool check config prometheus.yml \
    && promtool check service-discovery prometheus.yml ffmpeg-processor-pods 2>/dev/null) >"$WORK/discovered.txt" \
    || { cat "$WORK/discovered.txt"; exit 1; }
sed -n '/^\[/,$p' "$WORK/discovered.txt" | scripts/check-pod-discovery.py
(cd deploy/prometheus && promtool test rules alerts_test.yml)

echo "== kubernetes-validate --strict (deploy/kubernetes)"
"$TOOLS_VENV/bin/kubernetes-validate" --strict deploy/kubernetes/*.yaml

echo "== the in-cluster HAProxy (deploy/kubernetes/balancer.yaml): render.sh's, haproxy -c, routed through a DNS stand-in"
TOOLS_VENV=$TOOLS_VENV scripts/check-kubernetes-balancer.sh

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
