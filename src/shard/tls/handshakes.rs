//! TLS handshakes off the shards' loops. A handshake's crypto (a key share and a
//! signature, most of a millisecond of CPU) would hold the shard's turn, and every other
//! connection of the shard with it; so while a connection handshakes, its rustls
//! `ServerConnection` goes to a small pool of threads with the bytes that arrived, and
//! comes back with the records to send and whatever plaintext followed, on a per-shard
//! queue that wakes the shard like a mesh message (as password checks do, `verifier.rs`).
//! Once the handshake is done the connection stays on its shard.

use super::super::mesh::Mesh;
use crossbeam_queue::SegQueue;
use rustls::ServerConnection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Handshake steps waiting for a thread, broker-wide. Beyond it the shard does the step
/// itself: slower for its other connections, but no client is refused for it.
pub const HANDSHAKE_QUEUE_MAX: usize = 4096;

/// One handshake step: what arrived for a connection, to feed its `ServerConnection`.
pub struct Step {
    pub shard: u16,
    pub conn: super::super::ids::ConnId,
    /// Tells this layer apart from a later connection's in the same slot.
    pub ticket: u64,
    pub tls: Box<ServerConnection>,
    pub data: Vec<u8>,
}

/// A step's result.
pub struct Stepped {
    pub conn: super::super::ids::ConnId,
    pub ticket: u64,
    pub tls: Box<ServerConnection>,
    /// Records to send (handshake flights, an alert).
    pub records: Vec<u8>,
    /// Plaintext that followed the handshake in the same bytes (a CONNECT, say).
    pub plain: Vec<u8>,
    /// The TLS error that ends the connection.
    pub error: Option<String>,
}

struct Answers {
    queues: Vec<SegQueue<Stepped>>,
    /// As the verifier's: SeqCst on both sides, against a shard parking meanwhile.
    pending: Vec<AtomicUsize>,
}

/// The pool of handshake threads.
pub struct Handshakes {
    answers: Arc<Answers>,
    jobs: SyncSender<Step>,
}

impl Handshakes {
    /// `threads` handshake threads for `mesh`'s shards.
    pub fn start(mesh: Arc<Mesh>, threads: usize) -> std::io::Result<Self> {
        let answers = Arc::new(Answers {
            queues: (0..mesh.shards()).map(|_| SegQueue::new()).collect(),
            pending: (0..mesh.shards()).map(|_| AtomicUsize::new(0)).collect(),
        });
        let (tx, rx) = sync_channel::<Step>(HANDSHAKE_QUEUE_MAX);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let (rx, answers, mesh) = (rx.clone(), answers.clone(), mesh.clone());
            std::thread::Builder::new()
                .name(format!("ringmq-tls-{i}"))
                .spawn(move || run(&rx, &answers, &mesh))?;
        }
        Ok(Handshakes { answers, jobs: tx })
    }

    /// Queues a step; gives it back when the queue is full.
    pub fn submit(&self, step: Step) -> Result<(), Step> {
        self.jobs.try_send(step).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(s) | std::sync::mpsc::TrySendError::Disconnected(s) => s,
        })
    }

    /// The next result for shard `shard`.
    pub fn next(&self, shard: u16) -> Option<Stepped> {
        let s = self.answers.queues[shard as usize].pop()?;
        self.answers.pending[shard as usize].fetch_sub(1, Ordering::SeqCst);
        Some(s)
    }

    /// Whether results wait for shard `shard` (checked before it sleeps).
    pub fn has_results(&self, shard: u16) -> bool {
        self.answers.pending[shard as usize].load(Ordering::SeqCst) > 0
    }
}

/// Feeds `data` to `tls`: the records it has to send, the plaintext, or the error.
pub fn step(tls: &mut ServerConnection, mut data: &[u8]) -> (Vec<u8>, Vec<u8>, Option<String>) {
    let (mut records, mut plain, mut error) = (Vec::new(), Vec::new(), None);
    while !data.is_empty() && error.is_none() {
        if let Err(e) = tls.read_tls(&mut data) {
            error = Some(e.to_string());
            break;
        }
        match tls.process_new_packets() {
            Ok(state) => {
                let n = state.plaintext_bytes_to_read();
                if n > 0 {
                    let at = plain.len();
                    plain.resize(at + n, 0);
                    let _ = std::io::Read::read_exact(&mut tls.reader(), &mut plain[at..]);
                }
            }
            Err(e) => error = Some(e.to_string()),
        }
    }
    while tls.wants_write() {
        if tls.write_tls(&mut records).is_err() {
            break;
        }
    }
    (records, plain, error)
}

fn run(rx: &Mutex<Receiver<Step>>, answers: &Answers, mesh: &Mesh) {
    loop {
        let Step { shard, conn, ticket, mut tls, data } =
            match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                Ok(s) => s,
                Err(_) => return,
            };
        let (records, plain, error) = step(&mut tls, &data);
        let s = shard as usize;
        answers.queues[s].push(Stepped { conn, ticket, tls, records, plain, error });
        answers.pending[s].fetch_add(1, Ordering::SeqCst);
        mesh.wake(s);
    }
}
