//! A deterministic multi-shard harness for tests: N shards over one in-memory mesh,
//! clients as encoded packets in and decoded packets out, virtual time. No sockets, no
//! threads, no sleeps: a test says what each client sends, runs the shards until nothing
//! moves, and reads what each client got. The shards are the real ones (`Shard`, `Input`);
//! only the event loop is replaced, by [`Harness::settle`], which plays its part: mesh
//! messages in, answered CONNECTs completed, connection output handed to the clients,
//! closing connections' writers ended.
//!
//! The order in which shards take their turns, which peer's queue a turn reads first, how
//! many mesh messages it takes, and which queues lag for a few turns come from a seed, so
//! the randomized tests explore interleavings (each queue stays FIFO, as the real mesh's
//! does) and a failing seed replays exactly.

use super::connections::{ConnId, Side};
use super::input::Input;
use super::shared::Shared;
use super::state::Shard;
use super::xorshift::XorShift;
use crate::config::Config;
use crate::protocol::{
    ByteStr, Connect, Decoded, Decoder, Packet, ProtocolVersion, Publish, QoS, Subscribe, SubscriptionOptions,
};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

/// Milliseconds between the shards' timer runs as virtual time passes (the event loop's
/// housekeeping interval).
const TIMER_STEP_MS: u64 = 100;
/// A bound on the turns one `settle` may take: a conversation that has not come to rest
/// by then is a livelock, reported rather than spun.
const SETTLE_TURNS_MAX: usize = 100_000;

/// A client's handle in the harness.
pub type ClientId = usize;

/// One test client: a connection on a chosen shard, what it sent, what it received.
struct Client {
    shard: usize,
    conn: ConnId,
    input: Input,
    version: ProtocolVersion,
    decoder: Decoder,
    received: VecDeque<Packet>,
    /// The broker closed the connection (its writer ended).
    closed: bool,
}

/// N shards, their clients, and the virtual clock.
pub struct Harness {
    shared: Arc<Shared>,
    shards: Vec<Shard>,
    clients: Vec<Client>,
    now_ms: u64,
    last_second_ms: u64,
    /// The schedule's generator (turn order, batch sizes, lagging queues); without one,
    /// shards take turns in order and take everything.
    rng: Option<XorShift>,
    /// Turns left for which each queue (indexed by receiver, then sender) lags.
    stalls: Vec<u8>,
    chunk: BytesMut,
}

impl Harness {
    /// `shards` shards, default configuration, shards taking turns in order.
    pub fn new(shards: usize) -> Self {
        Self::with_config(shards, Config::default(), 0)
    }

    /// `shards` shards with `config`; `seed` (non-zero) shuffles turn order and batch sizes.
    pub fn with_config(shards: usize, config: Config, seed: u64) -> Self {
        let n = shards;
        let shared = Arc::new(Shared::for_tests(config, shards));
        let shards = (0..shards).map(|id| Shard::new(id as u16, shared.clone(), 0)).collect();
        Harness {
            shared,
            shards,
            clients: Vec::new(),
            now_ms: 0,
            last_second_ms: 0,
            rng: (seed != 0).then(|| XorShift::new(seed)),
            stalls: vec![0; n * n],
            chunk: BytesMut::new(),
        }
    }

    fn random(&mut self, bound: usize) -> usize {
        self.rng.map_or(0, |mut r| {
            let n = r.below(bound);
            self.rng = Some(r);
            n
        })
    }

    /// Opens a connection on `shard` for a client that will speak `version`; it has
    /// sent nothing yet.
    pub fn open(&mut self, shard: usize, version: ProtocolVersion) -> ClientId {
        let peer = SocketAddr::from(([127, 0, 0, 1], 40_000 + self.clients.len() as u16));
        let sh = &mut self.shards[shard];
        sh.begin_turn(self.now_ms);
        let conn = sh.open_connection(peer, 0);
        let deadline_ms = self.now_ms + sh.config().connect_timeout_secs * 1000;
        let input = Input::new(conn, sh.config().max_packet_size as usize, deadline_ms);
        let decoder = Decoder::with_version(version, usize::MAX);
        let client =
            Client { shard, conn, input, version, decoder, received: VecDeque::new(), closed: false };
        self.clients.push(client);
        self.clients.len() - 1
    }

    /// Opens a connection on `shard` and sends `connect` on it; returns the client once
    /// the shards have settled (read its CONNACK with [`Harness::recv`]).
    pub fn connect(&mut self, shard: usize, connect: Connect) -> ClientId {
        let id = self.connect_unsettled(shard, connect);
        self.settle();
        id
    }

    /// [`Harness::connect`] without settling: the CONNECT is registered, nothing more.
    pub fn connect_unsettled(&mut self, shard: usize, connect: Connect) -> ClientId {
        let id = self.open(shard, connect.version);
        self.send_unsettled(id, Packet::Connect(Box::new(connect)));
        id
    }

    /// Sends a packet from a client, then settles.
    pub fn send(&mut self, client: ClientId, packet: Packet) {
        self.send_unsettled(client, packet);
        self.settle();
    }

    /// Sends a packet from a client; only its own shard handles it (one turn's input),
    /// and nothing else runs until the test calls [`Harness::turn`] or [`Harness::settle`].
    pub fn send_unsettled(&mut self, client: ClientId, packet: Packet) {
        let bytes = encode(&packet, self.clients[client].version);
        self.receive_bytes(client, &bytes);
    }

    /// Sends raw bytes from a client (a partial or malformed packet, say), then settles.
    pub fn send_bytes(&mut self, client: ClientId, bytes: &[u8]) {
        self.receive_bytes(client, bytes);
        self.settle();
    }

    fn receive_bytes(&mut self, client: ClientId, bytes: &[u8]) {
        let c = &mut self.clients[client];
        let shard = &mut self.shards[c.shard];
        shard.begin_turn(self.now_ms);
        c.input.on_bytes(shard, &mut self.chunk, bytes);
    }

    /// The client's socket closes (no DISCONNECT), then the shards settle.
    pub fn drop_connection(&mut self, client: ClientId) {
        let c = &mut self.clients[client];
        let shard = &mut self.shards[c.shard];
        shard.begin_turn(self.now_ms);
        c.input.on_end(shard, "closed its connection");
        self.settle();
    }

    /// The next packet the client received, if any.
    pub fn recv(&mut self, client: ClientId) -> Option<Packet> {
        self.clients[client].received.pop_front()
    }

    /// Everything the client received since the last read.
    pub fn drain(&mut self, client: ClientId) -> Vec<Packet> {
        self.clients[client].received.drain(..).collect()
    }

    /// Whether the broker closed the client's connection.
    pub fn is_closed(&self, client: ClientId) -> bool {
        self.clients[client].closed
    }

    /// Lets `ms` of virtual time pass, running the shards' timers on the way as the
    /// event loop would (keepalive, wills, expiry, CONNECT deadlines).
    pub fn advance(&mut self, ms: u64) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms = (self.now_ms + TIMER_STEP_MS).min(end);
            let second = self.now_ms - self.last_second_ms >= 1000;
            if second {
                self.last_second_ms = self.now_ms;
            }
            for i in 0..self.shards.len() {
                let shard = &mut self.shards[i];
                shard.begin_turn(self.now_ms);
                shard.sweep_keepalive();
                if second {
                    shard.every_second();
                }
            }
            for c in &mut self.clients {
                if c.input.connect_deadline_ms().is_some_and(|d| d <= self.now_ms) {
                    c.input.connect_timed_out(&mut self.shards[c.shard]);
                }
            }
            self.settle();
        }
    }

    /// Runs shard turns until nothing moves: no mesh message, answered CONNECT or output
    /// is left anywhere.
    pub fn settle(&mut self) {
        for _ in 0..SETTLE_TURNS_MAX {
            if !self.has_work() {
                return;
            }
            let n = self.shards.len();
            let first = self.random(n);
            for k in 0..n {
                self.turn((first + k) % n);
            }
        }
        panic!("the shards did not settle within {SETTLE_TURNS_MAX} turns");
    }

    fn has_work(&mut self) -> bool {
        let mesh = &self.shared.mesh;
        self.shards.iter_mut().enumerate().any(|(i, s)| {
            mesh.has_pending(i)
                || s.has_answered_connects()
                || s.has_verified()
                || s.conns().has_hold_changes()
                || s.conns().has_output()
                || s.outbox().is_backlogged()
        })
    }

    /// Whether the queue from `from` to `to` lags this turn. Now and then (with a seed) a
    /// queue stalls for a few of its receiver's turns while the others move on, as one
    /// peer's messages can lag behind another's in the real mesh: that is where the
    /// orderings a cross-shard protocol must survive come from.
    fn stalled(&mut self, from: usize, to: usize) -> bool {
        if self.rng.is_none() {
            return false;
        }
        let pair = to * self.shards.len() + from;
        if self.stalls[pair] > 0 {
            self.stalls[pair] -= 1;
            return true;
        }
        if self.random(16) == 0 {
            self.stalls[pair] = 1 + self.random(10) as u8;
            return true;
        }
        false
    }

    /// One turn of shard `i`, as the event loop takes it.
    pub fn turn(&mut self, i: usize) {
        let mesh = self.shared.mesh.clone();
        let n = self.shards.len();
        self.shards[i].begin_turn(self.now_ms);
        // Which peer's queue comes first varies too: queues from different peers are not
        // ordered with each other, and the tests should not rely on any order.
        let first = self.random(n);
        for from in (0..n).map(|k| (first + k) % n) {
            let batch = if self.rng.is_none() { usize::MAX } else { 1 + self.random(8) };
            if self.stalled(from, i) {
                continue;
            }
            for _ in 0..batch {
                let Some(m) = mesh.try_recv(from, i) else { break };
                self.shards[i].on_mesh(m);
            }
        }
        let shard = &mut self.shards[i];
        shard.outbox().flush_backlog();
        while let Some(answer) = shard.next_verified() {
            let conn = answer.conn;
            if let Some(c) = self.clients.iter_mut().find(|c| c.shard == i && c.conn == conn && !c.closed) {
                c.input.verified(shard, answer);
            }
        }
        while let Some((conn, resumed)) = shard.next_answered_connect() {
            if let Some(c) = self.clients.iter_mut().find(|c| c.shard == i && c.conn == conn && !c.closed) {
                c.input.complete_connect(shard, resumed);
            }
        }
        // Flow control: a held client's bytes wait in its input, as they would wait in
        // its socket; one let go decodes them.
        shard.conns().take_paused();
        for conn in shard.conns().take_resumed() {
            if let Some(c) = self.clients.iter_mut().find(|c| c.shard == i && c.conn == conn && !c.closed) {
                c.input.resume(shard);
            }
        }
        self.flush_output(i);
    }

    /// Hands each listed connection's output to its client; ends the writer of a closing
    /// connection once its output is out, and with it the reader, as the socket's shutdown would.
    fn flush_output(&mut self, i: usize) {
        let shard = &mut self.shards[i];
        for conn in shard.conns().take_to_flush(Vec::new()) {
            let Some(entry) = shard.conns().flushing(conn) else { continue };
            let Some(c) = self.clients.iter_mut().find(|c| c.shard == i && c.conn == conn && !c.closed)
            else {
                continue;
            };
            let mut out = std::mem::take(&mut entry.out);
            let closing = entry.is_closing();
            while let Ok(Decoded::Packet(p)) = c.decoder.decode(&mut out) {
                c.received.push_back(p);
            }
            if closing {
                c.closed = true;
                shard.side_ended(conn, Side::Writer);
                c.input.on_end(shard, "closed by the broker");
            }
        }
    }
}

/// The bytes of a packet as a client at `version` sends them.
pub fn encode(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    packet.encode(version, &mut out);
    out.to_vec()
}

/// A CONNECT with clean start, keepalive 0 and no will.
pub fn connect(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        version,
        clean_start: true,
        keep_alive_secs: 0,
        client_id: ByteStr::from(client_id),
        will: None,
        username: None,
        password: None,
        properties: None,
    }
}

/// A SUBSCRIBE to one filter at `qos`.
pub fn subscribe(packet_id: u16, filter: &str, qos: QoS) -> Packet {
    let filters = vec![(ByteStr::from(filter), SubscriptionOptions::qos(qos))];
    Packet::Subscribe(Subscribe { packet_id, filters, properties: None })
}

/// A PUBLISH of `payload` to `topic`.
pub fn publish(topic: &str, qos: QoS, packet_id: u16, payload: &[u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteStr::from(topic),
        packet_id,
        payload: Bytes::copy_from_slice(payload),
        properties: None,
    })
}
