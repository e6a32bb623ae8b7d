//! The routed message: what one PUBLISH becomes once the broker has accepted it. It is
//! shared (`Arc`) by every subscriber and every shard it reaches; only the per-recipient
//! parts (QoS, packet id, retain flag, subscription ids) differ per delivery.

use crate::protocol::{ByteStr, Properties, QoS};
use bytes::Bytes;
use std::sync::Arc;

/// An application message on its way to subscribers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    pub topic: ByteStr,
    pub payload: Bytes,
    /// The QoS it was published with; each subscriber gets at most its granted QoS.
    pub qos: QoS,
    /// The RETAIN flag as published (kept for "retain as published").
    pub retain: bool,
    /// MQTT 5 properties forwarded to subscribers (payload format, expiry, content type,
    /// response topic, correlation data, user properties). Topic alias and subscription
    /// identifiers are per connection and never stored here; the expiry interval is
    /// rewritten to the time left whenever the message is sent.
    pub properties: Option<Arc<Properties>>,
    /// When the Message Expiry Interval runs out, on the shard's millisecond clock.
    pub expires_at_ms: Option<u64>,
    /// Identifies the publishing client on its shard, for the No Local option.
    pub publisher: PublisherKey,
}

/// The publishing session (shard and slot), or none for messages the broker made (wills
/// are published on behalf of a client that is gone, retained replays have no publisher).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PublisherKey(pub u64);

impl PublisherKey {
    /// No publisher: matches no subscriber's No Local check.
    pub const NONE: PublisherKey = PublisherKey(u64::MAX);

    /// A key for session `slot` on shard `shard`.
    pub fn new(shard: u16, slot: u32, generation: u16) -> Self {
        PublisherKey(((shard as u64) << 48) | ((generation as u64) << 32) | slot as u64)
    }
}

/// What one subscriber gets of one message: the message and the per-subscription parts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// min(published QoS, granted QoS) [MQTT-3.8.4-8].
    pub qos: QoS,
    /// The RETAIN flag to send: set for retained messages sent on subscribe, and for
    /// "retain as published" subscriptions.
    pub retain: bool,
    /// Identifiers of every matching subscription that has one (MQTT 5).
    pub subscription_ids: Vec<u32>,
    /// The shared-subscription group this delivery was chosen through, if any: should the
    /// session end before the client acknowledges, another member gets the message.
    pub shared: Option<Arc<SharedGroupName>>,
}

/// A shared-subscription group: the share name and its topic filter.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SharedGroupName {
    pub group: Arc<str>,
    pub filter: Arc<str>,
}
