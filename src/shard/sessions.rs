//! A shard's sessions: the table the trie's subscriber ids point into, the index by
//! client id, and the one place a delivery is handed to a session (written into its
//! connection's output, queued while it is offline, or sent on to the shard it moved to).

use super::connections::Connections;
use super::drops::OUTPUT_HIGH_WATER_BYTES;
use super::flow::Flow;
use super::ids::ConnId;
pub use super::ids::SessionId;
use super::messages::{ConnectToken, MeshMsg};
use super::security::ClientAccess;
use super::slab::Slab;
use crate::auth::acl::SubscribeAccess;
use crate::protocol::topic::parse_shared;
use crate::protocol::{ByteStr, QoS};
use crate::session::{
    DeliverOutcome, Delivery, Limits, Message, PublisherKey, Routed, SentCounts, Session, SharedGroupName,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A session and where it stands on this shard.
pub struct SessionEntry {
    pub session: Session,
    pub conn: Option<ConnId>,
    /// The registration this session holds at its client id's home shard.
    pub token: ConnectToken,
    /// When the connection went away, on the shard clock (for session expiry).
    pub offline_since_ms: Option<u64>,
    /// A will waiting out its Will Delay Interval (MQTT 5): (due at, on the shard clock;
    /// the will). Boxed, as are the other rarely-set fields here: sessions are many, wills few.
    pub delayed_will: Option<Box<(u64, Message)>>,
    /// Set on the stub left behind when the session moved to another shard: deliveries
    /// go on to (shard, handoff token) until the new holder releases the stub.
    pub moved_to: Option<Box<(u16, ConnectToken)>>,
    /// Set on a session that just arrived from another shard, until the old holder's
    /// stub is gone. Boxed: a session arrives from another shard rarely, and every byte
    /// here is paid per session.
    pub arriving: Option<Box<Arrival>>,
    /// The client's ACL, when an `acl_file` applies to it (none: everything is allowed).
    pub access: Option<Box<ClientAccess>>,
    /// Flow control: set while its queue is past the bound (it holds publishers) or it
    /// is stuck (see `flow.rs`).
    pub flow: Option<Box<Flow>>,
}

/// A session from its arrival from another shard until no copy of a message can still
/// come two ways: forwarded by the old holder's stub (which had it first, in its
/// publishers' order) and directly.
///
/// - While the stub exists, stub copies are delivered at once and direct copies wait,
///   since a direct copy can overtake an earlier message still on its way through the
///   stub; when the stub is gone, the waiting copies that the stub did not bring are
///   delivered, in order (3.1.1 [MQTT-4.6.0-6], 5.0 [MQTT-4.6.0-5]).
/// - After that, a direct copy of a message the stub brought may still be on its way
///   from its publisher's shard (the stub's end says nothing of the queues into this
///   shard), so copies are checked against what the stub brought until one more barrier
///   round trip has drained every queue into this shard.
pub struct Arrival {
    /// The handoff the session arrived with.
    token: ConnectToken,
    /// The old holder's stub is gone (`Released` came).
    stub_gone: bool,
    /// Messages the session has: held when it arrived, or brought by the stub.
    seen: HashMap<usize, Arc<Message>>,
    /// Direct deliveries waiting for the stub to go, in arrival order.
    held: Vec<Delivery>,
    /// Per origin shard, the number up to which the old shard handled messages for the
    /// session: a direct copy numbered up to there is not delivered again.
    handled_up_to: Box<[u64]>,
}

impl Arrival {
    /// An arrival of a session that already holds `messages` (in flight and queued), whose
    /// old shard handled every shard's messages up to `handled_up_to`.
    pub fn new<'m>(
        token: ConnectToken,
        messages: impl Iterator<Item = &'m Arc<Message>>,
        handled_up_to: Box<[u64]>,
    ) -> Self {
        let seen = messages.map(|m| (Arc::as_ptr(m) as usize, m.clone())).collect();
        Arrival { token, stub_gone: false, seen, held: Vec::new(), handled_up_to }
    }

    /// Merges into `handled` (the shard's own) what this arrival's old shard had handled:
    /// a session moving on before its arrival ended takes both along.
    pub fn merge_handled(&self, handled: &mut [u64]) {
        for (mine, theirs) in handled.iter_mut().zip(self.handled_up_to.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Whether the old shard already handled `m` for the session.
    fn handled_before(&self, m: &Message) -> bool {
        m.origin.seq != 0
            && self.handled_up_to.get(m.origin.shard as usize).is_some_and(|&h| m.origin.seq <= h)
    }
}

/// What became of one delivery.
pub enum Delivered {
    /// Written to the connection's output (this many bytes), or queued in the session.
    Accepted { bytes: usize },
    /// Held until the old holder's stub is gone (see [`Arrival`]).
    Held,
    /// The session moved: the delivery goes on to shard `to` in this message.
    Moved { to: u16, msg: MeshMsg },
    /// A QoS 0 message to a connection whose output is above [`OUTPUT_HIGH_WATER_BYTES`].
    DroppedSlowQos0,
    /// A QoS 1/2 message beyond `max_queued_messages`.
    DroppedQueueFull,
    /// Queued past `max_queued_messages` (flow control): hold `publisher`.
    QueuedOverLimit { bytes: usize, publisher: PublisherKey },
    /// Nothing to deliver to: no such session, or a duplicate of a message that came
    /// both directly and through the old holder's stub.
    Ignored,
}

/// One delivery: the message and how this subscriber gets it.
pub struct DeliveryOf<'m> {
    pub message: &'m mut Routed,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    pub shared: Option<Arc<SharedGroupName>>,
    /// Forwarded by the old holder's stub of a session that moved here.
    pub via_stub: bool,
    /// Routed from a PUBLISH now, so its publisher can be held (flow control); false for
    /// retained messages sent to a new subscription.
    pub live: bool,
}

/// The session table of one shard.
pub struct Sessions {
    table: Slab<SessionEntry>,
    by_client: HashMap<ByteStr, SessionId>,
    limits: Limits,
    /// Messages an online subscriber may queue past its bound while its publishers are
    /// held (flow control); 0 when flow control is off.
    overflow: usize,
    /// Sessions with a [`Flow`], for the once-a-second stuck check.
    flowing: Vec<SessionId>,
    /// What sessions removed since the last [`Sessions::take_sent`] had sent.
    sent_retired: SentCounts,
}

impl Sessions {
    /// Sessions with `limits`, and `overflow` messages past the queue bound while
    /// publishers are held (0: no flow control, drop at the bound).
    pub fn new(limits: Limits, overflow: usize) -> Self {
        Sessions {
            table: Slab::default(),
            by_client: HashMap::new(),
            limits,
            overflow,
            flowing: Vec::new(),
            sent_retired: SentCounts::default(),
        }
    }

    /// A reload's in-flight and queue bounds, for every session here and every new one.
    pub fn set_queue_limits(&mut self, limits: &Limits) {
        self.limits.max_inflight_messages = limits.max_inflight_messages;
        self.limits.max_queued_messages = limits.max_queued_messages;
        self.limits.max_queued_bytes = limits.max_queued_bytes;
        for (_, e) in self.table.iter_mut() {
            e.session.set_queue_limits(limits);
        }
    }

    /// The limits every new session on this shard gets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Adds a session (offline when `conn` is `None`) under its client id.
    pub fn install(
        &mut self,
        session: Session,
        conn: Option<ConnId>,
        token: ConnectToken,
        now_ms: u64,
    ) -> SessionId {
        let client_id = session.client_id.clone();
        let sid = self.table.insert(SessionEntry {
            session,
            conn,
            token,
            offline_since_ms: conn.is_none().then_some(now_ms),
            delayed_will: None,
            moved_to: None,
            arriving: None,
            access: None,
            flow: None,
        });
        self.by_client.insert(client_id, sid);
        sid
    }

    /// Removes a session; its client id goes too, unless it names another session now.
    pub fn remove(&mut self, sid: SessionId) -> Option<SessionEntry> {
        let mut entry = self.table.remove(sid)?;
        // Counted here: a session that moves on starts from zero on its new shard.
        self.sent_retired.add(&std::mem::take(&mut entry.session.sent));
        if self.by_client.get(&entry.session.client_id) == Some(&sid) {
            self.by_client.remove(&entry.session.client_id);
        }
        Some(entry)
    }

    /// What the sessions sent since the last call (a walk over them: once per interval,
    /// never per message).
    pub fn take_sent(&mut self) -> SentCounts {
        let mut sent = std::mem::take(&mut self.sent_retired);
        for (_, e) in self.table.iter_mut() {
            sent.add(&std::mem::take(&mut e.session.sent));
        }
        sent
    }

    /// Every session on this shard.
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &SessionEntry)> {
        self.table.iter()
    }

    pub fn get(&self, sid: SessionId) -> Option<&SessionEntry> {
        self.table.get(sid)
    }

    pub fn get_mut(&mut self, sid: SessionId) -> Option<&mut SessionEntry> {
        self.table.get_mut(sid)
    }

    /// The session held for a client id on this shard.
    pub fn by_client(&self, client_id: &str) -> Option<SessionId> {
        self.by_client.get(client_id).copied()
    }

    /// Stops finding a session by its client id (it became a stub).
    pub fn forget_client(&mut self, client_id: &str) {
        self.by_client.remove(client_id);
    }

    /// The connection a session is attached to, if any.
    pub fn conn_of(&self, sid: SessionId) -> Option<ConnId> {
        self.table.get(sid).and_then(|e| e.conn)
    }

    /// Hands one delivery to a session: into its connection's output when it is online,
    /// into its queue when not, or on to the shard it moved to.
    // Inlined into `DataPlane::deliver`: see there why.
    #[inline(always)]
    /// Whether session `sid`'s ACL lets it read `topic` (asked only for subscriptions
    /// marked `read_checked`).
    pub fn may_read(&self, sid: SessionId, topic: &str) -> bool {
        self.table.get(sid).is_some_and(|e| e.access.as_ref().is_none_or(|a| a.may_read(topic)))
    }

    /// What session `sid`'s ACL says of a subscription to `filter`; a shared
    /// subscription is judged on its filter proper.
    pub fn subscribe_access(&self, sid: SessionId, filter: &str) -> SubscribeAccess {
        let Some(access) = self.table.get(sid).and_then(|e| e.access.as_deref()) else {
            return SubscribeAccess::Granted;
        };
        let proper = match parse_shared(filter) {
            Ok(Some(shared)) => shared.filter,
            _ => filter,
        };
        access.subscribe(proper)
    }

    /// Each session's ACL, recompiled from `access` (a reload).
    pub fn recompile_access(&mut self, access: &super::security::AccessControl) {
        for (_, e) in self.table.iter_mut() {
            let client_id = e.session.client_id.clone();
            if let Some(a) = e.access.as_deref_mut() {
                a.replace_acl(access.listener(a.listener).acl_for(a.username.as_deref(), &client_id));
            }
        }
    }

    pub fn deliver(
        &mut self,
        sid: SessionId,
        d: DeliveryOf<'_>,
        conns: &mut Connections,
        now_ms: u64,
    ) -> Delivered {
        let Some(entry) = self.table.get_mut(sid) else { return Delivered::Ignored };
        let DeliveryOf { message, qos, retain, subscription_ids, shared, via_stub, live } = d;
        if let Some(arrival) = &mut entry.arriving {
            let key = Arc::as_ptr(&message.share()) as usize;
            if arrival.seen.contains_key(&key) {
                return Delivered::Ignored;
            }
            if !via_stub {
                // The numbers say what the old shard routed; a shared group's pick was
                // made for this shard alone, whatever the old one had seen.
                if shared.is_none() && arrival.handled_before(message) {
                    return Delivered::Ignored;
                }
                if !arrival.stub_gone {
                    let delivery =
                        Delivery { message: message.share(), qos, retain, subscription_ids, shared };
                    arrival.held.push(delivery);
                    return Delivered::Held;
                }
            } else {
                arrival.seen.insert(key, message.share());
            }
        }
        if let Some(&(to, token)) = entry.moved_to.as_deref() {
            let delivery = Delivery { message: message.share(), qos, retain, subscription_ids, shared };
            return Delivered::Moved { to, msg: MeshMsg::MovedDelivery { token, delivery } };
        }
        let conn = entry.conn;
        // Offline sessions queue and write nothing; they still need somewhere to write.
        let mut offline_sink = bytes::BytesMut::new();
        let mut online = false;
        let out = match conn.and_then(|c| conns.get_mut(c)) {
            Some(c) if !c.is_closing() => {
                if qos == QoS::AtMostOnce && c.out.len() > OUTPUT_HIGH_WATER_BYTES {
                    return Delivered::DroppedSlowQos0;
                }
                online = true;
                &mut c.out
            }
            _ => &mut offline_sink,
        };
        let before = out.len();
        let outcome = if qos == QoS::AtMostOnce {
            entry.session.deliver_qos0(message, retain, &subscription_ids, now_ms, out)
        } else {
            // Online and moving: room past the bound while its publishers are held. A
            // message with no publisher to hold (a will, a retained message sent on
            // subscribe) meets the bound as before.
            let stuck = entry.flow.as_ref().is_some_and(|f| f.stuck);
            let holdable = live && message.publisher != PublisherKey::NONE;
            let overflow = if online && !stuck && holdable { self.overflow } else { 0 };
            let delivery = Delivery { message: message.share(), qos, retain, subscription_ids, shared };
            entry.session.deliver_within(delivery, now_ms, out, overflow)
        };
        let bytes = out.len() - before;
        if bytes > 0 {
            if let Some(c) = conn {
                conns.wake_writer(c);
            }
        }
        match outcome {
            DeliverOutcome::QueuedOverLimit => {
                Delivered::QueuedOverLimit { bytes, publisher: message.publisher }
            }
            DeliverOutcome::Dropped if qos != QoS::AtMostOnce => {
                if let Some(f) = entry.flow.as_deref_mut().filter(|f| f.stuck) {
                    f.dropped_while_stuck += 1;
                }
                Delivered::DroppedQueueFull
            }
            _ => Delivered::Accepted { bytes },
        }
    }

    /// Session `sid` queued a message past its bound: it now holds `publisher`. True when
    /// the hold is new (the caller tells the publisher's shard).
    pub fn hold(&mut self, sid: SessionId, publisher: PublisherKey, now_ms: u64) -> bool {
        let Some(e) = self.table.get_mut(sid) else { return false };
        let flow = e.flow.get_or_insert_with(|| {
            self.flowing.push(sid);
            Box::new(Flow::new(now_ms))
        });
        flow.hold(publisher)
    }

    /// The client of `sid` acknowledged a message. When its queue has drained to half
    /// the bound, returns the publishers to let go; a stuck session moves again.
    pub fn progress(&mut self, sid: SessionId, now_ms: u64) -> Vec<PublisherKey> {
        let release_at = super::flow::release_at(self.limits.max_queued_messages);
        let Some(e) = self.table.get_mut(sid) else { return Vec::new() };
        let Some(flow) = e.flow.as_deref_mut() else { return Vec::new() };
        flow.last_progress_ms = now_ms;
        if flow.stuck {
            flow.stuck = false;
            crate::log!(
                Notice,
                "Client {} is taking its messages again; {} were dropped while it was stuck.",
                e.session.client_id,
                flow.dropped_while_stuck
            );
            flow.dropped_while_stuck = 0;
        }
        if e.session.queued() > release_at {
            return Vec::new();
        }
        // The flow stays until the next stuck check clears it, so that a session held
        // and let go many times a second is listed once.
        std::mem::take(&mut flow.holding)
    }

    /// Ends session `sid`'s flow control (its connection went, or it leaves the shard):
    /// the publishers to let go.
    pub fn end_flow(&mut self, sid: SessionId) -> Vec<PublisherKey> {
        self.table.get_mut(sid).and_then(|e| e.flow.take()).map(|f| f.holding).unwrap_or_default()
    }

    /// Sessions that have held publishers for `stuck_ms` without taking a message
    /// become stuck (logged with the client id): the publishers they let go. Flows that
    /// hold no one and are not stuck are cleared.
    pub fn stuck_check(&mut self, now_ms: u64, stuck_ms: u64) -> Vec<PublisherKey> {
        let mut released = Vec::new();
        let table = &mut self.table;
        self.flowing.sort_unstable();
        self.flowing.dedup();
        self.flowing.retain(|&sid| {
            let Some(e) = table.get_mut(sid) else { return false };
            let Some(flow) = e.flow.as_deref_mut() else { return false };
            if !flow.stuck && flow.holding.is_empty() {
                e.flow = None;
                return false;
            }
            if flow.is_stuck_at(now_ms, stuck_ms) {
                flow.stuck = true;
                crate::log!(
                    Warning,
                    "Warning: client {} has taken no message for {} s with its queue full; its publishers go on and what does not fit its queue is dropped.",
                    e.session.client_id,
                    stuck_ms / 1000
                );
                released.append(&mut flow.holding);
            }
            true
        });
        released
    }

    /// The old holder's stub of an arrived session is gone: the direct deliveries that
    /// waited for it and that the stub did not bring, in order, to deliver now.
    pub fn stub_gone(&mut self, sid: SessionId) -> Vec<Delivery> {
        let Some(arrival) = self.table.get_mut(sid).and_then(|e| e.arriving.as_deref_mut()) else {
            return Vec::new();
        };
        arrival.stub_gone = true;
        let seen = &arrival.seen;
        let held = std::mem::take(&mut arrival.held);
        held.into_iter().filter(|d| !seen.contains_key(&(Arc::as_ptr(&d.message) as usize))).collect()
    }

    /// Every queue into this shard has drained since the stub of handoff `token` went:
    /// no copy can come two ways any more.
    pub fn end_arrival(&mut self, sid: SessionId, token: ConnectToken) {
        if let Some(e) = self.table.get_mut(sid) {
            if e.arriving.as_ref().is_some_and(|a| a.token == token && a.stub_gone) {
                e.arriving = None;
            }
        }
    }

    /// Takes the delayed wills that are due (their Will Delay Interval has passed).
    pub fn take_due_wills(&mut self, now_ms: u64) -> Vec<Message> {
        let due: Vec<SessionId> = self
            .table
            .iter()
            .filter_map(|(sid, e)| e.delayed_will.as_ref().filter(|d| d.0 <= now_ms).map(|_| sid))
            .collect();
        due.into_iter().filter_map(|sid| self.table.get_mut(sid)?.delayed_will.take().map(|d| d.1)).collect()
    }

    /// Offline sessions whose expiry interval has passed. `default_expiry` applies to
    /// sessions that never expire by the protocol (3.1.1 clean session 0):
    /// `persistent_client_expiration`.
    pub fn expired(&self, now_ms: u64, default_expiry: Option<Duration>) -> Vec<SessionId> {
        self.table
            .iter()
            .filter_map(|(sid, e)| {
                // A stub lives until the new holder releases it.
                if e.moved_to.is_some() {
                    return None;
                }
                let since = e.offline_since_ms?;
                let secs = e.session.expiry_interval_secs;
                let limit_ms =
                    if secs == u32::MAX { default_expiry?.as_millis() as u64 } else { secs as u64 * 1000 };
                (now_ms.saturating_sub(since) >= limit_ms).then_some(sid)
            })
            .collect()
    }
}
