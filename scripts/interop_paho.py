#!/usr/bin/env python3
"""Checks ringmq with Eclipse Paho (paho-mqtt 2.x).

    interop_paho.py --port PORT --protocol 311|5 --qos 0|1|2 [--count N] [--timeout SECS]
    interop_paho.py --port PORT --protocol 5 --case CASE [--count N] [--timeout SECS]

The default case, `roundtrip`: a subscriber connects and subscribes at the QoS; once its
SUBACK is in, a publisher connects and publishes QoS 0 warm-up messages until the
subscriber sees one (so the check does not depend on how fast the broker's shards learn
of the subscription), then N messages at the QoS. Passes when every message arrives once,
in order, at that QoS, with RETAIN clear.

MQTT 5 cases (QoS 1, same warm-up):
  topic-alias       the publisher sends topic aliases (topic, then empty topic + alias);
                    the subscriber allows 5 outbound aliases and resolves the ones the
                    broker sends. Every message must resolve to its topic, and the broker
                    must have used an alias at least once.
  shared            two members of $share/<group>/<topic>: each message reaches exactly
                    one of them, and both get some.
  message-expiry    a live message carries its Message Expiry Interval; for a persistent
                    session offline 2.5 s, a message with 1 s expiry is dropped and one
                    with 60 s arrives with at most 58 s left.
  request-response  a requester sends requests with Response Topic and Correlation Data;
                    a responder answers on the response topic with the same correlation
                    data; every answer must match its request.
  user-properties   user properties (repeated keys, non-ASCII), content type and payload
                    format indicator arrive unchanged and in order.

Access control, with a password file and an ACL (scripts/interop.sh's secured phase):

    interop_paho.py --port PORT --protocol 311|5 --case secured \
        --writer USER:PASSWORD --reader USER:PASSWORD [--timeout SECS]

The ACL gives the writer `readwrite secure/#` and `write private/#`, the reader
`read secure/#` and `write secure/reader/#`; anonymous clients are refused. Checks, at the
protocol given:
  - the writer's name with a wrong password, and no user name at all, are refused: CONNACK
    5 (3.1.1, read off the wire through Paho's log) or 0x87 Not authorized (5.0);
  - the reader's one SUBSCRIBE for `private/RUN/x` (never readable) and `#` (partly
    readable) gets SUBACK [0x80 (3.1.1) or 0x87 (5.0), 1];
  - deliveries through `#` are filtered: the writer's `private/RUN/x` never reaches the
    reader, its `secure/RUN/ok` does;
  - the reader's QoS 1 PUBLISH to `secure/RUN/ro` (read only) and the writer's to
    `$SYS/RUN` are acknowledged and dropped at 3.1.1, refused with PUBACK 0x87 at 5.0,
    and neither is delivered (the reader's own `secure/reader/RUN` marker, sent after
    them, arrives alone).

Prints one PASS or FAIL line and exits 0 on PASS. Every wait is bounded by --timeout.
"""

import argparse
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

WARM_UP = "warm-up"

V5_CASES = ["topic-alias", "shared", "message-expiry", "request-response", "user-properties"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--protocol", choices=["311", "5"], required=True)
    ap.add_argument("--qos", type=int, choices=[0, 1, 2], default=1)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--case", choices=["roundtrip", "secured"] + V5_CASES, default="roundtrip")
    ap.add_argument("--writer", help="USER:PASSWORD (--case secured)")
    ap.add_argument("--reader", help="USER:PASSWORD (--case secured)")
    args = ap.parse_args()
    if args.case == "roundtrip":
        return roundtrip(args)
    if args.case == "secured":
        return secured(args)
    label = f"paho v5 {args.case}"
    if args.protocol != "5":
        print(f"FAIL {label}: an MQTT 5 case needs --protocol 5")
        return 1
    check = V5Check(args, label)
    try:
        return {
            "topic-alias": check.topic_alias,
            "shared": check.shared,
            "message-expiry": check.message_expiry,
            "request-response": check.request_response,
            "user-properties": check.user_properties,
        }[args.case]()
    except Exception as e:  # a refused connection, a socket error, a paho error
        return check.fail(f"{type(e).__name__}: {e}")
    finally:
        check.close_all()


def roundtrip(args) -> int:
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


def secured(args) -> int:
    v5 = args.protocol == "5"
    label = f"paho v{args.protocol} secured"
    if not args.writer or not args.reader:
        print(f"FAIL {label}: --case secured needs --writer and --reader USER:PASSWORD")
        return 1
    deadline = time.monotonic() + args.timeout
    protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    refused_sub = 0x87 if v5 else 0x80
    run = uuid.uuid4().hex[:8]
    writer_name, writer_pw = args.writer.split(":", 1)
    reader_name, reader_pw = args.reader.split(":", 1)
    clients = []

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    def wait(cond, what: str):
        while True:
            v = cond()
            if v:
                return v
            if left() == 0:
                raise TimeoutError(what)
            time.sleep(0.01)

    class Conn:
        """One Paho client: its CONNACK (the code on the wire), SUBACKs, acks, messages."""

        def __init__(self, name, user=None, password=None):
            self.name = name
            self.lock = threading.Lock()
            self.connack = None  # 3.1.1: the return code; 5.0: the reason code's value
            self.subacks, self.acks, self.messages = {}, {}, []
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-{name}-{run}", protocol=protocol,
                            reconnect_on_failure=False)
            if user is not None:
                c.username_pw_set(user, password)
            c.on_connect = self._on_connect
            c.on_log = self._on_log
            c.on_subscribe = self._on_subscribe
            c.on_publish = self._on_publish
            c.on_message = self._on_message
            self.client = c
            clients.append(self)

        def _on_log(self, client, userdata, level, buf):
            # Paho 2 maps a 3.1.1 return code to a 5.0 reason code in on_connect; its log
            # line has the byte the broker sent.
            if not v5 and buf.startswith("Received CONNACK ("):
                self.connack = int(buf.rstrip(")").split(",")[-1])

        def _on_connect(self, client, userdata, flags, reason_code, properties):
            if v5:
                self.connack = reason_code.value

        def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
            with self.lock:
                self.subacks[mid] = [int(getattr(r, "value", r)) for r in reason_codes]

        def _on_publish(self, client, userdata, mid, reason_code, properties):
            with self.lock:
                self.acks[mid] = int(getattr(reason_code, "value", reason_code))

        def _on_message(self, client, userdata, msg):
            with self.lock:
                self.messages.append(msg.topic)

        def connect(self):
            if v5:
                self.client.connect(args.host, args.port, keepalive=30, clean_start=True)
            else:
                self.client.connect(args.host, args.port, keepalive=30)
            self.client.loop_start()
            wait(lambda: self.connack is not None, f"{self.name}: no CONNACK")
            return self.connack

        def subscribe(self, filters):
            _, mid = self.client.subscribe([(f, 1) for f in filters])
            return wait(lambda: self.subacks.get(mid), f"{self.name}: no SUBACK")

        def publish(self, topic, payload):
            info = self.client.publish(topic, payload, qos=1)
            return wait(lambda: self.acks.get(info.mid, -1) + 1, f"{self.name}: no PUBACK for {topic}") - 1

        def got(self):
            with self.lock:
                return list(self.messages)

    def close_all():
        for c in clients:
            try:
                c.client.disconnect()
                c.client.loop_stop()
            except Exception:
                pass

    def fail(why: str) -> int:
        print(f"FAIL {label}: {why}")
        return 1

    refused_connack = 0x87 if v5 else 5
    try:
        bad = Conn("bad-password", writer_name, writer_pw + "-wrong").connect()
        if bad != refused_connack:
            return fail(f"a wrong password got CONNACK {bad:#x}, want {refused_connack:#x}")
        anon = Conn("anonymous").connect()
        if anon != refused_connack:
            return fail(f"no user name got CONNACK {anon:#x}, want {refused_connack:#x}")

        reader = Conn("reader", reader_name, reader_pw)
        if (rc := reader.connect()) != 0:
            return fail(f"the reader's right password got CONNACK {rc:#x}")
        granted = reader.subscribe([f"private/{run}/x", "#"])
        if granted != [refused_sub, 1]:
            return fail(f"SUBACK for [private/{run}/x, #] was {granted}, want [{refused_sub:#x}, 1]")
        writer = Conn("writer", writer_name, writer_pw)
        if (rc := writer.connect()) != 0:
            return fail(f"the writer's right password got CONNACK {rc:#x}")

        # Warm-ups until the reader's `#` sees the writer's messages on every shard.
        warm = f"secure/{run}/warm"
        while warm not in reader.got():
            if left() == 0:
                return fail("no warm-up message reached the reader's #")
            writer.client.publish(warm, WARM_UP, qos=0)
            time.sleep(0.02)

        # Deliveries through `#`: what the reader may not read is filtered out.
        for topic in (f"private/{run}/x", f"secure/{run}/ok"):
            if (rc := writer.publish(topic, b"from the writer")) != 0:
                return fail(f"the writer's PUBLISH to {topic} got PUBACK {rc:#x}, want 0")
        wait(lambda: f"secure/{run}/ok" in reader.got(), f"secure/{run}/ok did not reach the reader")

        # Publishes the ACL refuses: 3.1.1 acknowledged and dropped, 5.0 PUBACK 0x87.
        want_ack = 0x87 if v5 else 0
        for who, topic in ((reader, f"secure/{run}/ro"), (writer, f"$SYS/{run}")):
            if (rc := who.publish(topic, b"refused")) != want_ack:
                return fail(f"the {who.name}'s PUBLISH to {topic} got PUBACK {rc:#x}, want {want_ack:#x}")
        marker = f"secure/reader/{run}"
        if (rc := reader.publish(marker, b"marker")) != 0:
            return fail(f"the reader's PUBLISH to {marker} got PUBACK {rc:#x}, want 0")
        wait(lambda: marker in reader.got(), f"{marker} did not reach the reader")
        time.sleep(0.2)
        got = [t for t in reader.got() if t != warm]
        if got != [f"secure/{run}/ok", marker]:
            return fail(f"the reader's # got {got}, want only secure/{run}/ok and {marker}")
        return print(f"PASS {label}: wrong password and anonymous CONNACK {refused_connack:#x}; "
                     f"SUBACK [{refused_sub:#x}, 1] for [private/..., #]; # filtered to what the "
                     f"reader may read; refused PUBLISHes acked with {want_ack:#x} and dropped") or 0
    except Exception as e:  # a refused connection, a socket error, a paho error
        return fail(f"{type(e).__name__}: {e}")
    finally:
        close_all()


def publish_props(**fields) -> Properties:
    """PUBLISH properties from keyword arguments (paho's property names)."""
    p = Properties(PacketTypes.PUBLISH)
    for name, value in fields.items():
        setattr(p, name, value)
    return p


def prop(msg, name, default=None):
    """A property of a received message, or `default` when absent."""
    return getattr(msg.properties, name, default) if msg.properties is not None else default


class Peer:
    """One MQTT 5 Paho client with its loop thread; records what arrives."""

    def __init__(self, check, name: str, client_id: str = None):
        self.check = check
        self.name = name
        self.client_id = client_id or f"paho-{name}-{check.run}"
        self.lock = threading.Lock()
        self.messages = []
        self.connected = threading.Event()
        self.session_present = None
        self.subacks = {}
        self.acked = set()
        self.on_message = None  # extra per-message hook (runs in the loop thread)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        self.client = c
        check.peers.append(self)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            self.session_present = flags.session_present
            self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.lock:
            self.subacks[mid] = [int(getattr(r, "value", r)) for r in reason_codes]

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append(msg)
        if self.on_message is not None and msg.payload != WARM_UP.encode():
            self.on_message(msg)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self.lock:
            self.acked.add(mid)

    def connect(self, clean_start=True, properties=None):
        self.client.connect(self.check.args.host, self.check.args.port, keepalive=30,
                            clean_start=clean_start, properties=properties)
        self.client.loop_start()
        if not self.connected.wait(self.check.left()):
            raise RuntimeError(f"{self.name}: no successful CONNACK")

    def subscribe(self, topic: str, qos: int = 1):
        _, mid = self.client.subscribe(topic, qos=qos)
        granted = self.check.wait(lambda: self.subacks.get(mid), f"{self.name}: no SUBACK")
        if granted != [qos]:
            raise RuntimeError(f"{self.name}: SUBACK for {topic} granted {granted}, asked for {qos}")

    def publish(self, topic: str, payload, qos: int = 1, properties=None, wait=True):
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        if wait and qos > 0:
            self.check.wait(lambda: info.mid in self.acked, f"{self.name}: publish to {topic!r} not acknowledged")
        return info

    def received(self):
        """The messages so far, warm-ups left out."""
        with self.lock:
            return [m for m in self.messages if m.payload != WARM_UP.encode()]

    def saw_warm_up(self) -> bool:
        with self.lock:
            return any(m.payload == WARM_UP.encode() for m in self.messages)

    def close(self):
        try:
            self.client.disconnect()
            self.client.loop_stop()
        except Exception:
            pass


class V5Check:
    """The MQTT 5 cases; each returns 0 (PASS) or 1 (FAIL) and prints one line."""

    def __init__(self, args, label: str):
        self.args = args
        self.label = label
        self.deadline = time.monotonic() + args.timeout
        self.run = uuid.uuid4().hex[:8]
        self.base = f"interop/paho/v5/{args.case}/{self.run}"
        self.peers = []

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def fail(self, why: str) -> int:
        print(f"FAIL {self.label}: {why}")
        return 1

    def ok(self, what: str) -> int:
        print(f"PASS {self.label}: {what}")
        return 0

    def close_all(self):
        for p in self.peers:
            p.close()

    def wait(self, cond, what: str):
        """Polls `cond` until it returns something truthy; raises on the deadline."""
        while True:
            v = cond()
            if v:
                return v
            if self.left() == 0:
                raise TimeoutError(what)
            time.sleep(0.01)

    def warm_up(self, publisher: Peer, topic: str, *subscribers: Peer):
        """QoS 0 warm-ups on `topic` until every subscriber has seen one."""
        while not all(s.saw_warm_up() for s in subscribers):
            if self.left() == 0:
                raise TimeoutError(f"no warm-up message reached {[s.name for s in subscribers]}")
            publisher.publish(topic, WARM_UP, qos=0)
            time.sleep(0.02)

    def wait_count(self, peers, n: int, what: str):
        self.wait(lambda: sum(len(p.received()) for p in peers) >= n, what)
        time.sleep(0.2)  # anything extra (a duplicate) would show up by now

    # --- the cases -------------------------------------------------------------------------

    def topic_alias(self) -> int:
        n = self.args.count
        sub = Peer(self, "alias-sub")
        allow = Properties(PacketTypes.CONNECT)
        allow.TopicAliasMaximum = 5
        sub.connect(properties=allow)
        sub.subscribe(f"{self.base}/#")
        pub = Peer(self, "alias-pub")
        pub.connect()
        # A warm-up topic of its own: it takes one of the subscriber's aliases, too.
        self.warm_up(pub, f"{self.base}/warm", sub)
        topics = [f"{self.base}/a", f"{self.base}/b"]
        for i in range(n):
            alias = i % 2 + 1
            topic = topics[alias - 1] if i < 2 else ""  # the topic once, then the alias alone
            pub.publish(topic, f"alias {i}", properties=publish_props(TopicAlias=alias))
        self.wait_count([sub], n, "not every message arrived")
        aliases = {}
        resolved, via_alias = [], 0
        with sub.lock:
            every = list(sub.messages)
        for m in every:  # warm-ups included: they may set an alias
            alias = prop(m, "TopicAlias")
            if m.topic:
                if alias is not None:
                    aliases[alias] = m.topic
                topic = m.topic
            elif alias in aliases:
                topic = aliases[alias]
                via_alias += 1
            else:
                return self.fail(f"PUBLISH with an empty topic and unknown alias {alias}")
            if m.payload != WARM_UP.encode():
                resolved.append((topic, m.payload.decode()))
        want = [(topics[i % 2], f"alias {i}") for i in range(n)]
        if resolved != want:
            return self.fail(f"got {resolved[:4]}..., want {want[:4]}... ({len(resolved)} of {n})")
        if via_alias == 0:
            return self.fail("the broker never used an outbound topic alias (Topic Alias Maximum 5)")
        return self.ok(f"{n}/{n} messages published with aliases; {via_alias} delivered by alias")

    def shared(self) -> int:
        n = self.args.count
        topic = f"{self.base}/t"
        members = [Peer(self, f"member-{k}") for k in range(2)]
        for m in members:
            m.connect()
            m.subscribe(f"$share/paho{self.run}/{topic}")
        pub = Peer(self, "shared-pub")
        pub.connect()
        self.warm_up(pub, topic, *members)
        for i in range(n):
            pub.publish(topic, f"shared {i}")
        self.wait_count(members, n, "not every message reached a member")
        got = [[m.payload.decode() for m in p.received()] for p in members]
        every = got[0] + got[1]
        if sorted(every) != sorted(f"shared {i}" for i in range(n)) or len(every) != n:
            dup = sorted({x for x in every if every.count(x) > 1})
            return self.fail(f"{len(every)} deliveries of {n} messages; duplicates {dup[:5]}")
        if not all(got):
            return self.fail(f"one member got everything: {[len(g) for g in got]}")
        return self.ok(f"{n}/{n} messages, each to one member ({len(got[0])} + {len(got[1])})")

    def message_expiry(self) -> int:
        # Live: the interval is forwarded (with what is left of it).
        live = Peer(self, "expiry-live")
        live.connect()
        live.subscribe(f"{self.base}/live")
        pub = Peer(self, "expiry-pub")
        pub.connect()
        self.warm_up(pub, f"{self.base}/live", live)
        pub.publish(f"{self.base}/live", "live", properties=publish_props(MessageExpiryInterval=60))
        self.wait(lambda: live.received(), "the live message did not arrive")
        left = prop(live.received()[0], "MessageExpiryInterval")
        if left is None or not 50 <= left <= 60:
            return self.fail(f"live message arrived with expiry interval {left}, want 50..60")
        # Offline: a persistent session misses the expired message only.
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = 60
        queued = f"{self.base}/queued"
        off = Peer(self, "expiry-offline")
        off.connect(clean_start=False, properties=session)
        off.subscribe(queued)
        self.warm_up(pub, queued, off)
        off.close()
        pub.publish(queued, "short", properties=publish_props(MessageExpiryInterval=1))
        pub.publish(queued, "long", properties=publish_props(MessageExpiryInterval=60))
        time.sleep(2.5)
        back = Peer(self, "expiry-back", client_id=off.client_id)
        back.connect(clean_start=False, properties=session)
        if not back.session_present:
            return self.fail("the persistent session was not resumed")
        self.wait(lambda: back.received(), "the queued message did not arrive")
        time.sleep(0.3)
        got = [(m.payload.decode(), prop(m, "MessageExpiryInterval")) for m in back.received()]
        if len(got) != 1 or got[0][0] != "long" or got[0][1] is None or not 50 <= got[0][1] <= 58:
            return self.fail(f"after 2.5 s offline got {got}; want only 'long' with 50..58 s left")
        return self.ok(f"live interval {left} s; after 2.5 s offline the 1 s message expired, "
                       f"the 60 s one arrived with {got[0][1]} s left")

    def request_response(self) -> int:
        n = self.args.count
        requests, answers = f"{self.base}/requests", f"{self.base}/answers/{self.run}"
        responder = Peer(self, "responder")
        requester = Peer(self, "requester")

        def answer(msg):
            topic = prop(msg, "ResponseTopic")
            if topic:
                reply = publish_props(CorrelationData=prop(msg, "CorrelationData"))
                responder.publish(topic, b"answer to " + msg.payload, properties=reply, wait=False)

        responder.on_message = answer
        responder.connect()
        responder.subscribe(requests)
        requester.connect()
        requester.subscribe(answers)
        self.warm_up(requester, requests, responder)
        self.warm_up(responder, answers, requester)
        sent = {}
        for i in range(n):
            corr = bytes([i % 256, 0x00, 0xFF]) + uuid.uuid4().bytes
            sent[corr] = f"request {i}"
            requester.publish(requests, sent[corr],
                              properties=publish_props(ResponseTopic=answers, CorrelationData=corr))
        self.wait_count([requester], n, "not every request was answered")
        got = {prop(m, "CorrelationData"): m.payload.decode() for m in requester.received()}
        want = {corr: f"answer to {req}" for corr, req in sent.items()}
        if got != want or len(requester.received()) != n:
            bad = [v for k, v in got.items() if want.get(k) != v]
            return self.fail(f"{len(requester.received())} answers for {n} requests; mismatched: {bad[:3]}")
        return self.ok(f"{n}/{n} answers matched their requests by correlation data")

    def user_properties(self) -> int:
        n = self.args.count
        topic = f"{self.base}/t"
        user = [("a", "1"), ("b", "2"), ("a", "3"), ("ключ", "значение"), ("empty", "")]
        sub = Peer(self, "props-sub")
        sub.connect()
        sub.subscribe(topic)
        pub = Peer(self, "props-pub")
        pub.connect()
        self.warm_up(pub, topic, sub)
        for i in range(n):
            pub.publish(topic, f"props {i}", properties=publish_props(
                UserProperty=list(user), ContentType="text/plain; charset=utf-8", PayloadFormatIndicator=1))
        self.wait_count([sub], n, "not every message arrived")
        for m in sub.received():
            got = (prop(m, "UserProperty"), prop(m, "ContentType"), prop(m, "PayloadFormatIndicator"))
            want = (user, "text/plain; charset=utf-8", 1)
            if got != want:
                return self.fail(f"{m.payload.decode()}: properties {got}, want {want}")
        if len(sub.received()) != n:
            return self.fail(f"{len(sub.received())} messages for {n}")
        return self.ok(f"{n}/{n} messages with {len(user)} user properties in order, content type and "
                       "payload format indicator unchanged")


if __name__ == "__main__":
    sys.exit(main())
