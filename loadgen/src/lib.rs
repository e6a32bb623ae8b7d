//! ringmq-loadgen: an MQTT load generator that measures brokers honestly: open-loop
//! load with coordinated-omission-corrected HDR latency histograms, and a delivery check
//! of every message (loss, duplicates, reordering).
//!
//! # Layout
//!
//! - [`cli`]: the command line, one subcommand per scenario.
//! - [`config`]: the run's settings, validated once.
//! - [`plan`]: the scenario's clients, topics and filters, dealt over the load threads.
//! - [`payload`]: the header every payload carries (publisher, sequence, send time).
//! - [`schedule`]: open-loop send times and coordinated-omission correction.
//! - [`checker`]: per-publisher sequence checks: loss, duplicates, reordering.
//! - [`stats`]: the counters and histograms each thread keeps.
//! - [`shared`]: what the runner and the load threads share: phases, timetable, progress.
//! - [`clock`], [`pacer`], [`sync`]: the shared clock, precise sleeps for the schedule
//!   (a timerfd read through io_uring), and single-thread wake-up primitives.
//! - [`role_ctx`]: what a client and its role see of their load thread ([`role_ctx::RoleCtx`]).
//! - [`net`], [`client`]: the socket seam (connect from a source address, read and
//!   write tasks), CONNECT/CONNACK, and packet dispatch to the role's [`client::Inbox`].
//! - [`publisher`], [`subscriber`]: the two roles, built on [`client`] and [`role_ctx`].
//! - [`turn`]: open-loop runs in turns: one wake-up per turn reaps every completion.
//! - [`worker`]: a load thread (one monoio io_uring runtime per core) and the phases.
//! - [`runner`]: runs a scenario: starts the threads, then [`phases`] steps them through
//!   the run while the [`monitor`] watches the broker and the threads in /proc and prints
//!   the progress line, and [`summarize`] merges what they measured into the summary.
//! - [`procfs`]: CPU time and memory from /proc, and the machine's description.
//! - [`report`], [`hgrm`], [`plot`], [`progress`]: summary.json, `.hgrm` files,
//!   report.md, latency.svg, the one-line summary and the live progress line.
//! - [`loss`]: the identities the counters must satisfy, and the likely causes of loss.
//! - [`traffic`]: scenario files (`run FILE`): groups of publishers and subscribers.
//! - [`matrix`]: `scripts/bench.sh`'s matrix, defined once (`matrix`).
//! - [`bench_report`], [`bench_setup`], [`bench_plots`], [`bench_read`], [`bench_fmt`]:
//!   the comparison report of a bench.sh results directory (`report DIR`).

pub mod bench_fmt;
pub mod bench_plots;
pub mod bench_read;
pub mod bench_report;
pub mod bench_setup;
pub mod checker;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod hgrm;
pub mod loss;
pub mod matrix;
pub mod monitor;
pub mod net;
pub mod pacer;
pub mod payload;
pub mod phases;
pub mod plan;
pub mod plot;
pub mod procfs;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod role_ctx;
pub mod runner;
pub mod schedule;
pub mod shared;
pub mod stats;
pub mod subscriber;
pub mod summarize;
pub mod sync;
pub mod traffic;
pub mod turn;
pub mod worker;

pub use cli::Args;
pub use report::{Summary, EXIT_DELIVERY_FAILED, EXIT_OK, EXIT_RUN_FAILED};
pub use runner::Outcome;

/// What the command line asks for besides a load run.
pub enum Tool {
    /// `report DIR`: done, nothing to print.
    Reported,
    /// `matrix`, `report --slowest-rate`: the text to print.
    Print(String),
}

/// Runs the commands that are not load runs (`report`, `matrix`); `None` for a load run.
pub fn run_tool(args: &Args) -> Option<anyhow::Result<Tool>> {
    match &args.scenario {
        cli::Scenario::Report { dir, slowest_rate: Some(id), .. } => {
            Some(bench_report::slowest_rate(dir, id).map(|r| Tool::Print(format!("{r}\n"))))
        }
        cli::Scenario::Report { dir, index, update_readme, slowest_rate: None } => {
            Some(bench_report::run(dir, index.as_deref(), update_readme.as_deref()).map(|()| Tool::Reported))
        }
        cli::Scenario::Matrix { quick } => {
            let m = if *quick { matrix::Matrix::quick() } else { matrix::Matrix::full() };
            Some(Ok(Tool::Print(m.shell())))
        }
        _ => None,
    }
}

/// Runs the scenario `args` describes; `command_line` is recorded in the summary.
pub fn run(args: &Args, command_line: Vec<String>) -> anyhow::Result<Outcome> {
    let cfg = config::RunConfig::from_args(args, command_line)?;
    runner::run(cfg)
}

/// Parses `argv` (program name first) and runs it: the library's whole command line.
pub fn run_argv<I, S>(argv: I) -> anyhow::Result<Outcome>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
    let args = <Args as clap::Parser>::try_parse_from(&argv)?;
    run(&args, argv)
}
