//! The `ringmq` executable in operation, as a Mosquitto user runs it: real-world config
//! files (tests/configs/), `--test-config`, signals (SIGHUP reload under load, SIGUSR1,
//! SIGUSR2), `pid_file`, `-d`, logging destinations and types, a closed log pipe, a port
//! in use, duplicate listeners, a listener's `max_connections`, and the `-v` log against
//! Mosquitto's for the same client session.

use crate::binary::BrokerProcess;
use crate::common::*;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_ringmq");

/// A scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ringmq-ops-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

/// Runs `ringmq` to completion (it must exit by itself within 10 s).
fn run_to_exit(args: &[&str]) -> Output {
    let mut child = Command::new(EXE)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringmq");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ringmq {args:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A child `ringmq` that is killed if the test ends early (a panic), so it never
/// outlives the test holding its pipes.
struct Child(std::process::Child);

impl Child {
    fn spawn(command: &mut Command) -> Child {
        Child(command.stdin(Stdio::null()).stdout(Stdio::null()).spawn().expect("spawn ringmq"))
    }

    /// SIGTERM, then the exit code.
    fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        self.0.wait().unwrap().code()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The error lines `--test-config` prints for a file (without the "Error: " prefix and
/// the closing count), and its exit code.
fn test_config(path: &Path) -> (Option<i32>, Vec<String>) {
    let out = run_to_exit(&["--test-config", "-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = stderr
        .lines()
        .filter(|l| !l.contains("error(s) in the configuration") && *l != "Configuration file is OK.")
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l).to_string())
        .collect();
    (out.status.code(), lines)
}

#[test]
fn real_world_config_files_start_or_fail_only_on_features_open_elsewhere() {
    let scratch = Scratch::new("real-world");
    // Debian's file includes /etc/mosquitto/conf.d, which holds only a README as shipped;
    // the copy points at an empty directory so the test does not depend on this machine.
    let conf_d = scratch.0.join("conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    std::fs::write(conf_d.join("README"), "Any files placed in this directory ending in .conf ...\n")
        .unwrap();
    let debian = std::fs::read_to_string(configs_dir().join("debian-12-mosquitto.conf")).unwrap();
    assert!(debian.contains("include_dir /etc/mosquitto/conf.d"));
    let debian = scratch.write(
        "debian-12-mosquitto.conf",
        &debian.replace("/etc/mosquitto/conf.d", conf_d.to_str().unwrap()),
    );
    // --test-config reads the password and ACL files: the copy points at the ones beside it.
    let password_acl = std::fs::read_to_string(configs_dir().join("password-acl.conf")).unwrap();
    let files = configs_dir().join("password-acl");
    let password_acl = scratch.write(
        "password-acl.conf",
        &password_acl.replace("/etc/mosquitto/", &format!("{}/", files.display())),
    );
    // The line goes on to say what persistence stores so far; its start is what matters.
    let persistence_refused = "persistence: not in service yet";
    let bridges = "bridges are not implemented yet";
    let cfg = |name: &str| configs_dir().join(name);
    let at = |p: &Path, line: usize, msg: &str| format!("{}:{line}: {msg}", p.display());
    let cases: Vec<(PathBuf, Vec<String>)> = vec![
        (debian.clone(), vec![at(&debian, 8, persistence_refused)]),
        (cfg("eclipse-mosquitto-2.0-default.conf"), vec![]),
        (
            cfg("eclipse-mosquitto-compose.conf"),
            vec![at(&cfg("eclipse-mosquitto-compose.conf"), 1, persistence_refused)],
        ),
        (password_acl, vec![]),
        // Its certificate files are read at start-up, not by --test-config.
        (cfg("tls.conf"), vec![]),
        (cfg("websockets.conf"), vec![]),
        (
            cfg("bridge.conf"),
            [
                (4, "connection"),
                (5, "address"),
                (6, "topic"),
                (7, "topic"),
                (8, "remote_username"),
                (9, "remote_password"),
                (10, "bridge_protocol_version"),
                (11, "cleansession"),
            ]
            .iter()
            .map(|(l, o)| at(&cfg("bridge.conf"), *l, &format!("{o}: {bridges}")))
            .collect(),
        ),
    ];
    for (path, want) in cases {
        let (code, got) = test_config(&path);
        let matches =
            got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| g.starts_with(w.as_str()));
        assert!(matches, "{}:\n got: {got:#?}\nwant: {want:#?}", path.display());
        assert_eq!(code, Some(if want.is_empty() { 0 } else { 1 }), "{}", path.display());
    }
}

#[test]
fn a_config_with_many_mistakes_reports_them_all_with_what_is_allowed() {
    let scratch = Scratch::new("mistakes");
    let path = scratch.write(
        "bad.conf",
        "\u{feff}listener 70000\nmax_keepalive 70000\nlistener 1883\nlistener 1883\nlog_dest carrier-pigeon\n",
    );
    let (code, got) = test_config(&path);
    assert_eq!(code, Some(1));
    let p = path.display();
    assert_eq!(
        got,
        [
            format!("{p}:1: listener: expected a whole number from 0 to 65535, got '70000'"),
            format!("{p}:2: max_keepalive: expected a whole number from 0 to 65535, got '70000'"),
            format!("{p}:5: log_dest: expected stderr, stdout, syslog, file PATH, topic or none; got 'carrier-pigeon'"),
            format!("{p}:4: listener: port 1883 on 0.0.0.0 is already a listener ({p}:3): two listeners cannot share an address and port"),
        ]
    );
    let missing = run_to_exit(&["-c", "/nonexistent/ringmq.conf"]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "the cause once: {stderr}");
}

#[test]
fn a_port_in_use_fails_with_address_already_in_use() {
    // Anything on the port, here a plain socket ...
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_to_exit(&["--cores", "2", "--listen", &addr]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");
    drop(taken);
    // ... and another ringmq, whose SO_REUSEPORT sockets would otherwise share it.
    let first = BrokerProcess::spawn(&["--cores", "2", "--listen", "127.0.0.1:0"]);
    let out = run_to_exit(&["--cores", "2", "--listen", &first.addr.to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a second ringmq started on {}: {stderr}", first.addr);
    assert!(stderr.contains("Address already in use"), "{stderr}");
}

#[test]
fn a_closed_log_pipe_does_not_stop_the_broker() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Child::spawn(
        Command::new(EXE).args(["-v", "--cores", "2", "--listen", &listen]).stderr(Stdio::piped()),
    );
    // As `ringmq -v 2>&1 | head -n 2`: two lines read, then the pipe closes.
    let mut reader = BufReader::new(child.0.stderr.take().unwrap());
    for _ in 0..2 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
    }
    drop(reader);
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "ringmq does not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every packet is a log line, and every one meets the closed pipe.
    for i in 0..20 {
        let mut c = Raw::client(addr, format!("pipe-{i}"), V3_1_1);
        c.publish("pipe/test", b"x", Q1, false);
        c.disconnect();
    }
    let mut c = Raw::client(addr, "pipe-last", V5);
    c.ping();
    assert!(child.0.try_wait().unwrap().is_none(), "ringmq exited after its log pipe closed");
    assert_eq!(child.terminate(), Some(0));
}

#[test]
fn sighup_reloads_logging_without_losing_a_connection() {
    let scratch = Scratch::new("reload");
    let port = free_port();
    let conf = scratch.write("ringmq.conf", &format!("listener {port} 127.0.0.1\nallow_anonymous true\n"));
    let mut broker = BrokerProcess::spawn(&["--cores", "2", "-c", conf.to_str().unwrap()]);
    let addr = broker.addr;
    let mut sub = Raw::client(addr, "reload-sub", V5);
    sub.subscribe_ok(&[("reload/#", Q1)]);
    broker.wait_for_line("as reload-sub", IO_TIMEOUT);
    // A publisher keeps publishing QoS 1 while the broker reloads.
    let publisher = std::thread::spawn(move || {
        let mut p = Raw::client(addr, "reload-pub", V3_1_1);
        for i in 0..300u32 {
            p.publish("reload/load", &i.to_be_bytes(), Q1, false);
            std::thread::sleep(Duration::from_micros(500));
        }
        p.disconnect();
    });
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nconnection_messages false\n"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    broker.signal(libc::SIGHUP);
    broker.wait_for_line("Reloading config.", IO_TIMEOUT);
    publisher.join().expect("the publisher lost nothing across the reload");
    let got = sub.expect_publishes(300, IO_TIMEOUT);
    let order: Vec<u32> =
        got.iter().map(|m| u32::from_be_bytes(m.payload[..4].try_into().unwrap())).collect();
    assert_eq!(order, (0..300).collect::<Vec<_>>());
    sub.ping();
    // connection_messages false now: a new client is not logged. SIGUSR1's line is the fence.
    let late = Raw::client(addr, "reload-late", V3_1_1);
    late.disconnect();
    broker.signal(libc::SIGUSR1);
    broker.wait_for_line("Received SIGUSR1", IO_TIMEOUT);
    // Two connections before the reload, none after.
    let accepted = broker.log().iter().filter(|l| l.contains("New connection from")).count();
    assert_eq!(accepted, 2, "{:#?}", broker.log());
    assert!(!broker.log().iter().any(|l| l.contains("as reload-late")), "{:#?}", broker.log());
    broker.signal(libc::SIGTERM);
    assert_eq!(broker.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn sigusr1_and_sigusr2_are_logged_and_the_broker_runs_on() {
    let mut broker = BrokerProcess::spawn(&["--cores", "2", "--listen", "127.0.0.1:0"]);
    broker.signal(libc::SIGUSR1);
    let line = broker.wait_for_line("Received SIGUSR1", IO_TIMEOUT);
    assert!(line.contains("persistence is off, so there is nothing to save"), "{line}");
    broker.signal(libc::SIGUSR2);
    broker.wait_for_line("Received SIGUSR2", IO_TIMEOUT);
    let mut c = Raw::client(broker.addr, "usr", V5);
    c.ping();
    broker.signal(libc::SIGTERM);
    assert_eq!(broker.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn pid_file_log_file_and_log_type_are_honoured() {
    let scratch = Scratch::new("pid-log");
    let (pid_file, log_file) = (scratch.0.join("ringmq.pid"), scratch.0.join("ringmq.log"));
    let port = free_port();
    let conf = scratch.write(
        "ringmq.conf",
        &format!(
            "user root\npid_file {}\nlog_dest file {}\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_timestamp_format %Y-%m-%dT%H:%M:%S\nlistener {port} 127.0.0.1\nallow_anonymous true\n",
            pid_file.display(),
            log_file.display()
        ),
    );
    let mut broker = BrokerProcess::spawn(&["--cores", "2", "-c", conf.to_str().unwrap()]);
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_eq!(pid, broker.child.id());
    let mut c = Raw::client(broker.addr, "logged", V3_1_1);
    c.subscribe_ok(&[("a", Q0)]);
    broker.wait_for_line("New connection from", IO_TIMEOUT);
    broker.signal(libc::SIGTERM);
    assert_eq!(broker.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(!pid_file.exists(), "pid_file removed at exit");
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("New connection from 127.0.0.1:"), "{log}");
    assert!(!log.contains("Received SUBSCRIBE"), "debug lines are off: {log}");
    let first = log.lines().next().unwrap();
    let stamp = first.split(": ").next().unwrap();
    assert_eq!(stamp.len(), "2026-12-08T04:00:00".len(), "{first}");
    assert_eq!(&stamp[4..5], "-", "{first}");

    // log_type none: not a line, not even at shutdown.
    let conf = scratch.write("none.conf", &format!("listener {port} 127.0.0.1\nlog_type none\n"));
    let mut child = Child::spawn(
        Command::new(EXE).args(["--cores", "2", "-c", conf.to_str().unwrap()]).stderr(Stdio::piped()),
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "ringmq does not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stderr_pipe = child.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut stderr = String::new();
        stderr_pipe.read_to_string(&mut stderr).unwrap();
        stderr
    });
    assert_eq!(child.terminate(), Some(0));
    let stderr = reader.join().unwrap();
    assert_eq!(stderr, "", "log_type none logs nothing");
}

#[test]
fn daemon_mode_returns_once_listening_and_writes_its_pid() {
    let scratch = Scratch::new("daemon");
    let pid_file = scratch.0.join("ringmq.pid");
    let port = free_port();
    let conf = scratch.write(
        "ringmq.conf",
        &format!(
            "user root\npid_file {}\nlistener {port} 127.0.0.1\nallow_anonymous true\n",
            pid_file.display()
        ),
    );
    let out = run_to_exit(&["-d", "--cores", "2", "-c", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let mut c = Raw::client(format!("127.0.0.1:{port}").parse().unwrap(), "daemon-client", V5);
    c.ping();
    // SAFETY: kill(2) on the daemon this test started (its pid from its pid_file).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_file.exists() {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A daemon that cannot start says why and the command fails.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let conf = scratch.write(
        "taken.conf",
        &format!("user root\nlistener {} 127.0.0.1\n", taken.local_addr().unwrap().port()),
    );
    let out = run_to_exit(&["-d", "--cores", "2", "-c", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Address already in use"));
}

#[test]
fn a_listeners_max_connections_turns_away_the_next_client() {
    let scratch = Scratch::new("max-conn");
    let conf =
        scratch.write("ringmq.conf", "listener 0 127.0.0.1\nmax_connections 2\nallow_anonymous true\n");
    let broker = BrokerProcess::spawn(&["--cores", "2", "-c", conf.to_str().unwrap()]);
    let mut a = Raw::client(broker.addr, "max-a", V5);
    let b = Raw::client(broker.addr, "max-b", V5);
    let mut c = Raw::open(broker.addr, V5);
    let _ = c.try_send_raw(&[0x10, 0x00]);
    assert!(c.expect_closed(IO_TIMEOUT).is_empty(), "the third connection is closed unanswered");
    a.ping();
    b.disconnect();
    // The place b held is free again.
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let (mut d, ack) =
            match std::panic::catch_unwind(|| Raw::connect(broker.addr, Conn::new("max-d", V5))) {
                Ok(x) => x,
                Err(_) => {
                    assert!(Instant::now() < deadline, "no room after a client left");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
        assert_eq!(ack.code, ringmq::protocol::ReasonCode::SUCCESS);
        d.ping();
        break;
    }
}

/// The `-v` lines Mosquitto 2.0.11 wrote for one session (tests/configs/mosquitto-2.0.11-v-session.log:
/// mosquitto_sub on a/# at QoS 2, mosquitto_pub at QoS 1, then at QoS 2 over MQTT 5), and
/// ringmq's for the same session, with times, ports and the listener's port normalized.
/// Every Mosquitto line must be in ringmq's log, except those listed here as not written
/// yet; each of those must still be missing, so the list shrinks as they are added.
#[test]
fn verbose_log_lines_match_mosquittos_for_the_same_session() {
    let (Ok(_), Ok(_)) = (which("mosquitto_pub"), which("mosquitto_sub")) else {
        eprintln!(
            "skipped: mosquitto_pub and mosquitto_sub are not installed (apt-get install mosquitto-clients)"
        );
        return;
    };
    // Lines ringmq does not write yet, and where they belong (none now).
    let not_yet: &[&str] = &[];
    let fixture = std::fs::read_to_string(configs_dir().join("mosquitto-2.0.11-v-session.log")).unwrap();
    let mosquitto: Vec<String> =
        fixture.lines().map(normalize).skip_while(|l| !l.starts_with("New connection")).collect();

    let mut broker = BrokerProcess::spawn(&["-v", "--cores", "2", "--listen", "127.0.0.1:0"]);
    let port = broker.addr.port().to_string();
    let mut sub = Command::new("mosquitto_sub")
        .args(["-p", &port, "-t", "a/#", "-q", "2", "-C", "2", "-i", "subby"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    broker.wait_for_line("Sending SUBACK to subby", IO_TIMEOUT);
    let publish = |args: &[&str]| {
        let st = Command::new("mosquitto_pub").args(["-p", &port]).args(args).status().unwrap();
        assert!(st.success());
    };
    publish(&["-t", "a/b", "-m", "hi", "-q", "1", "-i", "pubby"]);
    broker.wait_for_line("Client pubby disconnected.", IO_TIMEOUT);
    publish(&["-t", "a/c", "-m", "hey", "-q", "2", "-i", "pub2", "-V", "mqttv5"]);
    assert!(sub.wait().unwrap().success());
    broker.wait_for_line("Client subby disconnected.", IO_TIMEOUT);
    // pub2 may be on the other shard, whose line can come after subby's.
    broker.wait_for_line("Client pub2 disconnected.", IO_TIMEOUT);
    let ours: Vec<String> = broker.log().iter().map(|l| normalize(l)).collect();
    let missing: Vec<&String> = mosquitto.iter().filter(|l| !ours.contains(l)).collect();
    let unexpected: Vec<&&String> = missing.iter().filter(|l| !not_yet.contains(&l.as_str())).collect();
    assert!(
        unexpected.is_empty(),
        "Mosquitto's lines missing from ringmq's log: {unexpected:#?}\nringmq's log: {ours:#?}"
    );
    let now_written: Vec<&&str> = not_yet.iter().filter(|l| ours.iter().any(|o| o == *l)).collect();
    assert!(now_written.is_empty(), "now written, take them off the list: {now_written:?}");
}

/// A log line without its timestamp, with client ports and the listener's port as `PORT`.
fn normalize(line: &str) -> String {
    let text = line.split_once(": ").map_or(line, |(_, t)| t);
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..i + "127.0.0.1:".len()]);
        rest = rest[i + "127.0.0.1:".len()..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push_str("PORT");
    }
    out.push_str(rest);
    match out.find(" on port ") {
        Some(i) => format!("{} on port PORT.", &out[..i]),
        None => out,
    }
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.is_file()))
        .ok_or(())
}

#[test]
fn a_low_locked_memory_limit_is_named_with_the_amount_needed_and_never_panics() {
    // Root is not held to RLIMIT_MEMLOCK (CAP_IPC_LOCK): run as nobody, where setpriv exists.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && which("setpriv").is_err() {
        eprintln!("skipped: running as root without setpriv to drop CAP_IPC_LOCK");
        return;
    }
    let demote = if root { "setpriv --reuid=65534 --regid=65534 --clear-groups " } else { "" };
    for limit_kib in [64, 512] {
        let script = format!("ulimit -l {limit_kib} && exec {demote}{EXE} --cores 2 --listen 127.0.0.1:0");
        let out = Command::new("sh").args(["-c", &script]).stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "ulimit -l {limit_kib}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "(RLIMIT_MEMLOCK, `ulimit -l`) is {limit_kib} KiB and 2 shard(s) need about"
            )) && stderr.contains("LimitMEMLOCK=infinity"),
            "ulimit -l {limit_kib}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn accept_failures_at_the_open_file_limit_are_logged_once_per_episode() {
    let mut sh = Command::new("sh");
    sh.args(["-c", &format!("ulimit -n 48 && exec {EXE} --cores 1 --listen 127.0.0.1:0")]);
    let mut broker = BrokerProcess::spawn_command(sh);
    broker.wait_for_line("running with 1 shard(s)", IO_TIMEOUT);
    // More connections than descriptors: the rest wait in the listen backlog while every
    // accept fails with EMFILE, for long enough to be retried many times.
    let clients: Vec<std::net::TcpStream> =
        (0..80).map(|_| std::net::TcpStream::connect(broker.addr).unwrap()).collect();
    broker.wait_for_line("Error accepting a connection: Too many open files", IO_TIMEOUT);
    std::thread::sleep(Duration::from_millis(600));
    drop(clients);
    let again = broker.wait_for_line("Accepting connections again, after ", Duration::from_secs(15));
    let failed: u64 = again.split("after ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(failed >= 2, "the pause is retried, and the retries counted: {again}");
    let errors = broker.log().iter().filter(|l| l.contains("Error accepting a connection")).count();
    assert_eq!(errors, 1, "one line for the episode: {:#?}", broker.log());
    let mut c = Raw::client(broker.addr, "after-emfile", V5);
    c.ping();
}

#[test]
fn a_full_log_pipe_never_stalls_the_broker() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // -v logs a line per packet; nobody reads the pipe, so it fills after 64 KiB.
    let mut child = Child::spawn(
        Command::new(EXE).args(["-v", "--cores", "2", "--listen", &listen]).stderr(Stdio::piped()),
    );
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "ringmq does not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sub = Raw::client(addr, "full-pipe-sub", V3_1_1);
    sub.subscribe_ok(&[("full/#", Q1)]);
    let mut publisher = Raw::client(addr, "full-pipe-pub", V3_1_1);
    // Each PUBLISH is a log line: 20,000 are far more than the pipe (64 KiB) and the log
    // queue (16,384 lines) hold.
    for i in 0..20_000u32 {
        publisher.publish("nobody/listens", &i.to_be_bytes(), Q0, false);
    }
    // Round trips still complete at once.
    for i in 0..200u32 {
        publisher.publish("full/pipe", &i.to_be_bytes(), Q1, false);
        let m = sub.expect_publish(IO_TIMEOUT);
        assert_eq!(&m.payload[..], &i.to_be_bytes()[..]);
    }
    let mut stderr_pipe = child.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut stderr = String::new();
        stderr_pipe.read_to_string(&mut stderr).unwrap();
        stderr
    });
    assert_eq!(child.terminate(), Some(0));
    let stderr = reader.join().unwrap();
    assert!(
        stderr.contains("log lines were dropped: the log destination did not keep up"),
        "{}",
        &stderr[..2000.min(stderr.len())]
    );
}

#[test]
fn sys_topics_are_published_every_sys_interval_and_retained() {
    let scratch = Scratch::new("sys");
    let conf = scratch.write("ringmq.conf", "listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 1\n");
    let broker = BrokerProcess::spawn(&["--cores", "2", "-c", conf.to_str().unwrap()]);
    let mut watcher = Raw::client(broker.addr, "sys-watcher", V3_1_1);
    watcher.subscribe_ok(&[("$SYS/#", Q0), ("sys/test", Q0)]);
    let mut other = Raw::client(broker.addr, "sys-other", V5);
    other.subscribe_ok(&[("a/b", Q1), ("c/#", Q0)]);
    // Each shard's figures reach the tree at its next interval: wait for the tree that
    // counts both clients, their subscriptions and their bytes.
    let mut latest = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let m = watcher.expect_publish(Duration::from_secs(3));
        latest.insert(m.topic.to_string(), String::from_utf8_lossy(&m.payload).to_string());
        if latest.get("$SYS/broker/clients/connected").map(String::as_str) == Some("2")
            && latest.get("$SYS/broker/subscriptions/count").map(String::as_str) == Some("4")
            && latest.contains_key("$SYS/broker/shards/1/bytes/sent")
            && latest.get("$SYS/broker/bytes/received").is_some_and(|b| b != "0")
        {
            break;
        }
    }
    assert_eq!(latest.get("$SYS/broker/clients/connected").map(String::as_str), Some("2"), "{latest:#?}");
    assert_eq!(latest.get("$SYS/broker/subscriptions/count").map(String::as_str), Some("4"), "{latest:#?}");
    assert_eq!(latest["$SYS/broker/version"], format!("ringmq version {}", env!("CARGO_PKG_VERSION")));
    assert!(latest["$SYS/broker/uptime"].ends_with(" seconds"), "{latest:#?}");
    for shard in 0..2 {
        assert!(latest.contains_key(&format!("$SYS/broker/shards/{shard}/bytes/received")), "{latest:#?}");
    }
    let received: u64 = latest["$SYS/broker/bytes/received"].parse().unwrap();
    assert!(received > 0, "{latest:#?}");
    // Retained, as in Mosquitto: a late subscriber gets the version at once.
    let mut late = Raw::client(broker.addr, "sys-late", V5);
    late.subscribe_ok(&[("$SYS/broker/version", Q0)]);
    let m = late.expect_publish(IO_TIMEOUT);
    assert!(m.retain, "$SYS values are retained");
    // Without a config file the binary publishes at Mosquitto's default interval, the
    // first tree at start.
    let plain = BrokerProcess::spawn(&["--cores", "2", "--listen", "127.0.0.1:0"]);
    let mut c = Raw::client(plain.addr, "sys-default", V3_1_1);
    c.subscribe_ok(&[("$SYS/broker/version", Q0)]);
    // (Retained, or live if the subscription came before the first tree.)
    let m = c.expect_publish(IO_TIMEOUT);
    assert!(m.payload.starts_with(b"ringmq version "), "{m:?}");
}

#[test]
fn sys_counts_publishes_received_sent_and_dropped_with_load_averages_and_per_shard_figures() {
    let scratch = Scratch::new("sys-counts");
    let conf = scratch.write("ringmq.conf", "listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 1\n");
    let broker = BrokerProcess::spawn(&["--cores", "2", "-c", conf.to_str().unwrap()]);
    let mut watcher = Raw::client(broker.addr, "sys-count-watcher", V3_1_1);
    watcher.subscribe_ok(&[("$SYS/#", Q0), ("counted/#", Q1)]);
    let mut latest = std::collections::HashMap::new();
    // The load averages need a tree before the publishes to measure from.
    while !latest.contains_key("$SYS/broker/uptime") {
        let m = watcher.expect_publish(Duration::from_secs(3));
        latest.insert(m.topic.to_string(), String::from_utf8_lossy(&m.payload).to_string());
    }
    let mut publisher = Raw::client(broker.addr, "sys-count-publisher", V5);
    for _ in 0..3 {
        publisher.publish("counted/one", b"0123456789", Q1, false);
    }
    for _ in 0..2 {
        publisher.publish("counted/zero", b"01234", Q0, false);
    }
    let mut counted = 0;
    let deadline = Instant::now() + Duration::from_secs(8);
    let done = |latest: &std::collections::HashMap<String, String>| {
        latest.get("$SYS/broker/publish/messages/received").map(String::as_str) == Some("5")
            && latest.get("$SYS/broker/load/publish/received/1min").is_some_and(|v| v != "0.00")
            // The subscriber's shard counts what it sent at its own next interval.
            && latest.get("$SYS/broker/publish/messages/sent").is_some_and(|v| v.parse::<u64>().unwrap() >= 5)
            && (0..2).all(|s| latest.contains_key(&format!("$SYS/broker/shards/{s}/publish/messages/received")))
    };
    while Instant::now() < deadline && !done(&latest) {
        let m = watcher.expect_publish(Duration::from_secs(3));
        if m.topic.starts_with("counted/") {
            counted += 1;
        }
        latest.insert(m.topic.to_string(), String::from_utf8_lossy(&m.payload).to_string());
    }
    assert!(done(&latest), "{latest:#?}");
    // The rest of that tree: read on to the next one's first value.
    loop {
        let m = watcher.expect_publish(Duration::from_secs(3));
        if &*m.topic == "$SYS/broker/uptime" {
            break;
        }
        latest.insert(m.topic.to_string(), String::from_utf8_lossy(&m.payload).to_string());
    }
    assert_eq!(counted, 5);
    let get = |t: &str| -> u64 {
        latest.get(t).unwrap_or_else(|| panic!("{t} missing: {latest:#?}")).parse().unwrap()
    };
    assert_eq!(get("$SYS/broker/publish/bytes/received"), 3 * 10 + 2 * 5);
    // The watcher got the five and the $SYS values themselves.
    assert!(get("$SYS/broker/publish/messages/sent") >= 5, "{latest:#?}");
    assert!(get("$SYS/broker/publish/bytes/sent") >= 40, "{latest:#?}");
    // Two CONNECTs, a SUBSCRIBE and five PUBLISH at least (the watcher's PUBACKs are
    // counted on its shard, which may not have reached its interval yet).
    assert!(get("$SYS/broker/messages/received") >= 8, "{latest:#?}");
    let publisher_shard = (0..2)
        .find(|s| get(&format!("$SYS/broker/shards/{s}/publish/messages/received")) == 5)
        .expect("the publisher's shard");
    // Its CONNECT and five PUBLISH, all before the tree that counted them.
    assert!(get(&format!("$SYS/broker/shards/{publisher_shard}/messages/received")) >= 6, "{latest:#?}");
    assert_eq!(get("$SYS/broker/publish/messages/dropped"), 0);
    assert_eq!(get("$SYS/broker/clients/expired"), 0);
    let per_shard: u64 =
        (0..2).map(|s| get(&format!("$SYS/broker/shards/{s}/publish/messages/received"))).sum();
    assert_eq!(per_shard, 5);
    for s in 0..2 {
        get(&format!("$SYS/broker/shards/{s}/mesh/queued"));
        get(&format!("$SYS/broker/shards/{s}/publish/dropped/queue full"));
    }
    for window in ["1min", "5min", "15min"] {
        let v = &latest[&format!("$SYS/broker/load/publish/received/{window}")];
        assert!(v.parse::<f64>().unwrap() > 0.0 && v.contains('.'), "{window}: {v}");
    }
    // The publisher's socket and CONNECT came after the first tree.
    for load in ["sockets", "connections"] {
        let v = &latest[&format!("$SYS/broker/load/{load}/1min")];
        assert!(v.parse::<f64>().unwrap() > 0.0, "{load}: {v}");
    }
}

/// GETs `path` from the metrics endpoint: the status line and the body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn metrics_endpoint_serves_per_shard_counters_that_a_prometheus_parser_reads() {
    use prometheus_parse::{Scrape, Value};
    let broker = TestBroker::start_with(|c| {
        c.cores = 2;
        c.metrics_listener = Some("127.0.0.1:0".parse().unwrap());
    });
    let metrics = broker.broker().metrics_addr().expect("metrics on");
    let mut sub = Raw::client(broker.addr, "metrics-sub", V5);
    sub.subscribe_ok(&[("metered/#", Q1)]);
    let mut publisher = Raw::client(broker.addr, "metrics-pub", V3_1_1);
    for _ in 0..4 {
        publisher.publish("metered/a", b"abcdef", Q1, false);
    }
    publisher.publish("metered/b", b"xy", Q0, false);
    sub.expect_publishes(5, IO_TIMEOUT);
    let value = |s: &prometheus_parse::Sample| match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{s:?}"),
    };
    // The shards refresh their figures once a second while the endpoint is on.
    let deadline = Instant::now() + Duration::from_secs(5);
    let scrape = loop {
        let (status, body) = http_get(metrics, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format");
        let sent: f64 =
            scrape.samples.iter().filter(|s| s.metric == "ringmq_publish_sent_total").map(value).sum();
        // Turns are timed from each shard's first tick with the endpoint on.
        let timed =
            body.lines().any(|l| l.starts_with("ringmq_turn_duration_seconds_count") && !l.ends_with(" 0"));
        if (sent >= 5.0 && timed) || Instant::now() > deadline {
            break scrape;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let sum = |metric: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(value)
            .sum()
    };
    assert_eq!(sum("ringmq_publish_received_total", Some(("qos", "1"))), 4.0);
    assert_eq!(sum("ringmq_publish_received_total", Some(("qos", "0"))), 1.0);
    assert_eq!(sum("ringmq_publish_received_payload_bytes_total", None), 26.0);
    assert_eq!(sum("ringmq_publish_sent_total", Some(("qos", "1"))), 4.0);
    assert_eq!(sum("ringmq_publish_sent_total", Some(("qos", "0"))), 1.0);
    assert_eq!(sum("ringmq_publish_dropped_total", None), 0.0);
    assert_eq!(sum("ringmq_clients", Some(("state", "connected"))), 2.0);
    assert_eq!(sum("ringmq_subscriptions", None), 1.0);
    assert!(sum("ringmq_bytes_received_total", None) > 0.0);
    // Labelled by shard (both present), QoS and cause; typed and documented.
    for shard in ["0", "1"] {
        assert!(scrape
            .samples
            .iter()
            .any(|s| s.metric == "ringmq_mesh_queued_messages" && s.labels.get("shard") == Some(shard)));
    }
    for cause in ["slow_subscriber", "queue_full", "no_group_member"] {
        assert!(scrape.samples.iter().any(|s| s.labels.get("cause") == Some(cause)), "{cause}");
    }
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "ringmq_publish_sent_total" && matches!(s.value, Value::Counter(_))));
    assert!(scrape.docs.contains_key("ringmq_publish_dropped_total"));
    // The turn-duration histogram: buckets per shard, and turns counted.
    let turns: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "ringmq_turn_duration_seconds")
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            v => panic!("{v:?}"),
        })
        .collect();
    assert_eq!(turns.len(), 2);
    assert!(turns.iter().sum::<f64>() > 0.0, "{turns:?}");
    assert_eq!(http_get(metrics, "/other").0, "HTTP/1.1 404 Not Found");
}

#[test]
fn verbose_log_names_a_will_and_unsubscribe_lines_as_mosquitto_does() {
    let Ok(_) = which("mosquitto_pub") else {
        eprintln!("skipped: mosquitto_pub is not installed (apt-get install mosquitto-clients)");
        return;
    };
    let mut broker = BrokerProcess::spawn(&["-v", "--cores", "2", "--listen", "127.0.0.1:0"]);
    let port = broker.addr.port().to_string();
    let st = Command::new("mosquitto_pub")
        .args(["-p", &port, "-i", "willing", "-t", "t", "-m", "x"])
        .args(["--will-topic", "w/t", "--will-payload", "hello", "--will-qos", "1", "--will-retain"])
        .status()
        .unwrap();
    assert!(st.success());
    broker.wait_for_line("Client willing disconnected.", IO_TIMEOUT);
    let mut c = Raw::client(broker.addr, "unsubby", V3_1_1);
    c.subscribe_ok(&[("u/#", Q1)]);
    c.unsubscribe(&["u/#"]);
    broker.wait_for_line("Sending UNSUBACK to unsubby", IO_TIMEOUT);
    let log: Vec<String> = broker.log().iter().map(|l| normalize(l)).collect();
    let at = log.iter().position(|l| l == "Will message specified (5 bytes) (r1, q1).").expect("will line");
    assert_eq!(log[at + 1], "\tw/t");
    for line in ["unsubby 1 u/#", "\tu/#", "unsubby u/#"] {
        assert!(log.iter().any(|l| l == line), "{line} missing: {log:#?}");
    }
}

#[test]
fn sigusr2_writes_each_shards_subscriptions_to_the_log() {
    let mut broker = BrokerProcess::spawn(&["--cores", "2", "--listen", "127.0.0.1:0"]);
    let mut a = Raw::client(broker.addr, "tree-a", V3_1_1);
    a.subscribe_ok(&[("tree/+/x", Q1), ("tree/#", Q0)]);
    let mut b = Raw::client(broker.addr, "tree-b", V5);
    b.subscribe_ok(&[("tree/#", Q2), ("$share/g/tree/s", Q1)]);
    broker.signal(libc::SIGUSR2);
    broker.wait_for_line("Received SIGUSR2: writing the subscriptions of 2 shard(s) to the log.", IO_TIMEOUT);
    broker.wait_for_line("Subscriptions on shard 0", IO_TIMEOUT);
    broker.wait_for_line("Subscriptions on shard 1", IO_TIMEOUT);
    // Each shard logs what its sessions hold; together, every subscription once.
    let deadline = Instant::now() + IO_TIMEOUT;
    let complete = |log: &str| {
        let lines: Vec<&str> = log.lines().map(|l| l.split_once(": ").map_or(l, |(_, t)| t)).collect();
        let has = |l: &str| lines.contains(&l);
        has("  tree/+/x (tree-a, 1)")
            && has("  $share/g/tree/s (tree-b, 1)")
            // One line per filter and shard: both clients on one line when they share a shard.
            && (has("  tree/# (tree-a, 0) (tree-b, 2)") || has("  tree/# (tree-a, 0)") && has("  tree/# (tree-b, 2)"))
    };
    loop {
        let log = broker.log().join("\n");
        if complete(&log) || Instant::now() > deadline {
            assert!(complete(&log), "{log}");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The broker carries on.
    broker.signal(libc::SIGUSR2);
    let deadline = Instant::now() + IO_TIMEOUT;
    while broker.log().iter().filter(|l| l.contains("Subscriptions on shard 0")).count() < 2 {
        assert!(Instant::now() < deadline, "no second subscription log: {:#?}", broker.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    a.publish("tree/1/x", b"p", Q1, false);
}

#[test]
fn test_config_reads_the_password_and_acl_files_and_reports_every_error() {
    let scratch = Scratch::new("test-config-files");
    let acl = scratch.write("acl", "user roger\ntopic readwrite a/#\ntopic sideways b/#\n");
    let missing = scratch.0.join("no-such-passwd");
    let conf = scratch.write(
        "ringmq.conf",
        &format!("listener 0 127.0.0.1\npassword_file {}\nacl_file {}\n", missing.display(), acl.display()),
    );
    let (code, got) = test_config(&conf);
    assert_eq!(code, Some(1), "{got:#?}");
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got.iter().any(|l| l.contains(&missing.display().to_string())), "{got:#?}");
    assert!(got.iter().any(|l| l.contains(&acl.display().to_string()) && l.contains("sideways")), "{got:#?}");
    // Good files pass.
    let passwd = scratch.write("passwd", "");
    let acl = scratch.write("acl-ok", "user roger\ntopic readwrite a/#\n");
    let conf = scratch.write(
        "ok.conf",
        &format!("listener 0 127.0.0.1\npassword_file {}\nacl_file {}\n", passwd.display(), acl.display()),
    );
    assert_eq!(test_config(&conf), (Some(0), vec![]));
}

#[test]
fn sighup_reloads_the_broker_wide_limits_for_clients_already_connected() {
    use ringmq::protocol::{Packet, ReasonCode};
    let scratch = Scratch::new("reload-limits");
    let port = free_port();
    let base = format!("listener {port} 127.0.0.1\nallow_anonymous true\n");
    let conf = scratch.write("ringmq.conf", &base);
    let mut broker = BrokerProcess::spawn(&["--cores", "2", "-c", conf.to_str().unwrap()]);
    let mut p = Raw::client(broker.addr, "limits-pub", V5);
    let big = [7u8; 100];
    let id = p.send_publish("limits/t", &big, Q1, false, None);
    let ack = p.expect_match(IO_TIMEOUT, "PUBACK", |x| matches!(x, Packet::PubAck(a) if a.packet_id == id));
    // (0x10 "No matching subscribers": nobody subscribes; not an error.)
    assert!(matches!(&ack, Packet::PubAck(a) if !a.reason.is_error()), "{ack:?}");
    let old_keepalive = Conn { keepalive: 60, ..Conn::new("limits-ka", V3_1_1) };
    Raw::connect_ok(broker.addr, old_keepalive.clone()).0.disconnect();
    std::fs::write(&conf, format!("{base}message_size_limit 10\nmax_keepalive 30\n")).unwrap();
    broker.signal(libc::SIGHUP);
    let line = broker.wait_for_line("Reloaded ", IO_TIMEOUT);
    assert!(line.ends_with("Reloaded max_keepalive, message_size_limit."), "{line}");
    // The shards take it at their next turn: the connected publisher's next PUBLISH is
    // over the new limit (MQTT 5: 0x97, as the option's own check answers).
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let id = p.send_publish("limits/t", &big, Q1, false, None);
        let ack =
            p.expect_match(IO_TIMEOUT, "PUBACK", |x| matches!(x, Packet::PubAck(a) if a.packet_id == id));
        let Packet::PubAck(a) = ack else { unreachable!() };
        if a.reason == ReasonCode::QUOTA_EXCEEDED {
            break;
        }
        assert!(Instant::now() < deadline, "message_size_limit not applied after the reload");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A 3.1.1 client asking for more than the new max_keepalive is refused.
    let (_, connack) = Raw::connect(broker.addr, old_keepalive);
    assert_ne!(connack.code, ReasonCode::SUCCESS);
    broker.signal(libc::SIGTERM);
    assert_eq!(broker.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_metrics_listener_on_a_port_in_use_fails_the_start_with_the_reason() {
    let scratch = Scratch::new("metrics-in-use");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let conf = scratch.write(
        "ringmq.conf",
        &format!("listener 0 127.0.0.1\nmetrics_listener {}\n", taken.local_addr().unwrap()),
    );
    let out = run_to_exit(&["-c", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = format!("Error: metrics_listener {}: Address already in use", taken.local_addr().unwrap());
    assert!(stderr.contains(&line), "{stderr}");
}
