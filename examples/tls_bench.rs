//! TLS measurements for scripts/tls-bench.sh, against any MQTT broker's TLS listener
//! (ringmq's or Mosquitto's), with a rustls client:
//!
//! - `handshakes`: new connections as fast as `--threads` threads can open them (TCP,
//!   TLS handshake, CONNECT, CONNACK, DISCONNECT), or at `--rate` per second in all when
//!   given, and the broker's CPU time meanwhile (from /proc/PID/stat): handshakes per
//!   broker CPU-second is handshakes per second per core;
//! - `idle`: the broker's resident memory before and after `--n` TLS connections that
//!   connected (CONNACK) and then sit idle: bytes per idle TLS connection;
//! - `pairs`: `--pairs` publisher/subscriber pairs over TLS, each publishing 64-byte
//!   messages at `--rate` per second at `--qos`, each message waited for at its
//!   subscriber (and its PUBACK at QoS 1) before the next: delivered messages, the
//!   broker's CPU time, and the round trip's p50/p99.
//!
//! Each prints one JSON line. MQTT 3.1.1 packets are written by hand: the tool must not
//! share the broker's codec bugs.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Tls = StreamOwned<ClientConnection, TcpStream>;

struct Args {
    mode: String,
    port: u16,
    cafile: String,
    pid: u32,
    threads: usize,
    secs: f64,
    n: usize,
    pairs: usize,
    qos: u8,
    rate: f64,
}

fn parse_args() -> Args {
    let mut a = Args {
        mode: String::new(),
        port: 8883,
        cafile: String::new(),
        pid: 0,
        threads: 4,
        secs: 10.0,
        n: 1000,
        pairs: 10,
        qos: 0,
        rate: 0.0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    a.mode = argv.first().cloned().unwrap_or_default();
    for kv in argv[1..].chunks(2) {
        let v = kv.get(1).cloned().unwrap_or_default();
        match kv[0].as_str() {
            "--port" => a.port = v.parse().expect("--port"),
            "--cafile" => a.cafile = v,
            "--pid" => a.pid = v.parse().expect("--pid"),
            "--threads" => a.threads = v.parse().expect("--threads"),
            "--secs" => a.secs = v.parse().expect("--secs"),
            "--n" => a.n = v.parse().expect("--n"),
            "--pairs" => a.pairs = v.parse().expect("--pairs"),
            "--qos" => a.qos = v.parse().expect("--qos"),
            "--rate" => a.rate = v.parse().expect("--rate"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// The broker's CPU time so far, in seconds (utime + stime).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("broker's /proc stat");
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("broker's /proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[allow(deprecated)]
fn client_config(cafile: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cafile).expect("cafile") {
        roots.add(c.expect("a certificate")).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn connect_packet(id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    string("MQTT", &mut body);
    body.extend_from_slice(&[4, 0x02, 0, 60]);
    string(id, &mut body);
    let mut p = vec![0x10];
    remaining_length(body.len(), &mut p);
    p.extend(body);
    p
}

fn publish_packet(topic: &str, qos: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(topic, &mut body);
    if qos > 0 {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut p = vec![0x30 | (qos << 1)];
    remaining_length(body.len(), &mut p);
    p.extend(body);
    p
}

/// Reads one MQTT packet: (first byte, body).
fn read_packet(s: &mut Tls) -> std::io::Result<(u8, Vec<u8>)> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    let (mut len, mut mul) = (0usize, 1usize);
    loop {
        let mut d = [0u8; 1];
        s.read_exact(&mut d)?;
        len += (d[0] & 0x7f) as usize * mul;
        mul *= 128;
        if d[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((b[0], body))
}

fn open(port: u16, config: &Arc<ClientConfig>, id: &str) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    s.write_all(&connect_packet(id))?;
    s.flush()?;
    let (kind, body) = read_packet(&mut s)?;
    if kind != 0x20 || body.get(1) != Some(&0) {
        return Err(std::io::Error::other(format!("CONNACK refused: {kind:#x} {body:?}")));
    }
    Ok(s)
}

fn handshakes(a: &Args) {
    let config = client_config(&a.cafile);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_secs(a.pid);
    let start = Instant::now();
    let threads: Vec<_> = (0..a.threads)
        .map(|t| {
            let (config, stop, done, failed, port) =
                (config.clone(), stop.clone(), done.clone(), failed.clone(), a.port);
            let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(a.threads as f64 / a.rate));
            std::thread::spawn(move || {
                let mut i = 0u64;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(interval) = interval {
                        let now = Instant::now();
                        if now < next {
                            std::thread::sleep(next - now);
                        }
                        next += interval;
                    }
                    i += 1;
                    match open(port, &config, &format!("hs-{t}-{i}")) {
                        Ok(mut s) => {
                            let _ = s.write_all(&[0xe0, 0]);
                            let _ = s.flush();
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(a.secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(a.pid) - cpu0;
    let n = done.load(Ordering::Relaxed);
    println!(
        "{{\"mode\":\"handshakes\",\"handshakes\":{n},\"failed\":{},\"secs\":{secs:.2},\"per_sec\":{:.0},\"broker_cpu_secs\":{cpu:.2},\"per_broker_cpu_sec\":{:.0}}}",
        failed.load(Ordering::Relaxed),
        n as f64 / secs,
        n as f64 / cpu.max(0.01)
    );
}

fn idle(a: &Args) {
    let config = client_config(&a.cafile);
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_bytes(a.pid);
    let mut held = Vec::with_capacity(a.n);
    for i in 0..a.n {
        held.push(open(a.port, &config, &format!("idle-{i}")).expect("an idle connection"));
    }
    // Let the broker settle (buffers given back once quiet).
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_bytes(a.pid);
    println!(
        "{{\"mode\":\"idle\",\"connections\":{},\"rss_before\":{before},\"rss_after\":{after},\"bytes_per_connection\":{}}}",
        a.n,
        (after.saturating_sub(before)) / a.n as u64
    );
    drop(held);
}

fn pairs(a: &Args) {
    let config = client_config(&a.cafile);
    let rate = if a.rate > 0.0 { a.rate } else { 100.0 };
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::new();
    for p in 0..a.pairs {
        let mut sub = open(a.port, &config, &format!("sub-{p}")).expect("subscriber");
        let topic = format!("bench/tls/{p}");
        let mut body = vec![0, 1];
        string(&topic, &mut body);
        body.push(a.qos);
        let mut packet = vec![0x82];
        remaining_length(body.len(), &mut packet);
        packet.extend(body);
        sub.write_all(&packet).unwrap();
        sub.flush().unwrap();
        let (kind, _) = read_packet(&mut sub).expect("SUBACK");
        assert_eq!(kind, 0x90);
        let publisher = open(a.port, &config, &format!("pub-{p}")).expect("publisher");
        conns.push((topic, sub, publisher));
    }
    let cpu0 = cpu_secs(a.pid);
    let start = Instant::now();
    let threads: Vec<_> = conns
        .into_iter()
        .map(|(topic, mut sub, mut publisher)| {
            let (latencies, delivered, qos, secs) = (latencies.clone(), delivered.clone(), a.qos, a.secs);
            std::thread::spawn(move || {
                let payload = [0x5au8; 64];
                let interval = Duration::from_secs_f64(1.0 / rate);
                let begin = Instant::now();
                let mut mine = Vec::new();
                let mut id = 0u16;
                let mut next = begin;
                while begin.elapsed().as_secs_f64() < secs {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep(next - now);
                    }
                    next += interval;
                    id = id.wrapping_add(1).max(1);
                    let sent = Instant::now();
                    publisher.write_all(&publish_packet(&topic, qos, id, &payload)).unwrap();
                    publisher.flush().unwrap();
                    let (kind, body) = read_packet(&mut sub).expect("the message");
                    assert_eq!(kind & 0xf0, 0x30);
                    mine.push(sent.elapsed().as_micros() as u64);
                    if qos > 0 {
                        let tlen = u16::from_be_bytes([body[0], body[1]]) as usize;
                        let pid = [body[2 + tlen], body[3 + tlen]];
                        sub.write_all(&[0x40, 2, pid[0], pid[1]]).unwrap();
                        sub.flush().unwrap();
                        let (kind, _) = read_packet(&mut publisher).expect("PUBACK");
                        assert_eq!(kind, 0x40);
                    }
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(a.pid) - cpu0;
    let n = delivered.load(Ordering::Relaxed);
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let pct =
        |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{{\"mode\":\"pairs\",\"pairs\":{},\"qos\":{},\"rate_per_pair\":{},\"delivered\":{n},\"secs\":{secs:.2},\"msgs_per_sec\":{:.0},\"broker_cpu_secs\":{cpu:.2},\"msgs_per_broker_cpu_sec\":{:.0},\"rtt_p50_us\":{},\"rtt_p99_us\":{}}}",
        a.pairs,
        a.qos,
        rate,
        n as f64 / secs,
        n as f64 / cpu.max(0.01),
        pct(0.50),
        pct(0.99)
    );
}

fn main() {
    let a = parse_args();
    match a.mode.as_str() {
        "handshakes" => handshakes(&a),
        "idle" => idle(&a),
        "pairs" => pairs(&a),
        _ => {
            eprintln!("usage: tls_bench handshakes|idle|pairs --port P --cafile CA --pid BROKER_PID [...]");
            std::process::exit(2);
        }
    }
}
