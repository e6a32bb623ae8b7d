//! The session's vocabulary: the bounds it works within, what it answers and counts, and
//! its errors (the state machine itself is `mod.rs`).

use super::Message;
use crate::protocol::{QoS, ReasonCode, SubscriptionOptions};

/// Bounds a session works within (config values, named with their units).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// QoS 1/2 messages in flight to a client at once (`max_inflight_messages`).
    pub max_inflight_messages: u16,
    /// QoS 1/2 messages queued behind the window (`max_queued_messages`); 0 is unlimited.
    pub max_queued_messages: usize,
    /// Payload bytes queued behind the window; 0 is unlimited (`max_queued_bytes`).
    pub max_queued_bytes: usize,
    /// Highest inbound topic alias we accept (MQTT 5).
    pub max_topic_alias: u16,
    /// Our Receive Maximum: inbound QoS 2 exchanges open at once (MQTT 5).
    pub receive_maximum: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflight_messages: 20,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            max_topic_alias: 10,
            receive_maximum: 65535,
        }
    }
}

/// A protocol violation found by the session; the connection is closed, in MQTT 5 after a
/// DISCONNECT with [`SessionError::reason_code`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SessionError {
    #[error("topic alias 0 or above the maximum (5.0 [MQTT-3.3.2-8] [MQTT-3.3.2-9])")]
    TopicAliasInvalid,
    #[error("empty topic with an unknown topic alias (protocol error)")]
    UnknownTopicAlias,
    #[error("more QoS 2 exchanges open than our Receive Maximum (5.0 [MQTT-3.3.4-7])")]
    ReceiveMaximumExceeded,
    #[error("subscription identifier in a PUBLISH from a client (5.0 [MQTT-3.3.4-6])")]
    SubscriptionIdFromClient,
    #[error("acknowledgement of the wrong kind for the message in flight (section 4.3)")]
    WrongAcknowledgement,
}

/// The acknowledgements a client sends for the messages it receives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AckKind {
    PubAck,
    PubRec,
    PubComp,
}

impl SessionError {
    /// A one-line description with the conformance id, for logs and Reason Strings.
    pub fn describe(self) -> &'static str {
        match self {
            Self::TopicAliasInvalid => {
                "topic alias 0 or above the maximum (5.0 [MQTT-3.3.2-8] [MQTT-3.3.2-9])"
            }
            Self::UnknownTopicAlias => "empty topic with an unknown topic alias",
            Self::ReceiveMaximumExceeded => {
                "more QoS 2 exchanges open than the Receive Maximum (5.0 [MQTT-3.3.4-7])"
            }
            Self::SubscriptionIdFromClient => {
                "subscription identifier in a PUBLISH from a client (5.0 [MQTT-3.3.4-6])"
            }
            Self::WrongAcknowledgement => "acknowledgement of the wrong kind for the message in flight",
        }
    }

    /// The reason code of the DISCONNECT sent to an MQTT 5 client.
    pub fn reason_code(self) -> ReasonCode {
        match self {
            Self::TopicAliasInvalid => ReasonCode::TOPIC_ALIAS_INVALID,
            Self::UnknownTopicAlias | Self::SubscriptionIdFromClient | Self::WrongAcknowledgement => {
                ReasonCode::PROTOCOL_ERROR
            }
            Self::ReceiveMaximumExceeded => ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
        }
    }
}

/// A subscription as the session remembers it (for persistence and takeover).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    pub subscription_id: Option<u32>,
    /// The filter reaches topics the subscriber's ACL does not let it read: each
    /// delivery is checked. False for the usual subscription, which costs nothing then.
    pub read_checked: bool,
}

/// Messages dropped because a bound was reached, for the once-per-episode log.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct DropCounts {
    pub queue_full: u64,
    pub too_large_for_client: u64,
    /// Messages whose Message Expiry Interval ran out before they could be sent.
    pub expired: u64,
}

/// PUBLISH packets a session wrote, by QoS, and their payload bytes (Mosquitto's
/// `publish/messages/sent` and `publish/bytes/sent`). The shard takes them into its own
/// counters once per interval (`Sessions::take_sent`), so a send costs two adds here.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct SentCounts {
    pub messages: [u64; 3],
    pub payload_bytes: u64,
}

impl SentCounts {
    /// Adds `other` to these.
    pub fn add(&mut self, other: &SentCounts) {
        for (a, b) in self.messages.iter_mut().zip(other.messages) {
            *a += b;
        }
        self.payload_bytes += other.payload_bytes;
    }
}

/// A PUBLISH the session accepted, waiting to be routed and acknowledged.
#[derive(Debug)]
pub struct Accepted {
    /// The message to route; `None` for a QoS 2 retransmission already routed.
    pub message: Option<Message>,
    pub qos: QoS,
    pub packet_id: u16,
}

/// The outcome of one [`Session::deliver`](super::Session::deliver).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeliverOutcome {
    Sent,
    Queued,
    /// Queued past `max_queued_messages` (or `max_queued_bytes`) into the allowance the
    /// caller gave: the caller holds the publisher until the queue drains.
    QueuedOverLimit,
    Dropped,
}
