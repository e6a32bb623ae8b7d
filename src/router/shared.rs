//! Choosing the one member of a shared subscription group that gets a message.
//!
//! Every shard knows, for a `(group, filter)` pair, its own members and how many members
//! each other shard has (the counts come with interest changes over the mesh). The shard
//! that receives a PUBLISH picks a *global slot* in `0..total`, where `total` is the sum of
//! all shards' member counts, and maps it to a shard by laying the shards' counts end to
//! end in shard-id order (cumulative counts; this shard's own count sits at its id):
//!
//! ```text
//! shard:    0      1    2        (this shard is 1)
//! members: [a b] [c]  [d e f]    slot 3 → shard 2, which picks one of d, e, f
//! ```
//!
//! A slot on this shard names a local member directly ([`Target::Local`]). A slot on
//! another shard sends the message there ([`Target::Shard`]); that shard picks one of its
//! own members with [`SharedSelector::select_local`]. Either way exactly one member gets
//! the message. Counts cross shards asynchronously, so a shard chosen a moment ago may
//! have lost its members when the message arrives: `select_local` then answers `None`
//! and the caller decides (send it back, pick again, drop QoS 0).
//!
//! Nothing here draws random numbers or reads a clock: the caller passes a random `u64`
//! and the publisher's client-id hash, which keeps selection a pure, testable function.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use super::shard_set::ShardCounts;

/// How a shared subscription group spreads messages over its members (a config choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareStrategy {
    /// Each member in turn: equal shares over time (`round_robin`).
    #[default]
    RoundRobin,
    /// A uniformly random member per message (`random`).
    Random,
    /// The same member for every message of one publisher while membership holds (`hash`).
    HashByClient,
    /// One member for every message until that member leaves (`sticky`).
    Sticky,
}

/// The config value named no [`ShareStrategy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownShareStrategy;

impl fmt::Display for UnknownShareStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown shared subscription strategy (round_robin, random, hash, sticky)")
    }
}

impl std::error::Error for UnknownShareStrategy {}

impl FromStr for ShareStrategy {
    type Err = UnknownShareStrategy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "round_robin" => Ok(ShareStrategy::RoundRobin),
            "random" => Ok(ShareStrategy::Random),
            "hash" => Ok(ShareStrategy::HashByClient),
            "sticky" => Ok(ShareStrategy::Sticky),
            _ => Err(UnknownShareStrategy),
        }
    }
}

/// Where one shared-subscription message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// To this shard's member at this index of the group's local members.
    Local(usize),
    /// To the shard with this id, which picks one of its members.
    Shard(u16),
}

/// Per-`(group, filter)` selection state: round-robin counters and sticky choices.
///
/// Interior mutability (`Cell`) lets the trie hand out selectors during a shared walk over
/// `&self`; the trie belongs to one shard thread, so nothing here needs to be `Sync`.
#[derive(Debug, Default)]
pub struct SharedSelector {
    next_slot: Cell<u64>,
    next_local: Cell<u64>,
    sticky: Cell<Option<Target>>,
    sticky_local: Cell<Option<usize>>,
}

impl SharedSelector {
    /// Fresh state: round robin starts at the first slot, nothing is sticky yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Picks the member for a message published on this shard; `None` if the group is empty.
    ///
    /// `remote` holds the other shards' member counts (never `this_shard`'s);
    /// `local_count` is this shard's.
    pub fn select(
        &self,
        strategy: ShareStrategy,
        local_count: usize,
        remote: &ShardCounts,
        this_shard: u16,
        publisher_hash: u64,
        random: u64,
    ) -> Option<Target> {
        debug_assert_eq!(remote.get(this_shard), 0, "remote counts include this shard");
        let total = local_count as u64 + remote.total();
        if total == 0 {
            return None;
        }
        let slot = match strategy {
            ShareStrategy::RoundRobin => {
                let slot = self.next_slot.get();
                self.next_slot.set(slot.wrapping_add(1));
                slot % total
            }
            ShareStrategy::Random => below(random, total),
            ShareStrategy::HashByClient => mix(publisher_hash) % total,
            ShareStrategy::Sticky => {
                let still_there = match self.sticky.get() {
                    Some(Target::Local(index)) => index < local_count,
                    Some(Target::Shard(shard)) => remote.get(shard) > 0,
                    None => false,
                };
                if let (true, Some(target)) = (still_there, self.sticky.get()) {
                    return Some(target);
                }
                below(random, total)
            }
        };
        let target = slot_to_target(slot, local_count, remote, this_shard);
        if strategy == ShareStrategy::Sticky {
            self.sticky.set(Some(target));
        }
        Some(target)
    }

    /// Picks a local member for a message another shard sent here; `None` if none is left.
    pub fn select_local(
        &self,
        strategy: ShareStrategy,
        local_count: usize,
        publisher_hash: u64,
        random: u64,
    ) -> Option<usize> {
        if local_count == 0 {
            return None;
        }
        let count = local_count as u64;
        let index = match strategy {
            ShareStrategy::RoundRobin => {
                let next = self.next_local.get();
                self.next_local.set(next.wrapping_add(1));
                next % count
            }
            ShareStrategy::Random => below(random, count),
            // Mixed differently from `select`'s slot, so that the publishers sent here
            // (all with the same slot modulo the total) still spread over local members.
            ShareStrategy::HashByClient => mix(publisher_hash ^ 0x9e37_79b9_7f4a_7c15) % count,
            ShareStrategy::Sticky => match self.sticky_local.get() {
                Some(index) if index < local_count => return Some(index),
                _ => {
                    let index = below(random, count) as usize;
                    self.sticky_local.set(Some(index));
                    return Some(index);
                }
            },
        };
        // Fits: index < local_count, a usize.
        Some(index as usize)
    }

    /// Tells the selector that the local member at `index` left (later members moved down).
    pub fn local_member_removed(&self, index: usize) {
        let shift = |sticky: usize| match sticky.cmp(&index) {
            std::cmp::Ordering::Less => Some(sticky),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(sticky - 1),
        };
        if let Some(Target::Local(sticky)) = self.sticky.get() {
            self.sticky.set(shift(sticky).map(Target::Local));
        }
        if let Some(sticky) = self.sticky_local.get() {
            self.sticky_local.set(shift(sticky));
        }
    }
}

/// Maps a global slot to the shard that owns it, shards laid end to end by id.
fn slot_to_target(slot: u64, local_count: usize, remote: &ShardCounts, this_shard: u16) -> Target {
    let mut start = 0u64;
    let mut local_placed = false;
    for (shard, count) in remote.iter() {
        if !local_placed && this_shard < shard {
            local_placed = true;
            if slot < start + local_count as u64 {
                return Target::Local((slot - start) as usize);
            }
            start += local_count as u64;
        }
        if slot < start + u64::from(count) {
            return Target::Shard(shard);
        }
        start += u64::from(count);
    }
    // The slot is below the total, so it lies in this shard's run at the end.
    debug_assert!(slot >= start && slot < start + local_count as u64);
    Target::Local((slot - start) as usize)
}

/// A value in `0..bound` from a random `u64`, by multiply-high (no division, no bias
/// worth measuring for member counts).
fn below(random: u64, bound: u64) -> u64 {
    ((u128::from(random) * u128::from(bound)) >> 64) as u64
}

/// SplitMix64's finaliser: spreads client-id hashes that differ in few bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Member counts per shard, as every shard sees the others.
    const MEMBERS_PER_SHARD: [usize; 5] = [2, 1, 0, 3, 4];

    fn remote_counts(this_shard: u16) -> ShardCounts {
        let mut counts = ShardCounts::new();
        for (shard, &members) in MEMBERS_PER_SHARD.iter().enumerate() {
            if shard as u16 != this_shard {
                (0..members).for_each(|_| {
                    counts.increment(shard as u16);
                });
            }
        }
        counts
    }

    /// Publishes `messages` from every shard; returns deliveries per (shard, member).
    fn deliver(strategy: ShareStrategy, messages: u64) -> HashMap<(u16, usize), u64> {
        let selectors: Vec<SharedSelector> =
            MEMBERS_PER_SHARD.iter().map(|_| SharedSelector::new()).collect();
        let mut delivered = HashMap::new();
        for publisher in 0..MEMBERS_PER_SHARD.len() as u16 {
            let remote = remote_counts(publisher);
            let local = MEMBERS_PER_SHARD[usize::from(publisher)];
            for n in 0..messages {
                let random = mix(n.wrapping_mul(31) ^ u64::from(publisher));
                let selector = &selectors[usize::from(publisher)];
                let target = selector.select(strategy, local, &remote, publisher, n, random);
                let member = match target {
                    Some(Target::Local(index)) => (publisher, index),
                    Some(Target::Shard(shard)) => {
                        let members = MEMBERS_PER_SHARD[usize::from(shard)];
                        let index = selectors[usize::from(shard)]
                            .select_local(strategy, members, n, random)
                            .expect("a shard chosen by count has members");
                        (shard, index)
                    }
                    None => panic!("a non-empty group selected nobody"),
                };
                assert!(member.1 < MEMBERS_PER_SHARD[usize::from(member.0)]);
                *delivered.entry(member).or_insert(0) += 1;
            }
        }
        delivered
    }

    #[test]
    fn parses_config_names() {
        assert_eq!("round_robin".parse(), Ok(ShareStrategy::RoundRobin));
        assert_eq!("random".parse(), Ok(ShareStrategy::Random));
        assert_eq!("hash".parse(), Ok(ShareStrategy::HashByClient));
        assert_eq!("sticky".parse(), Ok(ShareStrategy::Sticky));
        assert_eq!("RoundRobin".parse::<ShareStrategy>(), Err(UnknownShareStrategy));
    }

    #[test]
    fn round_robin_gives_every_member_across_shards_an_equal_share() {
        let total: usize = MEMBERS_PER_SHARD.iter().sum();
        let rounds = 100;
        let delivered = deliver(ShareStrategy::RoundRobin, (total * rounds) as u64);
        assert_eq!(delivered.len(), total, "every member got messages: {delivered:?}");
        let publishers = MEMBERS_PER_SHARD.len() as u64;
        for (member, count) in &delivered {
            assert_eq!(*count, rounds as u64 * publishers, "member {member:?}");
        }
    }

    #[test]
    fn every_strategy_delivers_each_message_to_exactly_one_member() {
        let messages = 1000;
        for strategy in [
            ShareStrategy::RoundRobin,
            ShareStrategy::Random,
            ShareStrategy::HashByClient,
            ShareStrategy::Sticky,
        ] {
            let delivered = deliver(strategy, messages);
            let sum: u64 = delivered.values().sum();
            assert_eq!(sum, messages * MEMBERS_PER_SHARD.len() as u64, "{strategy:?}");
        }
    }

    #[test]
    fn random_spreads_over_all_members() {
        let delivered = deliver(ShareStrategy::Random, 10_000);
        assert_eq!(delivered.len(), MEMBERS_PER_SHARD.iter().sum::<usize>());
    }

    #[test]
    fn hash_sends_one_publisher_to_one_member() {
        let selector = SharedSelector::new();
        let remote = remote_counts(0);
        let pick = |hash, random| selector.select(ShareStrategy::HashByClient, 2, &remote, 0, hash, random);
        for hash in 0..50u64 {
            let first = pick(hash, 1);
            assert!((0..20).all(|random| pick(hash, random) == first));
        }
        let distinct: std::collections::HashSet<_> = (0..200).map(|h| pick(h, 0)).collect();
        assert!(distinct.len() > 3, "hashes spread over members: {distinct:?}");
    }

    #[test]
    fn sticky_keeps_its_member_until_it_leaves() {
        let selector = SharedSelector::new();
        let remote = ShardCounts::new();
        let pick = |members, random| selector.select(ShareStrategy::Sticky, members, &remote, 0, 0, random);
        let first = pick(4, u64::MAX);
        assert_eq!(first, Some(Target::Local(3)));
        assert!((0..20).all(|random| pick(4, random << 58) == first));
        // A member before it leaves: the same member, now one index lower.
        selector.local_member_removed(1);
        assert_eq!(pick(3, 0), Some(Target::Local(2)));
        // The sticky member itself leaves: a new choice, then that one sticks.
        selector.local_member_removed(2);
        assert_eq!(pick(2, 0), Some(Target::Local(0)));
        assert_eq!(pick(2, u64::MAX), Some(Target::Local(0)));
    }

    #[test]
    fn sticky_moves_off_a_shard_that_lost_its_members() {
        let selector = SharedSelector::new();
        let mut remote = ShardCounts::new();
        remote.increment(4);
        assert_eq!(selector.select(ShareStrategy::Sticky, 0, &remote, 0, 0, 0), Some(Target::Shard(4)));
        remote.decrement(4);
        remote.increment(2);
        assert_eq!(selector.select(ShareStrategy::Sticky, 0, &remote, 0, 0, 0), Some(Target::Shard(2)));
    }

    #[test]
    fn empty_group_selects_nobody() {
        let selector = SharedSelector::new();
        let none = ShardCounts::new();
        assert_eq!(selector.select(ShareStrategy::RoundRobin, 0, &none, 0, 0, 0), None);
        assert_eq!(selector.select_local(ShareStrategy::Sticky, 0, 0, 0), None);
    }

    #[test]
    fn slots_map_to_shards_in_id_order_with_this_shard_in_place() {
        let remote = remote_counts(1);
        // Layout: shard 0 [0, 1], shard 1 (local) [2], shard 3 [3..6], shard 4 [6..10].
        let expected = [
            Target::Shard(0),
            Target::Shard(0),
            Target::Local(0),
            Target::Shard(3),
            Target::Shard(3),
            Target::Shard(3),
            Target::Shard(4),
            Target::Shard(4),
            Target::Shard(4),
            Target::Shard(4),
        ];
        for (slot, target) in expected.iter().enumerate() {
            assert_eq!(slot_to_target(slot as u64, 1, &remote, 1), *target, "slot {slot}");
        }
        // This shard's id above every remote one: its run comes last.
        let mut low = ShardCounts::new();
        low.increment(0);
        assert_eq!(slot_to_target(0, 2, &low, 9), Target::Shard(0));
        assert_eq!(slot_to_target(2, 2, &low, 9), Target::Local(1));
    }
}
