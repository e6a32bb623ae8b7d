//! The `ringmq` binary: parse the command line, load the config file, start the shards,
//! wait for SIGINT or SIGTERM, shut down cleanly.

use clap::Parser;
use ringmq::config::{parse_cpu_list, Config, DEFAULT_PORT};
use ringmq::log::{set_level, Level};
use ringmq::shard::Broker;
use std::net::SocketAddr;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ringmq: a thread-per-core io_uring MQTT 3.1 / 3.1.1 / 5.0 broker.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Config file in Mosquitto's syntax.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Port for the default (loopback) listener when the config defines none.
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// Log every packet (Mosquitto's -v).
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
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
    if let Err(e) = run() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
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
        eprintln!("Error: ringmq aborts after a panic (a bug: please report the message above).");
        std::process::abort();
    }));
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config =
        Config { cores: std::thread::available_parallelism().map_or(1, |n| n.get()), ..Config::default() };
    if let Some(path) = &cli.config {
        config.load_file(path)?;
    }
    if let Some(cpus) = &cli.cpus {
        let list = parse_cpu_list(cpus).map_err(|e| anyhow::anyhow!("--cpus: {e}"))?;
        config.cores = cli.cores.unwrap_or(list.len());
        config.cpus = Some(list);
    }
    if let Some(n) = cli.cores {
        anyhow::ensure!((1..=1024).contains(&n), "--cores must be between 1 and 1024");
        config.cores = n;
    }
    config.listeners.extend(cli.listen.iter().map(|a| ringmq::config::ListenerConfig::on(*a)));
    if cli.verbose || config.log.debug {
        config.log.debug = true;
        set_level(Level::Debug);
    } else {
        set_level(Level::Notice);
    }
    block_signals();
    let broker = Broker::start(config, cli.port.unwrap_or(DEFAULT_PORT))?;
    let sig = wait_for_signal();
    ringmq::log!(Notice, "ringmq received signal {}, shutting down.", sig);
    broker.shutdown();
    ringmq::log!(Notice, "ringmq stopped.");
    Ok(())
}

/// Blocks SIGINT and SIGTERM in this thread before the shards start, so that every
/// thread inherits the mask and only `wait_for_signal` receives them.
fn block_signals() {
    // SAFETY: plain libc signal-mask calls on a zeroed, then initialised, sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_signal() -> i32 {
    // SAFETY: as above; sigwait writes the received signal number into `sig`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
        sig
    }
}
