//! The run's settings, checked once from the command line: everything the threads need,
//! with units in the names.

use crate::cli::{Args, ConnOpts, FileOverrides, MqttVersion, MsgOpts, Rate, Scenario, Turn};
use crate::payload::HEADER_BYTES;
use crate::traffic::Traffic;
use anyhow::{bail, Context};
use ringmq::protocol::{ProtocolVersion, QoS};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Which load shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pairs,
    Fanin,
    Fanout,
    Shared,
    Retained,
    Conn,
    /// A scenario file (`ringmq-loadgen run FILE`).
    File,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pairs => "pairs",
            Kind::Fanin => "fanin",
            Kind::Fanout => "fanout",
            Kind::Shared => "shared",
            Kind::Retained => "retained",
            Kind::Conn => "conn",
            Kind::File => "file",
        }
    }
}

pub use crate::payload::PAYLOAD_BYTES_MAX;

/// A validated run.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    pub scenario: Kind,
    pub broker: SocketAddr,
    pub host: String,
    pub mqtt: MqttVersion,
    #[serde(skip)]
    pub version: ProtocolVersion,
    pub clean_session: bool,
    pub keepalive_secs: u16,
    pub username: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
    pub source_ips: Vec<IpAddr>,
    /// Load threads.
    pub threads: usize,
    pub cpus: Option<Vec<usize>>,
    /// The broker's processes, whose CPU and memory are summed.
    pub broker_pids: Vec<u32>,
    pub out: Option<PathBuf>,
    pub connect_timeout_s: f64,
    /// Topic root of this run: `<prefix>/<run id>`.
    pub topic_root: String,
    /// Client id prefix of this run: `<prefix>-<run id>`.
    pub client_prefix: String,
    pub quiet: bool,
    pub qos: u8,
    pub size_bytes: usize,
    /// Messages per second per publisher; `None` is `--rate max` (closed loop).
    pub rate_per_pub: Option<f64>,
    pub inflight: u16,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub drain_s: f64,
    /// Publishers (the retained scenario has one).
    pub pubs: u32,
    /// Subscribers, or shared-group members.
    pub subs: u32,
    pub group: Option<String>,
    /// Retained messages to store.
    pub retained_n: u32,
    /// Open loop: nanoseconds between two I/O turns of a load thread (`None`: a wake-up
    /// per completion). See `turn.rs`.
    pub turn_ns: Option<u64>,
    /// `conn`: connections, per second, held for.
    pub conn_n: u32,
    pub conn_rate_per_s: f64,
    pub hold_s: f64,
    /// `run FILE`: the file's groups; each publisher's QoS, rate and sizes and each
    /// subscriber's QoS come from them (`qos`, `rate_per_pub`, `size_bytes` are then the
    /// largest).
    pub traffic: Option<Traffic>,
    pub command_line: Vec<String>,
}

impl RunConfig {
    /// Checks the arguments and resolves the broker's address.
    pub fn from_args(args: &Args, command_line: Vec<String>) -> anyhow::Result<RunConfig> {
        let default_msg = MsgOpts {
            qos: 0,
            size: 64,
            rate: Rate::PerSec(1000.0),
            inflight: 64,
            duration: 10.0,
            warmup: 0.0,
            drain: 5.0,
            turn: Turn::Off,
        };
        let file = match &args.scenario {
            Scenario::Run { file, over } => Some(file_options(file, over)?),
            _ => None,
        };
        let (kind, conn, msg, pubs, subs, group, retained_n) = match &args.scenario {
            Scenario::Pairs { n, conn, msg } => (Kind::Pairs, conn, msg, *n, *n, None, 0),
            Scenario::Fanin { pubs, subs, conn, msg } => (Kind::Fanin, conn, msg, *pubs, *subs, None, 0),
            Scenario::Fanout { subs, pubs, conn, msg } => (Kind::Fanout, conn, msg, *pubs, *subs, None, 0),
            Scenario::Shared { pubs, subs, group, conn, msg } => {
                (Kind::Shared, conn, msg, *pubs, *subs, Some(group.clone()), 0)
            }
            Scenario::Retained { n, subs, conn, msg } => (Kind::Retained, conn, msg, 1, *subs, None, *n),
            Scenario::Conn { conn, .. } => (Kind::Conn, conn, &default_msg, 0, 0, None, 0),
            Scenario::Run { .. } => {
                let (conn, msg, t) = file.as_ref().expect("read above");
                let subs = t.subscribers.iter().map(|g| g.count).sum();
                (Kind::File, conn, msg, t.publishers().len() as u32, subs, None, 0)
            }
            Scenario::Report { .. } | Scenario::Matrix { .. } => bail!("not a load scenario"),
        };
        let (conn_n, conn_rate_per_s, hold_s) = match &args.scenario {
            Scenario::Conn { n, rate, hold, .. } => (*n, *rate, *hold),
            _ => (0, 0.0, 0.0),
        };
        if kind == Kind::Conn {
            if conn_n == 0 {
                bail!("conn needs --n of at least 1");
            }
            if !(conn_rate_per_s.is_finite() && conn_rate_per_s > 0.0) {
                bail!("conn needs a --rate above 0 connections per second");
            }
        } else if pubs == 0 || subs == 0 || (kind == Kind::Retained && retained_n == 0) {
            bail!("{} needs at least one publisher and one subscriber (and --n of at least 1)", kind.name());
        }
        if msg.size < HEADER_BYTES {
            bail!("--size must be at least {HEADER_BYTES} bytes: the payload carries publisher id, sequence number and send time");
        }
        if msg.size > PAYLOAD_BYTES_MAX {
            bail!("--size must be at most {PAYLOAD_BYTES_MAX} bytes");
        }
        if kind != Kind::Conn && msg.duration <= 0.0 {
            bail!("--duration must be above 0");
        }
        if let Some(g) = &group {
            if g.is_empty() || g.contains(['/', '+', '#']) {
                bail!("--group must be a non-empty share name without '/', '+' or '#'");
            }
        }
        check_topic_prefix(&conn.topic_prefix)?;
        let broker = resolve(&conn.host, conn.port)?;
        let threads = threads(conn)?;
        let run_id = run_id();
        let rate_per_pub = match msg.rate {
            Rate::PerSec(r) => Some(r),
            Rate::Max => None,
        };
        let turn_ns = match &file {
            // Each publisher at its own rate: count the thread's events from the file.
            Some((_, _, t)) => {
                let per_thread = t.events_per_s() / threads as f64;
                (per_thread >= crate::turn::AUTO_MIN_EVENTS_PER_S).then_some(crate::turn::TURN_NS_DEFAULT)
            }
            None => turn_ns(kind, rate_per_pub, pubs, subs, threads, msg.turn),
        };
        Ok(RunConfig {
            scenario: kind,
            broker,
            host: conn.host.clone(),
            mqtt: conn.mqtt,
            version: conn.mqtt.protocol(),
            clean_session: conn.clean_session,
            keepalive_secs: conn.keepalive,
            username: conn.username.clone(),
            password: conn.password.clone(),
            source_ips: conn.source_ips.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
            threads,
            cpus: conn.cpus.as_ref().map(|c| c.0.clone()),
            broker_pids: dedup(&conn.broker_pid),
            out: conn.out.clone(),
            connect_timeout_s: conn.connect_timeout.max(0.001),
            topic_root: format!("{}/{}", conn.topic_prefix.trim_end_matches('/'), run_id),
            client_prefix: format!("{}-{}", conn.client_id_prefix, run_id),
            quiet: conn.quiet,
            qos: msg.qos,
            size_bytes: msg.size,
            rate_per_pub,
            inflight: msg.inflight,
            duration_s: msg.duration,
            warmup_s: msg.warmup,
            drain_s: msg.drain,
            pubs,
            subs,
            group,
            retained_n,
            turn_ns,
            conn_n,
            conn_rate_per_s,
            hold_s,
            traffic: file.map(|(_, _, t)| t),
            command_line,
        })
    }

    /// The QoS publisher `id` sends at.
    pub fn publisher_qos(&self, id: u32) -> QoS {
        let q = self.traffic.as_ref().map_or(self.qos, |t| t.group_of(id).qos);
        QoS::try_from(q).expect("validated QoS")
    }

    /// Publisher `id`'s messages per second; `None` in closed loop.
    pub fn publisher_rate(&self, id: u32) -> Option<f64> {
        self.traffic.as_ref().map_or(self.rate_per_pub, |t| Some(t.group_of(id).rate))
    }

    /// Publisher `id`'s smallest and largest payload, in bytes.
    pub fn publisher_sizes(&self, id: u32) -> (usize, usize) {
        self.traffic.as_ref().map_or((self.size_bytes, self.size_bytes), |t| t.group_of(id).size.range())
    }

    /// The QoS subscriber `index` subscribes with.
    pub fn subscriber_qos(&self, index: u32) -> u8 {
        self.traffic.as_ref().map_or(self.qos, |t| t.subscriber_group(index).qos)
    }

    /// The QoS as the codec spells it.
    pub fn qos(&self) -> QoS {
        QoS::try_from(self.qos).expect("validated QoS")
    }

    /// Total connections the run opens.
    pub fn connections(&self) -> u64 {
        match self.scenario {
            Kind::Conn => self.conn_n as u64,
            _ => self.pubs as u64 + self.subs as u64,
        }
    }
}

/// The turn of an open-loop publish/subscribe run: `--turn`, or with `auto` 100 µs when a
/// load thread handles [`crate::turn::AUTO_MIN_EVENTS_PER_S`] or more sends and
/// deliveries per second (below that, a wake-up per completion is affordable and adds
/// no latency).
pub fn turn_ns(
    kind: Kind,
    rate_per_pub: Option<f64>,
    pubs: u32,
    subs: u32,
    threads: usize,
    turn: Turn,
) -> Option<u64> {
    let rate = rate_per_pub?;
    let deliveries_per_send = match kind {
        Kind::Pairs | Kind::Shared => 1.0,
        Kind::Fanin | Kind::Fanout => subs as f64,
        Kind::Retained | Kind::Conn | Kind::File => return None,
    };
    match turn {
        Turn::Off => None,
        Turn::Every(secs) => Some(((secs * 1e9) as u64).max(1)),
        Turn::Auto => {
            let per_thread = rate * pubs as f64 * (1.0 + deliveries_per_send) / threads.max(1) as f64;
            (per_thread >= crate::turn::AUTO_MIN_EVENTS_PER_S).then_some(crate::turn::TURN_NS_DEFAULT)
        }
    }
}

/// The connection and message options of a scenario file, the command line's overrides
/// applied, and the file.
fn file_options(
    path: &std::path::Path,
    over: &FileOverrides,
) -> anyhow::Result<(ConnOpts, MsgOpts, Traffic)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let t = Traffic::parse(&text).with_context(|| path.display().to_string())?;
    let secs =
        |d: &Option<crate::traffic::Duration>, default: f64| d.as_ref().map_or(Ok(default), |d| d.secs());
    let mqtt = crate::cli::parse_mqtt(t.mqtt.as_deref().unwrap_or("3.1.1")).map_err(anyhow::Error::msg)?;
    let conn = ConnOpts {
        host: over.host.clone().or(t.host.clone()).unwrap_or_else(|| "127.0.0.1".into()),
        port: over.port.or(t.port).unwrap_or(1883),
        mqtt,
        clean_session: true,
        keepalive: 60,
        username: None,
        password: None,
        source_ips: None,
        cores: over.cores,
        cpus: over.cpus.clone(),
        broker_pid: over.broker_pid.clone(),
        out: over.out.clone(),
        connect_timeout: 10.0,
        topic_prefix: "ringmq-loadgen".into(),
        client_id_prefix: "lg".into(),
        quiet: over.quiet,
    };
    let max_rate = t.publishers.iter().map(|g| g.rate).fold(0.0, f64::max);
    let msg = MsgOpts {
        qos: t.publishers.iter().map(|g| g.qos).max().unwrap_or(0),
        size: t.publishers.iter().map(|g| g.size.range().1).max().unwrap_or(64),
        rate: Rate::PerSec(max_rate),
        inflight: t.inflight.unwrap_or(64).max(1),
        duration: over.duration.map_or_else(|| secs(&t.duration, 10.0), Ok)?,
        warmup: secs(&t.warmup, 2.0)?,
        drain: secs(&t.drain, 5.0)?,
        turn: Turn::Auto,
    };
    Ok((conn, msg, t))
}

/// The PIDs once each, in order: a PID given twice would be counted twice.
fn dedup(pids: &[u32]) -> Vec<u32> {
    let mut out = pids.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

fn check_topic_prefix(p: &str) -> anyhow::Result<()> {
    if p.is_empty() || p.contains(['+', '#']) || p.starts_with('$') {
        bail!("--topic-prefix must be non-empty, without wildcards, and not start with '$'");
    }
    Ok(())
}

fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}:{port}"))?
        .next()
        .with_context(|| format!("{host}:{port} resolves to no address"))
}

fn threads(conn: &ConnOpts) -> anyhow::Result<usize> {
    let n = match (conn.cores, &conn.cpus) {
        (Some(n), _) => n,
        (None, Some(c)) => c.0.len(),
        (None, None) => 1,
    };
    if n == 0 {
        bail!("--cores must be at least 1");
    }
    Ok(n)
}

/// Six hex digits that differ between runs, so topics and client ids never collide with
/// an earlier run's retained messages or sessions.
fn run_id() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mix = (t.as_nanos() as u64) ^ ((std::process::id() as u64) << 20) ^ crate::clock::monotonic_ns();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:06x}", (mix.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(n << 7) >> 40) & 0xFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_only_for_busy_open_loop_threads() {
        let ns = crate::turn::TURN_NS_DEFAULT;
        // 1,000 pairs at 50/s: 100,000 sends and deliveries per second on one thread.
        assert_eq!(turn_ns(Kind::Pairs, Some(50.0), 1000, 1000, 1, Turn::Auto), Some(ns));
        // 10 pairs at 5,000/s: the same load on fewer connections.
        assert_eq!(turn_ns(Kind::Pairs, Some(5000.0), 10, 10, 1, Turn::Auto), Some(ns));
        // 10 pairs at 1,000/s: 20,000 per second, a wake-up per completion is affordable.
        assert_eq!(turn_ns(Kind::Pairs, Some(1000.0), 10, 10, 1, Turn::Auto), None);
        // ... and the same load spread over four threads.
        assert_eq!(turn_ns(Kind::Pairs, Some(5000.0), 10, 10, 4, Turn::Auto), None);
        // Fan-out counts every delivery.
        assert_eq!(turn_ns(Kind::Fanout, Some(100.0), 1, 500, 1, Turn::Auto), Some(ns));
        // Closed loop, retained and conn never take turns; `--turn` decides otherwise.
        assert_eq!(turn_ns(Kind::Pairs, None, 1000, 1000, 1, Turn::Auto), None);
        assert_eq!(turn_ns(Kind::Retained, Some(1e6), 1, 10, 1, Turn::Auto), None);
        assert_eq!(turn_ns(Kind::Pairs, Some(50.0), 1000, 1000, 1, Turn::Off), None);
        assert_eq!(turn_ns(Kind::Pairs, Some(1.0), 1, 1, 1, Turn::Every(250e-6)), Some(250_000));
    }
}
