//! The cross-shard mesh: one bounded queue per ordered pair of shards (N x N, each with a
//! single producer and a single consumer) and one waker per shard. A sender pushes, then
//! wakes the receiver if it is parked; the waker writes the eventfd the receiving
//! shard's io_uring loop has a read armed on.
//!
//! A full queue hands the message back to the sender ([`Mesh::try_send`]); the sender
//! keeps it in its own backlog and stops reading from publishing sockets until the
//! backlog drains (TCP back-pressure), and never blocks its loop waiting.

use super::messages::MeshMsg;
use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Context;

/// Messages one shard may have queued toward another before back-pressure starts.
pub const MESH_QUEUE_CAPACITY: usize = 8192;

/// The N x N queues and per-shard wakers, shared by every shard thread.
pub struct Mesh {
    shards: usize,
    /// `queues[to * shards + from]`.
    queues: Vec<ArrayQueue<MeshMsg>>,
    wakers: Vec<AtomicWaker>,
    /// Set while a shard's receive task is parked, so senders know a wake is needed.
    parked: Vec<AtomicBool>,
}

impl Mesh {
    /// A mesh for `shards` shards.
    pub fn new(shards: usize) -> Self {
        Mesh {
            shards,
            queues: (0..shards * shards).map(|_| ArrayQueue::new(MESH_QUEUE_CAPACITY)).collect(),
            wakers: (0..shards).map(|_| AtomicWaker::new()).collect(),
            parked: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    fn queue(&self, from: usize, to: usize) -> &ArrayQueue<MeshMsg> {
        &self.queues[to * self.shards + from]
    }

    /// Pushes without blocking; a full queue gives the message back.
    pub fn try_send(&self, from: usize, to: usize, msg: MeshMsg) -> Result<(), MeshMsg> {
        self.queue(from, to).push(msg)
    }

    /// Wakes shard `to` if it is parked. Call once per turn per destination, after pushing.
    pub fn wake(&self, to: usize) {
        if self.parked[to].swap(false, Ordering::AcqRel) {
            self.wakers[to].wake();
        }
    }

    /// Takes one message addressed to shard `to` from shard `from`.
    pub fn try_recv(&self, from: usize, to: usize) -> Option<MeshMsg> {
        self.queue(from, to).pop()
    }

    /// Whether anything is waiting for shard `to`.
    pub fn has_pending(&self, to: usize) -> bool {
        (0..self.shards).any(|from| !self.queue(from, to).is_empty())
    }

    /// Shard `to` is awake again (it woke for another reason than the mesh): senders need
    /// not wake it.
    pub fn unpark(&self, to: usize) {
        self.parked[to].store(false, Ordering::Release);
    }

    /// Registers shard `to`'s receive task to be woken, then re-checks the queues so that
    /// a message pushed between the last drain and the registration is not missed.
    /// Returns true when the task may sleep.
    pub fn park(&self, to: usize, cx: &mut Context<'_>) -> bool {
        self.wakers[to].register(cx.waker());
        self.parked[to].store(true, Ordering::Release);
        if self.has_pending(to) {
            self.parked[to].store(false, Ordering::Release);
            return false;
        }
        true
    }
}
