//! The metrics endpoint (`metrics_listener`): plain HTTP, `GET /metrics`, the Prometheus
//! text format (version 0.0.4). It runs on a thread of its own and reads the per-shard
//! figures the shards copy into the [`Board`] at their housekeeping ticks (every
//! [`METRICS_SNAPSHOT_MS`] while it is on), so a scrape never touches a shard's loop and
//! its figures are at most that old.
//!
//! One request at a time, each bounded (a request head of [`REQUEST_HEAD_BYTES_MAX`], a
//! read timeout of [`REQUEST_TIMEOUT`]): a scraper is one client every few seconds, and a
//! stalled one holds the endpoint no longer than the timeout.

use super::sys::{turn_bucket_le_us, Board, Figures, TurnHistogram, METRICS_SNAPSHOT_MS};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most bytes of a request's line and headers read.
const REQUEST_HEAD_BYTES_MAX: usize = 8192;
/// How long a client has to send its request, and to take the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The endpoint's thread; [`MetricsServer::stop`] ends it.
pub struct MetricsServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves the board's figures; `started` is when the broker started.
    pub fn start(addr: SocketAddr, board: Arc<Board>, started: Instant) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        board.enable_metrics();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = std::thread::Builder::new().name("ringmq-metrics".into()).spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                match stream {
                    Ok(s) => serve(s, &board, started),
                    // A full file table and the like: try again after a pause, quietly.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        })?;
        crate::log!(Notice, "Serving metrics on http://{}/metrics.", addr);
        Ok(MetricsServer { addr, stopping, thread: Some(thread) })
    }

    /// The address bound (with the port actually bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Ends the thread: a flag, then a connection to wake its `accept`.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Answers one request.
fn serve(mut s: TcpStream, board: &Board, started: Instant) {
    let _ = s.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = s.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REQUEST_HEAD_BYTES_MAX {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", render(&board.shards(), &board.turns(), started.elapsed())),
        (b"GET", _) => ("404 Not Found", "Not found: the metrics are at /metrics.\n".to_string()),
        _ => ("405 Method Not Allowed", "Only GET is served.\n".to_string()),
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(answer.as_bytes());
}

/// The Prometheus text for the shards' figures.
pub fn render(shards: &[Figures], turns: &[TurnHistogram], uptime: Duration) -> String {
    let mut out = String::with_capacity(4096 + shards.len() * 2048);
    let mut family =
        |name: &str, kind: &str, help: &str, samples: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
    let per_shard = |f: fn(&Figures) -> u64| {
        shards.iter().enumerate().map(move |(i, s)| (format!("shard=\"{i}\""), f(s)))
    };
    let by_qos = |f: fn(&Figures) -> [u64; 3]| {
        shards.iter().enumerate().flat_map(move |(i, s)| {
            f(s).into_iter().enumerate().map(move |(q, v)| (format!("shard=\"{i}\",qos=\"{q}\""), v))
        })
    };
    family(
        "ringmq_build_info",
        "gauge",
        "The broker's version.",
        &mut std::iter::once((format!("version=\"{}\"", env!("CARGO_PKG_VERSION")), 1)),
    );
    family("ringmq_connections", "gauge", "Open client sockets.", &mut per_shard(|s| s.connections));
    family(
        "ringmq_clients",
        "gauge",
        "Sessions, with a connection (connected) or kept without one (disconnected).",
        &mut shards.iter().enumerate().flat_map(|(i, s)| {
            [
                (format!("shard=\"{i}\",state=\"connected\""), s.clients_connected),
                (format!("shard=\"{i}\",state=\"disconnected\""), s.clients_disconnected),
            ]
        }),
    );
    family(
        "ringmq_sockets_accepted_total",
        "counter",
        "Client sockets accepted.",
        &mut per_shard(|s| s.sockets_accepted),
    );
    family(
        "ringmq_connects_accepted_total",
        "counter",
        "CONNECTs accepted.",
        &mut per_shard(|s| s.connects_accepted),
    );
    family(
        "ringmq_clients_expired_total",
        "counter",
        "Offline sessions ended because their expiry interval passed.",
        &mut per_shard(|s| s.clients_expired),
    );
    family("ringmq_subscriptions", "gauge", "Subscriptions.", &mut per_shard(|s| s.subscriptions));
    family(
        "ringmq_messages_stored",
        "gauge",
        "QoS 1/2 messages in flight or queued for sessions, once per session.",
        &mut per_shard(|s| s.stored),
    );
    family(
        "ringmq_mesh_queued_messages",
        "gauge",
        "Messages from other shards waiting for this one on the mesh.",
        &mut per_shard(|s| s.mesh_queued),
    );
    family(
        "ringmq_packets_received_total",
        "counter",
        "MQTT packets of every type received from clients.",
        &mut per_shard(|s| s.packets_received),
    );
    family(
        "ringmq_publish_received_total",
        "counter",
        "PUBLISH packets received from clients, by their QoS.",
        &mut by_qos(|s| [s.publish_received_qos0, s.publish_received_qos1, s.publish_received_qos2]),
    );
    family(
        "ringmq_publish_received_payload_bytes_total",
        "counter",
        "Payload bytes of the PUBLISH packets received.",
        &mut per_shard(|s| s.publish_received_bytes),
    );
    family(
        "ringmq_publish_sent_total",
        "counter",
        "PUBLISH packets sent to clients (retransmissions included), by their QoS.",
        &mut by_qos(|s| [s.publish_sent_qos0, s.publish_sent_qos1, s.publish_sent_qos2]),
    );
    family(
        "ringmq_publish_sent_payload_bytes_total",
        "counter",
        "Payload bytes of the PUBLISH packets sent.",
        &mut per_shard(|s| s.publish_sent_bytes),
    );
    family(
        "ringmq_publish_dropped_total",
        "counter",
        "Messages not delivered to a subscriber, by cause.",
        &mut shards.iter().enumerate().flat_map(|(i, s)| {
            [
                ("slow_subscriber", s.dropped_slow_subscriber),
                ("queue_full", s.dropped_queue_full),
                ("no_group_member", s.dropped_no_group_member),
            ]
            .map(|(cause, v)| (format!("shard=\"{i}\",cause=\"{cause}\""), v))
        }),
    );
    family(
        "ringmq_bytes_received_total",
        "counter",
        "Bytes read from client sockets.",
        &mut per_shard(|s| s.bytes_received),
    );
    family(
        "ringmq_bytes_sent_total",
        "counter",
        "Bytes written to client sockets.",
        &mut per_shard(|s| s.bytes_sent),
    );
    let name = "ringmq_turn_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} How long each shard's event-loop turns take, from handling what completed to the output submitted: the time a message read in a turn waits in the broker before its sends to subscribers on that shard are queued."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (i, t) in turns.iter().enumerate() {
        let mut cumulative = 0;
        for (b, n) in t.buckets.iter().enumerate() {
            cumulative += n;
            let le = turn_bucket_le_us(b).map_or("+Inf".to_string(), |us| format!("{}", us as f64 / 1e6));
            let _ = writeln!(out, "{name}_bucket{{shard=\"{i}\",le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{shard=\"{i}\"}} {}", t.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{shard=\"{i}\"}} {}", t.count());
    }
    let _ = writeln!(out, "# HELP ringmq_uptime_seconds Seconds since the broker started.");
    let _ = writeln!(out, "# TYPE ringmq_uptime_seconds gauge");
    let _ = writeln!(out, "ringmq_uptime_seconds {}", uptime.as_secs());
    let _ = writeln!(out, "# HELP ringmq_snapshot_interval_seconds How old the per-shard figures may be.");
    let _ = writeln!(out, "# TYPE ringmq_snapshot_interval_seconds gauge");
    let _ = writeln!(out, "ringmq_snapshot_interval_seconds {}", METRICS_SNAPSHOT_MS as f64 / 1000.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_type_and_labels_per_shard() {
        let mut a = Figures { publish_received_qos1: 7, dropped_queue_full: 2, ..Figures::default() };
        a.connections = 3;
        let mut turns = TurnHistogram::default();
        turns.record(500); // 1 us bucket
        turns.record(3_000); // 4 us
        turns.record(u64::MAX / 2); // the last
        let text =
            render(&[a, Figures::default()], &[turns, TurnHistogram::default()], Duration::from_secs(5));
        assert!(
            text.contains("ringmq_turn_duration_seconds_bucket{shard=\"0\",le=\"0.000001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ringmq_turn_duration_seconds_bucket{shard=\"0\",le=\"0.000002\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ringmq_turn_duration_seconds_bucket{shard=\"0\",le=\"0.000004\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("ringmq_turn_duration_seconds_bucket{shard=\"0\",le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("ringmq_turn_duration_seconds_count{shard=\"0\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE ringmq_publish_received_total counter\n"), "{text}");
        assert!(text.contains("ringmq_publish_received_total{shard=\"0\",qos=\"1\"} 7\n"), "{text}");
        assert!(
            text.contains("ringmq_publish_dropped_total{shard=\"0\",cause=\"queue_full\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("ringmq_connections{shard=\"1\"} 0\n"), "{text}");
        assert!(text.contains("ringmq_uptime_seconds 5\n"), "{text}");
        // Every sample line belongs to the family named by the TYPE line before it.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_string();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&family), "{line} outside {family}");
            }
        }
    }
}
