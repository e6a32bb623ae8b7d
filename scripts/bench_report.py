#!/usr/bin/env python3
"""Builds the comparison report of a scripts/bench.sh results directory.

    scripts/bench_report.py RESULTS_DIR [--index results/README.md] [--update-readme README.md]

Reads RESULTS_DIR/meta.tsv (written by bench.sh) and every BROKER/RUN/summary.json (written by
ringmq-loadgen, with bench.sh's run.json next to it), and writes:

- RESULTS_DIR/report.md: set-up (machine, brokers, configs, pinning, removed limits), the
  headline, one table per scenario with every broker's figures and the ratios against ringmq,
  the fixed-rate latency run, the idle connections, the targets of issue 5, and every run;
- RESULTS_DIR/plots/*.svg: throughput per scenario (grouped bars, one per broker) and latency
  percentile curves per QoS, drawn from the .hgrm files (hand-written SVG, no dependencies);
- RESULTS_DIR/headline.md: the headline table, also printed on stdout;
- with --index, the index of all result directories (newest first);
- with --update-readme, the headline between the bench markers in that README.

Python 3 standard library only.
"""

import argparse
import html
import json
import math
import os
import re
import shlex
import sys

SCENARIOS = [
    ("pairs-10", "pairs, 10 publishers -> 10 subscribers (one topic each)"),
    ("pairs-100", "pairs, 100 publishers -> 100 subscribers (one topic each)"),
    ("fanin-50", "fan-in, 50 publishers -> 1 subscriber (wildcard)"),
    ("fanout-50", "fan-out, 1 publisher -> 50 subscribers (one topic)"),
    ("fanout-1000", "fan-out, 1 publisher -> 1000 subscribers (one topic)"),
]
SCEN_SHORT = {
    "pairs-10": "pairs 10",
    "pairs-100": "pairs 100",
    "fanin-50": "fan-in 50 → 1",
    "fanout-50": "fan-out 1 → 50",
    "fanout-1000": "fan-out 1 → 1000",
}
# Issue 5: ringmq against Mosquitto, delivered messages per broker CPU-second, 64 B.
HEADLINE = [
    ("pairs-10", 0, "QoS 0 pairs (10)", 35.0),
    ("fanout-50", 0, "QoS 0 fan-out (1 → 50)", 50.0),
    ("pairs-10", 1, "QoS 1 pairs (10, 20 in flight)", 20.0),
    ("fanout-50", 1, "QoS 1 fan-out (1 → 50)", 20.0),
]
COLORS = ["#1f5fa8", "#e6761b", "#2e9a3a", "#8e44ad", "#8c564b", "#c2185b", "#607d8b"]
README_START = "<!-- bench-headline:start -->"
README_END = "<!-- bench-headline:end -->"
RUN_RE = re.compile(r"^(?P<scen>[a-z]+-\d+)-q(?P<qos>\d)-(?P<size>\d+)B$")
# Prefixes of run ids outside the closed-loop matrix; latency, fleet and headline reruns
# carry their round (`latency-r2-pairs-100-q1-64B`; reports from before the rounds have
# none: round 1). A headline rerun repeats a matrix case in a later round.
KIND_RE = re.compile(r"^(?:latency|fleet|headline)-(?:r(?P<round>\d+)-)?")


# --- loading -------------------------------------------------------------------------------------


def read_meta(path):
    meta, notes = {}, []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if "\t" not in line:
                    continue
                k, v = line.split("\t", 1)
                if k == "note":
                    notes.append(v)
                else:
                    meta[k] = v
    except OSError:
        pass
    meta["notes"] = notes
    return meta


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Run:
    """One loadgen run: bench.sh's run.json and the loadgen's summary.json."""

    def __init__(self, broker, run_id, d):
        self.broker, self.id, self.dir = broker, run_id, d
        self.info = load_json(os.path.join(d, "run.json")) or {}
        self.s = load_json(os.path.join(d, "summary.json"))
        self.kind = self.info.get("kind") or self.guess_kind()
        k = KIND_RE.match(run_id)
        self.round = int(k.group("round")) if k and k.group("round") else 1
        m = RUN_RE.match(KIND_RE.sub("", run_id))
        self.scen = m.group("scen") if m else None
        self.qos = int(m.group("qos")) if m else None
        self.size = int(m.group("size")) if m else None
        rc = self.info.get("exit_code")
        if rc is None and self.s:
            rc = self.s.get("status", {}).get("exit_code")
        self.rc = rc

    def guess_kind(self):
        if self.id.startswith("conn-"):
            return "conn"
        if self.id.startswith("latency-"):
            return "latency"
        if self.id.startswith("fleet-"):
            return "fleet"
        if self.id.startswith("headline-"):
            return "headline"
        return "throughput"

    def get(self, *path):
        o = self.s
        for p in path:
            if not isinstance(o, dict) or p not in o:
                return None
            o = o[p]
        return o

    @property
    def in_rate(self):
        return self.get("messages", "sent_per_s")

    @property
    def out_rate(self):
        return self.get("messages", "delivered_per_s")

    @property
    def cpu_us(self):
        v = self.get("broker", "cpu_us_per_msg")
        return v if v and v > 0 else None

    @property
    def per_cpu_s(self):
        c = self.cpu_us
        return 1e6 / c if c else None

    def lat(self, hist, p):
        return self.get("latency_us", hist, p)

    @property
    def lg_busy(self):
        return self.get("loadgen", "busy_max_pct")

    @property
    def lg_saturated(self):
        sat = self.get("loadgen", "saturated")
        busy = self.lg_busy
        return bool(sat) or (busy is not None and busy >= 90.0)

    def loss(self):
        """'lost / dup', plus the QoS 2 packet-id reuses when there were any."""
        lost, dup = self.get("messages", "lost"), self.get("messages", "duplicated")
        s = f"{fmt_int(lost)} / {fmt_int(dup)}"
        reuse = self.get("messages", "qos2_redelivered")
        if reuse:
            s += f" ({reuse:,} id reuse²)"
        return s

    def status(self):
        if self.rc in (124, 137):
            return "TIMED OUT"
        if self.s is None:
            return f"FAILED (exit {self.rc})" if self.rc is not None else "no result"
        if self.rc == 3:
            return "**QoS 1/2 LOSS**"
        if self.rc not in (0, None):
            return f"FAILED (exit {self.rc})"
        return "OK"


def load_runs(out, brokers):
    runs = {}
    for b in brokers:
        bd = os.path.join(out, b)
        if not os.path.isdir(bd):
            continue
        for rid in sorted(os.listdir(bd)):
            d = os.path.join(bd, rid)
            if os.path.isdir(d) and (
                os.path.exists(os.path.join(d, "run.json"))
                or os.path.exists(os.path.join(d, "summary.json"))
            ):
                runs[(b, rid)] = Run(b, rid, d)
    return runs


def median(values):
    """The median of the values that are not None; None when there are none."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def latency_median(runs, broker):
    """A broker's fixed-rate rounds: (median of each corrected percentile, the round whose
    p99 is the median one (the lower of the middle two for an even count), every round by
    round number); None without a round that measured a p99."""
    rounds = sorted((r for r in runs.values() if r.kind == "latency" and r.broker == broker), key=lambda r: r.round)
    done = [r for r in rounds if r.lat("e2e_corrected", "p99") is not None]
    if not done:
        return None
    by_p99 = sorted(done, key=lambda r: r.lat("e2e_corrected", "p99"))
    middle = by_p99[(len(by_p99) - 1) // 2]
    return {p: median(r.lat("e2e_corrected", p) for r in done) for p in ("p50", "p99", "p99_9", "max")}, middle, rounds


def headline_runs(runs, broker, rid):
    """Matrix case `rid`'s runs: the matrix run, then its reruns in the later rounds."""
    reruns = sorted((r for r in runs.values() if r.kind == "headline" and r.broker == broker
                     and KIND_RE.sub("", r.id) == rid), key=lambda r: r.round)
    return [r for r in [runs.get((broker, rid))] + reruns if r]


def headline_median(runs, broker, rid):
    """Delivered msgs per broker CPU-second in matrix case `rid`: the median over its
    runs (headline_runs), and how many runs had the figure."""
    vals = [r.per_cpu_s for r in headline_runs(runs, broker, rid) if r.per_cpu_s]
    return median(vals), len(vals)


def fleet_rounds(runs, broker, qos):
    """A broker's fleet rounds at one QoS, by round number."""
    return sorted((r for r in runs.values() if r.kind == "fleet" and r.broker == broker and r.qos == qos),
                  key=lambda r: r.round)


def discover_brokers(out, meta):
    listed = meta.get("brokers", "").split()
    def has_runs(d):
        """A broker's directory holds bench.sh runs (each with a run.json); plots/ and
        scripts/profile.sh's output (profile/, profile-mosquitto/) hold none."""
        return any(os.path.exists(os.path.join(d, r, "run.json")) for r in os.listdir(d)
                   if os.path.isdir(os.path.join(d, r)))

    found = [
        b
        for b in sorted(os.listdir(out))
        if os.path.isdir(os.path.join(out, b)) and (b in listed or has_runs(os.path.join(out, b)))
    ]
    order = [b for b in listed if b in found] + [b for b in found if b not in listed]
    if "ringmq" in order:
        order.remove("ringmq")
        order.insert(0, "ringmq")
    return order


# --- formatting ------------------------------------------------------------------------------------


def fmt_rate(v):
    if v is None:
        return "—"
    return f"{v:,.0f}"


def fmt_si(v, digits=3):
    """1234567 -> '1.23 M', 440883 -> '441 k' (digits: significant digits, at least 2)."""
    if v is None:
        return "—"
    div, suf = 1.0, ""
    for d, su in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= d:
            div, suf = d, su
            break
    x = v / div
    whole = len(str(int(abs(x)))) if abs(x) >= 1 else 1
    dec = max(0, digits - whole)
    return f"{x:.{dec}f}{suf}"


def fmt_tick_count(v):
    """Axis labels: 10 k, 1 M."""
    for d, su in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if v >= d:
            return f"{v / d:g}{su}"
    return f"{v:g}"


def fmt_tick_us(v):
    """Axis labels: 50 µs, 1 ms, 200 ms, 2 s."""
    for d, su in ((1e6, " s"), (1e3, " ms")):
        if v >= d:
            return f"{v / d:g}{su}"
    return f"{v:g} µs"


def fmt_us(v):
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f} s"
    if v >= 1000:
        return f"{v / 1000:.2f} ms"
    if v >= 100:
        return f"{v:.0f} µs"
    return f"{v:.1f} µs"


def fmt_cpu(v):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def fmt_ratio(a, b):
    """a / b as '12.3×', or '—'."""
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def fmt_int(v):
    return "—" if v is None else f"{int(v):,}"


def size_label(n):
    return "1 KiB" if n == 1024 else f"{n} B"


def esc(s):
    return html.escape(str(s), quote=True)


# --- SVG ------------------------------------------------------------------------------------------


def svg_doc(w, h, body):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'font-family="sans-serif" font-size="12">\n'
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>\n' + "".join(body) + "</svg>\n"
    )


def log_ticks(lo, hi):
    """Decade ticks covering [lo, hi] (lo, hi > 0): (ymin, ymax, [ticks])."""
    a = math.floor(math.log10(lo))
    b = math.ceil(math.log10(hi))
    if b <= a:
        b = a + 1
    return 10.0**a, 10.0**b, [10.0**e for e in range(a, b + 1)]


def bar_panel(x0, y0, w, h, title, groups, series, values, unit):
    """Grouped bars, log scale. values[(group, series)] -> number or None."""
    body = []
    vals = [v for v in values.values() if v]
    body.append(
        f'<text x="{x0 + w / 2:.1f}" y="{y0 - 10}" text-anchor="middle" font-size="14" '
        f'font-weight="bold">{esc(title)}</text>\n'
    )
    left, bottom = 60, 40
    px0, py0, pw, ph = x0 + left, y0, w - left - 10, h - bottom
    body.append(f'<rect x="{px0}" y="{py0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>\n')
    if not vals:
        body.append(f'<text x="{px0 + pw / 2}" y="{py0 + ph / 2}" text-anchor="middle">no data</text>\n')
        return body
    ymin, ymax, ticks = log_ticks(min(vals), max(vals) * 1.5)

    def ypos(v):
        return py0 + ph - (math.log10(v) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin)) * ph

    for t in ticks:
        y = ypos(t)
        body.append(f'<line x1="{px0}" y1="{y:.1f}" x2="{px0 + pw}" y2="{y:.1f}" stroke="#ddd"/>\n')
        body.append(f'<text x="{px0 - 5}" y="{y + 4:.1f}" text-anchor="end">{esc(fmt_tick_count(t))}</text>\n')
    body.append(
        f'<text x="{x0 + 14}" y="{py0 + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {x0 + 14} {py0 + ph / 2})">{esc(unit)} (log)</text>\n'
    )
    gw = pw / max(1, len(groups))
    bw = min(34.0, (gw - 14) / max(1, len(series)))
    for gi, g in enumerate(groups):
        gx = px0 + gi * gw + (gw - bw * len(series)) / 2
        for si, s in enumerate(series):
            v = values.get((g, s))
            x = gx + si * bw
            if v:
                y = ypos(v)
                body.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{py0 + ph - y:.1f}" '
                    f'fill="{COLORS[si % len(COLORS)]}"><title>{esc(s)} {esc(g)}: {v:,.0f}</title></rect>\n'
                )
                body.append(
                    f'<text x="{x + (bw - 2) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                    f'font-size="9">{esc(fmt_si(v, 2))}</text>\n'
                )
            else:
                body.append(
                    f'<text x="{x + (bw - 2) / 2:.1f}" y="{py0 + ph - 4:.1f}" text-anchor="middle" '
                    f'font-size="9" fill="#c00">n/a</text>\n'
                )
        body.append(
            f'<text x="{px0 + gi * gw + gw / 2:.1f}" y="{py0 + ph + 16}" text-anchor="middle">{esc(g)}</text>\n'
        )
    return body


def legend(x, y, names, dashed=None):
    body = []
    for i, n in enumerate(names):
        color = COLORS[i % len(COLORS)]
        body.append(f'<rect x="{x + i * 130}" y="{y - 10}" width="14" height="10" fill="{color}"/>\n')
        body.append(f'<text x="{x + i * 130 + 18}" y="{y}">{esc(n)}</text>\n')
    if dashed:
        body.append(f'<text x="{x}" y="{y + 16}" fill="#555">{esc(dashed)}</text>\n')
    return body


def throughput_svg(scen, brokers, runs, sizes):
    groups, vals_out, vals_eff = [], {}, {}
    for size in sizes:
        for q in (0, 1, 2):
            rid = f"{scen}-q{q}-{size}B"
            if not any((b, rid) in runs for b in brokers):
                continue
            g = f"QoS {q}, {size_label(size)}"
            groups.append(g)
            for b in brokers:
                r = runs.get((b, rid))
                if r and r.s:
                    vals_out[(g, b)] = r.out_rate or None
                    vals_eff[(g, b)] = r.per_cpu_s
    if not groups:
        return None
    pw = max(380, 80 + len(groups) * (len(brokers) * 30 + 24))
    w, h = 2 * pw + 40, 420
    body = [
        f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">'
        f"{esc(SCEN_SHORT.get(scen, scen))}: closed loop (--rate max)</text>\n"
    ]
    body += bar_panel(10, 70, pw, 300, "delivered messages / s", groups, brokers, vals_out, "msgs/s")
    body += bar_panel(pw + 30, 70, pw, 300, "delivered messages per broker CPU-second", groups, brokers, vals_eff, "msgs per CPU-s")
    body += legend(70, h - 12, brokers)
    return svg_doc(w, h, body)


def read_hgrm(path):
    """[(percentile, value_us)] from an HdrHistogram percentile distribution."""
    pts = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3 or line.lstrip().startswith("#"):
                    continue
                try:
                    v, p = float(parts[0]), float(parts[1])
                except ValueError:
                    continue
                pts.append((p, v))
    except OSError:
        return []
    return pts


def curve_svg(title, curves, note=None):
    """curves: [(label, color, dashed, [(p, v)])]; x = log10(1/(1-p)), y = log latency."""
    curves = [c for c in curves if c[3]]
    if not curves:
        return None
    w, h = 860, 480
    px0, py0, pw, ph = 80, 50, 560, 360
    xs_max = 0.0
    vmin, vmax = float("inf"), 0.0
    prepared = []
    for label, color, dashed, pts in curves:
        seg = []
        for p, v in pts:
            if p >= 1.0:
                continue
            x = math.log10(1.0 / (1.0 - p))
            v = max(v, 1.0)
            seg.append((x, v))
            xs_max = max(xs_max, x)
            vmin, vmax = min(vmin, v), max(vmax, v)
        if pts:  # the max, at the last finite percentile
            vmax = max(vmax, pts[-1][1])
            if seg:
                seg.append((seg[-1][0], max(pts[-1][1], 1.0)))
        prepared.append((label, color, dashed, seg))
    xmax = max(1.0, math.ceil(xs_max))
    ymin, ymax, ticks = log_ticks(vmin, vmax * 1.2)

    def X(x):
        return px0 + x / xmax * pw

    def Y(v):
        return py0 + ph - (math.log10(v) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin)) * ph

    body = [
        f'<text x="{w / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{esc(title)}</text>\n',
        f'<rect x="{px0}" y="{py0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>\n',
    ]
    labels = {0: "0%", 1: "90%", 2: "99%", 3: "99.9%", 4: "99.99%", 5: "99.999%", 6: "99.9999%", 7: "99.99999%"}
    for i in range(int(xmax) + 1):
        x = X(i)
        body.append(f'<line x1="{x:.1f}" y1="{py0}" x2="{x:.1f}" y2="{py0 + ph}" stroke="#ddd"/>\n')
        body.append(f'<text x="{x:.1f}" y="{py0 + ph + 16}" text-anchor="middle">{labels.get(i, "")}</text>\n')
    for t in ticks:
        for m in (1, 2, 5):
            v = t * m
            if v > ymax or v < ymin:
                continue
            y = Y(v)
            body.append(f'<line x1="{px0}" y1="{y:.1f}" x2="{px0 + pw}" y2="{y:.1f}" stroke="{"#ccc" if m == 1 else "#eee"}"/>\n')
            body.append(f'<text x="{px0 - 5}" y="{y + 4:.1f}" text-anchor="end" font-size="{11 if m == 1 else 9}">{esc(fmt_tick_us(v))}</text>\n')
    body.append(f'<text x="{px0 + pw / 2}" y="{py0 + ph + 36}" text-anchor="middle">percentile</text>\n')
    body.append(
        f'<text x="18" y="{py0 + ph / 2}" text-anchor="middle" transform="rotate(-90 18 {py0 + ph / 2})">'
        "end-to-end latency (log)</text>\n"
    )
    for i, (label, color, dashed, seg) in enumerate(prepared):
        if not seg:
            continue
        d = " ".join(f"{X(x):.1f},{Y(v):.1f}" for x, v in seg)
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        body.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"{dash}><title>{esc(label)}</title></polyline>\n')
        ly = py0 + 10 + i * 20
        body.append(f'<line x1="{px0 + pw + 15}" y1="{ly}" x2="{px0 + pw + 45}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>\n')
        body.append(f'<text x="{px0 + pw + 50}" y="{ly + 4}" font-size="11">{esc(label)}</text>\n')
    if note:
        body.append(f'<text x="{px0}" y="{h - 12}" fill="#555" font-size="11">{esc(note)}</text>\n')
    return svg_doc(w, h, body)


# --- the report -------------------------------------------------------------------------------------


def table(header, rows, align=None):
    align = align or ["---"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def machine_line(meta, runs):
    m = None
    for r in runs.values():
        if r.s:
            m = r.s.get("machine")
            break
    cpu = meta.get("cpu_model") or (m or {}).get("cpu_model", "?")
    nproc = meta.get("nproc") or (m or {}).get("nproc", "?")
    kernel = meta.get("kernel") or (m or {}).get("kernel", "?")
    mem = meta.get("mem_kib") or (m or {}).get("mem_total_kib")
    mem_s = f", {int(mem) / 1048576:.0f} GiB RAM" if mem else ""
    cc = meta.get("tcp_congestion_control")
    tcp_s = f", TCP congestion control {cc}" if cc else ""
    return f"{nproc} CPUs ({cpu}), {kernel}{mem_s}{tcp_s}"


def reference_broker(brokers):
    """The peer the headline compares with: Mosquitto, else the first peer."""
    peers = [b for b in brokers if b != "ringmq"]
    if "mosquitto" in peers:
        return "mosquitto"
    return peers[0] if peers else None


def headline(meta, brokers, runs, link, targets=False):
    """The headline table. `link` is the run's report.md as seen from the file the headline
    goes into (headline.md, the README); `targets` adds the target ratio column, which only
    the report itself shows."""
    peer = reference_broker(brokers)
    if "ringmq" not in brokers or not peer:
        return None
    rows = []
    most = 0
    for scen, q, label, target in HEADLINE:
        rid = f"{scen}-q{q}-64B"
        (rv, rn), (pv, pn) = headline_median(runs, "ringmq", rid), headline_median(runs, peer, rid)
        if not rn and not pn:
            continue
        most = max(most, rn, pn)
        rows.append([label, fmt_si(pv), fmt_si(rv), fmt_ratio(rv, pv)] + ([f"≥ {target:.0f}×"] if targets else []))
    if not rows:
        return None
    rounds = f" Each figure is the median of {most} runs (the matrix run and its reruns in the rounds)." if most > 1 else ""
    mode = (
        f" `--quick` run ({meta.get('duration_s', '?')} s per run),"
        if meta.get("mode") == "quick"
        else f" {meta.get('duration_s', '?')} s per run,"
    )
    pin = f"broker on CPU {meta.get('broker_cpus', '?')}, loadgen on CPU {meta.get('loadgen_cpus', '?')}"
    date = (meta.get("date") or "")[:10]
    lines = [
        f"Delivered messages per broker CPU-second (higher is better), 64 B payloads, closed loop,"
        f" ringmq with {meta.get('ringmq_cores', '?')} shard(s). Measured {date} on "
        f"{meta.get('host', '?')}: {machine_line(meta, runs)};{mode} {pin}."
        f"{rounds} Full report: [{link}]({link}).",
        "",
        table(
            ["scenario", esc_name(peer), "ringmq", "ratio"] + (["target ratio"] if targets else []),
            rows,
            ["---", "---:", "---:", "---:"] + (["---:"] if targets else []),
        ),
    ]
    return "\n".join(lines)


def show_command(cmd):
    """bench.sh's command line (recorded with bash's %q quoting), notes shortened to '…'."""
    try:
        args = shlex.split(cmd)
    except ValueError:
        return cmd.strip()
    out = []
    for i, a in enumerate(args):
        out.append("…" if i > 0 and args[i - 1] == "--note" else shlex.quote(a))
    return " ".join(out)


def esc_name(b):
    return {"mosquitto": "Mosquitto", "ringmq": "ringmq", "rumqttd": "rumqttd"}.get(b, b)


def build_report(out, meta, brokers, runs, plots):
    quick = meta.get("mode") == "quick"
    L = []
    date = meta.get("date", "?")
    L.append(f"# Broker comparison, {date[:10]}, {meta.get('host', '?')}")
    L.append("")
    L.append("Generated by `scripts/bench.sh` and `scripts/bench_report.py` from the raw files in this")
    L.append("directory (`BROKER/RUN/summary.json`, `*.hgrm`, `stdout.txt`); do not edit by hand.")
    L.append("")
    if quick:
        L.append(
            "> **This is a `--quick` run**: a subset of the matrix (QoS 0/1/2 × pairs 10 and fan-out 1 → 50"
            f" at 64 B, {meta.get('duration_s', '?')} s each after a {meta.get('warmup_s', '?')} s warm-up,"
            " a short latency run, 2,000 idle connections). It shows that the suite works and gives"
            " indicative figures; the published comparison is the full matrix."
        )
        L.append("")
    try:
        if int(meta.get("nproc", "0")) <= 2:
            L.append(
                "> **Small shared machine**: the broker and the load generator each had one CPU"
                " and anything else running on the machine competed with them (load averages"
                " below). Rates move with that noise; CPU per delivered message is steadier."
            )
            L.append("")
    except ValueError:
        pass

    # Set-up
    L.append("## Set-up")
    L.append("")
    L.append(f"- date: {date} to {meta.get('finished', '?')}")
    L.append(f"- machine: {meta.get('host', '?')}, {machine_line(meta, runs)}")
    L.append(f"- load average (1, 5, 15 min): {meta.get('loadavg_before', '?')} before, {meta.get('loadavg_after', '?')} after")
    L.append(f"- command: `{show_command(meta.get('command', 'scripts/bench.sh'))}` ({meta.get('mode', '?')} matrix)")
    L.append(
        f"- runs: closed loop `--rate max` (QoS 1/2: `--inflight 20` per publisher), {meta.get('duration_s', '?')} s measured"
        f" after {meta.get('warmup_s', '?')} s warm-up, up to {meta.get('drain_s', '?')} s drain; MQTT 3.1.1, clean sessions"
    )
    L.append(
        f"- pinning: broker `taskset -c {meta.get('broker_cpus', '?')}` (ringmq also `--cores {meta.get('ringmq_cores', '?')}"
        f" --cpus {meta.get('broker_cpus', '?')}`, as it pins its own shards); load generator `taskset -c"
        f" {meta.get('loadgen_cpus', '?')}` and `--cpus {meta.get('loadgen_cpus', '?')}` (one load thread per CPU)"
    )
    L.append(
        f"- ringmq source: commit {meta.get('git_commit', '?')}"
        f"{', ' + meta['git_dirty'].strip() if meta.get('git_dirty', '').strip() else ' (no uncommitted changes)'}; {meta.get('rustc', '')};"
        f" {meta.get('binaries', '')}"
    )
    L.append(f"- load generator: {meta.get('loadgen_version', '?')}")
    L.append(f"- open files per process: {meta.get('nofile', '?')}")
    L.append("")
    L.append("| broker | version and command |")
    L.append("|---|---|")
    for b in brokers:
        L.append(f"| {b} | {meta.get('version_' + b, '?')} |")
    L.append("")
    L.append("Limits removed from every broker's configuration (so that no broker drops or refuses")
    L.append("messages because of a default queue, inflight or payload cap):")
    L.append("")
    any_lim = False
    for b in brokers:
        lim = meta.get("limits_" + b)
        if lim:
            any_lim = True
            L.append(f"- **{b}**: {lim}")
    if not any_lim:
        L.append("- none (no peer in this run)")
    L.append("")
    for b in brokers:
        for cfg in ("ringmq.conf", "mosquitto.conf", "rumqttd.toml"):
            p = os.path.join(out, b, cfg)
            if os.path.exists(p):
                with open(p, encoding="utf-8") as f:
                    text = f.read().rstrip()
                L.append(f"<details><summary>{b}: generated {cfg}</summary>")
                L.append("")
                L.append("```")
                L.append(text)
                L.append("```")
                L.append("")
                L.append("</details>")
                L.append("")
    if meta.get("notes"):
        L.append("Notes:")
        L.append("")
        for n in meta["notes"]:
            L.append(f"- {n}")
        L.append("")

    L.append("## How to read the tables")
    L.append("")
    L.append("- **in** = messages published per second (publishers → broker), **out** = messages delivered per")
    L.append("  second (broker → subscribers), both counted inside the measured window.")
    L.append("- **CPU-µs/msg** = the broker's user+system CPU time over the window (from /proc) divided by the")
    L.append("  messages it delivered in it (= CPU-seconds per million messages); **msgs/CPU-s** is its inverse:")
    L.append("  delivered messages per second of broker CPU, the figure the issue's targets use.")
    L.append("- **ratios** are against ringmq on the same row: **out ratio** = ringmq ÷ peer (above 1: ringmq")
    L.append("  delivered more per second); **CPU ratio** = peer CPU-µs ÷ ringmq CPU-µs (above 1: ringmq spent less")
    L.append("  CPU per message; the same number as ringmq ÷ peer in msgs/CPU-s). Both: above 1 means ringmq is better.")
    L.append("- Closed-loop latency is mostly queueing inside a saturated pipeline; compare latency in the")
    L.append("  fixed-rate run. **lost/dup** are counted over the whole run (warm-up included) from per-publisher")
    L.append("  sequence numbers; QoS 0 loss is allowed by MQTT, QoS 1/2 loss fails the run.")
    L.append("- **LG busy** is the load generator's busiest thread; at 90% or more (marked ⚠) the load generator,")
    L.append("  not the broker, may have been the limit.")
    L.append("- QoS 0 in closed loop has no flow control but TCP's: a broker that reads faster than it can")
    L.append("  deliver queues the difference, so **in** and **out** can differ within the window (it delivers")
    L.append("  what it read earlier), the latency grows to seconds, and messages still queued when the")
    L.append(f"  loadgen's drain ({meta.get('drain_s', '?')} s) ends are counted as lost.")
    L.append("- On loopback much of TCP's work runs in softirq context, which the kernel charges to whichever")
    L.append("  process happened to be running (often the sender, so part of the receiver's work) or, with")
    L.append("  IRQ-time accounting, to no process. Every broker is measured the same way, so the ratios")
    L.append("  hold; the absolute CPU-µs are loopback figures, not what a NIC-facing broker pays.")
    L.append("")

    # Headline
    hl = headline(meta, brokers, runs, "report.md", targets=True)
    if hl:
        L.append("## Headline")
        L.append("")
        L.append(hl)
        L.append("")
        L.append("Target ratios from issue 5 (FlashMQ's measured figures plus 50%, read against Mosquitto).")
        L.append("")
        rerun_ids = {KIND_RE.sub("", r.id) for r in runs.values() if r.kind == "headline"}
        if rerun_ids:
            L.append("The headline's runs, delivered msgs per broker CPU-second: the matrix run, then the reruns")
            L.append("in rounds 2 and later (a fresh broker process each), and the median the headline uses.")
            L.append("")
            rows = []
            # The cases bench.sh reran, in the matrix's order (scenario, then QoS).
            order = [sc for sc, _ in SCENARIOS]
            for rid in sorted(rerun_ids, key=lambda i: (RUN_RE.match(i)["size"], order.index(RUN_RE.match(i)["scen"]), i)):
                m = RUN_RE.match(rid)
                for b in brokers:
                    rs = headline_runs(runs, b, rid)
                    if rs:
                        rows.append([f"{SCEN_SHORT[m['scen']]}, QoS {m['qos']}", b,
                                     ", ".join(fmt_si(r.per_cpu_s) for r in rs),
                                     fmt_si(headline_median(runs, b, rid)[0])])
            L.append(table(["scenario", "broker", "runs", "median"], rows, ["---", "---", "---", "--:"]))
            L.append("")

    # Throughput
    sizes = sorted({r.size for r in runs.values() if r.kind == "throughput" and r.size})
    L.append("## Throughput (closed loop)")
    L.append("")
    for scen, desc in SCENARIOS:
        ids = [f"{scen}-q{q}-{s}B" for s in sizes for q in (0, 1, 2)]
        if not any((b, i) in runs for b in brokers for i in ids):
            continue
        L.append(f"### {SCEN_SHORT[scen]}")
        L.append("")
        L.append(desc + ".")
        L.append("")
        rows = []
        for rid in ids:
            base = runs.get(("ringmq", rid))
            for b in brokers:
                r = runs.get((b, rid))
                if not r:
                    continue
                q, s = r.qos, r.size
                if b == "ringmq" or not base:
                    ro, rc = ("base", "base") if b == "ringmq" else ("—", "—")
                else:
                    ro = fmt_ratio(base.out_rate, r.out_rate)
                    rc = fmt_ratio(r.cpu_us, base.cpu_us)
                lg = r.lg_busy
                lg_s = "—" if lg is None else f"{lg:.0f}%" + (" ⚠" if r.lg_saturated else "")
                rows.append([
                    q, size_label(s), b,
                    fmt_rate(r.in_rate), fmt_rate(r.out_rate),
                    fmt_cpu(r.cpu_us), fmt_si(r.per_cpu_s),
                    fmt_us(r.lat("e2e", "p50")), fmt_us(r.lat("e2e", "p99")),
                    fmt_us(r.lat("e2e", "p99_9")), fmt_us(r.lat("e2e", "max")),
                    r.loss(),
                    lg_s, ro, rc, r.status(),
                ])
        L.append(table(
            ["QoS", "size", "broker", "in msgs/s", "out msgs/s", "CPU-µs/msg", "msgs/CPU-s",
             "p50", "p99", "p99.9", "max", "lost / dup", "LG busy", "out ratio", "CPU ratio", "status"],
            rows,
            ["--:", "--:", "---", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "---"],
        ))
        L.append("")
        if scen in plots:
            L.append(f"![throughput, {SCEN_SHORT[scen]}]({plots[scen]})")
            L.append("")

    reused = sorted(f"{r.broker}/{r.id}" for r in runs.values() if r.get("messages", "qos2_redelivered"))
    if reused:
        L.append(
            "² **QoS 2 packet-id reuse** in " + ", ".join(reused) + ": the broker sent a new PUBLISH"
            " with a packet id whose QoS 2 exchange was still open (PUBREC sent, no PUBREL yet). The"
            " receiver must treat it as the same message [MQTT-4.3.3-9], so the loadgen answers it"
            " without delivering it, and the message it carried counts as lost. Mosquitto most likely"
            " assigns the packet id when it queues a message for a client, so a backlog of more than"
            " 65,535 messages for one subscriber (fan-in with the queue limit removed) reuses ids still"
            " in flight; on this machine the same happened with max_inflight_messages 20, 1000, 65535"
            " and 0 (a smaller max_queued_messages drops the messages instead)."
        )
        L.append("")

    # Fixed-rate latency and fleet runs: in rounds (bench.sh --rounds)
    lat_runs = [r for r in runs.values() if r.kind == "latency"]
    fleet_runs = [r for r in runs.values() if r.kind == "fleet"]
    several = max((r.round for r in lat_runs + fleet_runs), default=1) > 1
    rounds_text = (
        ["Every broker ran this in each of the rounds (a fresh broker process per round, each round",
         "visiting the brokers in turn and starting with the next one). The first table takes the",
         "median over a broker's rounds, the second lists every round."]
        if several else
        ["One round per broker: on a shared or virtual machine one run is a draw",
         "(`scripts/bench.sh --rounds N` runs N rounds and compares medians)."])

    def same_round(run):
        """ringmq's run of the same kind, QoS and round as `run`."""
        return next((x for x in runs.values() if x.broker == "ringmq" and x.kind == run.kind
                     and x.qos == run.qos and x.round == run.round), None)

    if lat_runs:
        L.append("## Latency at a fixed rate (open loop)")
        L.append("")
        L.append((meta.get("latency_run") or "") + ". Latency is end to end, from the *scheduled* send time")
        L.append("(corrected for coordinated omission), next to the figure from the actual send time.")
        L += rounds_text
        L.append("")
        if several:
            medians = {b: latency_median(runs, b) for b in brokers}
            base = medians.get("ringmq")
            rows = []
            for b in brokers:
                m = medians.get(b)
                if not m:
                    continue
                ratio = "base" if b == "ringmq" else (fmt_ratio(m[0]["p99"], base[0]["p99"]) if base else "—")
                rows.append([b, str(len(m[2])), fmt_us(m[0]["p50"]), fmt_us(m[0]["p99"]), fmt_us(m[0]["p99_9"]),
                             fmt_us(m[0]["max"]), ratio])
            L.append(table(["broker", "rounds", "p50", "p99", "p99.9", "max", "p99 ratio"], rows,
                           ["---", "--:", "--:", "--:", "--:", "--:", "--:"]))
            L.append("")
        rows = []
        for b in brokers:
            for r in sorted((x for x in lat_runs if x.broker == b), key=lambda x: x.round):
                base = same_round(r)
                ratio = "base" if b == "ringmq" else (
                    fmt_ratio(r.lat("e2e_corrected", "p99"), base.lat("e2e_corrected", "p99")) if base else "—")
                rows.append([
                    b, str(r.round), fmt_rate(r.in_rate), fmt_rate(r.out_rate),
                    fmt_us(r.lat("e2e_corrected", "p50")), fmt_us(r.lat("e2e_corrected", "p99")),
                    fmt_us(r.lat("e2e_corrected", "p99_9")), fmt_us(r.lat("e2e_corrected", "max")),
                    fmt_us(r.lat("e2e", "p50")), fmt_us(r.lat("e2e", "p99")),
                    fmt_cpu(r.cpu_us), r.loss(), ratio, r.status(),
                ])
        L.append(table(
            ["broker", "round", "in msgs/s", "out msgs/s", "p50", "p99", "p99.9", "max", "measured p50",
             "measured p99", "CPU-µs/msg", "lost / dup", "p99 ratio", "status"],
            rows,
            ["---", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "---"],
        ))
        L.append("")
        L.append("p99 ratio = peer p99 ÷ ringmq p99 (corrected; medians, or the same round): above 1 means")
        L.append("ringmq's tail is shorter.")
        L.append("")
        if "latency" in plots:
            L.append(f"![latency at a fixed rate]({plots['latency']})")
            L.append("")

    if fleet_runs:
        L.append("## Many connections at a modest rate (1,000 pairs x 50 msg/s)")
        L.append("")
        L.append("1,000 publishers at 50 msg/s each (50,000 msg/s in total), each to its own subscriber,")
        L.append("open loop, 64 B. Here the kernel's cost per packet dominates; lower CPU-µs/msg is better.")
        L += rounds_text
        L.append("")
        if several:
            rows = []
            for q in sorted({r.qos for r in fleet_runs}):
                base = median(r.cpu_us for r in fleet_rounds(runs, "ringmq", q))
                for b in brokers:
                    rs = fleet_rounds(runs, b, q)
                    if not rs:
                        continue
                    cpu = median(r.cpu_us for r in rs)
                    ratio = "base" if b == "ringmq" else (fmt_ratio(cpu, base) if base and cpu else "—")
                    rows.append([
                        b, f"QoS {q}", str(len(rs)), fmt_cpu(cpu),
                        fmt_us(median(r.lat("e2e_corrected", "p50") for r in rs)),
                        fmt_us(median(r.lat("e2e_corrected", "p99") for r in rs)),
                        ratio,
                    ])
            L.append(table(["broker", "QoS", "rounds", "CPU-µs/msg", "p50", "p99", "CPU ratio"], rows,
                           ["---", "---", "--:", "--:", "--:", "--:", "--:"]))
            L.append("")
        rows = []
        for b in brokers:
            for r in sorted((x for x in fleet_runs if x.broker == b), key=lambda x: (x.qos, x.round)):
                base = same_round(r)
                ratio = "base" if b == "ringmq" else (
                    fmt_ratio(r.cpu_us, base.cpu_us) if base and base.cpu_us and r.cpu_us else "—")
                rows.append([
                    b, f"QoS {r.qos}", str(r.round), fmt_rate(r.in_rate), fmt_rate(r.out_rate), fmt_cpu(r.cpu_us),
                    fmt_us(r.lat("e2e_corrected", "p50")), fmt_us(r.lat("e2e_corrected", "p99")),
                    r.loss(), ratio, r.status(),
                ])
        L.append(table(
            ["broker", "QoS", "round", "in msgs/s", "out msgs/s", "CPU-µs/msg", "p50", "p99", "lost / dup",
             "CPU ratio", "status"],
            rows,
            ["---", "---", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "---"],
        ))
        L.append("")
        L.append("CPU ratio = peer CPU-µs/msg ÷ ringmq's (medians, or the same round): above 1 means ringmq")
        L.append("spends less per message.")
        L.append("")

    # Latency curves per QoS
    qplots = [(q, plots[f"qos{q}"]) for q in (0, 1, 2) if f"qos{q}" in plots]
    if qplots:
        L.append("## Latency percentile curves per QoS (closed loop, 64 B)")
        L.append("")
        L.append("From each run's `e2e_us.hgrm`. These runs are saturated, so the curves show queueing in a")
        L.append("full pipeline rather than the latency a client at a modest rate sees (that is the run above).")
        L.append("")
        for q, p in qplots:
            L.append(f"![QoS {q} latency percentiles]({p})")
            L.append("")

    # Connections
    conn = [r for r in runs.values() if r.kind == "conn"]
    if conn:
        L.append("## Idle connections")
        L.append("")
        L.append("`conn`: opens N MQTT connections from 20 loopback source addresses, holds them, and reads the")
        L.append("broker's resident memory before and while they are held: RSS per connection = (RSS held − RSS")
        L.append("before) ÷ connections.")
        L.append("")
        rows = []
        for b in brokers:
            for r in sorted((x for x in conn if x.broker == b), key=lambda x: int(x.id.split("-")[1])):
                want = int(r.id.split("-")[1])
                n = r.get("config", "conn_n")
                asked = fmt_int(n) + (f" (of {want:,}: capped)" if n is not None and n < want else "")
                base = runs.get(("ringmq", r.id))
                rss = r.get("broker", "rss_bytes_per_connection")
                brss = base.get("broker", "rss_bytes_per_connection") if base else None
                ratio = "base" if b == "ringmq" else fmt_ratio(rss, brss)
                rows.append([
                    b, asked, fmt_int(r.get("connections", "connected")), fmt_int(r.get("connections", "failed")),
                    "—" if rss is None else f"{rss / 1024:.2f} KiB",
                    "—" if r.get("broker", "rss_peak_kib") is None else f"{r.get('broker', 'rss_peak_kib') / 1024:.1f} MiB",
                    fmt_cpu(r.get("broker", "cpu_us_per_connection")),
                    fmt_us(r.lat("connect", "p50")), fmt_us(r.lat("connect", "p99")),
                    fmt_rate(r.get("connections", "connect_rate_per_s")),
                    ratio, r.status(),
                ])
        L.append(table(
            ["broker", "connections", "connected", "failed", "RSS / conn", "peak RSS", "CPU-µs / conn",
             "connect p50", "connect p99", "conn/s", "RSS ratio", "status"],
            rows,
            ["---", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "---"],
        ))
        L.append("")
        L.append("RSS ratio = peer ÷ ringmq bytes per connection: above 1 means ringmq uses less memory per connection.")
        L.append("")

    # Targets
    L += targets_section(brokers, runs)

    # All runs
    L.append("## Every run")
    L.append("")
    L.append("The load generator's one-line result for each run; the run's files are in `BROKER/RUN/`.")
    L.append("")
    L.append("```")
    for b in brokers:
        for (bb, rid), r in sorted(runs.items()):
            if bb != b:
                continue
            line = ""
            try:
                with open(os.path.join(r.dir, "stdout.txt"), encoding="utf-8") as f:
                    lines = [x for x in f.read().splitlines() if x.strip()]
                    line = lines[-1] if lines else ""
            except OSError:
                pass
            if not line or r.status() != "OK":
                line = f"{line} [{r.status().strip('*')}]".strip()
            L.append(f"{b}/{rid}: {line}")
            for w in r.get("status", "warnings") or []:
                L.append(f"    warning: {w}")
    L.append("```")
    L.append("")
    return "\n".join(L)


def targets_section(brokers, runs):
    """Issue 5's targets, checked against this run where it has the figures."""
    L = ["## Against the targets (issue 5)", ""]
    rows = []
    peer = "mosquitto" if "mosquitto" in brokers else None

    def ok(flag):
        return "met" if flag else "**missed**"

    if "ringmq" in brokers and peer:
        for scen, q, label, target in HEADLINE:
            rid = f"{scen}-q{q}-64B"
            (rv, rn), (pv, pn) = headline_median(runs, "ringmq", rid), headline_median(runs, peer, rid)
            if rv and pv:
                ratio = rv / pv
                runs_text = f" (medians of {rn} and {pn} runs)" if max(rn, pn) > 1 else ""
                rows.append([f"{label}: ringmq ÷ Mosquitto msgs/CPU-s ≥ {target:.0f}×{runs_text}", f"{ratio:.1f}×",
                             ok(ratio >= target)])
    if "ringmq" in brokers:
        for scen in ("pairs-10", "fanout-50"):
            (v1, n1), (v2, n2) = (headline_median(runs, "ringmq", f"{scen}-q{q}-64B") for q in (1, 2))
            if v1 and v2:
                frac = v2 / v1
                runs_text = f", medians of {n1} and {n2} runs" if max(n1, n2) > 1 else ""
                rows.append([f"QoS 2 ≥ half of QoS 1 ({SCEN_SHORT[scen]}, msgs/CPU-s{runs_text})", f"{frac:.2f} of QoS 1",
                             ok(frac >= 0.5)])
        lat = latency_median(runs, "ringmq")
        if lat:
            p99, n = lat[0]["p99"], len(lat[2])
            rows.append([f"fixed-rate p99 under 1 ms (median of {n} round(s))", fmt_us(p99), ok(p99 < 1000)])
            peer_lat = latency_median(runs, peer) if peer else None
            if peer_lat:
                pp = peer_lat[0]["p99"]
                rows.append(["fixed-rate p99 below Mosquitto's (medians)", f"{fmt_us(p99)} vs {fmt_us(pp)}", ok(p99 < pp)])
        for q, goal in ((0, 10), (1, 13)):
            rs = fleet_rounds(runs, "ringmq", q)
            cpu = median(r.cpu_us for r in rs)
            if cpu is not None:
                rows.append([f"1,000 pairs x 50 msg/s, QoS {q}: broker CPU-µs/msg ≤ {goal} (median of {len(rs)} round(s))",
                             fmt_cpu(cpu), ok(cpu <= goal)])
        for r in runs.values():
            if r.kind == "conn" and r.broker == "ringmq":
                rss = r.get("broker", "rss_bytes_per_connection")
                if rss is not None:
                    rows.append([f"memory per idle connection ≤ 1 KB ({r.get('config', 'conn_n'):,} connections)", f"{rss / 1024:.2f} KiB", ok(rss <= 1000)])
        lossy = [
            r.id for r in runs.values()
            if r.broker == "ringmq" and r.qos in (1, 2) and r.s
            and ((r.get("messages", "lost") or 0) > 0 or (r.qos == 2 and (r.get("messages", "duplicated") or 0) > 0))
        ]
        checked = [r for r in runs.values() if r.broker == "ringmq" and r.qos in (1, 2) and r.s]
        if checked:
            rows.append(["zero QoS 1/2 loss in every run", "none lost" if not lossy else "loss in " + ", ".join(sorted(lossy)), ok(not lossy)])
    if not rows:
        return []
    L.append(table(["target", "measured", ""], rows, ["---", "--:", "---"]))
    L.append("")
    L.append("The throughput targets per broker CPU-second are read as ratios against Mosquitto measured in")
    L.append("the same run (FlashMQ, the bar in the issue, is not installable here).")
    L.append("")
    return L


def write_plots(out, brokers, runs):
    pdir = os.path.join(out, "plots")
    os.makedirs(pdir, exist_ok=True)
    plots = {}
    sizes = sorted({r.size for r in runs.values() if r.kind == "throughput" and r.size})
    for scen, _ in SCENARIOS:
        svg = throughput_svg(scen, brokers, runs, sizes)
        if svg:
            name = f"throughput-{scen}.svg"
            with open(os.path.join(pdir, name), "w", encoding="utf-8") as f:
                f.write(svg)
            plots[scen] = f"plots/{name}"
    color = {b: COLORS[i % len(COLORS)] for i, b in enumerate(brokers)}
    for q in (0, 1, 2):
        curves = []
        for scen, dashed in (("pairs-10", False), ("fanout-50", True), ("pairs-100", None), ("fanin-50", None), ("fanout-1000", None)):
            if dashed is None:
                continue  # keep the plot readable: two scenarios per QoS
            for b in brokers:
                r = runs.get((b, f"{scen}-q{q}-64B"))
                if r:
                    curves.append((f"{b}, {SCEN_SHORT[scen]}", color[b], dashed, read_hgrm(os.path.join(r.dir, "e2e_us.hgrm"))))
        svg = curve_svg(f"QoS {q}, 64 B, closed loop: end-to-end latency", curves,
                        "solid: pairs 10; dashed: fan-out 1 → 50. Saturated runs: mostly queueing.")
        if svg:
            name = f"latency-qos{q}.svg"
            with open(os.path.join(pdir, name), "w", encoding="utf-8") as f:
                f.write(svg)
            plots[f"qos{q}"] = f"plots/{name}"
    curves = []
    lat = []
    for b in brokers:
        m = latency_median(runs, b)
        if m:
            r = m[1]   # the round with the median p99 stands for the broker
            lat.append(r)
            curves.append((f"{b}, corrected", color[b], False, read_hgrm(os.path.join(r.dir, "e2e_corrected_us.hgrm"))))
            curves.append((f"{b}, measured", color[b], True, read_hgrm(os.path.join(r.dir, "e2e_us.hgrm"))))
    lat_title = "fixed rate: end-to-end latency"
    if lat and lat[0].scen:
        lat_title = (f"{SCEN_SHORT.get(lat[0].scen, lat[0].scen)}, QoS 1, 64 B at a fixed rate: end-to-end latency"
                     " (each broker's median round)")
    svg = curve_svg(lat_title, curves, "solid: from the scheduled send (coordinated omission corrected); dashed: from the actual send")
    if svg:
        with open(os.path.join(pdir, "latency-fixed-rate.svg"), "w", encoding="utf-8") as f:
            f.write(svg)
        plots["latency"] = "plots/latency-fixed-rate.svg"
    return plots


# --- index and README ---------------------------------------------------------------------------------


def write_index(index_path):
    rdir = os.path.dirname(os.path.abspath(index_path))
    entries = []
    for name in os.listdir(rdir):
        d = os.path.join(rdir, name)
        mp = os.path.join(d, "meta.tsv")
        if not os.path.isdir(d) or not os.path.exists(mp):
            continue
        meta = read_meta(mp)
        brokers = meta.get("brokers", "").split()
        mode = meta.get("mode", "?")
        if mode == "quick":
            what = "--quick: QoS 0/1/2 × pairs 10 and fan-out 1→50 at 64 B, fixed-rate latency, 2k idle connections"
        else:
            what = "full matrix: QoS 0/1/2 × pairs 10/100, fan-in 50, fan-out 50/1000 at 64 B and 1 KiB, fixed-rate latency, idle connections"
        cores = meta.get("ringmq_cores")
        bl = ", ".join(f"ringmq ({cores} shard{'s' if cores != '1' else ''})" if b == "ringmq" else b for b in brokers)
        machine = f"{meta.get('nproc', '?')} CPUs {meta.get('cpu_model', '?')}, {meta.get('kernel', '?')}"
        has_report = os.path.exists(os.path.join(d, "report.md"))
        link = f"[{name}]({name}/report.md)" if has_report else name
        entries.append((meta.get("date", ""), name, f"- {link}: {meta.get('date', '?')[:10]}, {meta.get('host', '?')} ({machine}); {bl}; {what}"))
    entries.sort(key=lambda e: (e[0], e[1]), reverse=True)
    lines = [
        "# Results",
        "",
        "Broker comparisons produced by `scripts/bench.sh` (the method: [docs/performance.md](../docs/performance.md)),",
        "newest first. Each directory holds every raw `summary.json` and `.hgrm` from ringmq-loadgen, the",
        "generated configurations, `bench.log`, and `report.md` with the tables and plots. Runs that a",
        "later run of the same kind superseded (2026-11-26-vm-2cpu, -reactor, -routecache, and the",
        "16-CPU -before and -idset-only sweeps) keep their reports, summaries and plots but not their raw",
        "`.hgrm` histograms. This index is rewritten by `scripts/bench_report.py`.",
        "",
    ]
    lines += [e[2] for e in entries] or ["(none yet)"]
    others = sorted(
        n for n in os.listdir(rdir)
        if os.path.isfile(os.path.join(rdir, n)) and n.endswith(".md") and n != "README.md"
    )
    # Directories with a report but no bench.sh metadata: scripts/ab.sh comparisons and
    # scripts/scaling.sh sweeps (told apart by the report's title).
    ab_dirs = sorted(
        n for n in os.listdir(rdir)
        if os.path.isfile(os.path.join(rdir, n, "report.md")) and not os.path.exists(os.path.join(rdir, n, "meta.tsv"))
    )
    if others or ab_dirs:
        lines += ["", "Other results:", ""]
        for n in others:
            desc = {
                "codec-bench.md": "codec micro-benchmarks (`scripts/bench-codec.sh`)",
                "session-window-bench.md": "a session's QoS 1 window, before and after (`scripts/bench-session.sh`)",
            }.get(n, "")
            lines.append(f"- [{n}]({n})" + (f": {desc}" if desc else ""))
        for n in ab_dirs:
            with open(os.path.join(rdir, n, "report.md"), encoding="utf-8") as f:
                title = f.readline().lstrip("# ").strip()
            script = "scaling.sh" if title.startswith("ringmq core scaling") else "ab.sh"
            lines.append(f"- [{n}]({n}/report.md): {title} (`scripts/{script}`)")
    with open(index_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def update_readme(path, hl):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if README_START not in text or README_END not in text:
        print(f"bench_report.py: {path} has no {README_START} ... {README_END} markers; not updated", file=sys.stderr)
        return False
    a = text.index(README_START) + len(README_START)
    b = text.index(README_END)
    text = text[:a] + "\n" + hl + "\n" + text[b:]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="results directory written by scripts/bench.sh")
    ap.add_argument("--index", help="rewrite this index of result directories (results/README.md)")
    ap.add_argument("--update-readme", metavar="README", help="replace the headline between the bench markers")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if not os.path.isdir(out):
        ap.error(f"{out}: not a directory")
    meta = read_meta(os.path.join(out, "meta.tsv"))
    brokers = discover_brokers(out, meta)
    runs = load_runs(out, brokers)
    if not runs:
        print(f"bench_report.py: no runs under {out}", file=sys.stderr)
        return 1
    plots = write_plots(out, brokers, runs)
    report = build_report(out, meta, brokers, runs, plots)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(report)
    out_name = os.path.basename(out)
    # Each copy of the headline links the report relative to the file it is written into.
    hl = headline(meta, brokers, runs, "report.md")
    if hl:
        with open(os.path.join(out, "headline.md"), "w", encoding="utf-8") as f:
            f.write(hl + "\n")
        print()
        print("Headline (for the README):")
        print()
        print(headline(meta, brokers, runs, f"results/{out_name}/report.md"))
        print()
        if args.update_readme:
            readme_dir = os.path.dirname(os.path.abspath(args.update_readme))
            link = os.path.relpath(os.path.join(out, "report.md"), readme_dir)
            if update_readme(args.update_readme, headline(meta, brokers, runs, link)):
                print(f"updated {args.update_readme}")
    else:
        print("no headline: it needs ringmq and a peer on pairs-10 / fanout-50 at 64 B", file=sys.stderr)
    if args.index:
        write_index(args.index)
        print(f"updated {args.index}")
    print(f"wrote {os.path.join(out, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
