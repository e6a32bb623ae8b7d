//! A small per-shard cache of recent routes: topic name → what the trie walk found.
//!
//! Traffic publishes to the same topics over and over (a sensor's topic, a pair's topic),
//! and a trie walk costs a level scan, a child lookup per level (string compares, a hash
//! on wide levels) and a callback per match: about a fifth of the broker's CPU per message
//! in the 10-pair QoS 0 benchmark (perf, 1 shard). A hit costs one hash of the topic and
//! one compare.
//!
//! Two-way set-associative: a topic's hash picks a set of two slots and a new topic
//! replaces the one used less recently, so the cache never grows, and a stream of
//! distinct topics costs a copy per miss, not a table that fills. (Direct-mapped, 1,000
//! topics in 1,024 slots would collide for over half of them; two ways per set keep
//! about 90% of a working set that size.) Entries are valid for one trie generation
//! ([`super::Trie::generation`]): any subscription change anywhere makes every entry
//! stale at once, so a cached route is always what a walk would give. Collisions
//! (chosen or not) only cost misses, never a wrong answer: the topic itself is compared.

/// Sets per shard, of [`WAYS`] slots each: 2,048 routes, about 200 KiB once all are
/// filled (allocated on the first publish), enough for the benchmarks' 10 to 1,000
/// topics per shard.
const SETS: usize = 1024;
const WAYS: usize = 2;
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
    /// Hit or filled more recently than the other slot of its set.
    recent: std::cell::Cell<bool>,
}

impl<M> Default for Slot<M> {
    fn default() -> Self {
        Slot {
            generation: 0,
            topic: Vec::new(),
            matches: Vec::new(),
            shards: Vec::new(),
            sources: 0,
            recent: std::cell::Cell::new(false),
        }
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
        // Bounded to the set's own slots: before the first insert `slots` is empty, and an
        // open range from 0 would give an empty set rather than `None`.
        let start = self.set(topic);
        let set = self.slots.get(start..start + WAYS)?;
        let way = (0..WAYS).find(|&w| set[w].generation == generation && set[w].topic == topic.as_bytes())?;
        let slot = &set[way];
        if !slot.recent.get() {
            // Written only on a change: a hot topic's hits leave its cache lines clean.
            set.iter().for_each(|s| s.recent.set(false));
            slot.recent.set(true);
        }
        Some(Route { matches: &slot.matches, shards: &slot.shards, sources: slot.sources })
    }

    /// Caches the route just walked for `topic` (replacing the slot's previous entry),
    /// unless it is too large to be worth it.
    pub fn insert(&mut self, topic: &str, generation: u64, matches: &[M], shards: &[u16], sources: usize) {
        debug_assert!(generation > 0, "generation 0 marks empty slots");
        if matches.len() > MATCHES_MAX || topic.len() > TOPIC_MAX {
            return;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(SETS * WAYS, Slot::default);
        }
        let start = self.set(topic);
        let set = &mut self.slots[start..start + WAYS];
        // A stale or empty slot first, else the one used less recently.
        let way = (0..WAYS)
            .find(|&w| set[w].generation != generation)
            .or_else(|| (0..WAYS).find(|&w| !set[w].recent.get()))
            .unwrap_or(0);
        for (w, slot) in set.iter().enumerate() {
            slot.recent.set(w == way);
        }
        let slot = &mut set[way];
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

    /// Index of the first slot of `topic`'s set.
    fn set(&self, topic: &str) -> usize {
        (hash(topic.as_bytes(), self.seed) >> (64 - SETS.trailing_zeros())) as usize * WAYS
    }
}

/// A fast multiply-rotate hash (FxHash's step, 8 bytes at a time). Only its high bits
/// are well mixed (a product's low bits depend only on its inputs' low bits), so sets are
/// picked by the high bits: with the low ones, topics differing in a chunk's last bytes
/// shared sets (a test caught 1,000 topics landing in about 160).
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
    (h.rotate_left(5) ^ tail).wrapping_mul(K)
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

    /// Three topics `{prefix}/{i}` that fall into the same set.
    fn three_sharing_a_set(cache: &RouteCache<u32>, prefix: &str) -> Vec<String> {
        let set = cache.set(&format!("{prefix}/0"));
        let topics: Vec<String> =
            (0..100_000).map(|i| format!("{prefix}/{i}")).filter(|t| cache.set(t) == set).take(3).collect();
        assert_eq!(topics.len(), 3, "three topics sharing one set");
        topics
    }

    #[test]
    fn a_full_set_keeps_the_route_used_last_and_never_confuses_topics() {
        let mut cache: RouteCache<u32> = RouteCache::new(1);
        let topics = three_sharing_a_set(&cache, "t");
        let (a, b, c) = (&topics[0], &topics[1], &topics[2]);
        cache.insert(a, 1, &[1], &[], 1);
        cache.insert(b, 1, &[2], &[], 1);
        assert_eq!(cache.get(a, 1).expect("both fit").matches, &[1]);
        assert_eq!(cache.get(b, 1).expect("both fit").matches, &[2]);
        // `a` used last: the third topic replaces `b`.
        assert!(cache.get(a, 1).is_some());
        cache.insert(c, 1, &[3], &[], 1);
        assert_eq!(cache.get(a, 1).expect("kept").matches, &[1]);
        assert!(cache.get(b, 1).is_none());
        assert_eq!(cache.get(c, 1).expect("cached").matches, &[3]);
    }

    #[test]
    fn stale_slots_are_reused_before_fresh_ones() {
        let mut cache: RouteCache<u32> = RouteCache::new(3);
        let topics = three_sharing_a_set(&cache, "s");
        cache.insert(&topics[0], 1, &[1], &[], 1);
        cache.insert(&topics[1], 2, &[2], &[], 1);
        cache.insert(&topics[2], 2, &[3], &[], 1);
        assert!(cache.get(&topics[1], 2).is_some(), "the generation-1 slot went, not this one");
        assert!(cache.get(&topics[2], 2).is_some());
    }

    #[test]
    fn an_empty_cache_misses_every_topic_including_those_of_the_first_set() {
        let cache: RouteCache<u32> = RouteCache::new(5);
        let first_set = (0..100_000)
            .map(|i| format!("t/{i}"))
            .find(|t| cache.set(t) == 0)
            .expect("a topic hashing to set 0");
        assert!(cache.get(&first_set, 1).is_none());
        assert!(cache.get("elsewhere", 1).is_none());
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
            (0..1000).map(|i| cache.set(&format!("sensors/{i}/temp"))).collect();
        // 1,000 topics into 1,024 sets: a uniform hash uses about 63% of them.
        assert!(used.len() > 550, "only {} sets used", used.len());
    }

    #[test]
    fn a_thousand_topics_mostly_stay_cached() {
        let mut cache: RouteCache<u32> = RouteCache::new(9);
        let topics: Vec<String> = (0..1000).map(|i| format!("lg/run/pairs/{i}")).collect();
        for t in &topics {
            cache.insert(t, 1, &[1], &[], 1);
        }
        let hits = topics.iter().filter(|t| cache.get(t, 1).is_some()).count();
        // Direct-mapped, about 630 would stay; with two ways per set a uniform hash keeps
        // about 900 (only sets drawing three or more topics lose any).
        assert!(hits > 850, "{hits} of 1000 cached");
    }
}
