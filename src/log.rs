//! Log lines as Mosquitto writes them (`1700000000: New connection from ...`), to the
//! destinations of `log_dest` (stderr, stdout, files, syslog), for the types of
//! `log_type`.
//!
//! A line never blocks the thread that logs it: it is formatted there and pushed onto a
//! bounded queue, and one writer thread writes it out. When the queue is full (a slow or
//! stuck destination: a full pipe, a slow disk) the line is dropped and counted, and the
//! count is logged once lines flow again. A destination that fails (a closed pipe, a full
//! disk) loses its lines and nothing else. Whether a type is logged is one relaxed load,
//! so disabled lines (`-v`'s per-packet lines, by default) cost nothing.

use crate::config::{LogConfig, LogDest};
use crate::protocol::ReasonCode;
use crossbeam_queue::ArrayQueue;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Lines waiting for the writer; beyond this they are dropped and counted.
const QUEUE_LINES: usize = 16 * 1024;
/// How long [`flush`] waits for the writer to empty the queue (at exit).
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Mosquitto's log types. Each is a bit of the enabled set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[repr(u8)]
pub enum Level {
    Error = 0,
    Warning = 1,
    /// Start-up, listeners, shutdown, and connections (Mosquitto logs those as notices).
    Notice = 2,
    Information = 3,
    Subscribe = 4,
    Unsubscribe = 5,
    Websockets = 6,
    /// Every packet: written with `-v`.
    Debug = 7,
}

impl Level {
    fn bit(self) -> u32 {
        1 << self as u32
    }

    fn syslog_priority(self) -> libc::c_int {
        match self {
            Level::Error => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Notice => libc::LOG_NOTICE,
            Level::Information => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        }
    }
}

/// Mosquitto's default: error, warning, notice, information.
const DEFAULT_MASK: u32 = 0b1111;
static MASK: AtomicU32 = AtomicU32::new(DEFAULT_MASK);
static CONNECTION_MESSAGES: AtomicBool = AtomicBool::new(true);

/// Writes every type from `Error` down to `level` (in [`Level`]'s order) and no other:
/// `set_level(Level::Warning)` keeps errors and warnings, `set_level(Level::Debug)` is
/// `log_type all`. For embedders and tests; the binary uses [`configure`].
pub fn set_level(level: Level) {
    MASK.store((level.bit() << 1) - 1, Ordering::Relaxed);
}

/// Whether lines of this type are written.
#[inline]
pub fn enabled(level: Level) -> bool {
    MASK.load(Ordering::Relaxed) & level.bit() != 0
}

/// Whether connections and disconnections are logged (`connection_messages`).
#[inline]
pub fn connection_messages() -> bool {
    CONNECTION_MESSAGES.load(Ordering::Relaxed)
}

/// Applies logging options: the types at once, the destinations in the writer before
/// the next line it writes (files are reopened: this is also what SIGHUP does).
pub fn configure(config: &LogConfig) {
    let t = &config.types;
    let mask = [
        (t.error, Level::Error),
        (t.warning, Level::Warning),
        (t.notice, Level::Notice),
        (t.information, Level::Information),
        (t.subscribe, Level::Subscribe),
        (t.unsubscribe, Level::Unsubscribe),
        (t.websockets, Level::Websockets),
        (t.debug, Level::Debug),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |m, (_, l)| m | l.bit());
    MASK.store(mask, Ordering::Relaxed);
    CONNECTION_MESSAGES.store(config.connection_messages, Ordering::Relaxed);
    let w = writer();
    *w.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
    w.wake();
}

/// Queues one line (the `log!` macro calls it once the type is enabled).
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    let line = Line { level, time: SystemTime::now(), text: args.to_string() };
    let w = writer();
    if w.queue.push(line).is_err() {
        w.dropped.fetch_add(1, Ordering::Relaxed);
    } else {
        w.wake();
    }
}

/// Lines dropped so far because the queue was full.
pub fn dropped_lines() -> u64 {
    writer().dropped_total.load(Ordering::Relaxed)
}

/// Waits (up to 2 s) until every queued line is written: before the process exits.
pub fn flush() {
    let Some(w) = WRITER.get() else { return };
    let deadline = Instant::now() + FLUSH_WAIT;
    w.wake();
    while (!w.queue.is_empty() || w.busy.load(Ordering::Acquire)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Logs a line of a type: `log!(Notice, "Opening listen socket on {}", addr)`.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::write($crate::log::Level::$level, format_args!($($arg)*));
        }
    };
}

/// Logs a connection or disconnection (a notice, as in Mosquitto), unless
/// `connection_messages false`.
#[macro_export]
macro_rules! log_connection {
    ($($arg:tt)*) => {
        if $crate::log::connection_messages() && $crate::log::enabled($crate::log::Level::Notice) {
            $crate::log::write($crate::log::Level::Notice, format_args!($($arg)*));
        }
    };
}

/// A reason code as Mosquitto names it in its log (`mosquitto_reason_string`), e.g.
/// "Not authorized" for 0x87.
pub fn reason_name(code: ReasonCode) -> &'static str {
    match code.0 {
        0x00 => "Success",
        0x01 => "Granted QoS 1",
        0x02 => "Granted QoS 2",
        0x04 => "Disconnect with Will Message",
        0x10 => "No matching subscribers",
        0x11 => "No subscription existed",
        0x18 => "Continue authentication",
        0x19 => "Re-authenticate",
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x89 => "Server busy",
        0x8A => "Banned",
        0x8B => "Server shutting down",
        0x8C => "Bad authentication method",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x8F => "Topic Filter invalid",
        0x90 => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x92 => "Packet Identifier not found",
        0x93 => "Receive Maximum exceeded",
        0x94 => "Topic Alias invalid",
        0x95 => "Packet too large",
        0x96 => "Message rate too high",
        0x97 => "Quota exceeded",
        0x98 => "Administrative action",
        0x99 => "Payload format invalid",
        0x9A => "Retain not supported",
        0x9B => "QoS not supported",
        0x9C => "Use another server",
        0x9D => "Server moved",
        0x9E => "Shared Subscriptions not supported",
        0x9F => "Connection rate exceeded",
        0xA0 => "Maximum connect time",
        0xA1 => "Subscription identifiers not supported",
        0xA2 => "Wildcard Subscriptions not supported",
        _ => "Unknown reason",
    }
}

struct Line {
    level: Level,
    time: SystemTime,
    text: String,
}

/// The queue and the thread that empties it.
struct Writer {
    queue: ArrayQueue<Line>,
    /// Lines dropped since the writer last said so.
    dropped: AtomicU64,
    dropped_total: AtomicU64,
    /// New options for the writer's destinations.
    pending: Mutex<Option<LogConfig>>,
    thread: OnceLock<std::thread::Thread>,
    /// The writer is parked (or about to be): a producer must unpark it.
    sleeping: AtomicBool,
    /// The writer holds a line it has not finished writing.
    busy: AtomicBool,
}

static WRITER: OnceLock<Writer> = OnceLock::new();

fn writer() -> &'static Writer {
    WRITER.get_or_init(|| {
        let handle = std::thread::Builder::new().name("ringmq-log".into()).spawn(run_writer);
        if let Err(e) = handle {
            // Without a thread the lines wait in the queue, and are dropped once it fills.
            let _ = writeln!(std::io::stderr(), "Error: cannot start the log writer: {e}");
        }
        Writer {
            queue: ArrayQueue::new(QUEUE_LINES),
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            pending: Mutex::new(None),
            thread: OnceLock::new(),
            sleeping: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        }
    })
}

impl Writer {
    fn wake(&self) {
        if self.sleeping.load(Ordering::Acquire) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }
}

fn run_writer() {
    let w = writer();
    let _ = w.thread.set(std::thread::current());
    let mut dests = Destinations::open(&LogConfig::default());
    loop {
        if let Some(cfg) = w.pending.lock().unwrap_or_else(|e| e.into_inner()).take() {
            dests = Destinations::open(&cfg);
        }
        w.busy.store(true, Ordering::Release);
        let mut wrote = false;
        while let Some(line) = w.queue.pop() {
            dests.write(&line);
            wrote = true;
        }
        let dropped = w.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            w.dropped_total.fetch_add(dropped, Ordering::Relaxed);
            let text =
                format!("Warning: {dropped} log lines were dropped: the log destination did not keep up.");
            dests.write(&Line { level: Level::Warning, time: SystemTime::now(), text });
        }
        w.busy.store(false, Ordering::Release);
        if wrote {
            continue;
        }
        w.sleeping.store(true, Ordering::Release);
        let idle = w.queue.is_empty() && w.dropped.load(Ordering::Relaxed) == 0 && !has_pending(w);
        if idle {
            std::thread::park_timeout(Duration::from_millis(500));
        }
        w.sleeping.store(false, Ordering::Release);
    }
}

fn has_pending(w: &Writer) -> bool {
    w.pending.lock().map(|p| p.is_some()).unwrap_or(false)
}

/// The open destinations and how lines are stamped.
struct Destinations {
    stderr: bool,
    stdout: bool,
    files: Vec<std::fs::File>,
    syslog: bool,
    timestamp: bool,
    timestamp_format: Option<CString>,
    buf: Vec<u8>,
}

impl Destinations {
    fn open(cfg: &LogConfig) -> Destinations {
        let mut d = Destinations {
            stderr: false,
            stdout: false,
            files: Vec::new(),
            syslog: false,
            timestamp: cfg.timestamp,
            timestamp_format: cfg.timestamp_format.as_deref().and_then(|f| CString::new(f).ok()),
            buf: Vec::with_capacity(256),
        };
        for dest in &cfg.dests {
            match dest {
                LogDest::Stderr => d.stderr = true,
                LogDest::Stdout => d.stdout = true,
                LogDest::File(path) => {
                    match std::fs::OpenOptions::new().create(true).append(true).open(path) {
                        Ok(f) => d.files.push(f),
                        Err(e) => {
                            // Where else to say it: standard error, as Mosquitto does.
                            let msg = format!("Error: unable to open log file {}: {}.\n", path.display(), e);
                            write_fd(2, msg.as_bytes());
                        }
                    }
                }
                LogDest::Syslog => d.syslog = true,
            }
        }
        if d.syslog {
            let facility = match cfg.syslog_facility {
                None => libc::LOG_DAEMON,
                Some(n) => libc::LOG_LOCAL0 + ((n as libc::c_int) << 3),
            };
            static IDENT: &[u8] = b"ringmq\0";
            // SAFETY: IDENT is a static NUL-terminated string, as openlog keeps the pointer.
            unsafe { libc::openlog(IDENT.as_ptr().cast(), libc::LOG_PID, facility) };
        }
        d
    }

    fn write(&mut self, line: &Line) {
        self.buf.clear();
        if self.timestamp {
            self.stamp(line.time);
            self.buf.extend_from_slice(b": ");
        }
        self.buf.extend_from_slice(line.text.as_bytes());
        self.buf.push(b'\n');
        if self.stderr {
            write_fd(2, &self.buf);
        }
        if self.stdout {
            write_fd(1, &self.buf);
        }
        for f in &self.files {
            write_fd(f.as_raw_fd(), &self.buf);
        }
        if self.syslog {
            if let Ok(text) = CString::new(line.text.replace('\0', " ")) {
                // SAFETY: a constant "%s" format and one NUL-terminated argument.
                unsafe { libc::syslog(line.level.syslog_priority(), c"%s".as_ptr(), text.as_ptr()) };
            }
        }
    }

    /// The timestamp: seconds since 1970, or `log_timestamp_format` in local time.
    fn stamp(&mut self, time: SystemTime) {
        let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let Some(fmt) = &self.timestamp_format else {
            let _ = write!(self.buf, "{secs}");
            return;
        };
        let mut out = [0u8; 256];
        // SAFETY: localtime_r fills a zeroed tm; strftime writes at most out.len() bytes
        // and returns how many.
        let n = unsafe {
            let t = secs as libc::time_t;
            let mut tm: libc::tm = std::mem::zeroed();
            libc::localtime_r(&t, &mut tm);
            libc::strftime(out.as_mut_ptr().cast(), out.len(), fmt.as_ptr(), &tm)
        };
        self.buf.extend_from_slice(&out[..n]);
    }
}

/// Writes all of `bytes`, or gives up on the first error (EPIPE on a closed pipe, ENOSPC
/// on a full disk): the line is lost, nothing else.
fn write_fd(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing from a live slice to a descriptor this process holds open.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        } else {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_have_mosquittos_names() {
        assert_eq!(reason_name(ReasonCode::NOT_AUTHORIZED), "Not authorized");
        assert_eq!(reason_name(ReasonCode(0x97)), "Quota exceeded");
    }

    #[test]
    fn timestamps_follow_log_timestamp_format() {
        let cfg = LogConfig { timestamp_format: Some("%Y|%%".into()), dests: vec![], ..LogConfig::default() };
        let mut d = Destinations::open(&cfg);
        d.stamp(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 400));
        assert_eq!(d.buf, b"1971|%");
        let mut plain = Destinations::open(&LogConfig { dests: vec![], ..LogConfig::default() });
        plain.stamp(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(plain.buf, b"1700000000");
    }

    #[test]
    fn a_file_destination_gets_the_lines() {
        let path = std::env::temp_dir().join(format!("ringmq-log-{}.log", std::process::id()));
        let cfg =
            LogConfig { dests: vec![LogDest::File(path.clone())], timestamp: false, ..LogConfig::default() };
        let mut d = Destinations::open(&cfg);
        d.write(&Line { level: Level::Notice, time: SystemTime::now(), text: "hello".into() });
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
        let _ = std::fs::remove_file(&path);
    }
}
