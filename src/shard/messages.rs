//! What shards tell each other over the mesh. Data (forwarded publishes) and control
//! (interest changes, retained updates, the client-id registry and session takeover)
//! share one FIFO per shard pair, so a publisher's messages keep their order and an
//! interest change is seen before the publishes that depend on it.

use crate::protocol::ByteStr;
use crate::session::{Delivery, Message, PublisherKey, Session};
use std::sync::Arc;

/// A unique id for one CONNECT attempt: the shard it arrived on and a counter there.
pub type ConnectToken = u64;

/// A session on its way to another shard, with how far its old shard had handled each
/// shard's messages ([`crate::session::Origin`] numbers, indexed by shard): the new
/// shard does not deliver again a message numbered up to there, which the old shard has
/// already handled for the session (delivered, queued, or dropped as offline QoS 0).
pub struct MovedSession {
    pub session: Session,
    pub handled_up_to: Box<[u64]>,
}

/// A message between shards.
pub enum MeshMsg {
    /// Deliver to the receiving shard's local (non-shared) subscribers.
    Forward(Arc<Message>),
    /// Deliver to one local member of a shared-subscription group; `hops` counts how
    /// often it was sent on because the chosen member had left.
    SharedForward { group: Arc<str>, filter: Arc<str>, message: Arc<Message>, hops: u8 },
    /// The sending shard gained (`add`) or lost its last subscription to `filter`.
    Interest { filter: Arc<str>, from: u16, add: bool },
    /// The sending shard gained or lost one member of a shared group.
    SharedInterest { group: Arc<str>, filter: Arc<str>, from: u16, add: bool },
    /// A retained message was set (`Some`) or cleared (`None`) on the sending shard;
    /// `seq` orders it against updates from other shards.
    Retain { topic: ByteStr, seq: u64, message: Option<Arc<Message>> },
    /// Flow control: hold (`hold`) or let go the publisher of `publisher`, a session on
    /// the receiving shard, for one subscriber's full queue on the sending shard.
    HoldPublisher { publisher: PublisherKey, hold: bool },
    /// Answer `BarrierAck` once everything the sender sent before this is handled.
    Barrier { from: u16, token: u64 },
    /// The answer to a `Barrier`: every earlier message of this pair is handled.
    BarrierAck { token: u64 },
    /// To the client id's home shard: a client connected on shard `from`.
    Register { client_id: ByteStr, from: u16, token: ConnectToken, clean_start: bool },
    /// From the home shard to the shard of registration `holder`, which holds the
    /// client's session or is still connecting: give it up to `token` on shard `to`.
    Takeover { client_id: ByteStr, holder: ConnectToken, to: u16, token: ConnectToken, clean_start: bool },
    /// To the shard the client connected on: its old session, if it is to be resumed,
    /// from shard `from`, which keeps routing to it until told `Release`.
    Handoff { token: ConnectToken, session: Option<Box<MovedSession>>, from: u16 },
    /// From the old holder: a delivery its stub of the moved session received.
    MovedDelivery { token: ConnectToken, delivery: Delivery },
    /// To the old holder: the moved session is routed here now; drop the stub.
    Release { token: ConnectToken, from: u16 },
    /// From the old holder: the stub is gone; no more `MovedDelivery` for this token.
    Released { token: ConnectToken },
    /// To the home shard: the session registered under `token` has ended.
    Unregister { client_id: ByteStr, token: ConnectToken },
}
