//! `$SYS` topics, as Mosquitto publishes them (retained, every `sys_interval` seconds, a
//! value only when it changed, the uptime always), plus each shard's own under
//! `$SYS/broker/shards/N/`; and the per-shard figures the metrics endpoint
//! (`metrics.rs`) reads.
//!
//! Each shard counts with plain integers of its own (`counters.rs`, the sessions'
//! [`SentCounts`], the drop counters) and copies them into its cache-line-padded slot of
//! a shared [`Board`] at a housekeeping tick: every `sys_interval`, and every
//! [`METRICS_SNAPSHOT_MS`] while the metrics endpoint is on (counting sessions and
//! taking their send counts is a walk over them, so not at every tick). Shard 0 publishes
//! the tree from the board, so another shard's figures are as of its last snapshot.
//!
//! Published: `version`, `uptime`, `clients/{connected,disconnected,total,maximum,expired}`,
//! `subscriptions/count`, `retained messages/count`, `messages/received` (MQTT packets
//! of every type), `messages/stored` and `store/messages/count` (QoS 1/2 messages held
//! for sessions, counted once per session, plus the retained ones),
//! `publish/messages/{received,sent,dropped}`, `publish/bytes/{received,sent}`,
//! `bytes/{received,sent}`, and their `load/.../{1min,5min,15min}` averages computed as
//! Mosquitto computes them, with `load/sockets` (sockets accepted) and `load/connections`
//! (CONNECTs accepted). Per shard: `connections`, `clients`, `subscriptions`,
//! `messages/received`, `publish/messages/{received,sent}`, `publish/messages/stored`,
//! `bytes/{received,sent}`, `mesh/queued` (messages waiting for it on the mesh), and
//! `publish/dropped/{slow subscriber,queue full,no group member}`. Not published:
//! `messages/sent` (every packet sent: acknowledgements are not counted) and `heap/*`
//! (Mosquitto has it only when built with memory tracking).

use super::state::Shard;
use crate::protocol::{ByteStr, QoS};
use crate::session::{Message, Origin, PublisherKey, SentCounts};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How often each shard refreshes its slot while the metrics endpoint is on.
pub const METRICS_SNAPSHOT_MS: u64 = 1000;

macro_rules! figures {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One shard's figures, as of its last snapshot (totals since it started, but
        /// for the gauges: connections, clients, subscriptions, stored, mesh_queued).
        #[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
        pub struct Figures {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// [`Figures`] as atomics, one cache line or more per shard, written by its shard
        /// only.
        #[derive(Default)]
        #[repr(align(64))]
        struct Slot {
            $($name: AtomicU64,)*
        }

        impl Slot {
            fn store(&self, f: &Figures) {
                $(self.$name.store(f.$name, Ordering::Relaxed);)*
            }

            fn load(&self) -> Figures {
                Figures { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl Figures {
            /// These plus `o`, field by field.
            pub fn plus(mut self, o: &Figures) -> Figures {
                $(self.$name += o.$name;)*
                self
            }
        }
    };
}

figures! {
    /// Bytes read from client sockets.
    bytes_received,
    /// Bytes written to client sockets.
    bytes_sent,
    /// Open client sockets.
    connections,
    /// Sessions with a connection.
    clients_connected,
    /// Sessions without one (persistent sessions kept offline).
    clients_disconnected,
    /// Offline sessions ended by their expiry.
    clients_expired,
    /// Sockets accepted.
    sockets_accepted,
    /// CONNECTs accepted.
    connects_accepted,
    subscriptions,
    /// MQTT packets decoded from clients.
    packets_received,
    publish_received_qos0,
    publish_received_qos1,
    publish_received_qos2,
    /// Payload bytes of PUBLISH packets received.
    publish_received_bytes,
    publish_sent_qos0,
    publish_sent_qos1,
    publish_sent_qos2,
    /// Payload bytes of PUBLISH packets sent.
    publish_sent_bytes,
    /// QoS 1/2 messages in flight or queued for sessions here.
    stored,
    /// Messages waiting for this shard on the mesh.
    mesh_queued,
    /// QoS 0 messages dropped: the subscriber's output was over its bound.
    dropped_slow_subscriber,
    /// QoS 1/2 messages dropped: the subscriber's queue was full.
    dropped_queue_full,
    /// Shared-subscription messages dropped: no member of the group was left.
    dropped_no_group_member,
}

impl Figures {
    pub fn publish_received(&self) -> u64 {
        self.publish_received_qos0 + self.publish_received_qos1 + self.publish_received_qos2
    }

    pub fn publish_sent(&self) -> u64 {
        self.publish_sent_qos0 + self.publish_sent_qos1 + self.publish_sent_qos2
    }

    pub fn dropped(&self) -> u64 {
        self.dropped_slow_subscriber + self.dropped_queue_full + self.dropped_no_group_member
    }
}

/// Buckets of the turn-duration histogram: turns up to 1 us, 2 us, 4 us, ... 2^(N-2) us,
/// and above.
pub const TURN_BUCKETS: usize = 24;

/// The upper bound of turn bucket `i` in microseconds (`None`: the last, unbounded).
pub fn turn_bucket_le_us(i: usize) -> Option<u64> {
    (i + 1 < TURN_BUCKETS).then(|| 1u64 << i)
}

/// How long a shard's turns take, from the start of handling its completions to its
/// output submitted: what a message read in a turn waits in the broker before its
/// subscribers' sends are queued on the same shard (a message that crosses to another
/// shard adds that shard's turn). Kept by the shard's thread only while the metrics
/// endpoint is on; plain integers.
#[derive(Clone, Copy)]
pub struct TurnHistogram {
    pub buckets: [u64; TURN_BUCKETS],
    pub sum_ns: u64,
}

impl Default for TurnHistogram {
    fn default() -> Self {
        TurnHistogram { buckets: [0; TURN_BUCKETS], sum_ns: 0 }
    }
}

impl TurnHistogram {
    /// Counts one turn of `ns` nanoseconds.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        // Bucket i holds (2^(i-1), 2^i] us; 0 and 1 us go to bucket 0.
        let us = ns.div_ceil(1000);
        let i = (u64::BITS - us.saturating_sub(1).leading_zeros()) as usize;
        self.buckets[i.min(TURN_BUCKETS - 1)] += 1;
        self.sum_ns += ns;
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// A [`TurnHistogram`] as atomics, written by its shard at its snapshots.
#[repr(align(64))]
struct TurnSlot {
    buckets: [AtomicU64; TURN_BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for TurnSlot {
    fn default() -> Self {
        TurnSlot { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_ns: AtomicU64::new(0) }
    }
}

/// What the shards share for `$SYS` and metrics.
pub struct Board {
    slots: Vec<Slot>,
    turns: Vec<TurnSlot>,
    /// Set once the metrics endpoint is listening: the shards then snapshot every
    /// [`METRICS_SNAPSHOT_MS`].
    metrics: std::sync::atomic::AtomicBool,
    /// Raised by each SIGUSR2: a shard that sees it move logs its subscriptions.
    subscription_log: AtomicU64,
}

impl Board {
    pub fn new(shards: usize) -> Arc<Board> {
        Arc::new(Board {
            slots: (0..shards).map(|_| Slot::default()).collect(),
            turns: (0..shards).map(|_| TurnSlot::default()).collect(),
            metrics: std::sync::atomic::AtomicBool::new(false),
            subscription_log: AtomicU64::new(0),
        })
    }

    /// Each shard's figures as of its last snapshot.
    pub fn shards(&self) -> Vec<Figures> {
        self.slots.iter().map(Slot::load).collect()
    }

    /// Each shard's turn durations as of its last snapshot.
    pub fn turns(&self) -> Vec<TurnHistogram> {
        self.turns
            .iter()
            .map(|t| TurnHistogram {
                buckets: std::array::from_fn(|i| t.buckets[i].load(Ordering::Relaxed)),
                sum_ns: t.sum_ns.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// How many shards there are.
    pub fn shard_count(&self) -> usize {
        self.slots.len()
    }

    /// Asks every shard to log its subscriptions at its next housekeeping tick.
    pub fn request_subscription_log(&self) {
        self.subscription_log.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the shards for a snapshot every [`METRICS_SNAPSHOT_MS`].
    pub fn enable_metrics(&self) {
        self.metrics.store(true, Ordering::Relaxed);
    }
}

/// The `load/...` averages of one count, as Mosquitto's `calc_load` keeps them.
#[derive(Default, Clone, Copy)]
struct Load {
    last_total: u64,
    /// Per minute, decayed over 1, 5 and 15 minutes.
    averages: [f64; 3],
}

const LOAD_WINDOWS_SECS: [(f64, &str); 3] = [(60.0, "1min"), (300.0, "5min"), (900.0, "15min")];

/// One shard's part: the byte counts its event loop keeps, its slot, and (on shard 0)
/// what was published last.
pub struct SysTally {
    board: Arc<Board>,
    shard: usize,
    /// Bytes read from and written to client sockets, and sockets accepted (the event
    /// loop adds to these).
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub sockets_accepted: u64,
    /// What this shard's sessions sent, as taken from them so far.
    sent: SentCounts,
    /// Whether the event loop times its turns (the metrics endpoint is on).
    pub timing_turns: bool,
    /// This shard's turn durations (the event loop records them while `timing_turns`).
    pub turns: TurnHistogram,
    next_sys_ms: u64,
    next_snapshot_ms: u64,
    /// Shard 0: the last value published per topic, the most clients seen at once, and
    /// the load averages with when they were last computed.
    published: HashMap<String, String>,
    clients_maximum: u64,
    loads: HashMap<&'static str, Load>,
    last_load_ms: Option<u64>,
    /// The board's subscription-log request last answered.
    subscription_log_seen: u64,
}

impl SysTally {
    pub fn new(board: Arc<Board>, shard: usize) -> Self {
        SysTally {
            board,
            shard,
            bytes_received: 0,
            bytes_sent: 0,
            sockets_accepted: 0,
            sent: SentCounts::default(),
            timing_turns: false,
            turns: TurnHistogram::default(),
            next_sys_ms: 0,
            next_snapshot_ms: 0,
            published: HashMap::new(),
            clients_maximum: 0,
            loads: HashMap::new(),
            last_load_ms: None,
            subscription_log_seen: 0,
        }
    }

    /// Called by the event loop's housekeeping: writes this shard's figures to the board
    /// when a snapshot is due, and on shard 0 publishes the tree once per `sys_interval`.
    pub fn tick(&mut self, shard: &mut Shard, connections: usize) {
        let asked = self.board.subscription_log.load(Ordering::Relaxed);
        if asked != self.subscription_log_seen {
            self.subscription_log_seen = asked;
            log_subscriptions(shard, self.shard);
        }
        let interval_ms = u64::from(shard.config().sys_interval_secs) * 1000;
        let now = shard.now_ms();
        let sys_due = interval_ms > 0 && now >= self.next_sys_ms;
        self.timing_turns = self.board.metrics.load(Ordering::Relaxed);
        let metrics_due = self.timing_turns && now >= self.next_snapshot_ms;
        if !sys_due && !metrics_due {
            return;
        }
        self.next_snapshot_ms = now + METRICS_SNAPSHOT_MS;
        self.snapshot(shard, connections);
        if sys_due {
            self.next_sys_ms = now + interval_ms;
            if self.shard == 0 {
                self.publish_tree(shard, now);
            }
        }
    }

    /// Writes this shard's figures into its slot.
    fn snapshot(&mut self, shard: &mut Shard, connections: usize) {
        let plane = &mut shard.plane;
        self.sent.add(&plane.sessions.take_sent());
        let mut f = Figures::default();
        for (_, entry) in plane.sessions.iter() {
            if entry.moved_to.is_some() {
                continue;
            }
            if entry.conn.is_some() {
                f.clients_connected += 1;
            } else {
                f.clients_disconnected += 1;
            }
            f.subscriptions += entry.session.subscriptions.len() as u64;
            f.stored += entry.session.stored() as u64;
        }
        let c = &plane.counts;
        f.bytes_received = self.bytes_received;
        f.bytes_sent = self.bytes_sent;
        f.connections = connections as u64;
        f.clients_expired = c.clients_expired;
        f.sockets_accepted = self.sockets_accepted;
        f.connects_accepted = c.connects_accepted;
        f.packets_received = c.packets_received;
        [f.publish_received_qos0, f.publish_received_qos1, f.publish_received_qos2] = c.publish_received;
        f.publish_received_bytes = c.publish_received_bytes;
        [f.publish_sent_qos0, f.publish_sent_qos1, f.publish_sent_qos2] = self.sent.messages;
        f.publish_sent_bytes = self.sent.payload_bytes;
        f.mesh_queued = plane.shared.mesh.depth_to(self.shard) as u64;
        f.dropped_slow_subscriber = plane.drops.qos0_slow_subscriber.total();
        f.dropped_queue_full = plane.drops.queue_full.total();
        f.dropped_no_group_member = plane.drops.shared_no_member.total();
        self.board.slots[self.shard].store(&f);
        let turns = &self.board.turns[self.shard];
        for (slot, n) in turns.buckets.iter().zip(self.turns.buckets) {
            slot.store(n, Ordering::Relaxed);
        }
        turns.sum_ns.store(self.turns.sum_ns, Ordering::Relaxed);
    }

    fn publish_tree(&mut self, shard: &mut Shard, now_ms: u64) {
        let shards = self.board.shards();
        let all = shards.iter().fold(Figures::default(), |a, f| a.plus(f));
        self.clients_maximum = self.clients_maximum.max(all.clients_connected);
        let retained = shard.plane.routes.retained_matching("#", now_ms).len() as u64;
        let stored = (all.stored + retained).to_string();
        let mut values: Vec<(String, String)> = vec![
            ("$SYS/broker/version".into(), format!("ringmq version {}", env!("CARGO_PKG_VERSION"))),
            ("$SYS/broker/clients/connected".into(), all.clients_connected.to_string()),
            ("$SYS/broker/clients/disconnected".into(), all.clients_disconnected.to_string()),
            (
                "$SYS/broker/clients/total".into(),
                (all.clients_connected + all.clients_disconnected).to_string(),
            ),
            ("$SYS/broker/clients/maximum".into(), self.clients_maximum.to_string()),
            ("$SYS/broker/clients/expired".into(), all.clients_expired.to_string()),
            ("$SYS/broker/subscriptions/count".into(), all.subscriptions.to_string()),
            ("$SYS/broker/retained messages/count".into(), retained.to_string()),
            ("$SYS/broker/messages/received".into(), all.packets_received.to_string()),
            ("$SYS/broker/messages/stored".into(), stored.clone()),
            ("$SYS/broker/store/messages/count".into(), stored),
            ("$SYS/broker/publish/messages/received".into(), all.publish_received().to_string()),
            ("$SYS/broker/publish/messages/sent".into(), all.publish_sent().to_string()),
            ("$SYS/broker/publish/messages/dropped".into(), all.dropped().to_string()),
            ("$SYS/broker/publish/bytes/received".into(), all.publish_received_bytes.to_string()),
            ("$SYS/broker/publish/bytes/sent".into(), all.publish_sent_bytes.to_string()),
            ("$SYS/broker/bytes/received".into(), all.bytes_received.to_string()),
            ("$SYS/broker/bytes/sent".into(), all.bytes_sent.to_string()),
        ];
        self.loads_into(&all, now_ms, &mut values);
        for (i, s) in shards.iter().enumerate() {
            let at = |name: &str| format!("$SYS/broker/shards/{i}/{name}");
            let mut add = |name: &str, v: u64| values.push((at(name), v.to_string()));
            add("connections", s.connections);
            add("clients", s.clients_connected);
            add("subscriptions", s.subscriptions);
            add("messages/received", s.packets_received);
            add("publish/messages/received", s.publish_received());
            add("publish/messages/sent", s.publish_sent());
            add("publish/messages/stored", s.stored);
            add("bytes/received", s.bytes_received);
            add("bytes/sent", s.bytes_sent);
            add("mesh/queued", s.mesh_queued);
            add("publish/dropped/slow subscriber", s.dropped_slow_subscriber);
            add("publish/dropped/queue full", s.dropped_queue_full);
            add("publish/dropped/no group member", s.dropped_no_group_member);
        }
        // The uptime changes every time; the rest only when they changed, as in Mosquitto.
        publish(shard, "$SYS/broker/uptime", format!("{} seconds", now_ms / 1000));
        for (topic, value) in values {
            if self.published.get(&topic) != Some(&value) {
                publish(shard, &topic, value.clone());
                self.published.insert(topic, value);
            }
        }
    }

    /// Mosquitto's `load/...` averages (`sys_tree.c`): the count's rate per minute over
    /// the last interval, `r`, moves each average `a` to `r + e * (a - r)` with
    /// `e = exp(-interval / window)`, printed with two decimals. The first tree has each
    /// at 0.00: there is no interval yet.
    fn loads_into(&mut self, all: &Figures, now_ms: u64, values: &mut Vec<(String, String)>) {
        let counts: [(&'static str, u64); 8] = [
            ("messages/received", all.packets_received),
            ("publish/received", all.publish_received()),
            ("publish/sent", all.publish_sent()),
            ("publish/dropped", all.dropped()),
            ("bytes/received", all.bytes_received),
            ("bytes/sent", all.bytes_sent),
            ("sockets", all.sockets_accepted),
            ("connections", all.connects_accepted),
        ];
        let elapsed_secs = self.last_load_ms.map(|t| now_ms.saturating_sub(t) as f64 / 1000.0);
        self.last_load_ms = Some(now_ms);
        for (name, total) in counts {
            let load = self.loads.entry(name).or_default();
            let before = std::mem::replace(&mut load.last_total, total);
            let Some(secs) = elapsed_secs.filter(|s| *s > 0.0) else {
                // The first tree: Mosquitto publishes each average once, at 0.
                if elapsed_secs.is_none() {
                    for (_, label) in LOAD_WINDOWS_SECS {
                        values.push((format!("$SYS/broker/load/{name}/{label}"), "0.00".into()));
                    }
                }
                continue;
            };
            let rate_per_min = total.saturating_sub(before) as f64 * 60.0 / secs;
            for (avg, (window, label)) in load.averages.iter_mut().zip(LOAD_WINDOWS_SECS) {
                let e = (-secs / window).exp();
                *avg = rate_per_min + e * (*avg - rate_per_min);
                values.push((format!("$SYS/broker/load/{name}/{label}"), format!("{avg:.2}")));
            }
        }
    }
}

/// Logs this shard's subscriptions (SIGUSR2), one line per filter with its subscribers
/// and their QoS, as Mosquitto's tree print gives each node: `FILTER (CLIENT, QOS) ...`,
/// sorted by filter. A shared subscription shows as `$share/GROUP/FILTER`.
fn log_subscriptions(shard: &Shard, id: usize) {
    let mut by_filter: std::collections::BTreeMap<&str, Vec<(&str, u8)>> = Default::default();
    for (_, entry) in shard.plane.sessions.iter() {
        if entry.moved_to.is_some() {
            continue;
        }
        let client: &str = &entry.session.client_id;
        for (filter, sub) in &entry.session.subscriptions {
            by_filter.entry(filter).or_default().push((client, sub.options.qos as u8));
        }
    }
    let count: usize = by_filter.values().map(Vec::len).sum();
    crate::log!(
        Notice,
        "Subscriptions on shard {} ({} filter(s), {} subscription(s)):",
        id,
        by_filter.len(),
        count
    );
    for (filter, mut subscribers) in by_filter {
        subscribers.sort_unstable();
        let mut line = String::from(filter);
        for (client, qos) in subscribers {
            line.push_str(&format!(" ({client}, {qos})"));
        }
        crate::log!(Notice, "  {}", line);
    }
}

/// Publishes one retained `$SYS` value at QoS 0 from the broker itself.
fn publish(shard: &mut Shard, topic: &str, value: String) {
    let msg = Message {
        topic: ByteStr::from(topic),
        payload: Bytes::from(value),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: None,
        expires_at_ms: None,
        publisher: PublisherKey::NONE,
        origin: Origin::UNROUTED,
    };
    shard.plane.publish(msg);
}
