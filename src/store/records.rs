//! What a shard's log holds (docs/persistence.md, "What is stored"): the keys and values of
//! its records, encoded and decoded. The log's header carries the format version
//! (`log::FORMAT_VERSION`); a change here bumps it.
//!
//! ```text
//! r/TOPIC                         retained message: seq (u64) message, or seq and a tombstone
//! s/CLIENT                        session: version, moves, expiry, offline since, subscriptions, will
//! m/len(CLIENT) CLIENT seq        a QoS 1/2 message for the session, queued or in flight
//! i/len(CLIENT) CLIENT packet id  an inbound QoS 2 packet id not yet released (PUBREL)
//! ```
//!
//! Integers are big-endian in keys (their order is the order recovery needs: a session's
//! messages in sequence) and little-endian in values. Times are wall-clock milliseconds
//! since the Unix epoch, since the shard clock starts again at zero on each start: time
//! spent offline, the broker stopped included, counts toward expiry.

use crate::protocol::wire::Reader;
use crate::protocol::{ByteStr, Properties, PropertyContext, QoS, RetainHandling, SubscriptionOptions};
use crate::session::{Message, Origin, PublisherKey};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;

/// A record's value could not be read: a bug or a format change without a version bump.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("malformed {0} record")]
pub struct Malformed(pub &'static str);

/// What a key names.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Key {
    Retained { topic: ByteStr },
    Session { client_id: ByteStr },
    Message { client_id: ByteStr, seq: u64 },
    InboundQos2 { client_id: ByteStr, packet_id: u16 },
}

impl Key {
    /// The key's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let client = |tag: &[u8], id: &ByteStr| {
            let mut k = tag.to_vec();
            k.extend_from_slice(&(id.len() as u16).to_be_bytes());
            k.extend_from_slice(id.as_bytes());
            k
        };
        match self {
            Key::Retained { topic } => [&b"r/"[..], topic.as_bytes()].concat(),
            Key::Session { client_id } => [&b"s/"[..], client_id.as_bytes()].concat(),
            Key::Message { client_id, seq } => {
                let mut k = client(b"m/", client_id);
                k.extend_from_slice(&seq.to_be_bytes());
                k
            }
            Key::InboundQos2 { client_id, packet_id } => {
                let mut k = client(b"i/", client_id);
                k.extend_from_slice(&packet_id.to_be_bytes());
                k
            }
        }
    }

    /// The key these bytes name.
    pub fn decode(k: &[u8]) -> Result<Key, Malformed> {
        /// A client id with its length, then `tail` bytes.
        fn client(rest: &[u8], tail: usize) -> Result<(ByteStr, &[u8]), Malformed> {
            let len =
                u16::from_be_bytes(rest.get(..2).ok_or(Malformed("key"))?.try_into().unwrap_or_default());
            let id = rest.get(2..2 + len as usize).ok_or(Malformed("key"))?;
            let tail_bytes = &rest[2 + len as usize..];
            if tail_bytes.len() != tail {
                return Err(Malformed("key"));
            }
            Ok((text(id)?, tail_bytes))
        }
        fn text(b: &[u8]) -> Result<ByteStr, Malformed> {
            std::str::from_utf8(b).map(ByteStr::from).map_err(|_| Malformed("key"))
        }
        match k.get(..2) {
            Some(b"r/") => Ok(Key::Retained { topic: text(&k[2..])? }),
            Some(b"s/") => Ok(Key::Session { client_id: text(&k[2..])? }),
            Some(b"m/") => {
                let (client_id, seq) = client(&k[2..], 8)?;
                Ok(Key::Message { client_id, seq: u64::from_be_bytes(seq.try_into().unwrap_or_default()) })
            }
            Some(b"i/") => {
                let (client_id, pid) = client(&k[2..], 2)?;
                Ok(Key::InboundQos2 {
                    client_id,
                    packet_id: u16::from_be_bytes(pid.try_into().unwrap_or_default()),
                })
            }
            _ => Err(Malformed("key")),
        }
    }

    /// The first key of every message record of `client_id` (for a range delete).
    pub fn messages_of(client_id: &ByteStr) -> Vec<u8> {
        let mut k = Key::Message { client_id: client_id.clone(), seq: 0 }.encode();
        k.truncate(k.len() - 8);
        k
    }
}

/// Converts between the shard clock (milliseconds since the broker started) and the wall
/// clock, for expiry times.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Clock {
    /// Wall-clock milliseconds since the Unix epoch at shard-clock 0.
    pub unix_ms_at_start: u64,
}

impl Clock {
    fn to_unix(self, shard_ms: u64) -> u64 {
        self.unix_ms_at_start + shard_ms
    }
    /// A wall-clock time on the shard clock; one already past is 0 (due at once).
    fn to_shard(self, unix_ms: u64) -> u64 {
        unix_ms.saturating_sub(self.unix_ms_at_start)
    }
}

/// A retained message, or its removal (which must outlive an older copy in another
/// shard's log: the newest sequence number wins at recovery).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Retained {
    /// The process-wide retained sequence number.
    pub seq: u64,
    pub message: Option<Message>,
}

/// One subscription as a session stores it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredSubscription {
    pub filter: ByteStr,
    pub options: SubscriptionOptions,
    pub subscription_id: Option<u32>,
}

/// A persistent session's own state (its messages are records of their own).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredSession {
    /// The protocol level byte of its CONNECT (3, 4 or 5).
    pub protocol_level: u8,
    /// How many times the session has moved between shards. A crash in the middle of a
    /// move can leave a copy on both shards: the higher count is the one that moved last.
    pub moves: u64,
    pub expiry_interval_secs: u32,
    /// When its connection went away (wall clock, ms); `None` while connected.
    pub offline_since_unix_ms: Option<u64>,
    pub subscriptions: Vec<StoredSubscription>,
    /// A will waiting for its delay: when it is due (shard clock) and the message.
    pub will: Option<(u64, Message)>,
}

/// Where a session's message stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MessageState {
    /// Not sent yet.
    Queued,
    /// Sent with this packet id; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent(u16),
    /// QoS 2: PUBREC came for this packet id; waiting for PUBCOMP.
    Released(u16),
}

/// A QoS 1/2 message for a session.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredMessage {
    pub state: MessageState,
    /// The QoS and RETAIN flag it is delivered with.
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    pub message: Message,
}

fn put_str(out: &mut BytesMut, s: &[u8]) {
    out.put_u32_le(s.len() as u32);
    out.put_slice(s);
}

fn get_str(r: &mut Reader, what: &'static str) -> Result<ByteStr, Malformed> {
    let bytes = get_bytes(r, what)?;
    ByteStr::try_from_bytes(bytes).map_err(|_| Malformed(what))
}

fn get_bytes(r: &mut Reader, what: &'static str) -> Result<Bytes, Malformed> {
    let len = r.u32().map_err(|_| Malformed(what))?.swap_bytes();
    r.bytes(len as usize).map_err(|_| Malformed(what))
}

fn get_u64(r: &mut Reader, what: &'static str) -> Result<u64, Malformed> {
    // Little-endian: the low half first. The reader reads MQTT's big-endian integers.
    let low = r.u32().map_err(|_| Malformed(what))?.swap_bytes() as u64;
    let high = r.u32().map_err(|_| Malformed(what))?.swap_bytes() as u64;
    Ok(high << 32 | low)
}

fn get_u32(r: &mut Reader, what: &'static str) -> Result<u32, Malformed> {
    Ok(r.u32().map_err(|_| Malformed(what))?.swap_bytes())
}

fn get_u16(r: &mut Reader, what: &'static str) -> Result<u16, Malformed> {
    Ok(r.u16().map_err(|_| Malformed(what))?.swap_bytes())
}

fn get_u8(r: &mut Reader, what: &'static str) -> Result<u8, Malformed> {
    r.u8().map_err(|_| Malformed(what))
}

fn get_qos(r: &mut Reader, what: &'static str) -> Result<QoS, Malformed> {
    QoS::try_from(get_u8(r, what)?).map_err(|_| Malformed(what))
}

/// A message: topic, QoS, RETAIN, expiry (wall clock, 0 none), properties, payload.
fn put_message(out: &mut BytesMut, m: &Message, clock: Clock) {
    put_str(out, m.topic.as_bytes());
    out.put_u8(m.qos as u8);
    out.put_u8(m.retain as u8);
    out.put_u64_le(m.expires_at_ms.map_or(0, |t| clock.to_unix(t).max(1)));
    crate::protocol::properties::put_block(out, m.properties.as_deref());
    put_str(out, &m.payload);
}

fn get_message(r: &mut Reader, clock: Clock, what: &'static str) -> Result<Message, Malformed> {
    let topic = get_str(r, what)?;
    let qos = get_qos(r, what)?;
    let retain = get_u8(r, what)? != 0;
    let expires = get_u64(r, what)?;
    let properties = Properties::decode(r, PropertyContext::Publish).map_err(|_| Malformed(what))?;
    let payload = get_bytes(r, what)?;
    Ok(Message {
        topic,
        payload,
        qos,
        retain,
        properties: properties.map(|p| Arc::new(*p)),
        expires_at_ms: (expires != 0).then(|| clock.to_shard(expires)),
        // Nobody published it in this process: no No Local match, no route order to keep.
        publisher: PublisherKey::NONE,
        origin: Origin::UNROUTED,
    })
}

impl Retained {
    pub fn encode(&self, clock: Clock) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u64_le(self.seq);
        match &self.message {
            None => out.put_u8(0),
            Some(m) => {
                out.put_u8(1);
                put_message(&mut out, m, clock);
            }
        }
        out.to_vec()
    }

    pub fn decode(v: &[u8], clock: Clock) -> Result<Retained, Malformed> {
        const WHAT: &str = "retained";
        let mut r = Reader::new(Bytes::copy_from_slice(v));
        let seq = get_u64(&mut r, WHAT)?;
        let message = match get_u8(&mut r, WHAT)? {
            0 => None,
            1 => Some(get_message(&mut r, clock, WHAT)?),
            _ => return Err(Malformed(WHAT)),
        };
        r.is_empty().then_some(Retained { seq, message }).ok_or(Malformed(WHAT))
    }
}

impl StoredSession {
    pub fn encode(&self, clock: Clock) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u8(self.protocol_level);
        out.put_u64_le(self.moves);
        out.put_u32_le(self.expiry_interval_secs);
        out.put_u64_le(self.offline_since_unix_ms.map_or(0, |t| t.max(1)));
        out.put_u32_le(self.subscriptions.len() as u32);
        for s in &self.subscriptions {
            put_str(&mut out, s.filter.as_bytes());
            let o = s.options;
            out.put_u8(
                o.qos as u8
                    | (o.no_local as u8) << 2
                    | (o.retain_as_published as u8) << 3
                    | (o.retain_handling as u8) << 4,
            );
            out.put_u32_le(s.subscription_id.unwrap_or(0));
        }
        match &self.will {
            None => out.put_u8(0),
            Some((due, m)) => {
                out.put_u8(1);
                out.put_u64_le(clock.to_unix(*due));
                put_message(&mut out, m, clock);
            }
        }
        out.to_vec()
    }

    pub fn decode(v: &[u8], clock: Clock) -> Result<StoredSession, Malformed> {
        const WHAT: &str = "session";
        let mut r = Reader::new(Bytes::copy_from_slice(v));
        let protocol_level = get_u8(&mut r, WHAT)?;
        let moves = get_u64(&mut r, WHAT)?;
        let expiry_interval_secs = get_u32(&mut r, WHAT)?;
        let offline = get_u64(&mut r, WHAT)?;
        let count = get_u32(&mut r, WHAT)?;
        let mut subscriptions = Vec::with_capacity((count as usize).min(r.remaining()));
        for _ in 0..count {
            let filter = get_str(&mut r, WHAT)?;
            let b = get_u8(&mut r, WHAT)?;
            let retain_handling = match b >> 4 {
                0 => RetainHandling::SendOnSubscribe,
                1 => RetainHandling::SendIfNewSubscription,
                2 => RetainHandling::DoNotSend,
                _ => return Err(Malformed(WHAT)),
            };
            let options = SubscriptionOptions {
                qos: QoS::try_from(b & 3).map_err(|_| Malformed(WHAT))?,
                no_local: b & 4 != 0,
                retain_as_published: b & 8 != 0,
                retain_handling,
            };
            let id = get_u32(&mut r, WHAT)?;
            subscriptions.push(StoredSubscription {
                filter,
                options,
                subscription_id: (id != 0).then_some(id),
            });
        }
        let will = match get_u8(&mut r, WHAT)? {
            0 => None,
            1 => {
                let due = clock.to_shard(get_u64(&mut r, WHAT)?);
                Some((due, get_message(&mut r, clock, WHAT)?))
            }
            _ => return Err(Malformed(WHAT)),
        };
        let session = StoredSession {
            protocol_level,
            moves,
            expiry_interval_secs,
            offline_since_unix_ms: (offline != 0).then_some(offline),
            subscriptions,
            will,
        };
        r.is_empty().then_some(session).ok_or(Malformed(WHAT))
    }
}

impl StoredMessage {
    pub fn encode(&self, clock: Clock) -> Vec<u8> {
        let mut out = BytesMut::new();
        let (state, packet_id) = match self.state {
            MessageState::Queued => (0, 0),
            MessageState::Sent(id) => (1, id),
            MessageState::Released(id) => (2, id),
        };
        out.put_u8(state);
        out.put_u16_le(packet_id);
        out.put_u8(self.qos as u8);
        out.put_u8(self.retain as u8);
        out.put_u32_le(self.subscription_ids.len() as u32);
        for id in &self.subscription_ids {
            out.put_u32_le(*id);
        }
        put_message(&mut out, &self.message, clock);
        out.to_vec()
    }

    pub fn decode(v: &[u8], clock: Clock) -> Result<StoredMessage, Malformed> {
        const WHAT: &str = "message";
        let mut r = Reader::new(Bytes::copy_from_slice(v));
        let state = get_u8(&mut r, WHAT)?;
        let packet_id = get_u16(&mut r, WHAT)?;
        let state = match (state, packet_id) {
            (0, _) => MessageState::Queued,
            (1, id) if id != 0 => MessageState::Sent(id),
            (2, id) if id != 0 => MessageState::Released(id),
            _ => return Err(Malformed(WHAT)),
        };
        let qos = get_qos(&mut r, WHAT)?;
        let retain = get_u8(&mut r, WHAT)? != 0;
        let count = get_u32(&mut r, WHAT)?;
        let mut subscription_ids = Vec::with_capacity((count as usize).min(r.remaining() / 4));
        for _ in 0..count {
            subscription_ids.push(get_u32(&mut r, WHAT)?);
        }
        let message = get_message(&mut r, clock, WHAT)?;
        let stored = StoredMessage { state, qos, retain, subscription_ids, message };
        r.is_empty().then_some(stored).ok_or(Malformed(WHAT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Properties;

    const CLOCK: Clock = Clock { unix_ms_at_start: 1_700_000_000_000 };

    fn message(topic: &str, expires_at_ms: Option<u64>) -> Message {
        let properties = Properties {
            message_expiry_interval_secs: Some(60),
            content_type: Some(ByteStr::from("text/plain")),
            user_properties: vec![(ByteStr::from("k"), ByteStr::from("v"))],
            ..Properties::default()
        };
        Message {
            topic: ByteStr::from(topic),
            payload: Bytes::from_static(b"\x00payload\xff"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: Some(Arc::new(properties)),
            expires_at_ms,
            publisher: PublisherKey::NONE,
            origin: Origin::UNROUTED,
        }
    }

    #[test]
    fn keys_round_trip_and_sort_a_sessions_messages_in_sequence() {
        let id = ByteStr::from("client/with/slashes");
        let keys = [
            Key::Retained { topic: ByteStr::from("a/b") },
            Key::Session { client_id: id.clone() },
            Key::Message { client_id: id.clone(), seq: 7 },
            Key::InboundQos2 { client_id: id.clone(), packet_id: 65535 },
        ];
        for k in &keys {
            assert_eq!(&Key::decode(&k.encode()).unwrap(), k);
        }
        let (a, b) = (
            Key::Message { client_id: id.clone(), seq: 255 },
            Key::Message { client_id: id.clone(), seq: 256 },
        );
        assert!(a.encode() < b.encode());
        assert!(a.encode().starts_with(&Key::messages_of(&id)));
        // A client id that is a prefix of another does not share its messages' range.
        let other = Key::Message { client_id: ByteStr::from("client/with/slashes2"), seq: 1 };
        assert!(!other.encode().starts_with(&Key::messages_of(&id)));
        assert!(Key::decode(b"x/zz").is_err() && Key::decode(b"m/\x00\x05ab").is_err());
    }

    #[test]
    fn a_retained_message_and_its_tombstone_round_trip() {
        for r in [
            Retained { seq: 42, message: Some(message("a/b", Some(5_000))) },
            Retained { seq: 43, message: None },
        ] {
            assert_eq!(Retained::decode(&r.encode(CLOCK), CLOCK).unwrap(), r);
        }
    }

    #[test]
    fn expiry_is_kept_in_wall_clock_time_across_a_restart() {
        let r = Retained { seq: 1, message: Some(message("t", Some(10_000))) };
        let bytes = r.encode(CLOCK);
        // The broker starts again 4 s (wall clock) after the first started: 6 s are left.
        let later = Clock { unix_ms_at_start: CLOCK.unix_ms_at_start + 4_000 };
        let back = Retained::decode(&bytes, later).unwrap().message.unwrap();
        assert_eq!(back.expires_at_ms, Some(6_000));
        // Restarted after it expired: due at once.
        let much_later = Clock { unix_ms_at_start: CLOCK.unix_ms_at_start + 60_000 };
        assert_eq!(Retained::decode(&bytes, much_later).unwrap().message.unwrap().expires_at_ms, Some(0));
    }

    #[test]
    fn a_session_with_subscriptions_and_a_delayed_will_round_trips() {
        let s = StoredSession {
            protocol_level: 5,
            moves: 3,
            expiry_interval_secs: 3600,
            offline_since_unix_ms: Some(CLOCK.unix_ms_at_start + 123),
            subscriptions: vec![
                StoredSubscription {
                    filter: ByteStr::from("a/+/c"),
                    options: SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                    subscription_id: Some(268_435_455),
                },
                StoredSubscription {
                    filter: ByteStr::from("$share/g/#"),
                    options: SubscriptionOptions::qos(QoS::ExactlyOnce),
                    subscription_id: None,
                },
            ],
            will: Some((9_000, message("will/topic", None))),
        };
        assert_eq!(StoredSession::decode(&s.encode(CLOCK), CLOCK).unwrap(), s);
        let online = StoredSession { offline_since_unix_ms: None, will: None, subscriptions: vec![], ..s };
        assert_eq!(StoredSession::decode(&online.encode(CLOCK), CLOCK).unwrap(), online);
    }

    #[test]
    fn queued_and_in_flight_messages_round_trip_with_their_qos2_state() {
        for state in [MessageState::Queued, MessageState::Sent(1), MessageState::Released(65535)] {
            let m = StoredMessage {
                state,
                qos: QoS::ExactlyOnce,
                retain: false,
                subscription_ids: vec![1, 99],
                message: message("x", Some(1)),
            };
            assert_eq!(StoredMessage::decode(&m.encode(CLOCK), CLOCK).unwrap(), m);
        }
    }

    #[test]
    fn a_truncated_or_padded_value_is_malformed_not_a_panic() {
        let m = StoredMessage {
            state: MessageState::Sent(3),
            qos: QoS::AtLeastOnce,
            retain: true,
            subscription_ids: vec![],
            message: message("x", None),
        }
        .encode(CLOCK);
        for cut in 0..m.len() {
            assert!(StoredMessage::decode(&m[..cut], CLOCK).is_err(), "cut at {cut}");
        }
        let mut padded = m.clone();
        padded.push(0);
        assert!(StoredMessage::decode(&padded, CLOCK).is_err());
        assert!(StoredSession::decode(&[5, 0, 0], CLOCK).is_err());
        assert!(Retained::decode(&[1, 2, 3, 4, 5, 6, 7, 8, 9], CLOCK).is_err());
    }
}
