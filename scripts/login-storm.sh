#!/usr/bin/env bash
# Does a login storm stall a shard's other connections? One shard (so the stream and the
# storm share it), a password file in Mosquitto's default format ($7$, PBKDF2-SHA512,
# 101 iterations; --iterations for more), and a QoS 1 stream measured by ringmq-loadgen
# twice: alone, then while scripts/login_storm.py sends CONNECTs with right and wrong
# passwords (alternately) at --rate per second. The p99 of the stream with the storm
# should stay within 2x of its value without it: password checks run on verifier threads,
# off the shard's loop.
#
#   scripts/login-storm.sh --out results/DATE-MACHINE-login-storm [--rate 300]
#       [--seconds 10] [--iterations 101] [--stream-rate 2000] [--rounds 3]
#
# Broker on CPU 1, load on CPU 0. Writes OUT/ROUND-{alone,storm}/ (loadgen summaries),
# OUT/storm-ROUND.json and OUT/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/hot_cases.sh
source scripts/hot_cases.sh
out=""; rate=300; seconds=10; iterations=101; stream_rate=2000; rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --iterations) iterations="$2"; shift 2 ;;
        --stream-rate) stream_rate="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        *) echo "login-storm.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || { echo "usage: scripts/login-storm.sh --out DIR" >&2; exit 2; }
cargo build --release -q -p ringmq --bin ringmq
cargo build --release -q -p ringmq-loadgen
mkdir -p "$out"
out="$(cd "$out" && pwd)"
bin=target/release/ringmq
loadgen=target/release/ringmq-loadgen

passwd="$out/passwd"
"$bin" passwd -c -b -I "$iterations" "$passwd" storm storm-secret
conf="$out/ringmq.conf"
cat >"$conf" <<CONF
# scripts/login-storm.sh: anonymous load generator, password-checked storm.
allow_anonymous true
password_file $passwd
CONF

trap stop_ringmq EXIT
p99() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['latency_us']['e2e']['p99'])" "$1"; }
stream() { # dir
    timeout -k 5 $((seconds + 60)) taskset -c 0 "$loadgen" pairs --n 1 --qos 1 --rate "$stream_rate" \
        --duration "$seconds" --port "$broker_port" --out "$1" --quiet >"$1.txt" 2>&1
}

rows=()
for r in $(seq "$rounds"); do
    start_ringmq "$out/broker-$r.log" 1 "$bin" -c "$conf" --cores 1 --cpus 1 ||
        { echo "login-storm.sh: ringmq did not start" >&2; exit 1; }
    stream "$out/$r-alone"
    timeout -k 5 $((seconds + 60)) taskset -c 0 python3 scripts/login_storm.py --port "$broker_port" \
        --user storm --password storm-secret --rate "$rate" --seconds "$((seconds + 2))" \
        >"$out/storm-$r.json" &
    storm_pid=$!
    sleep 1
    stream "$out/$r-storm"
    wait "$storm_pid"
    stop_ringmq
    alone=$(p99 "$out/$r-alone/summary.json"); storm=$(p99 "$out/$r-storm/summary.json")
    rows+=("| $r | $alone | $storm | $(python3 -c "print(f'{$storm / $alone:.2f}')") | $(cat "$out/storm-$r.json") |")
done
{
    echo "# A login storm beside a QoS 1 stream on one shard"
    echo
    echo "Machine: $(hostname), $(nproc) CPUs, $(uname -r). Broker: one shard on CPU 1; the stream"
    echo "(loadgen pairs --n 1 --qos 1 --rate $stream_rate, $seconds s) and the storm ($rate CONNECTs/s,"
    echo "right and wrong passwords alternately, \$7\$ with $iterations iterations) on CPU 0."
    echo "Regenerate with: scripts/login-storm.sh --out DIR --rate $rate --seconds $seconds --iterations $iterations --stream-rate $stream_rate --rounds $rounds"
    echo
    echo "| round | stream p99 alone, µs | stream p99 with the storm, µs | ratio | storm (login_storm.py) |"
    echo "|---|--:|--:|--:|---|"
    printf '%s\n' "${rows[@]}"
} >"$out/report.md"
cat "$out/report.md"
