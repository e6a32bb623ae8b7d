//! Password checks off the shards' loops. Comparing a password with a `$7$` hash is
//! PBKDF2 on purpose slow (its iteration count is the file's), so a shard hands each check
//! to a small pool of threads and goes on serving its other connections; the answer comes
//! back on a per-shard queue and wakes the shard like a mesh message.
//!
//! In the deterministic tests ([`Verifier::inline`]) the check runs at once, on the
//! caller's thread, and the answer still goes through the queue: the shard sees the same
//! sequence of calls either way.

use super::ids::ConnId;
use super::mesh::Mesh;
use crate::auth::password::PasswordHash;
use bytes::Bytes;
use crossbeam_queue::SegQueue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Checks waiting for a verifier thread, broker-wide. Beyond it a CONNECT is refused as
/// Server unavailable rather than queued for seconds: a login storm must not grow memory
/// without bound or keep clients waiting past their connect timeouts.
pub const VERIFY_QUEUE_MAX: usize = 4096;

/// One password to compare, for connection `conn` of shard `shard`.
pub struct VerifyJob {
    pub shard: u16,
    pub conn: ConnId,
    /// Told apart from an earlier connection in the same slot by this number.
    pub ticket: u64,
    pub hash: PasswordHash,
    pub password: Bytes,
}

/// A check's answer for one connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Verified {
    pub conn: ConnId,
    pub ticket: u64,
    pub ok: bool,
}

/// The answers waiting for each shard.
struct Answers {
    queues: Vec<SegQueue<Verified>>,
    /// Per shard, answers pushed and not yet taken. SeqCst on both sides, for the same
    /// store-buffer reason as the mesh's `parked` flag (see `mesh.rs`): the shard stores
    /// `parked`, then loads this; a verifier pushes, increments this, then swaps `parked`.
    pending: Vec<AtomicUsize>,
}

/// Where password checks run.
pub struct Verifier {
    answers: Arc<Answers>,
    mesh: Arc<Mesh>,
    /// `None`: check inline (the deterministic tests).
    jobs: Option<SyncSender<VerifyJob>>,
}

impl Verifier {
    /// A pool of `threads` verifier threads for `mesh`'s shards.
    pub fn threads(mesh: Arc<Mesh>, threads: usize) -> std::io::Result<Self> {
        let answers = Arc::new(Answers::new(mesh.shards()));
        let (tx, rx) = sync_channel::<VerifyJob>(VERIFY_QUEUE_MAX);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let (rx, answers, mesh) = (rx.clone(), answers.clone(), mesh.clone());
            std::thread::Builder::new()
                .name(format!("ringmq-verify-{i}"))
                .spawn(move || run_verifier(&rx, &answers, &mesh))?;
        }
        Ok(Verifier { answers, mesh, jobs: Some(tx) })
    }

    /// Checks inline, on the thread that asks.
    pub fn inline(mesh: Arc<Mesh>) -> Self {
        Verifier { answers: Arc::new(Answers::new(mesh.shards())), mesh, jobs: None }
    }

    /// Queues a check; false when the queue is full (the caller refuses the CONNECT).
    pub fn submit(&self, job: VerifyJob) -> bool {
        match &self.jobs {
            Some(tx) => tx.try_send(job).is_ok(),
            None => {
                self.answers.answer(&self.mesh, &job);
                true
            }
        }
    }

    /// The next answer for shard `shard`.
    pub fn next_answer(&self, shard: u16) -> Option<Verified> {
        let a = self.answers.queues[shard as usize].pop()?;
        self.answers.pending[shard as usize].fetch_sub(1, Ordering::SeqCst);
        Some(a)
    }

    /// Whether answers wait for shard `shard` (checked before it sleeps).
    pub fn has_answers(&self, shard: u16) -> bool {
        self.answers.pending[shard as usize].load(Ordering::SeqCst) > 0
    }
}

impl Answers {
    fn new(shards: usize) -> Self {
        Answers {
            queues: (0..shards).map(|_| SegQueue::new()).collect(),
            pending: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn answer(&self, mesh: &Mesh, job: &VerifyJob) {
        let ok = job.hash.verify(&job.password);
        let shard = job.shard as usize;
        self.queues[shard].push(Verified { conn: job.conn, ticket: job.ticket, ok });
        self.pending[shard].fetch_add(1, Ordering::SeqCst);
        mesh.wake(shard);
    }
}

/// A verifier thread: checks until the broker drops its [`Verifier`] (the channel closes).
fn run_verifier(rx: &Mutex<Receiver<VerifyJob>>, answers: &Answers, mesh: &Mesh) {
    loop {
        // The lock is held only while waiting for one job; the check runs without it.
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        answers.answer(mesh, &job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_back_to_the_shard_that_asked_from_threads_and_inline() {
        let mesh = Arc::new(Mesh::new(2, 16));
        let hash = PasswordHash::new_pbkdf2(b"right", 10);
        for verifier in [Verifier::threads(mesh.clone(), 2).unwrap(), Verifier::inline(mesh.clone())] {
            let job = |conn, password: &'static [u8]| VerifyJob {
                shard: 1,
                conn,
                ticket: conn as u64 * 10,
                hash: hash.clone(),
                password: Bytes::from_static(password),
            };
            assert!(verifier.submit(job(7, b"right")));
            assert!(verifier.submit(job(8, b"wrong")));
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while got.len() < 2 && std::time::Instant::now() < deadline {
                match verifier.next_answer(1) {
                    Some(a) => got.push(a),
                    None => std::thread::yield_now(),
                }
            }
            got.sort_by_key(|a| a.conn);
            assert_eq!(
                got,
                vec![Verified { conn: 7, ticket: 70, ok: true }, Verified { conn: 8, ticket: 80, ok: false }]
            );
            assert!(!verifier.has_answers(1) && !verifier.has_answers(0));
        }
    }
}
