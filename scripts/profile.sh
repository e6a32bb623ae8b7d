#!/usr/bin/env bash
# Where ringmq's CPU goes on the cases that decide hot-path work: perf's split between the
# kernel and ringmq, the top symbols, and syscall, io_uring and network event counts per
# delivered message. Broker on CPU 1 (one shard), loadgen on CPU 0, as in scripts/bench.sh.
#
#   scripts/profile.sh --out results/DIR/profile [--bin target/release/ringmq] [--cases a,b]
#   scripts/profile.sh --out results/DIR/profile-mosquitto --mosquitto [--cases a,b]
#
# --mosquitto profiles Mosquitto instead (on the same cases, its limits removed as in
# scripts/bench.sh), for the same counts on the peer.
#
# Needs perf (linux-perf) and permission to profile another process (root, or
# kernel.perf_event_paranoid <= 1 with access to tracepoints). Each case runs 8 s; perf
# samples the broker (cpu-clock, 2 kHz) and counts events, syscalls included
# (raw_syscalls:sys_enter), over 4 s of it. When strace is installed, a second 3 s run of
# the case follows with `strace -c -f` attached for 1 s, for the syscalls by name (ptrace
# slows every syscall, so its counts give the mix, and perf's give the rate). Writes, per case, CASE/summary.json (loadgen),
# CASE/dso.txt, CASE/symbols.txt, CASE/events.txt, CASE/strace.txt, and OUT/profile.md
# with one row per case. Sampling costs the broker a little CPU, so the CPU-µs/msg here
# runs above scripts/ab.sh's; compare shares and counts, not those.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/hot_cases.sh
source scripts/hot_cases.sh

out=""; bin=target/release/ringmq; only=""; mosquitto=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --mosquitto) mosquitto=1; shift ;;
        --cases) only="$2"; shift 2 ;;
        *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || { echo "usage: scripts/profile.sh --out DIR [--bin BIN] [--cases a,b]" >&2; exit 2; }
command -v perf >/dev/null || { echo "profile.sh: perf not found (apt-get install linux-perf)" >&2; exit 2; }

cargo build --release -q -p ringmq -p ringmq-loadgen
loadgen=target/release/ringmq-loadgen
mkdir -p "$out"
conf="$out/ringmq.conf"
write_unlimited_conf "$conf"

order=(pairs10-q0 pairs10-q1 fanout50-q1 pairs1000-50hz-q0 pairs1000-50hz-q1)
[ -n "$only" ] && IFS=, read -ra order <<<"$only"
events=task-clock,context-switches,raw_syscalls:sys_enter,io_uring:io_uring_submit_req,io_uring:io_uring_complete,net:net_dev_queue

broker_pid=""
cleanup() { [ -n "$broker_pid" ] && kill -INT "$broker_pid" 2>/dev/null || true; }
trap cleanup EXIT

for c in "${order[@]}"; do
    [ -n "${cases[$c]:-}" ] || { echo "profile.sh: unknown case $c" >&2; exit 2; }
    dir="$out/$c"; rm -rf "$dir"; mkdir -p "$dir"
    # A port the kernel just handed out is free (a random one collided with the previous
    # case's lingering client ports).
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    if [ "$mosquitto" -eq 1 ]; then
        write_mosquitto_conf "$dir/mosquitto.conf" "$port"
        taskset -c 1 mosquitto -c "$dir/mosquitto.conf" >"$dir/broker.log" 2>&1 &
    else
        taskset -c 1 "$bin" --cores 1 --cpus 1 -c "$conf" --listen "127.0.0.1:$port" >"$dir/broker.log" 2>&1 &
    fi
    broker_pid=$!
    sleep 0.5
    read -ra args <<<"${cases[$c]}"
    timeout 60 taskset -c 0 "$loadgen" "${args[@]}" --size 64 --duration 8 --warmup 1 --port "$port" \
        --cores 1 --cpus 0 --broker-pid "$broker_pid" --out "$dir" --quiet >"$dir/stdout.txt" 2>&1 &
    lg=$!
    sleep 3   # connected and past the warm-up
    perf stat -x, -e "$events" -p "$broker_pid" -o "$dir/events.txt" -- sleep 4 &
    stat_pid=$!
    perf record -q -e cpu-clock -F 2000 -g -p "$broker_pid" -o "$dir/perf.data" -- sleep 4 >/dev/null 2>&1
    wait "$stat_pid"
    wait "$lg" || echo "profile.sh: loadgen failed in $c (see $dir/stdout.txt)" >&2
    if command -v strace >/dev/null; then
        # A second, short run of the same case for strace, which would skew the first's rate.
        timeout 60 taskset -c 0 "$loadgen" "${args[@]}" --size 64 --duration 2 --warmup 1 --port "$port" \
            --cores 1 --cpus 0 --out "$dir/strace-run" --quiet >/dev/null 2>&1 &
        lg=$!
        sleep 1.5
        timeout -s INT 1 strace -c -f -p "$broker_pid" -o "$dir/strace.txt" 2>/dev/null || true
        wait "$lg" || true
        rm -rf "$dir/strace-run"
    fi
    kill -INT "$broker_pid"; wait "$broker_pid" || true; broker_pid=""
    perf report -i "$dir/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null \
        | grep '%' | grep -v '^#' >"$dir/dso.txt" || true
    perf report -i "$dir/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null \
        | grep '%' | grep -v '^#' | head -n 40 >"$dir/symbols.txt" || true
    rm -f "$dir/perf.data"
    echo "$c: $(tail -n1 "$dir/stdout.txt" | cut -c1-160)"
done

broker_name=ringmq; [ "$mosquitto" -eq 1 ] && broker_name="$(mosquitto -h 2>/dev/null | head -n1 || echo mosquitto)"
python3 - "$out" "$broker_name" "${order[@]}" <<'EOF'
import json, os, sys
out, broker, cases = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for c in cases:
    d = os.path.join(out, c)
    s = json.load(open(os.path.join(d, "summary.json")))
    ev = {}
    for line in open(os.path.join(d, "events.txt")):
        f = line.strip().split(",")
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            ev[f[2]] = float(f[0])
    kernel = 0.0
    for line in open(os.path.join(d, "dso.txt")):
        f = line.split()
        if len(f) >= 2 and f[1] == "[kernel.kallsyms]":
            kernel = float(f[0].rstrip("%"))
    # Messages delivered while perf counted: the run's delivery rate over the 4 s window.
    msgs = s["messages"]["delivered_per_s"] * 4.0
    per = lambda k: ev.get(k, 0.0) / msgs if msgs else 0.0
    rows.append((c, s["broker"]["cpu_us_per_msg"], kernel, per("raw_syscalls:sys_enter"),
                 per("io_uring:io_uring_submit_req"), per("io_uring:io_uring_complete"),
                 per("net:net_dev_queue"), per("context-switches")))
with open(os.path.join(out, "profile.md"), "w") as f:
    f.write(f"# Where the broker's CPU goes: {broker}\n\nGenerated by `scripts/profile.sh` (broker on CPU 1, one shard; "
            "loadgen on CPU 0; 64 B). Per delivered message: system calls (all of them: "
            "`raw_syscalls:sys_enter`; `CASE/strace.txt` names them), io_uring submissions (sends and "
            "re-armed receives), completions, packets the broker's context put on the loopback device "
            "(`net:net_dev_queue`: data segments and pure ACKs), context switches. Kernel share: perf "
            "`cpu-clock` samples in the kernel, receive and send paths of loopback TCP included. "
            "CPU-µs/msg includes perf's own overhead.\n\n")
    f.write("| case | CPU-µs/msg | kernel share | syscalls/msg | submissions/msg | completions/msg"
            " | packets out/msg | context switches/msg |\n")
    f.write("|---|--:|--:|--:|--:|--:|--:|--:|\n")
    for c, cpu, k, sc, sub, comp, pk, cs in rows:
        f.write(f"| {c} | {cpu:.3f} | {k:.0f}% | {sc:.4f} | {sub:.3f} | {comp:.3f} | {pk:.3f} | {cs:.4f} |\n")
print(open(os.path.join(out, "profile.md")).read())
EOF
