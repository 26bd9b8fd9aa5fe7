#!/usr/bin/env bash
# Writes a ready haproxy.cfg to stdout from the template beside this script. REPLICAS is the list of replicas
# (host:port, or name=host:port, space-separated); every other setting has a default that matches the service's own.
# A replica's name is its --replica-name: its async jobs' ids start with it, and `/jobs/<name>.` is sent to it.
# Without a name a replica is replicaN, and must be started with --replica-name replicaN for its jobs to be found.
#
#   REPLICAS="web-1=10.0.0.11:3000 web-2=10.0.0.12:3000" deploy/haproxy/render.sh > /etc/haproxy/haproxy.cfg
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
JOB_SERVERS=""
JOB_RULES=""
index=0
for replica in $REPLICAS; do
    index=$((index + 1))
    name=replica$index
    address=$replica
    if [[ $replica == *=* ]]; then
        name=${replica%%=*}
        address=${replica#*=}
    fi
    [[ $name =~ ^[A-Za-z0-9-]{1,63}$ ]] || { echo "render.sh: $name is no replica name ([A-Za-z0-9-])" >&2; exit 2; }
    SERVERS+="    server $name $address"$'\n'
    JOB_SERVERS+="    server $name $address"$'\n'
    JOB_RULES+="    use-server $name if { path_beg /jobs/$name. }"$'\n'
done
export SERVERS JOB_SERVERS JOB_RULES
envsubst '$BIND $MAX_BODY $REPLICA_MAXCONN $HAPROXY_MAXCONN $SERVER_TIMEOUT $CLIENT_TIMEOUT $QUEUE_TIMEOUT $SERVERS $JOB_SERVERS $JOB_RULES' \
    <"$here/haproxy.cfg"
