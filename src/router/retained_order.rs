//! Retained messages in a process-wide order. Every shard keeps its own copy of the
//! retained index, and updates from different shards reach it in any order: each update
//! carries a sequence number from one process-wide counter, and a copy keeps the newest.
//! A clear leaves a tombstone for [`TOMBSTONE_TTL_MS`], so that an older set arriving
//! late cannot bring the message back. Time is passed in (milliseconds on the shard clock).

use super::RetainedStore;
use std::collections::VecDeque;

/// How long a cleared retained message is remembered: far longer than any mesh delay.
pub const TOMBSTONE_TTL_MS: u64 = 10_000;

/// A retained message (or its clearing) and its place in the process-wide order.
#[derive(Clone, Debug)]
struct Versioned<M> {
    seq: u64,
    message: Option<M>,
}

/// The retained index of one shard, newest update per topic.
#[derive(Debug)]
pub struct OrderedRetained<M> {
    store: RetainedStore<Versioned<M>>,
    /// Cleared topics, oldest first: (cleared at, topic, the clear's sequence number).
    tombstones: VecDeque<(u64, Box<str>, u64)>,
}

impl<M> Default for OrderedRetained<M> {
    fn default() -> Self {
        OrderedRetained { store: RetainedStore::new(), tombstones: VecDeque::new() }
    }
}

impl<M> OrderedRetained<M> {
    /// Applies update `seq` for `topic` (`None` clears) unless a newer one is in place.
    pub fn apply(&mut self, topic: &str, seq: u64, message: Option<M>, now_ms: u64) {
        if self.store.get(topic).is_some_and(|r| r.seq > seq) {
            return;
        }
        if message.is_none() {
            self.tombstones.push_back((now_ms, topic.into(), seq));
        }
        self.store.set(topic, Versioned { seq, message });
    }

    /// Forgets tombstones older than [`TOMBSTONE_TTL_MS`]: by then no older update is in
    /// flight.
    pub fn prune(&mut self, now_ms: u64) {
        while let Some((at, topic, seq)) = self.tombstones.front() {
            if now_ms.saturating_sub(*at) < TOMBSTONE_TTL_MS {
                break;
            }
            if self.store.get(topic).is_some_and(|r| r.seq == *seq && r.message.is_none()) {
                self.store.remove(topic);
            }
            self.tombstones.pop_front();
        }
    }

    /// Calls `f` with every retained message whose topic matches `filter`.
    pub fn for_each_match(&self, filter: &str, mut f: impl FnMut(&M)) {
        self.store.for_each_match(filter, |r| {
            if let Some(m) = &r.message {
                f(m)
            }
        });
    }

    /// The retained message of `topic`, if one is set.
    pub fn get(&self, topic: &str) -> Option<&M> {
        self.store.get(topic)?.message.as_ref()
    }

    /// Topics held, tombstones included.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether nothing is held, not even a tombstone.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_update_arriving_late_does_not_replace_a_newer_one() {
        let mut r = OrderedRetained::default();
        r.apply("a/b", 5, Some("new"), 0);
        r.apply("a/b", 3, Some("old"), 0);
        assert_eq!(r.get("a/b"), Some(&"new"));
    }

    #[test]
    fn a_clear_keeps_an_older_set_out_until_its_tombstone_expires() {
        let mut r = OrderedRetained::default();
        r.apply("a/b", 7, None, 1_000);
        r.apply("a/b", 6, Some("stale"), 1_500);
        assert_eq!(r.get("a/b"), None, "the tombstone is newer");
        r.prune(1_000 + TOMBSTONE_TTL_MS - 1);
        assert_eq!(r.len(), 1, "the tombstone is still held");
        r.prune(1_000 + TOMBSTONE_TTL_MS);
        assert!(r.is_empty(), "the tombstone is gone once its time has passed");
    }

    #[test]
    fn a_tombstone_replaced_by_a_newer_set_is_not_pruned_away() {
        let mut r = OrderedRetained::default();
        r.apply("t", 1, None, 0);
        r.apply("t", 2, Some("back"), 10);
        r.prune(TOMBSTONE_TTL_MS * 2);
        assert_eq!(r.get("t"), Some(&"back"));
        let mut seen = Vec::new();
        r.for_each_match("#", |m| seen.push(*m));
        assert_eq!(seen, vec!["back"]);
    }
}
