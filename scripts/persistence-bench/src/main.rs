//! Measures the three candidate stores for one shard on this machine, the way the broker
//! would use them, and prints one JSON object per measurement:
//!
//! - `write`: QoS 1 messages stored then deleted (acknowledged by their subscriber) 100
//!   messages later, committed in groups of `batch` with one fsync per group: messages/s
//!   and commits/s.
//! - `recover`: a store holding `retained` retained messages and `queued` queued messages
//!   is opened and every record read into memory, as the broker does at start-up.
//! - space: the store's bytes on disk after each.
//!
//! The stores take turns within each round (in a rotating order), so that another
//! process's disk traffic, which on ext4 slows every fsync (one journal for all), hits
//! all three alike.
//!
//! Usage: persistence-bench DIR [rounds] [messages] [retained] [queued]

#[path = "../../../src/store/log.rs"]
#[allow(dead_code)]
mod log;

use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bytes of a stored QoS 1 message: topic, payload of 64 bytes, ids and expiry.
const MESSAGE_BYTES: usize = 120;
/// A message is deleted this many messages after it was stored (its PUBACK came back).
const ACK_LAG: u64 = 100;

trait Store {
    /// Stores the puts and deletes of one group and, with `sync`, makes them durable.
    fn commit(&mut self, puts: &[(Vec<u8>, Vec<u8>)], deletes: &[Vec<u8>], sync: bool);
    /// Reads every record (as recovery does) and gives back how many there were.
    fn read_all(&mut self) -> usize;
}

struct RingLog(log::Log);

impl Store for RingLog {
    fn commit(&mut self, puts: &[(Vec<u8>, Vec<u8>)], deletes: &[Vec<u8>], sync: bool) {
        for (k, v) in puts {
            self.0.put(k, v);
        }
        for k in deletes {
            self.0.delete(k);
        }
        self.0.write().unwrap();
        if sync {
            self.0.sync().unwrap();
        }
        if self.0.needs_compaction() {
            self.0.compact().unwrap();
        }
    }
    fn read_all(&mut self) -> usize {
        self.0.live().len()
    }
}

struct Fjall {
    keyspace: fjall::Keyspace,
    partition: fjall::PartitionHandle,
}

impl Store for Fjall {
    fn commit(&mut self, puts: &[(Vec<u8>, Vec<u8>)], deletes: &[Vec<u8>], sync: bool) {
        let mut batch = self.keyspace.batch();
        for (k, v) in puts {
            batch.insert(&self.partition, k.as_slice(), v.as_slice());
        }
        for k in deletes {
            batch.remove(&self.partition, k.as_slice());
        }
        batch.commit().unwrap();
        if sync {
            self.keyspace.persist(fjall::PersistMode::SyncData).unwrap();
        }
    }
    fn read_all(&mut self) -> usize {
        let mut n = 0;
        for kv in self.partition.iter() {
            let (k, v) = kv.unwrap();
            std::hint::black_box((k.to_vec(), v.to_vec()));
            n += 1;
        }
        n
    }
}

const TABLE: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("shard");

struct Redb(redb::Database);

impl Store for Redb {
    fn commit(&mut self, puts: &[(Vec<u8>, Vec<u8>)], deletes: &[Vec<u8>], sync: bool) {
        let mut txn = self.0.begin_write().unwrap();
        txn.set_durability(if sync { redb::Durability::Immediate } else { redb::Durability::None });
        {
            let mut t = txn.open_table(TABLE).unwrap();
            for (k, v) in puts {
                t.insert(k.as_slice(), v.as_slice()).unwrap();
            }
            for k in deletes {
                t.remove(k.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    fn read_all(&mut self) -> usize {
        use redb::ReadableTable;
        let txn = self.0.begin_read().unwrap();
        let Ok(t) = txn.open_table(TABLE) else { return 0 };
        let mut n = 0;
        for kv in t.iter().unwrap() {
            let (k, v) = kv.unwrap();
            std::hint::black_box((k.value().to_vec(), v.value().to_vec()));
            n += 1;
        }
        n
    }
}

fn open(kind: &str, dir: &Path) -> Box<dyn Store> {
    std::fs::create_dir_all(dir).unwrap();
    match kind {
        "ringmq-log" => Box::new(RingLog(log::Log::open(&dir.join("shard-0.log")).unwrap().0)),
        "fjall" => {
            let keyspace = fjall::Config::new(dir).open().unwrap();
            let partition =
                keyspace.open_partition("shard", fjall::PartitionCreateOptions::default()).unwrap();
            Box::new(Fjall { keyspace, partition })
        }
        "redb" => Box::new(Redb(redb::Database::create(dir.join("shard.redb")).unwrap())),
        _ => unreachable!(),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { dir_bytes(&e.path()) } else { m.len() };
    }
    total
}

/// A payload of `MESSAGE_BYTES` bytes that does not compress (fjall compresses its
/// tables; real payloads are mostly already compact), different for each `seed`.
fn payload(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..MESSAGE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn message_key(seq: u64) -> Vec<u8> {
    let mut k = b"q/client-00042/".to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Stores `messages` messages in groups of `batch`, each deleted ACK_LAG messages later.
fn write(round: u32, kind: &str, root: &Path, messages: u64, batch: u64) {
    let dir = root.join(format!("write-{kind}-{batch}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = open(kind, &dir);
    let start = Instant::now();
    let mut commits = 0u64;
    let mut seq = 0u64;
    while seq < messages {
        let end = (seq + batch).min(messages);
        let puts: Vec<_> = (seq..end).map(|s| (message_key(s), payload(s))).collect();
        let deletes: Vec<_> =
            (seq..end).filter(|s| *s >= ACK_LAG).map(|s| message_key(s - ACK_LAG)).collect();
        store.commit(&puts, &deletes, true);
        commits += 1;
        seq = end;
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = dir_bytes(&dir);
    drop(store);
    println!(
        "{{\"round\":{round},\"test\":\"write\",\"store\":\"{kind}\",\"batch\":{batch},\"messages\":{messages},\"seconds\":{secs:.3},\"messages_per_s\":{:.0},\"commits_per_s\":{:.0},\"disk_bytes\":{bytes}}}",
        messages as f64 / secs,
        commits as f64 / secs
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fills a store with `retained` retained messages and `queued` queued messages, then
/// times opening it and reading every record.
fn recover(round: u32, kind: &str, root: &Path, retained: u64, queued: u64) {
    let dir = root.join(format!("recover-{kind}"));
    let _ = std::fs::remove_dir_all(&dir);
    let fill = Instant::now();
    {
        let mut store = open(kind, &dir);
        let mut puts = Vec::with_capacity(10_000);
        let total = retained + queued;
        for i in 0..total {
            let key = if i < retained {
                format!("r/sensors/building-{}/floor-{}/room-{i}", i % 97, i % 13).into_bytes()
            } else {
                let q = i - retained;
                let mut k = format!("q/client-{:05}/", q % 10_000).into_bytes();
                k.extend_from_slice(&q.to_be_bytes());
                k
            };
            puts.push((key, payload(i)));
            // Durable groups of 10,000: redb reclaims no page before a durable commit.
            if puts.len() == 10_000 || i + 1 == total {
                store.commit(&puts, &[], true);
                puts.clear();
            }
        }
    }
    let fill_secs = fill.elapsed().as_secs_f64();
    let bytes = dir_bytes(&dir);
    // Drop the page cache's copy where allowed, so the read is from disk as after a reboot.
    let cold = std::process::Command::new("sh")
        .args(["-c", "sync && echo 1 > /proc/sys/vm/drop_caches"])
        .status()
        .is_ok_and(|s| s.success());
    let start = Instant::now();
    let mut store = open(kind, &dir);
    let opened = start.elapsed().as_secs_f64();
    let n = store.read_all();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(n as u64, retained + queued);
    println!(
        "{{\"round\":{round},\"test\":\"recover\",\"store\":\"{kind}\",\"records\":{n},\"fill_seconds\":{fill_secs:.2},\"open_seconds\":{opened:.3},\"recover_seconds\":{secs:.3},\"cold_cache\":{cold},\"disk_bytes\":{bytes}}}"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: persistence-bench DIR [rounds] [messages] [retained] [queued]";
    let root = PathBuf::from(args.get(1).expect(usage));
    let arg = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().expect(usage));
    let (rounds, messages) = (arg(2, 5) as u32, arg(3, 20_000));
    let (retained, queued) = (arg(4, 100_000), arg(5, 1_000_000));
    let stores = ["ringmq-log", "fjall", "redb"];
    for round in 1..=rounds {
        let turn = |i: usize| stores[(i + round as usize) % stores.len()];
        for batch in [1, 16, 256] {
            // Batch 1 pays an fsync per message: fewer of them keep the run short.
            let n = if batch == 1 { messages / 10 } else { messages };
            for i in 0..stores.len() {
                write(round, turn(i), &root, n, batch);
            }
        }
        for i in 0..stores.len() {
            recover(round, turn(i), &root, retained, queued);
        }
    }
}
