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
#
# Inside Kubernetes, PODS (the StatefulSet's headless Service) instead of REPLICAS: the pods are found in the
# cluster's DNS (the Service's SRV records), and `/jobs/<pod>.` goes to `<pod>.<PODS>.<namespace>.svc`, looked up as
# the request comes (do-resolve, set-dst). The namespace is read by HAProxy from POD_NAMESPACE when it starts
# (deploy/kubernetes/balancer.yaml renders it so).
set -euo pipefail
here=$(dirname "$0")
REPLICAS=${REPLICAS:-}
PODS=${PODS:-}
if [ -z "$REPLICAS" ] && [ -z "$PODS" ] || [ -n "$REPLICAS" ] && [ -n "$PODS" ]; then
    echo "render.sh: REPLICAS (the replicas as host:port, space-separated) or, inside Kubernetes, PODS (the" \
        "headless Service of the pods)" >&2
    exit 2
fi
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
RESOLVERS=""
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
if [ -n "$PODS" ]; then
    # The HPA's maxReplicas (deploy/kubernetes/hpa.yaml): a slot for each pod there can be.
    MAX_PODS=${MAX_PODS:-20}
    # The pods' container port, for `/jobs/` (an address from DNS has none).
    POD_PORT=${POD_PORT:-3000}
    CLUSTER_DOMAIN=${CLUSTER_DOMAIN:-cluster.local}
    for value in "$MAX_PODS" "$POD_PORT"; do
        [[ $value =~ ^[0-9]+$ ]] || { echo "MAX_PODS and POD_PORT: whole numbers, not $value" >&2; exit 2; }
    done
    [[ $PODS =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { echo "render.sh: PODS: a Service name, not $PODS" >&2; exit 2; }
    # HAProxy itself replaces "${POD_NAMESPACE}" (in double quotes) from its environment as it reads the file.
    domain="$PODS.\${POD_NAMESPACE}.svc.$CLUSTER_DOMAIN"
    # One slot per pod from the headless Service's SRV records (port included), filled and emptied as pods come and
    # go; a slot with no pod yet is in maintenance. init-addr none: HAProxy starts even while the DNS has no pod.
    SERVERS="    server-template pod 1-$MAX_PODS \"_http._tcp.$domain\" resolvers cluster resolve-prefer ipv4 init-addr none"$'\n'
    JOB_RULES=$(cat <<RULES
    # The pod's name is the id's first part. Only a DNS label is looked up, and only under the headless Service, so
    # that no request can make the balancer resolve, or connect to, any other name.
    http-request set-var(txn.pod) path,field(3,/),field(1,.) if { path_reg ^/jobs/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?[.] }
    http-request do-resolve(txn.pod_address,cluster,ipv4) "var(txn.pod),concat(,,.$domain)" if { var(txn.pod) -m found }
    # No such pod, so no such job: a job goes with its replica, as a replica says of an id it does not know. (A DNS
    # that does not answer within the resolvers' timeouts looks the same.)
    http-request return status 404 content-type application/problem+json string '{"type":"about:blank","title":"Not Found","status":404,"detail":"no replica has this job: never made, or its replica is gone (results live as long as their replica); send the video again"}' unless { var(txn.pod_address) -m found }
    http-request set-dst var(txn.pod_address)
RULES
)$'\n'
    # The address is the one looked up for this request (set-dst, server 0.0.0.0); nothing to health-check.
    JOB_SERVERS="    server pod 0.0.0.0:$POD_PORT no-check"$'\n'
    RESOLVERS=$(cat <<SECTION

# The cluster's DNS, the nameservers of this pod's /etc/resolv.conf. An answer is kept for 5 s: a pod that restarts
# comes back under its name with a new address. A question is asked again after 250 ms without an answer (the
# cluster's DNS answers in milliseconds); HAProxy asks again after an NXDOMAIN too, so a gone pod's 404 takes about
# 0.5 s. The SRV answer for 20 pods is past DNS's 512 bytes.
resolvers cluster
    parse-resolv-conf
    hold valid 5s
    hold nx 1s
    timeout retry 250ms
    accepted_payload_size 8192
SECTION
)$'\n'
fi
export SERVERS JOB_SERVERS JOB_RULES RESOLVERS
envsubst '$BIND $MAX_BODY $REPLICA_MAXCONN $HAPROXY_MAXCONN $SERVER_TIMEOUT $CLIENT_TIMEOUT $QUEUE_TIMEOUT $SERVERS $JOB_SERVERS $JOB_RULES $RESOLVERS' \
    <"$here/ffmpeg-processor.cfg"
