//! Trie benchmarks: match and subscribe/unsubscribe at 10k, 100k and 1M subscriptions.
//!
//! The filter mix is a fleet of devices: 90% exact `site/{s}/device/{i}/temp`, 8%
//! `site/{s}/+/+/temp`, 2% `site/{s}/#`. Sites grow with the trie (one per 100
//! subscriptions), so every size delivers a publish to about the same number of
//! subscribers (about 11) and what changes between sizes is the trie's size, not the
//! fan-out. Topics are drawn at random so that large tries pay their cache misses.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq::router::{ShardSet, Trie};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const SUBSCRIPTIONS_PER_SITE: usize = 100;
/// Topics per benchmark, cycled; enough to defeat the caches on the large tries.
const TOPICS: usize = 4096;
/// Other shards that get remote interest in the `route` benchmark.
const REMOTE_SHARDS: u16 = 8;

fn filter(i: usize, sites: usize) -> String {
    let site = i % sites;
    match i % 50 {
        0 => format!("site/{site}/#"),
        1..=4 => format!("site/{site}/+/+/temp"),
        _ => format!("site/{site}/device/{i}/temp"),
    }
}

fn topic(i: usize, sites: usize) -> String {
    format!("site/{}/device/{i}/temp", i % sites)
}

/// SplitMix64: reproducible indexes without a `rand` dependency.
fn random_indexes(count: usize, bound: usize) -> Vec<usize> {
    let mut state = 0x0123_4567_89ab_cdefu64;
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % bound as u64) as usize
        })
        .collect()
}

/// A trie with `size` local subscriptions (subscriber key = index) and remote interest
/// from [`REMOTE_SHARDS`] shards on one filter in ten.
fn build(size: usize) -> Trie<u32, u8> {
    let sites = size / SUBSCRIPTIONS_PER_SITE;
    let mut trie = Trie::new(0);
    for i in 0..size {
        let filter = filter(i, sites);
        trie.subscribe(&filter, i as u32, 1);
        if i % 10 == 0 {
            trie.add_remote_interest(&filter, 1 + (i as u16 % REMOTE_SHARDS));
        }
    }
    trie
}

fn bench_router(c: &mut Criterion) {
    for size in SIZES {
        let sites = size / SUBSCRIPTIONS_PER_SITE;
        let trie = build(size);
        let topics: Vec<String> = random_indexes(TOPICS, size).into_iter().map(|i| topic(i, sites)).collect();

        let mut group = c.benchmark_group("match");
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            let mut next = topics.iter().cycle();
            b.iter(|| {
                let topic = next.next().map_or("", String::as_str);
                let mut delivered = 0u32;
                trie.for_each_match(black_box(topic), |sub, value| {
                    delivered = delivered.wrapping_add(sub ^ u32::from(*value));
                });
                delivered
            });
        });
        group.finish();

        let mut group = c.benchmark_group("route");
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            let mut next = topics.iter().cycle();
            let mut shards = ShardSet::new();
            b.iter(|| {
                let topic = next.next().map_or("", String::as_str);
                shards.clear();
                let mut delivered = 0u32;
                trie.route(
                    black_box(topic),
                    &mut shards,
                    |sub, _| delivered = delivered.wrapping_add(sub),
                    |_| {},
                );
                (delivered, shards.len())
            });
        });
        group.finish();

        // New subscriptions next to the existing ones: a device that comes and goes.
        let mut trie = trie;
        let churn: Vec<String> = random_indexes(TOPICS, size)
            .into_iter()
            .enumerate()
            .map(|(n, i)| match n % 50 {
                0 => format!("site/{}/#", i % sites),
                _ => format!("site/{}/device/{}/temp", i % sites, size + i),
            })
            .collect();
        let mut group = c.benchmark_group("subscribe_unsubscribe");
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            let mut next = churn.iter().cycle();
            let sub = u32::MAX;
            b.iter(|| {
                let filter = next.next().map_or("a", String::as_str);
                trie.subscribe(black_box(filter), sub, 2);
                trie.unsubscribe(black_box(filter), sub)
            });
        });
        group.finish();
        assert_eq!(trie.len(), size, "churn left the trie as it found it");
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_router
}
criterion_main!(benches);
