//! A small per-shard cache of recent routes: topic name → what the trie walk found.
//!
//! Traffic publishes to the same topics over and over (a sensor's topic, a pair's topic),
//! and a trie walk costs a level scan, a child lookup per level (string compares, a hash
//! on wide levels) and a callback per match: about a fifth of the broker's CPU per message
//! in the 10-pair QoS 0 benchmark (perf, 1 shard). A hit costs one hash of the topic and
//! one compare.
//!
//! Direct-mapped: a topic's hash picks its one slot and a new topic overwrites whatever
//! was there, so the cache never grows, needs no eviction bookkeeping, and a stream of
//! distinct topics costs a copy per miss, not a table that fills. Entries are valid for
//! one trie generation ([`super::Trie::generation`]): any subscription change anywhere
//! makes every entry stale at once, so a cached route is always what a walk would give.
//! Collisions (chosen or not) only cost misses, never a wrong answer: the topic itself
//! is compared.

/// Slots per shard. 1,024 routes cover a shard's hot topics in the benchmarks (10 to
/// 1,000 topics) at about 100 KiB once all are filled.
const SLOTS: usize = 1024;
/// Routes with more local matches are not cached: the walk is a small part of such a
/// publish (its deliveries dominate) and the copy would cost memory per slot.
pub const MATCHES_MAX: usize = 16;
/// Longer topics are not cached (the copy per miss grows with them).
pub const TOPIC_MAX: usize = 256;

/// A cached route: the local matches (before per-publisher filtering such as No Local),
/// the other shards to forward to, and how many filters contributed matches.
#[derive(Debug)]
pub struct Route<'a, M> {
    pub matches: &'a [M],
    pub shards: &'a [u16],
    pub sources: usize,
}

#[derive(Debug)]
struct Slot<M> {
    /// Trie generation the entry was filled in; 0: empty (generations start at 1).
    generation: u64,
    topic: Vec<u8>,
    matches: Vec<M>,
    shards: Vec<u16>,
    sources: usize,
}

impl<M> Default for Slot<M> {
    fn default() -> Self {
        Slot { generation: 0, topic: Vec::new(), matches: Vec::new(), shards: Vec::new(), sources: 0 }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct RouteCache<M> {
    /// Allocated on the first insert, so an idle shard pays nothing.
    slots: Vec<Slot<M>>,
    seed: u64,
}

impl<M: Clone> RouteCache<M> {
    /// An empty cache; `seed` varies the slot each topic takes.
    pub fn new(seed: u64) -> Self {
        RouteCache { slots: Vec::new(), seed }
    }

    /// The route cached for `topic` in trie generation `generation`, if any.
    #[inline]
    pub fn get(&self, topic: &str, generation: u64) -> Option<Route<'_, M>> {
        let slot = self.slots.get(self.index(topic))?;
        (slot.generation == generation && slot.topic == topic.as_bytes()).then(|| Route {
            matches: &slot.matches,
            shards: &slot.shards,
            sources: slot.sources,
        })
    }

    /// Caches the route just walked for `topic` (replacing the slot's previous entry),
    /// unless it is too large to be worth it.
    pub fn insert(&mut self, topic: &str, generation: u64, matches: &[M], shards: &[u16], sources: usize) {
        debug_assert!(generation > 0, "generation 0 marks empty slots");
        if matches.len() > MATCHES_MAX || topic.len() > TOPIC_MAX {
            return;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, Slot::default);
        }
        let index = self.index(topic);
        let slot = &mut self.slots[index];
        slot.generation = generation;
        // Reusing the slot's buffers: after warm-up a miss allocates nothing.
        slot.topic.clear();
        slot.topic.extend_from_slice(topic.as_bytes());
        slot.matches.clear();
        slot.matches.extend_from_slice(matches);
        slot.shards.clear();
        slot.shards.extend_from_slice(shards);
        slot.sources = sources;
    }

    fn index(&self, topic: &str) -> usize {
        (hash(topic.as_bytes(), self.seed) as usize) & (SLOTS - 1)
    }
}

/// A fast multiply-rotate hash (FxHash's step, 8 bytes at a time) with a final mix so the
/// low bits, which pick the slot, depend on every byte.
fn hash(bytes: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = seed ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
        h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    }
    // The tail folded in a byte at a time: a copy into a stack buffer would go through
    // memcpy and stall the load that reads it back (perf showed both).
    let tail = chunks.remainder().iter().fold(0u64, |t, &b| (t << 8) | b as u64);
    h = (h.rotate_left(5) ^ tail).wrapping_mul(K);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_found_only_for_its_topic_and_generation() {
        let mut cache: RouteCache<u32> = RouteCache::new(7);
        assert!(cache.get("a/b", 1).is_none());
        cache.insert("a/b", 1, &[3, 4], &[2], 2);
        let r = cache.get("a/b", 1).expect("cached");
        assert_eq!((r.matches, r.shards, r.sources), (&[3, 4][..], &[2u16][..], 2));
        assert!(cache.get("a/b", 2).is_none(), "a newer trie generation makes it stale");
        assert!(cache.get("a/c", 1).is_none());
        assert!(cache.get("a/b/", 1).is_none());
    }

    #[test]
    fn a_colliding_topic_replaces_the_slot_and_is_never_confused_with_it() {
        let mut cache: RouteCache<u32> = RouteCache::new(1);
        let first = "t/0".to_string();
        let index = cache.index(&first);
        let other = (1..100_000)
            .map(|i| format!("t/{i}"))
            .find(|t| cache.index(t) == index)
            .expect("some topic shares the slot");
        cache.insert(&first, 1, &[1], &[], 1);
        cache.insert(&other, 1, &[2], &[], 1);
        assert!(cache.get(&first, 1).is_none());
        assert_eq!(cache.get(&other, 1).expect("cached").matches, &[2]);
    }

    #[test]
    fn large_routes_and_long_topics_are_not_cached() {
        let mut cache: RouteCache<u32> = RouteCache::new(0);
        let many: Vec<u32> = (0..MATCHES_MAX as u32 + 1).collect();
        cache.insert("wide", 1, &many, &[], 1);
        assert!(cache.get("wide", 1).is_none());
        let long = "x".repeat(TOPIC_MAX + 1);
        cache.insert(&long, 1, &[1], &[], 1);
        assert!(cache.get(&long, 1).is_none());
        cache.insert("fits", 1, &many[..MATCHES_MAX], &[], 1);
        assert_eq!(cache.get("fits", 1).expect("cached").matches.len(), MATCHES_MAX);
    }

    #[test]
    fn empty_routes_are_cached_too() {
        let mut cache: RouteCache<u32> = RouteCache::new(0);
        cache.insert("nobody/listens", 1, &[], &[], 0);
        let r = cache.get("nobody/listens", 1).expect("cached");
        assert!(r.matches.is_empty() && r.shards.is_empty());
        assert_eq!(r.sources, 0);
    }

    #[test]
    fn the_hash_spreads_similar_topics() {
        let cache: RouteCache<u32> = RouteCache::new(42);
        let used: std::collections::HashSet<usize> =
            (0..1000).map(|i| cache.index(&format!("sensors/{i}/temp"))).collect();
        // 1,000 topics into 1,024 slots: a uniform hash fills about 63%.
        assert!(used.len() > 550, "only {} slots used", used.len());
    }
}
