#!/usr/bin/env bash
# GET /about while large uploads stream to disk (goal: p99 < 5 ms). http-bench-server takes UPLOADS (default 4)
# parallel uploads of SIZE_MB (default 1024) MiB each into anonymous files (POST /splice, the service's path:
# `RequestBody.write(to:)`), while a health check asks for /about on one connection, one request after another
# (curl's own timing), until the uploads end. The same run on the server of BASELINE (default: the commit before
# the file writer thread), built in a worktree of its own, shows what moving disk writes off the event loop changed.
set -euo pipefail
cd "$(dirname "$0")/.."
UPLOADS=${UPLOADS:-4}
SIZE_MB=${SIZE_MB:-1024}
BASELINE=${BASELINE:-a8fb0e2^}
PORT=${PORT:-18091}
OUT=bench-out/about-uploads
rm -rf "$OUT" && mkdir -p "$OUT"

swift build -c release --product http-bench-server >/dev/null
cp "$(swift build -c release --show-bin-path)/http-bench-server" "$OUT/server-now"
# The baseline, from a clean checkout of BASELINE in a folder of its own (its build folder included).
BASE_TREE=$(mktemp -d)
trap 'git worktree remove --force "$BASE_TREE" >/dev/null 2>&1 || true' EXIT
git worktree add --quiet --detach "$BASE_TREE" "$BASELINE"
(cd "$BASE_TREE" && swift build -c release --product http-bench-server >/dev/null)
cp "$(cd "$BASE_TREE" && swift build -c release --show-bin-path)/http-bench-server" "$OUT/server-baseline"

BODY="$OUT/body.bin"
head -c $((SIZE_MB << 20)) /dev/urandom >"$BODY"
percentile() { sort -g "$1" | awk -v p="$2" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999); print a[i < 1 ? 1 : i] * 1000 }'; }

# measure NAME: the server NAME under the uploads; prints its line of the table.
measure() {
    "$OUT/server-$1" "$PORT" >"$OUT/$1.log" 2>&1 &
    local server=$!
    for _ in $(seq 100); do grep -q listening "$OUT/$1.log" && break; sleep 0.1; done
    local uploads=()
    for i in $(seq "$UPLOADS"); do
        curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' -X POST -T "$BODY" \
            "http://127.0.0.1:$PORT/splice" >"$OUT/$1-upload-$i.txt" &
        uploads+=($!)
    done
    sleep 0.5
    : >"$OUT/$1-probe.txt"
    # Health checks in batches of 50 on one connection, until every upload has ended.
    local urls=()
    for _ in $(seq 50); do urls+=("http://127.0.0.1:$PORT/about"); done
    uploading() { for pid in "${uploads[@]}"; do jobs -rp | grep -qx "$pid" && return 0; done; return 1; }
    while uploading; do
        curl -sS -w '\nTIME %{time_total}\n' "${urls[@]}" | awk '$1 == "TIME" { print $2 }' >>"$OUT/$1-probe.txt"
    done
    wait "${uploads[@]}"
    kill "$server"; wait "$server" 2>/dev/null || true
    local ok; ok=$(cat "$OUT/$1"-upload-*.txt | awk '$1 == 200' | wc -l)
    local upload_s; upload_s=$(cat "$OUT/$1"-upload-*.txt | awk '{ print $2 }' | sort -g | tail -1)
    printf '%-10s %7d %7.2f %7.2f %8.2f   %d of %d in %.1f s\n' "$1" "$(wc -l <"$OUT/$1-probe.txt")" \
        "$(percentile "$OUT/$1-probe.txt" 50)" "$(percentile "$OUT/$1-probe.txt" 99)" \
        "$(percentile "$OUT/$1-probe.txt" 100)" "$ok" "$UPLOADS" "$upload_s"
}

echo "GET /about while $UPLOADS uploads of $SIZE_MB MiB stream to disk ($(nproc) cores); ms, curl's timing"
printf '%-10s %7s %7s %7s %8s   %s\n' "server" "probes" "p50" "p99" "max" "uploads (200)"
measure baseline
measure now
