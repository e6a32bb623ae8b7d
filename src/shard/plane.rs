//! The data plane of one shard: the path of a message from the PUBLISH that brings it to
//! the subscribers that get it, read from top to bottom.
//!
//! ```text
//! handle_publish ─▶ publish ─▶ Routes::route (one trie walk, or the cached route)
//!                      ├─▶ deliver_matches ─▶ deliver ─▶ Sessions::deliver ─▶ connection output
//!                      ├─▶ Forward to each interested shard ─▶ (there) deliver_forwarded ─▶ deliver_matches
//!                      └─▶ each shared group's pick: deliver here, or SharedForward ─▶ (there) deliver_shared
//! ```
//!
//! Subscriptions change here too, since they change the routes: the trie, the session's
//! own list, and the interest changes the other shards must hear of. What waits for the
//! other shards (SUBACK barriers, the client-id registry, takeover) is the control
//! plane's (`state.rs`).

use super::connections::{ConnId, Connections};
use super::counters::Counters;
use super::drops::DropStats;
use super::messages::MeshMsg;
use super::outbox::Outbox;
use super::persist::Persist;
use super::routes::{InterestChange, LocalMatch, Routes, SharedTarget};
use super::security::may_write;
use super::sessions::{Delivered, DeliveryOf, SessionId, Sessions};
use super::shared::Shared;
use crate::auth::acl::SubscribeAccess;
use crate::protocol::{ByteStr, Publish, QoS, ReasonCode, RetainHandling};
use crate::router::{merge_overlapping, Pick, ShardSet};
use crate::session::{
    Delivery, Limits, Message, Origin, PublisherKey, Routed, SharedGroupName, Subscription,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How many times a shared-group message may be sent on to another shard because the
/// member it was meant for had left: enough to settle, bounded so stale counts cannot
/// bounce a message forever.
const SHARED_HOPS_MAX: u8 = 4;

/// The broker closes a connection: the MQTT 5 DISCONNECT reason, whether the will goes
/// out, and why (for the log and the DISCONNECT's Reason String).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Close {
    pub reason: ReasonCode,
    /// The client sent DISCONNECT: no will (unless 5.0 asked for it), no DISCONNECT back.
    pub clean: bool,
    pub detail: &'static str,
}

impl Close {
    pub fn protocol_error(reason: ReasonCode, detail: &'static str) -> Self {
        Close { reason, clean: false, detail }
    }
}

/// Everything a message touches on its way to subscribers.
pub struct DataPlane {
    pub(super) id: u16,
    pub(super) shared: Arc<Shared>,
    /// The configuration this shard runs with: the start's, with a reload's limits
    /// (`reload.rs`).
    pub(super) config: Arc<crate::config::Config>,
    pub(super) routes: Routes,
    pub(super) sessions: Sessions,
    pub(super) conns: Connections,
    pub(super) outbox: Outbox,
    pub(super) drops: DropStats,
    pub(super) counts: Counters,
    /// The shard clock as of this turn (milliseconds since the broker started).
    pub(super) now_ms: u64,
    /// Bytes of messages written to connections' output this turn (the event loop bounds it).
    pub(super) turn_output_bytes: usize,
    /// The last [`Origin`] number this shard gave a message it routed.
    pub(super) routed_seq: u64,
    /// Per shard (this one included), the highest [`Origin`] number of its messages
    /// handled here: what a session that moves away takes along.
    pub(super) handled_up_to: Vec<u64>,
    /// The shard's store (`persist.rs`); `None` with persistence off.
    pub(super) persist: Option<Box<Persist>>,
}

impl DataPlane {
    /// The data plane of shard `id`, empty, at `now_ms`.
    pub fn new(id: u16, shared: Arc<Shared>, now_ms: u64) -> Self {
        let c = &shared.config;
        let limits = Limits {
            max_inflight_messages: c.max_inflight_messages,
            max_queued_messages: c.max_queued_messages,
            max_queued_bytes: c.max_queued_bytes,
            receive_maximum: c.receive_maximum,
            ..Limits::default()
        };
        // A per-process random seed: which topics share a route-cache slot is not predictable.
        let cache_seed =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), id);
        let mut routes = Routes::new(id, c.share_strategy, cache_seed);
        for (topic, seq, message) in shared.persist.recovered.iter().flat_map(|r| &r.retained) {
            routes.apply_retained(topic, *seq, Some(message.clone()), now_ms);
        }
        DataPlane {
            id,
            config: shared.reloadable.current(),
            routes,
            // Flow control's room past the bound: what can be on its way from publishers
            // on other shards while they are being told to hold (see `flow.rs`).
            sessions: Sessions::new(
                limits,
                if c.flow_control { c.mesh_queue as usize + c.max_queued_messages } else { 0 },
            ),
            conns: Connections::default(),
            outbox: Outbox::new(id, shared.mesh.clone()),
            drops: DropStats::default(),
            counts: Counters::default(),
            now_ms,
            turn_output_bytes: 0,
            routed_seq: 0,
            handled_up_to: vec![0; shared.mesh.shards()],
            persist: shared.persist.take(id).map(Box::new),
            shared,
        }
    }

    /// A PUBLISH from a client: accept it (topic alias, QoS 2 duplicate check), route it,
    /// then acknowledge with the outcome.
    pub fn handle_publish(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        p: Publish,
        cid: &str,
    ) -> Result<(), Close> {
        crate::log!(
            Debug,
            "Received PUBLISH from {} (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            cid,
            p.dup as u8,
            p.qos as u8,
            p.retain as u8,
            p.packet_id,
            p.topic,
            p.payload.len()
        );
        self.counts.publish_received[p.qos as usize] += 1;
        self.counts.publish_received_bytes += p.payload.len() as u64;
        let cfg = &self.config;
        if p.retain && !cfg.retain_available {
            // Retain Available is 0: a retained PUBLISH is a protocol error (MQTT 5 0x9A,
            // section 3.2.2.3.5).
            return Err(Close::protocol_error(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "retained messages are not available",
            ));
        }
        let oversize = cfg.message_size_limit > 0 && p.payload.len() > cfg.message_size_limit as usize;
        // Payload Format Indicator 1 promises UTF-8; checking it is optional (MQTT 5 0x99).
        let bad_format = cfg.check_payload_format
            && p.properties.as_ref().and_then(|pr| pr.payload_format_indicator) == Some(1)
            && std::str::from_utf8(&p.payload).is_err();
        let (now, dup) = (self.now_ms, p.dup);
        let issued_before = self.persist.as_ref().map_or(0, |p| p.issued());
        let Some(entry) = self.sessions.get_mut(sid) else { return Ok(()) };
        let accepted = entry
            .session
            .accept_publish(p, now)
            .map_err(|e| Close::protocol_error(e.reason_code(), e.describe()))?;
        let denied =
            accepted.message.as_ref().is_some_and(|m| !may_write(entry.access.as_deref_mut(), &m.topic));
        let reason = match accepted.message {
            _ if bad_format => ReasonCode::PAYLOAD_FORMAT_INVALID,
            Some(m) if denied => {
                // Mosquitto's line; 3.1.1 has no way to say no, so the acknowledgement
                // goes out as usual and the message is dropped (as Mosquitto does).
                crate::log!(
                    Debug,
                    "Denied PUBLISH from {} (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
                    cid,
                    dup as u8,
                    m.qos as u8,
                    m.retain as u8,
                    accepted.packet_id,
                    m.topic,
                    m.payload.len()
                );
                ReasonCode::NOT_AUTHORIZED
            }
            _ if oversize => {
                crate::log!(Information, "Dropped too large PUBLISH from {} (message_size_limit).", cid);
                // Not 0x95 "Packet too large", which Mosquitto sends: a PUBACK or PUBREC
                // may not carry it (5.0 sections 3.4.2.1, 3.5.2.1), and a client that
                // checks (ringmq's own codec does) takes it for a malformed packet. 0x97
                // is for "an implementation or administrative imposed limit".
                ReasonCode::QUOTA_EXCEEDED
            }
            // `$share/` begins a shared subscription's filter (5.0 section 4.8.2), so no
            // filter can match a topic name that begins with it: the message could reach
            // no one. Mosquitto refuses every name that begins with `$share` as
            // unauthorized (`acl__check_dollar`, src/security.c), so 0x87 here too; 3.1.1
            // cannot say no, so its PUBACK goes out as usual and the message is dropped.
            Some(m) if m.topic.starts_with("$share") => {
                crate::log!(Debug, "Denied PUBLISH from {} to '{}' ($share).", cid, m.topic);
                ReasonCode::NOT_AUTHORIZED
            }
            Some(mut m) => {
                m.publisher = PublisherKey::new(self.id, sid, 0);
                if self.publish(m) {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_MATCHING_SUBSCRIBERS
                }
            }
            None => ReasonCode::SUCCESS,
        };
        if bad_format && accepted.qos == QoS::AtMostOnce {
            return Err(Close::protocol_error(
                ReasonCode::PAYLOAD_FORMAT_INVALID,
                "payload is not UTF-8 but its format indicator says it is",
            ));
        }
        // What this PUBLISH wrote must be written before it is acknowledged.
        if let Some(p) = self.persist.as_deref_mut() {
            let ack =
                super::persist::Ack { conn, sid, qos: accepted.qos, packet_id: accepted.packet_id, reason };
            if p.defer_ack(ack, issued_before, &mut self.conns, self.now_ms) {
                return Ok(());
            }
        }
        let (Some(entry), Some(c)) = (self.sessions.get_mut(sid), self.conns.get_mut(conn)) else {
            return Ok(());
        };
        entry.session.acknowledge(accepted.qos, accepted.packet_id, reason, &mut c.out);
        if accepted.qos != QoS::AtMostOnce {
            let kind = if accepted.qos == QoS::AtLeastOnce { "PUBACK" } else { "PUBREC" };
            crate::log!(Debug, "Sending {} to {} (m{}, rc{})", kind, cid, accepted.packet_id, reason.0);
        }
        self.conns.wake_writer(conn);
        Ok(())
    }

    /// Takes the configuration a reload put in place (`reload.rs`); the sessions take its
    /// in-flight and queue bounds.
    #[cold]
    pub fn reload_config(&mut self) {
        self.config = self.shared.reloadable.current();
        let c = &self.config;
        let limits = Limits {
            max_inflight_messages: c.max_inflight_messages,
            max_queued_messages: c.max_queued_messages,
            max_queued_bytes: c.max_queued_bytes,
            ..self.sessions.limits()
        };
        self.sessions.set_queue_limits(&limits);
    }

    /// Routes a message published on this shard: retained store, local subscribers, other
    /// shards, shared groups. Returns whether anyone subscribed (on any shard), for
    /// MQTT 5's "no matching subscribers".
    pub fn publish(&mut self, mut msg: Message) -> bool {
        self.routed_seq += 1;
        msg.origin = Origin { shard: self.id, seq: self.routed_seq };
        self.handled_up_to[self.id as usize] = self.routed_seq;
        let mut msg = Routed::new(msg);
        if msg.retain {
            self.publish_retained(&mut msg);
        }
        let mut shards = ShardSet::default();
        let mut matches = self.routes.take_matches();
        let mut shared: Vec<SharedTarget> = Vec::new();
        let sources = self.routes.route(&msg, &mut matches, &mut shards, Some(&mut shared));
        // No Local: not back to the publishing client (5.0 [MQTT-3.8.3-3]). Applied
        // after the route, which is cached per topic for every publisher alike.
        let this_shard = self.id;
        matches.retain(|m| !(m.no_local && PublisherKey::new(this_shard, m.subscriber, 0) == msg.publisher));
        let matched = !matches.is_empty() || !shards.is_empty() || !shared.is_empty();
        self.deliver_matches(&mut msg, &mut matches, sources);
        self.routes.return_matches(matches);
        for to in shards.iter() {
            let forward = MeshMsg::Forward(msg.share());
            self.outbox.send(to as usize, forward);
        }
        for SharedTarget { pick, group, filter } in shared {
            let name = SharedGroupName { group, filter };
            self.deliver_picked(pick, Arc::new(name), &mut msg, 0);
        }
        matched
    }

    /// Stores a retained message (or clears it: an empty payload, 3.1.1 [MQTT-3.3.1-10]
    /// [MQTT-3.3.1-11], 5.0 [MQTT-3.3.1-6] [MQTT-3.3.1-7]) here and on every other shard.
    fn publish_retained(&mut self, msg: &mut Routed) {
        // One process-wide sequence orders retained updates from different shards, so
        // every shard keeps the newest whatever order the mesh delivers them in.
        let seq = self.shared.retain_seq.fetch_add(1, Ordering::Relaxed);
        let stored = (!msg.payload.is_empty()).then(|| msg.share());
        let topic = msg.topic.clone();
        self.routes.apply_retained(&topic, seq, stored.clone(), self.now_ms);
        if let Some(p) = self.persist.as_deref_mut() {
            p.retained(&topic, seq, stored.as_deref());
        }
        self.outbox.broadcast(|| MeshMsg::Retain { topic: topic.clone(), seq, message: stored.clone() });
    }

    /// A message another shard forwarded: local subscribers only (the shards to forward
    /// to and the shared picks were the publishing shard's business).
    pub fn deliver_forwarded(&mut self, msg: Arc<Message>) {
        // Each shard's forwards arrive in its numbering order (one FIFO queue per pair).
        let handled = &mut self.handled_up_to[msg.origin.shard as usize];
        debug_assert!(msg.origin.seq > *handled, "forwards arrive in their origin's order");
        *handled = msg.origin.seq;
        let mut msg = Routed::from_shared(msg);
        let mut matches = self.routes.take_matches();
        let sources = self.routes.route(&msg, &mut matches, &mut ShardSet::default(), None);
        // The publisher is on another shard: No Local excludes no one here.
        self.deliver_matches(&mut msg, &mut matches, sources);
        self.routes.return_matches(matches);
    }

    /// Delivers once to each subscriber among the matches, leaving `matches` empty.
    /// `sources` is how many filters matched: with one, no subscriber can appear twice and
    /// the merge (a sort) is skipped.
    fn deliver_matches(&mut self, msg: &mut Routed, matches: &mut Vec<LocalMatch>, sources: usize) {
        if sources > 1 {
            merge_overlapping(matches);
        }
        for m in matches.drain(..) {
            if m.read_checked && !self.sessions.may_read(m.subscriber, &msg.topic) {
                continue;
            }
            let retain = m.retain_as_published && msg.retain;
            // Delivered at min(published QoS, highest granted QoS) (3.1.1 [MQTT-3.8.4-6],
            // 5.0 [MQTT-3.8.4-8]).
            let qos = msg.qos.min(m.qos);
            let d = DeliveryOf {
                message: msg,
                qos,
                retain,
                subscription_ids: m.subscription_ids,
                shared: None,
                via_stub: false,
                live: true,
            };
            self.deliver(m.subscriber, d);
        }
    }

    /// Delivers to one subscription: a shared-group member, or a retained message's new
    /// subscriber (`retained_replay`: RETAIN set, 3.1.1 [MQTT-3.3.1-8]).
    fn deliver_to_subscription(
        &mut self,
        msg: &mut Routed,
        sid: SessionId,
        sub: &Subscription,
        retained_replay: bool,
        shared: Option<Arc<SharedGroupName>>,
    ) {
        if sub.read_checked && !self.sessions.may_read(sid, &msg.topic) {
            return;
        }
        let retain = retained_replay || (sub.options.retain_as_published && msg.retain);
        let qos = msg.qos.min(sub.options.qos);
        let subscription_ids = sub.subscription_id.into_iter().collect();
        self.deliver(
            sid,
            DeliveryOf {
                message: msg,
                qos,
                retain,
                subscription_ids,
                shared,
                via_stub: false,
                live: !retained_replay,
            },
        );
    }

    /// Hands one delivery to a session and accounts for what became of it.
    // Inlined, with `Sessions::deliver`, into the delivery loops: as two calls the
    // hand-over cost about 30 instructions per delivery more than the one call it replaced
    // (callgrind, fan-out 1 -> 50 at QoS 0); inlined, fewer than before.
    #[inline(always)]
    pub fn deliver(&mut self, sid: SessionId, d: DeliveryOf<'_>) {
        match self.sessions.deliver(sid, d, &mut self.conns, self.now_ms) {
            Delivered::Accepted { bytes } => self.turn_output_bytes += bytes,
            Delivered::Held => {}
            Delivered::Moved { to, msg } => self.outbox.send(to as usize, msg),
            Delivered::DroppedSlowQos0 => self.drops.qos0_slow_subscriber.add(),
            Delivered::DroppedQueueFull => self.drops.queue_full.add(),
            Delivered::QueuedOverLimit { bytes, publisher } => {
                self.turn_output_bytes += bytes;
                self.hold_publisher(sid, publisher);
            }
            Delivered::Ignored => {}
        }
    }

    /// Hands on a delivery made elsewhere (by a moved session's stub, or held while it
    /// existed): the same per-subscriber parts, for the same message.
    pub fn deliver_again(&mut self, sid: SessionId, d: Delivery, via_stub: bool) {
        let message = &mut Routed::from_shared(d.message);
        let (qos, retain, subscription_ids, shared) = (d.qos, d.retain, d.subscription_ids, d.shared);
        self.deliver(
            sid,
            DeliveryOf { message, qos, retain, subscription_ids, shared, via_stub, live: true },
        );
    }

    /// Delivers to a shared group's pick: here, or through the shard that has the member.
    fn deliver_picked(
        &mut self,
        pick: Pick<SessionId, Subscription>,
        name: Arc<SharedGroupName>,
        msg: &mut Routed,
        hops: u8,
    ) {
        match pick {
            Pick::Local(sid, sub) => self.deliver_to_subscription(msg, sid, &sub, false, Some(name)),
            Pick::Shard(shard) => {
                let (group, filter, message) = (name.group.clone(), name.filter.clone(), msg.share());
                self.outbox.send(shard as usize, MeshMsg::SharedForward { group, filter, message, hops })
            }
        }
    }

    /// A message another shard picked this shard for, in a shared group. If the member
    /// it counted on left meanwhile, the group picks again (bounded by
    /// [`SHARED_HOPS_MAX`], since member counts travel the mesh too).
    pub fn deliver_shared(&mut self, group: &Arc<str>, filter: &Arc<str>, msg: Arc<Message>, hops: u8) {
        let mut msg = Routed::from_shared(msg);
        let name = Arc::new(SharedGroupName { group: group.clone(), filter: filter.clone() });
        match self.routes.pick_local_member(group, filter, msg.publisher.0) {
            Some((sid, sub)) => self.deliver_to_subscription(&mut msg, sid, &sub, false, Some(name)),
            None if hops < SHARED_HOPS_MAX => self.deliver_to_group(name, &mut msg, hops + 1),
            None => self.drops.shared_no_member.add(),
        }
    }

    /// Picks one member of a shared group across all shards and delivers to it.
    fn deliver_to_group(&mut self, name: Arc<SharedGroupName>, msg: &mut Routed, hops: u8) {
        match self.routes.pick_member(&name.group, &name.filter, msg.publisher.0) {
            Some(pick) => self.deliver_picked(pick, name, msg, hops),
            None => self.drops.shared_no_member.add(),
        }
    }

    /// Gives the shared-subscription deliveries of a session that ended to other members
    /// of their groups (section 4.8.2). Call after the session left the trie.
    pub fn redistribute_shared(&mut self, deliveries: Vec<Delivery>) {
        for d in deliveries {
            if let Some(name) = d.shared {
                self.deliver_to_group(name, &mut Routed::from_shared(d.message), 0);
            }
        }
    }

    /// Sends a new subscription the retained messages matching it, with RETAIN set
    /// (3.1.1 [MQTT-3.3.1-8]). Expired ones are not sent (MQTT 5 section 3.3.2.3.3).
    pub fn deliver_retained(&mut self, sid: SessionId, filter: &str, sub: &Subscription) {
        for m in self.routes.retained_matching(filter, self.now_ms) {
            self.deliver_to_subscription(&mut Routed::from_shared(m), sid, sub, true, None);
        }
    }

    /// Adds a subscription for a session (its own list and the trie); returns whether
    /// the retained messages for it are to be sent, as its Retain Handling says.
    pub fn subscribe(&mut self, sid: SessionId, filter: &ByteStr, sub: Subscription) -> bool {
        let existed = match self.sessions.get_mut(sid) {
            Some(e) => e.session.add_subscription(filter.clone(), sub),
            None => return false,
        };
        self.route_subscription(sid, filter, sub);
        let send_retained = match sub.options.retain_handling {
            RetainHandling::SendOnSubscribe => true,
            RetainHandling::SendIfNewSubscription => !existed,
            RetainHandling::DoNotSend => false,
        };
        // Retained messages are not sent for shared subscriptions (MQTT 5 section 4.8.2).
        send_retained && !filter.starts_with("$share/")
    }

    /// UNSUBSCRIBE of one filter; returns whether the subscription existed.
    pub fn unsubscribe(&mut self, sid: SessionId, filter: &str) -> bool {
        let existed = self.sessions.get_mut(sid).is_some_and(|e| e.session.remove_subscription(filter));
        if existed {
            self.unroute_subscription(sid, filter);
        }
        existed
    }

    fn route_subscription(&mut self, sid: SessionId, filter: &str, sub: Subscription) {
        if let Some(change) = self.routes.subscribe(sid, filter, sub) {
            self.tell_peers(change);
        }
    }

    fn unroute_subscription(&mut self, sid: SessionId, filter: &str) {
        if let (_, Some(change)) = self.routes.unsubscribe(sid, filter) {
            self.tell_peers(change);
        }
    }

    fn tell_peers(&mut self, change: InterestChange) {
        let from = self.id;
        self.outbox.broadcast(|| change.to_msg(from));
    }

    /// Judges every subscription again after a reload changed the ACLs: a filter the
    /// client may now read only in part has each delivery checked, one it may read
    /// throughout no longer does. A filter the new rules refuse stays subscribed with
    /// every delivery checked, so it delivers nothing it may not read (MQTT has no way
    /// to take a granted subscription back from a client).
    pub fn rejudge_subscriptions(&mut self) {
        let mut changed: Vec<(SessionId, ByteStr, Subscription)> = Vec::new();
        for (sid, e) in self.sessions.iter() {
            if e.access.is_none() {
                continue;
            }
            for (filter, sub) in &e.session.subscriptions {
                let checked =
                    !matches!(self.sessions.subscribe_access(sid, filter), SubscribeAccess::Granted);
                if checked != sub.read_checked {
                    changed.push((sid, filter.clone(), Subscription { read_checked: checked, ..*sub }));
                }
            }
        }
        for (sid, filter, sub) in changed {
            if let Some(e) = self.sessions.get_mut(sid) {
                e.session.add_subscription(filter.clone(), sub);
            }
            // Replaces the trie's copy (and the cached routes with it); interest is unchanged.
            self.route_subscription(sid, &filter, sub);
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
            self.route_subscription(sid, &f, s);
        }
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
            self.unroute_subscription(sid, &f);
        }
    }

    /// Publishes a connection's will, if it still has one.
    pub fn fire_will(&mut self, conn: ConnId) {
        if let Some(will) = self.conns.get_mut(conn).and_then(|c| c.will.take()) {
            self.publish_will(*will);
        }
    }

    /// Publishes a will now; its Message Expiry Interval starts at publication, so the
    /// interval sent on is never more than was set (5.0 [MQTT-3.3.2-6]).
    pub fn publish_will(&mut self, mut will: Message) {
        crate::log!(Debug, "Publishing will to '{}'", will.topic);
        will.expires_at_ms = will
            .properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval_secs)
            .map(|secs| self.now_ms + secs as u64 * 1000);
        self.publish(will);
    }

    /// Handles a data message from another shard: forwarded publishes, interest changes
    /// and retained updates. Gives back the control messages.
    pub fn on_mesh(&mut self, msg: MeshMsg) -> Option<MeshMsg> {
        match msg {
            MeshMsg::Forward(m) => self.deliver_forwarded(m),
            MeshMsg::SharedForward { group, filter, message, hops } => {
                self.deliver_shared(&group, &filter, message, hops)
            }
            MeshMsg::Interest { filter, from, add } => self.routes.apply_remote_interest(&filter, from, add),
            MeshMsg::SharedInterest { group, filter, from, add } => {
                self.routes.apply_remote_shared(&group, &filter, from, add)
            }
            MeshMsg::Retain { topic, seq, message } => {
                self.routes.apply_retained(&topic, seq, message, self.now_ms)
            }
            MeshMsg::HoldPublisher { publisher, hold } => self.hold_here(publisher, hold),
            control => return Some(control),
        }
        None
    }
}

#[cfg(test)]
#[path = "plane_tests.rs"]
mod tests;
