//! What waits for a barrier round trip: a shard sends a barrier to every other shard and
//! acts once all have answered, which (each queue being FIFO) means every shard has
//! handled everything it had sent to this one before the barrier.

use super::connections::ConnId;
use super::handover::HandoverStep;
use super::outbox::Outbox;
use super::sessions::SessionId;
use crate::protocol::{ByteStr, SubAck};
use crate::session::Subscription;
use std::collections::HashMap;

/// A SUBSCRIBE whose SUBACK waits until every other shard has seen the subscription's
/// interest, so that a message any client publishes after seeing the SUBACK reaches the
/// new subscription, and the retained messages it gets are the newest.
pub struct PendingSubAck {
    pub conn: ConnId,
    pub sid: SessionId,
    pub suback: SubAck,
    /// Subscriptions that get retained messages once the barrier completes.
    pub retained_for: Vec<(ByteStr, Subscription)>,
}

/// What to do once a barrier completes.
pub enum AfterBarrier {
    SubAck(PendingSubAck),
    Handover(HandoverStep),
}

/// This shard's open barriers: token -> (answers still awaited, what then).
#[derive(Default)]
pub struct Barriers {
    open: HashMap<u64, (usize, AfterBarrier)>,
}

impl Barriers {
    /// Sends a barrier and keeps `then` until every other shard has answered; gives it
    /// back at once when there is no other shard.
    pub fn open(&mut self, outbox: &mut Outbox, then: AfterBarrier) -> Option<AfterBarrier> {
        let (token, waiting) = outbox.barrier();
        if waiting == 0 {
            return Some(then);
        }
        self.open.insert(token, (waiting, then));
        None
    }

    /// One answer to barrier `token`; gives back what waited for it once it was the last.
    pub fn answered(&mut self, token: u64) -> Option<AfterBarrier> {
        let (waiting, _) = self.open.get_mut(&token)?;
        *waiting -= 1;
        if *waiting > 0 {
            return None;
        }
        self.open.remove(&token).map(|(_, then)| then)
    }
}
