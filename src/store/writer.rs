//! A shard's disk writer: its own thread, fed by a bounded queue, so that no write or fsync
//! ever runs on the shard's loop (docs/persistence.md).
//!
//! The shard hands over groups of changes ([`Job`]), each with an optional ticket. The
//! writer takes every job waiting, stages them in the shard's log (`store::log`), writes
//! them in one `write` and, with [`Durability::Fsync`], makes them durable with one
//! fdatasync: many messages share one fsync (group commit). Then it answers the tickets on
//! the shard's answer queue and wakes the shard, as a password check's answer does
//! (`shard/verifier.rs`): a SegQueue, a pending count the shard reads before it sleeps,
//! and the wake the shard gave (its `Mesh::wake`). An answered ticket means:
//! - `Fsync`: the job is on disk, and survives a power loss;
//! - `IntervalMs` and `Os`: the job is written (handed to the kernel), and survives a
//!   crash of the process (kill -9, an abort); on a power loss, what was written in the
//!   last interval (or what the kernel had not flushed yet) may be lost.
//!
//! A full queue is the shard's to handle: [`Writer::try_submit`] gives the job back, and
//! the shard holds the publisher (stops reading its socket) until the writer catches up.

use super::log::{Log, Recovered};
use crossbeam_queue::SegQueue;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Jobs waiting for a shard's writer. Past it the shard holds its publishers: each job is
/// one PUBLISH's changes (or a session's), so this is how far ahead of the disk a shard
/// may run.
pub const WRITE_QUEUE_MAX: usize = 8192;
/// The most jobs written in one group: a bound on the time between a job's arrival and
/// its answer when jobs keep coming.
pub const GROUP_JOBS_MAX: usize = 4096;

/// When what is written is made durable (`persistence_sync`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Durability {
    /// fdatasync before answering: nothing acknowledged is lost, even on a power loss.
    Fsync,
    /// Answer once written; fdatasync at most this many milliseconds after a write.
    IntervalMs(u64),
    /// Answer once written; the kernel flushes when it will (about 30 s on Linux).
    Os,
}

/// One change to a shard's store.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Change {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// A group of changes that the shard hands over together; `ticket` comes back once they
/// are written (and synced, with `Fsync`).
#[derive(Debug, Default)]
pub struct Job {
    pub changes: Vec<Change>,
    pub ticket: Option<u64>,
}

/// What the writer thread is asked.
enum Request {
    Write(Job),
    /// Sync and compact now (SIGUSR1), then answer `ticket`.
    Save(u64),
    /// Write and sync what came before, then end (shutdown).
    Stop,
}

/// The ticket a [`Saver`]'s save is answered with; the shard's own tickets count up from 1
/// and never reach it.
pub const SAVE_TICKET: u64 = 1 << 63;

/// Asks a shard's writer to save (sync and compact) from outside the shard: SIGUSR1.
pub struct Saver(SyncSender<Request>);

impl Saver {
    /// False when the writer's queue is full or the writer has stopped.
    pub fn save(&self) -> bool {
        self.0.try_send(Request::Save(SAVE_TICKET)).is_ok()
    }
}

/// Answers waiting for the shard. SeqCst on both sides, as in `shard/verifier.rs`: the
/// shard stores its parked flag, then loads `pending`; the writer pushes, increments
/// `pending`, then wakes.
struct Answers {
    tickets: SegQueue<u64>,
    pending: AtomicUsize,
}

/// The shard's end of its writer.
pub struct Writer {
    jobs: SyncSender<Request>,
    answers: Arc<Answers>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A shard's store as read at start-up: the live records and what recovery found.
pub struct Loaded {
    pub live: BTreeMap<Vec<u8>, Vec<u8>>,
    pub recovered: Recovered,
    log: Log,
}

/// The path of shard `shard`'s log: `DIR/FILE.shard-N`.
pub fn log_path(dir: &Path, file: &str, shard: u16) -> PathBuf {
    dir.join(format!("{file}.shard-{shard}"))
}

/// Opens (recovers) shard `shard`'s log; runs on any thread, so that shards load in
/// parallel before the broker listens.
pub fn load(path: &Path) -> std::io::Result<Loaded> {
    let (log, recovered) = Log::open(path)?;
    let live = log.live().clone();
    Ok(Loaded { live, recovered, log })
}

/// Opens (recovers) every shard's log in `dir`, one thread per shard, so that start-up
/// takes as long as the largest log rather than all of them; logs what each recovery found
/// (a cut tail, a file set aside). The directory is created when missing.
pub fn load_all(dir: &Path, file: &str, shards: u16) -> std::io::Result<Vec<Loaded>> {
    std::fs::create_dir_all(dir)?;
    let loaded: Vec<std::io::Result<Loaded>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..shards)
            .map(|shard| {
                let path = log_path(dir, file, shard);
                std::thread::Builder::new()
                    .name(format!("ringmq-load-{shard}"))
                    .spawn_scoped(scope, move || load(&path))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| match t {
                Ok(t) => t
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a store's loading thread panicked"))),
                Err(e) => Err(e),
            })
            .collect()
    });
    let mut all = Vec::with_capacity(loaded.len());
    for (shard, l) in loaded.into_iter().enumerate() {
        let l = l.map_err(|e| {
            std::io::Error::new(e.kind(), format!("{}: {e}", log_path(dir, file, shard as u16).display()))
        })?;
        if let Some(problem) = &l.recovered.problem {
            crate::log!(
                Warning,
                "Warning: {}: {}; {} record(s) kept, {} byte(s) cut.",
                log_path(dir, file, shard as u16).display(),
                problem,
                l.recovered.records,
                l.recovered.cut_bytes
            );
        }
        all.push(l);
    }
    Ok(all)
}

impl Writer {
    /// Starts shard `shard`'s writer thread on its loaded log; `wake` wakes the shard
    /// when answers are waiting.
    pub fn start(
        shard: u16,
        loaded: Loaded,
        durability: Durability,
        wake: Box<dyn Fn() + Send>,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = sync_channel(WRITE_QUEUE_MAX);
        let answers = Arc::new(Answers { tickets: SegQueue::new(), pending: AtomicUsize::new(0) });
        let thread_answers = answers.clone();
        let log = loaded.log;
        let thread = std::thread::Builder::new()
            .name(format!("ringmq-store-{shard}"))
            .spawn(move || run_writer(log, &rx, durability, &thread_answers, &*wake, shard as usize))?;
        Ok(Writer { jobs: tx, answers, thread: Some(thread) })
    }

    /// Queues a job; gives it back when the queue is full (the shard holds its publisher
    /// and tries again when an answer comes back).
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        match self.jobs.try_send(Request::Write(job)) {
            Ok(()) => Ok(()),
            Err(
                TrySendError::Full(Request::Write(job)) | TrySendError::Disconnected(Request::Write(job)),
            ) => Err(job),
            Err(_) => unreachable!("a Write request comes back as it went"),
        }
    }

    /// Asks for a sync and a compaction now; `ticket` is answered when done. False when
    /// the queue is full.
    pub fn save(&self, ticket: u64) -> bool {
        self.jobs.try_send(Request::Save(ticket)).is_ok()
    }

    /// A handle that asks this writer to save, answered with [`SAVE_TICKET`].
    pub fn saver(&self) -> Saver {
        Saver(self.jobs.clone())
    }

    /// The next answered ticket.
    pub fn next_answer(&self) -> Option<u64> {
        let t = self.answers.tickets.pop()?;
        self.answers.pending.fetch_sub(1, Ordering::SeqCst);
        Some(t)
    }

    /// Whether answers wait (checked before the shard sleeps).
    pub fn has_answers(&self) -> bool {
        self.answers.pending.load(Ordering::SeqCst) > 0
    }

    /// Writes and syncs what is queued, and stops the thread (the broker's shutdown).
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // Behind everything queued (a [`Saver`] may still hold a sending end, so the
            // queue's closing cannot be what ends the thread).
            let _ = self.jobs.send(Request::Stop);
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Answers {
    fn answer(&self, tickets: &mut Vec<u64>, wake: &dyn Fn()) {
        if tickets.is_empty() {
            return;
        }
        let n = tickets.len();
        for t in tickets.drain(..) {
            self.tickets.push(t);
        }
        self.pending.fetch_add(n, Ordering::SeqCst);
        wake();
    }
}

/// The writer thread: a group per wake-up, until the shard drops its [`Writer`].
fn run_writer(
    mut log: Log,
    rx: &Receiver<Request>,
    durability: Durability,
    answers: &Answers,
    wake: &dyn Fn(),
    shard: usize,
) {
    let mut tickets = Vec::new();
    // Written and not yet synced since (Interval: when the first such write was).
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let first = match (durability, unsynced_since) {
            (Durability::IntervalMs(ms), Some(since)) => {
                let due = since + Duration::from_millis(ms);
                match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(r) => Some(r),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match rx.recv() {
                Ok(r) => Some(r),
                Err(_) => break,
            },
        };
        let mut save = Vec::new();
        let mut stop = false;
        let mut next = first;
        let mut jobs = 0;
        while let Some(request) = next.take() {
            match request {
                Request::Write(job) => {
                    for change in &job.changes {
                        match change {
                            Change::Put { key, value } => log.put(key, value),
                            Change::Delete { key } => log.delete(key),
                        }
                    }
                    tickets.extend(job.ticket);
                }
                Request::Save(ticket) => save.push(ticket),
                Request::Stop => stop = true,
            }
            jobs += 1;
            if jobs < GROUP_JOBS_MAX && !stop {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = log.write() {
            // A shard that cannot write cannot keep its promise to its publishers: the
            // broker stops, as on any other failure of a shard (the binary aborts).
            crate::log!(Error, "Error: shard {} cannot write its store: {}", shard, e);
            panic!("shard {shard}: store write failed: {e}");
        }
        let wrote = !tickets.is_empty() || jobs > 0;
        let sync_now = !save.is_empty()
            || match durability {
                Durability::Fsync => wrote,
                Durability::IntervalMs(ms) => {
                    if wrote {
                        unsynced_since.get_or_insert_with(Instant::now);
                    }
                    unsynced_since.is_some_and(|s| s.elapsed() >= Duration::from_millis(ms))
                }
                Durability::Os => false,
            };
        if durability != Durability::Fsync {
            // Written is what these settings promise: answer before the sync.
            answers.answer(&mut tickets, wake);
        }
        if sync_now {
            if let Err(e) = log.sync() {
                crate::log!(Error, "Error: shard {} cannot sync its store: {}", shard, e);
                panic!("shard {shard}: store sync failed: {e}");
            }
            unsynced_since = None;
        }
        answers.answer(&mut tickets, wake);
        if log.needs_compaction() || !save.is_empty() {
            if let Err(e) = log.compact() {
                // The log itself is whole; the next compaction tries again.
                crate::log!(Warning, "Warning: shard {} could not compact its store: {}", shard, e);
            }
        }
        answers.answer(&mut save, wake);
        if stop {
            break;
        }
    }
    // The shard is gone (shutdown): what it queued is written; make it durable.
    if let Err(e) = log.write().and_then(|()| log.sync()) {
        crate::log!(Error, "Error: shard {} could not sync its store at shutdown: {}", shard, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ringmq-persist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn put(k: &str, v: &str) -> Change {
        Change::Put { key: k.as_bytes().to_vec(), value: v.as_bytes().to_vec() }
    }

    fn wait_for(writer: &Writer, n: usize) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            match writer.next_answer() {
                Some(t) => got.push(t),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        got
    }

    #[test]
    fn every_setting_answers_each_ticket_once_and_keeps_every_change() {
        for (i, durability) in
            [Durability::Fsync, Durability::IntervalMs(5), Durability::Os].into_iter().enumerate()
        {
            let d = dir(&format!("settings-{i}"));
            let path = log_path(&d, "ringmq.db", 1);
            let woken = Arc::new(AtomicUsize::new(0));
            let w = woken.clone();
            let wake = Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            });
            let writer = Writer::start(1, load(&path).unwrap(), durability, wake).unwrap();
            for t in 0..100u64 {
                let job = Job { changes: vec![put(&format!("k{t:03}"), "v")], ticket: Some(t) };
                writer.try_submit(job).unwrap();
            }
            writer
                .try_submit(Job { changes: vec![Change::Delete { key: b"k000".to_vec() }], ticket: None })
                .unwrap();
            let mut got = wait_for(&writer, 100);
            got.sort_unstable();
            assert_eq!(got, (0..100).collect::<Vec<_>>(), "{durability:?}");
            assert!(writer.save(1000));
            assert_eq!(wait_for(&writer, 1), vec![1000]);
            // A saver outlives nothing: the writer still stops while one is held.
            let saver = writer.saver();
            assert!(saver.save());
            assert_eq!(wait_for(&writer, 1), vec![SAVE_TICKET]);
            assert!(!writer.has_answers());
            assert!(woken.load(Ordering::SeqCst) >= 1);
            writer.close();
            assert!(!saver.save(), "the writer has stopped");
            let loaded = load(&path).unwrap();
            assert_eq!(loaded.live.len(), 99, "{durability:?}");
            assert!(loaded.recovered.problem.is_none());
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn a_full_queue_gives_the_job_back_whole() {
        // A writer whose thread never takes a job: the queue fills at its bound.
        let (jobs, _held) = sync_channel(WRITE_QUEUE_MAX);
        let answers = Arc::new(Answers { tickets: SegQueue::new(), pending: AtomicUsize::new(0) });
        let writer = Writer { jobs, answers, thread: None };
        let changes = vec![put("x", "y")];
        for t in 0..WRITE_QUEUE_MAX as u64 {
            writer.try_submit(Job { changes: changes.clone(), ticket: Some(t) }).unwrap();
        }
        let job = writer.try_submit(Job { changes: changes.clone(), ticket: Some(7) }).unwrap_err();
        assert_eq!((job.changes, job.ticket), (changes, Some(7)));
    }

    /// The child process of `kill_9_loses_nothing_acknowledged`: writes jobs until killed
    /// (or 20 s), printing each answered ticket. Does nothing when run on its own.
    #[test]
    fn child_writer_until_killed() {
        let (Ok(dir), Ok(mode)) =
            (std::env::var("RINGMQ_STORE_CHILD_DIR"), std::env::var("RINGMQ_STORE_CHILD_SYNC"))
        else {
            return;
        };
        use std::io::Write;
        let durability = if mode == "fsync" { Durability::Fsync } else { Durability::Os };
        let path = log_path(Path::new(&dir), "ringmq.db", 0);
        let writer = Writer::start(0, load(&path).unwrap(), durability, Box::new(|| {})).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut stdout = std::io::stdout().lock();
        let mut t = 0u64;
        while Instant::now() < deadline {
            let job = Job { changes: vec![put(&format!("m{t:08}"), &"p".repeat(200))], ticket: Some(t) };
            if writer.try_submit(job).is_ok() {
                t += 1;
            }
            while let Some(acked) = writer.next_answer() {
                writeln!(stdout, "acked {acked}").unwrap();
                stdout.flush().unwrap();
            }
        }
    }

    #[test]
    fn kill_9_loses_nothing_acknowledged() {
        use std::io::BufRead;
        for mode in ["fsync", "os"] {
            let d = dir(&format!("kill-{mode}"));
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "store::writer::tests::child_writer_until_killed",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("RINGMQ_STORE_CHILD_DIR", &d)
                .env("RINGMQ_STORE_CHILD_SYNC", mode)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let mut acked = Vec::new();
            for line in lines {
                let line = line.unwrap();
                if let Some(t) = line.strip_prefix("acked ") {
                    acked.push(t.parse::<u64>().unwrap());
                    if acked.len() == 2000 {
                        break;
                    }
                }
            }
            // SIGKILL mid-stream: the writer is between groups or inside one.
            child.kill().unwrap();
            child.wait().unwrap();
            assert_eq!(acked.len(), 2000, "{mode}: the child acknowledged too little before its deadline");
            let loaded = load(&log_path(&d, "ringmq.db", 0)).unwrap();
            for t in &acked {
                assert!(
                    loaded.live.contains_key(format!("m{t:08}").as_bytes()),
                    "{mode}: acknowledged {t} lost"
                );
            }
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn every_shard_loads_in_parallel_and_a_cut_tail_is_reported_not_fatal() {
        let d = dir("load-all").join("not-yet-made");
        for shard in 0..3u16 {
            let (mut log, _) = Log::open(&{
                std::fs::create_dir_all(&d).unwrap();
                log_path(&d, "ringmq.db", shard)
            })
            .unwrap();
            log.put(format!("shard {shard}").as_bytes(), b"v");
            log.put(b"torn", &[1; 50]);
            log.write().unwrap();
        }
        // Shard 1's last record torn: the others untouched.
        let f = std::fs::OpenOptions::new().write(true).open(log_path(&d, "ringmq.db", 1)).unwrap();
        f.set_len(16 + 18 + 10).unwrap();
        drop(f);
        let loaded = load_all(&d, "ringmq.db", 4).unwrap();
        assert_eq!(loaded.iter().map(|l| l.live.len()).collect::<Vec<_>>(), vec![2, 1, 2, 0]);
        assert!(loaded[1].recovered.problem.is_some() && loaded[0].recovered.problem.is_none());
        std::fs::remove_dir_all(d.parent().unwrap()).unwrap();
    }
}
