//! The harness of the end-to-end tests, one file per job:
//!
//! - [`broker`]: [`TestBroker`], an in-process broker with [`SHARDS`] shards on
//!   `127.0.0.1:0`, shut down when the guard drops (bounded: a shutdown that hangs is
//!   reported, not waited on).
//! - [`raw`]: [`Raw`], a small blocking MQTT client over `std::net::TcpStream`, built on
//!   `ringmq::protocol` (the broker's own codec, used as a client). Every read has a
//!   deadline, so a test never hangs: a missing packet is a panic naming what was expected.
//! - [`placement`]: connections on chosen shards ([`one_per_shard`], [`on_shard`]) and
//!   client ids with chosen home shards ([`ids_covering_homes`]).
//! - [`fence`]: [`Fence`], one connection per shard, whose messages prove that nothing
//!   more is on its way to a client without waiting for a quiet window.
//! - [`rumq`]: rumqttc clients whose event loop runs in a tokio task and records what
//!   arrives, for the tests that use a real third-party client.
//!
//! This file has what is left: the constants and the small helpers every test uses.

mod broker;
mod fence;
mod placement;
mod raw;
mod rumq;

pub use broker::*;
pub use fence::*;
pub use placement::*;
pub use raw::*;
pub use rumq::*;

use bytes::Bytes;
use ringmq::protocol::{ByteStr, Packet, Properties, Publish, QoS, SubscriptionOptions};
use std::time::Duration;

pub use ringmq::protocol::ProtocolVersion::{self, V3_1, V3_1_1, V5};

/// Shards every test broker runs (more than this machine's cores: placement is unbound).
pub const SHARDS: usize = 4;
/// How long a test waits for a packet it expects.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure a packet does not come, where nothing can prove it
/// sooner (see [`Fence`] for what can).
pub const QUIET: Duration = Duration::from_millis(300);

pub const Q0: QoS = QoS::AtMostOnce;
pub const Q1: QoS = QoS::AtLeastOnce;
pub const Q2: QoS = QoS::ExactlyOnce;

pub fn qos(n: u8) -> QoS {
    QoS::try_from(n).expect("qos 0..=2")
}

pub fn payload_str(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// Properties with one field set, conveniently.
pub fn props(f: impl FnOnce(&mut Properties)) -> Properties {
    let mut p = Properties::default();
    f(&mut p);
    p
}

/// Subscription options at `qos` adjusted by `f`.
pub fn sub_opts(qos: QoS, f: impl FnOnce(&mut SubscriptionOptions)) -> SubscriptionOptions {
    let mut o = SubscriptionOptions::qos(qos);
    f(&mut o);
    o
}

pub fn filter(f: &str, o: SubscriptionOptions) -> (ByteStr, SubscriptionOptions) {
    (ByteStr::from(f), o)
}

/// A PUBLISH packet (DUP 0) from its parts.
pub fn publish_packet(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    packet_id: u16,
    properties: Option<Properties>,
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: ByteStr::from(topic),
        packet_id,
        payload: Bytes::copy_from_slice(payload),
        properties: properties.map(Box::new),
    })
}

/// Closes the socket without DISCONNECT.
pub fn drop_abruptly(c: Raw) {
    let _ = c.stream.shutdown(std::net::Shutdown::Both);
    drop(c);
}
