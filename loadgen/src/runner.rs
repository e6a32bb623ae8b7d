//! Runs a scenario: starts the load threads, steps them through the phases
//! ([`crate::phases`]) while the [`Monitor`] watches the broker and the load threads, then
//! merges what the threads measured into the [`Summary`] ([`crate::summarize`]) and
//! writes the files.

use crate::clock::now_ns;
use crate::config::{Kind, RunConfig};
use crate::monitor::Monitor;
use crate::phases::{run_conn, run_pubsub, run_retained};
use crate::plan::Plan;
use crate::procfs;
use crate::report::{self, Summary};
use crate::shared::{phase, Shared};
use crate::stats::Histograms;
use crate::summarize::{summarize, SummaryInput};
use crate::worker::{self, ThreadResult};
use std::sync::Arc;
use std::time::Duration;

/// The result of a run.
pub struct Outcome {
    pub summary: Summary,
    /// Merged histograms, in ns.
    pub hists: Histograms,
    pub exit_code: i32,
}

/// Runs `cfg` to the end and returns what it measured (files written if `--out`).
pub fn run(cfg: RunConfig) -> anyhow::Result<Outcome> {
    let started_unix_s =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let cfg = Arc::new(cfg);
    let plan = Plan::build(&cfg);
    let nofile = crate::net::raise_nofile_limit();
    let mut warnings = Vec::new();
    if cfg.connections() + 64 > nofile {
        warnings.push(format!(
            "{} connections but the open-file limit is {nofile}: raise it (ulimit -n) or expect failures",
            cfg.connections()
        ));
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared::new(cfg.clone(), tx));
    let mut handles = Vec::new();
    for (i, specs) in plan.threads.iter().cloned().enumerate() {
        let cpu = cfg.cpus.as_ref().map(|c| c[i % c.len()]);
        handles.push(worker::spawn(i, cpu, specs, shared.clone())?);
    }
    // The thread ids arrive as the threads start.
    let tid_deadline = now_ns() + 2_000_000_000;
    while shared.tids.lock().expect("tids").len() < cfg.threads && now_ns() < tid_deadline {
        if handles.iter().any(|h| h.is_finished()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut tids = shared.tids.lock().expect("tids").clone();
    tids.sort();
    let mut mon = Monitor::new(shared.clone(), rx, tids);
    for &pid in &cfg.broker_pids {
        if procfs::process_cpu_us(pid).is_none() {
            warnings.push(format!("cannot read /proc/{pid}: no broker figures"));
        }
    }
    mon.tick();

    let mut problems = Vec::new();
    let phases = match cfg.scenario {
        Kind::Conn => run_conn(&cfg, &mut mon),
        Kind::Retained => run_retained(&cfg, &mut mon, &handles, &mut problems),
        _ => run_pubsub(&cfg, &plan, &mut mon, &handles, &mut problems),
    };
    shared.set_phase(phase::STOP);
    let mut results: Vec<ThreadResult> = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => problems.push(format!("a load thread failed: {e:#}")),
            Err(_) => problems.push("a load thread panicked".into()),
        }
    }
    mon.finish();
    let (summary, hists) = summarize(SummaryInput {
        cfg: &cfg,
        plan: &plan,
        shared: &shared,
        mon: &mon,
        phases,
        results,
        problems,
        warnings,
        started_unix_s,
        nofile,
    });
    if let Some(dir) = &cfg.out {
        report::write_files(dir, &summary, &hists)?;
    }
    let exit_code = summary.status.exit_code;
    Ok(Outcome { summary, hists, exit_code })
}
