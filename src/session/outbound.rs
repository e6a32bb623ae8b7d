//! The server-to-client QoS 1/2 window: packets in flight awaiting acknowledgement and
//! the queue behind them. Acknowledgements usually come in order, so a `VecDeque`
//! searched from the front finds them in one step.

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
}

/// The outgoing window and queue of one session.
#[derive(Debug, Default)]
pub struct Outbound {
    pub inflight: VecDeque<InflightOut>,
    pub queue: VecDeque<Delivery>,
    pub queued_bytes: usize,
    last_packet_id: u16,
}

impl Outbound {
    /// The next free packet identifier (1..=65535, never 0 [MQTT-2.2.1-3]), skipping any
    /// still in flight [MQTT-2.2.1-4]. `None` when all are taken.
    pub fn next_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_packet_id = self.last_packet_id.wrapping_add(1).max(1);
            let id = self.last_packet_id;
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return Some(id);
            }
        }
        None
    }

    /// Index of the in-flight entry with this id and state.
    pub fn find(&self, packet_id: u16, state: OutState) -> Option<usize> {
        self.inflight.iter().position(|f| f.packet_id == packet_id && f.state == state)
    }

    /// Queues a delivery behind the window, if the bounds allow (0 means no bound, as in
    /// Mosquitto's `max_queued_messages` and `max_queued_bytes`). Returns false if dropped.
    pub fn enqueue(&mut self, d: Delivery, max_messages: usize, max_bytes: usize) -> bool {
        let bytes = d.message.payload.len();
        let too_many = max_messages > 0 && self.queue.len() >= max_messages;
        if too_many || (max_bytes > 0 && self.queued_bytes + bytes > max_bytes) {
            return false;
        }
        self.queued_bytes += bytes;
        self.queue.push_back(d);
        true
    }

    /// Takes the oldest queued delivery.
    pub fn dequeue(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes -= d.message.payload.len();
        Some(d)
    }
}
