//! The real `ringmq` binary: the Mosquitto tutorial walk-through with `-v` logging,
//! SIGTERM, and a config file it must refuse. The bound port is read from the log line
//! `Opening ipv4 listen socket on 127.0.0.1:PORT.` on standard error.

use crate::common::*;
use ringmq::protocol::{Packet, ReasonCode};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `ringmq`: killed on drop if still running; its stderr lines collected.
pub(crate) struct BrokerProcess {
    pub(crate) child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub(crate) addr: SocketAddr,
}

impl BrokerProcess {
    pub(crate) fn spawn(args: &[&str]) -> BrokerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringmq"));
        command.args(args);
        BrokerProcess::spawn_command(command)
    }

    /// As [`BrokerProcess::spawn`], for a command that runs `ringmq` in the end (a shell
    /// that sets limits first, say).
    pub(crate) fn spawn_command(mut command: Command) -> BrokerProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringmq");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut p = BrokerProcess { child, lines, addr: "0.0.0.0:0".parse().unwrap() };
        let line = p.wait_for_line("Opening ipv4 listen socket on ", Duration::from_secs(10));
        let addr = line
            .split("Opening ipv4 listen socket on ")
            .nth(1)
            .and_then(|rest| rest.strip_suffix('.'))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse the listen address from {line:?}"));
        p.addr = addr;
        p
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first log line containing `needle`, waiting up to `timeout`.
    pub(crate) fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("ringmq exited ({status}) before logging {needle:?}; log: {:#?}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} within {timeout:?}; log: {:#?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ringmq still running {timeout:?} after the signal; log: {:#?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn mosquitto_tutorial_walkthrough_delivers_hello_world_and_logs_it() {
    let mut broker = BrokerProcess::spawn(&["-v", "--cores", "4", "--listen", "127.0.0.1:0"]);
    // mosquitto_sub -t home/garden/fountain/2
    let mut sub = Raw::client(broker.addr, "tutorial-sub", V3_1_1);
    sub.subscribe_ok(&[("home/garden/fountain/2", Q0)]);
    // mosquitto_pub -t home/garden/fountain/2 -m "hello world"
    let mut publisher = Raw::client(broker.addr, "tutorial-pub", V3_1_1);
    publisher.publish("home/garden/fountain/2", b"hello world", Q0, false);
    publisher.disconnect();
    let m = sub.expect_publish(IO_TIMEOUT);
    assert_eq!((&*m.topic, &m.payload[..]), ("home/garden/fountain/2", &b"hello world"[..]));

    // The log reaches the test through a pipe and a thread: wait for the line itself.
    let connected = broker.wait_for_line(" as tutorial-pub ", IO_TIMEOUT);
    assert!(connected.contains("New client connected from 127.0.0.1:"), "{connected}");
    let received = broker.wait_for_line("Received PUBLISH from tutorial-pub", IO_TIMEOUT);
    assert!(received.contains("'home/garden/fountain/2'") && received.contains("(11 bytes)"), "{received}");
    broker.wait_for_line("Client tutorial-pub disconnected.", IO_TIMEOUT);
    // Mosquitto's shape: "<unix seconds>: message".
    for l in broker.log() {
        let (secs, _) =
            l.split_once(": ").unwrap_or_else(|| panic!("log line not in Mosquitto's shape: {l:?}"));
        assert!(secs.chars().all(|c| c.is_ascii_digit()), "{l:?}");
    }
}

#[test]
fn sigterm_disconnects_clients_and_exits_0() {
    let mut broker = BrokerProcess::spawn(&["--cores", "4", "--listen", "127.0.0.1:0"]);
    let mut v5 = Raw::client(broker.addr, "shutdown-v5", V5);
    let mut v311 = Raw::client(broker.addr, "shutdown-v311", V3_1_1);
    v5.ping();
    v311.ping();
    broker.signal(libc::SIGTERM);
    let before = v5.expect_closed(IO_TIMEOUT);
    assert!(
        matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::SERVER_SHUTTING_DOWN),
        "MQTT 5 client should get DISCONNECT 0x8B: {before:?}"
    );
    assert!(v311.expect_closed(IO_TIMEOUT).is_empty());
    let status = broker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit status {status}; log: {:#?}", broker.log());
}

#[test]
fn sigint_exits_0() {
    let mut broker = BrokerProcess::spawn(&["--cores", "4", "--listen", "127.0.0.1:0"]);
    broker.signal(libc::SIGINT);
    let status = broker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit status {status}");
}

#[test]
fn config_file_with_unknown_option_fails_to_start_naming_file_and_line() {
    let dir = std::env::temp_dir().join(format!("ringmq-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.conf");
    std::fs::write(&path, "# a comment\nlistener 0 127.0.0.1\nfrobnicate yes\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["-c", path.to_str().unwrap(), "--cores", "4"])
        .stdin(Stdio::null())
        .output()
        .expect("run ringmq");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ringmq started with an unknown option; stderr: {stderr}");
    let want = format!("{}:3: frobnicate: unknown option", path.display());
    assert!(stderr.contains(&want), "stderr should contain {want:?}: {stderr}");
    assert!(!stderr.contains("Opening ipv4 listen socket"), "it listened before refusing: {stderr}");
}
