//! A shard's routing state: its topic trie (local subscribers, other shards' interest,
//! shared groups), the per-filter subscription counts that decide when the other shards
//! hear of an interest change, the route cache, and this shard's copy of the retained
//! messages. Pure bookkeeping: what a route means for sessions and the mesh is the data
//! plane's business (`plane.rs`).

use super::messages::MeshMsg;
use super::sessions::SessionId;
use super::xorshift::XorShift;
use crate::protocol::topic::parse_shared;
use crate::protocol::ByteStr;
use crate::router::{pick, Match, OrderedRetained, Pick, RouteCache, ShardSet, ShareStrategy, Trie};
use crate::session::{Message, Subscription};
use std::collections::HashMap;
use std::sync::Arc;

/// A local match: the subscriber is a session on this shard.
pub type LocalMatch = Match<SessionId>;

/// One shared group's choice for one publish: the member (here or the shard that has
/// it), and the group's names, to tell another shard which group it was picked for.
pub struct SharedTarget {
    pub pick: Pick<SessionId, Subscription>,
    pub group: Arc<str>,
    pub filter: Arc<str>,
}

/// A change in what this shard subscribes to that the other shards must learn.
pub enum InterestChange {
    /// The first subscription to `filter` on this shard came (`add`) or the last went.
    Filter { filter: Arc<str>, add: bool },
    /// A member of the shared group `group` on `filter` came or went.
    SharedMember { group: Arc<str>, filter: Arc<str>, add: bool },
}

impl InterestChange {
    /// The mesh message telling another shard, from shard `from`.
    pub fn to_msg(&self, from: u16) -> MeshMsg {
        match self {
            InterestChange::Filter { filter, add } => {
                MeshMsg::Interest { filter: filter.clone(), from, add: *add }
            }
            InterestChange::SharedMember { group, filter, add } => {
                MeshMsg::SharedInterest { group: group.clone(), filter: filter.clone(), from, add: *add }
            }
        }
    }
}

/// The routing state of one shard.
pub struct Routes {
    trie: Trie<SessionId, Subscription>,
    /// Subscriptions per filter on this shard, to send interest changes on 0 <-> 1.
    filter_refs: HashMap<Arc<str>, u32>,
    retained: OrderedRetained<Arc<Message>>,
    /// Recent topics' routes: most publishes skip the trie walk.
    cache: RouteCache<LocalMatch>,
    /// The publish path's match list, kept to reuse its allocation.
    scratch_matches: Vec<LocalMatch>,
    scratch_shards: Vec<u16>,
    strategy: ShareStrategy,
    /// xorshift state, for the random share strategy.
    rng: XorShift,
}

impl Routes {
    pub fn new(this_shard: u16, strategy: ShareStrategy, cache_seed: u64) -> Self {
        Routes {
            trie: Trie::new(this_shard),
            filter_refs: HashMap::new(),
            retained: OrderedRetained::default(),
            cache: RouteCache::new(cache_seed),
            scratch_matches: Vec::new(),
            scratch_shards: Vec::new(),
            strategy,
            rng: XorShift::new(0x9E37_79B9_7F4A_7C15 ^ (this_shard as u64 + 1)),
        }
    }

    /// Adds a session's subscription; the change to tell the other shards, if any.
    pub fn subscribe(&mut self, sid: SessionId, filter: &str, sub: Subscription) -> Option<InterestChange> {
        if let Ok(Some(shared)) = parse_shared(filter) {
            let (group, filter): (Arc<str>, Arc<str>) = (shared.group.into(), shared.filter.into());
            let new_member = self.trie.subscribe_shared(&group, &filter, sid, sub).is_none();
            return new_member.then_some(InterestChange::SharedMember { group, filter, add: true });
        }
        if self.trie.subscribe(filter, sid, sub).is_some() {
            return None; // a replaced subscription: the count stands
        }
        let count = self.filter_refs.entry(filter.into()).or_insert(0);
        *count += 1;
        (*count == 1).then(|| InterestChange::Filter { filter: filter.into(), add: true })
    }

    /// Removes a session's subscription: whether it existed, and the change to tell the
    /// other shards, if any.
    pub fn unsubscribe(&mut self, sid: SessionId, filter: &str) -> (bool, Option<InterestChange>) {
        if let Ok(Some(shared)) = parse_shared(filter) {
            let removed = self.trie.unsubscribe_shared(shared.group, shared.filter, sid).is_some();
            let change = removed.then(|| InterestChange::SharedMember {
                group: shared.group.into(),
                filter: shared.filter.into(),
                add: false,
            });
            return (removed, change);
        }
        if self.trie.unsubscribe(filter, sid).is_none() {
            return (false, None);
        }
        let Some(count) = self.filter_refs.get_mut(filter) else { return (true, None) };
        *count -= 1;
        if *count > 0 {
            return (true, None);
        }
        self.filter_refs.remove(filter);
        (true, Some(InterestChange::Filter { filter: filter.into(), add: false }))
    }

    /// Another shard's interest change.
    pub fn apply_remote_interest(&mut self, filter: &str, from: u16, add: bool) {
        if add {
            self.trie.add_remote_interest(filter, from);
        } else {
            self.trie.remove_remote_interest(filter, from);
        }
    }

    /// Another shard's shared-group membership change.
    pub fn apply_remote_shared(&mut self, group: &str, filter: &str, from: u16, add: bool) {
        if add {
            self.trie.add_remote_shared(group, filter, from);
        } else {
            self.trie.remove_remote_shared(group, filter, from);
        }
    }

    /// The match list to fill, with its allocation reused; give it back with
    /// [`Routes::return_matches`].
    pub fn take_matches(&mut self) -> Vec<LocalMatch> {
        std::mem::take(&mut self.scratch_matches)
    }

    pub fn return_matches(&mut self, mut matches: Vec<LocalMatch>) {
        matches.clear();
        self.scratch_matches = matches;
    }

    /// The trie walk for `msg`'s topic, or its cached result: every local match (No Local
    /// not yet applied) into `matches`, the shards to forward to into `shards`, and, given
    /// `shared`, one pick per matching shared group (a forwarded message passes none: its
    /// shard picked). Returns how many filters contributed local matches. Routes that meet
    /// a shared group are never cached, since each publish makes its own pick.
    pub fn route(
        &mut self,
        msg: &Message,
        matches: &mut Vec<LocalMatch>,
        shards: &mut ShardSet,
        mut shared: Option<&mut Vec<SharedTarget>>,
    ) -> usize {
        let generation = self.trie.generation();
        if let Some(route) = self.cache.get(&msg.topic, generation) {
            matches.extend_from_slice(route.matches);
            route.shards.iter().for_each(|&s| _ = shards.insert(s));
            return route.sources;
        }
        let (strategy, random, publisher_hash) = (self.strategy, self.rng.next_u64(), msg.publisher.0);
        let mut saw_shared = false;
        let sources = self.trie.route(
            &msg.topic,
            shards,
            |sid, sub| {
                let mut m = Match::new(sid, &sub.options, sub.subscription_id);
                m.read_checked = sub.read_checked;
                matches.push(m)
            },
            |group| {
                saw_shared = true;
                let Some(targets) = shared.as_deref_mut() else { return };
                if let Some(pick) = pick(group, strategy, publisher_hash, random) {
                    targets.push(SharedTarget {
                        pick,
                        group: group.group().into(),
                        filter: group.filter().into(),
                    });
                }
            },
        );
        if !saw_shared {
            let mut list = std::mem::take(&mut self.scratch_shards);
            list.clear();
            list.extend(shards.iter());
            self.cache.insert(&msg.topic, generation, matches, &list, sources);
            self.scratch_shards = list;
        }
        sources
    }

    /// One member of a shared group, on any shard, for a message published here.
    pub fn pick_member(
        &mut self,
        group: &str,
        filter: &str,
        publisher_hash: u64,
    ) -> Option<Pick<SessionId, Subscription>> {
        let random = self.rng.next_u64();
        pick(self.trie.shared_group(group, filter)?, self.strategy, publisher_hash, random)
    }

    /// A member of a shared group on this shard, for a message another shard picked
    /// this shard for.
    pub fn pick_local_member(
        &mut self,
        group: &str,
        filter: &str,
        publisher_hash: u64,
    ) -> Option<(SessionId, Subscription)> {
        let random = self.rng.next_u64();
        let group = self.trie.shared_group(group, filter)?;
        group.select_local(self.strategy, publisher_hash, random).copied()
    }

    /// Applies a retained update (from this shard or another) unless a newer one is in place.
    pub fn apply_retained(&mut self, topic: &ByteStr, seq: u64, message: Option<Arc<Message>>, now_ms: u64) {
        self.retained.apply(topic, seq, message, now_ms);
    }

    /// Forgets cleared retained topics once no older update can still be in flight.
    pub fn prune_retained(&mut self, now_ms: u64) {
        self.retained.prune(now_ms);
    }

    /// The unexpired retained messages matching `filter` (section 3.3.2.3.3).
    pub fn retained_matching(&self, filter: &str, now_ms: u64) -> Vec<Arc<Message>> {
        let mut found = Vec::new();
        self.retained.for_each_match(filter, |m| {
            if m.expires_at_ms.is_none_or(|at| at > now_ms) {
                found.push(m.clone())
            }
        });
        found
    }

    /// Whether a route for `topic` is cached and still valid.
    #[cfg(test)]
    pub fn is_cached(&self, topic: &str) -> bool {
        self.cache.get(topic, self.trie.generation()).is_some()
    }
}
