//! [`Fence`]: proof that nothing more is on its way to a client, without a quiet window.
//!
//! A test that asserts a message does *not* come can wait [`super::QUIET`] and see
//! nothing; that costs 300 ms each time and proves little on a loaded machine. A fence
//! proves it instead. The client subscribes to a fresh topic; its SUBACK comes only after
//! a barrier round trip to every shard (the shard's `handle_subscribe`), so
//! every shard routes the new subscription by then. A connection on every shard then
//! publishes one QoS 1 message to it. What one shard routes to a connection on another
//! travels one FIFO queue, and a session sends (or queues behind its receive window)
//! what it is given in order, so once the client has the fence message of every shard it
//! has read everything any shard routed to it before: [`Fence::expect_quiet`] asserts
//! that none of that was anything but fence messages. (For a client whose receive window
//! is full, [`Fence::expect_quiet_behind_window`] uses QoS 0 messages, which pass it.)
//!
//! What a fence covers: messages routed before the fence is published, that is, every
//! publish whose PUBACK or PUBREC the publisher has (at QoS 0: followed by the publisher's
//! [`Raw::sync`]), and messages a session had queued. What it does not: anything a timer
//! sends (message or session expiry, keepalive, will delay), which only time can show;
//! and clients that accept outbound topic aliases, whose aliases the fence messages would
//! use up.
//!
//! Fence topics start with `$`, so no wildcard subscription of another client matches
//! them [MQTT-4.7.2-1], and [`Raw`] takes their messages out of what the test reads. The
//! fence subscription stays in the client's session; nothing else publishes to it.

use super::{one_per_shard, Raw, IO_TIMEOUT, Q0, Q1, SHARDS};
use ringmq::protocol::QoS;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Topic prefix of fence messages; [`Raw`] diverts these away from the test.
pub const FENCE_PREFIX: &str = "$fence/";

/// One MQTT 5 connection on every shard: the fence's publishers, and for the tests a
/// publisher on every shard too.
pub struct Fence {
    /// Index = shard.
    pub conns: Vec<Raw>,
    n: u32,
}

impl Fence {
    pub fn new(addr: SocketAddr) -> Fence {
        Fence { conns: one_per_shard(addr), n: 0 }
    }

    /// Reads everything any shard routed to `client` before this call; what is not a
    /// fence message is kept, in order, for the test's next reads.
    pub fn flush(&mut self, client: &mut Raw) {
        self.flush_at(client, Q1);
    }

    /// [`Fence::flush`] with fence messages at `qos`.
    fn flush_at(&mut self, client: &mut Raw, qos: QoS) {
        self.n += 1;
        let topic = format!("{FENCE_PREFIX}{}/{}", self.n, client.client_id);
        client.subscribe_ok(&[(&topic, qos)]);
        client.fence_seen.clear();
        for (i, p) in self.conns.iter_mut().enumerate() {
            p.publish(&topic, i.to_string().as_bytes(), qos, false);
        }
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            // Distinct payloads, counted once each: a duplicate would be the test's to find.
            let seen: BTreeSet<&str> =
                client.fence_seen.iter().filter(|(t, _)| *t == topic).map(|(_, p)| p.as_str()).collect();
            let seen = seen.len();
            if seen == SHARDS {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: fence: {seen} of {SHARDS} fence messages arrived within {IO_TIMEOUT:?}",
                client.client_id
            );
            // Short reads: `read_packet` takes fence messages in without returning.
            match client.read_packet(left.min(Duration::from_millis(5))) {
                super::Recv::Packet(p) => client.pending.push_back(p),
                super::Recv::Timeout => {}
                other => panic!("{}: fence: {other:?}", client.client_id),
            }
        }
    }

    /// Asserts that nothing is on its way to `client`: everything any shard routed to it
    /// before this call has arrived, and it has all been read by the test already.
    pub fn expect_quiet(&mut self, client: &mut Raw) {
        self.flush(client);
        assert!(
            client.pending.is_empty(),
            "{}: expected nothing more, got {:?}",
            client.client_id,
            client.pending
        );
    }

    /// [`Fence::expect_quiet`] for a client whose receive window is full (MQTT 5 Receive
    /// Maximum): the fence messages are QoS 0, which the window does not hold back (it
    /// counts QoS 1 and 2 only, section 4.9), so they prove that nothing routed before
    /// them was sent past the window.
    pub fn expect_quiet_behind_window(&mut self, client: &mut Raw) {
        self.flush_at(client, Q0);
        assert!(
            client.pending.is_empty(),
            "{}: expected nothing more with the receive window full, got {:?}",
            client.client_id,
            client.pending
        );
    }

    /// [`Fence::expect_quiet`] for each client.
    pub fn expect_quiet_all<'a>(&mut self, clients: impl IntoIterator<Item = &'a mut Raw>) {
        for c in clients {
            self.expect_quiet(c);
        }
    }
}
