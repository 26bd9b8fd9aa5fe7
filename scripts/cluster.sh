# Sourced by cluster-test.sh and bench-cluster.sh: replicas of the service on loopback and a balancer in front of
# them with the shipped configuration (deploy/). Expects BIN (the build's bin folder) and WORK (a scratch folder).
# Every process started here is stopped by stop_cluster.

declare -A REPLICA_PID REPLICA_PORT
BALANCER_PID=""

# A port nothing listens on (a connection to it is refused), below the kernel's ephemeral range: a port in that range
# can be any outgoing connection's local port, and a replica's bind to it then fails (seen on a busy machine).
free_port() {
    local port low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    while true; do
        port=$(shuf -i "10000-$((low - 1))" -n 1)
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

# run_haproxy DIR PORT REPLICAS [VAR=value...]: deploy/haproxy rendered (its defaults, but for the VARs given) into
# DIR/conf.d/, and HAProxy started on 127.0.0.1:PORT as Debian's unit starts it, `-f <main file> -f conf.d`, as an
# ordinary process in the foreground of a background job. DIR/haproxy.cfg stands in for Debian's main file, which
# sets user, chroot and syslog: it logs to stderr, which goes to DIR.log.
run_haproxy() {
    local dir=$1 port=$2 replicas=$3
    shift 3
    mkdir -p "$dir/conf.d"
    printf 'global\n    log stderr format raw local0 info\n' >"$dir/haproxy.cfg"
    env REPLICAS="$replicas" BIND="127.0.0.1:$port" REPLICA_WORKERS=1 "$@" deploy/haproxy/render.sh \
        >"$dir/conf.d/ffmpeg-processor.cfg"
    : >"$dir.log"
    haproxy -db -f "$dir/haproxy.cfg" -f "$dir/conf.d" 2>>"$dir.log" &
    BALANCER_PID=$!
    BALANCER_PORT=$port
}

# run_nginx DIR PORT REPLICAS [VAR=value...]: deploy/nginx rendered into DIR/conf.d/ and nginx started on
# 127.0.0.1:PORT as an ordinary process, in the foreground of a background job. DIR/nginx.conf stands in for
# Debian's: the same worker_connections, but its pid file, temp folders and log (stderr, to DIR.log) in DIR.
run_nginx() {
    local dir=$1 port=$2 replicas=$3
    shift 3
    mkdir -p "$dir/conf.d"
    cat >"$dir/nginx.conf" <<CONF
pid $dir/nginx.pid;
error_log stderr warn;
events {
    worker_connections 768;
}
http {
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $dir/conf.d/*.conf;
}
CONF
    env REPLICAS="$replicas" LISTEN="127.0.0.1:$port" ACCESS_LOG=off "$@" deploy/nginx/render.sh \
        >"$dir/conf.d/ffmpeg-processor.conf"
    : >"$dir.log"
    nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>>"$dir.log" &
    BALANCER_PID=$!
    BALANCER_PORT=$port
}

# start_haproxy PORT, start_nginx PORT: the balancer in front of the replicas, with timeouts for a test run.
start_haproxy() {
    run_haproxy "$WORK/haproxy" "$1" "$(replica_list)" SERVER_TIMEOUT=120s CLIENT_TIMEOUT=120s QUEUE_TIMEOUT=120s
    wait_for_balancer
}
start_nginx() {
    run_nginx "$WORK/nginx" "$1" "$(replica_list)" READ_TIMEOUT=120s SEND_TIMEOUT=120s
    wait_for_balancer
}

# check_balancer_errors NAME STATUS: the balancer on BALANCER_PORT, in front of a replica address where nothing
# listens, answers with problem+json of its own: 413 for a Content-Length over MAX_BODY (2 GiB against the default
# 1 GiB, and past a signed 32-bit number), STATUS (HAProxy 503, nginx 502) for an upload no replica can take. 0 when both are so.
check_balancer_errors() {
    local name=$1 expected=$2 answered=000 status type body request wrong=0
    for _ in $(seq 100); do
        answered=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$BALANCER_PORT/about") || true
        [ "$answered" != 000 ] && break
        sleep 0.1
    done
    # Each: the status expected, then curl's arguments (split on spaces).
    for request in "413 -H Content-Length:2147483648" "$expected --data-binary @Tests/Media/trial_video.mp4"; do
        # shellcheck disable=SC2086
        set -- $request
        status=$1
        shift
        body=$WORK/$name-$status.body
        read -r answered type < <(curl -s -o "$body" -w '%{http_code} %{content_type}\n' --max-time 20 -X POST "$@" \
            "http://127.0.0.1:$BALANCER_PORT/") || true
        echo "$name: $answered $type $(head -c 200 "$body")"
        if [ "$answered" != "$status" ] || [ "$type" != application/problem+json ] \
            || ! grep -q "\"status\":$status," "$body"; then
            echo "FAIL: $name: expected $status application/problem+json with \"status\":$status" >&2
            wrong=1
        fi
    done
    return $wrong
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

# frames FILE: the video frames a decode of FILE counts.
frames() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }

# A field of a harness JSON report.
report_field() { grep -o "\"$2\" *: *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
