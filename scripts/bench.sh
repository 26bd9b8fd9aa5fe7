#!/usr/bin/env bash
# `make bench`: in-process transcoding against the ffmpeg CLI, same files, same settings, one run, side by side; then
# what the video filter stages cost per 1080p frame. BASELINE=<git ref> (`make bench-engine BASELINE=main`) also builds
# that commit's transcode-bench in .build-old and alternates it with this one on the 720p clip, ROUNDS times each.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)
OUT=bench-out
mkdir -p "$OUT"
TRIAL=${TRIAL:-Tests/Media/trial_video.mp4}
TRIAL_COUNT=${TRIAL_COUNT:-50}
HD_COUNT=${HD_COUNT:-3}

now() { date +%s.%N; }
# The CLI with the engine's settings spelled out (they are also its defaults).
cli() { ffmpeg -nostdin -v error -y -i "$1" -c:v libx264 -preset medium -crf 23 -pix_fmt yuv420p -c:a aac \
    -movflags +faststart "${@:3}" "$2"; }
cli_loop() { # input count extra-args...
    local input=$1 count=$2; shift 2
    local start; start=$(now)
    for _ in $(seq "$count"); do cli "$input" "$OUT/cli.mp4" "$@"; done
    echo "$(now) - $start" | bc
}
ours_loop() { "$BIN/transcode-bench" run "$1" --count "$2" --output-directory "$OUT" | cut -d' ' -f1; }
ratio() { echo "scale=2; $1 / $2" | bc; }

"$BIN/transcode-bench" generate "$OUT/hd.mp4" --width 1280 --height 720 --seconds 5 >/dev/null

printf '%-44s %10s %10s %8s\n' "case" "ours (s)" "CLI (s)" "CLI/ours"
row() { printf '%-44s %10.2f %10.2f %8s\n' "$1" "$2" "$3" "$(ratio "$3" "$2")x"; }

ours=$(ours_loop "$TRIAL" "$TRIAL_COUNT")
cli_default=$(cli_loop "$TRIAL" "$TRIAL_COUNT")
cli_pass=$(cli_loop "$TRIAL" "$TRIAL_COUNT" -fps_mode passthrough)
row "trial clip x$TRIAL_COUNT (CLI default, CFR)" "$ours" "$cli_default"
row "trial clip x$TRIAL_COUNT (CLI -fps_mode passthrough)" "$ours" "$cli_pass"

ours=$(ours_loop "$OUT/hd.mp4" "$HD_COUNT")
cli_hd=$(cli_loop "$OUT/hd.mp4" "$HD_COUNT")
row "720p 5 s clip x$HD_COUNT" "$ours" "$cli_hd"

# What the filter stages cost: the same 1080p clip with the stage on and off, alternated, FILTER_ROUNDS each. Wall time
# on a shared machine drifts with everyone else's load; the CPU time (user + system) of each run drifts far less.
FILTER_ROUNDS=${FILTER_ROUNDS:-5}
"$BIN/transcode-bench" generate "$OUT/hlg1080.mov" --width 1920 --height 1080 --seconds 2 --frame-rate 25 \
    --signal hlg --codec libx265 --container mov >/dev/null
"$BIN/transcode-bench" generate "$OUT/int1080.ts" --width 1920 --height 1080 --seconds 2 --frame-rate 25 \
    --interlaced --container mpegts >/dev/null
FRAMES_1080=50  # 2 s at 25 fps, as generated
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# "wall cpu frames" of one transcode-bench run: BINARY INPUT COUNT EXTRA-ARGS...
timed() {
    local bin=$1 input=$2 count=$3 result; shift 3
    local TIMEFORMAT='%R %U %S'
    { time "$bin/transcode-bench" run "$input" --count "$count" --output-directory "$OUT" "$@" > "$OUT/run.txt"; } \
        2> "$OUT/time.txt"
    read -r result < <(awk '{ printf "%s %.3f\n", $1, $2 + $3 }' "$OUT/time.txt")
    echo "$result $(cut -d' ' -f2 "$OUT/run.txt")"
}
# The stage's cost per frame in ms, wall and CPU: medians with it, less without.
stage_cost() { # label input on-args off-args
    local on_wall=() on_cpu=() off_wall=() off_cpu=() wall cpu frames
    for _ in $(seq "$FILTER_ROUNDS"); do
        read -r wall cpu frames < <(timed "$BIN" "$2" 1 $3); on_wall+=("$wall"); on_cpu+=("$cpu")
        read -r wall cpu frames < <(timed "$BIN" "$2" 1 $4); off_wall+=("$wall"); off_cpu+=("$cpu")
    done
    local a b c d
    a=$(printf '%s\n' "${on_wall[@]}" | median); b=$(printf '%s\n' "${off_wall[@]}" | median)
    c=$(printf '%s\n' "${on_cpu[@]}" | median); d=$(printf '%s\n' "${off_cpu[@]}" | median)
    printf '%-36s %7.2f %7.2f %7.2f %7.2f %9.1f %9.1f\n' "$1" "$a" "$b" "$c" "$d" \
        "$(echo "($a - $b) * 1000 / $frames" | bc -l)" "$(echo "($c - $d) * 1000 / $frames" | bc -l)"
}
echo
echo "1080p, 50 frames: a stage on vs off, median of $FILTER_ROUNDS alternated runs (seconds; cost in ms per frame)"
printf '%-36s %7s %7s %7s %7s %9s %9s\n' "stage" "on" "off" "on cpu" "off cpu" "wall/fr" "cpu/fr"
stage_cost "tonemap(hlg->bt709) vs hdr=keep" "$OUT/hlg1080.mov" "--hdr tonemap" "--hdr keep"
stage_cost "bwdif vs deinterlace=off" "$OUT/int1080.ts" "--deinterlace auto" "--deinterlace off"

# The chains alone, as the engine built them for those clips, through the CLI's libavfilter on one thread: CPU ms per
# frame beyond decoding (`-vf null`), median of FILTER_ROUNDS.
chain_cpu() { # input chain
    local TIMEFORMAT='%U %S' runs=()
    for _ in $(seq "$FILTER_ROUNDS"); do
        runs+=("$({ time ffmpeg -nostdin -v error -threads 1 -filter_threads 1 -i "$1" -vf "$2" -an -f null - ; } 2>&1 \
            | awk '{ print $1 + $2 }')")
    done
    printf '%s\n' "${runs[@]}" | median
}
chain_cost() { # label input engine-args
    local chain null with
    chain=$("$BIN/transcode-bench" run "$2" --output-directory "$OUT" --print-graph $3)
    null=$(chain_cpu "$2" null); with=$(chain_cpu "$2" "$chain")
    printf '%-36s %9.1f  %s\n' "$1" "$(echo "($with - $null) * 1000 / $FRAMES_1080" | bc -l)" "$chain"
}
echo
echo "1080p, the chain alone on one thread (CPU ms per frame, beyond decoding)"
chain_cost "tonemap(hlg->bt709)" "$OUT/hlg1080.mov" "--hdr tonemap"
chain_cost "dither(10->8) (hdr=keep)" "$OUT/hlg1080.mov" "--hdr keep"
chain_cost "bwdif" "$OUT/int1080.ts" "--deinterlace auto"

# This engine against BASELINE's, alternated on the 720p SDR progressive clip (the common path): each round runs the
# old then the new, and the comparison is the median of the rounds' new/old ratios, which cancels slow drifts in the
# machine's load.
if [[ -n ${BASELINE:-} ]]; then
    OLD_SRC=.build-old/src
    rm -rf "$OLD_SRC" && mkdir -p "$OLD_SRC"
    git archive "$BASELINE" | tar -x -C "$OLD_SRC"
    swift build -c release --package-path "$OLD_SRC" --scratch-path .build-old/build --product transcode-bench >/dev/null
    OLD_BIN=$(swift build -c release --package-path "$OLD_SRC" --scratch-path .build-old/build --show-bin-path)
    ROUNDS=${ROUNDS:-9}
    wall_ratios=() cpu_ratios=() old_cpu=() new_cpu=()
    echo
    echo "720p SDR progressive x$HD_COUNT, $BASELINE (swscale) vs this tree (graph), $ROUNDS alternated rounds:"
    printf '%6s %9s %9s %9s %9s\n' "round" "old wall" "new wall" "old cpu" "new cpu"
    for round in $(seq "$ROUNDS"); do
        read -r ow oc _ < <(timed "$OLD_BIN" "$OUT/hd.mp4" "$HD_COUNT")
        read -r nw nc _ < <(timed "$BIN" "$OUT/hd.mp4" "$HD_COUNT")
        printf '%6s %9.2f %9.2f %9.2f %9.2f\n' "$round" "$ow" "$nw" "$oc" "$nc"
        wall_ratios+=("$(echo "$nw / $ow" | bc -l)"); cpu_ratios+=("$(echo "$nc / $oc" | bc -l)")
        old_cpu+=("$oc"); new_cpu+=("$nc")
    done
    printf 'median new/old: wall %+.2f %%, cpu %+.2f %% (median cpu: old %.2f s, new %.2f s)\n' \
        "$(echo "($(printf '%s\n' "${wall_ratios[@]}" | median) - 1) * 100" | bc -l)" \
        "$(echo "($(printf '%s\n' "${cpu_ratios[@]}" | median) - 1) * 100" | bc -l)" \
        "$(printf '%s\n' "${old_cpu[@]}" | median)" "$(printf '%s\n' "${new_cpu[@]}" | median)"

    # Instructions, which the machine's load cannot move: one thread, under callgrind, two clip lengths, so that what
    # each frame costs and what each run costs once are told apart. Copies without debug info: valgrind 3.19's DWARF
    # reader gives up on what Swift 6.3 writes.
    if command -v valgrind >/dev/null; then
        objcopy --strip-debug "$OLD_BIN/transcode-bench" "$OUT/tb-old"
        objcopy --strip-debug "$BIN/transcode-bench" "$OUT/tb-new"
        instructions() { # binary input
            valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" "$1" run "$2" --threads 1 \
                --output-directory "$OUT" 2>&1 | awk '/Collected/ { print $NF }'
        }
        echo
        printf '%-28s %16s %16s %14s\n' "720p SDR, 1 thread" "old instructions" "new instructions" "new - old"
        for seconds in 0.5 1.5; do
            "$BIN/transcode-bench" generate "$OUT/hd-$seconds.mp4" --width 1280 --height 720 --seconds "$seconds" >/dev/null
            a=$(instructions "$OUT/tb-old" "$OUT/hd-$seconds.mp4"); b=$(instructions "$OUT/tb-new" "$OUT/hd-$seconds.mp4")
            printf '%-28s %16s %16s %14s (%+.2f %%)\n' "$seconds s ($(echo "$seconds * 30" | bc | cut -d. -f1) frames)" "$a" "$b" \
                "$((b - a))" "$(echo "($b - $a) * 100 / $a" | bc -l)"
        done
    fi
fi
