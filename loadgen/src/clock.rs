//! The run's clock: nanoseconds of CLOCK_MONOTONIC (what `std::time::Instant` reads)
//! since one epoch shared by every thread of the process, so a send time written by one
//! load thread can be compared with a receive time read on another.

use std::sync::OnceLock;

static EPOCH_MONO_NS: OnceLock<u64> = OnceLock::new();

/// Raw CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The epoch in CLOCK_MONOTONIC nanoseconds (fixed at first use).
pub fn epoch_mono_ns() -> u64 {
    // One second back, so that no reading is ever 0 and "0" can mean "not set".
    *EPOCH_MONO_NS.get_or_init(|| monotonic_ns().saturating_sub(1_000_000_000))
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    monotonic_ns() - epoch_mono_ns()
}

/// Seconds as nanoseconds.
pub fn secs_to_ns(secs: f64) -> u64 {
    (secs * 1e9) as u64
}
