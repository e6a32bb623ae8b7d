//! Precise sleeps for the open-loop schedule. monoio's timer wheel has a resolution of
//! one millisecond (and rounds up), which would add up to a millisecond of the load
//! generator's own lateness to every coordinated-omission-corrected latency. The pacer
//! instead keeps one timerfd per load thread, armed (absolute, CLOCK_MONOTONIC) for the
//! earliest deadline of all the thread's sleepers, and reads it through io_uring.
//!
//! Wake-ups are at most one per [`PACER_TICK_MIN_NS`]: sleepers whose deadlines fall
//! closer together than that are released together (late by less than the tick), which
//! bounds the pacer's cost at high aggregate rates. Nobody is ever released early.
//! If the timerfd cannot be used, the pacer falls back to monoio's millisecond timer and
//! says so in the summary (`pacing`). A thread that works in turns ([`crate::turn`])
//! releases the sleepers at each turn instead ([`Pacer::set_external`], [`Pacer::tick`]),
//! and the timerfd rests.

use crate::clock::{epoch_mono_ns, now_ns};
use crate::sync::Notify;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::poll_fn;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// Shortest time between two pacer wake-ups.
pub const PACER_TICK_MIN_NS: u64 = 20_000;

struct Sleeper {
    /// Tells a heap entry of this slot from a stale one of an earlier user of the slot.
    deadline_ns: u64,
    waker: Option<Waker>,
    done: bool,
}

#[derive(Default)]
struct Inner {
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    sleepers: Vec<Option<Sleeper>>,
    free: Vec<usize>,
}

/// One per load thread.
pub struct Pacer {
    inner: RefCell<Inner>,
    /// The deadline the timerfd is armed for (u64::MAX: disarmed).
    armed_ns: Cell<u64>,
    /// The pacer task is blocked reading the timerfd: only then must a new, earlier
    /// sleeper re-arm it (otherwise the task arms once for everyone when it next looks).
    reading: Cell<bool>,
    timer: Option<OwnedFd>,
    /// Released by the load thread's turns ([`crate::turn`]) instead of the timerfd.
    external: Cell<bool>,
    /// Wakes the pacer task when a sleeper arrives while it has nothing to wait for.
    new_sleeper: Notify,
}

impl Pacer {
    /// A pacer; `precise` asks for the timerfd (else monoio's millisecond timer).
    pub fn new(precise: bool) -> Rc<Pacer> {
        let timer = precise
            .then(|| {
                // SAFETY: plain syscall; the fd is owned right away.
                let fd = unsafe {
                    libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
                };
                // SAFETY: fd is a fresh, valid descriptor when non-negative.
                (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .flatten();
        Rc::new(Pacer {
            inner: Default::default(),
            armed_ns: Cell::new(u64::MAX),
            reading: Cell::new(false),
            timer,
            external: Cell::new(false),
            new_sleeper: Notify::default(),
        })
    }

    /// "timerfd" or "monoio-timer-1ms".
    pub fn kind(&self) -> &'static str {
        if self.timer.is_some() {
            "timerfd"
        } else {
            "monoio-timer-1ms"
        }
    }

    /// Sleeps until `deadline_ns` (run clock); returns at once if it has passed.
    pub async fn sleep_until(self: &Rc<Self>, deadline_ns: u64) {
        if now_ns() >= deadline_ns {
            return;
        }
        if self.timer.is_none() {
            let wait = deadline_ns.saturating_sub(now_ns());
            monoio::time::sleep(Duration::from_nanos(wait)).await;
            return;
        }
        let id = {
            let mut inner = self.inner.borrow_mut();
            let s = Sleeper { deadline_ns, waker: None, done: false };
            let id = match inner.free.pop() {
                Some(id) => {
                    inner.sleepers[id] = Some(s);
                    id
                }
                None => {
                    inner.sleepers.push(Some(s));
                    inner.sleepers.len() - 1
                }
            };
            inner.heap.push(Reverse((deadline_ns, id)));
            id
        };
        if self.external.get() {
            // The next turn releases it.
            return self.wait_released(id).await;
        }
        if self.reading.get() && deadline_ns < self.armed_ns.get() {
            self.arm(deadline_ns);
        }
        self.new_sleeper.notify();
        self.wait_released(id).await;
    }

    async fn wait_released(self: &Rc<Self>, id: usize) {
        let guard = SleepGuard { pacer: self, id };
        poll_fn(|cx| {
            let mut inner = guard.pacer.inner.borrow_mut();
            let s = inner.sleepers[id].as_mut().expect("sleeper slot");
            if s.done {
                Poll::Ready(())
            } else {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    fn arm(&self, deadline_ns: u64) {
        let Some(fd) = &self.timer else { return };
        let at = epoch_mono_ns() + deadline_ns;
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: (at / 1_000_000_000) as libc::time_t,
                tv_nsec: (at % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: valid timerfd and itimerspec.
        unsafe {
            libc::timerfd_settime(fd.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut())
        };
        self.armed_ns.set(deadline_ns);
    }

    /// Hands the sleepers to the load thread's turns (`true`), which call [`Pacer::tick`],
    /// or back to the timerfd (`false`).
    pub fn set_external(&self, on: bool) {
        self.external.set(on);
        self.new_sleeper.notify();
    }

    /// Releases every sleeper whose deadline has passed (a turn of the load thread).
    pub fn tick(&self) {
        self.release_due();
    }

    /// Releases every sleeper whose deadline has passed; returns the next deadline.
    fn release_due(&self) -> Option<u64> {
        let now = now_ns();
        let mut inner = self.inner.borrow_mut();
        while let Some(&Reverse((deadline, id))) = inner.heap.peek() {
            let live = inner.sleepers[id].as_ref().is_some_and(|s| !s.done && s.deadline_ns == deadline);
            if !live {
                inner.heap.pop();
                continue;
            }
            if deadline > now {
                return Some(deadline);
            }
            inner.heap.pop();
            let s = inner.sleepers[id].as_mut().expect("live sleeper");
            s.done = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
        None
    }

    /// The pacer's task: runs for the life of the load thread.
    pub async fn run(self: Rc<Self>) {
        let Some(fd) = &self.timer else { return };
        // SAFETY: dup gives the monoio File its own descriptor to own and close.
        let dup = unsafe { libc::dup(fd.as_raw_fd()) };
        if dup < 0 {
            return;
        }
        // SAFETY: dup is a fresh valid descriptor.
        let Ok(file) = monoio::fs::File::from_std(unsafe { std::fs::File::from_raw_fd(dup) }) else {
            return;
        };
        let mut buf = vec![0u8; 8];
        let mut last_fire = 0u64;
        loop {
            if self.external.get() {
                self.armed_ns.set(u64::MAX);
                self.new_sleeper.notified().await;
                continue;
            }
            match self.release_due() {
                None => {
                    self.armed_ns.set(u64::MAX);
                    self.new_sleeper.notified().await;
                }
                Some(next) => {
                    let at = next.max(last_fire + PACER_TICK_MIN_NS);
                    if at != self.armed_ns.get() {
                        self.arm(at);
                    }
                    self.reading.set(true);
                    let (res, b) = file.read_at(buf, 0).await;
                    self.reading.set(false);
                    buf = b;
                    if res.is_err() {
                        // EAGAIN after a re-arm race: loop and look again.
                        monoio::time::sleep(Duration::from_millis(1)).await;
                    }
                    last_fire = now_ns();
                    self.armed_ns.set(u64::MAX);
                }
            }
        }
    }
}

/// Frees the sleeper slot when the sleep ends or is dropped.
struct SleepGuard<'a> {
    pacer: &'a Pacer,
    id: usize,
}

impl Drop for SleepGuard<'_> {
    fn drop(&mut self) {
        let mut inner = self.pacer.inner.borrow_mut();
        inner.sleepers[self.id] = None;
        inner.free.push(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sleepers with interleaved deadlines each wake at or after their deadline, never
    /// before, and (on an idle machine) within a few hundred µs.
    #[test]
    fn sleepers_never_wake_early() {
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().enable_timer().build().unwrap();
        let lateness: Vec<u64> = rt.block_on(async {
            let pacer = Pacer::new(true);
            assert_eq!(pacer.kind(), "timerfd");
            monoio::spawn(pacer.clone().run());
            let base = now_ns() + 2_000_000;
            let tasks: Vec<_> = (0..20u64)
                .map(|i| {
                    let pacer = pacer.clone();
                    // Deadlines 150 µs apart, registered out of order.
                    let deadline = base + ((i * 7) % 20) * 150_000;
                    monoio::spawn(async move {
                        pacer.sleep_until(deadline).await;
                        now_ns() as i64 - deadline as i64
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                let late = t.await;
                assert!(late >= 0, "woke {} ns early", -late);
                out.push(late as u64);
            }
            out
        });
        let worst = lateness.iter().max().copied().unwrap();
        // Generous: shared CI machines stall; the point is "not a millisecond timer".
        assert!(worst < 50_000_000, "worst lateness {worst} ns");
    }

    #[test]
    fn past_deadline_returns_at_once() {
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async {
            let pacer = Pacer::new(true);
            let t0 = now_ns();
            pacer.sleep_until(t0.saturating_sub(1)).await;
            assert!(now_ns() - t0 < 1_000_000);
        });
    }
}
