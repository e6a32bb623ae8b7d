#!/usr/bin/env bash
# Interoperability check: ringmq against third-party clients.
#
#   scripts/interop.sh
#
# Installs what it needs when missing (mosquitto-clients and nodejs via apt-get,
# paho-mqtt via pip, MQTT.js via npm), builds the release binary, starts ringmq with 4
# shards on a free loopback port, and runs publish/subscribe round trips:
#   - mosquitto_pub / mosquitto_sub at QoS 0, 1 and 2, MQTT 3.1.1 and 5.0, plus a
#     retained message read by a later subscriber;
#   - scripts/interop_paho.py (Paho 2.x) at QoS 0, 1 and 2, MQTT 3.1.1 and 5.0;
#   - Paho MQTT 5 cases: topic aliases (both ways), a shared subscription, message
#     expiry (live and while a persistent session is offline), request/response with
#     correlation data, and user properties (see scripts/interop_paho.py);
#   - MQTT.js (npm `mqtt`, pinned, installed into a scratch directory; nodejs and npm via
#     apt-get when missing) at QoS 0, 1 and 2, MQTT 3.1.1 and 5.0, plus a retained
#     message, a will, offline queueing in a persistent session, and MQTT 5 topic aliases
#     with user properties (see scripts/interop_mqttjs.js).
# Every message must arrive. Prints "N passed, M failed" and exits non-zero on any
# failure. Every step is bounded by `timeout`; ringmq is stopped by its PID on exit.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

COUNT=20          # messages per round trip
STEP_TIMEOUT=30   # seconds, any one client step
MQTTJS_VERSION=5.16.0

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo -n)

# --- what the checks need ----------------------------------------------------------------

if ! command -v mosquitto_sub >/dev/null 2>&1 || ! command -v mosquitto_pub >/dev/null 2>&1; then
    echo "mosquitto_sub/mosquitto_pub missing: installing mosquitto-clients"
    # A stale or unreachable index must not stop the install from trying.
    timeout 300 "${as_root[@]}" apt-get update || echo "apt-get update failed; trying the install anyway"
    timeout 600 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto-clients
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node/npm missing: installing nodejs and npm"
    timeout 300 "${as_root[@]}" apt-get update || echo "apt-get update failed; trying the install anyway"
    timeout 900 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
fi
if ! python3 -c 'import paho' >/dev/null 2>&1; then
    echo "paho-mqtt missing: installing it"
    timeout 300 python3 -m pip install 'paho-mqtt>=2' ||
        timeout 300 python3 -m pip install --break-system-packages 'paho-mqtt>=2'
fi
if ! python3 -c 'import paho.mqtt.client as m; m.CallbackAPIVersion' >/dev/null 2>&1; then
    echo "paho-mqtt 2.x is needed (found an older one): python3 -m pip install -U 'paho-mqtt>=2'" >&2
    exit 1
fi

timeout 1800 cargo build --release --bin ringmq
bin="$root/target/release/ringmq"

# --- the broker ------------------------------------------------------------------------------

work="$(mktemp -d)"
log="$work/ringmq.log"
broker_pid=""
cleanup() {
    if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the kernel picks a free port; ringmq logs the one it bound.
"$bin" -v --cores 4 --listen 127.0.0.1:0 2>"$log" &
broker_pid=$!
port=""
for _ in $(seq 100); do
    port="$(sed -n 's/.*Opening ipv4 listen socket on 127\.0\.0\.1:\([0-9]*\)\..*/\1/p' "$log" | head -n1)"
    [ -n "$port" ] && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "ringmq did not start; its log:" >&2
    cat "$log" >&2
    exit 1
fi
echo "ringmq (pid $broker_pid) listening on 127.0.0.1:$port"

# --- mosquitto clients -------------------------------------------------------------------------

# Waits (bounded) until a file has a line matching a pattern.
wait_for_line() { # file pattern seconds
    local deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

mosquitto_roundtrip() { # protocol(311|5) qos
    local v="$1" q="$2"
    local name="mosquitto v$v qos$q"
    local topic="interop/mosquitto/v$v/q$q/$$"
    local id="mosq-sub-v$v-q$q-$$"
    local out="$work/sub-v$v-q$q.out"
    # -d prints "Client ... received SUBACK"; payloads are told apart by their prefix.
    # stdbuf: line-buffered, so the SUBACK line is in the file when it happens.
    timeout "$STEP_TIMEOUT" stdbuf -oL mosquitto_sub -d -h 127.0.0.1 -p "$port" -V "mqttv$v" -i "$id" \
        -t "$topic" -q "$q" -C "$COUNT" -W $((STEP_TIMEOUT - 5)) >"$out" 2>&1 &
    local sub_pid=$!
    if ! wait_for_line "$out" "received SUBACK" 10; then
        kill "$sub_pid" 2>/dev/null || true
        wait "$sub_pid" 2>/dev/null || true
        fail "$name: no SUBACK: $(tr '\n' ' ' <"$out")"
        return
    fi
    # A fresh publishing connection after the SUBACK, as in the Mosquitto tutorial.
    if ! seq -f "mosquitto %g" 1 "$COUNT" |
        timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$port" -V "mqttv$v" \
            -i "mosq-pub-v$v-q$q-$$" -t "$topic" -q "$q" -l; then
        fail "$name: mosquitto_pub failed"
    fi
    local rc=0
    wait "$sub_pid" || rc=$?
    local got want
    got="$(grep '^mosquitto [0-9]*$' "$out" || true)"
    want="$(seq -f "mosquitto %g" 1 "$COUNT")"
    if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then
        pass "$name: $COUNT/$COUNT messages in order"
    else
        fail "$name: mosquitto_sub exit $rc, got $(printf '%s\n' "$got" | grep -c . || true) of $COUNT"
    fi
}

mosquitto_retained() { # protocol
    local v="$1" name="mosquitto v$1 retained"
    local topic="interop/mosquitto/retained/v$v/$$"
    if ! timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$port" -V "mqttv$v" -t "$topic" -q 1 -r -m "kept $v"; then
        fail "$name: mosquitto_pub failed"
        return
    fi
    local got rc=0
    got="$(timeout "$STEP_TIMEOUT" mosquitto_sub -h 127.0.0.1 -p "$port" -V "mqttv$v" -t "$topic" -q 1 -C 1 -W 10 -F '%r %p')" || rc=$?
    if [ "$rc" -eq 0 ] && [ "$got" = "1 kept $v" ]; then
        pass "$name: later subscriber got it with RETAIN set"
    else
        fail "$name: exit $rc, got '$got', want '1 kept $v'"
    fi
}

for v in 311 5; do
    for q in 0 1 2; do
        mosquitto_roundtrip "$v" "$q"
    done
    mosquitto_retained "$v"
done

# --- Paho ------------------------------------------------------------------------------------

for v in 311 5; do
    for q in 0 1 2; do
        if line="$(timeout "$STEP_TIMEOUT" python3 "$root/scripts/interop_paho.py" --port "$port" \
            --protocol "$v" --qos "$q" --count "$COUNT" --timeout $((STEP_TIMEOUT - 5)) 2>&1)"; then
            pass "${line#PASS }"
        else
            fail "${line#FAIL }"
        fi
    done
done

for case in topic-alias shared message-expiry request-response user-properties; do
    if line="$(timeout "$STEP_TIMEOUT" python3 "$root/scripts/interop_paho.py" --port "$port" \
        --protocol 5 --case "$case" --count "$COUNT" --timeout $((STEP_TIMEOUT - 5)) 2>&1)"; then
        pass "${line#PASS }"
    else
        fail "${line#FAIL }"
    fi
done

# --- MQTT.js ----------------------------------------------------------------------------------

# Pinned, into this run's scratch directory: nothing is installed globally.
if timeout 300 npm install --prefix "$work/mqttjs" --no-audit --no-fund --silent "mqtt@$MQTTJS_VERSION" >"$work/npm.log" 2>&1; then
    rc=0
    out="$(NODE_PATH="$work/mqttjs/node_modules" timeout $((STEP_TIMEOUT * 4)) \
        node "$root/scripts/interop_mqttjs.js" "mqtt://127.0.0.1:$port" "$COUNT" 2>&1)" || rc=$?
    while IFS= read -r line; do
        case "$line" in
            PASS\ *) pass "${line#PASS }" ;;
            FAIL\ *) fail "${line#FAIL }" ;;
        esac
    done <<<"$out"
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then
        fail "mqtt.js: node exited $rc: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    fi
else
    fail "mqtt.js: npm install mqtt@$MQTTJS_VERSION failed: $(tail -n 3 "$work/npm.log" | tr '\n' ' ')"
fi

# --- the broker is still well ----------------------------------------------------------------

if kill -0 "$broker_pid" 2>/dev/null; then
    pass "ringmq still running after every round trip"
else
    fail "ringmq exited during the checks; log tail: $(tail -n 5 "$log" | tr '\n' ' ')"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
