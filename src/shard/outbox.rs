//! One shard's sending end of the mesh: messages to each other shard in order, a
//! backlog per destination when its queue is full (the sender never blocks), barrier
//! tokens, and the wakes owed to the shards sent to this turn.

use super::mesh::Mesh;
use super::messages::MeshMsg;
use std::collections::VecDeque;
use std::sync::Arc;

/// The mesh as one shard sends into it.
pub struct Outbox {
    id: u16,
    mesh: Arc<Mesh>,
    /// Messages for a shard whose queue was full, kept in order.
    backlog: Vec<VecDeque<MeshMsg>>,
    /// Shards sent to since the last [`Outbox::wake_peers`].
    to_wake: Vec<bool>,
    next_barrier: u64,
}

impl Outbox {
    pub fn new(id: u16, mesh: Arc<Mesh>) -> Self {
        let shards = mesh.shards();
        Outbox {
            id,
            mesh,
            backlog: (0..shards).map(|_| VecDeque::new()).collect(),
            to_wake: vec![false; shards],
            next_barrier: 0,
        }
    }

    /// Number of shards in the mesh, this one included.
    pub fn shards(&self) -> usize {
        self.backlog.len()
    }

    /// Sends to a shard (this one included) in order: behind any backlog, or into the
    /// backlog when the queue is full.
    pub fn send(&mut self, to: usize, msg: MeshMsg) {
        self.to_wake[to] = true;
        if !self.backlog[to].is_empty() {
            self.backlog[to].push_back(msg);
            return;
        }
        if let Err(msg) = self.mesh.try_send(self.id as usize, to, msg) {
            self.backlog[to].push_back(msg);
        }
    }

    /// Sends to every other shard, a message made for each.
    pub fn broadcast(&mut self, mut make: impl FnMut() -> MeshMsg) {
        for to in 0..self.shards() {
            if to != self.id as usize {
                let m = make();
                self.send(to, m);
            }
        }
    }

    /// Sends a barrier to every other shard; returns its token and how many answers to
    /// wait for (0 with a single shard).
    pub fn barrier(&mut self) -> (u64, usize) {
        self.next_barrier += 1;
        let token = self.next_barrier;
        let from = self.id;
        self.broadcast(|| MeshMsg::Barrier { from, token });
        (token, self.shards() - 1)
    }

    /// Moves backlog into the queues as space allows; true when all of it is sent.
    pub fn flush_backlog(&mut self) -> bool {
        let mut drained = true;
        for to in 0..self.backlog.len() {
            while let Some(msg) = self.backlog[to].pop_front() {
                if let Err(msg) = self.mesh.try_send(self.id as usize, to, msg) {
                    self.backlog[to].push_front(msg);
                    drained = false;
                    break;
                }
                self.to_wake[to] = true;
            }
        }
        drained
    }

    /// Whether a backed-up queue has room now, so the backlog can move without waiting.
    pub fn backlog_has_room(&self) -> bool {
        let from = self.id as usize;
        (0..self.backlog.len()).any(|to| !self.backlog[to].is_empty() && self.mesh.has_room(from, to))
    }

    /// Whether any queue toward another shard is backed up.
    pub fn is_backlogged(&self) -> bool {
        self.backlog.iter().any(|b| !b.is_empty())
    }

    /// Messages waiting in the backlog toward `to`.
    #[cfg(test)]
    pub fn backlog_len(&self, to: usize) -> usize {
        self.backlog[to].len()
    }

    /// Wakes the shards sent to since the last call.
    pub fn wake_peers(&mut self) {
        for to in 0..self.to_wake.len() {
            if std::mem::take(&mut self.to_wake[to]) {
                self.mesh.wake(to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPACITY: usize = 64;

    fn pair() -> (Outbox, Outbox, Arc<Mesh>) {
        let mesh = Arc::new(Mesh::new(2, CAPACITY));
        (Outbox::new(0, mesh.clone()), Outbox::new(1, mesh.clone()), mesh)
    }

    fn ack(token: u64) -> MeshMsg {
        MeshMsg::BarrierAck { token }
    }

    #[test]
    fn full_mesh_queue_keeps_messages_in_order_in_a_backlog_and_drains_it() {
        let (mut a, _b, mesh) = pair();
        for token in 0..CAPACITY as u64 + 10 {
            a.send(1, ack(token));
        }
        assert!(a.is_backlogged(), "the queue holds {CAPACITY}; the rest waits");
        assert!(!a.flush_backlog(), "nothing drained yet");
        let mut next = 0;
        while let Some(MeshMsg::BarrierAck { token }) = mesh.try_recv(0, 1) {
            assert_eq!(token, next);
            next += 1;
        }
        assert!(a.flush_backlog());
        assert!(!a.is_backlogged());
        while let Some(MeshMsg::BarrierAck { token }) = mesh.try_recv(0, 1) {
            assert_eq!(token, next);
            next += 1;
        }
        assert_eq!(next, CAPACITY as u64 + 10, "nothing lost, nothing reordered");
    }

    #[test]
    fn sends_behind_a_backlog_wait_their_turn_even_when_the_queue_has_room() {
        let (mut a, _b, mesh) = pair();
        for _ in 0..CAPACITY {
            a.send(1, ack(0));
        }
        a.send(1, ack(7));
        let _ = mesh.try_recv(0, 1); // one slot frees up
        a.send(1, ack(8));
        // 8 must not overtake 7, which is still in the backlog.
        assert_eq!(a.backlog_len(1), 2);
    }

    #[test]
    fn both_directions_full_does_not_block_either_shard() {
        let (mut a, mut b, mesh) = pair();
        for _ in 0..CAPACITY + 1 {
            a.send(1, ack(0));
            b.send(0, ack(0));
        }
        // Neither send blocked; each shard can still drain what it receives.
        assert!(a.is_backlogged() && b.is_backlogged());
        let received = std::iter::from_fn(|| mesh.try_recv(1, 0)).count();
        assert_eq!(received, CAPACITY);
        assert!(b.flush_backlog(), "room again toward shard 0");
    }
}
