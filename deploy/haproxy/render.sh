#!/usr/bin/env bash
# Writes HAProxy's configuration for the replicas to stdout, from the template beside this script: a file for
# HAProxy's `-f` directory, beside the distribution's own haproxy.cfg (README.md here). REPLICAS is the list of
# replicas (host:port, or name=host:port, space-separated) and REPLICA_WORKERS their --workers; every other setting
# has a default that matches the service's own. A replica's name is its --replica-name: its async jobs' ids start
# with it, and `/jobs/<name>.` is sent to it. Without a name a replica is replicaN, and must be started with
# --replica-name replicaN for its jobs to be found.
#
#   REPLICAS="web-1=10.0.0.11:3000 web-2=10.0.0.12:3000" REPLICA_WORKERS=8 deploy/haproxy/render.sh \
#       > /etc/haproxy/conf.d/ffmpeg-processor.cfg
set -euo pipefail
here=$(dirname "$0")
: "${REPLICAS:?REPLICAS: the replicas as host:port, space-separated}"
# The replicas' --workers: their cores by default, which this machine cannot know, so it is asked for.
: "${REPLICA_WORKERS:?REPLICA_WORKERS: the --workers of each replica (by default its cores)}"
# One request beyond the workers: its upload streams in while a job ends, so a worker rarely waits for the next
# upload. More would hold uploads on one replica that another could start sooner.
REPLICA_QUEUE_ALLOWANCE=${REPLICA_QUEUE_ALLOWANCE:-1}
for value in "$REPLICA_WORKERS" "$REPLICA_QUEUE_ALLOWANCE"; do
    [[ $value =~ ^[0-9]+$ ]] || { echo "REPLICA_WORKERS and REPLICA_QUEUE_ALLOWANCE: whole numbers, not $value" >&2; exit 2; }
done
(( REPLICA_WORKERS > 0 )) || { echo "REPLICA_WORKERS: at least 1" >&2; exit 2; }
export REPLICA_MAXCONN=$((REPLICA_WORKERS + REPLICA_QUEUE_ALLOWANCE))
export BIND=${BIND:-:8080}
# The replicas' --max-body (1 GiB by default).
export MAX_BODY=${MAX_BODY:-1073741824}
# Clients at once. HAProxy needs two descriptors for each (client and replica side) plus a few of its own, and
# fails to start ("Cannot raise FD limit") when the hard limit is lower: checked here, where it usually runs.
export HAPROXY_MAXCONN=${HAPROXY_MAXCONN:-4000}
[[ $HAPROXY_MAXCONN =~ ^[0-9]+$ ]] || { echo "HAPROXY_MAXCONN: a whole number, not $HAPROXY_MAXCONN" >&2; exit 2; }
descriptors=$((2 * HAPROXY_MAXCONN + 100))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && (( hard < descriptors )); then
    echo "render.sh: HAPROXY_MAXCONN=$HAPROXY_MAXCONN needs $descriptors descriptors, and this shell's hard limit is" \
        "$hard: raise it (LimitNOFILE=$descriptors in haproxy.service, ulimit -Hn) or lower HAPROXY_MAXCONN" >&2
fi
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
    <"$here/ffmpeg-processor.cfg"
