# TLS and WebSockets checks of scripts/interop.sh, sourced by it (it provides $bin, $work,
# $root, pass, fail, stop_pid, STEP_TIMEOUT, COUNT and MQTTJS_VERSION). Certificates are made here with openssl, for this run
# only: a CA, a server certificate for 127.0.0.1, client certificates with CN client-1
# and client-2. One ringmq with three TLS listeners (per_listener_settings true):
#   1. certfile/keyfile only: mosquitto_pub/mosquitto_sub with --cafile at MQTT 3.1.1 and
#      5.0, and paho-mqtt over TLS;
#   2. require_certificate true: --cert/--key delivers; without a certificate the client
#      is refused;
#   3. require_certificate and use_identity_as_username true, allow_anonymous false and
#      an ACL for user client-1: client-1's certificate delivers with no user name in
#      CONNECT; client-2's publish is outside its rights and is not delivered;
#   4. protocol websockets: MQTT.js's whole interop suite (scripts/interop_mqttjs.js)
#      over ws://, and paho-mqtt over WebSockets;
#   5. protocol websockets with certfile/keyfile: MQTT.js's suite over wss://;
#   6. use_subject_as_username with an ACL naming the subject as OpenSSL prints it
#      (`openssl x509 -subject -nameopt RFC2253`, escapes included): it delivers;
#   and a web page in headless Chromium using MQTT.js over ws:// (listener 4).

tls_dir="$work/tls"
tls_pid=""
mkdir -p "$tls_dir"

tls_certificates() {
    local d="$tls_dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=ringmq interop CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
    for cn in client-1 client-2 client+3; do
        local subj="/O=ringmq interop/CN=$cn"
        # A subject with characters RFC 2253 escapes, for use_subject_as_username.
        [ "$cn" = "client+3" ] && subj='/C=GB/O=Acme, Ltd/CN=client\+3'
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subj" \
            -keyout "$d/$cn.key" -out "$d/$cn.csr" 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >"$d/$cn.ext"
        openssl x509 -req -in "$d/$cn.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
            -days 2 -extfile "$d/$cn.ext" -out "$d/$cn.crt" 2>/dev/null
    done
}

# The n-th port ringmq logs it bound (listeners in the file's order).
tls_port() { # log n
    sed -n 's/.*Opening ipv4 listen socket on 127\.0\.0\.1:\([0-9]*\)\..*/\1/p' "$1" | sed -n "${2}p"
}

# Subscribes, publishes COUNT messages at QoS 1 and counts what arrived.
# tls_roundtrip NAME PORT PROTOCOL SUB_ARGS PUB_ARGS (the ARGS as one string each)
tls_roundtrip() {
    local name="$1" p="$2" v="$3" sub_args="$4" pub_args="$5"
    local topic="tls/id/$name/$$" out="$tls_dir/$name.out" i
    # shellcheck disable=SC2086
    timeout "$STEP_TIMEOUT" mosquitto_sub -h 127.0.0.1 -p "$p" -V "mqttv$v" -q 1 -t "$topic" -C "$COUNT" \
        $sub_args >"$out" 2>"$out.err" &
    local sub=$!
    sleep 0.5
    for i in $(seq "$COUNT"); do
        # shellcheck disable=SC2086
        timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$p" -V "mqttv$v" -q 1 -t "$topic" -m "m$i" \
            $pub_args 2>>"$out.err" || true
    done
    wait "$sub" 2>/dev/null || true
    local got
    got="$(grep -c '^m' "$out" || true)"
    if [ "$got" -eq "$COUNT" ]; then
        pass "TLS $name (mqtt$v): $COUNT/$COUNT delivered"
    else
        fail "TLS $name (mqtt$v): $got/$COUNT delivered; $(head -c 300 "$out.err" | tr '\n' ' ')"
    fi
}

if ! tls_certificates; then
    fail "TLS: openssl could not make the test certificates"
else
    d="$tls_dir"
    printf 'user client-1\ntopic readwrite tls/id/#\n' >"$d/acl"
    subject="$(openssl x509 -in "$d/client+3.crt" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')"
    printf 'user %s\ntopic readwrite tls/id/#\n' "$subject" >"$d/subject.acl"
    cat >"$d/ringmq.conf" <<CONF
per_listener_settings true
listener 0 127.0.0.1
certfile $d/server.crt
keyfile $d/server.key
allow_anonymous true
listener 0 127.0.0.1
certfile $d/server.crt
keyfile $d/server.key
cafile $d/ca.crt
require_certificate true
allow_anonymous true
listener 0 127.0.0.1
certfile $d/server.crt
keyfile $d/server.key
cafile $d/ca.crt
require_certificate true
use_identity_as_username true
allow_anonymous false
acl_file $d/acl
listener 0 127.0.0.1
protocol websockets
allow_anonymous true
listener 0 127.0.0.1
protocol websockets
certfile $d/server.crt
keyfile $d/server.key
allow_anonymous true
listener 0 127.0.0.1
certfile $d/server.crt
keyfile $d/server.key
cafile $d/ca.crt
require_certificate true
use_subject_as_username true
allow_anonymous false
acl_file $d/subject.acl
CONF
    tls_log="$d/ringmq.log"
    "$bin" -v --cores 4 -c "$d/ringmq.conf" 2>"$tls_log" &
    tls_pid=$!
    for _ in $(seq 100); do
        [ -n "$(tls_port "$tls_log" 6)" ] && break
        kill -0 "$tls_pid" 2>/dev/null || break
        sleep 0.1
    done
    plain_port="$(tls_port "$tls_log" 1)"
    mutual_port="$(tls_port "$tls_log" 2)"
    identity_port="$(tls_port "$tls_log" 3)"
    ws_port="$(tls_port "$tls_log" 4)"
    wss_port="$(tls_port "$tls_log" 5)"
    subject_port="$(tls_port "$tls_log" 6)"
    if [ -z "$subject_port" ]; then
        fail "TLS: ringmq did not start: $(tail -n 5 "$tls_log" | tr '\n' ' ')"
    else
        echo "ringmq with TLS (pid $tls_pid) on 127.0.0.1:$plain_port, :$mutual_port (mTLS), :$identity_port (identity), :$ws_port (ws), :$wss_port (wss)"
        ca="--cafile $d/ca.crt"
        c1="$ca --cert $d/client-1.crt --key $d/client-1.key"
        for v in 311 5; do
            tls_roundtrip "cafile" "$plain_port" "$v" "$ca" "$ca"
            tls_roundtrip "mtls" "$mutual_port" "$v" "$c1" "$c1"
            tls_roundtrip "identity" "$identity_port" "$v" "$c1" "$c1"
            c3="$ca --cert $d/client+3.crt --key $d/client+3.key"
            tls_roundtrip "subject" "$subject_port" "$v" "$c3" "$c3"
        done
        # No certificate where one is required: refused by the handshake.
        for p in "$mutual_port" "$identity_port"; do
            rc=0
            got="$(timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$p" $ca -q 1 -t "tls/none" -m x 2>&1)" || rc=$?
            if [ "$rc" -ne 0 ]; then
                pass "TLS: no client certificate on port $p refused (exit $rc)"
            else
                fail "TLS: no client certificate on port $p was let in: '$got'"
            fi
        done
        # client-2 is a user with no rule: its publish is dropped, client-1 sees nothing.
        out="$d/identity-deny.out"
        timeout 5 mosquitto_sub -h 127.0.0.1 -p "$identity_port" -q 1 -t "tls/id/deny" -W 3 $c1 >"$out" 2>/dev/null &
        sub=$!
        sleep 0.5
        timeout "$STEP_TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "$identity_port" -q 1 -t "tls/id/deny" -m "from-2" \
            $ca --cert "$d/client-2.crt" --key "$d/client-2.key" 2>/dev/null || true
        wait "$sub" 2>/dev/null || true
        if grep -q from-2 "$out"; then
            fail "TLS identity: client-2's publish outside its ACL was delivered"
        else
            pass "TLS identity: client-2 (CN as user name) held to its ACL: its publish not delivered"
        fi
        # paho-mqtt over TLS and over WebSockets, at 3.1.1 and 5.0.
        for run in tls:311 tls:5 websockets:311 websockets:5; do
            transport="${run%%:*}" v="${run#*:}"
            [ "$transport" = tls ] && p="$plain_port" || p="$ws_port"
            rc=0
            got="$(timeout "$STEP_TIMEOUT" python3 - "$p" "$d/ca.crt" "$v" "$transport" <<'PY' 2>&1
import sys, threading
import paho.mqtt.client as mqtt
port, ca, v, transport = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
proto = mqtt.MQTTv5 if v == "5" else mqtt.MQTTv311
got, subscribed = threading.Event(), threading.Event()
def client(name):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-{transport}-{name}-{v}", protocol=proto,
                    transport="websockets" if transport == "websockets" else "tcp")
    if transport == "tls":
        c.tls_set(ca_certs=ca)
    else:
        c.ws_set_options(path="/mqtt")
    return c
sub = client("sub")
sub.on_subscribe = lambda *a: subscribed.set()
sub.on_message = lambda c, u, m: m.payload == b"over tls" and got.set()
sub.connect("127.0.0.1", port)
sub.loop_start()
sub.subscribe("tls/paho", qos=1)
assert subscribed.wait(10), "no SUBACK"
pub = client("pub")
pub.connect("127.0.0.1", port)
pub.loop_start()
pub.publish("tls/paho", b"over tls", qos=1).wait_for_publish(10)
assert got.wait(10), "nothing delivered"
print("ok")
PY
)" || rc=$?
            if [ "$rc" -eq 0 ] && [ "$got" = "ok" ]; then
                pass "paho-mqtt over $transport (mqtt$v): delivered"
            else
                fail "paho-mqtt over $transport (mqtt$v): exit $rc, $(printf '%s' "$got" | tail -n 3 | tr '\n' ' ')"
            fi
        done
        # MQTT.js's whole suite over ws:// and wss:// (the CA trusted through
        # NODE_EXTRA_CA_CERTS), installed as interop.sh's MQTT.js section installs it.
        if [ -d "$work/mqttjs/node_modules/mqtt" ] ||
            timeout 300 npm install --prefix "$work/mqttjs" --no-audit --no-fund --silent "mqtt@$MQTTJS_VERSION" \
                >"$work/npm-ws.log" 2>&1; then
            for url in "ws://127.0.0.1:$ws_port/mqtt" "wss://127.0.0.1:$wss_port/mqtt"; do
                rc=0
                out="$(NODE_EXTRA_CA_CERTS="$d/ca.crt" NODE_PATH="$work/mqttjs/node_modules" \
                    timeout $((STEP_TIMEOUT * 4)) node "$root/scripts/interop_mqttjs.js" "$url" "$COUNT" 2>&1)" || rc=$?
                while IFS= read -r line; do
                    case "$line" in
                        PASS\ *) pass "${line#PASS } over ${url%%:*}" ;;
                        FAIL\ *) fail "${line#FAIL } over ${url%%:*}" ;;
                    esac
                done <<<"$out"
                if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then
                    fail "mqtt.js over ${url%%:*}: node exited $rc: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
                fi
            done
        else
            fail "mqtt.js over WebSockets: npm install mqtt@$MQTTJS_VERSION failed"
        fi
        # A web page in a real browser: headless Chromium (Debian's chromium, installed
        # when missing where apt-get can) opens scripts/interop_browser/page.html, whose
        # MQTT.js (the package's browser bundle) subscribes and publishes over ws://; the
        # result is read out of the DOM Chromium dumps.
        if ! command -v chromium >/dev/null 2>&1; then
            timeout 900 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
                >"$work/chromium-install.log" 2>&1 || true
        fi
        if ! command -v chromium >/dev/null 2>&1; then
            fail "browser: chromium is not installed and could not be: $(tail -n 2 "$work/chromium-install.log" | tr '\n' ' ')"
        elif [ ! -f "$work/mqttjs/node_modules/mqtt/dist/mqtt.min.js" ]; then
            fail "browser: MQTT.js's browser bundle is missing"
        else
            page="$work/browser"
            mkdir -p "$page"
            cp "$root/scripts/interop_browser/page.html" "$work/mqttjs/node_modules/mqtt/dist/mqtt.min.js" "$page/"
            # Headless Chromium runs the page on virtual time, which can run ahead of the
            # real round trips on a busy machine: up to three tries, each with its own
            # broker-side client ids (the page makes a random topic).
            line=""
            for _ in 1 2 3; do
                dom="$(timeout 60 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$page/profile" \
                    --virtual-time-budget=10000 --dump-dom "file://$page/page.html?url=ws://127.0.0.1:$ws_port/mqtt" \
                    2>"$page/chromium.log" || true)"
                line="$(sed -n 's/.*<pre id="result">\([^<]*\)<\/pre>.*/\1/p' <<<"$dom" | head -n1)"
                case "$line" in PASS\ *) break ;; esac
            done
            case "$line" in
                PASS\ *) pass "${line#PASS } (headless Chromium $(chromium --version 2>/dev/null | awk '{print $2}'))" ;;
                *) fail "browser: '${line:-no result}'; $(tail -n 3 "$page/chromium.log" | tr '\n' ' ')" ;;
            esac
        fi
        if kill -0 "$tls_pid" 2>/dev/null; then
            pass "TLS: ringmq still running after the TLS checks"
        else
            fail "TLS: ringmq exited: $(tail -n 5 "$tls_log" | tr '\n' ' ')"
        fi
    fi
    stop_pid "$tls_pid"
fi
