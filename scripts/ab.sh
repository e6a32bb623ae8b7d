#!/usr/bin/env bash
# A/B comparison of two ringmq builds on the cases that decide hot-path changes:
# closed-loop pairs and fan-out (QoS 0 and 1, 64 B), 1,000 pairs at 50 msg/s each
# (QoS 0 and 1: the many-connections, modest-rate case), and 10,000 idle connections
# (memory per connection). The two builds run alternately, case by case, for --rounds
# rounds, so drift on the machine hits both alike; the report gives the median.
#
#   scripts/ab.sh --a before=/path/to/old/ringmq --b after=target/release/ringmq \
#       --out results/ab-NAME [--rounds 3] [--duration 5] [--cases pairs10-q0,fanout50-q0] \
#       [--tcp-cc-a bbr --tcp-cc-b cubic]
#
# --tcp-cc-a/--tcp-cc-b set the kernel's TCP congestion control (the system-wide sysctl
# net.ipv4.tcp_congestion_control, so root only) before each of that side's runs, for
# comparing the TCP stack's share rather than two builds (give the same binary twice);
# the original setting is restored on exit.
#
# Broker on CPU 1 (--cores 1), loadgen on CPU 0, as in scripts/bench.sh. Writes every
# loadgen summary under OUT/<build>/<case>-r<round>/ and OUT/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/hot_cases.sh
source scripts/hot_cases.sh

a=""; b=""; out=""; rounds=3; duration=5; only=""; cc_a=""; cc_b=""
while [ $# -gt 0 ]; do
    case "$1" in
        --a) a="$2"; shift 2 ;;
        --b) b="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --cases) only="$2"; shift 2 ;;
        --tcp-cc-a) cc_a="$2"; shift 2 ;;
        --tcp-cc-b) cc_b="$2"; shift 2 ;;
        *) echo "ab.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$a" ] && [ -n "$b" ] && [ -n "$out" ] || { echo "usage: scripts/ab.sh --a NAME=BIN --b NAME=BIN --out DIR" >&2; exit 2; }

cargo build --release -q -p ringmq-loadgen
loadgen=target/release/ringmq-loadgen
mkdir -p "$out"
conf="$out/ringmq.conf"
write_unlimited_conf "$conf"

order=(pairs10-q0 pairs10-q1 fanout50-q0 fanout50-q1 pairs1000-50hz-q0 pairs1000-50hz-q1 idle10k)
if [ -n "$only" ]; then
    IFS=, read -ra order <<<"$only"
    for c in "${order[@]}"; do
        [ -n "${cases[$c]:-}" ] || { echo "ab.sh: unknown case $c (known: ${!cases[*]})" >&2; exit 2; }
    done
fi

broker_pid=""
cc_sysctl=net.ipv4.tcp_congestion_control
cc_orig="$(sysctl -n "$cc_sysctl")"
for cc in $cc_a $cc_b; do
    grep -qw "$cc" /proc/sys/net/ipv4/tcp_available_congestion_control ||
        { echo "ab.sh: TCP congestion control $cc is not available here ($(cat /proc/sys/net/ipv4/tcp_available_congestion_control))" >&2; exit 2; }
done
# Sets the congestion control (when one is given) for the sockets of the next run: the
# broker's listener and accepted sockets and the load generator's are all created after it.
use_tcp_cc() { [ -z "$1" ] || sysctl -qw "$cc_sysctl=$1"; }
finish() {
    stop_ringmq
    [ "$(sysctl -n "$cc_sysctl")" = "$cc_orig" ] || sysctl -qw "$cc_sysctl=$cc_orig"
}
trap finish EXIT

run_case() {
    local name="$1" bin="$2" case="$3" round="$4" port="" dir
    dir="$out/$name/$case-r$round"
    rm -rf "$dir"; mkdir -p "$dir"
    start_ringmq "$dir/broker.log" 1 "$bin" -c "$conf" --cores 1 --cpus 1 ||
        { echo "ab.sh: $name did not start: $(cat "$dir/broker.log")" >&2; stop_ringmq; return; }
    port="$broker_port"
    local timing=(--size 64 --duration "$duration" --warmup 1)
    [ "${case#idle}" != "$case" ] && timing=()
    # shellcheck disable=SC2086
    timeout -k 5 120 taskset -c 0 "$loadgen" ${cases[$case]} "${timing[@]}" \
        --cores 1 --cpus 0 --port "$port" --broker-pid "$broker_pid" --out "$dir" --quiet \
        >"$dir/stdout.txt" 2>&1 || echo "ab.sh: $name $case round $round exited $?" >&2
    stop_ringmq
    echo "$name $case r$round: $(tail -n1 "$dir/stdout.txt")"
}

for round in $(seq 1 "$rounds"); do
    for case in "${order[@]}"; do
        use_tcp_cc "$cc_a"
        run_case "${a%%=*}" "${a#*=}" "$case" "$round"
        use_tcp_cc "$cc_b"
        run_case "${b%%=*}" "${b#*=}" "$case" "$round"
    done
done

use_tcp_cc "$cc_orig"
tcp_cc="$cc_orig"
[ -n "$cc_a$cc_b" ] && tcp_cc="${cc_a:-$cc_orig} for ${a%%=*}, ${cc_b:-$cc_orig} for ${b%%=*}"
python3 - "$out" "$tcp_cc" "${a%%=*}" "${b%%=*}" "${order[@]}" <<'EOF'
import json, os, statistics, sys, platform
out, tcp_cc, a, b, cases = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]

def runs(name, case):
    base = os.path.join(out, name)
    for d in sorted(os.listdir(base)):
        if d.rsplit("-r", 1)[0] == case:
            p = os.path.join(base, d, "summary.json")
            if os.path.exists(p):
                r = json.load(open(p))
                if r["status"]["ok"]:
                    yield r
                else:
                    print(f"ab.sh: {name} {d} left out: {r['status']['problems']}", file=sys.stderr)

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def figures(name, case):
    rs = list(runs(name, case))
    if case.startswith("idle"):
        return {"rss_per_conn_B": med(r["broker"]["rss_bytes_per_connection"] for r in rs), "n": len(rs)}
    return {
        "delivered_per_s": med(r["messages"]["delivered_per_s"] for r in rs),
        "cpu_us_per_msg": med(r["broker"]["cpu_us_per_msg"] for r in rs),
        "lost": sum(r["messages"]["lost"] for r in rs),
        "p99_us": med(r["latency_us"].get("e2e", {}).get("p99") for r in rs),
        "n": len(rs),
    }

def fmt(x, nd=2):
    return "-" if x is None else (f"{x:,.0f}" if abs(x) >= 100 else f"{x:.{nd}f}")

lines = [f"# A/B: {a} vs {b}", "",
         f"Machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.release()}, TCP congestion control "
         f"{tcp_cc}; broker on CPU 1 (1 shard), "
         "loadgen on CPU 0; 64 B payloads; median of the rounds. Regenerate with scripts/ab.sh.", "",
         f"| case | {a} msgs/s | {b} msgs/s | {a} broker CPU-µs/msg | {b} broker CPU-µs/msg | {b}/{a} msgs per CPU-s | {a} p99 µs | {b} p99 µs | lost |",
         "|---|---|---|---|---|---|---|---|---|"]
idle = []
summary = {}
for c in cases:
    fa, fb = figures(a, c), figures(b, c)
    summary[c] = {a: fa, b: fb}
    if c.startswith("idle"):
        idle.append(f"| {c} | {fmt(fa['rss_per_conn_B'])} | {fmt(fb['rss_per_conn_B'])} |")
        continue
    ratio = fa["cpu_us_per_msg"] / fb["cpu_us_per_msg"] if fa["cpu_us_per_msg"] and fb["cpu_us_per_msg"] else None
    lines.append(f"| {c} | {fmt(fa['delivered_per_s'])} | {fmt(fb['delivered_per_s'])} | {fmt(fa['cpu_us_per_msg'], 3)} | "
                 f"{fmt(fb['cpu_us_per_msg'], 3)} | {fmt(ratio)}x | {fmt(fa['p99_us'])} | {fmt(fb['p99_us'])} | {fa['lost'] + fb['lost']} |")
lines += ["", f"| idle connections | {a} broker RSS bytes/conn | {b} broker RSS bytes/conn |", "|---|---|---|"] + idle
open(os.path.join(out, "report.md"), "w").write("\n".join(lines) + "\n")
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print("\n".join(lines))
EOF
