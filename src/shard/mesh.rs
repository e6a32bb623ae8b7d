//! The cross-shard mesh: one bounded queue per ordered pair of shards (N x N) and one
//! waker per shard. Each queue has exactly one producer, the shard thread `from`, and one
//! consumer, the shard thread `to`; the broker's main thread never pushes (shutdown is a
//! flag and a wake, [`Mesh::shut_down`]). A sender pushes, then wakes the receiver if it
//! is parked; the waker writes the eventfd the receiving shard's io_uring loop has a read
//! armed on.
//!
//! A full queue hands the message back to the sender ([`Mesh::try_send`]); the sender
//! keeps it in its own backlog and stops reading from publishing sockets until the
//! backlog drains (TCP back-pressure), and never blocks its loop waiting. The failed push
//! marks the pair blocked, and the receiver, once it has taken messages off that queue,
//! wakes the sender ([`Mesh::take_blocked`]) so the backlog moves on at once rather than
//! at the sender's next timer. A sender whose receiver never sends back (the publishers on
//! one shard, their subscribers on another) would otherwise be woken by nothing.
//!
//! # Orderings
//!
//! Parking is a store of the shard's `parked` flag, then a load of its queues (and of the
//! shutdown flag); sending is a push, then a swap of the receiver's `parked` flag. Each
//! side stores, then loads what the other stores: with anything weaker than SeqCst on
//! both the store and the load, each side could miss the other's store (a store-buffer
//! litmus), and the receiver would sleep with a message waiting until its timer. So
//! `park`, `wake`, `try_send`'s blocked mark, `take_blocked` and the shutdown flag are
//! SeqCst. [`Mesh::unpark`] is a plain Release store: it only clears a flag the shard set
//! itself, so at worst a sender wakes a shard that is already awake (one spare eventfd
//! write).

use super::messages::MeshMsg;
use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Context;

/// The N x N queues and per-shard wakers, shared by every shard thread.
pub struct Mesh {
    shards: usize,
    /// Indexed by [`Mesh::pair`].
    queues: Vec<ArrayQueue<MeshMsg>>,
    wakers: Vec<AtomicWaker>,
    /// Set while a shard's receive task is parked, so senders know a wake is needed.
    parked: Vec<AtomicBool>,
    /// Per pair: a push from `from` to `to` found the queue full.
    blocked: Vec<AtomicBool>,
    /// Set once, by [`Mesh::shut_down`]: every shard leaves its loop.
    shutting_down: AtomicBool,
}

impl Mesh {
    /// A mesh for `shards` shards whose queues hold `capacity` messages each (the
    /// `mesh_queue` option).
    pub fn new(shards: usize, capacity: usize) -> Self {
        Mesh {
            shards,
            queues: (0..shards * shards).map(|_| ArrayQueue::new(capacity)).collect(),
            wakers: (0..shards).map(|_| AtomicWaker::new()).collect(),
            parked: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            blocked: (0..shards * shards).map(|_| AtomicBool::new(false)).collect(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The index of the pair (from, to) in `queues` and `blocked`.
    fn pair(&self, from: usize, to: usize) -> usize {
        to * self.shards + from
    }

    fn queue(&self, from: usize, to: usize) -> &ArrayQueue<MeshMsg> {
        &self.queues[self.pair(from, to)]
    }

    /// Pushes without blocking; a full queue gives the message back and marks the pair
    /// blocked, for the receiver to wake this sender once it has made room.
    pub fn try_send(&self, from: usize, to: usize, msg: MeshMsg) -> Result<(), MeshMsg> {
        self.queue(from, to)
            .push(msg)
            .inspect_err(|_| self.blocked[self.pair(from, to)].store(true, Ordering::SeqCst))
    }

    /// Whether the queue from `from` to `to` has room for a push.
    pub fn has_room(&self, from: usize, to: usize) -> bool {
        !self.queue(from, to).is_full()
    }

    /// Called by shard `to` after taking messages from `from`'s queue: true (once) when
    /// `from` found that queue full since the last call, so `to` should wake it.
    pub fn take_blocked(&self, from: usize, to: usize) -> bool {
        self.blocked[self.pair(from, to)].swap(false, Ordering::SeqCst)
    }

    /// Wakes shard `to` if it is parked. Call once per turn per destination, after pushing.
    pub fn wake(&self, to: usize) {
        if self.parked[to].swap(false, Ordering::SeqCst) {
            self.wakers[to].wake();
        }
    }

    /// Takes one message addressed to shard `to` from shard `from`.
    pub fn try_recv(&self, from: usize, to: usize) -> Option<MeshMsg> {
        self.queue(from, to).pop()
    }

    /// Messages waiting for shard `to`, from every shard (for `$SYS` and metrics).
    pub fn depth_to(&self, to: usize) -> usize {
        (0..self.shards).map(|from| self.queue(from, to).len()).sum()
    }

    /// Whether anything is waiting for shard `to`.
    pub fn has_pending(&self, to: usize) -> bool {
        (0..self.shards).any(|from| !self.queue(from, to).is_empty())
    }

    /// Tells every shard to stop, from any thread: a flag each loop checks every turn
    /// (and `park` before sleeping), then a wake for each parked shard.
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for to in 0..self.shards {
            self.wake(to);
        }
    }

    /// Whether [`Mesh::shut_down`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Shard `to` is awake again (it woke for another reason than the mesh): senders need
    /// not wake it.
    pub fn unpark(&self, to: usize) {
        self.parked[to].store(false, Ordering::Release);
    }

    /// Registers shard `to`'s receive task to be woken, then re-checks the queues (and the
    /// shutdown flag) so that a message pushed between the last drain and the
    /// registration is not missed, and
    /// asks `can_send` whether a queue it is backed up on has room now (its receiver may
    /// have drained it before the registration). Returns true when the task may sleep.
    pub fn park(&self, to: usize, cx: &mut Context<'_>, can_send: impl FnOnce() -> bool) -> bool {
        self.wakers[to].register(cx.waker());
        self.parked[to].store(true, Ordering::SeqCst);
        if self.has_pending(to) || self.is_shutting_down() || can_send() {
            self.parked[to].store(false, Ordering::SeqCst);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    const CAPACITY: usize = 16;

    fn fill(mesh: &Mesh, from: usize, to: usize) {
        for token in 0..CAPACITY as u64 {
            assert!(mesh.try_send(from, to, MeshMsg::BarrierAck { token }).is_ok());
        }
    }

    #[test]
    fn a_sender_backed_up_on_a_full_queue_is_woken_when_the_receiver_makes_room() {
        let mesh = Mesh::new(2, CAPACITY);
        let count = Arc::new(CountingWaker::default());
        let waker = Waker::from(count.clone());
        fill(&mesh, 0, 1);
        assert!(!mesh.take_blocked(0, 1), "a queue that took every push is not blocked");
        assert!(mesh.try_send(0, 1, MeshMsg::BarrierAck { token: 0 }).is_err());
        // Shard 0 has nothing to receive and no room to send: it may sleep.
        assert!(mesh.park(0, &mut Context::from_waker(&waker), || mesh.has_room(0, 1)));
        // Shard 1 takes a message; the pair was blocked, so it wakes shard 0, once.
        assert!(mesh.try_recv(0, 1).is_some());
        assert!(mesh.take_blocked(0, 1));
        mesh.wake(0);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!mesh.take_blocked(0, 1), "one wake per failed push");
    }

    #[test]
    fn shutting_down_wakes_a_parked_shard_and_keeps_an_awake_one_from_sleeping() {
        let mesh = Mesh::new(2, CAPACITY);
        let count = Arc::new(CountingWaker::default());
        let waker = Waker::from(count.clone());
        assert!(mesh.park(0, &mut Context::from_waker(&waker), || false));
        mesh.shut_down();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the parked shard was woken");
        assert!(mesh.is_shutting_down());
        assert!(!mesh.park(1, &mut Context::from_waker(&waker), || false), "no sleep after shutdown");
    }

    #[test]
    fn a_sender_does_not_sleep_when_its_queue_has_room_again() {
        let mesh = Mesh::new(2, CAPACITY);
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        fill(&mesh, 0, 1);
        assert!(mesh.try_send(0, 1, MeshMsg::BarrierAck { token: 0 }).is_err());
        // The receiver drained before the sender parked (and found it not yet parked).
        assert!(mesh.try_recv(0, 1).is_some());
        assert!(mesh.take_blocked(0, 1));
        mesh.wake(0);
        assert!(
            !mesh.park(0, &mut Context::from_waker(&waker), || mesh.has_room(0, 1)),
            "room to send: no sleep"
        );
    }
}
