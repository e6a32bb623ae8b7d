//! The command line: one subcommand per scenario, each with the connection options and
//! (for the publish/subscribe scenarios) the message options flattened in, so every option
//! follows the scenario name: `ringmq-loadgen pairs --n 10 --qos 1 --rate max`.

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

/// `ringmq-loadgen`: MQTT load generator with HDR latency histograms and delivery checks.
#[derive(Parser, Debug, Clone)]
#[command(name = "ringmq-loadgen", version, about, long_about = None)]
pub struct Args {
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The load shapes.
#[derive(Subcommand, Debug, Clone)]
pub enum Scenario {
    /// N publishers each on its own topic, N subscribers, one per publisher.
    Pairs {
        /// Number of publisher/subscriber pairs.
        #[arg(long, default_value_t = 10)]
        n: u32,
        #[command(flatten)]
        conn: ConnOpts,
        #[command(flatten)]
        msg: MsgOpts,
    },
    /// N publishers on topics of their own, K subscribers on one wildcard matching them all.
    Fanin {
        /// Number of publishers.
        #[arg(long, default_value_t = 10)]
        pubs: u32,
        /// Number of subscribers (each receives every message).
        #[arg(long, default_value_t = 1)]
        subs: u32,
        #[command(flatten)]
        conn: ConnOpts,
        #[command(flatten)]
        msg: MsgOpts,
    },
    /// K publishers and N subscribers, all on the same topic.
    Fanout {
        /// Number of subscribers (each receives every message).
        #[arg(long, default_value_t = 10)]
        subs: u32,
        /// Number of publishers.
        #[arg(long, default_value_t = 1)]
        pubs: u32,
        #[command(flatten)]
        conn: ConnOpts,
        #[command(flatten)]
        msg: MsgOpts,
    },
    /// N publishers, one shared-subscription group (`$share/GROUP/...`) of K members.
    Shared {
        /// Number of publishers.
        #[arg(long, default_value_t = 10)]
        pubs: u32,
        /// Members of the shared group (each message goes to exactly one of them).
        #[arg(long, default_value_t = 4)]
        subs: u32,
        /// The share name.
        #[arg(long, default_value = "g")]
        group: String,
        #[command(flatten)]
        conn: ConnOpts,
        #[command(flatten)]
        msg: MsgOpts,
    },
    /// Store N retained messages, then K subscribers receive them all through a wildcard.
    Retained {
        /// Number of retained messages (one topic each).
        #[arg(long, default_value_t = 1000)]
        n: u32,
        /// Number of subscribers (each receives all N).
        #[arg(long, default_value_t = 10)]
        subs: u32,
        #[command(flatten)]
        conn: ConnOpts,
        #[command(flatten)]
        msg: MsgOpts,
    },
    /// Open N connections at R per second, hold them, report connect latency, failures and
    /// the broker's memory per connection.
    Conn {
        /// Number of connections.
        #[arg(long, default_value_t = 1000)]
        n: u32,
        /// New connections per second (open loop: attempt i starts at i/R seconds).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds to hold the connections open once all are attempted.
        #[arg(long, default_value = "5", value_parser = parse_secs)]
        hold: f64,
        #[command(flatten)]
        conn: ConnOpts,
    },
    /// Run the traffic a scenario file (TOML) describes; see `loadgen/scenarios/`. The
    /// options below override the file.
    Run {
        /// The scenario file.
        file: PathBuf,
        #[command(flatten)]
        over: FileOverrides,
    },
    /// Write the comparison report (report.md, plots, headline.md) of a `scripts/bench.sh`
    /// results directory.
    Report {
        /// The results directory.
        dir: PathBuf,
        /// Also rewrite this index of result directories (results/README.md).
        #[arg(long)]
        index: Option<PathBuf>,
        /// Also replace the headline between the bench-headline markers of this README.
        #[arg(long)]
        update_readme: Option<PathBuf>,
        /// Only print the lowest delivered msgs/s of this run id over the brokers (0 when
        /// none finished it), for bench.sh's fixed-rate run; write nothing.
        #[arg(long, value_name = "RUN")]
        slowest_rate: Option<String>,
    },
    /// Print `scripts/bench.sh`'s matrix: its scenarios, cases, headline cases, latency and
    /// fleet runs, one per line.
    Matrix {
        /// The `--quick` subset.
        #[arg(long)]
        quick: bool,
    },
}

/// Options every scenario takes: where the broker is, how to connect, where to write.
#[derive(ClapArgs, Debug, Clone)]
pub struct ConnOpts {
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// MQTT version: 3.1.1 (also "4"), 5 (also "5.0") or 3.1 (also "3").
    #[arg(long, default_value = "3.1.1", value_parser = parse_mqtt)]
    pub mqtt: MqttVersion,
    /// Clean session (3.1.1) / clean start with session expiry 0 (5.0).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub clean_session: bool,
    /// Keepalive in seconds sent in CONNECT (0 disables); clients ping at half of it.
    #[arg(long, default_value_t = 60)]
    pub keepalive: u16,
    /// User name sent in CONNECT.
    #[arg(long)]
    pub username: Option<String>,
    /// Password sent in CONNECT.
    #[arg(long)]
    pub password: Option<String>,
    /// Source addresses to bind client sockets to, round-robin: `A-B` (IPv4 range), or a
    /// comma-separated list. Each address adds about 28,000 ephemeral ports.
    #[arg(long, value_parser = parse_source_ips)]
    pub source_ips: Option<SourceIps>,
    /// Load threads (thread-per-core, each owning a slice of the connections).
    #[arg(long)]
    pub cores: Option<usize>,
    /// CPUs to pin the load threads to, e.g. `0,2-5`; thread i runs on the i-th CPU listed.
    #[arg(long, value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,
    /// PIDs of the broker: sample their CPU time and resident memory from /proc, summed
    /// (`--broker-pid $(pgrep -x ringmq)`, `--broker-pid 12,34` or the flag repeated).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub broker_pid: Vec<u32>,
    /// Directory for summary.json, the .hgrm files, report.md and latency.svg.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds allowed for TCP connect + CONNACK, and for each SUBACK.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub connect_timeout: f64,
    /// Topic prefix; a run id is appended so runs never see each other's messages.
    #[arg(long, default_value = "ringmq-loadgen")]
    pub topic_prefix: String,
    /// Client id prefix; the run id and the client's role and index follow it.
    #[arg(long, default_value = "lg")]
    pub client_id_prefix: String,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// What the command line may set over a scenario file.
#[derive(ClapArgs, Debug, Clone)]
pub struct FileOverrides {
    /// Broker host name or address (default: the file's, else 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// Broker port (default: the file's, else 1883).
    #[arg(long)]
    pub port: Option<u16>,
    /// Seconds measured (default: the file's, else 10).
    #[arg(long, value_parser = parse_secs)]
    pub duration: Option<f64>,
    /// Directory for the result files.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// PIDs of the broker, summed (as for the built-in scenarios).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub broker_pid: Vec<u32>,
    /// Load threads.
    #[arg(long)]
    pub cores: Option<usize>,
    /// CPUs to pin the load threads to.
    #[arg(long, value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// Options of the publish/subscribe scenarios.
#[derive(ClapArgs, Debug, Clone)]
pub struct MsgOpts {
    /// QoS of every PUBLISH and SUBSCRIBE: 0, 1 or 2.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload bytes (at least 20: the payload header; the rest is padding).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Messages per second per publisher (open loop), or `max` (closed loop).
    #[arg(long, default_value = "1000", value_parser = parse_rate)]
    pub rate: Rate,
    /// Unacknowledged QoS 1/2 messages per publisher: the window at `--rate max`, a bound
    /// otherwise (also capped by the broker's Receive Maximum in MQTT 5).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub duration: f64,
    /// Seconds of load before measuring (messages are still checked for delivery).
    #[arg(long, default_value = "2", value_parser = parse_secs)]
    pub warmup: f64,
    /// Seconds to wait after the last send for outstanding deliveries and acks.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub drain: f64,
    /// Open loop: each load thread does its I/O in turns this far apart (`100us`,
    /// `0.5ms`), one wake-up per turn; `off`: a wake-up per completion; `auto`: 100 µs
    /// turns for threads that handle 30,000 or more sends and deliveries per second.
    #[arg(long, default_value = "auto", value_parser = parse_turn)]
    pub turn: Turn,
}

/// The protocol level to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum MqttVersion {
    #[serde(rename = "3.1")]
    V3_1,
    #[serde(rename = "3.1.1")]
    V3_1_1,
    #[serde(rename = "5")]
    V5,
}

impl MqttVersion {
    /// The codec's protocol version.
    pub fn protocol(self) -> ringmq::protocol::ProtocolVersion {
        match self {
            MqttVersion::V3_1 => ringmq::protocol::ProtocolVersion::V3_1,
            MqttVersion::V3_1_1 => ringmq::protocol::ProtocolVersion::V3_1_1,
            MqttVersion::V5 => ringmq::protocol::ProtocolVersion::V5,
        }
    }

    /// The version as users write it.
    pub fn name(self) -> &'static str {
        match self {
            MqttVersion::V3_1 => "3.1",
            MqttVersion::V3_1_1 => "3.1.1",
            MqttVersion::V5 => "5",
        }
    }
}

/// Messages per second per publisher, or as fast as the window allows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    PerSec(f64),
    Max,
}

/// How a load thread schedules its I/O in open loop (see `turn.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Turn {
    /// Turns when the thread is busy enough for them to pay.
    Auto,
    /// A wake-up per completion.
    Off,
    /// Turns this many seconds apart.
    Every(f64),
}

/// Source addresses, used round-robin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceIps(pub Vec<IpAddr>);

/// CPUs to pin load threads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Largest IPv4 range `--source-ips` expands (a /16).
pub const SOURCE_IPS_MAX: u32 = 65_536;

pub fn parse_mqtt(s: &str) -> Result<MqttVersion, String> {
    match s {
        "3.1.1" | "4" | "311" => Ok(MqttVersion::V3_1_1),
        "5" | "5.0" => Ok(MqttVersion::V5),
        "3.1" | "3" | "31" => Ok(MqttVersion::V3_1),
        _ => Err(format!("unknown MQTT version {s:?}: use 3.1.1, 5 or 3.1")),
    }
}

pub fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    let v: f64 = s.parse().map_err(|_| format!("rate {s:?} is neither a number nor `max`"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("rate must be above 0, got {s}"));
    }
    Ok(Rate::PerSec(v))
}

/// Longest turn `--turn` accepts: every message may wait this long twice.
pub const TURN_SECS_MAX: f64 = 0.1;

/// `auto`, `off` (or `0`), or a duration: `100us`, `0.5ms`, `0.0002s`.
pub fn parse_turn(s: &str) -> Result<Turn, String> {
    match s {
        "auto" => return Ok(Turn::Auto),
        "off" | "0" => return Ok(Turn::Off),
        _ => {}
    }
    let secs = match s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        Some(n) => n.trim().parse::<f64>().map(|v| v / 1e6).map_err(|_| format!("bad turn {s:?}"))?,
        None => parse_secs(s)?,
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= TURN_SECS_MAX) {
        return Err(format!(
            "--turn must be `auto`, `off`, or a duration above 0 and at most 100ms, got {s}"
        ));
    }
    Ok(Turn::Every(secs))
}

/// Seconds: `10`, `1.5`, `10s`, `500ms`, `2m`.
pub fn parse_secs(s: &str) -> Result<f64, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration in seconds"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("duration must be 0 or more, got {s}"));
    }
    Ok(v * scale)
}

/// `127.0.0.1-127.0.0.40`, `10.0.0.1,10.0.0.2`, `::1`, or a mix of ranges and addresses.
pub fn parse_source_ips(s: &str) -> Result<SourceIps, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: std::net::Ipv4Addr = a.trim().parse().map_err(|_| format!("bad IPv4 address {a:?}"))?;
            let b: std::net::Ipv4Addr = b.trim().parse().map_err(|_| format!("bad IPv4 address {b:?}"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a {
                return Err(format!("range {part} runs backwards"));
            }
            if b - a >= SOURCE_IPS_MAX {
                return Err(format!("range {part} has more than {SOURCE_IPS_MAX} addresses"));
            }
            out.extend((a..=b).map(|v| IpAddr::V4(v.into())));
        } else {
            out.push(part.parse().map_err(|_| format!("bad address {part:?}"))?);
        }
    }
    if out.is_empty() {
        return Err("no source address given".into());
    }
    Ok(SourceIps(out))
}

/// `0,2-5` → [0, 2, 3, 4, 5].
pub fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("bad CPU list entry {part:?}");
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if b < a || b >= libc::CPU_SETSIZE as usize {
                return Err(bad());
            }
            out.extend(a..=b);
        } else {
            let c: usize = part.parse().map_err(|_| bad())?;
            if c >= libc::CPU_SETSIZE as usize {
                return Err(bad());
            }
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err("empty CPU list".into());
    }
    Ok(CpuList(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_source_ip_range_inclusive() {
        let ips = parse_source_ips("127.0.0.1-127.0.0.40").unwrap();
        assert_eq!(ips.0.len(), 40);
        assert_eq!(ips.0[0], "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(ips.0[39], "127.0.0.40".parse::<IpAddr>().unwrap());
        assert!(parse_source_ips("127.0.0.9-127.0.0.1").is_err());
        assert_eq!(parse_source_ips("10.0.0.1, ::1").unwrap().0.len(), 2);
    }

    #[test]
    fn parses_cpu_lists_and_durations_and_rates() {
        assert_eq!(parse_cpu_list("0,2-4").unwrap().0, vec![0, 2, 3, 4]);
        assert!(parse_cpu_list("3-1").is_err());
        assert_eq!(parse_secs("500ms").unwrap(), 0.5);
        assert_eq!(parse_secs("2m").unwrap(), 120.0);
        assert_eq!(parse_secs("1.5").unwrap(), 1.5);
        assert_eq!(parse_rate("max").unwrap(), Rate::Max);
        assert_eq!(parse_rate("250").unwrap(), Rate::PerSec(250.0));
        assert!(parse_rate("0").is_err());
        assert_eq!(parse_turn("auto").unwrap(), Turn::Auto);
        assert_eq!(parse_turn("off").unwrap(), Turn::Off);
        assert_eq!(parse_turn("0").unwrap(), Turn::Off);
        let secs = |s: &str| match parse_turn(s).unwrap() {
            Turn::Every(v) => v,
            other => panic!("{s}: {other:?}"),
        };
        assert!((secs("100us") - 100e-6).abs() < 1e-12);
        assert!((secs("0.5ms") - 0.5e-3).abs() < 1e-12);
        assert!(parse_turn("1s").is_err());
        assert!(parse_turn("fast").is_err());
    }

    #[test]
    fn options_follow_the_scenario() {
        let a = Args::try_parse_from([
            "ringmq-loadgen",
            "pairs",
            "--n",
            "3",
            "--qos",
            "2",
            "--rate",
            "max",
            "--mqtt",
            "5",
            "--clean-session",
            "false",
        ])
        .unwrap();
        match a.scenario {
            Scenario::Pairs { n, conn, msg } => {
                assert_eq!(n, 3);
                assert_eq!(msg.qos, 2);
                assert_eq!(msg.rate, Rate::Max);
                assert_eq!(conn.mqtt, MqttVersion::V5);
                assert!(!conn.clean_session);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Args::try_parse_from(["ringmq-loadgen", "pairs", "--qos", "3"]).is_err());
        let c = Args::try_parse_from(["ringmq-loadgen", "conn", "--n", "5", "--rate", "100", "--hold", "1"]);
        assert!(c.is_ok());
    }
}
