#!/usr/bin/env bash
# What advertising a Receive Maximum costs: ringmq with `receive_maximum 65535` (nothing
# advertised, today's default) against `receive_maximum 20` (what Mosquitto advertises,
# its max_inflight_messages), closed-loop MQTT 5 pairs at QoS 1 and QoS 2 whose publishers
# keep up to 64 messages in flight (the loadgen's default window), capped by the Receive
# Maximum the broker advertises. The two configurations alternate, case by case, for
# ROUNDS rounds; broker on CPU 1 (one shard), loadgen on CPU 0, as scripts/ab.sh.
#
#   results/2026-12-08-vm-2cpu-receive-maximum/run.sh RINGMQ LOADGEN [ROUNDS] [DURATION] [BATCH]
#
# Writes each run's loadgen output under <this dir>/BATCH/<config>/<case>-r<round>/ and
# the table to BATCH/report.md (BATCH: batch1 unless given).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
# shellcheck source=scripts/hot_cases.sh
source scripts/hot_cases.sh
ringmq="$1"; loadgen="$2"; rounds="${3:-5}"; duration="${4:-5}"; batch="${5:-batch1}"
declare -A pair_cases=(
    [pairs10-v5-q1-w64]="pairs --n 10 --mqtt 5 --qos 1 --rate max --inflight 64"
    [pairs10-v5-q2-w64]="pairs --n 10 --mqtt 5 --qos 2 --rate max --inflight 64"
)
for rm in 65535 20; do
    write_unlimited_conf "$here/rm$rm.conf"
    echo "receive_maximum $rm" >>"$here/rm$rm.conf"
done
broker_pid=""
trap stop_ringmq EXIT
for round in $(seq 1 "$rounds"); do
    for case in pairs10-v5-q1-w64 pairs10-v5-q2-w64; do
        for rm in 65535 20; do
            dir="$here/$batch/rm$rm/$case-r$round"
            rm -rf "$dir"; mkdir -p "$dir"
            start_ringmq "$dir/broker.log" 1 "$ringmq" -c "$here/rm$rm.conf" --cores 1 --cpus 1
            # shellcheck disable=SC2086
            timeout -k 5 120 taskset -c 0 "$loadgen" ${pair_cases[$case]} --size 64 \
                --duration "$duration" --warmup 1 --cores 1 --cpus 0 --port "$broker_port" \
                --broker-pid "$broker_pid" --out "$dir" --quiet >"$dir/stdout.txt" 2>&1 ||
                echo "run.sh: rm$rm $case round $round exited $?" >&2
            stop_ringmq
            echo "rm$rm $case r$round: $(tail -n1 "$dir/stdout.txt")"
        done
    done
done
python3 - "$here/$batch" "$rounds" <<'PY'
import json, os, statistics, sys
here, rounds = sys.argv[1], int(sys.argv[2])
lines = ["| case | receive_maximum | msgs/s (median) | min - max | broker CPU-us/msg (median) | p99 us (median) | runs |",
         "|---|---|---|---|---|---|---|"]
for case in ["pairs10-v5-q1-w64", "pairs10-v5-q2-w64"]:
    for rm in ["65535", "20"]:
        rs = []
        for r in range(1, rounds + 1):
            p = os.path.join(here, f"rm{rm}", f"{case}-r{r}", "summary.json")
            if os.path.exists(p):
                s = json.load(open(p))
                if s["status"]["ok"]:
                    rs.append(s)
        rate = [s["messages"]["delivered_per_s"] for s in rs]
        cpu = [s["broker"]["cpu_us_per_msg"] for s in rs]
        p99 = [s["latency_us"].get("e2e", {}).get("p99") for s in rs]
        p99 = [x for x in p99 if x is not None]
        med = lambda xs: statistics.median(xs) if xs else float("nan")
        lines.append(f"| {case} | {rm} | {med(rate):,.0f} | {min(rate, default=0):,.0f} - {max(rate, default=0):,.0f} "
                     f"| {med(cpu):.2f} | {med(p99):,.0f} | {len(rs)} |")
open(os.path.join(here, "report.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
