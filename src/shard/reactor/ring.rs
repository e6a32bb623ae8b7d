//! The shard's io_uring: how it is set up, how a submission is queued, and how
//! completions are collected. Completions are tagged with what they are for ([`Op`]) and
//! a slot, packed into the user data.

use super::super::bufring::BufRing;
use io_uring::{squeue, types, IoUring};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::task::Wake;
use std::time::Duration;

/// Submission queue entries; the completion queue is twice that (the kernel's default
/// ratio). More completions than fit wait in the kernel's overflow list (IORING_FEAT_NODROP)
/// and are collected on the next enter; a larger queue only cost memory (each entry is
/// touched as the queue wraps: 32,768 entries were 52 bytes per connection at 10,000).
const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 8192;
/// The buffer group of the shard's receive buffers.
pub const RECV_BUFFER_GROUP: u16 = 0;

/// `io_uring_enter` flag: process completions (and, with DEFER_TASKRUN, run the
/// deferred work that produces them).
const IORING_ENTER_GETEVENTS: u32 = 1;

/// What a completion is for: the low 3 bits of its user data; the rest is a slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Accept = 0,
    Recv = 1,
    Send = 2,
    Wake = 3,
    /// A receive's cancellation (flow control holds the publisher): nothing to do.
    Cancel = 4,
}

/// One completion: (user data, result, flags).
pub type Completion = (u64, i32, u32);

pub fn user_data(op: Op, slot: u32) -> u64 {
    (slot as u64) << 3 | op as u64
}

pub fn decode_user_data(u: u64) -> (Op, u32) {
    let op = match u & 7 {
        0 => Op::Accept,
        1 => Op::Recv,
        2 => Op::Send,
        4 => Op::Cancel,
        _ => Op::Wake,
    };
    (op, (u >> 3) as u32)
}

/// The io_uring set-up every shard uses (and the start-up check probes): the kernel
/// runs completion work only when the shard enters (COOP_TASKRUN, DEFER_TASKRUN), and
/// only the shard's thread submits (SINGLE_ISSUER).
fn builder() -> io_uring::Builder {
    let mut b = IoUring::builder();
    b.setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun().setup_cqsize(CQ_ENTRIES);
    b
}

/// Why setting up a ring failed, in words that name the cause and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// Locked memory (KiB) one shard's rings take, as the kernel charges RLIMIT_MEMLOCK to a
/// user without CAP_IPC_LOCK. Measured on Linux 6.18 (4 KiB pages, 128 receive buffers):
/// the least `ulimit -l` that started 1, 2 and 4 shards was 704, 960 and 1,792 KiB, about
/// 416 KiB a shard plus up to 300 KiB for the start-up probe's ring, which the kernel
/// releases asynchronously. Rounded up, as the kernel rounds its allocations.
const MEMLOCK_KIB_PER_SHARD: u64 = 448;
const MEMLOCK_KIB_PROBE: u64 = 320;

/// About how much locked memory (KiB) `shards` shards need: their rings, the
/// provided-buffer rings' descriptors (16 bytes per buffer), and the probe's ring.
pub fn memlock_kib_needed(shards: usize, recv_buffers: u16) -> u64 {
    let per_shard = MEMLOCK_KIB_PER_SHARD + (u64::from(recv_buffers) * 16).div_ceil(1024);
    per_shard * shards as u64 + MEMLOCK_KIB_PROBE
}

/// Names the cause of a failed io_uring set-up (`what`: which step) for `shards` shards.
pub fn explain(what: &str, e: &std::io::Error, shards: usize, recv_buffers: u16) -> SetupError {
    let cause = match e.raw_os_error() {
        Some(libc::ENOMEM) => {
            let need_kib = memlock_kib_needed(shards, recv_buffers);
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: getrlimit fills the struct it is given.
            unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
            let have = if lim.rlim_cur == libc::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                format!("{} KiB", lim.rlim_cur / 1024)
            };
            format!(
                "the locked-memory limit (RLIMIT_MEMLOCK, `ulimit -l`) is {have} and {shards} shard(s) need about {need_kib} KiB of it (it counts every process of this user). Raise it: `ulimit -l {}` or `ulimit -l unlimited` in the shell that starts ringmq, LimitMEMLOCK=infinity in its systemd unit, or a memlock line in /etc/security/limits.conf; or run fewer shards (--cores)",
                need_kib.next_power_of_two()
            )
        }
        Some(libc::EPERM) => {
            let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").unwrap_or_default();
            if disabled.trim() == "1" {
                "kernel.io_uring_disabled = 1 lets only root and the group in kernel.io_uring_group use io_uring".into()
            } else {
                "io_uring is forbidden to this process (a seccomp profile, a container runtime's default, or a security module)".into()
            }
        }
        Some(libc::ENOSYS) => "this kernel has no io_uring; ringmq needs Linux 6.1 or later".into(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
            "this kernel lacks an io_uring feature ringmq needs (Linux 6.1 or later: DEFER_TASKRUN, multishot receive, provided-buffer rings)".into()
        }
        _ => "check kernel.io_uring_disabled and any seccomp profile".into(),
    };
    SetupError(format!("{what} failed: {e}: {cause}"))
}

/// Builds a ring the way the shards do and registers a buffer ring on it: the features
/// ringmq needs, checked once at start-up.
pub fn probe() -> std::io::Result<()> {
    let ring = builder().build(8)?;
    let bufs = BufRing::register(&ring.submitter(), RECV_BUFFER_GROUP, 1, 64)?;
    // The ring goes first: the buffer ring's memory must outlive its registration.
    drop(ring);
    drop(bufs);
    Ok(())
}

/// A shard's ring and the completions collected from it but not yet handled.
pub struct Ring {
    ring: IoUring,
    /// Completions taken off the queue, in order, waiting for [`Ring::take_completions`].
    collected: Vec<Completion>,
}

impl Ring {
    pub fn new() -> std::io::Result<Ring> {
        Ok(Ring { ring: builder().build(SQ_ENTRIES)?, collected: Vec::with_capacity(1024) })
    }

    pub fn submitter(&self) -> io_uring::Submitter<'_> {
        self.ring.submitter()
    }

    /// Queues one submission, submitting first when the queue is full. A submit the
    /// kernel refuses with EBUSY (completions overflowed and must be collected first) is
    /// retried after collecting them, so it cannot spin.
    ///
    /// # Safety
    /// Every buffer and descriptor the entry points at must outlive its completion.
    pub unsafe fn push(&mut self, e: &squeue::Entry) {
        loop {
            // SAFETY: the caller's promise.
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return;
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(libc::EBUSY) => self.collect(),
                Err(err) => {
                    crate::log!(Error, "Error: io_uring submit failed: {}.", err);
                    self.collect();
                }
            }
        }
    }

    /// Moves what the completion queue holds into `collected`.
    fn collect(&mut self) {
        self.collected.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
    }

    /// Every completion so far, in order (`spare`: an empty list to reuse).
    pub fn take_completions(&mut self, spare: Vec<Completion>) -> Vec<Completion> {
        self.collect();
        std::mem::replace(&mut self.collected, spare)
    }

    /// Puts back completions that were not handled, ahead of any collected since, and
    /// leaves `unhandled` empty (its allocation, or the collected list's, to reuse).
    pub fn put_back(&mut self, unhandled: &mut Vec<Completion>) {
        if unhandled.is_empty() {
            return;
        }
        unhandled.append(&mut self.collected);
        std::mem::swap(&mut self.collected, unhandled);
    }

    /// Whether completions wait to be handled.
    pub fn has_completions(&self) -> bool {
        !self.collected.is_empty()
    }

    /// Submits what is queued and collects completions, waiting for at least `want`
    /// (bounded by `timeout`).
    pub fn enter(&mut self, want: u32, timeout: Option<Duration>) -> std::io::Result<()> {
        let res = match timeout {
            Some(t) if want > 0 => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want as usize, &args)
            }
            // SAFETY: a plain io_uring_enter with no argument; GETEVENTS runs the deferred
            // completions (DEFER_TASKRUN) without blocking when `want` is 0.
            _ => unsafe {
                let sq = self.ring.submission().len() as u32;
                self.ring.submitter().enter::<libc::sigset_t>(sq, want, IORING_ENTER_GETEVENTS, None)
            },
        };
        match res {
            Ok(_) => Ok(()),
            // EBUSY: completions overflowed; the next turn collects them and enters again.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Wakes a parked shard: the mesh calls it after pushing; it writes the shard's eventfd.
pub struct EventFdWake(pub OwnedFd);

impl Wake for EventFdWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to an eventfd we own. (It could block
        // only with the counter at 2^64 - 2, far beyond any number of wakes.)
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}
