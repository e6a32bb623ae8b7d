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
    /// The shard that routed it first and its number there.
    pub origin: Origin,
}

/// Where a message entered the routing: the shard and the message's number there. Each
/// shard numbers the messages it routes (1, 2, ...) and forwards them to each other shard
/// in that order, so a shard can say up to which number it has handled a peer's
/// messages: what a session moving away takes along, so that its new shard does not
/// deliver again what the old one already did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Origin {
    pub shard: u16,
    /// 0 until routed.
    pub seq: u64,
}

impl Origin {
    /// Not routed yet.
    pub const UNROUTED: Origin = Origin { shard: 0, seq: 0 };
}

/// A message on its way through one shard's routing: owned until some delivery has to
/// keep it (a session's queue or in-flight window, another shard, the retained store),
/// shared from then on. A QoS 0 message written straight into its subscribers' output
/// buffers is never put behind an `Arc`: no allocation and no atomic for it.
#[derive(Debug)]
pub struct Routed {
    owned: Option<Message>,
    shared: Option<Arc<Message>>,
}

impl Routed {
    /// A message that nothing shares yet.
    pub fn new(message: Message) -> Self {
        Routed { owned: Some(message), shared: None }
    }

    /// A message that is already shared (from another shard, a queue, the store).
    pub fn from_shared(message: Arc<Message>) -> Self {
        Routed { owned: None, shared: Some(message) }
    }

    /// The shared message, made so on first call; every call returns the same `Arc`
    /// (duplicate detection during a session handover compares their addresses).
    pub fn share(&mut self) -> Arc<Message> {
        if let Some(shared) = &self.shared {
            return shared.clone();
        }
        let shared = Arc::new(self.owned.take().expect("a Routed holds its message one way or the other"));
        self.shared = Some(shared.clone());
        shared
    }
}

impl std::ops::Deref for Routed {
    type Target = Message;

    fn deref(&self) -> &Message {
        match &self.shared {
            Some(shared) => shared,
            None => self.owned.as_ref().expect("a Routed holds its message one way or the other"),
        }
    }
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

    /// The shard the publishing session was on.
    pub fn shard(self) -> u16 {
        (self.0 >> 48) as u16
    }

    /// The publishing session's slot on that shard.
    pub fn slot(self) -> u32 {
        self.0 as u32
    }
}

/// What one subscriber gets of one message: the message and the per-subscription parts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// min(published QoS, granted QoS) (3.1.1 [MQTT-3.8.4-6], 5.0 [MQTT-3.8.4-8]).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str) -> Message {
        Message {
            topic: ByteStr::from(topic),
            payload: Bytes::from_static(b"p"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: None,
            expires_at_ms: None,
            publisher: PublisherKey::NONE,
            origin: Origin::UNROUTED,
        }
    }

    #[test]
    fn a_routed_message_is_shared_once_and_reads_the_same_before_and_after() {
        let mut routed = Routed::new(message("a/b"));
        assert_eq!(&*routed.topic, "a/b");
        let first = routed.share();
        let second = routed.share();
        assert!(Arc::ptr_eq(&first, &second), "one Arc per routed message");
        assert_eq!(&*routed.topic, "a/b");
        assert_eq!(Arc::strong_count(&first), 3);
    }

    #[test]
    fn an_already_shared_message_keeps_its_arc() {
        let original = Arc::new(message("x"));
        let mut routed = Routed::from_shared(original.clone());
        assert!(Arc::ptr_eq(&routed.share(), &original));
    }
}
