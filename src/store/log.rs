//! One shard's store: an append-only log of checksummed key-value records, with the live
//! state kept beside it in memory so that compaction (a snapshot of the live records, then
//! a rename over the log) needs nothing from the shard.
//!
//! ```text
//! file    = header record*
//! header  = "RINGMQ\0L" (8 bytes) version (u32 LE) reserved (u32 LE, 0)
//! record  = length (u32 LE) crc32c (u32 LE, of the body) body
//! body    = 1 key_len (u16 LE) key value        a put: the key now holds the value
//!         | 2 key_len (u16 LE) key              a delete
//! ```
//!
//! The file is zero-filled ahead of the records in steps of [`PREALLOCATE_BYTES`], so that
//! a sync after an append is a data sync alone (a file that grows needs its size journaled
//! too: twice the time per fsync on this machine's ext4). A record length of zero, then,
//! is the end of the log.
//!
//! A crash leaves at most a torn last write: recovery reads records until the first one
//! that is incomplete or whose checksum fails, cuts the file there and says so. A file
//! whose header is not ours, or of a version this build cannot read, is set aside (renamed
//! with `.unreadable-<ms>`) and an empty log started: the broker starts, and the file is
//! still there for a person to look at.
//!
//! This file uses `std` alone so that the benchmark crate in `scripts/persistence-bench`
//! measures this very code (it includes the file by path).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The first 8 bytes of every log file.
pub const MAGIC: &[u8; 8] = b"RINGMQ\0L";
/// The record format this build writes and reads. A change to what a record's body holds
/// (in `records.rs`) or to the framing above bumps it.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: u64 = 16;
const RECORD_HEADER_BYTES: usize = 8;
/// The largest record body: a key and a value. Above MQTT's largest packet (256 MiB) plus
/// room for what a record says about the message.
pub const RECORD_BYTES_MAX: usize = (256 << 20) + (64 << 10);
/// How far ahead of its records the file is zero-filled.
pub const PREALLOCATE_BYTES: u64 = 8 << 20;
/// Below this size the log is never compacted: rewriting a small file buys nothing.
pub const COMPACT_MIN_BYTES: u64 = 4 << 20;
/// The log is compacted once it is this many times the size of its live records.
pub const COMPACT_RATIO: u64 = 2;

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// What [`Log::open`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Records read (puts and deletes).
    pub records: u64,
    /// Bytes cut from the end: a torn or corrupt tail.
    pub cut_bytes: u64,
    /// Why the tail was cut, or why the file was set aside; `None` when all was well.
    pub problem: Option<String>,
}

/// An append-only log and its live records.
pub struct Log {
    path: PathBuf,
    file: File,
    /// Bytes of records in the file, header included, as written (not necessarily synced).
    len: u64,
    /// Bytes in the file: the records, then zeros.
    allocated: u64,
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Bytes the live records take as records: what a compacted file would hold.
    live_bytes: u64,
    /// Records staged and not yet written.
    staged: Vec<u8>,
}

impl Log {
    /// Opens the log at `path` (creating it), reads its records into the live state and
    /// cuts a torn or corrupt tail.
    pub fn open(path: &Path) -> io::Result<(Log, Recovered)> {
        // A compaction that did not finish left its snapshot beside the log: the log
        // itself is whole (the rename is the commit point), so the snapshot goes.
        let tmp = snapshot_path(path);
        if tmp.exists() {
            std::fs::remove_file(&tmp)?;
        }
        let mut recovered = Recovered::default();
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(path)?.read_to_end(&mut bytes)?;
        }
        if !bytes.is_empty() && header_problem(&bytes).is_some() {
            let why = header_problem(&bytes).unwrap_or_default();
            let aside = path.with_extension(format!("unreadable-{}", unix_ms()));
            std::fs::rename(path, &aside)?;
            recovered.problem = Some(format!("{why}; set aside as {}", aside.display()));
            bytes.clear();
        }
        let mut log = Log {
            path: path.to_path_buf(),
            file: OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?,
            len: 0,
            allocated: 0,
            live: BTreeMap::new(),
            live_bytes: 0,
            staged: Vec::new(),
        };
        if bytes.is_empty() {
            log.file.set_len(0)?;
            log.file.write_all(&header())?;
            log.len = HEADER_BYTES;
            log.allocated = HEADER_BYTES;
            return Ok((log, recovered));
        }
        let mut at = HEADER_BYTES as usize;
        while at < bytes.len() {
            match read_record(&bytes[at..]) {
                Ok((body, used)) => {
                    log.apply(body);
                    recovered.records += 1;
                    at += used;
                }
                Err(_) if bytes[at..].iter().all(|b| *b == 0) => break,
                Err(why) => {
                    recovered.cut_bytes = (bytes.len() - at) as u64;
                    recovered.problem = Some(format!("{why} at byte {at}"));
                    break;
                }
            }
        }
        log.len = at as u64;
        log.allocated = bytes.len() as u64;
        if recovered.cut_bytes > 0 {
            log.file.set_len(log.len)?;
            log.file.sync_all()?;
            log.allocated = log.len;
        }
        Ok((log, recovered))
    }

    /// The live records, in key order.
    pub fn live(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.live
    }

    /// Bytes of records (written, not necessarily synced, and staged).
    pub fn file_bytes(&self) -> u64 {
        self.len + self.staged.len() as u64
    }

    /// Stages a put: `key` holds `value` once written.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        assert!(key.len() <= u16::MAX as usize, "a store key fits in 64 KiB");
        let start = self.staged.len();
        self.staged.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
        self.staged.push(TAG_PUT);
        self.staged.extend_from_slice(&(key.len() as u16).to_le_bytes());
        self.staged.extend_from_slice(key);
        self.staged.extend_from_slice(value);
        self.seal(start);
        let body_start = start + RECORD_HEADER_BYTES;
        let body = self.staged[body_start..].to_vec();
        self.apply(&body);
    }

    /// Stages a delete of `key` (nothing when the key holds nothing).
    pub fn delete(&mut self, key: &[u8]) {
        if !self.live.contains_key(key) {
            return;
        }
        let start = self.staged.len();
        self.staged.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
        self.staged.push(TAG_DELETE);
        self.staged.extend_from_slice(&(key.len() as u16).to_le_bytes());
        self.staged.extend_from_slice(key);
        self.seal(start);
        let body = self.staged[start + RECORD_HEADER_BYTES..].to_vec();
        self.apply(&body);
    }

    /// Hands the staged records to the kernel in one write: a crash of the process alone
    /// loses none of them from then on.
    pub fn write(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let end = self.len + self.staged.len() as u64;
        if end > self.allocated {
            let target = end.div_ceil(PREALLOCATE_BYTES) * PREALLOCATE_BYTES;
            let zeros = vec![0u8; 1 << 20];
            while self.allocated < target {
                let n = (target - self.allocated).min(zeros.len() as u64) as usize;
                self.file.write_all_at(&zeros[..n], self.allocated)?;
                self.allocated += n as u64;
            }
        }
        self.file.write_all_at(&self.staged, self.len)?;
        self.len = end;
        self.staged.clear();
        Ok(())
    }

    /// Makes what was written durable (fdatasync): it survives a power loss too.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Whether the file has grown enough past its live records to be worth compacting.
    pub fn needs_compaction(&self) -> bool {
        self.len >= COMPACT_MIN_BYTES && self.len > COMPACT_RATIO * (HEADER_BYTES + self.live_bytes)
    }

    /// Rewrites the log as its live records alone: a snapshot written and synced beside
    /// it, renamed over it, the directory synced. A crash before the rename keeps the old
    /// log whole; after it, the new one.
    pub fn compact(&mut self) -> io::Result<()> {
        self.write()?;
        let tmp = snapshot_path(&self.path);
        let mut out = io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        out.write_all(&header())?;
        let mut len = HEADER_BYTES;
        let mut record = Vec::new();
        for (key, value) in &self.live {
            record.clear();
            record.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
            record.push(TAG_PUT);
            record.extend_from_slice(&(key.len() as u16).to_le_bytes());
            record.extend_from_slice(key);
            record.extend_from_slice(value);
            seal(&mut record, 0);
            out.write_all(&record)?;
            len += record.len() as u64;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            // The rename is durable once the directory is.
            File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?.sync_all()?;
        }
        self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.len = len;
        self.allocated = len;
        Ok(())
    }

    /// Fills in the length and checksum of the record staged at `start`.
    fn seal(&mut self, start: usize) {
        let body_len = self.staged.len() - start - RECORD_HEADER_BYTES;
        assert!(body_len <= RECORD_BYTES_MAX, "a store record fits in RECORD_BYTES_MAX");
        seal(&mut self.staged, start);
    }

    /// Applies one record's body to the live state.
    fn apply(&mut self, body: &[u8]) {
        let key_len = u16::from_le_bytes([body[1], body[2]]) as usize;
        let key = &body[3..3 + key_len];
        let record_bytes = |value_len: usize| (RECORD_HEADER_BYTES + 3 + key_len + value_len) as u64;
        let old = match body[0] {
            TAG_PUT => {
                let value = body[3 + key_len..].to_vec();
                self.live_bytes += record_bytes(value.len());
                self.live.insert(key.to_vec(), value)
            }
            _ => self.live.remove(key),
        };
        if let Some(old) = old {
            self.live_bytes -= record_bytes(old.len());
        }
    }
}

/// The checksum and length of the record at `start` in `buf`.
fn seal(buf: &mut [u8], start: usize) {
    let body = &buf[start + RECORD_HEADER_BYTES..];
    let (len, crc) = (body.len() as u32, crc32c(body));
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// One record from the front of `bytes`: its body and the bytes it took, or why it cannot
/// be read.
fn read_record(bytes: &[u8]) -> Result<(&[u8], usize), &'static str> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err("torn record header");
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap_or_default());
    if !(3..=RECORD_BYTES_MAX).contains(&len) {
        return Err("impossible record length");
    }
    let Some(body) = bytes.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len) else {
        return Err("torn record");
    };
    if crc32c(body) != crc {
        return Err("checksum mismatch");
    }
    let key_len = u16::from_le_bytes([body[1], body[2]]) as usize;
    let well_formed = match body[0] {
        TAG_PUT => 3 + key_len <= len,
        TAG_DELETE => 3 + key_len == len,
        _ => false,
    };
    if !well_formed {
        return Err("malformed record");
    }
    Ok((body, RECORD_HEADER_BYTES + len))
}

fn header() -> [u8; HEADER_BYTES as usize] {
    let mut h = [0; HEADER_BYTES as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Why a file's header cannot be read by this build, if it cannot.
fn header_problem(bytes: &[u8]) -> Option<String> {
    if bytes.len() < HEADER_BYTES as usize || &bytes[..8] != MAGIC {
        return Some("not a ringmq store file".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    (version != FORMAT_VERSION)
        .then(|| format!("store format version {version}, this build reads version {FORMAT_VERSION}"))
}

fn snapshot_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".compacting");
    PathBuf::from(p)
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// CRC-32C (Castagnoli), the checksum of iSCSI, ext4 and most logs, eight bytes at a time
/// (slicing-by-8: eight tables of 256 entries). Recovery checks every record, so this is
/// most of its time: a byte at a time it took 1.45 s for 1.1 million records here.
pub fn crc32c(bytes: &[u8]) -> u32 {
    const TABLES: [[u32; 256]; 8] = {
        let mut t = [[0u32; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0x82F6_3B78 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[0][i] = c;
            i += 1;
        }
        let mut i = 0;
        while i < 256 {
            let mut s = 1;
            while s < 8 {
                let prev = t[s - 1][i];
                t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
                s += 1;
            }
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        crc = TABLES[7][(lo & 0xFF) as usize]
            ^ TABLES[6][((lo >> 8) & 0xFF) as usize]
            ^ TABLES[5][((lo >> 16) & 0xFF) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][c[4] as usize]
            ^ TABLES[2][c[5] as usize]
            ^ TABLES[1][c[6] as usize]
            ^ TABLES[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = TABLES[0][((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory per test: tests run in parallel.
    fn dir() -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("ringmq-log-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn crc32c_matches_the_published_check_value_and_a_byte_at_a_time() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // RFC 3720 B.4: 32 bytes of zeros, of ones, ascending.
        assert_eq!(crc32c(&[0; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFF; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(&(0..32).collect::<Vec<u8>>()), 0x46DD_794E);
        let bitwise = |bytes: &[u8]| {
            let mut crc = !0u32;
            for &b in bytes {
                crc ^= b as u32;
                for _ in 0..8 {
                    crc = if crc & 1 != 0 { 0x82F6_3B78 ^ (crc >> 1) } else { crc >> 1 };
                }
            }
            !crc
        };
        let data: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 999, 1000] {
            assert_eq!(crc32c(&data[..len]), bitwise(&data[..len]), "length {len}");
        }
    }

    #[test]
    fn puts_and_deletes_survive_a_reopen() {
        let d = dir();
        let path = d.join("shard-0.log");
        {
            let (mut log, rec) = Log::open(&path).unwrap();
            assert_eq!(rec, Recovered::default());
            log.put(b"a", b"1");
            log.put(b"b", b"2");
            log.put(b"a", b"3");
            log.delete(b"b");
            log.put(b"c", b"");
            log.write().unwrap();
        }
        let (log, rec) = Log::open(&path).unwrap();
        assert_eq!(rec.records, 5);
        assert_eq!(rec.problem, None);
        let live: Vec<_> = log.live().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(live, vec![(b"a".to_vec(), b"3".to_vec()), (b"c".to_vec(), vec![])]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_and_what_came_before_is_kept() {
        let d = dir();
        let path = d.join("shard-0.log");
        {
            let (mut log, _) = Log::open(&path).unwrap();
            log.put(b"kept", b"yes");
            log.put(b"torn", &[7; 100]);
            log.write().unwrap();
        }
        // The header, then "kept" (8 + 3 + 4 + 3 bytes), then "torn" (8 + 3 + 4 + 100); zeros follow.
        let end = 16 + 18 + 115;
        for (cut, zeroed) in [(1u64, false), (50, true), (107, false), (114, true), (115, true)] {
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            if zeroed {
                // The last write reached the disk in part: zeros where the rest should be.
                f.write_all_at(&vec![0; cut as usize], end - cut).unwrap();
            } else {
                f.set_len(end - cut).unwrap();
            }
            drop(f);
            let (mut log, rec) = Log::open(&path).unwrap();
            assert_eq!(rec.records, 1, "cut {cut}");
            // A record that is zeros throughout never reached the disk: a clean end.
            let clean = zeroed && cut == 115;
            assert_eq!(rec.cut_bytes > 0 && rec.problem.is_some(), !clean, "{rec:?}");
            assert_eq!(log.live().get(&b"kept"[..]).map(Vec::as_slice), Some(&b"yes"[..]));
            assert!(!log.live().contains_key(&b"torn"[..]));
            // Appending after the cut yields a readable file again.
            log.put(b"torn", &[7; 100]);
            log.write().unwrap();
            drop(log);
            let (log, rec) = Log::open(&path).unwrap();
            assert_eq!((rec.records, rec.cut_bytes), (2, 0));
            assert_eq!(log.live().len(), 2);
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_flipped_byte_is_caught_by_the_checksum() {
        let d = dir();
        let path = d.join("shard-0.log");
        {
            let (mut log, _) = Log::open(&path).unwrap();
            for i in 0..10u8 {
                log.put(&[i], &[i; 20]);
            }
            log.write().unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        // Record i starts at 16 + i * 32 (8 header, 3 tag and key length, 1 key, 20 value).
        bytes[16 + 6 * 32 + 20] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (log, rec) = Log::open(&path).unwrap();
        assert_eq!(rec.records, 6);
        assert!(rec.problem.as_deref().unwrap().contains("checksum"), "{rec:?}");
        assert_eq!(log.live().len(), 6);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_foreign_or_newer_file_is_set_aside_not_refused() {
        let d = dir();
        let path = d.join("shard-0.log");
        let mut newer = header().to_vec();
        newer[8] = 99;
        for bytes in [b"mosquitto db".to_vec(), newer] {
            std::fs::write(&path, &bytes).unwrap();
            let (log, rec) = Log::open(&path).unwrap();
            assert!(rec.problem.as_deref().unwrap().contains("set aside"), "{rec:?}");
            assert!(log.live().is_empty());
        }
        let aside = std::fs::read_dir(&d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("unreadable"));
        assert!(aside.count() >= 1);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn compaction_keeps_the_live_records_and_bounds_the_file() {
        let d = dir();
        let path = d.join("shard-0.log");
        let (mut log, _) = Log::open(&path).unwrap();
        let value = vec![1u8; 1000];
        let mut compactions = 0;
        for i in 0..20_000u32 {
            log.put(&i.to_be_bytes(), &value);
            if i >= 10 {
                log.delete(&(i - 10).to_be_bytes());
            }
            log.write().unwrap();
            if log.needs_compaction() {
                log.compact().unwrap();
                compactions += 1;
            }
        }
        assert!(compactions > 0);
        assert!(log.file_bytes() < COMPACT_MIN_BYTES * 2, "{}", log.file_bytes());
        // A snapshot left over from an interrupted compaction is ignored and removed.
        std::fs::write(snapshot_path(&path), b"half a snapshot").unwrap();
        drop(log);
        let (log, rec) = Log::open(&path).unwrap();
        assert_eq!(rec.problem, None);
        let keys: Vec<u32> =
            log.live().keys().map(|k| u32::from_be_bytes(k[..].try_into().unwrap())).collect();
        assert_eq!(keys, (19_990..20_000).collect::<Vec<_>>());
        assert!(!snapshot_path(&path).exists());
        std::fs::remove_dir_all(d).unwrap();
    }

    mod model {
        use super::super::*;
        use super::dir;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Put(u8, Vec<u8>),
            Delete(u8),
            /// Write what is staged (a group).
            Write,
            Compact,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0u8..16, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(k, v)| Op::Put(k, v)),
                2 => (0u8..16).prop_map(Op::Delete),
                2 => Just(Op::Write),
                1 => Just(Op::Compact),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            /// After any sequence of puts, deletes, writes and compactions, reopening gives
            /// the model's state as of the last write; cutting the file anywhere after that
            /// gives the state as of some earlier group, never a panic or a refusal.
            #[test]
            fn the_log_recovers_what_was_written_and_a_cut_gives_an_earlier_state(
                ops in proptest::collection::vec(op(), 1..60),
                cut in any::<proptest::sample::Index>(),
            ) {
                let d = dir();
                let path = d.join("shard-0.log");
                let (mut log, _) = Log::open(&path).unwrap();
                let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
                // The state after each record, by the file's length with it; and the
                // length written so far (staged records are not in the file).
                let mut states = vec![(log.file_bytes(), model.clone())];
                let mut written_len = log.file_bytes();
                for op in ops {
                    match op {
                        Op::Put(k, v) => {
                            log.put(&[k], &v);
                            model.insert(vec![k], v);
                        }
                        Op::Delete(k) => {
                            log.delete(&[k]);
                            model.remove(&vec![k]);
                        }
                        Op::Write => {
                            log.write().unwrap();
                            written_len = log.file_bytes();
                        }
                        Op::Compact => {
                            log.compact().unwrap();
                            // A compaction rewrites the file: earlier lengths mean nothing.
                            written_len = log.file_bytes();
                            states.clear();
                        }
                    }
                    if states.last().is_none_or(|(len, _)| *len != log.file_bytes()) {
                        states.push((log.file_bytes(), model.clone()));
                    }
                }
                let state_at = |at: u64| states.iter().rev().find(|(len, _)| *len <= at).map(|(_, s)| s.clone());
                drop(log);
                let (log, rec) = Log::open(&path).unwrap();
                prop_assert_eq!(Some(log.live().clone()), state_at(written_len));
                prop_assert!(rec.problem.is_none());
                drop(log);
                // Cut anywhere from the first record after the last compaction to the
                // end: the state after the last whole record before the cut.
                let first = states[0].0;
                let at = first + cut.index((written_len - first + 1) as usize) as u64;
                let f = OpenOptions::new().write(true).open(&path).unwrap();
                f.set_len(at).unwrap();
                drop(f);
                let (log, rec) = Log::open(&path).unwrap();
                prop_assert_eq!(Some(log.live().clone()), state_at(at));
                prop_assert_eq!(rec.problem.is_some(), states.iter().all(|(len, _)| *len != at));
                std::fs::remove_dir_all(d).unwrap();
            }
        }
    }
}
