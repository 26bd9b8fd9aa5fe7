#!/usr/bin/env bash
# Part of `make check-deploy`: the in-cluster HAProxy of deploy/kubernetes/balancer.yaml.
#  1. Its configuration is render.sh's output for the pods, as the file says (so the two cannot drift apart).
#  2. haproxy -c finds it valid, without a warning.
#  3. It routes, run outside a cluster: a DNS stand-in (scripts/dns-stub.py) answers for two pods as the cluster's
#     DNS would (their A records and the headless Service's SRV records), two stand-in pods (python's http.server on
#     127.0.0.2 and 127.0.0.3, one port) say which one answered, and HAProxy runs the same rendering with only its
#     ports and its nameserver (parse-resolv-conf) changed. /jobs/<pod>.… reaches that pod every time; an unknown pod
#     or a name that is no DNS label gets the balancer's 404 problem+json; /about reaches the pods found by SRV.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_VENV=${TOOLS_VENV:-.venv-tools}
source scripts/cluster.sh
WORK=$(mktemp -d)
STANDINS=()
stop_all() {
    stop_balancer
    local pid
    for pid in "${STANDINS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap stop_all EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$WORK/haproxy.log" ] && tail -20 "$WORK/haproxy.log" >&2; exit 1; }

# The settings balancer.yaml names: the StatefulSet's WORKERS, the headless Service.
render() { env PODS=ffmpeg-processor-pods REPLICA_WORKERS=2 "$@" deploy/haproxy/render.sh 2>/dev/null; }

"$TOOLS_VENV/bin/python" - "$WORK" <<'PY'
import sys, yaml
documents = list(yaml.safe_load_all(open("deploy/kubernetes/balancer.yaml")))
config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
for name in ("haproxy.cfg", "ffmpeg-processor.cfg"):
    open(f"{sys.argv[1]}/{name}", "w").write(config[name])
PY
render >"$WORK/rendered.cfg"
diff -u "$WORK/rendered.cfg" "$WORK/ffmpeg-processor.cfg" \
    || fail "balancer.yaml's ffmpeg-processor.cfg is not render.sh's output (above: what to change to match)"
echo "balancer.yaml's configuration is render.sh's for PODS=ffmpeg-processor-pods"

complaints=$(POD_NAMESPACE=default haproxy -c -f "$WORK/haproxy.cfg" -f "$WORK/ffmpeg-processor.cfg" 2>&1) \
    || fail "$complaints"
! grep -q WARNING <<<"$complaints" || fail "$complaints"
echo "haproxy -c: valid, no warnings"

domain=ffmpeg-processor-pods.default.svc.cluster.local
pod_port=$(free_port)
for pod in 0 1; do
    mkdir -p "$WORK/pod$pod/jobs/ffmpeg-processor-$pod.0123"
    echo "pod $pod" >"$WORK/pod$pod/about"
    echo "pod $pod" >"$WORK/pod$pod/jobs/ffmpeg-processor-$pod.0123/events"
    python3 -m http.server --bind "127.0.0.$((pod + 2))" "$pod_port" --directory "$WORK/pod$pod" \
        >"$WORK/pod$pod.log" 2>&1 &
    STANDINS+=($!)
done
SRV_NAME=_http._tcp.$domain scripts/dns-stub.py \
    "ffmpeg-processor-0.$domain=127.0.0.2" "ffmpeg-processor-1.$domain=127.0.0.3" \
    "SRV=ffmpeg-processor-0.$domain:$pod_port" "SRV=ffmpeg-processor-1.$domain:$pod_port" >"$WORK/dns.port" &
STANDINS+=($!)
for _ in $(seq 100); do
    [ -s "$WORK/dns.port" ] && curl -sf -o /dev/null "http://127.0.0.2:$pod_port/about" \
        && curl -sf -o /dev/null "http://127.0.0.3:$pod_port/about" && break
    sleep 0.1
done
dns_port=$(cat "$WORK/dns.port")
[ -n "$dns_port" ] || fail "the DNS stand-in did not start"

port=$(free_port)
render BIND="127.0.0.1:$port" POD_PORT="$pod_port" \
    | sed "s/^    parse-resolv-conf\$/    nameserver stand-in 127.0.0.1:$dns_port/" >"$WORK/run.cfg"
grep -q "nameserver stand-in" "$WORK/run.cfg" || fail "no parse-resolv-conf line to point at the stand-in"
POD_NAMESPACE=default haproxy -db -f "$WORK/haproxy.cfg" -f "$WORK/run.cfg" >"$WORK/haproxy.log" 2>&1 &
BALANCER_PID=$!
# Up once its checks have found a pod through the SRV records.
await_about "$port" "$BALANCER_PID" 100 0.1 || fail "/about never answered 200 through HAProxy (pods from SRV)"

for round in 1 2 3 4 5; do
    for pod in 0 1; do
        answer=$(curl -s --max-time 5 "http://127.0.0.1:$port/jobs/ffmpeg-processor-$pod.0123/events") || true
        [ "$answer" = "pod $pod" ] || fail "round $round: /jobs/ffmpeg-processor-$pod.… answered '$answer'"
    done
done
echo "/jobs/<pod>.…: 10 of 10 reached their pod"
for path in /jobs/ffmpeg-processor-7.0123 /jobs/Not_A_Label.0123 /jobs/no-dot; do
    read -r status type < <(curl -s -o "$WORK/body" -w '%{http_code} %{content_type}\n' --max-time 5 \
        "http://127.0.0.1:$port$path") || true
    [ "$status" = 404 ] && [ "$type" = application/problem+json ] && grep -q '"status":404' "$WORK/body" \
        || fail "$path: $status $type $(head -c 200 "$WORK/body")"
done
echo "an unknown pod, a name that is no DNS label, no name: the balancer's 404 problem+json"
