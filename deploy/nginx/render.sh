#!/usr/bin/env bash
# Writes nginx's configuration for the replicas to stdout, from the template beside this script: a file read inside
# the distribution's `http {}` block (/etc/nginx/conf.d/), beside its own nginx.conf (README.md here). REPLICAS is the
# list of replicas (host:port, or name=host:port with the replica's --replica-name, space-separated; a named
# replica's address must be an IP address, which nginx reaches without a resolver); every other setting has a
# default that matches the service's own. Only the template's own ${VARIABLES} are replaced: nginx's $host and
# $proxy_add_x_forwarded_for stay as they are.
#
#   REPLICAS="10.0.0.11:3000 10.0.0.12:3000" deploy/nginx/render.sh > /etc/nginx/conf.d/ffmpeg-processor.conf
set -euo pipefail
here=$(dirname "$0")
: "${REPLICAS:?REPLICAS: the replicas as host:port, space-separated}"
export LISTEN=${LISTEN:-8080}
# The replicas' --max-body (1 GiB by default).
export MAX_BODY=${MAX_BODY:-1073741824}
# The replicas' --job-timeout (600 s) plus their queue wait.
export READ_TIMEOUT=${READ_TIMEOUT:-660s}
export SEND_TIMEOUT=${SEND_TIMEOUT:-660s}
export ACCESS_LOG=${ACCESS_LOG:-/var/log/nginx/access.log}
# off: uploads stream to the replica as they arrive, and nginx can never send one again; on: nginx spools each whole
# upload to its disk first, and can send it to another replica when the first did not process it (README.md here).
export REQUEST_BUFFERING=${REQUEST_BUFFERING:-off}
case $REQUEST_BUFFERING in
off) export NEXT_UPSTREAM="error timeout" ;;
on) export NEXT_UPSTREAM="error http_503 non_idempotent" ;;
*) echo "REQUEST_BUFFERING: on or off, not $REQUEST_BUFFERING" >&2; exit 2 ;;
esac
SERVERS=""
JOB_ROUTES=""
for replica in $REPLICAS; do
    address=${replica#*=}
    SERVERS+="    server $address max_fails=1 fail_timeout=5s;"$'\n'
    if [[ $replica == *=* ]]; then
        name=${replica%%=*}
        [[ $name =~ ^[A-Za-z0-9-]{1,63}$ ]] || { echo "render.sh: $name is no replica name ([A-Za-z0-9-])" >&2; exit 2; }
        JOB_ROUTES+="    ~^/jobs/$name\\. $address;"$'\n'
    fi
done
export SERVERS JOB_ROUTES
envsubst '$LISTEN $MAX_BODY $READ_TIMEOUT $SEND_TIMEOUT $ACCESS_LOG $REQUEST_BUFFERING $NEXT_UPSTREAM $SERVERS $JOB_ROUTES' \
    <"$here/ffmpeg-processor.conf"
