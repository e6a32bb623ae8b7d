//! Flow control for QoS 1/2: a subscriber whose queue is full holds the publishers that
//! fill it, instead of losing their messages.
//!
//! ```text
//!  queue full ──QoS 1/2 message past the bound──▶ hold its publisher (stop reading it;
//!      │                                          its PUBACKs wait with its socket)
//!      ├── the client acknowledges and the queue drains to half ──▶ let every publisher go
//!      └── nothing acknowledged for `stuck_subscriber_secs` ──▶ stuck: let them go, drop
//!                                                              what does not fit, name it
//! ```
//!
//! A held publisher on this shard is held at once; one on another shard is told over the
//! mesh (`MeshMsg::HoldPublisher`), and what it sent meanwhile is queued past the bound
//! (up to `mesh_queue` + `max_queued_messages` more: what can be on its way). Every hold
//! is matched by exactly one release from the subscriber that took it: when its queue
//! drains, when it is stuck, and when its connection goes (an offline session holds no
//! one: it queues to the bound and drops, as before). So a publisher is never held by a
//! subscriber that has gone, and a cycle (a client that publishes to its own
//! subscription) ends at the stuck timeout.

use super::messages::MeshMsg;
use super::plane::DataPlane;
use super::sessions::SessionId;
use crate::session::PublisherKey;

/// A subscriber's flow-control state while its queue is over the bound, or it is stuck.
pub struct Flow {
    /// The publishers it holds, each once.
    pub holding: Vec<PublisherKey>,
    /// When the client last acknowledged a message, on the shard clock.
    pub last_progress_ms: u64,
    /// It took nothing for `stuck_subscriber_secs` with its queue full: it holds no one,
    /// and its messages past the bound are dropped.
    pub stuck: bool,
    /// Messages dropped since it became stuck (logged when it moves again).
    pub dropped_while_stuck: u64,
}

impl Flow {
    pub fn new(now_ms: u64) -> Self {
        Flow { holding: Vec::new(), last_progress_ms: now_ms, stuck: false, dropped_while_stuck: 0 }
    }

    /// Records a hold of `publisher`; false when it was already held.
    pub fn hold(&mut self, publisher: PublisherKey) -> bool {
        if self.holding.contains(&publisher) {
            return false;
        }
        self.holding.push(publisher);
        true
    }

    /// Whether it has taken nothing for `stuck_ms` while holding publishers.
    pub fn is_stuck_at(&self, now_ms: u64, stuck_ms: u64) -> bool {
        !self.stuck && !self.holding.is_empty() && now_ms.saturating_sub(self.last_progress_ms) >= stuck_ms
    }
}

/// The queue length at which a subscriber lets its publishers go: half the bound, so a
/// publisher let go has room for a while before it is held again.
pub fn release_at(max_queued_messages: usize) -> usize {
    max_queued_messages / 2
}

/// The data plane's side of flow control: holding and letting go publishers, here or on
/// their own shards.
impl DataPlane {
    /// Session `sid`'s queue went past its bound with a message of `publisher`: hold the
    /// publisher until the queue drains (flow control, `flow.rs`). Messages the broker
    /// made (wills, retained replays) have no publisher to hold.
    #[cold]
    pub(super) fn hold_publisher(&mut self, sid: SessionId, publisher: PublisherKey) {
        if publisher != PublisherKey::NONE && self.sessions.hold(sid, publisher, self.now_ms) {
            self.set_hold(publisher, true);
        }
    }

    /// Lets `publishers` go (a subscriber's queue drained, it is stuck, or it went).
    pub fn let_go(&mut self, publishers: Vec<PublisherKey>) {
        for p in publishers {
            self.set_hold(p, false);
        }
    }

    /// Holds or lets go a publisher, here or through its shard.
    fn set_hold(&mut self, publisher: PublisherKey, hold: bool) {
        if publisher.shard() == self.id {
            self.hold_here(publisher, hold);
        } else {
            self.outbox.send(publisher.shard() as usize, MeshMsg::HoldPublisher { publisher, hold });
        }
    }

    /// Holds or lets go the connection of publishing session `publisher` on this shard
    /// (gone meanwhile: nothing to do; see `flow.rs` for why that is safe).
    pub(super) fn hold_here(&mut self, publisher: PublisherKey, hold: bool) {
        if let Some(conn) = self.sessions.get(publisher.slot()).and_then(|e| e.conn) {
            self.conns.hold(conn, hold, self.now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publisher_is_held_once_and_stuck_needs_holds_and_silence() {
        let mut f = Flow::new(1_000);
        let p = PublisherKey::new(1, 7, 0);
        assert!(!f.is_stuck_at(60_000, 10_000), "holding no one: not stuck");
        assert!(f.hold(p));
        assert!(!f.hold(p), "the same publisher is held once");
        assert!(!f.is_stuck_at(10_999, 10_000));
        assert!(f.is_stuck_at(11_000, 10_000));
        f.stuck = true;
        assert!(!f.is_stuck_at(20_000, 10_000), "stuck once per episode");
    }
}
