//! The subscribers to one filter: a `Vec` to walk, and an index once it is long.

use std::collections::HashMap;
use std::hash::Hash;

/// Above this many subscribers a filter gets a subscriber → position index, so that
/// (un)subscribing to a filter everyone shares (`broadcast/#`) stays O(1), not O(n).
const INDEX_MIN: usize = 32;

/// One filter's subscribers with their values, at most one entry per subscriber.
#[derive(Debug)]
pub(crate) struct Subscribers<S, V> {
    entries: Vec<(S, V)>,
    // Boxed so that the common, unindexed case costs one pointer in every node.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<S, u32>>>,
}

impl<S, V> Default for Subscribers<S, V> {
    fn default() -> Self {
        Self { entries: Vec::new(), index: None }
    }
}

impl<S: Copy + Eq + Hash, V> Subscribers<S, V> {
    /// Adds or replaces `sub`'s entry; returns the value it replaces.
    pub(crate) fn insert(&mut self, sub: S, value: V) -> Option<V> {
        if let Some(position) = self.position(sub) {
            return Some(std::mem::replace(&mut self.entries[position].1, value));
        }
        let position = self.entries.len();
        self.entries.push((sub, value));
        match &mut self.index {
            Some(index) => {
                index.insert(sub, position as u32);
            }
            None if self.entries.len() > INDEX_MIN => {
                let index = self.entries.iter().enumerate().map(|(i, (s, _))| (*s, i as u32)).collect();
                self.index = Some(Box::new(index));
            }
            None => {}
        }
        None
    }

    /// Removes `sub`'s entry; returns its value.
    pub(crate) fn remove(&mut self, sub: S) -> Option<V> {
        let position = self.position(sub)?;
        let (_, value) = self.entries.swap_remove(position);
        if let Some(index) = &mut self.index {
            index.remove(&sub);
            // The last entry moved into the hole.
            if let Some((moved, _)) = self.entries.get(position) {
                index.insert(*moved, position as u32);
            }
            if self.entries.len() <= INDEX_MIN / 2 {
                self.index = None;
            }
        }
        if self.entries.is_empty() {
            // Give the buffer back: a filter that churns must not keep it.
            self.entries = Vec::new();
        }
        Some(value)
    }

    fn position(&self, sub: S) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&sub).map(|&p| p as usize),
            None => self.entries.iter().position(|(s, _)| *s == sub),
        }
    }
}

impl<S, V> Subscribers<S, V> {
    /// Every entry, in no particular order.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[(S, V)] {
        &self.entries
    }

    /// Whether the filter has no local subscriber.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_subscribers_to_one_filter_are_indexed_and_stay_consistent() {
        let mut subs = Subscribers::default();
        for sub in 0..100u32 {
            assert_eq!(subs.insert(sub, sub), None);
        }
        assert!(subs.index.is_some());
        assert_eq!(subs.insert(7, 700), Some(7));
        // Remove from the middle and the end, so entries move and the index follows.
        for sub in (0..100u32).filter(|s| s % 3 == 0) {
            assert_eq!(subs.remove(sub), Some(sub));
            assert_eq!(subs.remove(sub), None);
        }
        for sub in (0..100u32).filter(|s| s % 3 != 0) {
            let expected = if sub == 7 { 700 } else { sub };
            assert_eq!(subs.remove(sub), Some(expected), "sub {sub}");
        }
        assert!(subs.is_empty());
        assert!(subs.index.is_none());
        assert_eq!(subs.entries.capacity(), 0);
    }
}
