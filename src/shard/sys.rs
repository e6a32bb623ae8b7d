//! `$SYS` topics, as Mosquitto publishes them (retained, every `sys_interval` seconds, a
//! value only when it changed, the uptime always), from the figures the shards can give
//! today, plus each shard's own under `$SYS/broker/shards/N/`.
//!
//! Each shard writes its figures into its slot of a shared [`Board`] once per interval
//! (counting its sessions takes a walk over them, so not more often); shard 0 publishes
//! the tree from the board, so another shard's figures are as of its last interval. Published so far: `version`, `uptime`, `clients/connected`,
//! `clients/disconnected`, `clients/total`, `clients/maximum`, `subscriptions/count`,
//! `retained messages/count`, `bytes/received`, `bytes/sent`, and per shard
//! `connections`, `clients`, `subscriptions`, `bytes/received`, `bytes/sent`. Not yet:
//! Mosquitto's message and publish counts (`messages/*`, `publish/*`, `store/*`), the
//! `load/*` averages, `clients/expired`, `heap/*` — they need counters on the data
//! plane's publish and delivery paths (plane.rs, sessions.rs), which this file cannot see.

use super::state::Shard;
use crate::protocol::{ByteStr, QoS};
use crate::session::{Message, Origin, PublisherKey};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One shard's figures, as of its last interval.
#[derive(Default)]
#[repr(align(64))]
struct Slot {
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    connections: AtomicU64,
    clients_connected: AtomicU64,
    clients_disconnected: AtomicU64,
    subscriptions: AtomicU64,
}

/// What the shards share for `$SYS`.
pub struct Board {
    slots: Vec<Slot>,
}

impl Board {
    pub fn new(shards: usize) -> Arc<Board> {
        Arc::new(Board { slots: (0..shards).map(|_| Slot::default()).collect() })
    }
}

/// One shard's part: the byte counts its event loop keeps, its slot, and (on shard 0)
/// what was published last.
pub struct SysTally {
    board: Arc<Board>,
    shard: usize,
    /// Bytes read from and written to client sockets (the event loop adds to these).
    pub bytes_received: u64,
    pub bytes_sent: u64,
    next_ms: u64,
    /// Shard 0: the last value published per topic, and the most clients seen at once.
    published: HashMap<String, String>,
    clients_maximum: u64,
}

impl SysTally {
    pub fn new(board: Arc<Board>, shard: usize) -> Self {
        SysTally {
            board,
            shard,
            bytes_received: 0,
            bytes_sent: 0,
            next_ms: 0,
            published: HashMap::new(),
            clients_maximum: 0,
        }
    }

    /// Called by the event loop's housekeeping: once per `sys_interval`, writes this
    /// shard's figures to the board, and on shard 0 publishes the tree.
    pub fn tick(&mut self, shard: &mut Shard, connections: usize) {
        let interval_ms = u64::from(shard.config().sys_interval_secs) * 1000;
        let now = shard.now_ms();
        if interval_ms == 0 || now < self.next_ms {
            return;
        }
        self.next_ms = now + interval_ms;
        let plane = &shard.plane;
        let (mut connected, mut disconnected, mut subscriptions) = (0u64, 0u64, 0u64);
        for (_, entry) in plane.sessions.iter() {
            if entry.moved_to.is_some() {
                continue;
            }
            if entry.conn.is_some() {
                connected += 1;
            } else {
                disconnected += 1;
            }
            subscriptions += entry.session.subscriptions.len() as u64;
        }
        let slot = &self.board.slots[self.shard];
        slot.bytes_received.store(self.bytes_received, Ordering::Relaxed);
        slot.bytes_sent.store(self.bytes_sent, Ordering::Relaxed);
        slot.connections.store(connections as u64, Ordering::Relaxed);
        slot.clients_connected.store(connected, Ordering::Relaxed);
        slot.clients_disconnected.store(disconnected, Ordering::Relaxed);
        slot.subscriptions.store(subscriptions, Ordering::Relaxed);
        if self.shard == 0 {
            self.publish_tree(shard, now);
        }
    }

    fn publish_tree(&mut self, shard: &mut Shard, now_ms: u64) {
        let sum = |f: fn(&Slot) -> &AtomicU64| -> u64 {
            self.board.slots.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
        };
        let connected = sum(|s| &s.clients_connected);
        let disconnected = sum(|s| &s.clients_disconnected);
        self.clients_maximum = self.clients_maximum.max(connected);
        let retained = shard.plane.routes.retained_matching("#", now_ms).len();
        let mut values: Vec<(String, String)> = vec![
            ("$SYS/broker/version".into(), format!("ringmq version {}", env!("CARGO_PKG_VERSION"))),
            ("$SYS/broker/clients/connected".into(), connected.to_string()),
            ("$SYS/broker/clients/disconnected".into(), disconnected.to_string()),
            ("$SYS/broker/clients/total".into(), (connected + disconnected).to_string()),
            ("$SYS/broker/clients/maximum".into(), self.clients_maximum.to_string()),
            ("$SYS/broker/subscriptions/count".into(), sum(|s| &s.subscriptions).to_string()),
            ("$SYS/broker/retained messages/count".into(), retained.to_string()),
            ("$SYS/broker/bytes/received".into(), sum(|s| &s.bytes_received).to_string()),
            ("$SYS/broker/bytes/sent".into(), sum(|s| &s.bytes_sent).to_string()),
        ];
        for (i, s) in self.board.slots.iter().enumerate() {
            let at = |name: &str| format!("$SYS/broker/shards/{i}/{name}");
            let clients = s.clients_connected.load(Ordering::Relaxed);
            values.push((at("connections"), s.connections.load(Ordering::Relaxed).to_string()));
            values.push((at("clients"), clients.to_string()));
            values.push((at("subscriptions"), s.subscriptions.load(Ordering::Relaxed).to_string()));
            values.push((at("bytes/received"), s.bytes_received.load(Ordering::Relaxed).to_string()));
            values.push((at("bytes/sent"), s.bytes_sent.load(Ordering::Relaxed).to_string()));
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
