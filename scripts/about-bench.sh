# Sourced by bench-http.sh and bench-instructions.sh, which compare http-bench-server's GET /about with nginx's:
# nginx's configuration (one worker answering with the same bytes, ABOUT_BODY; nothing logged; keep-alive without a
# request limit), and the wait for either server to answer.

ABOUT_BODY='{"service":"ffmpeg-processor","message":"this is an experiment"}'

# nginx_about_conf DIR PORT daemon|foreground: writes DIR/nginx.conf, with DIR for its pid, log and temp files.
# foreground: no master process and no daemon, so the worker is the process started (as callgrind needs).
nginx_about_conf() {
    local dir=$1 port=$2 process
    case "$3" in
        daemon) process="daemon on;" ;;
        foreground) process=$'master_process off;\ndaemon off;' ;;
        *) echo "nginx_about_conf: daemon or foreground, not $3" >&2; return 1 ;;
    esac
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
$process
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path $dir;
    proxy_temp_path $dir;
    fastcgi_temp_path $dir;
    uwsgi_temp_path $dir;
    scgi_temp_path $dir;
    server {
        listen 127.0.0.1:$port;
        location = /about {
            default_type application/json;
            return 200 '$ABOUT_BODY';
        }
    }
}
CONF
}

# wait_about PORT SECONDS: true once GET /about answers on PORT, false if it does not within SECONDS.
wait_about() {
    local tries=$(($2 * 10))
    for _ in $(seq 1 "$tries"); do
        curl -fsS "http://127.0.0.1:$1/about" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
