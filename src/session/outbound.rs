//! The server-to-client QoS 1/2 window: packets in flight awaiting acknowledgement and
//! the queue behind them. Acknowledgements usually come in order, so a `VecDeque`
//! searched from the front finds them in one step; a new identifier is checked against
//! a set of those in use once the window is long (see [`Inflight`]).

use super::message::Delivery;
use std::collections::VecDeque;

/// Where an outgoing QoS 1/2 exchange stands (section 4.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OutState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    AwaitingPubAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    AwaitingPubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    AwaitingPubComp,
}

/// One unacknowledged outgoing message.
#[derive(Clone, Debug)]
pub struct InflightOut {
    pub packet_id: u16,
    pub state: OutState,
    pub delivery: Delivery,
    /// Sent on an earlier connection and not yet again on this one (see
    /// [`Inflight::mark_all_for_resend`]).
    pub(super) resend: bool,
}

/// Beyond this many packets in flight, the identifiers in use are kept in an [`IdSet`]
/// rather than found by scanning the window. Scanning a long window (an MQTT 5 client may
/// allow 65,535 in flight, and `max_inflight_messages 0` lifts the broker's bound) made
/// every send O(window): two thirds of a shard's CPU in a 4 x 100 QoS 1 fan-out across 2
/// shards. The threshold is about memory, not time: the set answers faster than a scan of
/// even 20 entries (`scripts/bench-session.sh`), but 8 KiB for every busy session at the
/// default window of 20 would outweigh the window's own entries.
const SCAN_MAX: usize = 32;

/// One bit per packet identifier.
#[derive(Debug)]
struct IdSet([u64; 1024]);

impl IdSet {
    fn of<'a>(entries: impl Iterator<Item = &'a InflightOut>) -> Box<IdSet> {
        let mut set = Box::new(IdSet([0; 1024]));
        entries.for_each(|f| set.set(f.packet_id, true));
        set
    }

    fn set(&mut self, id: u16, used: bool) {
        let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
        if used {
            self.0[word] |= bit;
        } else {
            self.0[word] &= !bit;
        }
    }

    fn contains(&self, id: u16) -> bool {
        self.0[id as usize / 64] & (1u64 << (id % 64)) != 0
    }
}

/// The packets in flight, oldest first, and (for a long window) the set of identifiers
/// they hold. Every change goes through these methods so the two always agree.
#[derive(Debug, Default)]
pub struct Inflight {
    entries: VecDeque<InflightOut>,
    ids: Option<Box<IdSet>>,
    /// How many entries have `resend` set.
    awaiting_resend: usize,
}

impl Inflight {
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &InflightOut> {
        self.entries.iter()
    }

    /// Whether a packet with this identifier is in flight.
    #[inline]
    pub fn holds(&self, packet_id: u16) -> bool {
        match &self.ids {
            Some(set) => set.contains(packet_id),
            None => self.entries.iter().any(|f| f.packet_id == packet_id),
        }
    }

    #[inline]
    pub fn push_back(&mut self, f: InflightOut) {
        if let Some(set) = &mut self.ids {
            set.set(f.packet_id, true);
        }
        self.entries.push_back(f);
        if self.entries.len() > SCAN_MAX && self.ids.is_none() {
            self.ids = Some(IdSet::of(self.entries.iter()));
        }
    }

    /// Index of the entry with this id and state, searched from the oldest.
    #[inline]
    pub fn position(&self, packet_id: u16, state: OutState) -> Option<usize> {
        self.entries.iter().position(|f| f.packet_id == packet_id && f.state == state)
    }

    /// The state of the exchange holding this identifier, if one does (identifiers in
    /// flight are unique).
    pub fn state_of(&self, packet_id: u16) -> Option<OutState> {
        if !self.holds(packet_id) {
            return None;
        }
        self.entries.iter().find(|f| f.packet_id == packet_id).map(|f| f.state)
    }

    /// Removes the entry at `i` (a position from [`Inflight::position`]).
    #[inline]
    pub fn remove(&mut self, i: usize) {
        if let Some(set) = &mut self.ids {
            set.set(self.entries[i].packet_id, false);
        }
        self.awaiting_resend -= self.entries[i].resend as usize;
        self.entries.remove(i);
        self.forget_ids_when_empty();
    }

    pub fn set_state(&mut self, i: usize, state: OutState) {
        self.entries[i].state = state;
    }

    /// The entry at `i`.
    pub fn get(&self, i: usize) -> &InflightOut {
        &self.entries[i]
    }

    /// A new connection: every entry is to be sent again on it, as the window allows. The
    /// client's Receive Maximum is per connection (5.0 section 4.9), so until then the
    /// entries do not count against it.
    pub fn mark_all_for_resend(&mut self) {
        self.entries.iter_mut().for_each(|f| f.resend = true);
        self.awaiting_resend = self.entries.len();
    }

    /// The entry at `i` has been sent again on this connection.
    pub fn mark_resent(&mut self, i: usize) {
        let f = &mut self.entries[i];
        self.awaiting_resend -= f.resend as usize;
        f.resend = false;
    }

    /// Entries still to be sent again on this connection.
    #[inline]
    pub fn awaiting_resend(&self) -> usize {
        self.awaiting_resend
    }

    /// Entries sent on this connection and not yet acknowledged: what the client's
    /// Receive Maximum bounds.
    #[inline]
    pub fn sent(&self) -> usize {
        self.entries.len() - self.awaiting_resend
    }

    /// Keeps the entries `keep` says to, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&InflightOut) -> bool) {
        let (ids, awaiting) = (&mut self.ids, &mut self.awaiting_resend);
        self.entries.retain(|f| {
            let kept = keep(f);
            if let (false, Some(set)) = (kept, ids.as_mut()) {
                set.set(f.packet_id, false);
            }
            if !kept {
                *awaiting -= f.resend as usize;
            }
            kept
        });
        self.forget_ids_when_empty();
    }

    /// An emptied window gives its set back, so an idle session holds no 8 KiB.
    fn forget_ids_when_empty(&mut self) {
        if self.entries.is_empty() {
            self.ids = None;
        }
    }
}

/// Where [`Outbound::enqueue_within`] put a delivery.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Enqueued {
    WithinBounds,
    /// Past `max_queued_messages` or `max_queued_bytes`, into the overflow allowed.
    PastBounds,
    Dropped,
}

/// The outgoing window and queue of one session.
#[derive(Debug, Default)]
pub struct Outbound {
    pub inflight: Inflight,
    pub queue: VecDeque<Delivery>,
    pub queued_bytes: usize,
    last_packet_id: u16,
}

impl Outbound {
    /// The next free packet identifier (1..=65535, never 0: 3.1.1 [MQTT-2.3.1-1],
    /// 5.0 [MQTT-2.2.1-4]), skipping any still in flight (3.1.1 [MQTT-2.3.1-4],
    /// 5.0 [MQTT-2.2.1-4]). `None` when all are taken.
    pub fn next_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_packet_id = self.last_packet_id.wrapping_add(1).max(1);
            let id = self.last_packet_id;
            if !self.inflight.holds(id) {
                return Some(id);
            }
        }
        None
    }

    /// Index of the in-flight entry with this id and state.
    pub fn find(&self, packet_id: u16, state: OutState) -> Option<usize> {
        self.inflight.position(packet_id, state)
    }

    /// Queues a delivery behind the window, if the bounds allow (0 means no bound, as in
    /// Mosquitto's `max_queued_messages` and `max_queued_bytes`). Returns false if dropped.
    pub fn enqueue(&mut self, d: Delivery, max_messages: usize, max_bytes: usize) -> bool {
        self.enqueue_within(d, max_messages, max_bytes, 0) == Enqueued::WithinBounds
    }

    /// [`Outbound::enqueue`], with `overflow` more messages, and `max_bytes` more bytes,
    /// allowed past the bounds (flow control's room for what is on its way while the
    /// publishers are being held).
    pub fn enqueue_within(
        &mut self,
        d: Delivery,
        max_messages: usize,
        max_bytes: usize,
        overflow: usize,
    ) -> Enqueued {
        let bytes = d.message.payload.len();
        let fits = |len: usize, queued: usize, extra_messages: usize, extra_bytes: usize| {
            (max_messages == 0 || len < max_messages + extra_messages)
                && (max_bytes == 0 || queued + bytes <= max_bytes + extra_bytes)
        };
        let (len, queued) = (self.queue.len(), self.queued_bytes);
        let verdict = if fits(len, queued, 0, 0) {
            Enqueued::WithinBounds
        } else if overflow > 0 && fits(len, queued, overflow, max_bytes.min(usize::MAX / 2)) {
            Enqueued::PastBounds
        } else {
            return Enqueued::Dropped;
        };
        self.queued_bytes += bytes;
        self.queue.push_back(d);
        verdict
    }

    /// Takes the oldest queued delivery.
    pub fn dequeue(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes -= d.message.payload.len();
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ByteStr, QoS};
    use crate::session::{Message, Origin, PublisherKey};
    use std::sync::Arc;

    fn entry(packet_id: u16) -> InflightOut {
        let message = Message {
            topic: ByteStr::from("t"),
            payload: bytes::Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
            expires_at_ms: None,
            publisher: PublisherKey::NONE,
            origin: Origin::UNROUTED,
        };
        let delivery = Delivery {
            message: Arc::new(message),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![],
            shared: None,
        };
        InflightOut { packet_id, state: OutState::AwaitingPubAck, delivery, resend: false }
    }

    /// What `holds` must say: a scan of the entries.
    fn assert_agrees(w: &Inflight) {
        for id in 1..=u16::MAX {
            assert_eq!(w.holds(id), w.iter().any(|f| f.packet_id == id), "id {id}");
        }
    }

    #[test]
    fn the_id_set_follows_pushes_removals_and_retain_and_goes_when_empty() {
        let mut w = Inflight::default();
        for id in 1..=SCAN_MAX as u16 {
            w.push_back(entry(id));
        }
        assert!(w.ids.is_none(), "a short window is scanned");
        assert_agrees(&w);
        for id in 1000..1100 {
            w.push_back(entry(id));
        }
        assert!(w.ids.is_some(), "a long window keeps the set");
        assert_agrees(&w);
        // Out of order, as QoS 2 exchanges and lost acknowledgements leave it.
        let i = w.position(1050, OutState::AwaitingPubAck).unwrap();
        w.remove(i);
        w.retain(|f| f.packet_id % 3 != 0);
        assert_agrees(&w);
        assert!(!w.holds(1050) && !w.holds(1002) && w.holds(1001));
        while !w.is_empty() {
            w.remove(0);
        }
        assert!(w.ids.is_none(), "an emptied window gives its 8 KiB back");
        assert_agrees(&w);
    }

    #[test]
    fn next_packet_id_skips_ids_in_flight_in_a_long_window() {
        let mut o = Outbound::default();
        for _ in 0..40_000 {
            let id = o.next_packet_id().unwrap();
            o.inflight.push_back(entry(id));
        }
        // Free one id in the middle; wrapping around, it is the only one to hand out
        // before the ids past 40,000 (3.1.1 [MQTT-2.3.1-4], 5.0 [MQTT-2.2.1-4]).
        let i = o.inflight.position(7, OutState::AwaitingPubAck).unwrap();
        o.inflight.remove(i);
        o.last_packet_id = 0;
        assert_eq!(o.next_packet_id(), Some(7));
        o.inflight.push_back(entry(7));
        assert_eq!(o.next_packet_id(), Some(40_001));
    }
}
