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
# Then a secured phase: a second ringmq (4 shards, loopback) with `allow_anonymous false`,
# a password file written by `ringmq passwd` (one PBKDF2 `$7$` entry, one SHA-512 `$6$`)
# and an ACL (the writer: readwrite secure/#, write private/#, readwrite $SYS/#; the
# reader: read secure/#, write secure/reader/#), at MQTT 3.1.1 and 5.0:
#   - mosquitto_pub/mosquitto_sub: the right password delivers; a wrong password and no
#     user name are refused with mosquitto's "not authorised" / "Not authorized" and exit
#     code 5 / 135; a subscription the ACL refuses is denied (SUBACK 128 / 135); a publish
#     outside the ACL is not delivered; a retained publish to $SYS is not stored;
#   - paho-mqtt and MQTT.js (`--case secured` / `--secured`): the refused CONNECT's code,
#     SUBACK failure codes beside a partly readable `#` whose deliveries are filtered, and
#     a denied PUBLISH acknowledged and dropped (3.1.1) or answered with 0x87 (5.0);
#   - Mosquitto itself (/usr/sbin/mosquitto, Debian's mosquitto package, installed when
#     missing where apt-get can): started on the password file ringmq passwd wrote, it
#     lets both users in with mosquitto_pub and refuses a wrong password.
# Then TLS and WebSockets (scripts/interop_tls.sh): --cafile, --cert/--key against
# require_certificate and use_identity_as_username, refused without a certificate,
# paho-mqtt over TLS and WebSockets, MQTT.js's suite over ws:// and wss://, and a web
# page in headless Chromium (Debian's chromium, installed when missing) using MQTT.js.
# Every message must arrive. Prints "N passed, M failed" and exits non-zero on any
# failure. Every step is bounded by `timeout`; the brokers it starts are stopped by their PIDs
# on exit.
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
if [ ! -x /usr/sbin/mosquitto ]; then
    # The broker itself, for the check that Mosquitto reads ringmq passwd's files. Optional:
    # where it cannot be installed, that one check is skipped and says so.
    echo "/usr/sbin/mosquitto missing: installing mosquitto"
    timeout 300 "${as_root[@]}" apt-get update || echo "apt-get update failed; trying the install anyway"
    timeout 600 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto ||
        echo "installing mosquitto failed; the Mosquitto password file check will be skipped"
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
secure_pid=""
mosquitto_pid=""
stop_pid() { # pid: TERM, up to 5 s, then KILL
    local pid="$1"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    stop_pid "$broker_pid"
    stop_pid "$secure_pid"
    stop_pid "$mosquitto_pid"
    rm -rf "$work"
}
trap cleanup EXIT

# Waits (bounded) for the port ringmq logs once it has bound port 0; prints it.
bound_port() { # log pid
    local p=""
    for _ in $(seq 100); do
        p="$(sed -n 's/.*Opening ipv4 listen socket on 127\.0\.0\.1:\([0-9]*\)\..*/\1/p' "$1" | head -n1)"
        [ -n "$p" ] && break
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    printf '%s' "$p"
}

# Port 0: the kernel picks a free port; ringmq logs the one it bound.
"$bin" -v --cores 4 --listen 127.0.0.1:0 2>"$log" &
broker_pid=$!
port="$(bound_port "$log" "$broker_pid")"
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

# --- access control: a password file and an ACL ----------------------------------------------

# A second ringmq, its files written as a user would: `ringmq passwd` for the passwords
# (the writer's PBKDF2-SHA512, the default; the reader's salted SHA-512, Mosquitto 1.6's).
secure="$work/secure"
mkdir -p "$secure"
WRITER=writer WRITER_PW="writer's secret"
READER=reader READER_PW="reader-pw-2"
secure_ok=1
if ! timeout "$STEP_TIMEOUT" "$bin" passwd -c -b "$secure/passwd" "$WRITER" "$WRITER_PW" ||
    ! timeout "$STEP_TIMEOUT" "$bin" passwd -H sha512 -b "$secure/passwd" "$READER" "$READER_PW"; then
    fail "ringmq passwd could not write the password file"
    secure_ok=0
elif grep -q "^$WRITER:[$]7[$]" "$secure/passwd" && grep -q "^$READER:[$]6[$]" "$secure/passwd"; then
    pass "ringmq passwd wrote a \$7\$ (PBKDF2-SHA512) and a \$6\$ (SHA-512) entry"
else
    fail "ringmq passwd wrote: $(cut -c1-20 "$secure/passwd" | tr '\n' ' ')"
fi
cat >"$secure/acl" <<ACL
# anonymous clients are refused before the ACL matters (allow_anonymous false)
user $WRITER
topic readwrite secure/#
topic write private/#
topic readwrite \$SYS/#

user $READER
topic read secure/#
topic write secure/reader/#
ACL
cat >"$secure/ringmq.conf" <<CONF
listener 0 127.0.0.1
allow_anonymous false
password_file $secure/passwd
acl_file $secure/acl
CONF
slog="$work/ringmq-secure.log"
sport=""
if [ "$secure_ok" -eq 1 ]; then
    "$bin" -v --cores 4 -c "$secure/ringmq.conf" 2>"$slog" &
    secure_pid=$!
    sport="$(bound_port "$slog" "$secure_pid")"
fi
if [ -n "$sport" ]; then
    echo "secured ringmq (pid $secure_pid) listening on 127.0.0.1:$sport"
elif [ "$secure_ok" -eq 1 ]; then
    fail "the secured ringmq did not start: $(tail -n 5 "$slog" | tr '\n' ' ')"
fi

# mosquitto_pub/mosquitto_sub, allowed and refused.
secured_mosquitto() { # protocol(311|5)
    local v="$1" name="mosquitto v$1 secured"
    local auth_w=(-u "$WRITER" -P "$WRITER_PW") auth_r=(-u "$READER" -P "$READER_PW")
    local base="secure/mosquitto/v$v/$$"
    local out="$work/secured-v$v.out" rc got

    # The right password delivers: the reader subscribes, the writer publishes.
    timeout "$STEP_TIMEOUT" stdbuf -oL mosquitto_sub -d -h 127.0.0.1 -p "$sport" -V "mqttv$v" "${auth_r[@]}" \
        -t "$base/ok" -q 1 -C 1 -W $((STEP_TIMEOUT - 5)) >"$out" 2>&1 &
    local sub_pid=$!
    if wait_for_line "$out" "received SUBACK" 10 &&
        timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$sport" -V "mqttv$v" "${auth_w[@]}" \
            -t "$base/ok" -q 1 -m "with the password"; then
        rc=0
        wait "$sub_pid" || rc=$?
        if [ "$rc" -eq 0 ] && grep -qx "with the password" "$out"; then
            pass "$name: right passwords, the writer's message reached the reader"
        else
            fail "$name: right passwords, mosquitto_sub exit $rc: $(tr '\n' ' ' <"$out")"
        fi
    else
        kill "$sub_pid" 2>/dev/null || true
        wait "$sub_pid" 2>/dev/null || true
        fail "$name: right passwords, no SUBACK or mosquitto_pub failed: $(tr '\n' ' ' <"$out")"
    fi

    # A wrong password, and no user name at all, are refused (CONNACK 5 / 0x87).
    local want_rc want_msg
    if [ "$v" = 311 ]; then want_rc=5 want_msg="Connection Refused: not authorised."
    else want_rc=135 want_msg="Connection error: Not authorized"; fi
    local who
    for who in wrong-password anonymous; do
        local creds=()
        [ "$who" = wrong-password ] && creds=(-u "$WRITER" -P "$WRITER_PW-wrong")
        rc=0
        got="$(timeout "$STEP_TIMEOUT" mosquitto_sub -h 127.0.0.1 -p "$sport" -V "mqttv$v" "${creds[@]}" \
            -t "$base/ok" -C 1 -W 5 2>&1)" || rc=$?
        if [ "$rc" -eq "$want_rc" ] && grep -qF "$want_msg" <<<"$got"; then
            pass "$name: $who refused (exit $rc, '$want_msg')"
        else
            fail "$name: $who: exit $rc (want $want_rc), said '$(tr '\n' ' ' <<<"$got")'"
        fi
    done

    # A subscription the ACL refuses: SUBACK 128 (3.1.1) / 135 (5.0).
    local want_code=$([ "$v" = 311 ] && echo 128 || echo 135)
    rc=0
    got="$(timeout "$STEP_TIMEOUT" mosquitto_sub -d -h 127.0.0.1 -p "$sport" -V "mqttv$v" "${auth_r[@]}" \
        -t "private/mosquitto/$$" -q 1 -C 1 -W 5 2>&1)" || rc=$?
    if grep -q "Subscribed (mid: [0-9]*): $want_code$" <<<"$got" &&
        grep -q "All subscription requests were denied" <<<"$got"; then
        pass "$name: subscription outside the ACL denied (SUBACK $want_code)"
    else
        fail "$name: subscription outside the ACL: exit $rc, '$(tr '\n' ' ' <<<"$got")'"
    fi

    # A publish outside the ACL is not delivered: the writer listens on secure/#; the
    # reader publishes to a topic it may only read, then a marker it may write.
    timeout "$STEP_TIMEOUT" stdbuf -oL mosquitto_sub -d -h 127.0.0.1 -p "$sport" -V "mqttv$v" "${auth_w[@]}" \
        -t "secure/#" -q 1 -F '%t %p' -W $((STEP_TIMEOUT - 5)) >"$out" 2>&1 &
    sub_pid=$!
    if wait_for_line "$out" "received SUBACK" 10; then
        timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$sport" -V "mqttv$v" "${auth_r[@]}" \
            -t "$base/read-only" -q 1 -m "refused" >/dev/null 2>&1 || true
        timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$sport" -V "mqttv$v" "${auth_r[@]}" \
            -t "secure/reader/$$/v$v" -q 1 -m "marker" || true
        wait_for_line "$out" "^secure/reader/$$/v$v marker$" 10 || true
        sleep 0.3
    fi
    kill "$sub_pid" 2>/dev/null || true
    wait "$sub_pid" 2>/dev/null || true
    got="$(grep '^secure/' "$out" || true)"
    if [ "$got" = "secure/reader/$$/v$v marker" ]; then
        pass "$name: publish outside the ACL not delivered (the marker after it was)"
    else
        fail "$name: publish outside the ACL: the writer's secure/# got '$(tr '\n' ' ' <<<"$got")'"
    fi

    # $SYS is the broker's: a retained publish there is refused, so nothing is stored.
    timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$sport" -V "mqttv$v" "${auth_w[@]}" \
        -t "\$SYS/broker/version" -q 1 -r -m "fake $$" >/dev/null 2>&1 || true
    got="$(timeout "$STEP_TIMEOUT" mosquitto_sub -h 127.0.0.1 -p "$sport" -V "mqttv$v" "${auth_w[@]}" \
        -t "\$SYS/broker/version" -C 1 -W 2 2>/dev/null || true)"
    if ! grep -q "fake $$" <<<"$got"; then
        pass "$name: retained publish to \$SYS/broker/version refused (read back: '${got:-nothing}')"
    else
        fail "$name: a client's retained '\$SYS/broker/version' was stored and served back"
    fi
}

if [ -n "$sport" ]; then
    for v in 311 5; do
        secured_mosquitto "$v"
        if line="$(timeout "$STEP_TIMEOUT" python3 "$root/scripts/interop_paho.py" --port "$sport" \
            --protocol "$v" --case secured --writer "$WRITER:$WRITER_PW" --reader "$READER:$READER_PW" \
            --timeout $((STEP_TIMEOUT - 5)) 2>&1)"; then
            pass "${line#PASS }"
        else
            fail "${line#FAIL }"
        fi
    done
    if [ -d "$work/mqttjs/node_modules/mqtt" ]; then
        rc=0
        out="$(NODE_PATH="$work/mqttjs/node_modules" timeout $((STEP_TIMEOUT * 2)) node "$root/scripts/interop_mqttjs.js" \
            --secured "mqtt://127.0.0.1:$sport" "$WRITER:$WRITER_PW" "$READER:$READER_PW" 2>&1)" || rc=$?
        while IFS= read -r line; do
            case "$line" in
                PASS\ *) pass "${line#PASS }" ;;
                FAIL\ *) fail "${line#FAIL }" ;;
            esac
        done <<<"$out"
        if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then
            fail "mqtt.js secured: node exited $rc: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
        fi
    else
        fail "mqtt.js secured: no MQTT.js (its npm install failed above)"
    fi
    if kill -0 "$secure_pid" 2>/dev/null; then
        pass "secured ringmq still running after every check"
    else
        fail "the secured ringmq exited during the checks; log tail: $(tail -n 5 "$slog" | tr '\n' ' ')"
    fi
    stop_pid "$secure_pid"
fi

# Mosquitto reads the password file ringmq passwd wrote: both users log in, a wrong password
# does not.
if [ ! -x /usr/sbin/mosquitto ]; then
    echo "SKIP mosquitto broker with ringmq passwd's file: /usr/sbin/mosquitto is not installed"
elif [ "$secure_ok" -eq 1 ]; then
    # Mosquitto takes no port 0: a port the kernel had free a moment ago.
    mport="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    mlog="$work/mosquitto.log"
    # `user root`: run as root, Mosquitto would otherwise become `mosquitto`, which cannot
    # read this run's private scratch directory; as anyone else the line changes nothing.
    cat >"$secure/mosquitto.conf" <<CONF
user root
listener $mport 127.0.0.1
allow_anonymous false
password_file $secure/passwd
log_dest stderr
log_type all
CONF
    timeout 120 /usr/sbin/mosquitto -c "$secure/mosquitto.conf" 2>"$mlog" &
    mosquitto_pid=$!
    if wait_for_line "$mlog" "running" 10; then
        for who in "$WRITER:$WRITER_PW" "$READER:$READER_PW"; do
            rc=0
            got="$(timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$mport" -u "${who%%:*}" -P "${who#*:}" \
                -t "secure/mosquitto-broker/$$" -q 1 -m "hello" 2>&1)" || rc=$?
            if [ "$rc" -eq 0 ]; then
                pass "mosquitto $(/usr/sbin/mosquitto -h 2>&1 | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n1) broker: ${who%%:*} logged in with ringmq passwd's file"
            else
                fail "mosquitto broker: ${who%%:*} refused with ringmq passwd's file: exit $rc, '$got'; log: $(tail -n 3 "$mlog" | tr '\n' ' ')"
            fi
        done
        rc=0
        got="$(timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$mport" -u "$WRITER" -P "$WRITER_PW-wrong" \
            -t "secure/mosquitto-broker/$$" -q 1 -m "hello" 2>&1)" || rc=$?
        if [ "$rc" -eq 5 ]; then
            pass "mosquitto broker: a wrong password refused with the same file (exit 5)"
        else
            fail "mosquitto broker: a wrong password: exit $rc (want 5), '$got'"
        fi
    else
        fail "mosquitto did not start: $(tail -n 5 "$mlog" | tr '\n' ' ')"
    fi
    stop_pid "$mosquitto_pid"
fi

# --- TLS and WebSockets: openssl certificates, real clients (scripts/interop_tls.sh) -------

. "$root/scripts/interop_tls.sh"

# --- the broker is still well ----------------------------------------------------------------

if kill -0 "$broker_pid" 2>/dev/null; then
    pass "ringmq still running after every round trip"
else
    fail "ringmq exited during the checks; log tail: $(tail -n 5 "$log" | tr '\n' ' ')"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
