#!/usr/bin/env bash
# Instructions the broker executes for one fixed workload, counted by callgrind: a QoS 0
# fan-out (1 publisher -> 50 subscribers) at 400 publishes/s for 6 s, one shard. The rate
# is low enough that the broker under callgrind keeps up, so both builds handle the same
# messages one publish per turn, and the count is repeatable to a fraction of a percent,
# where the wall-clock A/B (scripts/ab.sh) of this case moves by 10-30% between runs.
#
#   scripts/callgrind-fanout.sh --out DIR NAME=BIN [NAME=BIN ...]
#
# Writes DIR/NAME.callgrind (callgrind's output) and DIR/callgrind.md (the totals and the
# inclusive counts of the delivery loop). Needs valgrind. Bounded: about 20 s per build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=""; builds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        *=*) builds+=("$1"); shift ;;
        *) echo "callgrind-fanout.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] && [ ${#builds[@]} -gt 0 ] || { echo "usage: scripts/callgrind-fanout.sh --out DIR NAME=BIN ..." >&2; exit 2; }
command -v valgrind >/dev/null || { echo "callgrind-fanout.sh: valgrind is not installed" >&2; exit 2; }
cargo build --release -q -p ringmq-loadgen
mkdir -p "$out"
report="$out/callgrind.md"
{
    echo "# Instructions per fixed workload (callgrind)"
    echo
    echo "Machine: $(hostname), $(nproc) CPUs, $(uname -r). QoS 0 fan-out 1 -> 50 at 400 publishes/s for 6 s,"
    echo "one shard (CPU 1), loadgen on CPU 0. Regenerate with scripts/callgrind-fanout.sh."
    echo
    echo "| build | instructions, whole run | in the delivery loop | delivered msgs/s |"
    echo "|---|--:|--:|--:|"
} >"$report"
port=18900
for b in "${builds[@]}"; do
    name="${b%%=*}"; bin="${b#*=}"
    port=$((port + 1))
    cg="$out/$name.callgrind"
    rm -f "$cg" "$cg".*
    taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$cg" "$bin" --listen "127.0.0.1:$port" \
        >"$out/$name.broker.log" 2>&1 &
    vpid=$!
    sleep 6
    taskset -c 0 target/release/ringmq-loadgen fanout --port "$port" --subs 50 --pubs 1 --qos 0 \
        --rate 400 --duration 6 >"$out/$name.loadgen.txt" 2>&1 || true
    # A dump now, then stop: the broker's shutdown under valgrind can take long.
    callgrind_control -d "$vpid" >/dev/null 2>&1 || true
    sleep 2
    pkill -9 -P "$vpid" 2>/dev/null || true
    kill -9 "$vpid" 2>/dev/null || true
    wait "$vpid" 2>/dev/null || true
    dump=$(ls "$cg".* 2>/dev/null | head -1)
    [ -n "$dump" ] || { echo "callgrind-fanout.sh: no dump for $name" >&2; exit 1; }
    mv "$dump" "$cg"
    total=$(callgrind_annotate "$cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    loop=$(callgrind_annotate --inclusive=yes "$cg" 2>/dev/null | awk '/deliver_matches \[/ && !done {gsub(",", "", $1); print $1; done = 1}')
    rate=$(grep -oE 'delivered [0-9]+/s' "$out/$name.loadgen.txt" | tail -1 | grep -oE '[0-9]+')
    echo "| $name | $total | $loop | $rate |" >>"$report"
done
cat "$report"
