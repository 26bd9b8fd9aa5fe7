# Sourced by the harness and bench scripts: starts the release service in the background on a free port and stops it
# when the calling script exits (no lame-duck delay: no balancer is watching). Sets SERVICE_URL and SERVICE_PID.
start_service() { # extra serve options...
    local log; log=$(mktemp)
    "$BIN/ffmpeg-processor" serve --host 127.0.0.1 --port 0 --shutdown-delay 0 "$@" 2>"$log" &
    SERVICE_PID=$!
    trap 'stop_service' EXIT
    local address=""
    for _ in $(seq 200); do
        address=$(grep -o 'listening on [^ ]*' "$log" | head -1 | cut -d' ' -f3 || true)
        [ -n "$address" ] && break
        kill -0 "$SERVICE_PID" 2>/dev/null || { cat "$log" >&2; return 1; }
        sleep 0.05
    done
    [ -n "$address" ] || { echo "the service did not start" >&2; cat "$log" >&2; return 1; }
    SERVICE_URL="http://$address"
    SERVICE_LOG=$log
}

stop_service() {
    if [ -n "${SERVICE_PID:-}" ]; then
        kill "$SERVICE_PID" 2>/dev/null || true
        wait "$SERVICE_PID" 2>/dev/null || true
        SERVICE_PID=""
    fi
    rm -f "${SERVICE_LOG:-}"
}

# Descriptors the service holds now.
service_fds() { ls "/proc/$SERVICE_PID/fd" | wc -l; }

# Its descriptor baseline: once start-up is over (some are opened lazily) and a probe's connection is closed.
service_fd_baseline() {
    curl -fsS -o /dev/null "$SERVICE_URL/about"
    sleep 1
    service_fds
}

# True once, within SECONDS, /about shows nothing running or queued and the descriptors are back to BASELINE.
service_settles() { # seconds baseline
    for _ in $(seq $(( $1 * 10 ))); do
        if curl -fsS "$SERVICE_URL/about" | grep -q '"running":0,"queued":0' && [ "$(service_fds)" -eq "$2" ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
