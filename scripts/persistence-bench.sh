#!/usr/bin/env bash
# The store comparison of docs/persistence.md: ringmq's own log (src/store/log.rs) against
# fjall and redb, on this machine's disk. Builds scripts/persistence-bench (a crate of its
# own, outside the workspace) and runs --rounds rounds, the stores taking turns in each; writes OUT/persistence-bench.jsonl
# (one JSON object per measurement and round), OUT/summary.md (the median of the rounds)
# and OUT/machine.txt.
#
# Usage: scripts/persistence-bench.sh --out DIR [--rounds 5] [--messages 20000]
#        [--retained 100000] [--queued 1000000] [--work DIR]
# The stores are written under --work (default: a temporary directory on the same disk as
# the repository's target/, removed afterwards). As root, the page cache is dropped before
# each recovery, which then reads from disk.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out=""; rounds=5; messages=20000; retained=100000; queued=1000000; work=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --messages) messages="$2"; shift 2 ;;
        --retained) retained="$2"; shift 2 ;;
        --queued) queued="$2"; shift 2 ;;
        --work) work="$2"; shift 2 ;;
        -h | --help) awk 'NR > 1 && /^set /{exit} NR > 1' "$0"; exit 0 ;;
        *) echo "persistence-bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || { echo "persistence-bench.sh: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
if [ -z "$work" ]; then
    mkdir -p "$root/target"
    work="$(mktemp -d "$root/target/persistence-bench.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
fi

cargo build --release --quiet --manifest-path "$root/scripts/persistence-bench/Cargo.toml"
bin="$root/scripts/persistence-bench/target/release/persistence-bench"

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$root" rev-parse --short HEAD)"
    echo "cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "disk: $(df -T "$work" | awk 'NR == 2 {print $1, $2}')"
    echo "kernel: $(uname -r)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"

"$bin" "$work" "$rounds" "$messages" "$retained" "$queued" > "$out/persistence-bench.jsonl"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"

python3 - "$out/persistence-bench.jsonl" > "$out/summary.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs): return statistics.median(xs)
stores = ["ringmq-log", "fjall", "redb"]
print("| store | messages/s, fsync per message | per group of 16 | per group of 256 | disk after the write runs | recovery: 100k retained + 1M queued | disk holding them |")
print("|---|---|---|---|---|---|---|")
for s in stores:
    w = {b: [r for r in rows if r["test"] == "write" and r["store"] == s and r["batch"] == b] for b in (1, 16, 256)}
    rc = [r for r in rows if r["test"] == "recover" and r["store"] == s]
    def rate(b):
        xs = [r["messages_per_s"] for r in w[b]]
        return f"{med(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"
    secs = [r["recover_seconds"] for r in rc]
    print(f"| {s} | {rate(1)} | {rate(16)} | {rate(256)} | {med(r['disk_bytes'] for r in w[256]) / 2**20:.1f} MiB "
          f"| {med(secs):.2f} s ({min(secs):.2f}-{max(secs):.2f}) | {med(r['disk_bytes'] for r in rc) / 2**20:.0f} MiB |")
print()
print(f"Median of {len(set(r['round'] for r in rows))} rounds, range in brackets; records of {rc[0]['records']:,} for recovery; cold page cache: {rc[0]['cold_cache']}.")
PY
cat "$out/summary.md"
