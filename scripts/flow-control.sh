#!/usr/bin/env bash
# Does a healthy subscriber lose QoS 1 messages under a flood? The issue's two cases with
# the broker's default limits (max_queued_messages 1000, 20 in flight), two shards, and
# ringmq-loadgen counting every message: a 1 -> 1 QoS 1 flood and a 50 -> 1 QoS 1 fan-in,
# each with flow control (the default) and with `flow_control false` (drop at the bound,
# as Mosquitto does), alternately, --rounds times.
#
#   scripts/flow-control.sh --out results/DATE-MACHINE-flow-control [--bin PATH]
#       [--duration 10] [--rounds 2]
#
# Broker on CPU 1 (2 shards), loadgen on CPU 0. Writes OUT/<setting>/<case>-r<round>/
# (loadgen summaries and logs) and OUT/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/hot_cases.sh
source scripts/hot_cases.sh
out=""; bin=target/release/ringmq; duration=10; rounds=2
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        *) echo "flow-control.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || { echo "usage: scripts/flow-control.sh --out DIR" >&2; exit 2; }
[ "$bin" != target/release/ringmq ] || cargo build --release -q -p ringmq --bin ringmq
cargo build --release -q -p ringmq-loadgen
loadgen=target/release/ringmq-loadgen
mkdir -p "$out"
out="$(cd "$out" && pwd)"
printf '# Default limits, flow control on (the default).\n' >"$out/hold.conf"
printf '# Default limits, flow control off: drop at max_queued_messages, as Mosquitto.\nflow_control false\n' >"$out/drop.conf"

declare -A load=(
    [flood-1to1-q1]="pairs --n 1 --qos 1 --rate max --inflight 100"
    [fanin-50to1-q1]="fanin --pubs 50 --subs 1 --qos 1 --rate max --inflight 20"
)
trap stop_ringmq EXIT
rows=()
for r in $(seq "$rounds"); do
    for case in flood-1to1-q1 fanin-50to1-q1; do
        for setting in hold drop; do
            dir="$out/$setting/$case-r$r"
            mkdir -p "$dir"
            start_ringmq "$dir/broker.log" 1 "$bin" -c "$out/$setting.conf" --cores 2 ||
                { echo "flow-control.sh: ringmq did not start" >&2; exit 1; }
            # shellcheck disable=SC2086
            timeout -k 5 $((duration + 120)) taskset -c 0 "$loadgen" ${load[$case]} --size 64 \
                --duration "$duration" --port "$broker_port" --broker-pid "$broker_pid" --out "$dir" --quiet \
                >"$dir/loadgen.txt" 2>&1 || true
            stop_ringmq
            row=$(python3 - "$dir/summary.json" "$case" "$setting" "$r" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["messages"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {m['acked']:,} | {m['delivered']:,} | {m['lost']:,} | {m['delivered_per_s']:,.0f} |")
PY
)
            rows+=("$row")
        done
    done
done
{
    echo "# QoS 1 floods against the default queue bound, with and without flow control"
    echo
    echo "Machine: $(hostname), $(nproc) CPUs, $(uname -r). ringmq with 2 shards on CPU 1, default"
    echo "limits (max_queued_messages 1000, max_inflight_messages 20); loadgen on CPU 0, 64 B,"
    echo "$duration s per run. 'hold' is the default (flow_control true); 'drop' is flow_control false."
    echo "Regenerate with: scripts/flow-control.sh --out DIR --duration $duration --rounds $rounds"
    echo
    echo "| case | setting | round | publishes acknowledged | delivered | lost | delivered msgs/s |"
    echo "|---|---|--:|--:|--:|--:|--:|"
    printf '%s\n' "${rows[@]}"
} >"$out/report.md"
cat "$out/report.md"
