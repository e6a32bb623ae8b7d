//! A session moving between shards on takeover, as the two shards see it. The old
//! holder keeps a stub that stays in its trie and forwards what it receives, so no
//! message published meanwhile on any shard is lost; the new holder routes the session
//! itself, and deduplicates while a message can still come both ways:
//!
//! ```text
//!  new holder                 every other shard               old holder (stub)
//!  Handoff arrives: route it,
//!  Barrier ───────────────────▶ BarrierAck ◀── (all answered)
//!  Release ──────────────────────────────────────────────────▶ Barrier to all,
//!                                                             all answered: drop stub
//!  deliver held copies ◀──────────────────────────────────────── Released
//!  Barrier ───────────────────▶ BarrierAck ◀── (all answered): stop deduplicating
//! ```
//!
//! Each step waits for a barrier round trip because a shard reads its peers' queues in
//! turn, not in the order things were sent: a message forwarded before a shard learned
//! of the new route can be overtaken by a later control message.

use super::messages::ConnectToken;
use super::sessions::SessionId;
use std::collections::HashMap;

/// A handover step to take once every other shard has answered a barrier.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HandoverStep {
    /// New holder: every shard now routes to the moved-in session; tell the old holder
    /// (`holder`) its stub for handoff `token` may go.
    ReleaseOldStub { holder: u16, token: ConnectToken },
    /// Old holder: everything sent to the stub for handoff `token` has been forwarded;
    /// drop it and tell `new_holder`.
    DropStub { token: ConnectToken, new_holder: u16 },
    /// New holder: every queue into this shard has drained since the stub went; the
    /// session `sid` that arrived under `token` stops deduplicating.
    EndArrival { sid: SessionId, token: ConnectToken },
}

/// The sessions of one shard that are moving in or out.
#[derive(Default)]
pub struct Handovers {
    /// Sessions that arrived and whose old stub still exists: handoff token -> slot.
    arrivals: HashMap<ConnectToken, SessionId>,
    /// Stubs of sessions that moved away: handoff token -> slot.
    stubs: HashMap<ConnectToken, SessionId>,
    /// Stubs whose new holder released them while an older holder's stub still forwards
    /// into them (the session moved twice in quick succession): stub slot -> (its
    /// handoff token, the new holder). They go when the older stub is gone.
    deferred_releases: HashMap<SessionId, (ConnectToken, u16)>,
}

impl Handovers {
    /// A session moved away under handoff `token`, leaving stub `sid`.
    pub fn add_stub(&mut self, token: ConnectToken, sid: SessionId) {
        self.stubs.insert(token, sid);
    }

    /// A session arrived under handoff `token` as `sid`; the old stub still exists.
    pub fn add_arrival(&mut self, token: ConnectToken, sid: SessionId) {
        self.arrivals.insert(token, sid);
    }

    /// The arrived session a stub's forwarded deliveries are for.
    pub fn arrival(&self, token: ConnectToken) -> Option<SessionId> {
        self.arrivals.get(&token).copied()
    }

    /// The new holder released the stub of handoff `token`: the step to take after a
    /// barrier, or `None` when the release must wait because the session arrived here
    /// from a third shard whose stub still forwards into this one (it moved A -> B -> C
    /// faster than A let go): dropping it then would lose what A forwards.
    pub fn release(&mut self, token: ConnectToken, new_holder: u16) -> Option<HandoverStep> {
        if let Some(&sid) = self.stubs.get(&token) {
            if self.arrivals.values().any(|&s| s == sid) {
                self.deferred_releases.insert(sid, (token, new_holder));
                return None;
            }
        }
        Some(HandoverStep::DropStub { token, new_holder })
    }

    /// Takes the stub of handoff `token` (to drop it).
    pub fn take_stub(&mut self, token: ConnectToken) -> Option<SessionId> {
        self.stubs.remove(&token)
    }

    /// The old stub of the arrival under `token` is gone: returns the arrived session, and
    /// the release that waited for it, if one did.
    pub fn released(&mut self, token: ConnectToken) -> Option<(SessionId, Option<HandoverStep>)> {
        let sid = self.arrivals.remove(&token)?;
        let deferred = self
            .deferred_releases
            .remove(&sid)
            .map(|(token, new_holder)| HandoverStep::DropStub { token, new_holder });
        Some((sid, deferred))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_waits_while_an_older_stub_forwards_into_the_session() {
        let mut h = Handovers::default();
        // Moved 0 -> 1 under handoff 10, then 1 -> 2 under 20, on shard 1's books.
        h.add_arrival(10, 5);
        h.add_stub(20, 5);
        assert_eq!(h.release(20, 2), None, "shard 0's stub still forwards into slot 5");
        let (sid, deferred) = h.released(10).expect("an arrival");
        assert_eq!(sid, 5);
        assert_eq!(deferred, Some(HandoverStep::DropStub { token: 20, new_holder: 2 }));
    }

    #[test]
    fn a_release_without_an_older_stub_goes_ahead() {
        let mut h = Handovers::default();
        h.add_stub(20, 5);
        assert_eq!(h.release(20, 2), Some(HandoverStep::DropStub { token: 20, new_holder: 2 }));
        assert_eq!(h.take_stub(20), Some(5));
        assert_eq!(h.take_stub(20), None);
    }
}
