#!/usr/bin/env bash
# Writes HAProxy's configuration for the replicas to stdout, from the template beside this script: a file for
# HAProxy's `-f` directory, beside the distribution's own haproxy.cfg (README.md here). REPLICAS is the list of
# replicas (host:port, space-separated) and REPLICA_WORKERS their --workers; every other setting has a default that
# matches the service's own.
#
#   REPLICAS="10.0.0.11:3000 10.0.0.12:3000" REPLICA_WORKERS=8 deploy/haproxy/render.sh \
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
index=0
for replica in $REPLICAS; do
    index=$((index + 1))
    SERVERS+="    server replica$index $replica"$'\n'
done
export SERVERS
envsubst '$BIND $MAX_BODY $REPLICA_MAXCONN $HAPROXY_MAXCONN $SERVER_TIMEOUT $CLIENT_TIMEOUT $QUEUE_TIMEOUT $SERVERS' \
    <"$here/ffmpeg-processor.cfg"
