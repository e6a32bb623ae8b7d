#!/usr/bin/env bash
# TLS measurements, ringmq against Mosquitto in the same run:
#   - handshakes per second per core: new TLS connections (handshake, CONNECT, CONNACK,
#     DISCONNECT) from 4 client threads for 10 s, against a one-shard ringmq and against
#     Mosquitto (one thread), each pinned to CPU 1; handshakes per broker CPU-second;
#   - memory per idle TLS connection: the broker's RSS before and after 1,000 connected,
#     idle TLS clients;
#   - QoS 0 and QoS 1 pairs over TLS: 10 publisher/subscriber pairs at 200 messages/s
#     each, 64-byte payloads, 10 s; delivered messages per broker CPU-second and the
#     round trip's p50/p99;
#   - handshakes beside a stream: one QoS 1 pair over TLS at 1,000 messages/s for 10 s,
#     alone and then with 500 TLS handshakes a second (another client) on the same
#     broker core: the stream's round-trip p99 with and without them.
# The client is examples/tls_bench.rs (rustls), pinned to CPU 0. Certificates are made
# for the run with openssl (ECDSA P-256, TLS 1.3 negotiated by both brokers). Mosquitto
# gets set_tcp_nodelay true, as ringmq has by default: without it Nagle's algorithm
# holds the handshake's last flight for a delayed ACK (about 40 ms a handshake).
#
#   scripts/tls-bench.sh [--out DIR]     (default results/DATE-vm-2cpu-tls)
#
# Writes DIR/raw.jsonl (one line per measurement) and DIR/tls.md. Needs openssl and
# /usr/sbin/mosquitto (Debian's mosquitto package). Bounded: about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out="results/$(date -u +%F)-vm-2cpu-tls"
[ "${1:-}" = "--out" ] && out="$2"
mkdir -p "$out"
command -v /usr/sbin/mosquitto >/dev/null || { echo "tls-bench.sh: /usr/sbin/mosquitto is needed" >&2; exit 2; }
timeout 1800 cargo build --release -q --bin ringmq --example tls_bench
bench="target/release/examples/tls_bench"
work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
d="$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/server.ext"
openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
chmod 755 "$d"
chmod 644 "$d"/*

port=18883
raw="$out/raw.jsonl"
: >"$raw"
start_broker() { # name
    case "$1" in
        ringmq)
            cat >"$d/ringmq.conf" <<CONF
listener $port 127.0.0.1
certfile $d/server.crt
keyfile $d/server.key
allow_anonymous true
max_queued_messages 0
log_type error
CONF
            taskset -c 1 target/release/ringmq --cores 1 -c "$d/ringmq.conf" 2>"$out/ringmq.log" &
            ;;
        mosquitto)
            cat >"$d/mosquitto.conf" <<CONF
listener $port 127.0.0.1
certfile $d/server.crt
keyfile $d/server.key
allow_anonymous true
max_queued_messages 0
log_type error
user root
set_tcp_nodelay true
CONF
            taskset -c 1 /usr/sbin/mosquitto -c "$d/mosquitto.conf" 2>"$out/mosquitto.log" &
            ;;
    esac
    pid=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "tls-bench.sh: $1 did not listen on $port" >&2
    exit 1
}
stop_broker() {
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
    port=$((port + 1))
}
run() { # broker args...
    local b="$1"; shift
    local line
    line="$(taskset -c 0 timeout 120 "$bench" "$@" --port "$port" --cafile "$d/ca.crt" --pid "$pid")"
    echo "{\"broker\":\"$b\",\"case\":\"${case:-}\",${line#\{}" | tee -a "$raw"
}
for b in ringmq mosquitto; do
    start_broker "$b"
    run "$b" handshakes --threads 4 --secs 10
    run "$b" idle --n 1000
    stop_broker
    for q in 0 1; do
        start_broker "$b"
        run "$b" pairs --pairs 10 --qos "$q" --rate 200 --secs 10
        stop_broker
    done
    start_broker "$b"
    case=stream-alone run "$b" pairs --pairs 1 --qos 1 --rate 1000 --secs 10
    taskset -c 0 timeout 60 "$bench" handshakes --threads 4 --rate 500 --secs 11 --port "$port" \
        --cafile "$d/ca.crt" --pid "$pid" >"$work/storm.json" &
    storm=$!
    sleep 0.5
    case=stream-with-handshakes run "$b" pairs --pairs 1 --qos 1 --rate 1000 --secs 10
    wait "$storm"
    echo "{\"broker\":\"$b\",\"case\":\"storm\",$(cut -c2- "$work/storm.json")" | tee -a "$raw"
    stop_broker
done

python3 - "$raw" "$out/tls.md" <<'PY'
import json, sys, subprocess
rows = [json.loads(l) for l in open(sys.argv[1])]
def get(b, mode, qos=None, case=""):
    return next(r for r in rows if r["broker"] == b and r["mode"] == mode and r.get("case", "") == case
                and (qos is None or r.get("qos") == qos))
ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"
host = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
out = ["# TLS: ringmq against Mosquitto 2.0.11", "",
       f"2-CPU VM (kernel {host}), shared with other work: figures move between runs. Each broker on CPU 1",
       "(ringmq with one shard), the client (examples/tls_bench.rs, rustls) on CPU 0. ECDSA P-256",
       "certificate, TLS 1.3. Regenerate with scripts/tls-bench.sh.", "",
       "| measurement | ringmq | Mosquitto | ringmq / Mosquitto |", "|---|--:|--:|--:|"]
r, m = get("ringmq", "handshakes"), get("mosquitto", "handshakes")
out.append(f"| handshakes per second (4 client threads) | {r['per_sec']:.0f} | {m['per_sec']:.0f} | {ratio(r['per_sec'], m['per_sec'])} |")
out.append(f"| handshakes per broker CPU-second (per core) | {r['per_broker_cpu_sec']:.0f} | {m['per_broker_cpu_sec']:.0f} | {ratio(r['per_broker_cpu_sec'], m['per_broker_cpu_sec'])} |")
r, m = get("ringmq", "idle"), get("mosquitto", "idle")
out.append(f"| memory per idle TLS connection (bytes, 1,000 connections) | {r['bytes_per_connection']} | {m['bytes_per_connection']} | {ratio(r['bytes_per_connection'], m['bytes_per_connection'])} |")
for q in (0, 1):
    r, m = get("ringmq", "pairs", q), get("mosquitto", "pairs", q)
    out.append(f"| QoS {q}, 10 pairs x 200 msg/s: delivered per broker CPU-second | {r['msgs_per_broker_cpu_sec']:.0f} | {m['msgs_per_broker_cpu_sec']:.0f} | {ratio(r['msgs_per_broker_cpu_sec'], m['msgs_per_broker_cpu_sec'])} |")
    out.append(f"| QoS {q}, 10 pairs: delivered / round trip p50 / p99 (us) | {r['delivered']} / {r['rtt_p50_us']} / {r['rtt_p99_us']} | {m['delivered']} / {m['rtt_p50_us']} / {m['rtt_p99_us']} | |")
for b in ("ringmq", "mosquitto"):
    alone, busy = get(b, "pairs", 1, "stream-alone"), get(b, "pairs", 1, "stream-with-handshakes")
    hs = get(b, "handshakes", None, "storm")
    out.append(f"| {b}: QoS 1 stream at 1,000 msg/s, round trip p50 / p99 (us): alone; beside {hs['per_sec']:.0f} handshakes/s | {alone['rtt_p50_us']} / {alone['rtt_p99_us']}; {busy['rtt_p50_us']} / {busy['rtt_p99_us']} | p99 {busy['rtt_p99_us'] / max(alone['rtt_p99_us'], 1):.2f}x alone | |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
