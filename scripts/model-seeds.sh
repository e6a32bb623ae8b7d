#!/usr/bin/env bash
# Runs the randomized multi-shard model test (src/shard/model_tests.rs) over more seeds
# than `cargo test` does (600), in release mode. Bounded: N seeds, each a fixed number
# of operations on the in-memory harness (about 1 ms each in release).
#
#   scripts/model-seeds.sh [N]          # default 20000
#   RINGMQ_MODEL_SEED=S cargo test --lib random_operations   # replay one seed
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20000}"
RINGMQ_MODEL_SEEDS="$n" cargo test --release --lib -q random_operations_across_shards -- --nocapture
