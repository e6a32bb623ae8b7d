#!/usr/bin/env bash
# Core-scaling sweep: ringmq with 1, 2, 4, 8 and 16 shards on one machine, the same cases at
# each shard count, so the report shows what each added core buys.
#
#   scripts/scaling.sh --out results/DATE-HOST-scaling [--shards "1 2 4 8 16"] \
#       [--duration 8] [--warmup 2] [--pairs 200] [--cases pairs-q0,pairs-q1,fanout-q1] \
#       [--no-build]
#
# --no-build uses target/release/ringmq and ringmq-loadgen as they are (built elsewhere and
# copied, on a machine without a Rust toolchain); RINGMQ_COMMIT then names their commit.
# With N shards the broker runs on CPUs 0..N-1 (`--cores N --cpus 0-(N-1)`, also under
# taskset) and the load generator on the CPUs left, one load thread per CPU. A shard count
# that leaves fewer than 2 CPUs for the load generator (16 shards on a 16-CPU machine) runs
# both on every CPU, and the report marks it "shared": its figures include the contention.
# On a machine with fewer CPUs than shards, the shards run unbound (ringmq places them).
#
# Cases (64 B payloads, closed loop, QoS 1 with 20 in flight per publisher):
#   pairs-q0, pairs-q1   --pairs N publishers each to its own subscriber. Connections land on
#                        shards as the kernel spreads them, so most messages cross the mesh.
#   fanout-q1            4 publishers, each message to 100 subscribers spread over the
#                        shards (QoS 1: flow-controlled, where QoS 0 at full speed would
#                        measure how much the broker drops for subscribers that fall behind).
# Each case runs once per shard count, in order 1 shard first; expect about
# (duration + warmup + 4) s x cases x shard counts. Everything stops by itself.
#
# Writes OUT/shards-N/CASE/ (the loadgen's summary.json, .hgrm files, broker log) and
# OUT/report.md: delivered msgs/s and its speed-up over 1 shard, broker CPUs busy, delivered
# msgs per broker CPU-second, p50/p99 latency and loss, with the machine and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/hot_cases.sh
source scripts/hot_cases.sh

out=""; shards="1 2 4 8 16"; duration=8; warmup=2; pairs=200; only="pairs-q0,pairs-q1,fanout-q1"; build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --shards) shards="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --pairs) pairs="$2"; shift 2 ;;
        --cases) only="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h | --help) awk 'NR > 1 && /^set /{exit} NR > 1' "$0"; exit 0 ;;
        *) echo "scaling.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || { echo "usage: scripts/scaling.sh --out DIR [--shards \"1 2 4 8 16\"]" >&2; exit 2; }

declare -A scaling_cases=(
    [pairs-q0]="pairs --n $pairs --qos 0 --rate max"
    [pairs-q1]="pairs --n $pairs --qos 1 --rate max --inflight 20"
    [fanout-q1]="fanout --pubs 4 --subs 100 --qos 1 --rate max --inflight 20"
)
IFS=, read -ra order <<<"$only"
for c in "${order[@]}"; do
    [ -n "${scaling_cases[$c]:-}" ] || { echo "scaling.sh: unknown case $c (known: ${!scaling_cases[*]})" >&2; exit 2; }
done

ncpu="$(nproc)"
[ "$build" -eq 0 ] || cargo build --release -q -p ringmq -p ringmq-loadgen
bin=target/release/ringmq
loadgen=target/release/ringmq-loadgen
for b in "$bin" "$loadgen"; do
    [ -x "$b" ] || { echo "scaling.sh: $b is missing (build it, or drop --no-build)" >&2; exit 2; }
done
mkdir -p "$out"
conf="$out/ringmq.conf"
write_unlimited_conf "$conf"

broker_pid=""
trap stop_ringmq EXIT

# "first-last" CPU list, or the single CPU.
cpu_range() { if [ "$1" -eq "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }

placements="$out/placements.tsv"
printf 'shards\tbroker_cpus\tloadgen_cpus\tplacement\n' >"$placements"
for n in $shards; do
    if [ "$n" -le $((ncpu - 2)) ]; then
        broker_cpus="$(cpu_range 0 $((n - 1)))"
        loadgen_cpus="$(cpu_range "$n" $((ncpu - 1)))"
        loadgen_threads=$((ncpu - n))
        placement=separate
    else
        broker_cpus="$(cpu_range 0 $((ncpu - 1)))"
        loadgen_cpus="$broker_cpus"
        loadgen_threads="$ncpu"
        placement=shared
    fi
    # More shards than CPUs: let ringmq place them (a --cpus list must name one CPU each).
    pin=(--cpus "$broker_cpus")
    [ "$n" -le "$ncpu" ] || pin=()
    printf '%s\t%s\t%s\t%s\n' "$n" "$broker_cpus" "$loadgen_cpus" "$placement" >>"$placements"
    for case in "${order[@]}"; do
        dir="$out/shards-$n/$case"
        rm -rf "$dir"; mkdir -p "$dir"
        if ! start_ringmq "$dir/broker.log" "$broker_cpus" "$bin" -c "$conf" --cores "$n" "${pin[@]}"; then
            echo "scaling.sh: ringmq with $n shards did not start: $(tail -n 3 "$dir/broker.log")" >&2
            stop_ringmq
            continue
        fi
        # shellcheck disable=SC2086
        timeout -k 5 $((duration + warmup + 60)) taskset -c "$loadgen_cpus" "$loadgen" ${scaling_cases[$case]} \
            --size 64 --duration "$duration" --warmup "$warmup" \
            --cores "$loadgen_threads" --cpus "$loadgen_cpus" --port "$broker_port" \
            --broker-pid "$broker_pid" --out "$dir" --quiet >"$dir/stdout.txt" 2>&1 ||
            echo "scaling.sh: $n shards, $case: the load generator exited $?" >&2
        stop_ringmq
        echo "$n shard(s), $case ($placement): $(tail -n1 "$dir/stdout.txt")"
    done
done

# RINGMQ_COMMIT names the binaries' commit where the tree was copied without (or with a
# partial) .git, on a lent machine; the caller vouches for it.
if [ -n "${RINGMQ_COMMIT:-}" ]; then
    git_commit="$RINGMQ_COMMIT"
else
    git_commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || git_commit="$git_commit (with uncommitted changes)"
fi
python3 - "$out" "$git_commit" "${order[@]}" <<'EOF'
import json, os, platform, sys
out, commit, cases = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "placements.tsv"))][1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
cc = open("/proc/sys/net/ipv4/tcp_congestion_control").read().strip()

def fmt(x, nd=2):
    return "-" if x is None else (f"{x:,.0f}" if abs(x) >= 100 else f"{x:.{nd}f}")

L = ["# ringmq core scaling", "",
     f"Machine: {platform.node()}, {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
     f"TCP congestion control {cc}; ringmq {commit}. 64 B payloads, closed loop. Broker on CPUs "
     "0..N-1, load generator on the rest (\"shared\": both on every CPU, figures include the "
     "contention). Regenerate with `scripts/scaling.sh`.", ""]
for case in cases:
    L += [f"## {case}", "",
          "| shards | broker CPUs | loadgen CPUs | delivered msgs/s | vs 1 shard | broker CPUs busy | msgs per broker CPU-s | p50 µs | p99 µs | lost | loadgen busy max |",
          "|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    base = None
    for n, bcpus, lcpus, placement in rows:
        p = os.path.join(out, f"shards-{n}", case, "summary.json")
        if not os.path.exists(p):
            L.append(f"| {n} | {bcpus} | {lcpus} ({placement}) | no result | | | | | | | |")
            continue
        s = json.load(open(p))
        m, b, e2e = s["messages"], s["broker"], s["latency_us"].get("e2e", {})
        rate = m.get("delivered_per_s")
        if base is None and rate:
            base = rate
        per_cpu = 1e6 / b["cpu_us_per_msg"] if b.get("cpu_us_per_msg") else None
        ok = "" if s["status"]["ok"] else " (run not ok: " + "; ".join(s["status"].get("problems") or []) + ")"
        L.append(f"| {n} | {bcpus} | {lcpus} ({placement}) | {fmt(rate)}{ok} | "
                 f"{fmt(rate / base) + '×' if base and rate else '-'} | {fmt(b.get('cpu_cores'))} | {fmt(per_cpu)} | "
                 f"{fmt(e2e.get('p50'))} | {fmt(e2e.get('p99'))} | {m.get('lost', '-')} | "
                 f"{fmt(s['loadgen'].get('busy_max_pct'))}% |")
    L.append("")
L += ["A load generator at or near 100% busy limits the delivered rate; msgs per broker "
      "CPU-second still compares the broker's cost per message across shard counts.", ""]
with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(L))
print("\n".join(L))
EOF
