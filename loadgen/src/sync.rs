//! Single-thread synchronisation for the tasks of one load thread (no atomics, no locks:
//! everything here lives and dies on one monoio runtime).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// A flag that, once set, releases every task waiting on it.
#[derive(Default)]
pub struct Event {
    set: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Event {
    pub fn set(&self) {
        if !self.set.replace(true) {
            for w in self.waiters.borrow_mut().drain(..) {
                w.wake();
            }
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                let mut ws = self.waiters.borrow_mut();
                if !ws.iter().any(|w| w.will_wake(cx.waker())) {
                    ws.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}

/// One waiter, woken by anyone: "something you care about changed, look again".
#[derive(Default)]
pub struct Notify {
    waker: RefCell<Option<Waker>>,
    pending: Cell<bool>,
}

impl Notify {
    pub fn notify(&self) {
        self.pending.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Returns once [`Notify::notify`] has been called since the last return.
    pub async fn notified(&self) {
        poll_fn(|cx| {
            if self.pending.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// A counting semaphore bounding work in flight (connects, for example).
pub struct Semaphore {
    permits: Cell<usize>,
    waiters: RefCell<std::collections::VecDeque<Waker>>,
}

impl Semaphore {
    pub fn new(permits: usize) -> Self {
        Semaphore { permits: Cell::new(permits), waiters: Default::default() }
    }

    pub async fn acquire(&self) -> Permit<'_> {
        poll_fn(|cx| {
            let n = self.permits.get();
            if n > 0 {
                self.permits.set(n - 1);
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push_back(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        Permit(self)
    }
}

/// Gives its permit back when dropped.
pub struct Permit<'a>(&'a Semaphore);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.permits.set(self.0.permits.get() + 1);
        if let Some(w) = self.0.waiters.borrow_mut().pop_front() {
            w.wake();
        }
    }
}
