#!/usr/bin/env bash
# One-command broker comparison: ringmq against Mosquitto, rumqttd and any broker you point
# it at, on this machine, with the same load generator (ringmq-loadgen) and the same matrix.
#
#   scripts/bench.sh [--quick] [options]
#
# What it does, in order:
#   1. builds the release binaries (ringmq, ringmq-loadgen);
#   2. for each broker in turn (ringmq, Mosquitto, rumqttd if available, then every --peer):
#      starts it on a free 127.0.0.1 port, pinned with taskset to the broker CPUs (the last
#      CPU(s) by default; ringmq also gets `--cpus` so its shards pin themselves), runs the
#      throughput matrix with the load generator pinned to the loadgen CPUs (CPU 0 by
#      default), and stops it;
#   3. computes 50% of the slowest broker's closed-loop maximum for the latency scenario
#      (pairs, 100 pairs, QoS 1, 64 B; pairs 10 in --quick), then, in --rounds rounds that
#      visit every broker once, each round starting with the next broker: starts it, reruns
#      the headline cases (pairs 10 and fan-out 50 at 64 B, QoS 0/1/2; from the second
#      round on), runs that fixed-rate (open-loop) latency run and the "fleet" runs (1,000
#      pairs at 50 msg/s each, QoS 0 and 1: many connections at a modest rate, where the
#      kernel's per-packet cost dominates), stops it; the report compares medians;
#   4. for each broker again: starts it, runs the idle-connection runs (`conn`), stops it;
#   5. writes report.md, plots and headline.md into the results directory with
#      `ringmq-loadgen report`, and updates results/README.md (the index).
#
# The matrix is defined once, in the load generator (loadgen/src/matrix.rs): this script
# reads it from `ringmq-loadgen matrix [--quick]`, and the report labels its tables from it.
#
# The matrix (full): QoS 0, 1, 2 x {pairs 10, pairs 100, fan-in 50->1, fan-out 1->50,
# fan-out 1->1000} x {64 B, 1 KiB}, each closed loop (`--rate max`, `--inflight 20` for
# QoS 1/2) for --duration seconds after --warmup; then the rounds; then `conn` with
# 10,000 and 100,000 idle connections, each capped to what the open-file limit allows.
# --quick: QoS 0/1/2 x {pairs 10, fan-out 1->50} at 64 B, 3 s each (1 s warm-up), one
# round of the latency run (on pairs 10) and the fleet runs, and conn 2,000: about two
# minutes for two brokers.
#
# Options:
#   --quick                  the two-minute subset above
#   --out DIR                results directory (default results/DATE-HOST-NCPUcpu, with
#                            "-quick" appended for --quick, and "-2", "-3"... if it exists)
#   --duration S             measured seconds per run (default 10; 3 with --quick)
#   --warmup S               warm-up seconds per run (default 2; 1 with --quick)
#   --rounds N               rounds of the fixed-rate latency and fleet runs, and runs of
#                            the headline cases (default 3; 1 with --quick)
#   --ringmq-cores N         ringmq shards (default 1)
#   --broker-cpus LIST       CPUs for the broker (default: the last N CPUs, N = ringmq cores)
#   --loadgen-cpus LIST      CPUs for the load generator, one load thread each (default 0)
#   --brokers LIST           only these, comma-separated, from ringmq, mosquitto, rumqttd
#                            and the --peer names (default: all that are available)
#   --no-install             do not install missing brokers (Mosquitto with apt, rumqttd
#                            0.19.0 with `cargo install`, a few minutes); leave them out
#                            (by default both are installed when missing)
#   --peer NAME=HOST:PORT    also measure an already running broker (repeatable), e.g.
#                            EMQX: docker run -d --name emqx -p 1883:1883 emqx/emqx
#                                  scripts/bench.sh --peer emqx=127.0.0.1:1883 \
#                                      --peer-pid emqx=$(pgrep -f beam.smp | head -1)
#                            The script neither starts, stops nor pins a peer, and cannot
#                            remove its limits: configure them yourself (the report says so).
#   --peer-pid [NAME=]PID    the peer's PID, to sample its CPU and memory when it runs on
#                            this machine (NAME defaults to the last --peer)
#   --no-build               use the binaries already in target/release
#   --note TEXT              a note for the report, e.g. what else ran on the machine
#                            (repeatable)
#   --update-readme          also replace the headline table in README.md
#   -h, --help               this text
#
# Exit status: 0 when every run finished (QoS 1/2 loss is reported, not fatal: exit 3 of a
# run is recorded in the report), 1 when the set-up failed (build, a broker that would not
# start). Every broker start and every loadgen run is bounded by `timeout`; on exit or
# interrupt the script stops the processes it started, by PID, and nothing else.
set -Eeuo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

usage() { sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "bench.sh: $*" >&2; exit 1; }
orig_args="$(printf "%q " "$@")"

# --- options -----------------------------------------------------------------------------------

quick=0
out=""
duration=""
warmup=""
rounds=""
ringmq_cores=1
broker_cpus=""
loadgen_cpus="0"
brokers_only=""
install_missing=1
no_build=0
update_readme=0
notes=()
peer_names=()
declare -A peer_addr=()
declare -A peer_pid=()

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --out) out="${2:?--out needs a directory}"; shift ;;
        --duration) duration="${2:?}"; shift ;;
        --warmup) warmup="${2:?}"; shift ;;
        --rounds) rounds="${2:?}"; shift ;;
        --ringmq-cores) ringmq_cores="${2:?}"; shift ;;
        --broker-cpus) broker_cpus="${2:?}"; shift ;;
        --loadgen-cpus) loadgen_cpus="${2:?}"; shift ;;
        --brokers) brokers_only="${2:?}"; shift ;;
        --no-install) install_missing=0 ;;
        --with-rumqttd) ;;   # the default now; kept so older command lines still run
        --no-build) no_build=1 ;;
        --update-readme) update_readme=1 ;;
        --note) notes+=("${2:?--note needs a text}"); shift ;;
        --peer)
            spec="${2:?--peer needs NAME=HOST:PORT}"; shift
            name="${spec%%=*}"; addr="${spec#*=}"
            [[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || die "--peer: bad name '$name' (letters, digits, _ and - only)"
            [[ "$addr" =~ ^[^:]+:[0-9]+$ ]] || die "--peer $spec: expected NAME=HOST:PORT"
            case "$name" in ringmq | mosquitto | rumqttd) die "--peer: '$name' is a built-in broker name" ;; esac
            peer_names+=("$name"); peer_addr[$name]="$addr" ;;
        --peer-pid)
            spec="${2:?--peer-pid needs [NAME=]PID}"; shift
            if [[ "$spec" == *=* ]]; then name="${spec%%=*}"; pid="${spec#*=}"
            else
                [ ${#peer_names[@]} -gt 0 ] || die "--peer-pid PID must follow a --peer (or use NAME=PID)"
                name="${peer_names[-1]}"; pid="$spec"
            fi
            [[ "$pid" =~ ^[0-9]+$ ]] || die "--peer-pid: bad PID '$pid'"
            peer_pid[$name]="$pid" ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
for name in "${!peer_pid[@]}"; do
    [ -n "${peer_addr[$name]:-}" ] || die "--peer-pid $name: no --peer named $name"
done
[[ "$ringmq_cores" =~ ^[1-9][0-9]*$ ]] || die "--ringmq-cores: expected a positive number"

if [ "$quick" -eq 1 ]; then
    duration="${duration:-3}"; warmup="${warmup:-1}"; rounds="${rounds:-1}"
else
    duration="${duration:-10}"; warmup="${warmup:-2}"; rounds="${rounds:-3}"
fi
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds: a positive number"
[[ "$duration" =~ ^[0-9]+$ && "$duration" -ge 1 ]] || die "--duration: whole seconds, at least 1"
[[ "$warmup" =~ ^[0-9]+$ ]] || die "--warmup: whole seconds"
drain=5              # loadgen --drain: longest wait for outstanding deliveries after the run
settle_s=15          # pause after each broker's runs of a phase (see settle); 5 with --quick
[ "$quick" -eq 1 ] && settle_s=5

for tool in taskset timeout python3 pgrep ss; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (util-linux, coreutils, python3, procps, iproute2)"
done

ncpu="$(nproc)"
# Expand a CPU list (0,2-5) into one number per line.
expand_cpus() {
    local part
    IFS=',' read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ "$part" =~ ^([0-9]+)-([0-9]+)$ ]]; then seq "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
        elif [[ "$part" =~ ^[0-9]+$ ]]; then echo "$part"
        else die "bad CPU list '$1'"; fi
    done
}
if [ -z "$broker_cpus" ]; then
    if [ "$ncpu" -gt "$ringmq_cores" ]; then
        broker_cpus="$((ncpu - ringmq_cores))-$((ncpu - 1))"
        [ "$ringmq_cores" -eq 1 ] && broker_cpus="$((ncpu - 1))"
    else
        broker_cpus="0-$((ncpu - 1))"
    fi
fi
for c in $(expand_cpus "$broker_cpus") $(expand_cpus "$loadgen_cpus"); do
    [ "$c" -lt "$ncpu" ] || die "CPU $c does not exist (this machine has $ncpu)"
done
overlap="$(comm -12 <(expand_cpus "$broker_cpus" | sort -u) <(expand_cpus "$loadgen_cpus" | sort -u) | tr '\n' ' ')"
n_broker_cpus="$(expand_cpus "$broker_cpus" | sort -u | wc -l)"
if [ "$n_broker_cpus" -lt "$ringmq_cores" ]; then
    echo "note: ringmq gets $ringmq_cores shards on $n_broker_cpus broker CPU(s) ($broker_cpus)" >&2
fi

# --- the results directory -------------------------------------------------------------------

if [ -z "$out" ]; then
    out="results/$(date +%F)-$(hostname -s 2>/dev/null || hostname)-${ncpu}cpu"
    [ "$quick" -eq 1 ] && out="$out-quick"
    if [ -e "$out" ]; then
        i=2; while [ -e "$out-$i" ]; do i=$((i + 1)); done; out="$out-$i"
    fi
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
meta="$out/meta.tsv"
: >"$meta"
log="$out/bench.log"
exec > >(tee -a "$log") 2>&1
# One line of metadata for the report: KEY<TAB>VALUE (tabs and newlines flattened).
meta() { local k="$1"; shift; printf '%s\t%s\n' "$k" "$(printf '%s' "$*" | tr '\t\n' '  ')" >>"$meta"; }
say() { echo "[$(date +%T)] $*"; }

# --- cleanup: only what this script started -----------------------------------------------

started=()           # PIDs of the `timeout` wrappers this script launched
current_broker_pid=""
b_tpid=""           # the `timeout` wrapper of the running broker (see start_broker)
bindir=""
# Drop a PID that has been waited for, so that cleanup never signals a reused PID.
forget() {
    local p keep=()
    for p in "${started[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    started=("${keep[@]}")
}
# True while PID runs as a child of PARENT: the broker under its `timeout`, so that a PID
# the kernel reused for something else is never signalled.
child_of() { # PID PARENT
    local stat ppid
    [ -n "$1" ] && [ -n "$2" ] || return 1
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"            # drop "pid (comm) "; then: state ppid ...
    read -r _ ppid _ <<<"$stat"
    [ "$ppid" = "$2" ]
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p
    trap - EXIT INT TERM
    if child_of "$current_broker_pid" "$b_tpid"; then kill -TERM "$current_broker_pid" 2>/dev/null || true; fi
    for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${started[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for p in "${started[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    if child_of "$current_broker_pid" "$b_tpid"; then kill -KILL "$current_broker_pid" 2>/dev/null || true; fi
    if [ -n "$bindir" ] && [ -d "$bindir" ]; then rm -rf "$bindir"; fi
}
trap cleanup EXIT
trap 'echo "bench.sh: line $LINENO: a command failed (exit $?)" >&2' ERR
trap 'echo "interrupted"; exit 130' INT TERM

# --- build ---------------------------------------------------------------------------------------

target_dir="${CARGO_TARGET_DIR:-$root/target}"
ringmq_bin="$target_dir/release/ringmq"
loadgen_bin="$target_dir/release/ringmq-loadgen"
# The source state that is built (and measured), before anything can change it.
git_commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
git_changed="$(git status --porcelain -- src loadgen Cargo.toml Cargo.lock 2>/dev/null | awk '{print $NF}' | paste -sd' ' -)"
if [ "$no_build" -eq 0 ]; then
    say "building release binaries (cargo build --release -p ringmq -p ringmq-loadgen)"
    timeout 3600 cargo build --release -p ringmq -p ringmq-loadgen || die "build failed"
fi
[ -x "$ringmq_bin" ] || die "$ringmq_bin missing (build it, or drop --no-build)"
[ -x "$loadgen_bin" ] || die "$loadgen_bin missing"
# Run private copies, so that a rebuild in target/ during the run (other work on this
# machine) cannot change what is measured half-way.
bindir="$(mktemp -d "${TMPDIR:-/tmp}/ringmq-bench.XXXXXX")"
cp "$ringmq_bin" "$loadgen_bin" "$bindir/"
ringmq_bin="$bindir/ringmq"
loadgen_bin="$bindir/ringmq-loadgen"

# --- which brokers -------------------------------------------------------------------------------

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
wanted() { [ -z "$brokers_only" ] || [[ ",$brokers_only," == *",$1,"* ]]; }

brokers=()
wanted ringmq && brokers+=(ringmq)
if wanted mosquitto; then
    if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ] && [ "$install_missing" -eq 1 ]; then
        say "mosquitto missing: apt-get install -y mosquitto"
        timeout 300 "${as_root[@]}" apt-get update || echo "apt-get update failed; trying the install anyway"
        timeout 600 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto ||
            die "could not install mosquitto (or leave it out: --brokers ringmq)"
    fi
    mosquitto_bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
    if [ -x "$mosquitto_bin" ]; then
        brokers+=(mosquitto)
    elif [[ ",$brokers_only," == *",mosquitto,"* ]]; then
        die "mosquitto is not installed (drop --no-install to install it)"
    else
        say "mosquitto is not installed and --no-install is given: leaving it out"
    fi
fi
rumqttd_bin="$(command -v rumqttd || true)"
if wanted rumqttd; then
    if [ -z "$rumqttd_bin" ] && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/rumqttd" ]; then
        rumqttd_bin="${CARGO_HOME:-$HOME/.cargo}/bin/rumqttd"   # installed, not on PATH
    fi
    if [ -z "$rumqttd_bin" ] && [ "$install_missing" -eq 1 ]; then
        # Not --locked: rumqttd 0.19.0's lock file pins time 0.3.30, which no longer
        # compiles with current rustc (E0282 in format_description); the resolver picks a
        # fixed time 0.3.x.
        say "rumqttd missing: cargo install rumqttd --version 0.19.0"
        timeout 3600 cargo install rumqttd --version 0.19.0 ||
            die "cargo install rumqttd failed (or leave it out: --brokers ringmq,mosquitto)"
        rumqttd_bin="$(command -v rumqttd || echo "${CARGO_HOME:-$HOME/.cargo}/bin/rumqttd")"
    fi
    if [ -n "$rumqttd_bin" ] && [ -x "$rumqttd_bin" ]; then
        brokers+=(rumqttd)
    elif [[ ",$brokers_only," == *",rumqttd,"* ]]; then
        die "rumqttd is not installed (drop --no-install to install it)"
    else
        say "rumqttd is not installed and --no-install is given: leaving it out"
    fi
fi
for name in "${peer_names[@]}"; do wanted "$name" && brokers+=("$name"); done
[ ${#brokers[@]} -gt 0 ] || die "no broker selected"

# --- the open-file limit and the connection counts ------------------------------------------

nofile_hard="$(ulimit -Hn)"
if [ "$nofile_hard" = unlimited ]; then nofile_hard=1048576; fi
ulimit -n "$nofile_hard" 2>/dev/null || true
nofile="$(ulimit -n)"
# Each idle connection costs the broker one descriptor and the load generator one; keep 200
# for their own files (listeners, rings, timers, logs), and round down to a multiple of 100.
# (With 20,000 here, 19,800 connections were measured to fit in both ringmq and Mosquitto.)
conn_cap=$(((nofile - 200) / 100 * 100))
if [ "$quick" -eq 1 ]; then conn_wanted=(2000); else conn_wanted=(10000 100000); fi
conn_runs=()
for n in "${conn_wanted[@]}"; do
    if [ "$n" -gt "$conn_cap" ]; then
        meta note "conn $n capped to $conn_cap: the open-file limit here is $nofile per process (ulimit -n, hard limit $(ulimit -Hn)); each connection takes one descriptor in the broker and one in the load generator, and 200 are kept for their own files. Raise the hard limit (limits.conf / systemd LimitNOFILE) to measure $n."
        conn_runs+=("$n:$conn_cap")
    else
        conn_runs+=("$n:$n")
    fi
done

# --- the matrix ------------------------------------------------------------------------------------

# Scenario key -> loadgen arguments, the closed-loop cases (SCEN-qQ-SIZEB), the cases rerun
# in every round, the fixed-rate scenario and the fleet runs: `ringmq-loadgen matrix`.
declare -A scen_args=()
matrix=()
headline_ids=()
lat_scen=""; lat_pubs=0; fleet_args=""
while read -r what first rest; do
    case "$what" in
        scenario) scen_args[$first]="$rest" ;;
        case) matrix+=("$first") ;;
        headline) headline_ids+=("$first") ;;
        latency) lat_scen="$first"; lat_pubs="${rest%% *}" ;;
        fleet) fleet_args="$first $rest" ;;
        *) die "ringmq-loadgen matrix: unexpected line '$what $first $rest'" ;;
    esac
done < <("$loadgen_bin" matrix $([ "$quick" -eq 1 ] && echo --quick))
[ ${#matrix[@]} -gt 0 ] && [ -n "$lat_scen" ] && [ -n "$fleet_args" ] || die "ringmq-loadgen matrix printed no matrix"
if [ "$quick" -eq 1 ]; then
    conn_rate=2000; conn_hold=3
else
    conn_rate=5000; conn_hold=5
fi
n_runs_per_broker=$((${#matrix[@]} + 3 * rounds + 6 * (rounds - 1) + ${#conn_runs[@]}))
# Each run: warm-up + duration + about 3 s of set-up, drain and settling (measured on the
# 2-CPU VM: 66 runs of 1+1 s took 5.5 min; a saturated Mosquitto adds up to the 5 s drain on
# QoS 0); a round 2 s more (its own broker start and stop); a conn run about 12 s.
est_s=$(((${#matrix[@]} * (warmup + duration + 3) + rounds * (3 * (warmup + duration + 3) + 2) \
    + 6 * (rounds - 1) * (warmup + duration + 3) \
    + ${#conn_runs[@]} * 12) * ${#brokers[@]}))

# --- machine and run metadata ---------------------------------------------------------------

cpu_model="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)"
mem_kib="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta mode "$([ "$quick" -eq 1 ] && echo quick || echo full)"
meta host "$(hostname)"
meta cpu_model "${cpu_model:-unknown}"
meta nproc "$ncpu"
meta kernel "$(uname -sr)"
meta mem_kib "$mem_kib"
# The TCP stack's settings change the kernel's share of every figure (BBR paces with a timer,
# CUBIC does not); record them with the machine.
meta tcp_congestion_control "$(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo unknown)"
meta default_qdisc "$(sysctl -n net.core.default_qdisc 2>/dev/null || echo unknown)"
meta loadavg_before "$(cut -d' ' -f1-3 /proc/loadavg)"
meta duration_s "$duration"
meta warmup_s "$warmup"
meta drain_s "$drain"
meta broker_cpus "$broker_cpus"
meta loadgen_cpus "$loadgen_cpus"
meta ringmq_cores "$ringmq_cores"
[ -n "$overlap" ] && meta note "the broker CPUs ($broker_cpus) and the loadgen CPUs ($loadgen_cpus) overlap on CPU $overlap: figures include contention between them"
meta nofile "$nofile"
meta conn_cap "$conn_cap"
meta git_commit "$git_commit"
meta git_dirty "${git_changed:+uncommitted changes in $git_changed}"
meta binaries "sha256 ringmq $(sha256sum "$ringmq_bin" | cut -c1-16), ringmq-loadgen $(sha256sum "$loadgen_bin" | cut -c1-16)"
meta rustc "$(rustc --version 2>/dev/null || echo unknown)"
meta loadgen_version "$("$loadgen_bin" --version 2>/dev/null || echo unknown)"
meta brokers "${brokers[*]}"
meta command "scripts/bench.sh $orig_args"
for n in "${notes[@]}"; do meta note "$n"; done

say "results: $out"
say "brokers: ${brokers[*]}; broker CPUs $broker_cpus, loadgen CPUs $loadgen_cpus; ringmq --cores $ringmq_cores"
say "matrix: ${#matrix[@]} closed-loop runs + $rounds round(s) of 1 latency and 2 fleet runs (and 6 headline reruns after the first) + ${#conn_runs[@]} conn runs per broker, ${duration} s each after ${warmup} s warm-up; expect about $((est_s / 60 + 1)) min"

# --- brokers: start and stop --------------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Broker lifetime bound for one phase: every run's own bound plus slack.
run_limit() { echo $((warmup + duration + drain + 60)); }
broker_limit=$(((n_runs_per_broker) * ($(run_limit) + 10) + 600))

b_host=""; b_port=""; b_pid=""; b_name=""

# write_mosquitto_conf FILE PORT: scripts/hot_cases.sh (profile.sh uses it too).
# shellcheck source=scripts/hot_cases.sh
source "$root/scripts/hot_cases.sh"

write_ringmq_conf() { # file port
    cat >"$1" <<EOF
# Generated by scripts/bench.sh: the same limits removed as for the peers.
listener $2 127.0.0.1
allow_anonymous true
# queued QoS 1/2 messages per client (default 1000, beyond which they are dropped);
# 0 = no limit, as in Mosquitto
max_queued_messages 0
max_queued_bytes 0
# QoS 1/2 messages in flight to each client (default 20): 0 = 65535, the packet-id space
max_inflight_messages 0
message_size_limit 0
EOF
}

write_rumqttd_toml() { # file port console_port
    cat >"$1" <<EOF
# Generated by scripts/bench.sh for rumqttd 0.19: limits raised far above what the
# matrix needs (defaults in rumqttd's sample config in brackets).
id = 0

[router]
id = 0
max_connections = 200000            # [10010]
max_outgoing_packet_count = 100000  # [200] packets queued to one connection per read
max_segment_size = 104857600        # [104857600] bytes per commit-log segment
max_segment_count = 10              # [10]

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$2"
next_connection_delay_ms = 0        # [1] pause after each accept
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576      # [20480]
    max_inflight_count = 100        # [100]; rumqttd caps it at 100 in code (MAX_INFLIGHT)
    dynamic_filters = true

[console]
listen = "127.0.0.1:$3"
EOF
}

wait_listening() { # port pid
    local i
    for i in $(seq 150); do
        kill -0 "$2" 2>/dev/null || return 1
        if [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; then return 0; fi
        sleep 0.1
    done
    return 1
}

start_broker() { # name phase
    local name="$1" phase="$2" dir cfg i
    b_name="$name"; b_pid=""; b_tpid=""; b_host=127.0.0.1
    dir="$out/$name"; mkdir -p "$dir"
    if [ -n "${peer_addr[$name]:-}" ]; then
        b_host="${peer_addr[$name]%:*}"; b_port="${peer_addr[$name]##*:}"
        b_pid="${peer_pid[$name]:-}"
        if [ -n "$b_pid" ] && ! kill -0 "$b_pid" 2>/dev/null; then
            echo "warning: --peer-pid $b_pid for $name is not running; no CPU figures" >&2; b_pid=""
        fi
        return 0
    fi
    b_port="$(free_port)"
    local cmd=()
    case "$name" in
        ringmq)
            cfg="$dir/ringmq.conf"; write_ringmq_conf "$cfg" "$b_port"
            cmd=("$ringmq_bin" -c "$cfg" --cores "$ringmq_cores" --cpus "$broker_cpus") ;;
        mosquitto)
            cfg="$dir/mosquitto.conf"; write_mosquitto_conf "$cfg" "$b_port"
            cmd=("$mosquitto_bin" -c "$cfg") ;;
        rumqttd)
            cfg="$dir/rumqttd.toml"; write_rumqttd_toml "$cfg" "$b_port" "$(free_port)"
            cmd=("$rumqttd_bin" -c "$cfg") ;;
    esac
    echo "# $(date +%T) $phase: taskset -c $broker_cpus ${cmd[*]}" >>"$dir/broker.log"
    timeout -k 10 "$broker_limit" taskset -c "$broker_cpus" "${cmd[@]}" >>"$dir/broker.log" 2>&1 &
    b_tpid=$!
    started+=("$b_tpid")
    # timeout forks the broker (taskset execs into it): its child is the broker.
    for i in $(seq 50); do
        b_pid="$(pgrep -P "$b_tpid" | head -n1 || true)"
        [ -n "$b_pid" ] && break
        sleep 0.1
    done
    current_broker_pid="$b_pid"
    if [ -z "$b_pid" ] || ! wait_listening "$b_port" "$b_pid"; then
        echo "$name did not start listening on 127.0.0.1:$b_port; its log:" >&2
        tail -n 20 "$dir/broker.log" >&2
        stop_broker
        return 1
    fi
}

stop_broker() {
    if child_of "$b_pid" "$b_tpid"; then
        kill -TERM "$b_pid" 2>/dev/null || true
        for _ in $(seq 100); do child_of "$b_pid" "$b_tpid" || break; sleep 0.1; done
        if child_of "$b_pid" "$b_tpid"; then kill -KILL "$b_pid" 2>/dev/null || true; fi
    fi
    if [ -n "$b_tpid" ]; then
        kill -TERM "$b_tpid" 2>/dev/null || true
        wait "$b_tpid" 2>/dev/null || true
        forget "$b_tpid"
    fi
    current_broker_pid=""; b_pid=""; b_tpid=""
}

broker_versions() {
    local v
    for name in "${brokers[@]}"; do
        case "$name" in
            ringmq) v="$("$ringmq_bin" --version 2>&1 | head -n1) (commit $git_commit${git_changed:+ with uncommitted changes}), --cores $ringmq_cores --cpus $broker_cpus"
                meta "limits_ringmq" "the same as Mosquitto's: max_queued_messages 0 (no limit; default 1000, which drops QoS 1/2 messages beyond it), max_inflight_messages 0 (= 65535; default 20), max_queued_bytes 0 and message_size_limit 0 (no limit, the defaults)" ;;
            mosquitto) v="$({ "$mosquitto_bin" -h 2>&1 || true; } | head -n1)"
                meta "limits_mosquitto" "max_queued_messages 0 (default 1000: drops QoS 1/2 messages beyond it); max_inflight_messages 0 (default 20); max_queued_bytes 0 and message_size_limit 0 (already unlimited by default, stated explicitly)" ;;
            rumqttd) v="rumqttd $("$rumqttd_bin" --version 2>/dev/null | head -n1 || echo '(version unknown)')"
                meta "limits_rumqttd" "router max_connections 200000, max_outgoing_packet_count 100000 (sample config 200), max_payload_size 1 MiB (20 KiB), next_connection_delay_ms 0 (1); max_inflight_count stays 100, rumqttd's hard-coded maximum; its commit log keeps 10 segments of 100 MiB per topic" ;;
            *) v="peer at ${peer_addr[$name]}${peer_pid[$name]:+, PID ${peer_pid[$name]}}"
                meta "limits_$name" "not managed by bench.sh: configure the peer without queue, in-flight or payload limits yourself (settings for FlashMQ, EMQX and NanoMQ: loadgen/README.md, Peers)" ;;
        esac
        meta "version_$name" "$v"
    done
}
broker_versions

# --- loadgen runs ---------------------------------------------------------------------------------

n_done=0
n_total=$((n_runs_per_broker * ${#brokers[@]}))
failures=0

# run_one RUN_ID KIND LOADGEN-ARGS...: one loadgen run against the current broker.
run_one() {
    local id="$1" kind="$2" dir rc=0 lim t0 t1 line
    shift 2
    dir="$out/$b_name/$id"
    rm -rf "$dir"; mkdir -p "$dir"
    local args=("$@" --host "$b_host" --port "$b_port" --cpus "$loadgen_cpus" --out "$dir" --quiet)
    [ -n "$b_pid" ] && args+=(--broker-pid "$b_pid")
    if [ "$kind" = conn ]; then lim=$((conn_n / conn_rate + conn_hold + 90)); else lim="$(run_limit)"; fi
    t0="$(date +%s.%N)"
    timeout -k 5 "$lim" taskset -c "$loadgen_cpus" "$loadgen_bin" "${args[@]}" >"$dir/stdout.txt" 2>"$dir/stderr.txt" &
    local lg=$!
    started+=("$lg")
    wait "$lg" || rc=$?
    forget "$lg"
    t1="$(date +%s.%N)"
    n_done=$((n_done + 1))
    line="$(tail -n1 "$dir/stdout.txt" 2>/dev/null || true)"
    printf '{"broker": "%s", "run": "%s", "kind": "%s", "exit_code": %d, "elapsed_s": %s, "args": "%s"}\n' \
        "$b_name" "$id" "$kind" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')" "$*" >"$dir/run.json"
    case "$rc" in
        0) say "[$n_done/$n_total] $b_name $id: ${line:-no output}" ;;
        3) say "[$n_done/$n_total] $b_name $id: QoS 1/2 LOSS: $line" ;;
        124 | 137) failures=$((failures + 1)); say "[$n_done/$n_total] $b_name $id: TIMED OUT after ${lim} s" ;;
        *) failures=$((failures + 1)); say "[$n_done/$n_total] $b_name $id: FAILED (exit $rc): $(tail -n2 "$dir/stderr.txt" | tr '\n' ' ')" ;;
    esac
    # A broker that died, or that failed a run while still running, is restarted for the
    # remaining runs; the report shows the failed run. (rumqttd 0.19's router thread can
    # panic and leave the process up but refusing every client, which voided the rest
    # of its matrix before this.)
    local why=""
    if [ -n "$b_tpid" ] && ! child_of "$b_pid" "$b_tpid"; then
        why="exited during $id"
    elif [ -n "$b_tpid" ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
        why="failed $id while still running"
    fi
    if [ -n "$why" ]; then
        say "$b_name $why (see $out/$b_name/broker.log); restarting it"
        echo "# $(date +%T) $why" >>"$out/$b_name/broker.log"
        meta note "$b_name $why and was restarted for the runs after it"
        stop_broker
        start_broker "$b_name" "restart" || die "$b_name would not restart"
    fi
    sleep 1   # let the broker settle (closed sockets, freed queues) before the next run
}

# Between brokers' phases. A broker that held gigabytes (rumqttd reached 8.7 GiB in the
# matrix) can slow the runs after it: on the 2-vCPU VM, a fixed-rate run started 15 s after
# freeing 8 GiB measured p99 6.9 ms and 19 CPU-µs/msg once in four tries (0.3-2 ms and
# 13.7-14.2 otherwise), while the guest itself was idle during those 15 s, so the cost is
# not one a longer pause reliably removes (most likely the hypervisor handing the memory
# back). The pause stays; the latency rounds below rotate which broker goes first, so no
# broker always pays it.
settle() {
    sleep "$settle_s"
}

# --- phase 1: the closed-loop matrix --------------------------------------------------------------

# closed_loop ID RUN_ID KIND: matrix case ID (SCEN-qQ-SIZEB) against the current broker.
closed_loop() {
    local id="$1" scen rest q size extra=() sargs=()
    scen="${id%-q*}"; rest="${id#"$scen"-q}"; q="${rest%%-*}"; size="${rest#*-}"; size="${size%B}"
    read -ra sargs <<<"${scen_args[$scen]}"
    [ "$q" -gt 0 ] && extra=(--inflight 20)
    run_one "$2" "$3" "${sargs[@]}" --qos "$q" --size "$size" --rate max "${extra[@]}" \
        --duration "$duration" --warmup "$warmup" --drain "$drain"
}

for name in "${brokers[@]}"; do
    say "== $name: throughput matrix"
    start_broker "$name" "matrix" || die "$name would not start"
    for id in "${matrix[@]}"; do closed_loop "$id" "$id" throughput; done
    stop_broker
    settle
done

# --- phase 2: rounds of the fixed-rate latency run, the fleet runs and the headline reruns ----

lat_base="$lat_scen-q1-64B"
# The slowest broker's closed-loop rate in the latency scenario, read from the summaries
# through the loadgen's own types; a summary it cannot read is reported on stderr and the
# fixed fallback below is used.
lat_total="$("$loadgen_bin" report "$out" --slowest-rate "$lat_base" || echo 0)"
if [ "$lat_total" -le 0 ]; then
    lat_total=10000
    meta note "no broker finished $lat_base, so the latency run used a fixed 10,000 msg/s"
fi
lat_rate=$((lat_total / 2 / lat_pubs))
[ "$lat_rate" -ge 1 ] || lat_rate=1
meta latency_run "$lat_scen QoS 1 64 B open loop at $lat_rate msg/s per publisher x $lat_pubs = $((lat_rate * lat_pubs)) msg/s: 50% of the slowest broker's closed-loop maximum in $lat_base ($lat_total msg/s)"
meta rounds "$rounds"
say "latency run: $lat_scen QoS 1 64 B at $((lat_rate * lat_pubs)) msg/s (50% of the slowest broker's $lat_total msg/s); $rounds round(s) of it and the fleet runs"

# One p99, or one CPU figure, on a shared or virtual machine is a draw: the same build
# measured a p99 of 0.3 to 2 ms, fleet CPU-µs/msg 8% apart and QoS 0 fan-out 0.04 to 0.07
# µs/msg in back-to-back runs on the 2-vCPU VM. So every broker runs the latency and fleet
# runs `rounds` times, and the headline cases (pairs 10 and fan-out 50, QoS 0/1/2, 64 B:
# the matrix's `headline` lines) `rounds - 1` more times after the matrix run, in a fresh process each
# round, round r starting with broker r (mod the count) so that no broker always runs first
# after the matrix; the report compares medians.
for ((round = 1; round <= rounds; round++)); do
    for ((k = 0; k < ${#brokers[@]}; k++)); do
        name="${brokers[$(((round - 1 + k) % ${#brokers[@]}))]}"
        say "== $name: round $round of $rounds"
        start_broker "$name" "round $round" || die "$name would not start"
        if [ "$round" -gt 1 ]; then
            for id in "${headline_ids[@]}"; do
                if [[ " ${matrix[*]} " == *" $id "* ]]; then closed_loop "$id" "headline-r$round-$id" headline; fi
            done
        fi
        read -ra sargs <<<"${scen_args[$lat_scen]}"
        run_one "latency-r$round-$lat_base" latency "${sargs[@]}" --qos 1 --size 64 --rate "$lat_rate" \
            --inflight 20 --duration "$duration" --warmup "$warmup" --drain "$drain"
        read -ra fargs <<<"$fleet_args"
        for q in 0 1; do
            fleet_extra=(); [ "$q" -gt 0 ] && fleet_extra=(--inflight 20)
            run_one "fleet-r$round-pairs-1000-q$q-64B" fleet "${fargs[@]}" --qos "$q" --size 64 \
                "${fleet_extra[@]}" --duration "$duration" --warmup "$warmup" --drain "$drain"
        done
        stop_broker
    done
done
settle

# --- phase 3: idle connections ----------------------------------------------------------------

for name in "${brokers[@]}"; do
    say "== $name: idle connections"
    start_broker "$name" "conn" || die "$name would not start"
    for spec in "${conn_runs[@]}"; do
        want="${spec%%:*}"; conn_n="${spec##*:}"
        run_one "conn-$want" conn conn --n "$conn_n" --rate "$conn_rate" --hold "$conn_hold" \
            --source-ips 127.0.0.1-127.0.0.20
    done
    stop_broker
    settle
done

meta loadavg_after "$(cut -d' ' -f1-3 /proc/loadavg)"
meta finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# --- the report -------------------------------------------------------------------------------------

# A broker log over 1 MiB keeps its first 200 and last 1,000 lines, bench.sh's own lines
# ("# HH:MM:SS phase: command") and every line that reports a panic: rumqttd 0.19 logs
# every connection, 23 MiB in one full run, which is not worth keeping in results/.
trim_log() { # file
    local f="$1" lines
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 1048576 ] || return 0
    lines="$(wc -l <"$f")"
    awk -v n="$lines" 'NR <= 200 || NR > n - 1000 || /^# [0-9][0-9]:/ || /panicked/ {
            if (NR > 200 && NR - last > 1) print "[... bench.sh: lines " last + 1 "-" NR - 1 " of " n " cut ...]"
            print; last = NR }' "$f" >"$f.trim" && mv "$f.trim" "$f"
}
for name in "${brokers[@]}"; do trim_log "$out/$name/broker.log"; done

report_args=("$out" --index "$root/results/README.md")
[ "$update_readme" -eq 1 ] && report_args+=(--update-readme "$root/README.md")
"$loadgen_bin" report "${report_args[@]}"
say "report: $out/report.md"
if [ "$failures" -gt 0 ]; then
    say "$failures run(s) failed or timed out: see the report's status column and each run's stderr.txt"
fi
exit 0
