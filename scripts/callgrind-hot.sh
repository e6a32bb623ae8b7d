#!/usr/bin/env bash
# Instructions the broker executes for fixed workloads, counted by callgrind, per build:
# the hot cases of scripts/ab.sh at fixed rates low enough that a broker under callgrind
# keeps up (fan-out 1 -> 50 at 400 publishes/s, 10 pairs at 200 messages/s each; QoS 0
# and 1), 6 s each, one shard. Both builds then handle the same messages in about the same
# turns, and the count repeats to a fraction of a percent, where the wall-clock A/B of
# these cases on a 2-CPU VM moves by 10-30% between runs.
#
#   scripts/callgrind-hot.sh --out DIR NAME=BIN [NAME=BIN ...]
#
# BIN may carry arguments ("NAME=target/release/ringmq -c acl.conf"), to compare one build
# under two configurations (scripts/acl-ab.sh does).
#
# Writes DIR/NAME-CASE.callgrind (callgrind's output) and DIR/callgrind.md (the totals,
# and per delivered message). Needs valgrind. Bounded: about 20 s per build and case.
set -euo pipefail
cd "$(dirname "$0")/.."
out=""; builds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        *=*) builds+=("$1"); shift ;;
        *) echo "callgrind-hot.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] && [ ${#builds[@]} -gt 0 ] || { echo "usage: scripts/callgrind-hot.sh --out DIR NAME=BIN ..." >&2; exit 2; }
command -v valgrind >/dev/null || { echo "callgrind-hot.sh: valgrind is not installed" >&2; exit 2; }
cargo build --release -q -p ringmq-loadgen
mkdir -p "$out"
report="$out/callgrind.md"
{
    echo "# Instructions per fixed workload (callgrind)"
    echo
    echo "Machine: $(hostname), $(nproc) CPUs, $(uname -r). Each case 6 s at a fixed rate (the case names it),"
    echo "one shard (CPU 1), loadgen on CPU 0. Regenerate with scripts/callgrind-hot.sh."
    echo
    echo "| case | build | instructions, whole run | delivered | instructions per delivered message |"
    echo "|---|---|--:|--:|--:|"
} >"$report"
declare -A cases=(
    [fanout50-q0-400hz]="fanout --subs 50 --pubs 1 --qos 0 --rate 400"
    [fanout50-q1-400hz]="fanout --subs 50 --pubs 1 --qos 1 --rate 400"
    [pairs10-q0-200hz]="pairs --n 10 --qos 0 --rate 200"
    [pairs10-q1-200hz]="pairs --n 10 --qos 1 --rate 200"
)
port=18900
for case in fanout50-q0-400hz fanout50-q1-400hz pairs10-q0-200hz pairs10-q1-200hz; do
    for b in "${builds[@]}"; do
        name="${b%%=*}"; bin="${b#*=}"
        port=$((port + 1))
        cg="$out/$name-$case.callgrind"
        rm -f "$cg" "$cg".*
        read -ra cmd <<<"$bin"
        taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$cg" "${cmd[@]}" --listen "127.0.0.1:$port" \
            >"$out/$name-$case.broker.log" 2>&1 &
        vpid=$!
        sleep 6
        # shellcheck disable=SC2086
        taskset -c 0 target/release/ringmq-loadgen ${cases[$case]} --port "$port" --duration 6 \
            >"$out/$name-$case.loadgen.txt" 2>&1 || true
        # A dump now, then stop: the broker's shutdown under valgrind can take long.
        callgrind_control -d "$vpid" >/dev/null 2>&1 || true
        sleep 2
        kill -9 "$vpid" 2>/dev/null || true
        wait "$vpid" 2>/dev/null || true
        dump=$(ls "$cg".* 2>/dev/null | head -1)
        [ -n "$dump" ] || { echo "callgrind-hot.sh: no dump for $name $case" >&2; exit 1; }
        mv "$dump" "$cg"
        total=$(callgrind_annotate "$cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
        # The loadgen's closing line: "... delivered N/s ..." over its measured window.
        rate=$(grep -oE 'delivered [0-9]+/s' "$out/$name-$case.loadgen.txt" | tail -1 | grep -oE '[0-9]+')
        delivered=$((rate * 6))
        per=$(awk -v t="$total" -v d="$delivered" 'BEGIN { printf "%.0f", t / d }')
        echo "| $case | $name | $total | $delivered | $per |" >>"$report"
    done
done
cat "$report"
