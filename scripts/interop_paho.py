#!/usr/bin/env python3
"""Publish/subscribe round trip through ringmq with Eclipse Paho (paho-mqtt 2.x).

    interop_paho.py --port PORT --protocol 311|5 --qos 0|1|2 [--count N] [--timeout SECS]

A subscriber connects and subscribes at the QoS; once its SUBACK is in, a publisher
connects and publishes QoS 0 warm-up messages until the subscriber sees one (so the
check does not depend on how fast the broker's shards learn of the subscription), then
N messages at the QoS. Passes (exit 0) when every message arrives once, in order, at
that QoS, with RETAIN clear; prints one PASS or FAIL line either way. Every wait is
bounded by --timeout.
"""

import argparse
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt

WARM_UP = "warm-up"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--protocol", choices=["311", "5"], required=True)
    ap.add_argument("--qos", type=int, choices=[0, 1, 2], required=True)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()

    label = f"paho v{args.protocol} qos{args.qos}"
    deadline = time.monotonic() + args.timeout
    protocol = mqtt.MQTTv311 if args.protocol == "311" else mqtt.MQTTv5
    run = uuid.uuid4().hex[:8]
    topic = f"interop/paho/v{args.protocol}/q{args.qos}/{run}"

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    def fail(why: str) -> int:
        print(f"FAIL {label}: {why}")
        return 1

    lock = threading.Lock()
    received = []
    sub_connected = threading.Event()
    subscribed = threading.Event()
    granted = []
    pub_connected = threading.Event()

    def on_sub_connect(client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            sub_connected.set()

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        granted.extend(reason_codes)
        subscribed.set()

    def on_message(client, userdata, msg):
        with lock:
            received.append((msg.topic, msg.payload.decode("utf-8", "replace"), msg.qos, msg.retain))

    def on_pub_connect(client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            pub_connected.set()

    def connect(client, connected):
        if protocol == mqtt.MQTTv5:
            client.connect(args.host, args.port, keepalive=30, clean_start=True)
        else:
            client.connect(args.host, args.port, keepalive=30)
        client.loop_start()
        return connected.wait(left())

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-sub-{run}", protocol=protocol)
    sub.on_connect = on_sub_connect
    sub.on_subscribe = on_subscribe
    sub.on_message = on_message
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-pub-{run}", protocol=protocol)
    pub.on_connect = on_pub_connect
    try:
        if not connect(sub, sub_connected):
            return fail("subscriber got no successful CONNACK")
        sub.subscribe(topic, qos=args.qos)
        if not subscribed.wait(left()):
            return fail("no SUBACK")
        if [int(getattr(g, "value", g)) for g in granted] != [args.qos]:
            return fail(f"SUBACK granted {granted}, asked for QoS {args.qos}")
        if not connect(pub, pub_connected):
            return fail("publisher got no successful CONNACK")

        while True:
            with lock:
                if any(r[1] == WARM_UP for r in received):
                    break
            if left() == 0:
                return fail("no warm-up message ever arrived")
            pub.publish(topic, WARM_UP, qos=0)
            time.sleep(0.02)

        infos = [pub.publish(topic, f"paho {i}", qos=args.qos) for i in range(args.count)]
        for info in infos:
            info.wait_for_publish(left())
            if not info.is_published():
                return fail(f"publish mid {info.mid} not acknowledged in time")

        want = [(topic, f"paho {i}", args.qos, False) for i in range(args.count)]
        while True:
            with lock:
                got = [r for r in received if r[1] != WARM_UP]
            if len(got) >= args.count or left() == 0:
                break
            time.sleep(0.02)
        time.sleep(0.2)  # anything extra (a duplicate) would show up by now
        with lock:
            got = [r for r in received if r[1] != WARM_UP]
        if got != want:
            missing = [w[1] for w in want if w not in got]
            return fail(f"got {len(got)} of {args.count}; missing {missing[:5]}; first wrong: "
                        f"{next((g for g, w in zip(got, want) if g != w), None)}")
        print(f"PASS {label}: {len(got)}/{args.count} messages, in order, at QoS {args.qos}")
        return 0
    except Exception as e:  # a refused connection, a socket error
        return fail(f"{type(e).__name__}: {e}")
    finally:
        for c in (pub, sub):
            try:
                c.disconnect()
                c.loop_stop()
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())
