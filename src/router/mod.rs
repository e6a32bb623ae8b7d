//! Routing inside one shard: which subscribers, which other shards, which retained messages.
//!
//! Everything here is pure data structures: no runtime, no clock, no sockets, no locks.
//! Each shard owns one [`Trie`] and one [`RetainedStore`] and changes them only from its
//! own thread; other shards' changes arrive as mesh messages the shard applies itself.
//!
//! # The trie
//!
//! One node per filter level, kept in a `Vec` arena (`u32` indexes, a free list, empty
//! nodes pruned on the way out, so churn does not grow memory). A node has its literal
//! children (a short scanned `Vec`, a `HashMap` once wide), and separate `+` and `#`
//! slots so a match never hashes a wildcard. Each node holds:
//!
//! - this shard's subscribers to the node's filter, with their subscription values;
//! - per other shard, how many subscriptions to this filter it has ([`ShardCounts`]):
//!   SUBSCRIBE and UNSUBSCRIBE on shard B send an interest change to every other shard,
//!   which calls [`Trie::add_remote_interest`] or [`Trie::remove_remote_interest`];
//! - its shared subscription groups: local members, other shards' member counts, and the
//!   group's [`SharedSelector`] state.
//!
//! A PUBLISH takes one walk ([`Trie::route`]): the local subscribers, the set of shards
//! to forward to ([`ShardSet`]), and the shared groups, each of which picks exactly one
//! member across all shards (see [`shared`]). The receiving shard walks its own trie
//! with [`Trie::route`] for its local subscribers only (forwarding and shared picks are
//! the sending shard's). Each shard caches recent walks per topic ([`RouteCache`]). A
//! match walks the topic's levels depth-first over a small inline stack: no allocation,
//! no recursion.
//!
//! Filters and topics reaching this module are already valid (see
//! [`crate::protocol::topic`]) and shared filters are already split into group and filter.

mod children;
pub mod matches;
mod node;
pub mod retained;
pub mod retained_order;
pub mod route_cache;
pub mod shard_set;
pub mod shared;
mod subscribers;
pub mod trie;

#[cfg(test)]
mod proptests;

pub use matches::{merge_overlapping, pick, Match, Pick};
pub use node::SharedGroupRef;
pub use retained::RetainedStore;
pub use retained_order::OrderedRetained;
pub use route_cache::RouteCache;
pub use shard_set::{ShardCounts, ShardSet, SHARDS_MAX};
pub use shared::{ShareStrategy, SharedSelector, Target, UnknownShareStrategy};
pub use trie::Trie;
