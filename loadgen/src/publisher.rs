//! The publisher role: sends on the open-loop schedule (or as fast as its window allows
//! with `--rate max`), keeps the QoS 1/2 inflight table, and measures PUBACK / PUBCOMP
//! round trips.

use crate::client::{Client, ClientState, Inbox};
use crate::clock::now_ns;
use crate::payload::Stamp;
use crate::role_ctx::RoleCtx;
use crate::schedule::Schedule;
use crate::stats::{Hist, ThreadStats};
use ringmq::protocol::{encode_publish, Ack, Packet, PublishHeader, QoS};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Output queued per connection before the publisher waits for the writer. Also the
/// largest batch in closed loop: one write of up to this many bytes.
pub const OUT_BYTES_MAX: usize = 64 * 1024;

struct Slot {
    sent_ns: u64,
}

/// A publisher's state, shared by its task and its connection's reader.
pub struct PubState {
    pub id: u32,
    topic: String,
    qos: QoS,
    retain: bool,
    /// Counts acks in the run's figures (false while clearing retained messages).
    counting: bool,
    /// Inflight slots; packet id = slot index + 1.
    slots: Vec<Option<Slot>>,
    free: Vec<u16>,
    pub inflight: usize,
    /// Room for the largest payload; each message uses `size_min..=payload.len()` of it.
    payload: Vec<u8>,
    size_min: usize,
    /// Picks each payload's size when sizes vary (xorshift64: cheap, and fixed per id
    /// so that a run can be repeated).
    size_rng: u64,
}

impl PubState {
    pub fn new(id: u32, topic: String, qos: QoS, window: u16, size: usize) -> Self {
        PubState {
            id,
            topic,
            qos,
            retain: false,
            counting: true,
            slots: (0..window).map(|_| None).collect(),
            free: (1..=window).rev().collect(),
            inflight: 0,
            payload: vec![0; size],
            size_min: size,
            size_rng: 0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1),
        }
    }

    /// Payloads of a size drawn uniformly between `min` and the size given to `new`.
    pub fn with_sizes(mut self, min: usize) -> Self {
        self.size_min = min.min(self.payload.len());
        self
    }

    /// The next payload's length.
    fn next_len(&mut self) -> usize {
        let max = self.payload.len();
        if self.size_min >= max {
            return max;
        }
        let mut x = self.size_rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.size_rng = x;
        self.size_min + (x % (max - self.size_min + 1) as u64) as usize
    }

    /// Whether another PUBLISH may be queued now.
    pub fn has_room(&self, out_len: usize) -> bool {
        out_len < OUT_BYTES_MAX && (self.qos == QoS::AtMostOnce || !self.free.is_empty())
    }

    /// Queues message `seq`, stamped with `now` (retained: on topic `TOPIC/seq`, and with
    /// an empty payload when clearing).
    fn send(
        &mut self,
        version: ringmq::protocol::ProtocolVersion,
        out: &mut bytes::BytesMut,
        seq: u64,
        now: u64,
    ) {
        let packet_id = if self.qos == QoS::AtMostOnce {
            0
        } else {
            let id = self.free.pop().expect("send without room");
            self.slots[id as usize - 1] = Some(Slot { sent_ns: now });
            self.inflight += 1;
            id
        };
        Stamp { publisher: self.id, seq, sent_ns: now }.write(&mut self.payload);
        let len = self.next_len();
        let h = PublishHeader { dup: false, qos: self.qos, retain: self.retain, packet_id };
        if self.retain {
            let topic = format!("{}/{seq}", self.topic);
            let payload: &[u8] = if self.counting { &self.payload[..len] } else { &[] };
            encode_publish(out, version, h, topic.as_bytes(), None, payload);
        } else {
            encode_publish(out, version, h, self.topic.as_bytes(), None, &self.payload[..len]);
        }
    }

    /// Frees the slot of `packet_id`; returns its send time if it was in flight.
    fn complete(&mut self, packet_id: u16) -> Option<u64> {
        let slot = self.slots.get_mut((packet_id as usize).checked_sub(1)?)?.take()?;
        self.free.push(packet_id);
        self.inflight -= 1;
        Some(slot.sent_ns)
    }
}

/// Waits until `decide` gives an answer for the client's state (or the client closed: false,
/// or `deadline_ns` passed: false), re-checking whenever the client's state changes.
async fn wait_for(client: &Client, deadline_ns: u64, decide: impl Fn(&ClientState) -> Option<bool>) -> bool {
    loop {
        let notify = {
            let s = client.borrow();
            if s.closed {
                return false;
            }
            if let Some(answer) = decide(&s) {
                return answer;
            }
            s.notify.clone()
        };
        let now = now_ns();
        if now >= deadline_ns {
            return false;
        }
        let _ = monoio::time::timeout(Duration::from_nanos(deadline_ns - now), notify.notified()).await;
    }
}

/// Waits until another message may be queued; false if the client closed or `deadline_ns`
/// passed first.
async fn wait_room(client: &Client, p: &RefCell<PubState>, deadline_ns: u64) -> bool {
    wait_for(client, deadline_ns, |s| {
        if s.closing {
            Some(false)
        } else {
            p.borrow().has_room(s.out.len()).then_some(true)
        }
    })
    .await
}

/// Waits until every QoS 1/2 publish is acknowledged (or the client closed, or the deadline).
async fn wait_acked(client: &Client, p: &RefCell<PubState>, deadline_ns: u64) {
    wait_for(client, deadline_ns, |_| (p.borrow().inflight == 0).then_some(true)).await;
}

/// PINGREQ, then waits for PINGRESP: the broker has handled everything sent before.
async fn ping_round_trip(client: &Client, deadline_ns: u64) {
    {
        let mut s = client.borrow_mut();
        if s.closed {
            return;
        }
        s.queue(&Packet::PingReq);
        s.ping_outstanding = true;
        s.wake_writer();
    }
    wait_for(client, deadline_ns, |s| (!s.ping_outstanding).then_some(true)).await;
}

/// The publish/subscribe scenarios' publisher: from the start to the end of the run.
pub async fn run_stream(ctx: Rc<RoleCtx>, client: Client, state: Rc<RefCell<PubState>>) {
    ctx.run.wait().await;
    if ctx.stop.is_set() {
        return;
    }
    let t = ctx.times.get();
    let id = state.borrow().id;
    let mut seq = 0u64;
    // The go signal comes a little before the start, so every thread has seen it.
    ctx.pacer.sleep_until(t.start_ns).await;
    match ctx.cfg.publisher_rate(id) {
        Some(rate) => {
            let sched = Schedule::new(t.start_ns, rate, id, ctx.cfg.pubs);
            let total = sched.count_before(t.end_ns);
            while seq < total {
                ctx.pacer.sleep_until(sched.send_time_ns(seq)).await;
                if !wait_room(&client, &state, t.drain_deadline_ns).await {
                    break;
                }
                let now = now_ns();
                let due = sched.due_count(now).min(total);
                let mut s = client.borrow_mut();
                let s = &mut *s;
                let mut stats = ctx.stats.borrow_mut();
                let mut p = state.borrow_mut();
                while seq < due && p.has_room(s.out.len()) {
                    let scheduled = sched.send_time_ns(seq);
                    p.send(s.version, &mut s.out, seq, now);
                    stats.counters.published += 1;
                    if scheduled >= t.warm_end_ns && scheduled < t.end_ns {
                        stats.counters.published_in_window += 1;
                        stats.hists.record(Hist::SendLag, now.saturating_sub(scheduled));
                    }
                    seq += 1;
                }
                s.wake_writer();
                ctx.shared.sent[id as usize].store(seq, Ordering::Relaxed);
            }
        }
        None => loop {
            if now_ns() >= t.end_ns || !wait_room(&client, &state, t.end_ns).await {
                break;
            }
            let now = now_ns();
            let mut s = client.borrow_mut();
            let s = &mut *s;
            let mut stats = ctx.stats.borrow_mut();
            let mut p = state.borrow_mut();
            while p.has_room(s.out.len()) {
                p.send(s.version, &mut s.out, seq, now);
                seq += 1;
                stats.counters.published += 1;
                if now >= t.warm_end_ns {
                    stats.counters.published_in_window += 1;
                }
            }
            s.wake_writer();
            ctx.shared.sent[id as usize].store(seq, Ordering::Relaxed);
        },
    }
    ctx.shared.sent[id as usize].store(seq, Ordering::Relaxed);
    wait_acked(&client, &state, t.drain_deadline_ns).await;
    ctx.shared.pubs_done.fetch_add(1, Ordering::AcqRel);
}

/// The retained scenario's publisher: stores N retained messages when told, and clears
/// them (empty retained payloads) at the end.
pub async fn run_retained(ctx: Rc<RoleCtx>, client: Client, state: Rc<RefCell<PubState>>) {
    ctx.store.wait().await;
    if ctx.stop.is_set() {
        return;
    }
    let n = ctx.cfg.retained_n as u64;
    let deadline = now_ns() + crate::clock::secs_to_ns(ctx.cfg.duration_s + ctx.cfg.drain_s);
    state.borrow_mut().retain = true;
    let sent = publish_all(&ctx, &client, &state, n, deadline, true).await;
    ctx.shared.sent[0].store(sent, Ordering::Relaxed);
    wait_acked(&client, &state, deadline).await;
    ping_round_trip(&client, deadline).await;
    ctx.shared.pubs_done.fetch_add(1, Ordering::AcqRel);

    ctx.cleanup.wait().await;
    if !ctx.stop.is_set() {
        let deadline = now_ns() + crate::clock::secs_to_ns(ctx.cfg.drain_s.max(1.0));
        state.borrow_mut().counting = false;
        publish_all(&ctx, &client, &state, n, deadline, false).await;
        wait_acked(&client, &state, deadline).await;
        ping_round_trip(&client, deadline).await;
    }
    ctx.shared.cleanups_done.fetch_add(1, Ordering::AcqRel);
}

/// Sends sequence numbers 0..n as fast as the window allows; returns how many were sent.
async fn publish_all(
    ctx: &RoleCtx,
    client: &Client,
    state: &RefCell<PubState>,
    n: u64,
    deadline: u64,
    counting: bool,
) -> u64 {
    let mut seq = 0;
    while seq < n {
        if !wait_room(client, state, deadline).await {
            break;
        }
        let now = now_ns();
        let mut s = client.borrow_mut();
        let s = &mut *s;
        let mut p = state.borrow_mut();
        let before = seq;
        while seq < n && p.has_room(s.out.len()) {
            p.send(s.version, &mut s.out, seq, now);
            seq += 1;
        }
        if counting {
            ctx.stats.borrow_mut().counters.published += seq - before;
        }
        s.wake_writer();
    }
    seq
}

impl PubState {
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2): the flow of `a.packet_id` is complete.
    fn completed(&mut self, s: &mut ClientState, stats: &mut ThreadStats, a: &Ack, now: u64) {
        match self.complete(a.packet_id) {
            Some(sent_ns) if self.counting => {
                stats.counters.acked += 1;
                if a.reason.is_error() {
                    stats.counters.rejected += 1;
                }
                stats.hists.record(Hist::AckRtt, now.saturating_sub(sent_ns));
            }
            Some(_) => {}
            None => stats.counters.protocol_errors += 1,
        }
        s.notify.notify();
    }

    /// PUBREC: answer PUBREL, unless the broker refused the message (MQTT 5 reason >= 0x80),
    /// which ends the flow.
    fn on_pubrec(&mut self, s: &mut ClientState, stats: &mut ThreadStats, a: Ack, now: u64) {
        if a.reason.is_error() {
            self.completed(s, stats, &a, now);
            return;
        }
        let known = self.slots.get((a.packet_id as usize).wrapping_sub(1)).is_some_and(|slot| slot.is_some());
        if known {
            s.queue(&Packet::PubRel(Ack::new(a.packet_id)));
        } else {
            stats.counters.protocol_errors += 1;
        }
    }
}

/// The acknowledgements of the publisher's QoS 1/2 flows.
impl Inbox for PubState {
    fn on_packet(
        &mut self,
        _ctx: &RoleCtx,
        s: &mut ClientState,
        stats: &mut ThreadStats,
        p: Packet,
        now: u64,
    ) -> Option<Packet> {
        match p {
            Packet::PubAck(a) | Packet::PubComp(a) => self.completed(s, stats, &a, now),
            Packet::PubRec(a) => self.on_pubrec(s, stats, a, now),
            other => return Some(other),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::take_queued;
    use crate::role_ctx::test_ctx;
    use crate::shared::Times;
    use ringmq::protocol::{ProtocolVersion, Publish, ReasonCode};

    fn stamp_of(p: &Publish) -> Stamp {
        Stamp::read(&p.payload).expect("stamped payload")
    }

    #[test]
    fn payload_sizes_spread_over_the_range_asked_for() {
        let mut p = PubState::new(0, "t".into(), QoS::AtMostOnce, 1, 300).with_sizes(20);
        let lens: Vec<usize> = (0..1000).map(|_| p.next_len()).collect();
        assert!(lens.iter().all(|&l| (20..=300).contains(&l)));
        let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
        assert!(*lo < 40 && *hi > 280, "uniform over 20..=300: {lo}..{hi}");
        let mut fixed = PubState::new(0, "t".into(), QoS::AtMostOnce, 1, 64);
        assert_eq!(fixed.next_len(), 64, "one size unless asked");
    }

    #[test]
    fn qos1_fills_its_window_and_each_puback_frees_a_slot_and_times_the_round_trip() {
        let ctx = test_ctx(&["pairs", "--n", "1", "--qos", "1"], Times::default());
        let mut p = PubState::new(7, "t/7".into(), QoS::AtLeastOnce, 2, 64);
        let mut s = ClientState::new(ProtocolVersion::V3_1_1, -1);
        let mut stats = ThreadStats::new(1);
        p.send(s.version, &mut s.out, 0, 1_000);
        p.send(s.version, &mut s.out, 1, 2_000);
        assert_eq!(p.inflight, 2);
        assert!(!p.has_room(s.out.len()), "the window of 2 is full");
        let sent = take_queued(&mut s);
        let [Packet::Publish(a), Packet::Publish(b)] = &sent[..] else { panic!("{sent:?}") };
        assert_eq!((a.packet_id, b.packet_id), (1, 2));
        assert_eq!((&a.topic[..], a.qos, a.retain), ("t/7", QoS::AtLeastOnce, false));
        assert_eq!(a.payload.len(), 64);
        assert_eq!(stamp_of(a), Stamp { publisher: 7, seq: 0, sent_ns: 1_000 });
        assert_eq!(stamp_of(b), Stamp { publisher: 7, seq: 1, sent_ns: 2_000 });

        assert!(p.on_packet(&ctx, &mut s, &mut stats, Packet::PubAck(Ack::new(2)), 5_000).is_none());
        assert_eq!((stats.counters.acked, p.inflight), (1, 1));
        assert!(p.has_room(s.out.len()));
        let rtt = stats.hists.get(Hist::AckRtt);
        assert_eq!(rtt.len(), 1);
        assert!(rtt.equivalent(rtt.max(), 3_000), "PUBLISH at 2 µs, PUBACK at 5 µs");

        // The same id again, and ids never sent, are protocol errors.
        for id in [2, 0, 3] {
            p.on_packet(&ctx, &mut s, &mut stats, Packet::PubAck(Ack::new(id)), 6_000);
        }
        assert_eq!((stats.counters.acked, stats.counters.protocol_errors, p.inflight), (1, 3, 1));

        // The freed id is the next one used.
        p.send(s.version, &mut s.out, 2, 7_000);
        let sent = take_queued(&mut s);
        assert!(matches!(&sent[..], [Packet::Publish(c)] if c.packet_id == 2));

        // Not a publisher's packet: given back to the connection.
        let publish = Packet::PubRel(Ack::new(1));
        assert!(matches!(p.on_packet(&ctx, &mut s, &mut stats, publish, 0), Some(Packet::PubRel(_))));
    }

    #[test]
    fn qos2_answers_pubrec_with_pubrel_and_completes_on_pubcomp_or_refusal() {
        let ctx = test_ctx(&["pairs", "--n", "1", "--qos", "2"], Times::default());
        let mut p = PubState::new(0, "t/0".into(), QoS::ExactlyOnce, 4, 20);
        let mut s = ClientState::new(ProtocolVersion::V5, -1);
        let mut stats = ThreadStats::new(1);
        p.send(s.version, &mut s.out, 0, 1_000);
        take_queued(&mut s);

        p.on_packet(&ctx, &mut s, &mut stats, Packet::PubRec(Ack::new(1)), 2_000);
        assert!(matches!(&take_queued(&mut s)[..], [Packet::PubRel(a)] if a.packet_id == 1));
        assert_eq!((stats.counters.acked, p.inflight), (0, 1), "PUBREC does not complete QoS 2");
        p.on_packet(&ctx, &mut s, &mut stats, Packet::PubRec(Ack::new(4)), 2_000);
        assert_eq!(stats.counters.protocol_errors, 1, "PUBREC for an id not in flight");
        assert!(s.out.is_empty());
        p.on_packet(&ctx, &mut s, &mut stats, Packet::PubComp(Ack::new(1)), 3_000);
        assert_eq!((stats.counters.acked, stats.counters.rejected, p.inflight), (1, 0, 0));

        // A PUBREC with a failure reason ends the flow: no PUBREL, counted as refused.
        p.send(s.version, &mut s.out, 1, 4_000);
        take_queued(&mut s);
        let refused = Ack { packet_id: 1, reason: ReasonCode(0x97), properties: None };
        p.on_packet(&ctx, &mut s, &mut stats, Packet::PubRec(refused), 5_000);
        assert!(s.out.is_empty());
        assert_eq!((stats.counters.acked, stats.counters.rejected, p.inflight), (2, 1, 0));
        assert_eq!(stats.hists.get(Hist::AckRtt).len(), 2);
    }

    #[test]
    fn clearing_retained_messages_sends_empty_payloads_and_counts_no_acks() {
        let ctx = test_ctx(&["retained", "--n", "3", "--qos", "1"], Times::default());
        let mut p = PubState::new(0, "r".into(), QoS::AtLeastOnce, 4, 20);
        let mut s = ClientState::new(ProtocolVersion::V3_1_1, -1);
        let mut stats = ThreadStats::new(1);
        p.retain = true;
        p.send(s.version, &mut s.out, 3, 1_000);
        p.counting = false;
        p.send(s.version, &mut s.out, 3, 2_000);
        let sent = take_queued(&mut s);
        let [Packet::Publish(store), Packet::Publish(clear)] = &sent[..] else { panic!("{sent:?}") };
        assert_eq!((&store.topic[..], store.retain, store.payload.len()), ("r/3", true, 20));
        assert_eq!((&clear.topic[..], clear.retain, clear.payload.len()), ("r/3", true, 0));
        p.on_packet(&ctx, &mut s, &mut stats, Packet::PubAck(Ack::new(2)), 3_000);
        assert_eq!((stats.counters.acked, stats.counters.protocol_errors, p.inflight), (0, 0, 1));
        assert!(stats.hists.get(Hist::AckRtt).is_empty());
    }
}
