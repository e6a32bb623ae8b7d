//! Sets of shards and per-shard counts, the two shapes remote interest takes.

/// Most shards a process may run; shard ids are `0..SHARDS_MAX`.
pub const SHARDS_MAX: usize = 1024;

const WORDS: usize = SHARDS_MAX / 64;

/// A set of shard ids, as a fixed bitset: no allocation, so a caller can keep one and
/// `clear` it before each publish.
#[derive(Clone, PartialEq, Eq)]
pub struct ShardSet {
    words: [u64; WORDS],
}

impl Default for ShardSet {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl ShardSet {
    /// An empty set.
    pub const fn new() -> Self {
        Self { words: [0; WORDS] }
    }

    /// Adds `shard`; returns whether it was absent.
    pub fn insert(&mut self, shard: u16) -> bool {
        let (word, bit) = Self::position(shard);
        let absent = self.words[word] & bit == 0;
        self.words[word] |= bit;
        absent
    }

    /// Removes `shard`; returns whether it was present.
    pub fn remove(&mut self, shard: u16) -> bool {
        let (word, bit) = Self::position(shard);
        let present = self.words[word] & bit != 0;
        self.words[word] &= !bit;
        present
    }

    /// Whether `shard` is in the set.
    pub fn contains(&self, shard: u16) -> bool {
        let (word, bit) = Self::position(shard);
        self.words[word] & bit != 0
    }

    /// Empties the set.
    pub fn clear(&mut self) {
        self.words = [0; WORDS];
    }

    /// Whether the set has no shard.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Number of shards in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The shards in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.words.iter().enumerate().flat_map(|(index, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                // Fits: index < WORDS and bit < 64, so the id is below SHARDS_MAX.
                Some((index * 64 + bit as usize) as u16)
            })
        })
    }

    fn position(shard: u16) -> (usize, u64) {
        let shard = usize::from(shard);
        assert!(shard < SHARDS_MAX, "shard id {shard} >= SHARDS_MAX");
        (shard / 64, 1u64 << (shard % 64))
    }
}

/// A count per shard, for the few shards that have any: sorted by shard id, so a node
/// with no remote interest costs one empty `Vec` and lookups are a binary search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardCounts {
    counts: Vec<(u16, u32)>,
}

impl ShardCounts {
    /// No shard counted.
    pub const fn new() -> Self {
        Self { counts: Vec::new() }
    }

    /// Adds one to `shard`'s count; returns the new count.
    pub fn increment(&mut self, shard: u16) -> u32 {
        assert!(usize::from(shard) < SHARDS_MAX, "shard id {shard} >= SHARDS_MAX");
        match self.counts.binary_search_by_key(&shard, |&(s, _)| s) {
            Ok(i) => {
                self.counts[i].1 += 1;
                self.counts[i].1
            }
            Err(i) => {
                self.counts.insert(i, (shard, 1));
                1
            }
        }
    }

    /// Takes one from `shard`'s count, forgetting the shard at zero; `None` if it had none.
    pub fn decrement(&mut self, shard: u16) -> Option<u32> {
        let i = self.counts.binary_search_by_key(&shard, |&(s, _)| s).ok()?;
        self.counts[i].1 -= 1;
        let left = self.counts[i].1;
        if left == 0 {
            self.counts.remove(i);
            if self.counts.is_empty() {
                // Give the buffer back: a node that churns must not keep it.
                self.counts = Vec::new();
            }
        }
        Some(left)
    }

    /// `shard`'s count (0 when absent).
    pub fn get(&self, shard: u16) -> u32 {
        match self.counts.binary_search_by_key(&shard, |&(s, _)| s) {
            Ok(i) => self.counts[i].1,
            Err(_) => 0,
        }
    }

    /// Whether no shard has a count.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Sum of all counts.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&(_, c)| u64::from(c)).sum()
    }

    /// `(shard, count)` for every shard with a count above zero, by increasing shard id.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.counts.iter().copied()
    }

    /// Adds every counted shard to `set`.
    pub fn add_to(&self, set: &mut ShardSet) {
        for &(shard, _) in &self.counts {
            set.insert(shard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_set_holds_ids_up_to_shards_max() {
        let mut set = ShardSet::new();
        assert!(set.is_empty());
        for shard in [0u16, 1, 63, 64, 500, 1023] {
            assert!(set.insert(shard));
            assert!(!set.insert(shard));
            assert!(set.contains(shard));
        }
        assert_eq!(set.len(), 6);
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 1, 63, 64, 500, 1023]);
        assert!(set.remove(63));
        assert!(!set.remove(63));
        assert!(!set.contains(63));
        assert_eq!(format!("{set:?}"), "{0, 1, 64, 500, 1023}");
        set.clear();
        assert!(set.is_empty());
        assert_eq!(set.iter().count(), 0);
    }

    #[test]
    #[should_panic(expected = "SHARDS_MAX")]
    fn shard_set_rejects_id_beyond_shards_max() {
        ShardSet::new().insert(SHARDS_MAX as u16);
    }

    #[test]
    fn shard_counts_count_up_and_down_and_forget_zero() {
        let mut counts = ShardCounts::new();
        assert_eq!(counts.increment(7), 1);
        assert_eq!(counts.increment(2), 1);
        assert_eq!(counts.increment(7), 2);
        assert_eq!(counts.get(7), 2);
        assert_eq!(counts.get(3), 0);
        assert_eq!(counts.total(), 3);
        assert_eq!(counts.iter().collect::<Vec<_>>(), [(2, 1), (7, 2)]);
        let mut set = ShardSet::new();
        counts.add_to(&mut set);
        assert_eq!(set.iter().collect::<Vec<_>>(), [2, 7]);
        assert_eq!(counts.decrement(7), Some(1));
        assert_eq!(counts.decrement(7), Some(0));
        assert_eq!(counts.decrement(7), None);
        assert_eq!(counts.decrement(2), Some(0));
        assert!(counts.is_empty());
    }
}
