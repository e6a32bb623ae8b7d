//! The shard's side of persistence (docs/persistence.md): its store's writer thread, the
//! acknowledgements that wait for a write, and what the store held at start-up.
//!
//! Stored so far: retained messages. A retained QoS 1/2 PUBLISH is acknowledged once its
//! record is written (synced, with `persistence_sync fsync`), as a login waits for its
//! password check: the PUBACK/PUBREC waits here with a ticket, the writer answers tickets
//! in order, and the shard writes the acknowledgements whose ticket was answered. Every
//! later QoS 1/2 acknowledgement of the same connection waits behind it, since PUBACKs go
//! out in the order the PUBLISHes came (3.1.1 [MQTT-4.6.0-2]). When the writer's queue is
//! full, jobs wait here in order and the publisher is held (its socket not read) until the
//! writer catches up: nothing acknowledged is dropped, and this backlog is bounded by what
//! the held publishers had already sent.
//!
//! With persistence off the data plane holds no `Persist`, and a PUBLISH pays one `Option`
//! test.

use super::connections::Connections;
use super::ids::{ConnId, SessionId};
use super::state::Shard;
use crate::config::PersistenceSync;
use crate::protocol::{ByteStr, QoS, ReasonCode};
use crate::session::Message;
use crate::store::records::{Clock, Key, Retained};
use crate::store::writer::{Change, Durability, Job, Loaded, Saver, Writer, SAVE_TICKET};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A PUBLISH's acknowledgement: to whom, and what it says.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    pub conn: ConnId,
    pub sid: SessionId,
    pub qos: QoS,
    pub packet_id: u16,
    pub reason: ReasonCode,
}

/// An acknowledgement waiting for the write of what its PUBLISH changed.
struct WaitingAck {
    ticket: u64,
    conn: ConnId,
    sid: SessionId,
    qos: QoS,
    packet_id: u16,
    reason: ReasonCode,
}

/// One shard's persistence.
pub struct Persist {
    writer: Writer,
    clock: Clock,
    /// The last ticket given to a job, and the last one the writer answered.
    issued: u64,
    answered: u64,
    /// Jobs the writer's queue had no room for, in order.
    backlog: VecDeque<Job>,
    /// Publishers held while the backlog is not empty.
    held: Vec<ConnId>,
    waiting: VecDeque<WaitingAck>,
    /// Per connection, how many of its acknowledgements wait.
    waiting_per_conn: HashMap<ConnId, u32>,
}

/// What the stores held at start-up, for every shard.
pub struct Recovered {
    /// The newest retained message of each topic (cleared ones left out), from every
    /// shard's log.
    pub retained: Vec<(ByteStr, u64, Arc<Message>)>,
    /// The highest retained sequence number found: the counter starts past it.
    pub retain_seq_max: Option<u64>,
}

/// Loads every shard's log (in parallel, before the broker listens), reads what they
/// hold, and starts each shard's writer thread. Called by `Broker::start` with
/// persistence on; the shards take their part as they start.
pub fn start(shared: &super::shared::Shared, shards: usize) -> anyhow::Result<Start> {
    let cfg = &shared.config.persistence;
    let dir =
        if cfg.location.as_os_str().is_empty() { std::path::Path::new(".") } else { cfg.location.as_path() };
    let started = std::time::Instant::now();
    let loaded = crate::store::writer::load_all(dir, &cfg.file, shards as u16)
        .map_err(|e| anyhow::anyhow!("persistence: {e}"))?;
    let unix_now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let clock = Clock { unix_ms_at_start: unix_now_ms.saturating_sub(shared.clock.now_ms()) };
    let recovered = recover(&loaded, clock);
    if let Some(max) = recovered.retain_seq_max {
        shared.retain_seq.store(max + 1, std::sync::atomic::Ordering::Relaxed);
    }
    let records: usize = loaded.iter().map(|l| l.live.len()).sum();
    let mut per_shard = Vec::with_capacity(shards);
    for (id, l) in loaded.into_iter().enumerate() {
        let mesh = shared.mesh.clone();
        let wake = Box::new(move || mesh.wake(id));
        let writer = Writer::start(id as u16, l, durability(cfg.sync), wake)?;
        per_shard.push(Persist::new(writer, clock));
    }
    crate::log!(
        Notice,
        "Persistence: {} record(s) in {} shard log(s) under {} read in {} ms; {} retained message(s).",
        records,
        shards,
        dir.display(),
        started.elapsed().as_millis(),
        recovered.retained.len()
    );
    Ok(Start::new(per_shard, recovered))
}

/// The writer's setting for `persistence_sync`.
pub fn durability(sync: PersistenceSync) -> Durability {
    match sync {
        PersistenceSync::Fsync => Durability::Fsync,
        PersistenceSync::IntervalMs(ms) => Durability::IntervalMs(ms.into()),
        PersistenceSync::Os => Durability::Os,
    }
}

/// Reads what every shard's log holds: the retained messages, merged by their sequence
/// number (a shard's log may hold an older copy of a topic another shard updated since).
/// A record that does not decode is logged and skipped.
pub fn recover(loaded: &[Loaded], clock: Clock) -> Recovered {
    let mut newest: HashMap<ByteStr, Retained> = HashMap::new();
    let mut retain_seq_max = None;
    for (shard, l) in loaded.iter().enumerate() {
        for (k, v) in &l.live {
            let decoded = Key::decode(k).and_then(|key| match key {
                Key::Retained { topic } => Retained::decode(v, clock).map(|r| Some((topic, r))),
                _ => Ok(None),
            });
            match decoded {
                Ok(Some((topic, r))) => {
                    retain_seq_max = retain_seq_max.max(Some(r.seq));
                    if newest.get(&topic).is_none_or(|old| old.seq < r.seq) {
                        newest.insert(topic, r);
                    }
                }
                Ok(None) => {}
                Err(e) => crate::log!(Warning, "Warning: shard {} store: {}; skipped.", shard, e),
            }
        }
    }
    let retained =
        newest.into_iter().filter_map(|(topic, r)| r.message.map(|m| (topic, r.seq, Arc::new(m)))).collect();
    Recovered { retained, retain_seq_max }
}

/// Each shard's store, as the broker starts them, for the shards to take (empty with
/// persistence off).
#[derive(Default)]
pub struct Start {
    per_shard: std::sync::Mutex<Vec<Option<Persist>>>,
    /// What the stores held: every shard installs it.
    pub recovered: Option<Recovered>,
    /// Each shard's writer, asked to save on SIGUSR1.
    savers: Vec<Saver>,
}

impl Start {
    pub fn new(per_shard: Vec<Persist>, recovered: Recovered) -> Self {
        let savers = per_shard.iter().map(|p| p.writer.saver()).collect();
        Start {
            per_shard: std::sync::Mutex::new(per_shard.into_iter().map(Some).collect()),
            recovered: Some(recovered),
            savers,
        }
    }

    /// Asks every shard's writer to sync and compact its log now (SIGUSR1).
    pub fn save(&self) {
        if self.savers.is_empty() {
            crate::log!(Notice, "Received SIGUSR1: persistence is off, so there is nothing to save.");
            return;
        }
        let asked = self.savers.iter().filter(|s| s.save()).count();
        crate::log!(
            Notice,
            "Received SIGUSR1: {} of {} shard log(s) asked to sync and compact.",
            asked,
            self.savers.len()
        );
    }

    /// Shard `shard`'s store, once.
    pub fn take(&self, shard: u16) -> Option<Persist> {
        let mut all = self.per_shard.lock().unwrap_or_else(|e| e.into_inner());
        all.get_mut(shard as usize).and_then(Option::take)
    }
}

impl Persist {
    pub fn new(writer: Writer, clock: Clock) -> Self {
        Persist {
            writer,
            clock,
            issued: 0,
            answered: 0,
            backlog: VecDeque::new(),
            held: Vec::new(),
            waiting: VecDeque::new(),
            waiting_per_conn: HashMap::new(),
        }
    }

    /// The last ticket given: a PUBLISH whose handling gave a newer one wrote something.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Stores a retained message, or its removal (`None`), under sequence number `seq`.
    /// `$SYS` topics are not stored: they are the broker's own figures, published again
    /// from the start (Mosquitto does not keep them either).
    pub fn retained(&mut self, topic: &ByteStr, seq: u64, message: Option<&Message>) {
        if topic.starts_with("$SYS/") {
            return;
        }
        let key = Key::Retained { topic: topic.clone() }.encode();
        let value = Retained { seq, message: message.cloned() }.encode(self.clock);
        self.submit(vec![Change::Put { key, value }]);
    }

    /// Hands a job to the writer, or to the backlog behind what waits there.
    fn submit(&mut self, changes: Vec<Change>) {
        self.issued += 1;
        let job = Job { changes, ticket: Some(self.issued) };
        if !self.backlog.is_empty() {
            self.backlog.push_back(job);
        } else if let Err(job) = self.writer.try_submit(job) {
            self.backlog.push_back(job);
        }
    }

    /// Keeps `ack` until what its PUBLISH wrote is written, when it must wait (see
    /// [`Persist::must_wait`]), holding the publisher when the writer's queue is full. True
    /// when it waits. Out of line: the data plane's PUBLISH path stays as small as it was
    /// without persistence.
    #[inline(never)]
    pub fn defer_ack(&mut self, ack: Ack, issued_before: u64, conns: &mut Connections, now_ms: u64) -> bool {
        if ack.qos == QoS::AtMostOnce || !self.must_wait(ack.conn, issued_before) {
            return false;
        }
        if self.wait(ack.conn, ack.sid, ack.qos, ack.packet_id, ack.reason) {
            conns.hold(ack.conn, true, now_ms);
        }
        true
    }

    /// Whether `conn`'s acknowledgement must wait: its PUBLISH wrote something (a ticket
    /// newer than `issued_before` was given), or an earlier one of its acknowledgements waits.
    pub fn must_wait(&self, conn: ConnId, issued_before: u64) -> bool {
        self.issued > issued_before || self.waiting_per_conn.contains_key(&conn)
    }

    /// Keeps an acknowledgement until the last ticket given is answered. True when the
    /// publisher is to be held (the writer's queue is full).
    pub fn wait(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        qos: QoS,
        packet_id: u16,
        reason: ReasonCode,
    ) -> bool {
        self.waiting.push_back(WaitingAck { ticket: self.issued, conn, sid, qos, packet_id, reason });
        *self.waiting_per_conn.entry(conn).or_default() += 1;
        let hold = !self.backlog.is_empty() && !self.held.contains(&conn);
        if hold {
            self.held.push(conn);
        }
        hold
    }

    /// Whether the writer answered (checked before the shard sleeps).
    pub fn has_answers(&self) -> bool {
        self.writer.has_answers()
    }

    /// Takes the writer's answers, moves the backlog on, and gives back the
    /// acknowledgements now due, in order, and the publishers to let go.
    fn take_answers(&mut self) -> (Vec<WaitingAck>, Vec<ConnId>) {
        while let Some(t) = self.writer.next_answer() {
            if t == SAVE_TICKET {
                continue;
            }
            debug_assert!(t > self.answered, "the writer answers tickets in order");
            self.answered = self.answered.max(t);
        }
        while let Some(job) = self.backlog.pop_front() {
            if let Err(job) = self.writer.try_submit(job) {
                self.backlog.push_front(job);
                break;
            }
        }
        let release = if self.backlog.is_empty() { std::mem::take(&mut self.held) } else { Vec::new() };
        let mut due = Vec::new();
        while self.waiting.front().is_some_and(|a| a.ticket <= self.answered) {
            let Some(a) = self.waiting.pop_front() else { break };
            if let Some(n) = self.waiting_per_conn.get_mut(&a.conn) {
                *n -= 1;
                if *n == 0 {
                    self.waiting_per_conn.remove(&a.conn);
                }
            }
            due.push(a);
        }
        (due, release)
    }
}

impl Shard {
    /// Whether the store's writer answered (checked before the shard sleeps).
    pub fn has_persisted(&self) -> bool {
        self.plane.persist.as_ref().is_some_and(|p| p.has_answers())
    }

    /// Writes the acknowledgements whose records are written, and lets go of the
    /// publishers held for a full writer queue once it has room.
    pub fn complete_persisted(&mut self) {
        let plane = &mut self.plane;
        let Some(persist) = plane.persist.as_mut() else { return };
        let (due, release) = persist.take_answers();
        for a in due {
            // The connection may have gone, or its slot be another's by now: the session
            // must still be on it. A client that went away sends the PUBLISH again.
            let (Some(entry), Some(c)) = (plane.sessions.get_mut(a.sid), plane.conns.get_mut(a.conn)) else {
                continue;
            };
            if entry.conn != Some(a.conn) {
                continue;
            }
            entry.session.acknowledge(a.qos, a.packet_id, a.reason, &mut c.out);
            plane.conns.wake_writer(a.conn);
        }
        for conn in release {
            plane.conns.hold(conn, false, plane.now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::writer::load;
    use std::time::{Duration, Instant};

    #[test]
    fn acknowledgements_wait_for_their_ticket_and_keep_their_order() {
        let d = std::env::temp_dir().join(format!("ringmq-shard-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let loaded = load(&d.join("s.shard-0")).unwrap();
        let writer = Writer::start(0, loaded, Durability::Fsync, Box::new(|| {})).unwrap();
        let mut p = Persist::new(writer, Clock { unix_ms_at_start: 0 });
        // Connection 1: a retained PUBLISH (writes), then a plain one (waits behind it).
        let before = p.issued();
        p.retained(&ByteStr::from("t"), 1, None);
        assert!(p.must_wait(1, before));
        assert!(!p.wait(1, 10, QoS::AtLeastOnce, 100, ReasonCode::SUCCESS));
        let before = p.issued();
        assert!(p.must_wait(1, before), "behind its connection's waiting acknowledgement");
        p.wait(1, 10, QoS::AtLeastOnce, 101, ReasonCode::SUCCESS);
        // Connection 2 wrote nothing and waits for nothing.
        assert!(!p.must_wait(2, before));
        // The broker's own figures are not stored.
        p.retained(&ByteStr::from("$SYS/broker/uptime"), 2, None);
        assert_eq!(p.issued(), before);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut due = Vec::new();
        while due.len() < 2 && Instant::now() < deadline {
            due.extend(p.take_answers().0.into_iter().map(|a| a.packet_id));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(due, vec![100, 101]);
        assert!(!p.must_wait(1, p.issued()));
        drop(p);
        std::fs::remove_dir_all(d).unwrap();
    }
}
