#!/usr/bin/env python3
"""A login storm: CONNECTs with a user name and password, alternately right and wrong, at a
fixed rate from several threads, each read to its CONNACK and closed. For
scripts/login-storm.sh; standard library only (raw MQTT 3.1.1 packets).

    login_storm.py --port P --user U --password RIGHT --rate 300 --seconds 10

Prints one JSON line: attempts, accepted (CONNACK 0), refused (CONNACK 5), errors, and
the CONNACK latency percentiles in milliseconds.
"""
import argparse
import json
import socket
import struct
import threading
import time


def encode_str(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, user: str, password: str) -> bytes:
    # MQTT 3.1.1 CONNECT: clean session, user name and password flags, keepalive 10 s.
    variable = encode_str(b"MQTT") + bytes([4, 0x02 | 0x80 | 0x40]) + struct.pack("!H", 10)
    payload = encode_str(client_id.encode()) + encode_str(user.encode()) + encode_str(password.encode())
    body = variable + payload
    return bytes([0x10]) + remaining_length(len(body)) + body


def attempt(port: int, client_id: str, user: str, password: str, timeout: float):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(connect_packet(client_id, user, password))
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            if not chunk:
                raise ConnectionError("closed before CONNACK")
            ack += chunk
    return ack[3], (time.monotonic() - start) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()

    lock = threading.Lock()
    counts = {"attempts": 0, "accepted": 0, "refused": 0, "errors": 0}
    latencies = []
    interval = args.threads / args.rate
    deadline = time.monotonic() + args.seconds

    def worker(w: int):
        n = 0
        next_at = time.monotonic() + w * interval / args.threads
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
            right = n % 2 == 0
            password = args.password if right else args.password + "-wrong"
            try:
                code, ms = attempt(args.port, f"storm-{w}-{n}", args.user, password, 5.0)
                with lock:
                    counts["attempts"] += 1
                    counts["accepted" if code == 0 else "refused"] += 1
                    latencies.append(ms)
            except OSError:
                with lock:
                    counts["attempts"] += 1
                    counts["errors"] += 1
            n += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3) if latencies else None

    counts.update({"seconds": args.seconds, "connack_ms_p50": pct(0.5), "connack_ms_p99": pct(0.99)})
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
