#!/usr/bin/env bash
# Writes a ready nginx.conf to stdout from the template beside this script. REPLICAS is the list of replicas
# (host:port, or name=host:port with the replica's --replica-name, space-separated; a named replica's address must be
# an IP address, which nginx reaches without a resolver); every other setting has a default that matches the
# service's own. Only the
# template's own ${VARIABLES} are replaced: nginx's $host and $proxy_add_x_forwarded_for stay as they are.
#
#   REPLICAS="10.0.0.11:3000 10.0.0.12:3000" deploy/nginx/render.sh > /etc/nginx/nginx.conf
set -euo pipefail
here=$(dirname "$0")
: "${REPLICAS:?REPLICAS: the replicas as host:port, space-separated}"
export LISTEN=${LISTEN:-8080}
# The replicas' --max-body (1 GiB by default).
export MAX_BODY=${MAX_BODY:-1073741824}
export WORKER_CONNECTIONS=${WORKER_CONNECTIONS:-10000}
# The replicas' --job-timeout (600 s) plus their queue wait.
export READ_TIMEOUT=${READ_TIMEOUT:-660s}
export SEND_TIMEOUT=${SEND_TIMEOUT:-660s}
export PID_FILE=${PID_FILE:-/run/nginx.pid}
export ACCESS_LOG=${ACCESS_LOG:-/var/log/nginx/access.log}
SERVERS=""
JOB_ROUTES=""
for replica in $REPLICAS; do
    address=${replica#*=}
    SERVERS+="        server $address max_fails=1 fail_timeout=5s;"$'\n'
    if [[ $replica == *=* ]]; then
        name=${replica%%=*}
        [[ $name =~ ^[A-Za-z0-9-]{1,63}$ ]] || { echo "render.sh: $name is no replica name ([A-Za-z0-9-])" >&2; exit 2; }
        JOB_ROUTES+="        ~^/jobs/$name\\. $address;"$'\n'
    fi
done
export SERVERS JOB_ROUTES
envsubst '$LISTEN $MAX_BODY $WORKER_CONNECTIONS $READ_TIMEOUT $SEND_TIMEOUT $PID_FILE $ACCESS_LOG $SERVERS $JOB_ROUTES' \
    <"$here/nginx.conf"
