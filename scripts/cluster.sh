# Sourced by cluster-test.sh and bench-cluster.sh: replicas of the service on loopback and a balancer in front of
# them with the shipped configuration (deploy/). Expects BIN (the build's bin folder) and WORK (a scratch folder).
# Every process started here is stopped by stop_cluster.

declare -A REPLICA_PID REPLICA_PORT
BALANCER_PID=""

# A port nothing listens on (a connection to it is refused).
free_port() {
    local port
    while true; do
        port=$(shuf -i 20000-60000 -n 1)
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

# start_replica NAME [PORT] [PREFIX...]: one replica with one worker and a temp folder of its own, on PORT (default:
# a free one); PREFIX (taskset -c 0, say) goes before the binary. Waits until /about answers; sets REPLICA_PORT[NAME].
start_replica() {
    local name=$1 port=${2:-}
    shift $(( $# >= 2 ? 2 : 1 ))
    [ -n "$port" ] || port=$(free_port)
    mkdir -p "$WORK/tmp-$name"
    local log="$WORK/replica-$name.log"
    "$@" "$BIN/ffmpeg-processor" serve --host 127.0.0.1 --port "$port" --workers 1 --tmp-dir "$WORK/tmp-$name" \
        --replica-name "$name" \
        --shutdown-delay "${SHUTDOWN_DELAY:-3}" --drain-timeout 60 --trusted-proxy 127.0.0.1 \
        --log-level "${REPLICA_LOG_LEVEL:-warning}" ${REPLICA_ARGS:-} 2>>"$log" &
    REPLICA_PID[$name]=$!
    REPLICA_PORT[$name]=$port
    local answered=0
    await_about "$port" "${REPLICA_PID[$name]}" 300 0.05 || answered=$?
    case $answered in
    0) return 0 ;;
    1) echo "replica $name exited:" >&2; cat "$log" >&2 ;;
    *) echo "replica $name did not answer /about on $port" >&2 ;;
    esac
    return 1
}

# Until /about on PORT answers 200: 0; 1 once PID has exited; 2 after TRIES tries INTERVAL seconds apart.
await_about() { # port pid tries interval
    for _ in $(seq "$3"); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/about")" = 200 ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep "$4"
    done
    return 2
}

# The replicas as name=host:port (the name is each one's --replica-name, which its async job ids begin with, for the
# balancer to route by), space-separated, in name order.
replica_list() {
    local name list=""
    for name in $(printf '%s\n' "${!REPLICA_PORT[@]}" | sort); do list+="$name=127.0.0.1:${REPLICA_PORT[$name]} "; done
    echo "$list"
}

# start_haproxy PORT: deploy/haproxy/haproxy.cfg rendered for the replicas, in the foreground of a background job.
start_haproxy() {
    BALANCER_PORT=$1
    REPLICAS=$(replica_list) BIND="127.0.0.1:$BALANCER_PORT" REPLICA_MAXCONN=2 SERVER_TIMEOUT=120s \
        CLIENT_TIMEOUT=120s QUEUE_TIMEOUT=120s HAPROXY_MAXCONN=2000 deploy/haproxy/render.sh >"$WORK/haproxy.cfg"
    : >"$WORK/haproxy.log"
    haproxy -db -f "$WORK/haproxy.cfg" 2>>"$WORK/haproxy.log" &
    BALANCER_PID=$!
    wait_for_balancer
}

# start_nginx PORT: deploy/nginx/nginx.conf rendered for the replicas.
start_nginx() {
    BALANCER_PORT=$1
    mkdir -p "$WORK/nginx"
    REPLICAS=$(replica_list) LISTEN="127.0.0.1:$BALANCER_PORT" PID_FILE="$WORK/nginx/nginx.pid" ACCESS_LOG=off \
        READ_TIMEOUT=120s SEND_TIMEOUT=120s WORKER_CONNECTIONS=2000 deploy/nginx/render.sh >"$WORK/nginx/nginx.conf"
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx.log" &
    BALANCER_PID=$!
    wait_for_balancer
}

# Until /about answers 200 through the balancer (HAProxy: once its first checks have passed).
wait_for_balancer() {
    local answered=0
    await_about "$BALANCER_PORT" "$BALANCER_PID" 200 0.1 || answered=$?
    case $answered in
    0) return 0 ;;
    1) echo "the balancer exited" >&2 ;;
    *) echo "the balancer never answered /about" >&2 ;;
    esac
    return 1
}

stop_balancer() {
    if [ -n "$BALANCER_PID" ]; then
        kill "$BALANCER_PID" 2>/dev/null || true
        wait "$BALANCER_PID" 2>/dev/null || true
        BALANCER_PID=""
    fi
}

stop_cluster() {
    stop_balancer
    local name
    for name in "${!REPLICA_PID[@]}"; do kill -9 "${REPLICA_PID[$name]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# A replica's count of answered uploads (200s) from its own /metrics.
replica_transcodes() {
    curl -fsS "http://127.0.0.1:${REPLICA_PORT[$1]}/metrics" \
        | awk '/^ffmpeg_processor_requests_total\{/ && /route="transcode"/ && /status="200"/ { n += $2 } END { print n + 0 }'
}

# A field of a harness JSON report.
report_field() { grep -o "\"$2\" *: *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
