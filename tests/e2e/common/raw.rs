//! [`Raw`]: a blocking MQTT client over a `TcpStream`, built on `ringmq::protocol` (the
//! broker's own codec, used as a client: packets are encoded with `Packet::encode` and
//! decoded with `Decoder::with_version(v, usize::MAX)`). Every read has a deadline, so a
//! test never hangs: a missing packet is a panic naming what was expected.

use super::{payload_str, publish_packet, FENCE_PREFIX, IO_TIMEOUT};
use bytes::{Bytes, BytesMut};
use ringmq::protocol::{
    Ack, ByteStr, ConnAck, Connect, DecodeError, Decoded, Decoder, Disconnect, LastWill, Packet, Properties,
    ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// CONNECT parameters for [`Raw::connect`].
#[derive(Clone, Debug)]
pub struct Conn {
    pub client_id: String,
    pub version: ProtocolVersion,
    pub clean: bool,
    pub keepalive: u16,
    pub will: Option<LastWill>,
    pub props: Option<Properties>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

impl Conn {
    /// Clean session / clean start, no keepalive, no will, no properties.
    pub fn new(client_id: impl Into<String>, version: ProtocolVersion) -> Self {
        Conn {
            client_id: client_id.into(),
            version,
            clean: true,
            keepalive: 0,
            will: None,
            props: None,
            username: None,
            password: None,
        }
    }
    /// A user name and password in CONNECT.
    pub fn login(mut self, username: &str, password: &str) -> Self {
        self.username = Some(username.to_string());
        self.password = Some(password.as_bytes().to_vec());
        self
    }
    pub fn clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }
    pub fn keepalive(mut self, secs: u16) -> Self {
        self.keepalive = secs;
        self
    }
    pub fn will(mut self, topic: &str, payload: &str, qos: QoS, retain: bool) -> Self {
        self.will = Some(LastWill {
            topic: ByteStr::from(topic),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            qos,
            retain,
            properties: None,
        });
        self
    }
    pub fn props(mut self, props: Properties) -> Self {
        self.props = Some(props);
        self
    }
    /// MQTT 5 session expiry interval (the 5.0 way to ask for a persistent session).
    pub fn session_expiry(mut self, secs: u32) -> Self {
        let mut p = self.props.take().unwrap_or_default();
        p.session_expiry_interval_secs = Some(secs);
        self.props = Some(p);
        self
    }
    /// A persistent session at this version: clean 0, and at 5.0 a long session expiry.
    pub fn persistent(self) -> Self {
        let v5 = self.version.is_v5();
        let c = self.clean(false);
        if v5 {
            c.session_expiry(3600)
        } else {
            c
        }
    }
    pub fn packet(&self) -> Packet {
        Packet::Connect(Box::new(Connect {
            version: self.version,
            clean_start: self.clean,
            keep_alive_secs: self.keepalive,
            client_id: ByteStr::from(self.client_id.as_str()),
            will: self.will.clone(),
            username: self.username.as_deref().map(ByteStr::from),
            password: self.password.clone().map(Bytes::from),
            properties: self.props.clone().map(Box::new),
        }))
    }
}

/// What one read brought.
#[derive(Debug)]
pub enum Recv {
    Packet(Packet),
    Timeout,
    Closed,
    /// Read only through `Debug`, in the panics that report it.
    Malformed(#[allow(dead_code)] DecodeError),
}

/// A blocking MQTT client over a `TcpStream`, every read bounded by a deadline.
pub struct Raw {
    pub stream: TcpStream,
    pub version: ProtocolVersion,
    pub client_id: String,
    decoder: Decoder,
    buf: BytesMut,
    /// Packets read while waiting for another one; handed out first.
    pub(super) pending: VecDeque<Packet>,
    eof: bool,
    next_id: u16,
    /// Topics and payloads of the fence messages received (see [`super::Fence`]).
    pub(super) fence_seen: Vec<(String, String)>,
}

impl Raw {
    /// A TCP connection with nothing sent yet; packets are decoded at `version`.
    pub fn open(addr: SocketAddr, version: ProtocolVersion) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("tcp connect");
        stream.set_nodelay(true).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Raw {
            stream,
            version,
            client_id: String::new(),
            decoder: Decoder::with_version(version, usize::MAX),
            buf: BytesMut::with_capacity(64 * 1024),
            pending: VecDeque::new(),
            eof: false,
            next_id: 0,
            fence_seen: Vec::new(),
        }
    }

    /// Opens, sends CONNECT, returns the connection and its CONNACK (whatever its code).
    pub fn connect(addr: SocketAddr, c: Conn) -> (Raw, ConnAck) {
        let mut raw = Raw::open(addr, c.version);
        raw.client_id = c.client_id.clone();
        raw.send(&c.packet());
        let ack = match raw.expect_packet(IO_TIMEOUT) {
            Packet::ConnAck(a) => a,
            other => panic!("{}: expected CONNACK, got {other:?}", c.client_id),
        };
        if let Some(id) = ack.properties.as_ref().and_then(|p| p.assigned_client_identifier.as_ref()) {
            raw.client_id = id.to_string();
        }
        (raw, ack)
    }

    /// As [`Raw::connect`], and asserts the CONNACK is a success.
    pub fn connect_ok(addr: SocketAddr, c: Conn) -> (Raw, ConnAck) {
        let id = c.client_id.clone();
        let (raw, ack) = Raw::connect(addr, c);
        assert_eq!(ack.code, ReasonCode::SUCCESS, "{id}: CONNACK refused: {ack:?}");
        (raw, ack)
    }

    /// A clean connection at `version` with client id `id`.
    pub fn client(addr: SocketAddr, id: impl Into<String>, version: ProtocolVersion) -> Raw {
        Raw::connect_ok(addr, Conn::new(id, version)).0
    }

    pub fn next_packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    /// Encodes and sends one packet.
    pub fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        p.encode(self.version, &mut out);
        self.send_raw(&out);
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap_or_else(|e| panic!("{}: write failed: {e}", self.client_id));
    }

    /// Sends bytes, tolerating a connection the broker already closed.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// One packet off the wire (not from the pending list), within `timeout`.
    pub(super) fn read_packet(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.decode(&mut self.buf) {
                // Fence messages (see [`super::Fence`]) never reach the test.
                Ok(Decoded::Packet(Packet::Publish(p))) if p.topic.starts_with(FENCE_PREFIX) => {
                    self.ack(&p);
                    self.fence_seen.push((p.topic.to_string(), payload_str(&p)));
                    continue;
                }
                Ok(Decoded::Packet(p)) => return Recv::Packet(p),
                Ok(Decoded::Incomplete { .. }) => {}
                Err(e) => return Recv::Malformed(e),
            }
            if self.eof {
                return Recv::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Recv::Timeout;
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(wait)).unwrap();
            let mut tmp = [0u8; 16 * 1024];
            match self.stream.read(&mut tmp) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset is a close.
                Err(_) => self.eof = true,
            }
        }
    }

    /// The next packet (pending ones first), or what ended the wait.
    pub fn recv(&mut self, timeout: Duration) -> Recv {
        if let Some(p) = self.pending.pop_front() {
            return Recv::Packet(p);
        }
        self.read_packet(timeout)
    }

    /// The next packet; panics on timeout, close or a malformed packet.
    pub fn expect_packet(&mut self, timeout: Duration) -> Packet {
        match self.recv(timeout) {
            Recv::Packet(p) => p,
            other => panic!("{}: expected a packet within {timeout:?}, got {other:?}", self.client_id),
        }
    }

    /// The first packet for which `pred` holds; packets read before it are kept, in
    /// order, for later calls.
    pub fn expect_match(&mut self, timeout: Duration, what: &str, pred: impl Fn(&Packet) -> bool) -> Packet {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_packet(left) {
                Recv::Packet(p) if pred(&p) => return p,
                Recv::Packet(p) => self.pending.push_back(p),
                other => panic!(
                    "{}: waiting for {what}: got {other:?} (also read meanwhile: {:?})",
                    self.client_id, self.pending
                ),
            }
        }
    }

    /// Asserts nothing arrives for `quiet` (a close counts as a failure too).
    pub fn expect_no_packet(&mut self, quiet: Duration) {
        if let Some(p) = self.pending.pop_front() {
            panic!("{}: expected no packet, but had read {p:?}", self.client_id);
        }
        match self.read_packet(quiet) {
            Recv::Timeout => {}
            other => panic!("{}: expected no packet for {quiet:?}, got {other:?}", self.client_id),
        }
    }

    /// Waits for the broker to close the connection; returns the packets read first.
    pub fn expect_closed(&mut self, timeout: Duration) -> Vec<Packet> {
        let mut seen: Vec<Packet> = self.pending.drain(..).collect();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_packet(left) {
                Recv::Packet(p) => seen.push(p),
                Recv::Closed => return seen,
                other => panic!(
                    "{}: expected the broker to close the connection within {timeout:?}, got {other:?} after {seen:?}",
                    self.client_id
                ),
            }
        }
    }

    /// The next packet, which must be a PUBLISH; not acknowledged.
    pub fn expect_publish_noack(&mut self, timeout: Duration) -> Publish {
        match self.expect_packet(timeout) {
            Packet::Publish(p) => p,
            other => panic!("{}: expected PUBLISH, got {other:?}", self.client_id),
        }
    }

    /// The next packet, which must be a PUBLISH; acknowledged as its QoS asks (QoS 2:
    /// PUBREC, then PUBREL is awaited and PUBCOMP sent).
    pub fn expect_publish(&mut self, timeout: Duration) -> Publish {
        let p = self.expect_publish_noack(timeout);
        self.ack(&p);
        p
    }

    /// Acknowledges a received PUBLISH, completing the QoS 2 exchange.
    pub fn ack(&mut self, p: &Publish) {
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&Packet::PubAck(Ack::new(p.packet_id))),
            QoS::ExactlyOnce => {
                self.send(&Packet::PubRec(Ack::new(p.packet_id)));
                let id = p.packet_id;
                self.expect_match(
                    IO_TIMEOUT,
                    &format!("PUBREL {id}"),
                    |q| matches!(q, Packet::PubRel(a) if a.packet_id == id),
                );
                self.send(&Packet::PubComp(Ack::new(id)));
            }
        }
    }

    /// `n` PUBLISH packets, each acknowledged; panics if any other packet comes first.
    pub fn expect_publishes(&mut self, n: usize, timeout: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Packet(Packet::Publish(p)) => {
                    self.ack(&p);
                    got.push(p);
                }
                other => panic!(
                    "{}: expected {n} PUBLISH packets within {timeout:?}, got {} then {other:?}; payloads so far: {:?}",
                    self.client_id,
                    got.len(),
                    got.iter().map(payload_str).collect::<Vec<_>>()
                ),
            }
        }
        got
    }

    /// Publishes and completes the handshake the QoS asks for (PUBACK; or PUBREC,
    /// PUBREL, PUBCOMP). Returns the packet id (0 at QoS 0).
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> u16 {
        self.publish_with(topic, payload, qos, retain, None)
    }

    /// As [`Raw::publish`], with MQTT 5 properties.
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Option<Properties>,
    ) -> u16 {
        let packet_id = self.send_publish(topic, payload, qos, retain, properties);
        self.finish_publish(qos, packet_id);
        packet_id
    }

    /// Sends a PUBLISH and returns its packet id (0 at QoS 0); waits for nothing.
    pub fn send_publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Option<Properties>,
    ) -> u16 {
        let packet_id = if qos == QoS::AtMostOnce { 0 } else { self.next_packet_id() };
        self.send(&publish_packet(topic, payload, qos, retain, packet_id, properties));
        packet_id
    }

    /// Waits for the broker's side of a publish handshake.
    pub fn finish_publish(&mut self, qos: QoS, id: u16) {
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let a = self.expect_match(
                    IO_TIMEOUT,
                    &format!("PUBACK {id}"),
                    |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
                );
                assert_ack_ok(&a);
            }
            QoS::ExactlyOnce => {
                let a = self.expect_match(
                    IO_TIMEOUT,
                    &format!("PUBREC {id}"),
                    |p| matches!(p, Packet::PubRec(a) if a.packet_id == id),
                );
                assert_ack_ok(&a);
                self.send(&Packet::PubRel(Ack::new(id)));
                let a = self.expect_match(
                    IO_TIMEOUT,
                    &format!("PUBCOMP {id}"),
                    |p| matches!(p, Packet::PubComp(a) if a.packet_id == id),
                );
                assert_ack_ok(&a);
            }
        }
    }

    /// SUBSCRIBE with default options at each filter's QoS; returns the SUBACK.
    pub fn subscribe(&mut self, filters: &[(&str, QoS)]) -> SubAck {
        let filters =
            filters.iter().map(|(f, q)| (ByteStr::from(*f), SubscriptionOptions::qos(*q))).collect();
        self.subscribe_with(filters, None)
    }

    /// SUBSCRIBE and assert every filter was granted the QoS asked for.
    pub fn subscribe_ok(&mut self, filters: &[(&str, QoS)]) {
        let ack = self.subscribe(filters);
        let want: Vec<ReasonCode> = filters.iter().map(|(_, q)| ReasonCode(*q as u8)).collect();
        assert_eq!(ack.reasons, want, "{}: SUBACK for {filters:?}", self.client_id);
    }

    /// SUBSCRIBE with full options and properties; returns the SUBACK.
    pub fn subscribe_with(
        &mut self,
        filters: Vec<(ByteStr, SubscriptionOptions)>,
        properties: Option<Properties>,
    ) -> SubAck {
        let packet_id = self.next_packet_id();
        self.send(&Packet::Subscribe(Subscribe { packet_id, filters, properties: properties.map(Box::new) }));
        match self.expect_match(IO_TIMEOUT, "SUBACK", |p| matches!(p, Packet::SubAck(_))) {
            Packet::SubAck(a) => {
                assert_eq!(a.packet_id, packet_id, "{}: SUBACK packet id", self.client_id);
                a
            }
            _ => unreachable!(),
        }
    }

    /// UNSUBSCRIBE; returns the UNSUBACK.
    pub fn unsubscribe(&mut self, filters: &[&str]) -> UnsubAck {
        let packet_id = self.next_packet_id();
        self.send(&Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters: filters.iter().map(|f| ByteStr::from(*f)).collect(),
            properties: None,
        }));
        match self.expect_match(IO_TIMEOUT, "UNSUBACK", |p| matches!(p, Packet::UnsubAck(_))) {
            Packet::UnsubAck(a) => {
                assert_eq!(a.packet_id, packet_id, "{}: UNSUBACK packet id", self.client_id);
                a
            }
            _ => unreachable!(),
        }
    }

    /// PINGREQ, and the PINGRESP it must get.
    pub fn ping(&mut self) {
        self.send(&Packet::PingReq);
        self.expect_match(IO_TIMEOUT, "PINGRESP", |p| matches!(p, Packet::PingResp));
    }

    /// DISCONNECT (normal), then wait for the broker to close the socket.
    pub fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Disconnect::default()));
        let rest = self.expect_closed(IO_TIMEOUT);
        assert!(
            rest.iter().all(|p| matches!(p, Packet::Publish(_) | Packet::PubRel(_))),
            "{}: unexpected packets before close: {rest:?}",
            self.client_id
        );
    }

    /// Round trip through the broker: everything the broker sent before its PINGRESP
    /// has been read (and kept for later calls).
    pub fn sync(&mut self) {
        self.ping();
    }
}

fn assert_ack_ok(p: &Packet) {
    let (Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubComp(a)) = p else { return };
    assert!(!a.reason.is_error(), "acknowledgement with an error reason: {p:?}");
}
