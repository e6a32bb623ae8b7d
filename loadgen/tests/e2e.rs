//! End to end: every scenario at QoS 0, 1 and 2 against an in-process ringmq broker (two
//! shards on 127.0.0.1), through the library's command line, plus a few against Mosquitto
//! when it is installed. QoS 1/2 runs must lose nothing; QoS 0 runs may lose a little on a
//! busy machine, never much.

use ringmq::config::Config;
use ringmq::shard::Broker;
use ringmq_loadgen::{Outcome, EXIT_OK};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A broker for one test, shut down when dropped.
struct TestBroker(Option<Broker>);

impl TestBroker {
    fn start() -> TestBroker {
        Self::with_queue_limit(10_000_000)
    }

    /// A broker whose per-client queue holds `max_queued_messages` QoS 1/2 messages.
    fn with_queue_limit(max_queued_messages: usize) -> TestBroker {
        // Queues far above what a test sends: a loss then means a bug, not the broker's
        // bound on a slow subscriber (closed-loop QoS 1 publishes faster than one
        // subscriber drains, and ringmq drops QoS 1/2 beyond max_queued_messages).
        let config = Config {
            listeners: vec![ringmq::config::ListenerConfig::on("127.0.0.1:0".parse().unwrap())],
            cores: 2,
            max_queued_messages,
            ..Default::default()
        };
        TestBroker(Some(Broker::start(config, 0).expect("broker starts")))
    }

    fn port(&self) -> u16 {
        self.0.as_ref().unwrap().local_addrs()[0].port()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.shutdown();
        }
    }
}

/// Short runs: a little warm-up, one second measured.
const TIMING: &[&str] = &["--duration", "1", "--warmup", "0.3", "--drain", "5"];
/// Every run.
const QUIET: &[&str] = &["--quiet", "--connect-timeout", "5"];

fn run(port: u16, args: &[&str]) -> Outcome {
    let port = port.to_string();
    let mut argv = vec!["ringmq-loadgen"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--port", &port]);
    if args[0] != "conn" {
        argv.extend_from_slice(TIMING);
    }
    argv.extend_from_slice(QUIET);
    let started = Instant::now();
    let out = ringmq_loadgen::run_argv(argv.clone()).unwrap_or_else(|e| panic!("{argv:?}: {e:#}"));
    eprintln!("{} ({:.1} s)", out.summary.one_line(), started.elapsed().as_secs_f64());
    out
}

/// The counters of any run tell one story: the identities of `loss::disagreements`, and
/// the one-line summary prints the summary's own figures.
fn assert_counters_agree(s: &ringmq_loadgen::Summary) {
    let m = &s.messages;
    let disagree = ringmq_loadgen::loss::disagreements(m, &s.per_publisher);
    assert!(disagree.is_empty(), "{}: {disagree:?}", s.one_line());
    assert!(!s.status.warnings.iter().any(|w| w.contains("disagree")), "{:?}", s.status.warnings);
    let line = s.one_line();
    if s.config.scenario == ringmq_loadgen::config::Kind::Retained {
        assert_eq!(m.delivered, m.unique + m.duplicated, "only the run's messages count: {line}");
        assert_eq!(m.out_of_order, 0, "one topic per retained message: no order to break");
        let said = format!("delivered {} of {}", m.unique, m.expected_deliveries);
        assert!(line.contains(&said), "{line}");
    } else {
        let said = format!("lost {} dup {} reorder {}", m.lost, m.duplicated, m.out_of_order);
        assert!(line.contains(&said), "{line}");
    }
}

/// The checks every publish/subscribe run must pass.
fn assert_delivered(out: &Outcome, qos: u8) {
    let s = &out.summary;
    let m = &s.messages;
    assert_counters_agree(s);
    assert_eq!(out.exit_code, EXIT_OK, "{}: {:?} {:?}", s.one_line(), s.status, s.errors);
    assert!(m.sent > 0 && m.expected_deliveries > 0, "{}", s.one_line());
    assert_eq!(s.connections.failed, 0);
    assert_eq!(s.connections.closed_mid_run, 0, "{:?}", s.errors);
    assert_eq!(m.malformed + m.unexpected, 0);
    if qos > 0 {
        assert_eq!(m.lost, 0, "{}", s.one_line());
        assert_eq!(m.unique, m.expected_deliveries, "{}", s.one_line());
        assert_eq!(m.acked, m.sent, "every QoS {qos} publish acknowledged");
        assert!(s.latency_us.contains_key("ack_rtt"));
    } else {
        assert!(m.lost * 100 <= m.expected_deliveries, "QoS 0 lost {} of {}", m.lost, m.expected_deliveries);
    }
    if qos == 2 {
        assert_eq!(m.duplicated, 0);
    }
    if s.config.scenario != ringmq_loadgen::config::Kind::Retained {
        assert!(s.latency_us.contains_key("e2e"), "{}", s.one_line());
        assert!(m.delivered_in_window > 0);
    }
}

macro_rules! scenario_tests {
    ($($name:ident: $qos:literal, [$($arg:literal),*];)*) => {
        $(
            #[test]
            fn $name() {
                let broker = TestBroker::start();
                let qos = $qos.to_string();
                let out = run(broker.port(), &[$($arg,)* "--qos", &qos]);
                assert_delivered(&out, $qos);
            }
        )*
    };
}

scenario_tests! {
    pairs_qos0_delivers_every_message: 0, ["pairs", "--n", "4", "--rate", "200"];
    pairs_qos1_loses_nothing: 1, ["pairs", "--n", "4", "--rate", "200"];
    pairs_qos2_loses_and_duplicates_nothing: 2, ["pairs", "--n", "4", "--rate", "200"];
    fanin_qos0_delivers_every_message: 0, ["fanin", "--pubs", "4", "--subs", "2", "--rate", "200"];
    fanin_qos1_loses_nothing: 1, ["fanin", "--pubs", "4", "--subs", "2", "--rate", "200"];
    fanin_qos2_loses_and_duplicates_nothing: 2, ["fanin", "--pubs", "4", "--subs", "2", "--rate", "200"];
    fanout_qos0_delivers_every_message: 0, ["fanout", "--subs", "4", "--pubs", "2", "--rate", "200"];
    fanout_qos1_loses_nothing: 1, ["fanout", "--subs", "4", "--pubs", "2", "--rate", "200"];
    fanout_qos2_loses_and_duplicates_nothing: 2, ["fanout", "--subs", "4", "--pubs", "2", "--rate", "200"];
    shared_qos0_delivers_each_message_once: 0, ["shared", "--pubs", "4", "--subs", "3", "--rate", "200", "--mqtt", "5"];
    shared_qos1_delivers_each_message_once: 1, ["shared", "--pubs", "4", "--subs", "3", "--rate", "200", "--mqtt", "5"];
    shared_qos2_delivers_each_message_once: 2, ["shared", "--pubs", "4", "--subs", "3", "--rate", "200"];
    retained_qos0_delivers_every_stored_message: 0, ["retained", "--n", "200", "--subs", "3"];
    retained_qos1_delivers_every_stored_message: 1, ["retained", "--n", "200", "--subs", "3"];
    retained_qos2_delivers_every_stored_message: 2, ["retained", "--n", "200", "--subs", "3", "--mqtt", "5"];
    pairs_qos2_over_mqtt5_loses_nothing: 2, ["pairs", "--n", "3", "--rate", "300", "--mqtt", "5"];
    closed_loop_qos1_keeps_its_window_and_loses_nothing: 1, ["pairs", "--n", "2", "--rate", "max", "--inflight", "16"];
    closed_loop_qos0_floods_and_still_checks: 0, ["pairs", "--n", "2", "--rate", "max"];
    source_ips_spread_connections_over_addresses: 1, ["pairs", "--n", "4", "--rate", "100", "--source-ips", "127.0.0.2-127.0.0.5", "--cores", "2"];
    turns_pairs_qos1_loses_nothing: 1, ["pairs", "--n", "4", "--rate", "200", "--turn", "100us"];
    turns_pairs_qos2_loses_and_duplicates_nothing: 2, ["pairs", "--n", "4", "--rate", "200", "--turn", "300us"];
    turns_fanout_qos1_loses_nothing: 1, ["fanout", "--subs", "4", "--pubs", "2", "--rate", "200", "--turn", "100us"];
    turns_shared_qos1_delivers_each_message_once: 1, ["shared", "--pubs", "4", "--subs", "3", "--rate", "200", "--mqtt", "5", "--turn", "100us"];
    turns_over_two_threads_lose_nothing: 1, ["pairs", "--n", "6", "--rate", "200", "--cores", "2", "--turn", "100us"];
}

/// A run busy enough for `--turn auto` to take turns (40,000 sends and deliveries per
/// second): nothing lost and turns reported. How long a send waits for its turn is a
/// benchmark figure (`send_lag` in the summary), not asserted here: on a loaded 2-core CI
/// machine running a debug build the wall clock says nothing about the code.
#[test]
fn auto_turns_at_high_aggregate_rate_lose_nothing() {
    let broker = TestBroker::start();
    let out = run(broker.port(), &["pairs", "--n", "200", "--rate", "100", "--qos", "1"]);
    assert_delivered(&out, 1);
    let s = &out.summary;
    assert_eq!(s.config.turn_ns, Some(ringmq_loadgen::turn::TURN_NS_DEFAULT));
    assert!(s.loadgen.pacing.starts_with("turns"), "{}", s.loadgen.pacing);
    assert_eq!(s.latency_us["send_lag"].count, s.messages.sent_in_window, "every send's lag is recorded");
}

#[test]
fn retained_measures_delivery_from_subscribe() {
    let broker = TestBroker::start();
    let out = run(broker.port(), &["retained", "--n", "300", "--subs", "2", "--qos", "1"]);
    assert_delivered(&out, 1);
    let s = &out.summary;
    assert_eq!(s.messages.unique, 600);
    assert_eq!(s.latency_us["retained_complete"].count, 2, "one completion per subscriber");
    assert_eq!(s.latency_us["retained_delivery"].count, 600);
}

/// `retained --n N --subs K --qos 1` against a broker's default-like queue limit: each
/// subscriber stops at the same count, every counter says the same, and the summary
/// names the limit as the likely cause.
#[test]
fn retained_beyond_a_queue_limit_counts_once_and_names_the_limit() {
    let broker = TestBroker::with_queue_limit(50);
    let out = run(broker.port(), &["retained", "--n", "400", "--subs", "3", "--qos", "1"]);
    let s = &out.summary;
    assert_counters_agree(s);
    assert_eq!(out.exit_code, ringmq_loadgen::EXIT_DELIVERY_FAILED, "{}", s.one_line());
    assert!(s.messages.lost > 0 && s.messages.unique > 0, "{}", s.one_line());
    assert_eq!(s.messages.unique % 3, 0, "each subscriber got the same count: {}", s.one_line());
    let first = &s.status.loss_causes[0];
    assert_eq!(first.kind, "queue_limit", "{:?}", s.status.loss_causes);
    assert!(s.one_line().ends_with("| likely cause: queue limit"), "{}", s.one_line());
}

/// `--broker-pid` takes several PIDs (as `$(pgrep -x NAME)` gives them) and sums them.
#[test]
fn broker_pids_are_summed() {
    let broker = TestBroker::start();
    let mut other = Command::new("sleep").arg("30").spawn().expect("sleep starts");
    let (me, them) = (std::process::id().to_string(), other.id().to_string());
    let out =
        run(broker.port(), &["pairs", "--n", "2", "--qos", "1", "--rate", "100", "--broker-pid", &me, &them]);
    let _ = other.kill();
    let _ = other.wait();
    assert_delivered(&out, 1);
    let b = out.summary.broker.as_ref().expect("broker figures");
    assert_eq!(b.pids.len(), 2);
    assert!(b.cpu_us_per_msg.is_some() && b.rss_peak_kib.is_some(), "{b:?}");
}

#[test]
fn conn_opens_holds_and_counts_connections() {
    for mqtt in ["3.1.1", "5"] {
        let broker = TestBroker::start();
        let out =
            run(broker.port(), &["conn", "--n", "60", "--rate", "300", "--hold", "0.3", "--mqtt", mqtt]);
        let s = &out.summary;
        assert_eq!(out.exit_code, EXIT_OK, "{}: {:?}", s.one_line(), s.errors);
        assert_eq!(s.connections.connected, 60);
        assert_eq!(s.connections.failed, 0);
        assert_eq!(s.connections.attempted, s.connections.connected + s.connections.failed);
        assert_eq!(s.latency_us["connect"].count, 60);
        assert_eq!(s.latency_us["connect_corrected"].count, 60);
        let rate = s.connections.connect_rate_per_s.unwrap();
        // Pacing may fall behind on a loaded machine but must never run ahead of the rate.
        assert!(rate < 400.0, "opened at {rate}/s, asked 300/s");
    }
}

#[test]
fn conn_counts_refused_connections_and_fails() {
    // Nothing listens on this port: every attempt is refused at TCP.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = run(port, &["conn", "--n", "5", "--rate", "100", "--hold", "0"]);
    assert_eq!(out.exit_code, ringmq_loadgen::EXIT_RUN_FAILED);
    assert_eq!(out.summary.connections.failed, 5);
    assert!(!out.summary.status.ok);
}

#[test]
fn pubsub_run_without_a_broker_fails_fast_and_does_not_start() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let out = run(port, &["pairs", "--n", "2", "--qos", "1"]);
    assert_eq!(out.exit_code, ringmq_loadgen::EXIT_RUN_FAILED);
    assert_eq!(out.summary.messages.sent, 0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn writes_summary_histograms_report_and_plot() {
    let broker = TestBroker::start();
    let dir = std::env::temp_dir().join(format!("ringmq-loadgen-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_s = dir.to_str().unwrap().to_string();
    let out = run(broker.port(), &["fanout", "--subs", "3", "--qos", "1", "--rate", "300", "--out", &dir_s]);
    assert_delivered(&out, 1);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["tool"], "ringmq-loadgen");
    assert_eq!(json["config"]["scenario"], "fanout");
    assert_eq!(json["messages"]["lost"], 0);
    assert!(json["machine"]["nproc"].as_u64().unwrap() >= 1);
    assert!(json["command_line"].as_array().unwrap().len() > 3);
    assert!(json["latency_us"]["e2e_corrected"]["p99"].as_f64().unwrap() > 0.0);
    assert!(json["build"]["rustc"].as_str().unwrap().starts_with("rustc"));
    for f in ["e2e_us.hgrm", "e2e_corrected_us.hgrm", "ack_rtt_us.hgrm", "connect_us.hgrm"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|_| panic!("{f} written"));
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"), "{f}");
        assert!(text.contains("#[Mean    ="), "{f}");
        assert!(text.lines().last().unwrap().starts_with("#[Buckets ="), "{f}");
    }
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("| lost | 0 |"));
    let svg = std::fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("e2e_corrected"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Mosquitto on a free port with its queue and inflight limits off, killed when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
    _conf: std::path::PathBuf,
}

impl Mosquitto {
    fn start() -> Option<Mosquitto> {
        let found =
            Command::new("mosquitto").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !found {
            eprintln!("note: mosquitto is not on PATH; skipping the Mosquitto end-to-end runs");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf =
            std::env::temp_dir().join(format!("ringmq-loadgen-mosquitto-{}-{port}.conf", std::process::id()));
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n"
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("note: cannot start mosquitto ({e}); skipping");
                return None;
            }
        };
        let m = Mosquitto { child, port, _conf: conf };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(m)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self._conf);
    }
}

#[test]
fn mosquitto_runs_the_same_scenarios_without_loss() {
    let Some(m) = Mosquitto::start() else { return };
    let runs: &[(u8, &[&str])] = &[
        (1, &["pairs", "--n", "4", "--rate", "200"]),
        (2, &["fanout", "--subs", "3", "--rate", "200", "--mqtt", "5"]),
        (1, &["shared", "--pubs", "2", "--subs", "2", "--rate", "200", "--mqtt", "5"]),
        (1, &["retained", "--n", "100", "--subs", "2"]),
    ];
    for (qos, args) in runs {
        let qos_s = qos.to_string();
        let mut a = args.to_vec();
        a.extend_from_slice(&["--qos", &qos_s]);
        let out = run(m.port, &a);
        assert_delivered(&out, *qos);
    }
}

/// A scenario file with two publisher groups (QoS 0 with varying sizes, QoS 1), wildcard
/// subscribers at mixed QoS; the command line's --port and --duration override the file's.
#[test]
fn scenario_file_runs_groups_at_their_qos_and_the_flags_override_it() {
    let broker = TestBroker::start();
    let file = std::env::temp_dir().join(format!("ringmq-loadgen-scenario-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        r##"
        name = "mixed"
        port = 1            # nothing listens there: --port must win
        duration = "60s"    # --duration must win, or the test takes a minute
        warmup = "0.2s"
        drain = "5s"
        [[publishers]]
        count = 3
        topic = "sensors/{i}/t"
        qos = 0
        rate = 50
        size = { min = 20, max = 300 }
        [[publishers]]
        count = 2
        topic = "alarms/{i}"
        qos = 1
        rate = 20
        [[subscribers]]
        count = 2
        filter = "sensors/+/t"
        qos = 1
        [[subscribers]]
        count = 1
        filter = "#"
        qos = 1
        "##,
    )
    .unwrap();
    let port = broker.port().to_string();
    let argv =
        ["ringmq-loadgen", "run", file.to_str().unwrap(), "--port", &port, "--duration", "1", "--quiet"];
    let started = Instant::now();
    let out = ringmq_loadgen::run_argv(argv).unwrap_or_else(|e| panic!("{e:#}"));
    let _ = std::fs::remove_file(&file);
    let s = &out.summary;
    assert!(started.elapsed() < Duration::from_secs(20), "--duration 1 overrides the file's 60 s");
    assert_counters_agree(s);
    assert_eq!(out.exit_code, EXIT_OK, "{}: {:?}", s.one_line(), s.status);
    assert_eq!((s.config.pubs, s.config.subs), (5, 3));
    // Sensors owe 3 deliveries (two sensor subscribers and the archive), alarms 1.
    let owed: Vec<u64> = s.per_publisher.iter().map(|r| r.expected / r.sent.max(1)).collect();
    assert_eq!(owed, [3, 3, 3, 1, 1]);
    let alarms_lost: u64 = s.per_publisher[3..].iter().map(|r| r.lost).sum();
    assert_eq!(alarms_lost, 0, "QoS 1 to QoS 1 subscribers: nothing lost");
    assert!(s.per_publisher[3].sent >= 15, "alarms at 20/s over 1.2 s: {:?}", s.per_publisher[3]);
    assert!(s.latency_us.contains_key("ack_rtt"), "the QoS 1 group is acknowledged");
    assert!(s.one_line().contains("\"mixed\" 5x3"), "{}", s.one_line());
}
