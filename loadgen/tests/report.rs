//! `ringmq-loadgen report` over a results directory laid out as `scripts/bench.sh` lays it
//! out, from real runs against two in-process ringmq brokers (one named as a peer): the
//! summaries read back through their types, and every table shows the figures and ratios
//! a reader asks for.

use ringmq::config::Config;
use ringmq::shard::Broker;
use std::path::Path;

fn broker() -> Broker {
    let config = Config {
        listeners: vec![ringmq::config::ListenerConfig::on("127.0.0.1:0".parse().unwrap())],
        cores: 1,
        max_queued_messages: 0,
        ..Default::default()
    };
    Broker::start(config, 0).expect("broker starts")
}

/// One run into `dir/BROKER/ID/`, with bench.sh's run.json beside the loadgen's files.
fn run_into(dir: &Path, broker: &str, port: u16, id: &str, kind: &str, args: &[&str]) {
    let out = dir.join(broker).join(id);
    let port = port.to_string();
    let pid = std::process::id().to_string();
    let mut argv = vec!["ringmq-loadgen"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&[
        "--port",
        &port,
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--drain",
        "3",
        "--quiet",
    ]);
    argv.extend_from_slice(&["--broker-pid", &pid, "--out", out.to_str().unwrap()]);
    let outcome = ringmq_loadgen::run_argv(argv).expect("run");
    let info = format!(
        r#"{{"broker": "{broker}", "run": "{id}", "kind": "{kind}", "exit_code": {}}}"#,
        outcome.exit_code
    );
    std::fs::write(out.join("run.json"), info).unwrap();
    std::fs::write(out.join("stdout.txt"), outcome.summary.one_line() + "\n").unwrap();
}

#[test]
fn report_shows_rate_efficiency_latency_loss_and_ratios_per_broker() {
    let dir = std::env::temp_dir().join(format!("ringmq-loadgen-report-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("meta.tsv"),
        "date\t2026-12-08T00:00:00Z\nmode\tquick\nhost\ttest\nnproc\t2\nbrokers\tringmq peer\nduration_s\t0.5\n\
         ringmq_cores\t1\nlatency_run\tpairs-10 QoS 1 at 100 msg/s per publisher\nnote\ta note\n",
    )
    .unwrap();
    for name in ["ringmq", "peer"] {
        let b = broker();
        let port = b.local_addrs()[0].port();
        let matrix =
            ["pairs", "--n", "10", "--qos", "1", "--size", "64", "--rate", "max", "--inflight", "20"];
        run_into(&dir, name, port, "pairs-10-q1-64B", "throughput", &matrix);
        let fixed = ["pairs", "--n", "10", "--qos", "1", "--size", "64", "--rate", "100"];
        run_into(&dir, name, port, "latency-r1-pairs-10-q1-64B", "latency", &fixed);
        b.shutdown();
    }
    let readme = dir.join("README.md");
    std::fs::write(&readme, "# x\n<!-- bench-headline:start -->\nold\n<!-- bench-headline:end -->\nrest\n")
        .unwrap();
    ringmq_loadgen::bench_report::run(&dir, None, Some(&readme)).expect("report");

    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for column in [
        "delivered msgs/s",
        "msgs per broker CPU-s",
        "p50",
        "p99",
        "lost",
        "ringmq ÷ it: msgs/s",
        "ringmq ÷ it: per CPU-s",
    ] {
        assert!(report.contains(column), "report.md lacks {column}");
    }
    for word in ["target", "issue 5", "missed", "queue none"] {
        assert!(!report.to_lowercase().contains(word), "report.md says {word:?}");
    }
    // The peer's headline row carries ringmq's ratios on rate and efficiency: numbers, not blanks.
    let peer_row = report.lines().find(|l| l.starts_with("| QoS 1 pairs 10 | peer |")).expect("peer row");
    assert_eq!(peer_row.matches('×').count(), 2, "{peer_row}");
    assert!(report.contains("![throughput, pairs 10](plots/throughput-pairs-10.svg)"));
    assert!(report.contains("![latency at a fixed rate](plots/latency-fixed-rate.svg)"));
    for plot in ["throughput-pairs-10.svg", "latency-fixed-rate.svg", "latency-qos1.svg"] {
        assert!(std::fs::read_to_string(dir.join("plots").join(plot)).unwrap().contains("</svg>"), "{plot}");
    }
    let readme_text = std::fs::read_to_string(&readme).unwrap();
    assert!(
        readme_text.contains("| QoS 1 pairs 10 | ringmq |")
            && readme_text.ends_with("<!-- bench-headline:end -->\nrest\n")
    );
    assert!(!readme_text.contains("old"));

    // A summary.json whose field was renamed stops the report, naming the file.
    let s = dir.join("peer/pairs-10-q1-64B/summary.json");
    let text = std::fs::read_to_string(&s).unwrap();
    std::fs::write(&s, text.replace("\"cpu_us_per_msg\"", "\"cpu_per_msg\"")).unwrap();
    let err = format!("{:#}", ringmq_loadgen::bench_report::run(&dir, None, None).unwrap_err());
    assert!(err.contains("peer/pairs-10-q1-64B/summary.json") && err.contains("cpu_us_per_msg"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
