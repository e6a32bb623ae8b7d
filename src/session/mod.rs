//! The per-client session: a sans-IO state machine.
//!
//! Inputs are the client's packets (`handle_*`) and messages routed to it ([`Session::deliver`]);
//! outputs are encoded packets appended to the connection's output buffer, which the caller
//! passes in, and messages to route (returned). The session knows nothing of sockets, shards
//! or the clock, so a unit test drives a whole QoS 2 exchange with a `BytesMut`.
//!
//! A session outlives its connection when it is persistent (clean session 0, or a session
//! expiry interval above 0): it then keeps its subscriptions, queues QoS 1/2 messages while
//! offline, and on [`Session::resume`] re-sends what was unacknowledged, with DUP set
//! [MQTT-4.4.0-1].

mod message;
mod outbound;
mod types;

pub use message::{Delivery, Message, Origin, PublisherKey, Routed, SharedGroupName};
pub use outbound::{Enqueued, Inflight, InflightOut, OutState, Outbound};
pub use types::{
    Accepted, AckKind, DeliverOutcome, DropCounts, Limits, SentCounts, SessionError, Subscription,
};

use crate::protocol::{
    encode_publish, publish_len, wire::varint_len, Ack, ByteStr, Packet, ProtocolVersion, Publish,
    PublishHeader, QoS, ReasonCode,
};
use bytes::BytesMut;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A connection's topic aliases in both directions (MQTT 5).
#[derive(Debug, Default)]
struct TopicAliases {
    inbound: HashMap<u16, ByteStr>,
    outbound: HashMap<ByteStr, u16>,
}

/// One client's session state.
#[derive(Debug)]
pub struct Session {
    pub client_id: ByteStr,
    pub version: ProtocolVersion,
    /// Seconds the session outlives its connection; `u32::MAX` never expires (3.1.1
    /// clean session 0), 0 ends with the connection.
    pub expiry_interval_secs: u32,
    pub subscriptions: HashMap<ByteStr, Subscription>,
    pub outbound: Outbound,
    /// Inbound QoS 2 packet ids received but not yet released (PUBREL).
    inbound_qos2: HashSet<u16>,
    /// Topic aliases (MQTT 5), per connection; allocated on first use, since most
    /// sessions never have one and a broker holds very many sessions.
    aliases: Option<Box<TopicAliases>>,
    /// The client's Receive Maximum (MQTT 5; 65,535 when absent).
    client_receive_maximum: u16,
    /// The client's Maximum Packet Size; never send it a bigger packet (5.0 [MQTT-3.1.2-24]).
    client_max_packet_bytes: usize,
    /// How many outbound topic aliases the client allows.
    client_topic_alias_maximum: u16,
    limits: Limits,
    online: bool,
    pub drops: DropCounts,
    pub sent: SentCounts,
}

impl Session {
    /// A new, empty session.
    pub fn new(
        client_id: ByteStr,
        version: ProtocolVersion,
        expiry_interval_secs: u32,
        limits: Limits,
    ) -> Self {
        Session {
            client_id,
            version,
            expiry_interval_secs,
            subscriptions: HashMap::new(),
            outbound: Outbound::default(),
            inbound_qos2: HashSet::new(),
            aliases: None,
            client_receive_maximum: u16::MAX,
            client_max_packet_bytes: usize::MAX,
            client_topic_alias_maximum: 0,
            limits,
            online: false,
            drops: DropCounts::default(),
            sent: SentCounts::default(),
        }
    }

    /// Takes a reload's in-flight and queue bounds (`max_inflight_messages`,
    /// `max_queued_messages`, `max_queued_bytes`); what is queued beyond a lowered bound
    /// stays, and no more is queued until it drains below it.
    pub fn set_queue_limits(&mut self, limits: &Limits) {
        self.limits.max_inflight_messages = limits.max_inflight_messages;
        self.limits.max_queued_messages = limits.max_queued_messages;
        self.limits.max_queued_bytes = limits.max_queued_bytes;
    }

    /// Attaches a (new) connection: its protocol level and the client's flow-control
    /// limits from CONNECT. Topic aliases are per connection and start empty.
    pub fn attach(
        &mut self,
        version: ProtocolVersion,
        client_receive_maximum: u16,
        client_max_packet_bytes: usize,
    ) {
        self.version = version;
        self.client_receive_maximum = client_receive_maximum.max(1);
        self.client_max_packet_bytes = client_max_packet_bytes;
        self.aliases = None;
        self.client_topic_alias_maximum = 0;
        self.online = true;
    }

    /// The client's Topic Alias Maximum from CONNECT (MQTT 5): how many outbound aliases
    /// we may use. 0, the default, means none.
    pub fn set_client_topic_alias_maximum(&mut self, max: u16) {
        self.client_topic_alias_maximum = max;
    }

    /// The connection is gone; the session stays (if persistent) and queues from now on.
    pub fn detach(&mut self) {
        self.online = false;
        self.aliases = None;
    }

    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Whether the session outlives its connection.
    pub fn is_persistent(&self) -> bool {
        self.expiry_interval_secs > 0
    }

    fn window(&self) -> usize {
        self.limits.max_inflight_messages.min(self.client_receive_maximum).max(1) as usize
    }

    fn ack(&self, out: &mut BytesMut, make: fn(Ack) -> Packet, packet_id: u16, reason: ReasonCode) {
        make(Ack { packet_id, reason, properties: None }).encode(self.version, out);
    }

    /// A PUBLISH from the client: resolves its topic alias and returns what to route
    /// (`None` for a QoS 2 retransmission already routed). The caller routes the message,
    /// then calls [`Session::acknowledge`] with the reason (MQTT 5 may say 0x10, no
    /// matching subscribers).
    pub fn accept_publish(&mut self, p: Publish, now_ms: u64) -> Result<Accepted, SessionError> {
        let mut properties = p.properties;
        let mut topic = p.topic;
        if let Some(props) = properties.as_deref_mut() {
            if !props.subscription_identifiers.is_empty() {
                return Err(SessionError::SubscriptionIdFromClient);
            }
            if let Some(alias) = props.topic_alias.take() {
                // 5.0 [MQTT-3.3.2-8] [MQTT-3.3.2-9]: 0 and values above our maximum are errors.
                if alias == 0 || alias > self.limits.max_topic_alias {
                    return Err(SessionError::TopicAliasInvalid);
                }
                if topic.is_empty() {
                    topic = self
                        .aliases
                        .as_ref()
                        .and_then(|a| a.inbound.get(&alias).cloned())
                        .ok_or(SessionError::UnknownTopicAlias)?;
                } else {
                    self.aliases.get_or_insert_default().inbound.insert(alias, topic.clone());
                }
            }
        }
        let expires_at_ms = properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval_secs)
            .map(|secs| now_ms + secs as u64 * 1000);
        let properties = properties.filter(|p| **p != Default::default()).map(|b| Arc::new(*b));
        let message = Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
            expires_at_ms,
            publisher: PublisherKey::NONE,
            origin: Origin::UNROUTED,
        };
        let route = match p.qos {
            QoS::ExactlyOnce => {
                let at_maximum =
                    self.version.is_v5() && self.inbound_qos2.len() >= self.limits.receive_maximum as usize;
                if self.inbound_qos2.contains(&p.packet_id) {
                    // A PUBLISH reusing the identifier of an exchange still open is
                    // acknowledged again but never routed twice (3.1.1 [MQTT-4.3.3-2],
                    // 5.0 [MQTT-4.3.3-10]). One with DUP 0 is a new PUBLISH though
                    // [MQTT-3.3.1-1]: with every exchange the maximum allows open it is one
                    // unacknowledged PUBLISH too many (5.0 [MQTT-3.3.4-7]). At the default
                    // maximum, 65,535, that is the only way a client can exceed it (one
                    // exchange per identifier).
                    if at_maximum && !p.dup {
                        return Err(SessionError::ReceiveMaximumExceeded);
                    }
                    false
                } else if at_maximum {
                    return Err(SessionError::ReceiveMaximumExceeded);
                } else {
                    true
                }
            }
            _ => true,
        };
        Ok(Accepted { message: route.then_some(message), qos: p.qos, packet_id: p.packet_id })
    }

    /// Sends the PUBACK or PUBREC for an accepted PUBLISH. A QoS 2 exchange stays open
    /// until PUBREL unless the reason is an error (section 4.3.3).
    pub fn acknowledge(&mut self, qos: QoS, packet_id: u16, reason: ReasonCode, out: &mut BytesMut) {
        let reason = if self.version.is_v5() { reason } else { ReasonCode::SUCCESS };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.ack(out, Packet::PubAck, packet_id, reason),
            QoS::ExactlyOnce => {
                if !reason.is_error() {
                    self.inbound_qos2.insert(packet_id);
                }
                self.ack(out, Packet::PubRec, packet_id, reason);
            }
        }
    }

    /// [`Session::accept_publish`] and [`Session::acknowledge`] in one, for callers that
    /// route after acknowledging.
    pub fn handle_publish(
        &mut self,
        p: Publish,
        now_ms: u64,
        out: &mut BytesMut,
    ) -> Result<Option<Message>, SessionError> {
        let a = self.accept_publish(p, now_ms)?;
        self.acknowledge(a.qos, a.packet_id, ReasonCode::SUCCESS, out);
        Ok(a.message)
    }

    /// PUBREL: the client releases an inbound QoS 2 message; answer PUBCOMP.
    pub fn handle_pubrel(&mut self, packet_id: u16, out: &mut BytesMut) {
        let reason = if self.inbound_qos2.remove(&packet_id) {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.ack(out, Packet::PubComp, packet_id, reason);
    }

    /// Checks that an acknowledgement fits the message in flight under its identifier: a
    /// QoS 1 message is answered by PUBACK alone, a QoS 2 message by PUBREC and then
    /// PUBCOMP (section 4.3.2, 4.3.3). Anything else (PUBREC or PUBCOMP for QoS 1; PUBACK
    /// for QoS 2; PUBCOMP before PUBREC) is a protocol violation, which closes the
    /// connection (3.1.1 [MQTT-4.8.0-1]; 5.0 section 4.13.1, with DISCONNECT 0x82), as
    /// Mosquitto does. An identifier not in flight is a late duplicate and passes: the
    /// `handle_*` methods ignore it (or answer PUBREL 0x92).
    pub fn check_ack(&self, kind: AckKind, packet_id: u16) -> Result<(), SessionError> {
        let Some(state) = self.outbound.inflight.state_of(packet_id) else { return Ok(()) };
        let fits = match kind {
            AckKind::PubAck => state == OutState::AwaitingPubAck,
            // A repeated PUBREC (our PUBREL was lost) is answered again.
            AckKind::PubRec => state != OutState::AwaitingPubAck,
            AckKind::PubComp => state == OutState::AwaitingPubComp,
        };
        if fits {
            Ok(())
        } else {
            Err(SessionError::WrongAcknowledgement)
        }
    }

    /// PUBACK for a QoS 1 message we sent. Unknown ids are ignored (a late duplicate).
    pub fn handle_puback(&mut self, packet_id: u16, now_ms: u64, out: &mut BytesMut) {
        if let Some(i) = self.outbound.find(packet_id, OutState::AwaitingPubAck) {
            self.outbound.inflight.remove(i);
            self.pump(now_ms, out);
        }
    }

    /// PUBREC for a QoS 2 message we sent: answer PUBREL, or end the exchange when the
    /// client refused it with an error reason (MQTT 5, section 4.3.3).
    pub fn handle_pubrec(&mut self, packet_id: u16, reason: ReasonCode, now_ms: u64, out: &mut BytesMut) {
        match self.outbound.find(packet_id, OutState::AwaitingPubRec) {
            Some(i) if reason.is_error() => {
                self.outbound.inflight.remove(i);
                self.pump(now_ms, out);
            }
            Some(i) => {
                self.outbound.inflight.set_state(i, OutState::AwaitingPubComp);
                self.ack(out, Packet::PubRel, packet_id, ReasonCode::SUCCESS);
            }
            None if self.outbound.find(packet_id, OutState::AwaitingPubComp).is_some() => {
                // A repeated PUBREC: our PUBREL may have been lost.
                self.ack(out, Packet::PubRel, packet_id, ReasonCode::SUCCESS);
            }
            None => self.ack(out, Packet::PubRel, packet_id, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
        }
    }

    /// PUBCOMP: the QoS 2 exchange is over.
    pub fn handle_pubcomp(&mut self, packet_id: u16, now_ms: u64, out: &mut BytesMut) {
        if let Some(i) = self.outbound.find(packet_id, OutState::AwaitingPubComp) {
            self.outbound.inflight.remove(i);
            self.pump(now_ms, out);
        }
    }

    /// Delivers a routed message: sends it now if the client is online and the window
    /// has room, else queues QoS 1/2 up to the bounds. QoS 0 is never queued for an
    /// offline client. `out` is the connection's buffer (ignored while offline).
    pub fn deliver(&mut self, d: Delivery, now_ms: u64, out: &mut BytesMut) -> DeliverOutcome {
        self.deliver_within(d, now_ms, out, 0)
    }

    /// [`Session::deliver`], with `overflow` messages allowed past the queue's bounds
    /// (flow control: the caller holds the publisher of a message queued there).
    // Inlined into the shard's delivery loop as `deliver` was before flow control: as a
    // call it cost fan-out at QoS 1 about 5% more instructions per message (callgrind,
    // results/2026-12-08-vm-2cpu-flow-control).
    #[inline]
    pub fn deliver_within(
        &mut self,
        d: Delivery,
        now_ms: u64,
        out: &mut BytesMut,
        overflow: usize,
    ) -> DeliverOutcome {
        if d.qos == QoS::AtMostOnce {
            return self.deliver_qos0(&d.message, d.retain, &d.subscription_ids, now_ms, out);
        }
        if self.has_room() && self.outbound.queue.is_empty() {
            return self.send_tracked(d, now_ms, out);
        }
        let (max_messages, max_bytes) = (self.limits.max_queued_messages, self.limits.max_queued_bytes);
        match self.outbound.enqueue_within(d, max_messages, max_bytes, overflow) {
            Enqueued::WithinBounds => DeliverOutcome::Queued,
            Enqueued::PastBounds => DeliverOutcome::QueuedOverLimit,
            Enqueued::Dropped => {
                self.drops.queue_full += 1;
                DeliverOutcome::Dropped
            }
        }
    }

    /// QoS 1/2 messages held for the client: in flight and queued (`$SYS`'s `stored`).
    pub fn stored(&self) -> usize {
        self.outbound.inflight.len() + self.outbound.queue.len()
    }

    /// Messages queued behind the in-flight window.
    pub fn queued(&self) -> usize {
        self.outbound.queue.len()
    }

    /// [`Session::deliver`] for QoS 0, from borrowed parts: nothing is kept, so the
    /// shared message is not even reference-counted.
    pub fn deliver_qos0(
        &mut self,
        message: &Message,
        retain: bool,
        ids: &[u32],
        now_ms: u64,
        out: &mut BytesMut,
    ) -> DeliverOutcome {
        if !self.online {
            return DeliverOutcome::Dropped;
        }
        self.send_publish(message, QoS::AtMostOnce, retain, ids, 0, false, now_ms, out)
    }

    fn send_tracked(&mut self, d: Delivery, now_ms: u64, out: &mut BytesMut) -> DeliverOutcome {
        let Some(packet_id) = self.outbound.next_packet_id() else {
            self.drops.queue_full += 1;
            return DeliverOutcome::Dropped;
        };
        let outcome = self.send_publish(
            &d.message,
            d.qos,
            d.retain,
            &d.subscription_ids,
            packet_id,
            false,
            now_ms,
            out,
        );
        if outcome == DeliverOutcome::Sent {
            let state =
                if d.qos == QoS::AtLeastOnce { OutState::AwaitingPubAck } else { OutState::AwaitingPubRec };
            self.outbound.inflight.push_back(InflightOut { packet_id, state, delivery: d, resend: false });
        }
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn send_publish(
        &mut self,
        m: &Message,
        qos: QoS,
        retain: bool,
        subscription_ids: &[u32],
        packet_id: u16,
        dup: bool,
        now_ms: u64,
        out: &mut BytesMut,
    ) -> DeliverOutcome {
        // Message expiry (MQTT 5, section 3.3.2.3.3): an expired message is never sent;
        // a live one carries the time it has left.
        let remaining_secs = match m.expires_at_ms {
            Some(at) if at <= now_ms => {
                self.drops.expired += 1;
                return DeliverOutcome::Dropped;
            }
            // Shards' clocks are read once per turn each, so the reading here can lag the
            // one the expiry was set from: never send more than the interval that was set
            // (5.0 [MQTT-3.3.2-6]).
            Some(at) => {
                let left = (at - now_ms).div_ceil(1000);
                let set =
                    m.properties.as_ref().and_then(|p| p.message_expiry_interval_secs).unwrap_or(u32::MAX);
                Some(left.min(set as u64) as u32)
            }
            None => None,
        };
        let v5 = self.version.is_v5();
        let mut topic: &[u8] = m.topic.as_bytes();
        let alias = if v5 { self.outbound_alias(&m.topic) } else { None };
        let owned;
        let props = if v5 && (!subscription_ids.is_empty() || remaining_secs.is_some() || alias.is_some()) {
            let mut p = m.properties.as_deref().cloned().unwrap_or_default();
            p.subscription_identifiers = subscription_ids.to_vec();
            if remaining_secs.is_some() {
                p.message_expiry_interval_secs = remaining_secs;
            }
            if let Some((alias, known)) = alias {
                p.topic_alias = Some(alias);
                if known {
                    topic = b"";
                }
            }
            owned = p;
            Some(&owned)
        } else {
            m.properties.as_deref()
        };
        let len = publish_len(self.version, qos, topic, props, &m.payload);
        // Never send a packet larger than the client's Maximum Packet Size; drop it as if
        // sent (5.0 [MQTT-3.1.2-24] [MQTT-3.1.2-25]). The size is the whole packet: type byte, length, body.
        if 1 + varint_len(len as u32) + len > self.client_max_packet_bytes {
            self.drops.too_large_for_client += 1;
            return DeliverOutcome::Dropped;
        }
        // The alias is the client's only once a packet carrying it has gone out.
        if let Some((alias, false)) = alias {
            self.aliases.get_or_insert_default().outbound.insert(m.topic.clone(), alias);
        }
        let h = PublishHeader { dup, qos, retain, packet_id };
        encode_publish(out, self.version, h, topic, props, &m.payload);
        crate::log!(
            Debug,
            "Sending PUBLISH to {} (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            self.client_id,
            dup as u8,
            qos as u8,
            retain as u8,
            packet_id,
            m.topic,
            m.payload.len()
        );
        self.sent.messages[qos as usize] += 1;
        self.sent.payload_bytes += m.payload.len() as u64;
        DeliverOutcome::Sent
    }

    /// The outbound topic alias for `topic` and whether the client already knows it. The
    /// first `client_topic_alias_maximum` topics get one for the life of the connection;
    /// later topics go out in full (section 3.3.2.3.4). A new alias is recorded by the
    /// caller once the packet carrying it is sent.
    fn outbound_alias(&self, topic: &ByteStr) -> Option<(u16, bool)> {
        let known = self.aliases.as_ref().map_or(0, |a| a.outbound.len());
        if let Some(&a) = self.aliases.as_ref().and_then(|a| a.outbound.get(topic)) {
            return Some((a, true));
        }
        if known >= self.client_topic_alias_maximum as usize {
            return None;
        }
        Some((known as u16 + 1, false))
    }

    /// Moves queued messages into the window while it has room.
    pub fn pump(&mut self, now_ms: u64, out: &mut BytesMut) {
        if self.outbound.inflight.awaiting_resend() > 0 {
            self.resend(now_ms, out);
        }
        while self.has_room() {
            let Some(d) = self.outbound.dequeue() else { break };
            self.send_tracked(d, now_ms, out);
        }
    }

    /// Whether a new message may go out now: online, the window not full, and nothing
    /// from an earlier connection still waiting to be sent again (it goes first).
    #[inline]
    fn has_room(&self) -> bool {
        let inflight = &self.outbound.inflight;
        self.online && inflight.awaiting_resend() == 0 && inflight.sent() < self.window()
    }

    /// Sends again, oldest first and as far as the window allows, what an earlier
    /// connection left unacknowledged: a PUBLISH with DUP set under its original packet
    /// identifier, or the PUBREL [MQTT-4.4.0-1]. The window bounds these too: the client's
    /// Receive Maximum counts every unacknowledged QoS 1 and 2 PUBLISH on the connection
    /// (5.0 [MQTT-3.3.4-9]). Re-sending a whole window of 2 to a client that came back
    /// with a Receive Maximum of 1 broke that rule; a client that enforces it disconnects
    /// (0x93), reconnects, and gets the same again, and its deliveries never move on.
    fn resend(&mut self, now_ms: u64, out: &mut BytesMut) {
        let mut i = 0;
        while self.online && i < self.outbound.inflight.len() {
            if self.outbound.inflight.sent() >= self.window() {
                break;
            }
            let f = self.outbound.inflight.get(i);
            if !f.resend {
                i += 1;
                continue;
            }
            let packet_id = f.packet_id;
            if f.state == OutState::AwaitingPubComp {
                self.ack(out, Packet::PubRel, packet_id, ReasonCode::SUCCESS);
                self.outbound.inflight.mark_resent(i);
                i += 1;
                continue;
            }
            let d = &f.delivery;
            let (m, qos, retain, ids) = (d.message.clone(), d.qos, d.retain, d.subscription_ids.clone());
            // One that expired (or no longer fits the client) leaves the window.
            let outcome = self.send_publish(&m, qos, retain, &ids, packet_id, true, now_ms, out);
            if outcome == DeliverOutcome::Sent {
                self.outbound.inflight.mark_resent(i);
                i += 1;
            } else {
                self.outbound.inflight.remove(i);
            }
        }
    }

    /// On reconnect: re-send every unacknowledged PUBLISH with DUP set and every PUBREL,
    /// in their original order [MQTT-4.4.0-1], then what was queued; all of it as the new
    /// connection's window allows (see `Session::resend`).
    pub fn resume(&mut self, now_ms: u64, out: &mut BytesMut) {
        self.outbound.inflight.mark_all_for_resend();
        self.pump(now_ms, out);
    }

    /// Records a subscription; returns whether one already existed for the filter.
    pub fn add_subscription(&mut self, filter: ByteStr, sub: Subscription) -> bool {
        self.subscriptions.insert(filter, sub).is_some()
    }

    /// The unacknowledged or queued deliveries that came through shared subscriptions
    /// (to hand to another group member when this session ends, section 4.8.2). A QoS 2
    /// message whose PUBREC arrived is the client's already and is not included.
    pub fn shared_deliveries(&self) -> Vec<Delivery> {
        let inflight = self
            .outbound
            .inflight
            .iter()
            .filter(|f| f.state != OutState::AwaitingPubComp)
            .map(|f| &f.delivery);
        inflight.chain(self.outbound.queue.iter()).filter(|d| d.shared.is_some()).cloned().collect()
    }

    /// The messages the session holds for its client: in flight and queued.
    pub fn held_messages(&self) -> impl Iterator<Item = &Arc<Message>> {
        self.outbound
            .inflight
            .iter()
            .map(|f| &f.delivery.message)
            .chain(self.outbound.queue.iter().map(|d| &d.message))
    }

    /// Forgets a subscription; returns whether it existed.
    pub fn remove_subscription(&mut self, filter: &str) -> bool {
        self.subscriptions.remove(filter).is_some()
    }
}

#[cfg(test)]
mod tests;
