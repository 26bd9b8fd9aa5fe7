#!/usr/bin/env bash
# Writes a ready haproxy.cfg to stdout from the template beside this script. REPLICAS is the list of replicas
# (host:port, space-separated); every other setting has a default that matches the service's own.
#
#   REPLICAS="10.0.0.11:3000 10.0.0.12:3000" deploy/haproxy/render.sh > /etc/haproxy/haproxy.cfg
set -euo pipefail
here=$(dirname "$0")
: "${REPLICAS:?REPLICAS: the replicas as host:port, space-separated}"
export BIND=${BIND:-:8080}
# The replicas' --max-body (1 GiB by default).
export MAX_BODY=${MAX_BODY:-1073741824}
# The replicas' --workers plus one: the next upload streams in while a job ends.
export REPLICA_MAXCONN=${REPLICA_MAXCONN:-3}
export HAPROXY_MAXCONN=${HAPROXY_MAXCONN:-10000}
# The replicas' --job-timeout (600 s) plus their queue wait.
export SERVER_TIMEOUT=${SERVER_TIMEOUT:-660s}
export CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-660s}
export QUEUE_TIMEOUT=${QUEUE_TIMEOUT:-600s}
SERVERS=""
index=0
for replica in $REPLICAS; do
    index=$((index + 1))
    SERVERS+="    server replica$index $replica"$'\n'
done
export SERVERS
envsubst '$BIND $MAX_BODY $REPLICA_MAXCONN $HAPROXY_MAXCONN $SERVER_TIMEOUT $CLIENT_TIMEOUT $QUEUE_TIMEOUT $SERVERS' \
    <"$here/haproxy.cfg"
