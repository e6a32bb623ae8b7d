//! The per-shard subscription trie: one node per filter level.

use super::node::{Node, SharedGroup, SharedGroupRef, NONE, ROOT};
use super::shard_set::{ShardCounts, ShardSet};
use super::shared::SharedSelector;
use crate::protocol::topic::validate_topic_filter;
use std::hash::Hash;

/// Pending branches a match keeps on the stack before it spills to the heap; a branch is
/// pending only where a level has both a literal and a `+` child, so real topics stay
/// well below this and a match allocates nothing.
const WALK_INLINE: usize = 16;

/// A shard's topic trie: its own subscribers plus, per filter, the other shards' interest.
///
/// `S` is the subscriber key (the shard's session slot), `V` the subscription's value
/// (its options). Filters given to it must be valid ([`validate_topic_filter`]) and not
/// shared (`$share/` already split off); topics must be valid topic names.
#[derive(Debug)]
pub struct Trie<S, V> {
    nodes: Vec<Node<S, V>>,
    free: Vec<u32>,
    this_shard: u16,
    local_len: usize,
    /// Bumped by every change, so routes cached from a walk know when they are stale.
    generation: u64,
}

impl<S: Copy + Eq + Hash, V> Trie<S, V> {
    /// An empty trie for shard `this_shard`.
    pub fn new(this_shard: u16) -> Self {
        Self { nodes: vec![Node::new(NONE)], free: Vec::new(), this_shard, local_len: 0, generation: 1 }
    }

    /// Subscribes `sub` to `filter`; returns the value it replaces [MQTT-3.8.4-3].
    pub fn subscribe(&mut self, filter: &str, sub: S, value: V) -> Option<V> {
        self.generation += 1;
        let node = self.find_or_insert(filter);
        let replaced = self.nodes[node as usize].subs.insert(sub, value);
        if replaced.is_none() {
            self.local_len += 1;
        }
        replaced
    }

    /// Removes `sub`'s subscription to `filter`; returns its value if there was one.
    pub fn unsubscribe(&mut self, filter: &str, sub: S) -> Option<V> {
        self.generation += 1;
        let node = self.find(filter)?;
        let value = self.nodes[node as usize].subs.remove(sub)?;
        self.local_len -= 1;
        self.prune(node, filter);
        Some(value)
    }

    /// Adds `sub` to shared group `group` on `filter`; returns the value it replaces.
    pub fn subscribe_shared(&mut self, group: &str, filter: &str, sub: S, value: V) -> Option<V> {
        self.generation += 1;
        let node = self.find_or_insert(filter);
        let members = &mut self.group_or_insert(node, group, filter).members;
        if let Some(entry) = members.iter_mut().find(|(s, _)| *s == sub) {
            return Some(std::mem::replace(&mut entry.1, value));
        }
        members.push((sub, value));
        self.local_len += 1;
        None
    }

    /// Removes `sub` from shared group `group` on `filter`; returns its value if it was in.
    pub fn unsubscribe_shared(&mut self, group: &str, filter: &str, sub: S) -> Option<V> {
        self.generation += 1;
        let node = self.find(filter)?;
        let groups = &mut self.nodes[node as usize].shared;
        let g = groups.iter().position(|g| *g.name == *group)?;
        let position = groups[g].members.iter().position(|(s, _)| *s == sub)?;
        // `remove`, not `swap_remove`: selection state indexes members by position.
        let (_, value) = groups[g].members.remove(position);
        groups[g].selector.local_member_removed(position);
        if groups[g].members.is_empty() && groups[g].remote.is_empty() {
            groups.swap_remove(g);
        }
        self.local_len -= 1;
        self.prune(node, filter);
        Some(value)
    }

    /// Counts one more subscription to `filter` on another shard.
    pub fn add_remote_interest(&mut self, filter: &str, shard: u16) {
        self.generation += 1;
        assert_ne!(shard, self.this_shard, "remote interest from this shard");
        let node = self.find_or_insert(filter);
        self.nodes[node as usize].remote.increment(shard);
    }

    /// Counts one subscription fewer on `shard`; false if it had none on `filter`.
    pub fn remove_remote_interest(&mut self, filter: &str, shard: u16) -> bool {
        self.generation += 1;
        let Some(node) = self.find(filter) else {
            return false;
        };
        if self.nodes[node as usize].remote.decrement(shard).is_none() {
            return false;
        }
        self.prune(node, filter);
        true
    }

    /// Counts one more member of `group` on `filter` on another shard.
    pub fn add_remote_shared(&mut self, group: &str, filter: &str, shard: u16) {
        self.generation += 1;
        assert_ne!(shard, self.this_shard, "remote shared member from this shard");
        let node = self.find_or_insert(filter);
        self.group_or_insert(node, group, filter).remote.increment(shard);
    }

    /// Counts one member fewer of `group` on `filter` on `shard`; false if it had none.
    pub fn remove_remote_shared(&mut self, group: &str, filter: &str, shard: u16) -> bool {
        self.generation += 1;
        let Some(node) = self.find(filter) else {
            return false;
        };
        let groups = &mut self.nodes[node as usize].shared;
        let Some(g) = groups.iter().position(|g| *g.name == *group) else {
            return false;
        };
        if groups[g].remote.decrement(shard).is_none() {
            return false;
        }
        if groups[g].members.is_empty() && groups[g].remote.is_empty() {
            groups.swap_remove(g);
        }
        self.prune(node, filter);
        true
    }

    /// Calls `f` for every local, non-shared subscription whose filter matches `topic`;
    /// a subscriber with several matching filters is called once per filter.
    ///
    /// Returns how many trie nodes (filters) contributed subscribers: a subscriber holds
    /// at most one subscription per filter, so with fewer than two, none appears twice.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(S, &V)) -> usize {
        let mut sources = 0;
        self.walk(topic, |node| {
            let subs = node.subs.as_slice();
            sources += usize::from(!subs.is_empty());
            subs.iter().for_each(|(s, v)| f(*s, v))
        });
        sources
    }

    /// Adds to `out` every other shard with a non-shared subscription matching `topic`.
    pub fn remote_shards(&self, topic: &str, out: &mut ShardSet) {
        self.walk(topic, |node| node.remote.add_to(out));
    }

    /// Calls `f` for every shared `(group, filter)` pair whose filter matches `topic`.
    pub fn for_each_shared_match(&self, topic: &str, mut f: impl FnMut(SharedGroupRef<'_, S, V>)) {
        let this_shard = self.this_shard;
        self.walk(topic, |node| {
            for group in &node.shared {
                f(SharedGroupRef { group, this_shard });
            }
        });
    }

    /// The publish path in one walk: local matches to `local`, interested shards into
    /// `out`, matching shared groups to `shared`. Returns the number of filters that
    /// contributed local matches, as [`Trie::for_each_match`] does.
    pub fn route(
        &self,
        topic: &str,
        out: &mut ShardSet,
        mut local: impl FnMut(S, &V),
        mut shared: impl FnMut(SharedGroupRef<'_, S, V>),
    ) -> usize {
        let this_shard = self.this_shard;
        let mut sources = 0;
        self.walk(topic, |node| {
            let subs = node.subs.as_slice();
            sources += usize::from(!subs.is_empty());
            subs.iter().for_each(|(s, v)| local(*s, v));
            node.remote.add_to(out);
            for group in &node.shared {
                shared(SharedGroupRef { group, this_shard });
            }
        });
        sources
    }

    /// The shared group `group` on exactly `filter` (for a message another shard sent here).
    pub fn shared_group(&self, group: &str, filter: &str) -> Option<SharedGroupRef<'_, S, V>> {
        let node = self.find(filter)?;
        let group = self.nodes[node as usize].shared.iter().find(|g| *g.name == *group)?;
        Some(SharedGroupRef { group, this_shard: self.this_shard })
    }

    /// Number of local subscriptions, plain and shared.
    pub fn len(&self) -> usize {
        self.local_len
    }

    /// Whether the trie holds no subscription and no remote interest.
    pub fn is_empty(&self) -> bool {
        self.node_count() == 1
    }

    /// Live nodes, the root included (1 when empty: pruning frees everything else).
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Changes with every subscription change (never 0): a route walked in one
    /// generation holds until the generation changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// This shard's id.
    pub fn this_shard(&self) -> u16 {
        self.this_shard
    }

    /// Visits every node whose filter matches `topic`, each once.
    ///
    /// Depth first over an explicit stack of `(node, byte offset of the next level)`:
    /// no recursion (a topic may have 32,768 levels) and no allocation below
    /// [`WALK_INLINE`] pending branches.
    fn walk<'t>(&'t self, topic: &str, mut visit: impl FnMut(&'t Node<S, V>)) {
        // One past the end: every level consumed.
        let done = topic.len() + 1;
        let mut stack = WalkStack::new();
        stack.push((ROOT, 0));
        while let Some((index, position)) = stack.pop() {
            let node = &self.nodes[index as usize];
            if position == done {
                visit(node);
                // `a/#` matches `a`: `#` covers its parent level.
                if node.hash != NONE {
                    visit(&self.nodes[node.hash as usize]);
                }
                continue;
            }
            let rest = &topic[position..];
            // A byte scan: levels are short, shorter than memchr's set-up pays for.
            let (level, next) = match rest.as_bytes().iter().position(|&b| b == b'/') {
                Some(slash) => (&rest[..slash], position + slash + 1),
                None => (rest, done),
            };
            // [MQTT-4.7.2-1] No wildcard at the first level matches a `$` topic.
            if index != ROOT || !level.starts_with('$') {
                if node.hash != NONE {
                    visit(&self.nodes[node.hash as usize]);
                }
                if node.plus != NONE {
                    stack.push((node.plus, next));
                }
            }
            if let Some(child) = node.children.get(level) {
                stack.push((child, next));
            }
        }
    }

    /// The node for exactly `filter`, wildcards taken literally.
    fn find(&self, filter: &str) -> Option<u32> {
        debug_assert!(validate_topic_filter(filter).is_ok(), "invalid filter {filter:?}");
        let mut index = ROOT;
        for level in filter.split('/') {
            let node = &self.nodes[index as usize];
            index = match level {
                "+" => node.plus,
                "#" => node.hash,
                _ => node.children.get(level).unwrap_or(NONE),
            };
            if index == NONE {
                return None;
            }
        }
        Some(index)
    }

    /// The node for exactly `filter`, created with its missing ancestors.
    fn find_or_insert(&mut self, filter: &str) -> u32 {
        debug_assert!(validate_topic_filter(filter).is_ok(), "invalid filter {filter:?}");
        let mut index = ROOT;
        for level in filter.split('/') {
            let node = &self.nodes[index as usize];
            let existing = match level {
                "+" => node.plus,
                "#" => node.hash,
                _ => node.children.get(level).unwrap_or(NONE),
            };
            if existing != NONE {
                index = existing;
                continue;
            }
            let child = self.alloc(index);
            let node = &mut self.nodes[index as usize];
            match level {
                "+" => node.plus = child,
                "#" => node.hash = child,
                _ => node.children.insert(level, child),
            }
            index = child;
        }
        index
    }

    /// The group `name` at `node`, created empty if absent.
    fn group_or_insert(&mut self, node: u32, name: &str, filter: &str) -> &mut SharedGroup<S, V> {
        let groups = &mut self.nodes[node as usize].shared;
        let g = match groups.iter().position(|g| *g.name == *name) {
            Some(g) => g,
            None => {
                groups.push(SharedGroup {
                    name: name.into(),
                    filter: filter.into(),
                    members: Vec::new(),
                    remote: ShardCounts::new(),
                    selector: SharedSelector::new(),
                });
                groups.len() - 1
            }
        };
        &mut groups[g]
    }

    fn alloc(&mut self, parent: u32) -> u32 {
        if let Some(index) = self.free.pop() {
            self.nodes[index as usize] = Node::new(parent);
            return index;
        }
        let index = u32::try_from(self.nodes.len()).expect("trie node count overflows u32");
        assert_ne!(index, NONE, "trie node count overflows u32");
        self.nodes.push(Node::new(parent));
        index
    }

    /// Frees `node` (the node for `filter`) and its ancestors while they are unused.
    fn prune(&mut self, mut node: u32, filter: &str) {
        // Walking up, the levels come off the end of the filter: no key stored per node.
        let mut levels = filter.rsplit('/');
        while node != ROOT && self.nodes[node as usize].is_unused() {
            let parent = self.nodes[node as usize].parent;
            let parent_node = &mut self.nodes[parent as usize];
            match levels.next() {
                Some("+") => parent_node.plus = NONE,
                Some("#") => parent_node.hash = NONE,
                Some(level) => {
                    let removed = parent_node.children.remove(level);
                    debug_assert_eq!(removed, Some(node));
                }
                None => {
                    debug_assert!(false, "node {node} deeper than its filter {filter:?}");
                    return;
                }
            }
            // Replace, not just free-list: drops the node's buffers now.
            self.nodes[node as usize] = Node::new(NONE);
            self.free.push(node);
            node = parent;
        }
    }
}

/// The match walk's stack: inline up to [`WALK_INLINE`] entries, then a heap spill.
struct WalkStack {
    inline: [(u32, usize); WALK_INLINE],
    len: usize,
    spill: Vec<(u32, usize)>,
}

impl WalkStack {
    fn new() -> Self {
        Self { inline: [(0, 0); WALK_INLINE], len: 0, spill: Vec::new() }
    }

    #[inline]
    fn push(&mut self, entry: (u32, usize)) {
        if self.len < WALK_INLINE {
            self.inline[self.len] = entry;
            self.len += 1;
        } else {
            self.spill.push(entry);
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<(u32, usize)> {
        // The spill only fills while the inline part is full, so it holds the newest.
        if let Some(entry) = self.spill.pop() {
            return Some(entry);
        }
        self.len = self.len.checked_sub(1)?;
        Some(self.inline[self.len])
    }
}

#[cfg(test)]
#[path = "trie_tests.rs"]
mod tests;
