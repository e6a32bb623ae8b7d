//! Readings from /proc: a process's or thread's CPU time and resident memory, and the
//! machine's description for the summary.

use serde::Serialize;

/// Clock ticks per second of the times in /proc/*/stat.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime, in microseconds, from the text of a /proc/*/stat file.
pub fn parse_stat_cpu_us(stat: &str, ticks_per_sec: u64) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the
    // last ')'. Field 3 (state) is then the first; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / ticks_per_sec)
}

/// CPU time (user + system) of a process, in microseconds.
pub fn process_cpu_us(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_us(&s, clock_ticks_per_sec())
}

/// CPU time of several processes together (a broker that runs as several processes, or
/// several brokers), in microseconds; `None` when there are none or one cannot be read,
/// so that a partial sum is never taken for the whole.
pub fn processes_cpu_us(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| process_cpu_us(p)).sum()
}

/// Resident memory of several processes together, in KiB (`None` as for
/// [`processes_cpu_us`]).
pub fn processes_rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| process_rss_kib(p)).sum()
}

/// CPU time of one thread of this process, in microseconds.
pub fn thread_cpu_us(tid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    parse_stat_cpu_us(&s, clock_ticks_per_sec())
}

/// The VmRSS line of a /proc/*/status text, in KiB.
pub fn parse_vmrss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of a process, in KiB.
pub fn process_rss_kib(pid: u32) -> Option<u64> {
    parse_vmrss_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The calling thread's kernel thread id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// A process's command line, arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    Some(parts.join(" "))
}

/// The machine the run happened on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub hostname: String,
    pub mem_total_kib: Option<u64>,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: format!("{} {}", read("/proc/sys/kernel/ostype"), read("/proc/sys/kernel/osrelease")),
            hostname: read("/proc/sys/kernel/hostname"),
            mem_total_kib: meminfo
                .lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_and_parens_in_the_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 0 0";
        // utime 250 + stime 50 = 300 ticks = 3 s at 100 Hz.
        assert_eq!(parse_stat_cpu_us(stat, 100), Some(3_000_000));
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tringmq\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(parse_vmrss_kib(status), Some(20480));
    }

    #[test]
    fn reads_this_process() {
        assert!(process_cpu_us(std::process::id()).is_some());
        assert!(process_rss_kib(std::process::id()).unwrap() > 0);
        let me = std::process::id();
        let one = processes_rss_kib(&[me]).unwrap();
        assert!(processes_rss_kib(&[me, me]).unwrap() >= 2 * one - 1024, "summed over the PIDs");
        assert_eq!(processes_cpu_us(&[]), None);
        assert_eq!(processes_cpu_us(&[me, u32::MAX]), None, "an unreadable PID voids the sum");
        assert!(thread_cpu_us(gettid()).is_some());
    }
}
