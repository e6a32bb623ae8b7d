//! The publish path and subscriptions on one shard: one trie walk gives the local
//! subscribers, the shards to forward to and the shared groups; deliveries go straight
//! into connection output buffers, forwards into the mesh.

use super::messages::MeshMsg;
use super::state::{ConnId, SessionId, ShardState, SubValue, OUTPUT_HIGH_WATER_BYTES};
use crate::protocol::topic::parse_shared;
use crate::protocol::{ByteStr, QoS, RetainHandling};
use crate::router::{ShardSet, Target};
use crate::session::{
    DeliverOutcome, Delivery, Message, PublisherKey, Routed, SharedGroupName, Subscription,
};
use std::sync::Arc;

/// How many times a shared-group message may be sent on to another shard because the
/// member it was meant for had left: enough to settle, bounded so stale counts cannot
/// bounce a message forever.
const SHARED_HOPS_MAX: u8 = 4;

/// How long a cleared retained message is remembered: far longer than any mesh delay.
const TOMBSTONE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// A retained message (or its clearing) and its place in the process-wide order.
#[derive(Clone, Debug)]
pub struct Retained {
    pub seq: u64,
    pub message: Option<Arc<Message>>,
}

/// One subscriber's merged view of its matching subscriptions [MQTT-3.3.4-2]: delivered
/// once, at the highest granted QoS, with every subscription identifier.
#[derive(Clone, Debug)]
pub struct Match {
    sid: SessionId,
    qos: QoS,
    retain_as_published: bool,
    /// The subscription has No Local set (MQTT 5).
    no_local: bool,
    ids: Vec<u32>,
}

impl ShardState {
    /// Routes a message published on this shard: local subscribers, other shards, shared
    /// groups; updates the retained store first. Returns whether anyone subscribed
    /// (on any shard), for MQTT 5's "no matching subscribers".
    pub fn publish(&mut self, msg: Message) -> bool {
        let mut msg = Routed::new(msg);
        if msg.retain {
            // One process-wide sequence orders retained updates from different shards, so
            // every shard keeps the newest whatever order the mesh delivers them in.
            let seq = self.shared.retain_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // An empty payload clears the retained message [MQTT-3.3.1-10] [MQTT-3.3.1-11].
            let stored = (!msg.payload.is_empty()).then(|| msg.share());
            let topic = msg.topic.clone();
            self.apply_retained(&topic, seq, stored.clone());
            self.broadcast(|| MeshMsg::Retain { topic: topic.clone(), seq, message: stored.clone() });
        }
        let mut shards = ShardSet::default();
        let mut matches = std::mem::take(&mut self.scratch_matches);
        let mut shared_targets: Vec<SharedPick> = Vec::new();
        let sources = self.route(&msg, &mut matches, &mut shards, Some(&mut shared_targets));
        // No Local: not back to the publishing client [MQTT-3.8.3-3]. Applied after the
        // route (which is cached per topic, for every publisher alike).
        let this_shard = self.id;
        matches.retain(|m| !(m.no_local && PublisherKey::new(this_shard, m.sid, 0) == msg.publisher));
        let matched = !matches.is_empty() || !shards.is_empty() || !shared_targets.is_empty();
        self.deliver_matches(&mut msg, &mut matches, sources);
        self.scratch_matches = matches;
        for to in shards.iter() {
            let forward = MeshMsg::Forward(msg.share());
            self.send(to as usize, forward);
        }
        for (target, group, filter, local) in shared_targets {
            match (target, local) {
                (Target::Local(_), Some((sid, sub))) => {
                    let name = SharedGroupName { group, filter };
                    self.deliver_one(&mut msg, sid, &sub, false, Some(Arc::new(name)))
                }
                (Target::Shard(shard), _) => {
                    let message = msg.share();
                    self.send(shard as usize, MeshMsg::SharedForward { group, filter, message, hops: 0 })
                }
                _ => {}
            }
        }
        matched
    }

    /// The trie walk for `msg`'s topic, or its cached result: every local match (No Local
    /// not yet applied), the shards to forward to, and, given `shared_targets`, one pick
    /// per matching shared group (a forwarded message passes none: its shard picked).
    /// Returns how many filters contributed local matches. Routes that meet a shared
    /// group are never cached, since each publish makes its own pick.
    fn route(
        &mut self,
        msg: &Message,
        matches: &mut Vec<Match>,
        shards: &mut ShardSet,
        mut shared_targets: Option<&mut Vec<SharedPick>>,
    ) -> usize {
        let generation = self.trie.generation();
        if let Some(route) = self.route_cache.get(&msg.topic, generation) {
            matches.extend_from_slice(route.matches);
            route.shards.iter().for_each(|&s| _ = shards.insert(s));
            return route.sources;
        }
        let strategy = self.config().share_strategy;
        let random = self.random();
        let publisher_hash = msg.publisher.0;
        let mut saw_shared = false;
        let sources = self.trie.route(
            &msg.topic,
            shards,
            |sid, sub| matches.push(Match::new(sid, sub)),
            |group| {
                saw_shared = true;
                let Some(targets) = shared_targets.as_deref_mut() else { return };
                if let Some(t) = group.select(strategy, publisher_hash, random) {
                    let local = match t {
                        Target::Local(i) => group.members().get(i).copied(),
                        Target::Shard(_) => None,
                    };
                    targets.push((t, group.group().into(), group.filter().into(), local));
                }
            },
        );
        if !saw_shared {
            let mut list = std::mem::take(&mut self.scratch_shards);
            list.clear();
            list.extend(shards.iter());
            self.route_cache.insert(&msg.topic, generation, matches, &list, sources);
            self.scratch_shards = list;
        }
        sources
    }

    /// A message another shard forwarded: local subscribers only.
    pub fn deliver_forwarded(&mut self, msg: Arc<Message>) {
        let mut msg = Routed::from_shared(msg);
        let mut matches = std::mem::take(&mut self.scratch_matches);
        // The shards to forward to are the sending shard's business: computed, not used.
        let sources = self.route(&msg, &mut matches, &mut ShardSet::default(), None);
        // A forwarded message's publisher is on another shard: No Local excludes no one here.
        self.deliver_matches(&mut msg, &mut matches, sources);
        self.scratch_matches = matches;
    }

    /// Delivers once to each subscriber among the matches, leaving `matches` empty (its
    /// capacity is reused). `sources` is how many filters matched: with one, no subscriber
    /// can appear twice and the merge (a sort) is skipped.
    fn deliver_matches(&mut self, msg: &mut Routed, matches: &mut Vec<Match>, sources: usize) {
        if sources > 1 {
            merge_overlapping(matches);
        }
        for m in matches.drain(..) {
            let retain = m.retain_as_published && msg.retain;
            // Delivered at min(published QoS, highest granted QoS) [MQTT-3.8.4-8].
            self.deliver_to(m.sid, msg, msg.qos.min(m.qos), retain, m.ids, None);
        }
    }

    fn deliver_one(
        &mut self,
        msg: &mut Routed,
        sid: SessionId,
        sub: &SubValue,
        retained_replay: bool,
        shared: Option<Arc<SharedGroupName>>,
    ) {
        let retain = retained_replay || (sub.options.retain_as_published && msg.retain);
        let ids = sub.subscription_id.into_iter().collect();
        self.deliver_to(sid, msg, msg.qos.min(sub.options.qos), retain, ids, shared);
    }

    /// Hands one delivery to a session, writing into its connection's buffer.
    pub(super) fn deliver_to(
        &mut self,
        sid: SessionId,
        msg: &mut Routed,
        qos: QoS,
        retain: bool,
        ids: Vec<u32>,
        shared: Option<Arc<SharedGroupName>>,
    ) {
        let Some(entry) = self.sessions.get_mut(sid) else { return };
        if let Some(&(to, token)) = entry.moved_to.as_deref() {
            let delivery = Delivery { message: msg.share(), qos, retain, subscription_ids: ids, shared };
            self.send(to as usize, MeshMsg::MovedDelivery { token, delivery });
            return;
        }
        if let Some(seen) = &mut entry.arriving {
            // The same message may come directly and through the old holder's stub.
            let shared = msg.share();
            if seen.insert(Arc::as_ptr(&shared) as usize, shared).is_some() {
                return;
            }
        }
        let conn = entry.conn;
        // Offline sessions queue and write nothing; they still need somewhere to write.
        let mut offline_sink = bytes::BytesMut::new();
        let out = match conn.and_then(|c| self.conns.get_mut(c)) {
            Some(c) if !c.closing => {
                if qos == QoS::AtMostOnce && c.out.len() > OUTPUT_HIGH_WATER_BYTES {
                    self.drops.qos0_slow_subscriber.add();
                    return;
                }
                &mut c.out
            }
            _ => &mut offline_sink,
        };
        entry.session.set_now_ms(self.clock_ms);
        let before = out.len();
        let outcome = if qos == QoS::AtMostOnce {
            entry.session.deliver_qos0(msg, retain, &ids, out)
        } else {
            entry
                .session
                .deliver(Delivery { message: msg.share(), qos, retain, subscription_ids: ids, shared }, out)
        };
        let wrote = out.len() != before;
        self.turn_output_bytes += out.len() - before;
        if outcome == DeliverOutcome::Dropped && qos != QoS::AtMostOnce {
            self.drops.queue_full.add();
        }
        if wrote {
            if let Some(c) = conn {
                self.wake_writer(c);
            }
        }
    }

    /// A message another shard picked this shard for, in a shared group. If the member
    /// it counted on left meanwhile, the group picks again (bounded by
    /// [`SHARED_HOPS_MAX`], since member counts travel the mesh too).
    pub fn deliver_shared(&mut self, group: &Arc<str>, filter: &Arc<str>, msg: Arc<Message>, hops: u8) {
        let mut msg = Routed::from_shared(msg);
        let strategy = self.config().share_strategy;
        let random = self.random();
        let chosen = self
            .trie
            .shared_group(group, filter)
            .and_then(|g| g.select_local(strategy, msg.publisher.0, random).copied());
        let name = Arc::new(SharedGroupName { group: group.clone(), filter: filter.clone() });
        match chosen {
            Some((sid, sub)) => self.deliver_one(&mut msg, sid, &sub, false, Some(name)),
            None if hops < SHARED_HOPS_MAX => self.route_to_group(name, &mut msg, hops + 1),
            None => self.drops.shared_no_member.add(),
        }
    }

    /// Picks one member of a shared group across all shards and delivers to it or
    /// forwards to its shard.
    fn route_to_group(&mut self, name: Arc<SharedGroupName>, msg: &mut Routed, hops: u8) {
        let strategy = self.config().share_strategy;
        let random = self.random();
        let pick = self.trie.shared_group(&name.group, &name.filter).and_then(|g| {
            let target = g.select(strategy, msg.publisher.0, random)?;
            let local = match target {
                Target::Local(i) => g.members().get(i).copied(),
                Target::Shard(_) => None,
            };
            Some((target, local))
        });
        match pick {
            Some((Target::Local(_), Some((sid, sub)))) => self.deliver_one(msg, sid, &sub, false, Some(name)),
            Some((Target::Shard(shard), _)) => {
                let (group, filter, message) = (name.group.clone(), name.filter.clone(), msg.share());
                self.send(shard as usize, MeshMsg::SharedForward { group, filter, message, hops })
            }
            _ => self.drops.shared_no_member.add(),
        }
    }

    /// Gives the shared-subscription deliveries of a session that ended to other members
    /// of their groups (section 4.8.2). Call after the session left the trie.
    pub fn redistribute_shared(&mut self, deliveries: Vec<Delivery>) {
        for d in deliveries {
            if let Some(name) = d.shared {
                self.route_to_group(name, &mut Routed::from_shared(d.message), 0);
            }
        }
    }

    /// Applies a retained update (from this shard or another) unless a newer one is
    /// already in place. A clear leaves a tombstone for a while, so that an older set
    /// arriving late cannot bring the message back.
    pub fn apply_retained(&mut self, topic: &ByteStr, seq: u64, message: Option<Arc<Message>>) {
        if self.retained.get(topic).is_some_and(|r| r.seq > seq) {
            return;
        }
        if message.is_none() {
            self.tombstones.push_back((std::time::Instant::now(), topic.clone(), seq));
        }
        self.retained.set(topic, Retained { seq, message });
    }

    /// Drops tombstones older than [`TOMBSTONE_TTL`]: by then no older update is in flight.
    pub fn prune_tombstones(&mut self, now: std::time::Instant) {
        while let Some((at, topic, seq)) = self.tombstones.front() {
            if now.duration_since(*at) < TOMBSTONE_TTL {
                break;
            }
            if self.retained.get(topic).is_some_and(|r| r.seq == *seq && r.message.is_none()) {
                self.retained.remove(topic);
            }
            self.tombstones.pop_front();
        }
    }

    /// Adds a subscription for a session (session list and trie); returns whether the
    /// retained messages for it are to be sent, as the retain handling option says.
    pub fn subscribe(&mut self, sid: SessionId, filter: &ByteStr, sub: Subscription) -> bool {
        let existed = match self.sessions.get_mut(sid) {
            Some(e) => e.session.add_subscription(filter.clone(), sub),
            None => return false,
        };
        self.add_to_trie(sid, filter, sub);
        let send_retained = match sub.options.retain_handling {
            RetainHandling::SendOnSubscribe => true,
            RetainHandling::SendIfNewSubscription => !existed,
            RetainHandling::DoNotSend => false,
        };
        // Retained messages are not sent for shared subscriptions (section 4.8.2).
        send_retained && !filter.starts_with("$share/")
    }

    /// Sends a new subscription the retained messages matching it, with RETAIN set
    /// [MQTT-3.3.1-8]. Expired ones are not sent (section 3.3.2.3.3).
    pub fn send_retained(&mut self, sid: SessionId, filter: &str, sub: &Subscription) {
        let mut found = Vec::new();
        let now = self.clock_ms;
        self.retained.for_each_match(filter, |r| {
            if let Some(m) = &r.message {
                if m.expires_at_ms.is_none_or(|at| at > now) {
                    found.push(m.clone())
                }
            }
        });
        for m in found {
            self.deliver_one(&mut Routed::from_shared(m), sid, sub, true, None);
        }
    }

    /// Puts a session's subscription into the trie, telling other shards when this shard
    /// gains its first subscriber to the filter (or a shared-group member).
    pub fn add_to_trie(&mut self, sid: SessionId, filter: &str, sub: Subscription) {
        if let Ok(Some(shared)) = parse_shared(filter) {
            let (group, inner): (Arc<str>, Arc<str>) = (shared.group.into(), shared.filter.into());
            if self.trie.subscribe_shared(&group, &inner, sid, sub).is_none() {
                let from = self.id;
                self.broadcast(|| MeshMsg::SharedInterest {
                    group: group.clone(),
                    filter: inner.clone(),
                    from,
                    add: true,
                });
            }
            return;
        }
        if self.trie.subscribe(filter, sid, sub).is_none() {
            let count = self.filter_refs.entry(filter.into()).or_insert(0);
            *count += 1;
            if *count == 1 {
                let (f, from): (Arc<str>, u16) = (filter.into(), self.id);
                self.broadcast(|| MeshMsg::Interest { filter: f.clone(), from, add: true });
            }
        }
    }

    /// Removes a session's subscription from the trie (and tells other shards).
    pub fn remove_from_trie(&mut self, sid: SessionId, filter: &str) -> bool {
        if let Ok(Some(shared)) = parse_shared(filter) {
            let removed = self.trie.unsubscribe_shared(shared.group, shared.filter, sid).is_some();
            if removed {
                let (group, inner, from): (Arc<str>, Arc<str>, u16) =
                    (shared.group.into(), shared.filter.into(), self.id);
                self.broadcast(|| MeshMsg::SharedInterest {
                    group: group.clone(),
                    filter: inner.clone(),
                    from,
                    add: false,
                });
            }
            return removed;
        }
        if self.trie.unsubscribe(filter, sid).is_none() {
            return false;
        }
        if let Some(count) = self.filter_refs.get_mut(filter) {
            *count -= 1;
            if *count == 0 {
                self.filter_refs.remove(filter);
                let (f, from): (Arc<str>, u16) = (filter.into(), self.id);
                self.broadcast(|| MeshMsg::Interest { filter: f.clone(), from, add: false });
            }
        }
        true
    }

    /// UNSUBSCRIBE of one filter; returns whether the subscription existed.
    pub fn unsubscribe(&mut self, sid: SessionId, filter: &str) -> bool {
        let existed = self.sessions.get_mut(sid).is_some_and(|e| e.session.remove_subscription(filter));
        if existed {
            self.remove_from_trie(sid, filter);
        }
        existed
    }

    /// Takes every subscription of a session out of the trie (the session leaves this
    /// shard or ends); the session keeps its own list.
    pub fn unroute_session(&mut self, sid: SessionId) {
        let filters: Vec<ByteStr> = self
            .sessions
            .get(sid)
            .map(|e| e.session.subscriptions.keys().cloned().collect())
            .unwrap_or_default();
        for f in filters {
            self.remove_from_trie(sid, &f);
        }
    }

    /// Puts every subscription of a session (arriving from another shard) into the trie.
    pub fn route_session(&mut self, sid: SessionId) {
        let subs: Vec<(ByteStr, Subscription)> = self
            .sessions
            .get(sid)
            .map(|e| e.session.subscriptions.iter().map(|(f, s)| (f.clone(), *s)).collect())
            .unwrap_or_default();
        for (f, s) in subs {
            self.add_to_trie(sid, &f, s);
        }
    }

    /// The connection a session is attached to, if any.
    pub fn conn_of(&self, sid: SessionId) -> Option<ConnId> {
        self.sessions.get(sid).and_then(|e| e.conn)
    }
}

/// One shared group's choice for a message: the target, the group and filter (to name
/// the group to another shard), and the local member when the target is this shard.
type SharedPick = (Target, Arc<str>, Arc<str>, Option<(SessionId, SubValue)>);

impl Match {
    fn new(sid: SessionId, sub: &SubValue) -> Self {
        Match {
            sid,
            qos: sub.options.qos,
            retain_as_published: sub.options.retain_as_published,
            no_local: sub.options.no_local,
            ids: sub.subscription_id.into_iter().collect(),
        }
    }
}

/// Merges the matches of a subscriber with overlapping subscriptions into one: sorting
/// by subscriber makes this O(n log n), where a search per match was O(n²) for a topic
/// with many subscribers.
fn merge_overlapping(matches: &mut Vec<Match>) {
    if matches.len() < 2 {
        return;
    }
    // Stable, so a subscriber's subscription identifiers keep the walk's order.
    matches.sort_by_key(|m| m.sid);
    let mut kept = 0;
    for i in 1..matches.len() {
        if matches[i].sid == matches[kept].sid {
            let m = std::mem::take(&mut matches[i].ids);
            let (qos, rap) = (matches[i].qos, matches[i].retain_as_published);
            let into = &mut matches[kept];
            into.qos = into.qos.max(qos);
            into.retain_as_published |= rap;
            into.ids.extend(m);
        } else {
            kept += 1;
            matches.swap(kept, i);
        }
    }
    matches.truncate(kept + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::state::test_shards;
    use crate::protocol::{ProtocolVersion, SubscriptionOptions};
    use crate::session::Session;

    fn m(sid: SessionId, qos: QoS, id: Option<u32>) -> Match {
        Match { sid, qos, retain_as_published: false, no_local: false, ids: id.into_iter().collect() }
    }

    /// An offline persistent MQTT 5 session on `st`: QoS 1 deliveries wait in its queue.
    fn offline_session(st: &mut ShardState, name: &str) -> SessionId {
        let s = Session::new(ByteStr::from(name), ProtocolVersion::V5, 3600, st.limits);
        st.install_session(s, None, 1)
    }

    fn subscribe(st: &mut ShardState, sid: SessionId, filter: &str, no_local: bool) {
        let options = SubscriptionOptions { no_local, ..SubscriptionOptions::qos(QoS::AtLeastOnce) };
        st.add_to_trie(sid, filter, Subscription { options, subscription_id: None });
    }

    fn message(topic: &str, publisher: PublisherKey) -> Message {
        Message {
            topic: ByteStr::from(topic),
            payload: bytes::Bytes::from_static(b"x"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
            expires_at_ms: None,
            publisher,
        }
    }

    fn queued(st: &ShardState, sid: SessionId) -> usize {
        st.sessions.get(sid).expect("session").session.outbound.queue.len()
    }

    #[test]
    fn a_cached_route_gives_what_the_walk_gives_and_goes_stale_on_any_change() {
        let mut st = test_shards(1).pop().expect("one shard");
        let (a, b) = (offline_session(&mut st, "a"), offline_session(&mut st, "b"));
        subscribe(&mut st, a, "t/+", false);
        subscribe(&mut st, a, "t/x", false);
        for _ in 0..3 {
            assert!(st.publish(message("t/x", PublisherKey::NONE)));
        }
        assert!(st.route_cache.get("t/x", st.trie.generation()).is_some(), "the first publish cached it");
        assert_eq!(queued(&st, a), 3, "once per message although two filters match");
        // A new subscriber must not be missed because of the cached route...
        subscribe(&mut st, b, "t/#", false);
        assert!(st.publish(message("t/x", PublisherKey::NONE)));
        assert_eq!((queued(&st, a), queued(&st, b)), (4, 1));
        // ...nor a removed one still be served from it.
        assert!(st.remove_from_trie(a, "t/+"));
        assert!(st.remove_from_trie(a, "t/x"));
        assert!(st.publish(message("t/x", PublisherKey::NONE)));
        assert_eq!((queued(&st, a), queued(&st, b)), (4, 2));
    }

    #[test]
    fn no_local_holds_for_routes_served_from_the_cache() {
        let mut st = test_shards(1).pop().expect("one shard");
        let (a, b) = (offline_session(&mut st, "a"), offline_session(&mut st, "b"));
        subscribe(&mut st, a, "n/l", true);
        subscribe(&mut st, b, "n/l", false);
        let from_a = PublisherKey::new(st.id, a, 0);
        // The first publish (a walk) and the later ones (cache hits) alike [MQTT-3.8.3-3].
        for _ in 0..3 {
            st.publish(message("n/l", from_a));
        }
        assert_eq!((queued(&st, a), queued(&st, b)), (0, 3));
        st.publish(message("n/l", PublisherKey::NONE));
        assert_eq!((queued(&st, a), queued(&st, b)), (1, 4), "others' messages still reach a");
    }

    #[test]
    fn routes_through_shared_groups_are_walked_every_time() {
        let mut st = test_shards(1).pop().expect("one shard");
        let members = [offline_session(&mut st, "m1"), offline_session(&mut st, "m2")];
        for &sid in &members {
            subscribe(&mut st, sid, "$share/g/s/t", false);
        }
        for _ in 0..10 {
            st.publish(message("s/t", PublisherKey::NONE));
        }
        assert!(st.route_cache.get("s/t", st.trie.generation()).is_none());
        // Each publish made its own pick: both members got some, together all ten.
        let got: Vec<usize> = members.iter().map(|&sid| queued(&st, sid)).collect();
        assert_eq!(got.iter().sum::<usize>(), 10);
        assert!(got.iter().all(|&n| n > 0), "{got:?}");
    }

    #[test]
    fn overlapping_matches_merge_into_one_per_subscriber_at_the_highest_qos() {
        let mut v = vec![
            m(3, QoS::AtMostOnce, Some(1)),
            m(1, QoS::AtLeastOnce, None),
            m(3, QoS::ExactlyOnce, Some(2)),
            m(2, QoS::AtMostOnce, None),
            m(3, QoS::AtLeastOnce, Some(3)),
        ];
        merge_overlapping(&mut v);
        let got: Vec<_> = v.iter().map(|m| (m.sid, m.qos, m.ids.clone())).collect();
        assert_eq!(
            got,
            vec![
                (1, QoS::AtLeastOnce, vec![]),
                (2, QoS::AtMostOnce, vec![]),
                (3, QoS::ExactlyOnce, vec![1, 2, 3]),
            ]
        );
    }
}
