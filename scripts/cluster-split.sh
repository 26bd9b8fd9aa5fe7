# Sourced by cluster-test.sh for its split steps (8, 9): replicas that cut long uploads into segments and send them
# through the HAProxy in front of them (--cluster-url), and the kill -9 of one that is only encoding segments.

# A replica's count of a segments_total event from its own /metrics.
replica_segments() { # NAME EVENT
    curl -fsS "http://127.0.0.1:${REPLICA_PORT[$1]}/metrics" \
        | awk -v event="event=\"$2\"" '/^ffmpeg_processor_segments_total\{/ && index($0, event) { n += $2 } END { print n + 0 }'
}

# split_cluster: the earlier replicas stopped; SPLIT_SECONDS of 640x360 with a keyframe every 2 s as the clip; three
# replicas cutting it in 2 s segments and sending them through HAProxy, which is then started in front of them on
# the port they were given. REPLICA_ARGS stays set, so a replica restarted later gets the same options.
split_cluster() {
    local name port replica
    for name in "${!REPLICA_PID[@]}"; do kill -TERM "${REPLICA_PID[$name]}" 2>/dev/null || true; done
    for name in "${!REPLICA_PID[@]}"; do wait "${REPLICA_PID[$name]}" 2>/dev/null || true; done
    REPLICA_PID=(); REPLICA_PORT=()
    CLIP=$WORK/split-$SPLIT_SECONDS.mp4
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=640x360:rate=25" \
        -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$SPLIT_SECONDS" \
        -c:v libx264 -preset ultrafast -g 50 -sc_threshold 0 -c:a aac -b:a 96k "$CLIP"
    port=$(free_port)
    REPLICA_ARGS="--cluster-url http://127.0.0.1:$port --segment-seconds 2 --split-min-seconds 10"
    for name in s1 s2 s3; do
        # The balancer's port is chosen before anything listens on it: no replica may take it.
        replica=$(free_port)
        while [ "$replica" = "$port" ]; do replica=$(free_port); done
        start_replica "$name" "$replica"
    done
    start_haproxy "$port"
    through_balancer
    echo "split replicas: $(replica_list)behind HAProxy on $BALANCER_PORT; clip $SPLIT_SECONDS s, $(frames "$CLIP") frames"
}

# Step 8: one split upload straight to s1 (the coordinator); s3, which no upload reaches, is killed once its /about
# says a segment is running. The coordinator must retry that segment and answer a whole, clean MP4.
kill_segment_replica() {
    echo "== 8. kill -9 of a replica that is only encoding segments, during a split upload to another"
    local coordinator=s1 victim=s3 upload running=0 status segments expected got errors retried
    curl -sS -o "$WORK/step8.mp4" -D "$WORK/step8.head" -w '%{http_code}' --max-time 600 \
        --data-binary @"$CLIP" "http://127.0.0.1:${REPLICA_PORT[$coordinator]}/step8" >"$WORK/step8.status" &
    upload=$!
    for _ in $(seq 2400); do
        running=$(curl -fsS "http://127.0.0.1:${REPLICA_PORT[$victim]}/about" | grep -o '"running":[0-9]*' | cut -d: -f2) \
            || running=0
        [ "${running:-0}" -gt 0 ] && break
        kill -0 "$upload" 2>/dev/null || break
        sleep 0.05
    done
    if [ "${running:-0}" -gt 0 ]; then
        kill -9 "${REPLICA_PID[$victim]}"
        wait "${REPLICA_PID[$victim]}" 2>/dev/null || true
        echo "$victim killed with a segment running"
    else
        fail "step 8: $victim never ran a segment"
    fi
    wait "$upload" || true
    status=$(cat "$WORK/step8.status")
    segments=$(tr -d '\r' <"$WORK/step8.head" | sed -n 's/^[Xx]-[Vv]ideo-[Ss]egments: //p')
    expected=$(frames "$CLIP")
    got=$(frames "$WORK/step8.mp4" 2>/dev/null || echo 0)
    errors=$(ffmpeg -nostdin -v error -i "$WORK/step8.mp4" -f null - 2>&1 | head -c 300) || errors="ffmpeg failed: $errors"
    retried=$(( $(replica_segments "$coordinator" retried) + $(replica_segments "$coordinator" fallback) ))
    echo "$coordinator answered $status, ${segments:-no} segments, $got of $expected frames; segments retried: $retried"
    [ "$status" = 200 ] || fail "step 8: the coordinator answered $status: $(head -c 300 "$WORK/step8.mp4")"
    [ -n "$segments" ] && [ "$segments" -gt 1 ] || fail "step 8: the upload was not split"
    [ "$got" = "$expected" ] || fail "step 8: $got frames, expected $expected"
    [ -z "$errors" ] || fail "step 8: the answer does not decode cleanly: $errors"
    [ "$retried" -gt 0 ] || fail "step 8: no segment was retried after the kill"
    start_replica "$victim" "${REPLICA_PORT[$victim]}"
    in_rotation_haproxy "$victim"
}
