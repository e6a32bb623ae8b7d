//! Trie nodes and the shared-group view a match hands out.

use super::children::Children;
use super::shard_set::ShardCounts;
use super::shared::{ShareStrategy, SharedSelector, Target};
use super::subscribers::Subscribers;

/// Marks an absent `+` or `#` child.
pub(crate) const NONE: u32 = u32::MAX;
/// The root node stands for "no level yet"; it is never freed.
pub(crate) const ROOT: u32 = 0;

/// One filter level. A node is the filter spelled by the levels from the root to it.
#[derive(Debug)]
pub(crate) struct Node<S, V> {
    pub(crate) parent: u32,
    pub(crate) plus: u32,
    pub(crate) hash: u32,
    pub(crate) children: Children,
    pub(crate) subs: Subscribers<S, V>,
    pub(crate) shared: Vec<SharedGroup<S, V>>,
    pub(crate) remote: ShardCounts,
}

impl<S, V> Node<S, V> {
    pub(crate) fn new(parent: u32) -> Self {
        Self {
            parent,
            plus: NONE,
            hash: NONE,
            children: Children::default(),
            subs: Subscribers::default(),
            shared: Vec::new(),
            remote: ShardCounts::new(),
        }
    }

    /// Whether the node holds nothing and leads nowhere, so it can be pruned.
    pub(crate) fn is_unused(&self) -> bool {
        self.subs.is_empty()
            && self.shared.is_empty()
            && self.remote.is_empty()
            && self.children.is_empty()
            && self.plus == NONE
            && self.hash == NONE
    }
}

/// One shared subscription group at one filter: local members and other shards' counts.
#[derive(Debug)]
pub(crate) struct SharedGroup<S, V> {
    pub(crate) name: Box<str>,
    /// The filter after `$share/{name}/`, so a forward to another shard can name the group.
    pub(crate) filter: Box<str>,
    pub(crate) members: Vec<(S, V)>,
    pub(crate) remote: ShardCounts,
    pub(crate) selector: SharedSelector,
}

/// A matching `(group, filter)` pair, as the shared walk hands it out.
#[derive(Debug)]
pub struct SharedGroupRef<'a, S, V> {
    pub(crate) group: &'a SharedGroup<S, V>,
    pub(crate) this_shard: u16,
}

impl<S, V> Clone for SharedGroupRef<'_, S, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, V> Copy for SharedGroupRef<'_, S, V> {}

impl<'a, S, V> SharedGroupRef<'a, S, V> {
    /// The share name.
    pub fn group(&self) -> &'a str {
        &self.group.name
    }

    /// The group's topic filter (without the `$share/{group}/` prefix).
    pub fn filter(&self) -> &'a str {
        &self.group.filter
    }

    /// This shard's members, in the order selection indexes them.
    pub fn members(&self) -> &'a [(S, V)] {
        &self.group.members
    }

    /// Member counts on the other shards.
    pub fn remote_counts(&self) -> &'a ShardCounts {
        &self.group.remote
    }

    /// The group's selection state.
    pub fn selector(&self) -> &'a SharedSelector {
        &self.group.selector
    }

    /// Picks the one member, on any shard, for a message published on this shard.
    ///
    /// Always `Some` for a group the trie hands out: it drops groups with no member left.
    pub fn select(&self, strategy: ShareStrategy, publisher_hash: u64, random: u64) -> Option<Target> {
        self.group.selector.select(
            strategy,
            self.group.members.len(),
            &self.group.remote,
            self.this_shard,
            publisher_hash,
            random,
        )
    }

    /// Picks a local member for a message another shard chose this shard for.
    pub fn select_local(
        &self,
        strategy: ShareStrategy,
        publisher_hash: u64,
        random: u64,
    ) -> Option<&'a (S, V)> {
        let members = &self.group.members;
        let index = self.group.selector.select_local(strategy, members.len(), publisher_hash, random)?;
        members.get(index)
    }
}
