//! The `ringmq` binary: parse the command line, load the config file (every error at
//! once), start the shards, then wait for signals as Mosquitto does: SIGINT and SIGTERM
//! shut down cleanly, SIGHUP reloads the config file, SIGUSR1 saves persistence, SIGUSR2
//! writes the subscriptions to the log. `-d` runs it in the background; `pid_file` and
//! `user` are honoured.

use clap::Parser;
use ringmq::config::{
    parse_cpu_list, Config, ListenerConfig, LogTypes, DEFAULT_PORT, DEFAULT_SYS_INTERVAL_SECS,
};
use ringmq::shard::Broker;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ringmq: a thread-per-core io_uring MQTT 3.1 / 3.1.1 / 5.0 broker.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Password files: `ringmq passwd` (mosquitto_passwd's options; `ringmq passwd --help`)."
)]
struct Cli {
    /// Config file in Mosquitto's syntax.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Port for the default (loopback) listener when the config defines none.
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// Log every packet (Mosquitto's -v: log_type all).
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Run in the background once the listeners are open (Mosquitto's -d).
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Check the configuration, print every error, and exit: 0 when it is valid, 1 if not.
    #[arg(long = "test-config")]
    test_config: bool,
    /// Number of shard threads (default: every online CPU).
    #[arg(long)]
    cores: Option<usize>,
    /// CPUs to pin the shards to, e.g. 0,2-5 (implies --cores when that is not given).
    #[arg(long)]
    cpus: Option<String>,
    /// Listen on ADDR:PORT (repeatable); replaces the default listener.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
}

fn main() {
    // `ringmq passwd ...` is mosquitto_passwd's twin; it needs none of the broker's set-up.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|first| first == "passwd") {
        std::process::exit(ringmq::auth::passwd_cmd::main(args.collect()));
    }
    disable_transparent_huge_pages();
    abort_on_panic();
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            say(&format!("Error: {e:#}"));
            1
        }
    };
    ringmq::log::flush();
    std::process::exit(code);
}

/// Writes a line to standard error, whatever becomes of it (a closed pipe is no reason
/// to panic).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// mimalloc asks for transparent huge pages on its arenas, so every 4 KiB a connection
/// touches costs a 2 MiB page: 2,000 idle connections held 40.7 MiB of RSS with them and
/// 17.3 MiB without (`ringmq-loadgen conn --n 2000`; docs/performance.md, "From monoio to
/// the shards' own loop"). A broker's heap is many small per-connection objects, so it runs
/// without them.
fn disable_transparent_huge_pages() {
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes plain integers and changes only this process.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// A panicking shard thread would otherwise die alone: its clients are cut off and its
/// listeners stop accepting while the process stays up and looks healthy to a supervisor.
/// After the usual message and backtrace the whole broker aborts instead, so systemd (or
/// whatever runs it) restarts it, as it would restart a crashed Mosquitto.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        say("Error: ringmq aborts after a panic (a bug: please report the message above).");
        std::process::abort();
    }));
}

/// The configuration from the config file and the command line; every error at once.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sys_interval_secs: DEFAULT_SYS_INTERVAL_SECS,
        ..Config::default()
    };
    if let Some(path) = &cli.config {
        if let Err(errors) = config.load_file(path) {
            let n = errors.0.len();
            for e in &errors.0 {
                say(&format!("Error: {e}"));
            }
            anyhow::bail!("{n} error(s) in the configuration; ringmq did not start");
        }
    }
    if let Some(cpus) = &cli.cpus {
        let list = parse_cpu_list(cpus).map_err(|e| anyhow::anyhow!("--cpus: {e}"))?;
        config.cores = cli.cores.unwrap_or(list.len());
        config.cpus = Some(list);
    }
    if let Some(n) = cli.cores {
        anyhow::ensure!((1..=1024).contains(&n), "--cores must be between 1 and 1024, got {n}");
        config.cores = n;
    }
    config.listeners.extend(cli.listen.iter().map(|a| ListenerConfig::on(*a)));
    if cli.verbose {
        config.log.types = LogTypes::ALL;
    }
    Ok(config)
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = load_config(&cli)?;
    if cli.test_config {
        // The files the broker would read at start: a bad one fails the check too.
        if let Err(errors) = ringmq::shard::check_access_files(&config) {
            for e in &errors {
                say(&format!("Error: {e}"));
            }
            anyhow::bail!("{} error(s) in the configuration; ringmq did not start", errors.len());
        }
        say("Configuration file is OK.");
        return Ok(());
    }
    // Before any thread exists: fork keeps only the calling thread.
    let ready = if cli.daemon { Some(daemonize()?) } else { None };
    block_signals();
    ringmq::log::configure(&config.log);
    ringmq::log!(Notice, "ringmq version {} starting", env!("CARGO_PKG_VERSION"));
    match &cli.config {
        Some(path) => ringmq::log!(Notice, "Config loaded from {}.", path.display()),
        None => ringmq::log!(Notice, "Using default config."),
    }
    let pid_file = config.pid_file.clone();
    if let Some(path) = &pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| anyhow::anyhow!("cannot write pid_file {}: {e}", path.display()))?;
    }
    let result = serve(&cli, config, ready);
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Runs the broker until SIGINT or SIGTERM.
fn serve(cli: &Cli, config: Config, ready: Option<std::fs::File>) -> anyhow::Result<()> {
    let user = config.user.clone();
    let broker = Broker::start(config, cli.port.unwrap_or(DEFAULT_PORT))?;
    drop_privileges(user.as_deref())?;
    if let Some(mut parent) = ready {
        // The parent waiting in `daemonize` exits 0 once it reads this.
        let _ = parent.write_all(b"1");
        // From here on a daemon's standard error goes nowhere, as Mosquitto's does.
        // SAFETY: dup2 onto our own standard error.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null >= 0 {
                libc::dup2(null, 2);
                libc::close(null);
            }
        }
    }
    loop {
        match wait_for_signal() {
            libc::SIGHUP => reload(cli, &broker),
            libc::SIGUSR1 => broker.save(),
            libc::SIGUSR2 => broker.log_subscriptions(),
            sig => {
                ringmq::log!(Notice, "ringmq received signal {}, shutting down.", signal_name(sig));
                break;
            }
        }
    }
    broker.shutdown();
    ringmq::log!(Notice, "ringmq stopped.");
    Ok(())
}

/// SIGHUP: re-read the config file and apply what can change while running
/// ([`Broker::reload`] lists it). A file with errors changes nothing.
fn reload(cli: &Cli, broker: &Broker) {
    ringmq::log!(Notice, "Reloading config.");
    match load_config(cli) {
        Ok(config) => {
            ringmq::log::configure(&config.log);
            broker.reload(&config);
        }
        Err(e) => ringmq::log!(Error, "Error: {:#}; the running configuration is unchanged.", e),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "unknown",
    }
}

/// The signals `wait_for_signal` takes; blocked in every thread.
fn signal_set() -> libc::sigset_t {
    // SAFETY: plain libc signal-set calls on a zeroed, then initialised, sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the signals in this thread before any other starts, so that every thread
/// inherits the mask and only `wait_for_signal` receives them. SIGPIPE is ignored (the
/// Rust runtime does so already; said here because a closed log pipe must not stop the
/// broker).
fn block_signals() {
    let set = signal_set();
    // SAFETY: setting this thread's mask and one signal's disposition.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

fn wait_for_signal() -> i32 {
    let set = signal_set();
    let mut sig = 0;
    // SAFETY: sigwait writes the received signal number into `sig`.
    unsafe { libc::sigwait(&set, &mut sig) };
    sig
}

/// Mosquitto's `-d`: the process forks; the parent waits until the child says its
/// listeners are open (then exits 0) or the child fails (then exits 1, the child having
/// written why to standard error). The child starts a session and continues with its
/// standard streams on /dev/null. Returns the child's end of the readiness pipe.
fn daemonize() -> anyhow::Result<std::fs::File> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, checked.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        anyhow::bail!("-d: cannot create a pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors owned by nobody else.
    let (mut read_end, write_end) =
        unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet (see `run`).
    match unsafe { libc::fork() } {
        -1 => anyhow::bail!("-d: cannot fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(read_end);
            // SAFETY: setsid and dup2 on descriptors this process owns.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::dup2(null, 1);
                    // Standard error stays until the broker is up, so start-up errors
                    // still reach the terminal; the readiness pipe then closes it.
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            Ok(write_end)
        }
        _child => {
            drop(write_end);
            let mut byte = [0u8; 1];
            let started = matches!(read_end.read(&mut byte), Ok(1));
            std::process::exit(if started { 0 } else { 1 });
        }
    }
}

/// Mosquitto's `user`: started as root, the broker switches to this user (default
/// `mosquitto`, else `nobody` when that user does not exist) once its listeners and
/// rings are set up. `user root` keeps root.
fn drop_privileges(user: Option<&str>) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let wanted = user.unwrap_or("mosquitto");
    if wanted == "root" {
        return Ok(());
    }
    let (name, pw) = match lookup_user(wanted) {
        Some(pw) => (wanted, pw),
        None => {
            ringmq::log!(
                Warning,
                "Warning: Unable to drop privileges to '{}' because this user does not exist. Trying 'nobody' instead.",
                wanted
            );
            match lookup_user("nobody") {
                Some(pw) => ("nobody", pw),
                None => anyhow::bail!("Unable to drop privileges to 'nobody'."),
            }
        }
    };
    let cname = std::ffi::CString::new(name)?;
    // SAFETY: plain libc calls; glibc applies setgid/setuid to every thread.
    unsafe {
        if libc::initgroups(cname.as_ptr(), pw.1) != 0 || libc::setgid(pw.1) != 0 || libc::setuid(pw.0) != 0 {
            anyhow::bail!("Unable to drop privileges to '{}': {}", name, std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// (uid, gid) of a user.
fn lookup_user(name: &str) -> Option<(libc::uid_t, libc::gid_t)> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: a zeroed passwd is a valid value for getpwnam_r to fill.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 4096];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into `pw` and `buf`, both live and sized as passed.
    let rc =
        unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    (rc == 0 && !out.is_null()).then_some((pw.pw_uid, pw.pw_gid))
}
