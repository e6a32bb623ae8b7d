//! `ringmq-loadgen`: parse, run, print the one-line summary, exit with the verdict.

use clap::Parser;
use ringmq_loadgen::{Args, EXIT_RUN_FAILED};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    match ringmq_loadgen::run_tool(&args) {
        Some(Ok(ringmq_loadgen::Tool::Print(text))) => {
            print!("{text}");
            return;
        }
        Some(Ok(ringmq_loadgen::Tool::Reported)) => return,
        Some(Err(e)) => {
            eprintln!("ringmq-loadgen: {e:#}");
            std::process::exit(EXIT_RUN_FAILED);
        }
        None => {}
    }
    match ringmq_loadgen::run(&args, std::env::args().collect()) {
        Ok(outcome) => {
            for w in &outcome.summary.status.warnings {
                eprintln!("ringmq-loadgen: warning: {w}");
            }
            for c in &outcome.summary.status.loss_causes {
                eprintln!("ringmq-loadgen: likely cause of loss: {}", c.detail);
            }
            for e in outcome.summary.errors.iter().take(5) {
                eprintln!("ringmq-loadgen: error: {e}");
            }
            println!("{}", outcome.summary.one_line());
            std::process::exit(outcome.exit_code);
        }
        Err(e) => {
            eprintln!("ringmq-loadgen: {e:#}");
            std::process::exit(EXIT_RUN_FAILED);
        }
    }
}
