//! The subscriber role: subscribes, acknowledges (PUBACK, or PUBREC then PUBCOMP), checks
//! every payload's publisher and sequence number, and records end-to-end latency.

use crate::checker::{Arrival, Mark, OrderCheck, SeqChecker};
use crate::client::{Client, ClientState, Inbox};
use crate::clock::now_ns;
use crate::config::Kind;
use crate::payload::Stamp;
use crate::plan::Group;
use crate::role_ctx::RoleCtx;
use crate::stats::{Hist, PubDelivery, SubTally, ThreadStats};
use ringmq::protocol::{Ack, ByteStr, Packet, Publish, QoS, SubAck, Subscribe, SubscriptionOptions};
use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Packet id of our one SUBSCRIBE.
const SUBSCRIBE_PACKET_ID: u16 = 1;

/// A subscriber's state, shared by its task and its connection's reader.
pub struct SubState {
    filter: String,
    expects: Range<u32>,
    /// One checker per expected publisher (not in a shared group).
    streams: Vec<SeqChecker>,
    /// Shared group: the group's bitmaps, this member's order checks and first arrivals.
    group: Option<Arc<Group>>,
    order: Vec<OrderCheck>,
    group_deliveries: Vec<PubDelivery>,
    /// QoS 2 packet ids answered with PUBREC and awaiting PUBREL.
    qos2_pending: HashSet<u16>,
    subscribe_sent_ns: u64,
    suback: Option<Result<(), String>>,
    retained_got: u64,
    /// The QoS to subscribe with; the run's `--qos` unless a scenario file says.
    qos: Option<u8>,
}

impl SubState {
    pub fn new(filter: String, expects: Range<u32>, group: Option<Arc<Group>>) -> Self {
        let n = expects.len();
        let shared = group.is_some();
        SubState {
            filter,
            expects,
            streams: if shared { Vec::new() } else { vec![SeqChecker::default(); n] },
            order: if shared { vec![OrderCheck::default(); n] } else { Vec::new() },
            group_deliveries: if shared { vec![PubDelivery::default(); n] } else { Vec::new() },
            group,
            qos2_pending: HashSet::new(),
            subscribe_sent_ns: 0,
            suback: None,
            retained_got: 0,
            qos: None,
        }
    }

    /// Subscribes with `qos` (a scenario file's group) instead of the run's `--qos`.
    pub fn with_qos(mut self, qos: u8) -> Self {
        self.qos = Some(qos);
        self
    }

    /// Adds this subscriber's per-publisher results to the thread's.
    pub fn fold_into(&self, stats: &mut ThreadStats) {
        let unique = self.streams.iter().map(|c| c.unique).sum::<u64>()
            + self.group_deliveries.iter().map(|d| d.unique).sum::<u64>();
        stats.per_sub.push(SubTally { expects: self.expects.clone(), unique, shared: self.group.is_some() });
        for (i, c) in self.streams.iter().enumerate() {
            let d = &mut stats.per_pub[self.expects.start as usize + i];
            d.add(&PubDelivery { unique: c.unique, duplicates: c.duplicates, out_of_order: c.out_of_order });
            stats.counters.written_off += c.written_off;
        }
        for (i, (d, o)) in self.group_deliveries.iter().zip(&self.order).enumerate() {
            let mut d = *d;
            d.out_of_order = o.out_of_order;
            stats.per_pub[self.expects.start as usize + i].add(&d);
        }
    }
}

/// The subscriber's task: SUBSCRIBE at set-up (retained: when the run starts), then the
/// reader does the rest.
pub async fn run(ctx: Rc<RoleCtx>, client: Client, state: Rc<RefCell<SubState>>) {
    if ctx.cfg.scenario == Kind::Retained {
        ctx.setup_result(true);
        ctx.run.wait().await;
        ctx.pacer.sleep_until(ctx.times.get().start_ns).await;
        if ctx.stop.is_set() {
            return;
        }
        if let Err(e) = subscribe(&ctx, &client, &state).await {
            ctx.stats.borrow_mut().counters.subscribe_failed += 1;
            ctx.note_error(e);
        }
    } else {
        match subscribe(&ctx, &client, &state).await {
            Ok(()) => ctx.setup_result(true),
            Err(e) => {
                ctx.stats.borrow_mut().counters.subscribe_failed += 1;
                ctx.note_error(e);
                ctx.setup_result(false);
            }
        }
    }
}

/// Sends the SUBSCRIBE and waits for its SUBACK (within the connect timeout).
async fn subscribe(ctx: &RoleCtx, client: &Client, state: &RefCell<SubState>) -> Result<(), String> {
    let notify = {
        let mut s = client.borrow_mut();
        let mut sub = state.borrow_mut();
        let filter = sub.filter.clone();
        let qos = QoS::try_from(sub.qos.unwrap_or(ctx.cfg.qos)).expect("validated QoS");
        sub.subscribe_sent_ns = now_ns();
        let p = Packet::Subscribe(Subscribe {
            packet_id: SUBSCRIBE_PACKET_ID,
            filters: vec![(ByteStr::from(filter), SubscriptionOptions::qos(qos))],
            properties: None,
        });
        s.queue(&p);
        s.wake_writer();
        s.notify.clone()
    };
    let deadline = now_ns() + crate::clock::secs_to_ns(ctx.cfg.connect_timeout_s);
    loop {
        {
            let s = client.borrow();
            if let Some(r) = &state.borrow().suback {
                return r.clone();
            }
            if s.closed {
                return Err("connection closed before SUBACK".into());
            }
        }
        let now = now_ns();
        if now >= deadline {
            return Err("no SUBACK within the connect timeout".into());
        }
        let _ = monoio::time::timeout(Duration::from_nanos(deadline - now), notify.notified()).await;
    }
}

impl SubState {
    /// SUBACK: success, downgraded, or refused.
    fn on_suback(
        &mut self,
        ctx: &RoleCtx,
        s: &mut ClientState,
        stats: &mut ThreadStats,
        a: SubAck,
        now: u64,
    ) {
        if a.packet_id != SUBSCRIBE_PACKET_ID || self.suback.is_some() {
            stats.counters.protocol_errors += 1;
            return;
        }
        stats.hists.record(Hist::Subscribe, now.saturating_sub(self.subscribe_sent_ns));
        self.suback = Some(match a.reasons.first() {
            Some(r) if r.is_error() => Err(format!("SUBACK refused {} (reason 0x{:02x})", self.filter, r.0)),
            Some(r) => {
                if r.0 < self.qos.unwrap_or(ctx.cfg.qos) {
                    stats.counters.subscribe_downgraded += 1;
                }
                Ok(())
            }
            None => Err("SUBACK without a reason code".into()),
        });
        s.notify.notify();
    }

    /// PUBLISH from the broker: acknowledge, check, measure.
    fn on_publish(
        &mut self,
        ctx: &RoleCtx,
        s: &mut ClientState,
        stats: &mut ThreadStats,
        p: Publish,
        now: u64,
    ) {
        // The retained scenario's clean-up (empty retained payloads) reaches the subscribers
        // too, after the checks: acknowledged, but not a delivery of the run, so that
        // `delivered` counts the same messages as `unique` and `duplicated`.
        let cleanup = p.payload.is_empty() && ctx.cleanup.is_set();
        if !cleanup {
            stats.counters.delivered += 1;
            let t = ctx.times.get();
            if now >= t.warm_end_ns && now < t.end_ns {
                stats.counters.delivered_in_window += 1;
            }
        }
        let t = ctx.times.get();
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => Packet::PubAck(Ack::new(p.packet_id)).encode(s.version, &mut s.out),
            QoS::ExactlyOnce => {
                Packet::PubRec(Ack::new(p.packet_id)).encode(s.version, &mut s.out);
                // A PUBLISH whose id awaits PUBREL is the same message again: answer, do not
                // deliver it twice (3.1.1 [MQTT-4.3.3-2], 5.0 [MQTT-4.3.3-10]).
                if !self.qos2_pending.insert(p.packet_id) {
                    stats.counters.qos2_redelivered += 1;
                    return;
                }
            }
        }
        if cleanup {
            return;
        }
        let Some(stamp) = Stamp::read(&p.payload) else {
            stats.counters.malformed += 1;
            return;
        };
        if !self.expects.contains(&stamp.publisher) {
            stats.counters.unexpected += 1;
            return;
        }
        let idx = (stamp.publisher - self.expects.start) as usize;
        let first = match &self.group {
            // Each retained message has a topic of its own, and MQTT orders messages per
            // topic only, so the order the broker sends the store in is not checked.
            None if ctx.cfg.scenario == Kind::Retained => self.streams[idx].on_seq_unordered(stamp.seq),
            None => {
                let arrival = self.streams[idx].on_seq(stamp.seq);
                match arrival {
                    Arrival::Gap { skipped } => stats.counters.gaps += skipped,
                    Arrival::Late => {
                        stats.counters.gaps = stats.counters.gaps.saturating_sub(1);
                        stats.counters.out_of_order += 1;
                    }
                    _ => {}
                }
                arrival.is_first()
            }
            Some(g) => {
                let before = self.order[idx].out_of_order;
                self.order[idx].on_seq(stamp.seq);
                stats.counters.out_of_order += self.order[idx].out_of_order - before;
                match g.seen[stamp.publisher as usize].mark(stamp.seq) {
                    Mark::First => {
                        self.group_deliveries[idx].unique += 1;
                        true
                    }
                    Mark::Duplicate => {
                        self.group_deliveries[idx].duplicates += 1;
                        false
                    }
                    // Neither first nor duplicate: counted once, as unverified.
                    Mark::Unverified => {
                        stats.counters.unverified += 1;
                        return;
                    }
                }
            }
        };
        if !first {
            stats.counters.duplicates += 1;
            return;
        }
        stats.counters.unique += 1;
        if ctx.cfg.scenario == Kind::Retained {
            stats.hists.record(Hist::RetainedDelivery, now.saturating_sub(self.subscribe_sent_ns));
            self.retained_got += 1;
            if self.retained_got == ctx.cfg.retained_n as u64 {
                stats.hists.record(Hist::RetainedComplete, now.saturating_sub(self.subscribe_sent_ns));
            }
            return;
        }
        let scheduled =
            ctx.schedules.borrow().get(stamp.publisher as usize).map(|s| s.send_time_ns(stamp.seq));
        let reference = scheduled.unwrap_or(stamp.sent_ns);
        if reference >= t.warm_end_ns && reference < t.end_ns {
            stats.latency(now, stamp.sent_ns, scheduled);
        }
    }

    /// PUBREL: the QoS 2 exchange ends with PUBCOMP.
    fn on_pubrel(&mut self, s: &mut ClientState, a: Ack) {
        // PUBCOMP even for an unknown id: the broker may be retrying after a reconnect.
        self.qos2_pending.remove(&a.packet_id);
        s.queue(&Packet::PubComp(Ack::new(a.packet_id)));
    }
}

/// The subscriber's packets: its SUBACK, the messages, and the QoS 2 releases.
impl Inbox for SubState {
    fn on_packet(
        &mut self,
        ctx: &RoleCtx,
        s: &mut ClientState,
        stats: &mut ThreadStats,
        p: Packet,
        now: u64,
    ) -> Option<Packet> {
        match p {
            Packet::Publish(p) => self.on_publish(ctx, s, stats, p, now),
            Packet::PubRel(a) => self.on_pubrel(s, a),
            Packet::SubAck(a) => self.on_suback(ctx, s, stats, a, now),
            other => return Some(other),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::SharedSeen;
    use crate::client::take_queued;
    use crate::role_ctx::test_ctx;
    use crate::shared::Times;
    use bytes::Bytes;
    use ringmq::protocol::{ProtocolVersion, ReasonCode};

    /// The whole run is the measurement window.
    const ALWAYS: Times =
        Times { start_ns: 0, warm_end_ns: 0, end_ns: u64::MAX, drain_deadline_ns: u64::MAX };

    fn publish(qos: QoS, packet_id: u16, payload: Vec<u8>) -> Packet {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: ByteStr::from("t"),
            packet_id,
            payload: Bytes::from(payload),
            properties: None,
        })
    }

    fn stamped(publisher: u32, seq: u64, sent_ns: u64) -> Vec<u8> {
        let mut payload = vec![0; 32];
        Stamp { publisher, seq, sent_ns }.write(&mut payload);
        payload
    }

    #[test]
    fn checks_each_publishers_sequence_and_acknowledges_every_qos1_message() {
        let ctx = test_ctx(&["fanin", "--pubs", "2", "--qos", "1"], ALWAYS);
        let mut sub = SubState::new("t/+".into(), 0..2, None);
        let mut s = ClientState::new(ProtocolVersion::V3_1_1, -1);
        let mut stats = ThreadStats::new(2);
        let arrivals = [
            stamped(0, 0, 100),
            stamped(0, 2, 100), // 1 skipped: a gap
            stamped(0, 1, 100), // fills it: out of order
            stamped(0, 1, 100), // again: a duplicate
            stamped(1, 0, 100),
            stamped(5, 0, 100), // a publisher this subscriber does not expect
            vec![1, 2, 3],      // not one of ours
        ];
        for (i, payload) in arrivals.into_iter().enumerate() {
            let p = publish(QoS::AtLeastOnce, i as u16 + 1, payload);
            assert!(sub.on_packet(&ctx, &mut s, &mut stats, p, 1_100).is_none());
        }
        let c = &stats.counters;
        assert_eq!((c.delivered, c.delivered_in_window, c.unique), (7, 7, 4));
        assert_eq!((c.gaps, c.out_of_order, c.duplicates), (0, 1, 1));
        assert_eq!((c.unexpected, c.malformed, c.protocol_errors), (1, 1, 0));
        let acks: Vec<u16> = take_queued(&mut s)
            .into_iter()
            .map(|p| match p {
                Packet::PubAck(a) => a.packet_id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(acks, [1, 2, 3, 4, 5, 6, 7], "every PUBLISH is acknowledged, checked or not");
        // Open loop without schedules (none set here): measured latency only.
        assert_eq!(stats.hists.get(Hist::E2e).len(), 4);
        assert!(stats.hists.get(Hist::E2eCorrected).is_empty());

        sub.fold_into(&mut stats);
        assert_eq!(stats.per_pub[0], PubDelivery { unique: 3, duplicates: 1, out_of_order: 1 });
        assert_eq!(stats.per_pub[1], PubDelivery { unique: 1, duplicates: 0, out_of_order: 0 });
    }

    #[test]
    fn a_gap_stays_counted_until_filled() {
        let ctx = test_ctx(&["pairs", "--n", "1"], ALWAYS);
        let mut sub = SubState::new("t".into(), 0..1, None);
        let mut s = ClientState::new(ProtocolVersion::V3_1_1, -1);
        let mut stats = ThreadStats::new(1);
        for seq in [0, 4] {
            sub.on_packet(&ctx, &mut s, &mut stats, publish(QoS::AtMostOnce, 0, stamped(0, seq, 0)), 1);
        }
        assert_eq!((stats.counters.gaps, stats.counters.unique), (3, 2));
        sub.on_packet(&ctx, &mut s, &mut stats, publish(QoS::AtMostOnce, 0, stamped(0, 2, 0)), 1);
        assert_eq!((stats.counters.gaps, stats.counters.out_of_order), (2, 1));
        assert!(s.out.is_empty(), "QoS 0 is not acknowledged");
    }

    #[test]
    fn qos2_delivers_a_packet_id_once_until_its_pubrel() {
        let ctx = test_ctx(&["pairs", "--n", "1", "--qos", "2"], ALWAYS);
        let mut sub = SubState::new("t".into(), 0..1, None);
        let mut s = ClientState::new(ProtocolVersion::V5, -1);
        let mut stats = ThreadStats::new(1);
        let first = || publish(QoS::ExactlyOnce, 9, stamped(0, 0, 0));
        sub.on_packet(&ctx, &mut s, &mut stats, first(), 1);
        sub.on_packet(&ctx, &mut s, &mut stats, first(), 1);
        assert_eq!((stats.counters.delivered, stats.counters.unique), (2, 1));
        assert_eq!((stats.counters.qos2_redelivered, stats.counters.duplicates), (1, 0));
        let answers = take_queued(&mut s);
        assert!(
            matches!(&answers[..], [Packet::PubRec(a), Packet::PubRec(b)] if a.packet_id == 9 && b.packet_id == 9)
        );

        sub.on_packet(&ctx, &mut s, &mut stats, Packet::PubRel(Ack::new(9)), 1);
        assert!(matches!(&take_queued(&mut s)[..], [Packet::PubComp(a)] if a.packet_id == 9));
        // Released: the id is free for the next message.
        sub.on_packet(&ctx, &mut s, &mut stats, publish(QoS::ExactlyOnce, 9, stamped(0, 1, 0)), 1);
        assert_eq!((stats.counters.unique, stats.counters.qos2_redelivered), (2, 1));
    }

    #[test]
    fn suback_is_checked_once_and_a_lower_grant_is_counted() {
        let ctx = test_ctx(&["pairs", "--n", "1", "--qos", "1"], ALWAYS);
        let mut sub = SubState::new("t".into(), 0..1, None);
        let mut s = ClientState::new(ProtocolVersion::V3_1_1, -1);
        let mut stats = ThreadStats::new(1);
        sub.subscribe_sent_ns = 1_000;
        let suback = |id: u16, reason: u8| {
            Packet::SubAck(SubAck { packet_id: id, reasons: vec![ReasonCode(reason)], properties: None })
        };
        sub.on_packet(&ctx, &mut s, &mut stats, suback(SUBSCRIBE_PACKET_ID + 1, 1), 2_000);
        assert_eq!((stats.counters.protocol_errors, sub.suback.is_none()), (1, true), "not our SUBSCRIBE");
        sub.on_packet(&ctx, &mut s, &mut stats, suback(SUBSCRIBE_PACKET_ID, 0), 2_000);
        assert_eq!(sub.suback, Some(Ok(())));
        assert_eq!(stats.counters.subscribe_downgraded, 1, "QoS 0 granted for QoS 1");
        assert_eq!(stats.hists.get(Hist::Subscribe).len(), 1);
        sub.on_packet(&ctx, &mut s, &mut stats, suback(SUBSCRIBE_PACKET_ID, 1), 3_000);
        assert_eq!(stats.counters.protocol_errors, 2, "a second SUBACK");

        let mut refused = SubState::new("t/#".into(), 0..1, None);
        refused.on_packet(&ctx, &mut s, &mut stats, suback(SUBSCRIBE_PACKET_ID, 0x87), 2_000);
        assert_eq!(refused.suback, Some(Err("SUBACK refused t/# (reason 0x87)".into())));
    }

    #[test]
    fn a_shared_group_counts_each_message_once_over_its_members() {
        let ctx = test_ctx(&["shared", "--pubs", "1", "--subs", "2"], ALWAYS);
        let group = Arc::new(Group { seen: vec![SharedSeen::default()] });
        let mut a = SubState::new("$share/g/t".into(), 0..1, Some(group.clone()));
        let mut b = SubState::new("$share/g/t".into(), 0..1, Some(group));
        let mut s = ClientState::new(ProtocolVersion::V3_1_1, -1);
        let mut stats = ThreadStats::new(1);
        for seq in [0, 2] {
            a.on_packet(&ctx, &mut s, &mut stats, publish(QoS::AtMostOnce, 0, stamped(0, seq, 0)), 1);
        }
        // b gets 1 (new to the group), then 0 again (the group has it).
        for seq in [1, 0] {
            b.on_packet(&ctx, &mut s, &mut stats, publish(QoS::AtMostOnce, 0, stamped(0, seq, 0)), 1);
        }
        assert_eq!((stats.counters.unique, stats.counters.duplicates), (3, 1));
        assert_eq!(stats.counters.out_of_order, 1, "b saw 0 after 1");
        assert_eq!(stats.counters.gaps, 0, "gaps are not tracked per member");
        a.fold_into(&mut stats);
        b.fold_into(&mut stats);
        assert_eq!(stats.per_pub[0], PubDelivery { unique: 3, duplicates: 1, out_of_order: 1 });
    }

    #[test]
    fn retained_deliveries_are_timed_from_the_subscribe_and_clean_up_is_ignored() {
        let ctx = test_ctx(&["retained", "--n", "2", "--subs", "1"], ALWAYS);
        let mut sub = SubState::new("r/+".into(), 0..1, None);
        let mut s = ClientState::new(ProtocolVersion::V3_1_1, -1);
        let mut stats = ThreadStats::new(1);
        sub.subscribe_sent_ns = 1_000;
        for seq in [0, 1] {
            sub.on_packet(&ctx, &mut s, &mut stats, publish(QoS::AtMostOnce, 0, stamped(0, seq, 0)), 5_000);
        }
        assert_eq!(stats.hists.get(Hist::RetainedDelivery).len(), 2);
        assert_eq!(stats.hists.get(Hist::RetainedComplete).len(), 1);
        assert!(stats.hists.get(Hist::E2e).is_empty());
        // An empty payload is malformed during the run, expected during clean-up.
        sub.on_packet(&ctx, &mut s, &mut stats, publish(QoS::AtMostOnce, 0, Vec::new()), 6_000);
        assert_eq!(stats.counters.malformed, 1);
        ctx.cleanup.set();
        sub.on_packet(&ctx, &mut s, &mut stats, publish(QoS::AtMostOnce, 0, Vec::new()), 6_000);
        assert_eq!(stats.counters.malformed, 1);
    }
}
