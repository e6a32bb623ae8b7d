//! Open-loop send times and coordinated-omission correction.
//!
//! A publisher at `rate` messages per second sends message `seq` at
//! `start + phase + seq / rate`, whatever happened to earlier messages: a broker that
//! stalls cannot slow the load down, so the stall shows up in latency instead of hiding
//! as a lower send rate. The phases spread the publishers evenly over one interval so
//! they do not all fire at once.
//!
//! Latency is recorded twice. *Measured* (uncorrected) latency runs from the moment the
//! message was actually written, the figure most tools print. *Corrected* latency runs
//! from the moment it was scheduled: when a sender falls behind (a full socket, a full
//! QoS window, a late timer), every message it sends late carries the time it waited,
//! which is what a real client producing at that rate would have seen (Gil Tene's
//! coordinated omission). With `--rate max` there is no schedule and only the measured
//! figure exists.

use hdrhistogram::Histogram;

/// One publisher's schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Send time of sequence number 0, in ns since the run's epoch.
    pub first_ns: u64,
    /// Nanoseconds between two sends.
    pub interval_ns: f64,
}

impl Schedule {
    /// The schedule of publisher `index` out of `publishers`, all at `rate_per_sec`,
    /// starting at `start_ns`.
    pub fn new(start_ns: u64, rate_per_sec: f64, index: u32, publishers: u32) -> Schedule {
        assert!(rate_per_sec > 0.0 && publishers > 0 && index < publishers);
        let interval_ns = 1e9 / rate_per_sec;
        let phase_ns = interval_ns * index as f64 / publishers as f64;
        Schedule { first_ns: start_ns + phase_ns as u64, interval_ns }
    }

    /// When message `seq` is due.
    pub fn send_time_ns(&self, seq: u64) -> u64 {
        self.first_ns + (seq as f64 * self.interval_ns) as u64
    }

    /// How many messages are due at `now_ns` (sequence numbers `0..due_count`).
    pub fn due_count(&self, now_ns: u64) -> u64 {
        if now_ns < self.first_ns {
            return 0;
        }
        let mut n = ((now_ns - self.first_ns) as f64 / self.interval_ns) as u64 + 1;
        // Float rounding may put the boundary one off; the exact rule is send_time <= now.
        while n > 0 && self.send_time_ns(n - 1) > now_ns {
            n -= 1;
        }
        while self.send_time_ns(n) <= now_ns {
            n += 1;
        }
        n
    }

    /// How many messages are due strictly before `end_ns`: the run's total.
    pub fn count_before(&self, end_ns: u64) -> u64 {
        if end_ns == 0 {
            return 0;
        }
        self.due_count(end_ns - 1)
    }
}

/// The two latency histograms of one stream of deliveries.
#[derive(Clone, Debug)]
pub struct LatencyPair {
    /// From the actual send time.
    pub measured: Histogram<u64>,
    /// From the scheduled send time (open loop only).
    pub corrected: Histogram<u64>,
}

/// Highest latency a histogram tracks, in ns (larger values are clamped to it).
pub const LATENCY_NS_MAX: u64 = 100_000_000_000;
/// Significant digits of every histogram.
pub const SIGFIG: u8 = 3;

/// A histogram of nanoseconds with the crate's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGFIG).expect("static histogram bounds")
}

impl Default for LatencyPair {
    fn default() -> Self {
        LatencyPair { measured: new_histogram(), corrected: new_histogram() }
    }
}

impl LatencyPair {
    /// Records one delivery received at `recv_ns`, sent at `sent_ns`, scheduled at
    /// `scheduled_ns` (none in closed loop). Clock readings on different cores can be a
    /// few ns apart, so a negative difference counts as 1 ns.
    pub fn record(&mut self, recv_ns: u64, sent_ns: u64, scheduled_ns: Option<u64>) {
        self.measured.saturating_record(recv_ns.saturating_sub(sent_ns).max(1));
        if let Some(s) = scheduled_ns {
            self.corrected.saturating_record(recv_ns.saturating_sub(s.min(sent_ns)).max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_follow_rate_and_phase() {
        let s = Schedule::new(1_000, 1000.0, 1, 4);
        // 1 ms interval, phase 1/4 ms.
        assert_eq!(s.first_ns, 1_000 + 250_000);
        assert_eq!(s.send_time_ns(0), 251_000);
        assert_eq!(s.send_time_ns(3), 3_251_000);
        assert_eq!(s.due_count(0), 0);
        assert_eq!(s.due_count(250_999), 0);
        assert_eq!(s.due_count(251_000), 1);
        assert_eq!(s.due_count(1_250_999), 1);
        assert_eq!(s.due_count(1_251_000), 2);
        assert_eq!(s.count_before(3_251_000), 3);
        assert_eq!(s.count_before(3_251_001), 4);
    }

    #[test]
    fn due_count_is_exact_at_awkward_rates() {
        let s = Schedule::new(1_000, 3.0, 0, 1);
        for seq in 0..10_000u64 {
            let t = s.send_time_ns(seq);
            assert_eq!(s.due_count(t), seq + 1, "at seq {seq}");
            assert_eq!(s.due_count(t - 1), seq, "before seq {seq}");
        }
    }

    #[test]
    fn rate_over_a_second_is_the_rate() {
        let s = Schedule::new(0, 1234.0, 0, 1);
        assert_eq!(s.count_before(1_000_000_000), 1234);
    }

    /// A sender at 1,000 msg/s stalls for 100 ms, then sends the backlog at once; the
    /// broker answers instantly. Measured latency sees nothing; corrected latency sees
    /// the stall as a ramp from 100 ms down to 0 for the stalled half of the messages.
    #[test]
    fn corrected_latency_shows_a_sender_stall_that_measured_latency_hides() {
        let s = Schedule::new(0, 1000.0, 0, 1);
        let mut lat = LatencyPair::default();
        let stall_end_ns = 100_000_000;
        for seq in 0..200u64 {
            let scheduled = s.send_time_ns(seq);
            let sent = scheduled.max(stall_end_ns);
            let recv = sent + 10_000; // 10 µs through the broker
            lat.record(recv, sent, Some(scheduled));
        }
        let ms = 1_000_000f64;
        assert!(lat.measured.value_at_quantile(0.99) as f64 <= 0.0101 * ms);
        let p50 = lat.corrected.value_at_quantile(0.5) as f64 / ms;
        let max = lat.corrected.max() as f64 / ms;
        assert!((0.0..=1.0).contains(&p50), "p50 {p50} ms: half the messages were not delayed");
        assert!((99.0..=101.0).contains(&max), "max {max} ms: the first message waited the whole stall");
        let p75 = lat.corrected.value_at_quantile(0.75) as f64 / ms;
        assert!((49.0..=52.0).contains(&p75), "p75 {p75} ms: the middle of the stalled half");
        assert_eq!(lat.corrected.len(), 200);
    }

    #[test]
    fn closed_loop_records_only_measured() {
        let mut lat = LatencyPair::default();
        lat.record(5_000, 1_000, None);
        assert_eq!(lat.measured.len(), 1);
        assert_eq!(lat.corrected.len(), 0);
        // A receive clock a hair behind the send clock is 1 ns, not a wrap-around.
        lat.record(999, 1_000, Some(900));
        assert_eq!(lat.measured.min(), 1);
    }
}
