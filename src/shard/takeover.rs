//! CONNECT across shards. Client ids are unique in the process: a CONNECT on shard B
//! registers at the id's home shard; if another registration holds the id, the home shard
//! tells the shard holding it to close the older connection (takeover) and hand the
//! session to B (3.1.1 [MQTT-3.1.4-2], 5.0 [MQTT-3.1.4-3]). Every step is a mesh message,
//! even when all three shards are the same one, so one code path serves every placement.
//!
//! ```text
//!  connecting shard B          home shard H                 holding shard A
//!  Register ─────────────────▶ owner? none: Handoff(None) ─▶ B
//!                              owner? A:    Takeover ──────▶ close old connection,
//!  Handoff(session or None) ◀───────────────────────────────  leave a stub if resumed
//! ```
//!
//! What follows a resumed handoff (release of the stub) is in `handover.rs`.

use super::barriers::{AfterBarrier, Barriers};
use super::handover::{HandoverStep, Handovers};
use super::messages::{ConnectToken, MeshMsg, MovedSession};
use super::plane::DataPlane;
use super::registry::{home_shard, token_shard, PendingConnects, PendingTakeover, Registry};
use super::sessions::{Arrival, SessionId};
use crate::protocol::{ByteStr, ReasonCode};
use crate::session::{Delivery, Session};

/// The parts the cross-shard session protocol touches, borrowed from the shard for one step.
pub struct Takeover<'s> {
    pub(super) plane: &'s mut DataPlane,
    pub(super) registry: &'s mut Registry,
    pub(super) connects: &'s mut PendingConnects,
    pub(super) handovers: &'s mut Handovers,
    pub(super) barriers: &'s mut Barriers,
}

impl Takeover<'_> {
    /// Home shard: a client connected on shard `from`.
    pub fn on_register(&mut self, client_id: ByteStr, from: u16, token: ConnectToken, clean_start: bool) {
        let outbox = &mut self.plane.outbox;
        match self.registry.register(client_id.clone(), token) {
            Some(holder) => {
                let takeover = MeshMsg::Takeover { client_id, holder, to: from, token, clean_start };
                outbox.send(token_shard(holder), takeover)
            }
            None => {
                let home = self.plane.id;
                outbox.send(from as usize, MeshMsg::Handoff { token, session: None, from: home })
            }
        }
    }

    /// Holding shard: give up the client's session to a newer connection on shard `to`.
    /// When the registration being replaced (`holder`) is a CONNECT on this shard still
    /// waiting for its own answer, the takeover waits for that CONNECT to complete: done
    /// now, it would find no session, and the older connection would stay connected
    /// beside the newer one (3.1.1 [MQTT-3.1.4-2], 5.0 [MQTT-3.1.4-3]).
    pub fn on_takeover(&mut self, t: PendingTakeover) {
        if self.connects.is_waiting(t.holder) {
            return self.connects.defer_takeover(t);
        }
        let PendingTakeover { client_id, to, token, clean_start, .. } = t;
        let client_id = &client_id;
        let session = match self.plane.sessions.by_client(client_id) {
            Some(sid) => self.release_session(sid, clean_start, to, token),
            None => None,
        };
        let from = self.plane.id;
        self.plane.outbox.send(to as usize, MeshMsg::Handoff { token, session, from });
    }

    /// Takes a session off this shard for a takeover: closes its connection (MQTT 5:
    /// DISCONNECT 0x8E) and returns the session if the new connection resumes it. A
    /// resumed session leaves a stub here that stays in the trie and forwards what it
    /// receives to shard `to` until that shard says `Release`.
    fn release_session(
        &mut self,
        sid: SessionId,
        clean_start: bool,
        to: u16,
        token: ConnectToken,
    ) -> Option<Box<MovedSession>> {
        let plane = &mut *self.plane;
        let resume = !clean_start && plane.sessions.get(sid).is_some_and(|e| e.session.is_persistent());
        if let Some(conn) = plane.sessions.conn_of(sid) {
            if let Some(c) = plane.conns.get_mut(conn) {
                c.session = None;
                // The old connection closes without DISCONNECT from its client, so its
                // will goes out ("If the existing Client has a Will Message, that Will
                // Message is published as described in section 3.1.2.5", 5.0 [MQTT-3.1.4-3]),
                // unless the session lives on in the new connection and: the will waits
                // out a Will Delay Interval, which the new connection cancels (5.0
                // [MQTT-3.1.3-9]); or the client is 3.x, where the spec leaves it open
                // and Mosquitto keeps the will. A 5.0 will without a delay goes out at the
                // close, resumed session or not (5.0 [MQTT-3.1.2-8]).
                if resume && (!c.version.is_v5() || c.will_delay_secs > 0) {
                    c.will = None;
                }
                crate::log!(
                    Information,
                    "Client {} already connected, closing old connection.",
                    c.client_id.as_deref().unwrap_or("")
                );
            }
            plane.conns.close(conn, Some(ReasonCode::SESSION_TAKEN_OVER), "");
            plane.fire_will(conn);
        }
        if resume {
            let limits = plane.sessions.limits();
            let entry = plane.sessions.get_mut(sid)?;
            // The stub keeps the subscription list, to unroute it on release.
            let mut stub = Session::new(entry.session.client_id.clone(), entry.session.version, 0, limits);
            stub.subscriptions = entry.session.subscriptions.clone();
            let mut session = Box::new(std::mem::replace(&mut entry.session, stub));
            entry.conn = None;
            // A new connection in time cancels a delayed will (5.0 [MQTT-3.1.3-9]).
            entry.delayed_will = None;
            entry.moved_to = Some(Box::new((to, token)));
            let mut handled_up_to = plane.handled_up_to.clone().into_boxed_slice();
            if let Some(arrival) = &entry.arriving {
                arrival.merge_handled(&mut handled_up_to);
            }
            plane.sessions.forget_client(&session.client_id);
            self.handovers.add_stub(token, sid);
            session.detach();
            return Some(Box::new(MovedSession { session: *session, handled_up_to }));
        }
        plane.unroute_session(sid);
        let entry = plane.sessions.remove(sid)?;
        // A clean start ends the session, which publishes a delayed will.
        if let (Some(delayed), true) = (entry.delayed_will, clean_start) {
            plane.publish_will(delayed.1);
        }
        plane.redistribute_shared(entry.session.shared_deliveries());
        None
    }

    /// Connecting shard: the home shard (or the old holder) answered. A resumed session
    /// is installed here at once (offline until the connection attaches) and routed;
    /// once every shard has answered a barrier, they all route here and the old
    /// holder's stub can go.
    pub fn on_handoff(&mut self, token: ConnectToken, moved: Option<Box<MovedSession>>, from: u16) {
        let resumed = moved.map(|m| {
            let MovedSession { session, handled_up_to } = *m;
            // What the session already holds, or its old shard handled, counts as seen: a
            // copy still on its way here directly or through the old stub is not
            // delivered again.
            let arrival = Arrival::new(token, session.held_messages(), handled_up_to);
            let sid = self.plane.sessions.install(session, None, token, self.plane.now_ms);
            if let Some(e) = self.plane.sessions.get_mut(sid) {
                e.arriving = Some(Box::new(arrival));
            }
            self.handovers.add_arrival(token, sid);
            self.plane.route_session(sid);
            self.after_barrier(HandoverStep::ReleaseOldStub { holder: from, token });
            sid
        });
        // Without a waiting connection (it closed meanwhile) the resumed session stays
        // here, offline, as the persistent session it is.
        self.connects.answer(token, resumed);
    }

    /// New holder: a delivery the old holder's stub received.
    pub fn on_moved_delivery(&mut self, token: ConnectToken, d: Delivery) {
        if let Some(sid) = self.handovers.arrival(token) {
            self.plane.deliver_again(sid, d, true);
        }
    }

    /// Old holder: the new holder routes the session; the stub goes after one more
    /// barrier round trip. A shard that forwarded a message here before it learned of the
    /// new holder's subscription may have it still queued toward this shard, and this
    /// shard reads its peers' queues in turn, not in the order things were sent: the
    /// `Release` can overtake such a forward. Once every shard has answered a barrier
    /// sent now, whatever they sent before is handled (each queue is FIFO), so the stub
    /// has forwarded everything meant for it.
    pub fn on_release(&mut self, token: ConnectToken, new_holder: u16) {
        if let Some(step) = self.handovers.release(token, new_holder) {
            self.after_barrier(step);
        }
    }

    /// New holder: the old stub is gone. Deliver what waited for that, deduplicate until
    /// one more barrier round trip has drained every queue into this shard, and finish a
    /// release that waited for the stub.
    pub fn on_released(&mut self, token: ConnectToken) {
        let Some((sid, deferred)) = self.handovers.released(token) else { return };
        for d in self.plane.sessions.stub_gone(sid) {
            self.plane.deliver_again(sid, d, false);
        }
        self.after_barrier(HandoverStep::EndArrival { sid, token });
        if let Some(step) = deferred {
            self.after_barrier(step);
        }
    }

    /// Sends a barrier and takes `step` once every other shard has answered it (at once
    /// with a single shard).
    fn after_barrier(&mut self, step: HandoverStep) {
        if let Some(AfterBarrier::Handover(step)) =
            self.barriers.open(&mut self.plane.outbox, AfterBarrier::Handover(step))
        {
            self.take_step(step);
        }
    }

    /// A handover step whose barrier has completed.
    pub fn take_step(&mut self, step: HandoverStep) {
        match step {
            HandoverStep::ReleaseOldStub { holder, token } => {
                let from = self.plane.id;
                self.plane.outbox.send(holder as usize, MeshMsg::Release { token, from });
            }
            HandoverStep::DropStub { token, new_holder } => {
                if let Some(sid) = self.handovers.take_stub(token) {
                    self.plane.unroute_session(sid);
                    self.plane.sessions.remove(sid);
                }
                self.plane.outbox.send(new_holder as usize, MeshMsg::Released { token });
            }
            HandoverStep::EndArrival { sid, token } => self.plane.sessions.end_arrival(sid, token),
        }
    }

    /// Ends a session for good: publishes a will still waiting, unroutes it, gives its
    /// shared-group messages to other members, releases its registration.
    pub fn end_session(&mut self, sid: SessionId) {
        let plane = &mut *self.plane;
        if let Some(delayed) = plane.sessions.get_mut(sid).and_then(|e| e.delayed_will.take()) {
            plane.publish_will(delayed.1);
        }
        plane.unroute_session(sid);
        let Some(entry) = plane.sessions.remove(sid) else { return };
        plane.redistribute_shared(entry.session.shared_deliveries());
        let client_id = entry.session.client_id;
        let home = home_shard(&client_id, plane.outbox.shards());
        plane.outbox.send(home, MeshMsg::Unregister { client_id, token: entry.token });
    }

    /// Ends the offline sessions whose expiry interval has passed, with their queues.
    pub fn expire_sessions(&mut self) {
        let default_expiry = self.plane.config.persistent_client_expiration;
        for sid in self.plane.sessions.expired(self.plane.now_ms, default_expiry) {
            if let Some(e) = self.plane.sessions.get(sid) {
                crate::log!(Information, "Expiring client {}.", e.session.client_id);
            }
            self.plane.counts.clients_expired += 1;
            self.end_session(sid);
        }
    }
}
