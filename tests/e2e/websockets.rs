//! WebSockets listeners end to end, with a small RFC 6455 client written here (the
//! broker's own codec for MQTT): the upgrade with the `mqtt` subprotocol, MQTT 3.1.1 and
//! 5.0 in binary frames, a packet split over fragments with a ping between them, several
//! packets in one frame, text and close frames, refused upgrades, garbage, a stalled
//! upgrade, and WebSockets inside TLS.

use crate::common::{publish_packet, Conn, TestBroker, IO_TIMEOUT, Q1, V3_1_1, V5};
use crate::tls::Pki;
use bytes::BytesMut;
use ringmq::config::Config;
use ringmq::protocol::{
    ByteStr, Decoded, Decoder, Packet, ProtocolVersion, ReasonCode, Subscribe, SubscriptionOptions,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

trait Stream: Read + Write + Send {
    fn set_timeout(&mut self, t: Duration);
}

impl Stream for TcpStream {
    fn set_timeout(&mut self, t: Duration) {
        self.set_read_timeout(Some(t)).unwrap();
    }
}

impl Stream for StreamOwned<ClientConnection, TcpStream> {
    fn set_timeout(&mut self, t: Duration) {
        self.sock.set_read_timeout(Some(t)).unwrap();
    }
}

/// What came in a frame from the broker.
#[derive(Debug)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A WebSocket client carrying MQTT, every read bounded by a deadline.
struct WsClient {
    stream: Box<dyn Stream>,
    version: ProtocolVersion,
    /// Raw bytes not yet framed.
    raw: Vec<u8>,
    /// Binary payloads not yet decoded as MQTT.
    mqtt: BytesMut,
    decoder: Decoder,
    /// Control frames received, in order.
    control: Vec<Frame>,
    closed: bool,
    next_id: u16,
}

/// An upgrade request offering `protocols`.
fn upgrade_request(protocols: &str) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {protocols}\r\n\r\n"
    )
}

impl WsClient {
    fn tcp(addr: SocketAddr) -> Box<dyn Stream> {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Box::new(s)
    }

    fn tls(addr: SocketAddr, pki: &Pki) -> Box<dyn Stream> {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let conn =
            ClientConnection::new(pki.client(None), ServerName::try_from("localhost").unwrap()).unwrap();
        Box::new(StreamOwned::new(conn, s))
    }

    /// Sends the upgrade request; returns the client and the broker's answer (its head).
    fn upgrade(stream: Box<dyn Stream>, protocols: &str, version: ProtocolVersion) -> (WsClient, String) {
        let mut c = WsClient {
            stream,
            version,
            raw: Vec::new(),
            mqtt: BytesMut::new(),
            decoder: Decoder::with_version(version, usize::MAX),
            control: Vec::new(),
            closed: false,
            next_id: 0,
        };
        c.stream.write_all(upgrade_request(protocols).as_bytes()).unwrap();
        let deadline = Instant::now() + IO_TIMEOUT;
        let end = loop {
            if let Some(i) = c.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !c.fill(deadline) {
                break c.raw.len();
            }
        };
        let head = String::from_utf8_lossy(&c.raw[..end]).to_string();
        c.raw.drain(..end);
        (c, head)
    }

    /// Upgrades and sends CONNECT; asserts a successful CONNACK.
    fn connect_ok(stream: Box<dyn Stream>, c: Conn) -> WsClient {
        let (mut ws, head) = WsClient::upgrade(stream, "mqtt", c.version);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{head}");
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
        ws.send(&c.packet());
        match ws.expect_packet() {
            Packet::ConnAck(a) => assert_eq!(a.code, ReasonCode::SUCCESS, "{a:?}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        ws
    }

    /// Reads more from the socket; false at the end of the stream or the deadline.
    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || self.closed {
            return false;
        }
        self.stream.set_timeout(left.max(Duration::from_millis(1)));
        let mut tmp = [0u8; 16 * 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.raw.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            // A signal meant for another thread of the test process can interrupt the
            // read (as `common::raw` knows): read again.
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// One whole frame from `raw`, if there is one.
    fn take_frame(&mut self) -> Option<Frame> {
        let r = &self.raw;
        if r.len() < 2 {
            return None;
        }
        assert_eq!(r[1] & 0x80, 0, "the broker's frames are not masked");
        let (len, at) = match r[1] & 0x7f {
            126 if r.len() >= 4 => (u16::from_be_bytes([r[2], r[3]]) as usize, 4),
            127 if r.len() >= 10 => (u64::from_be_bytes(r[2..10].try_into().unwrap()) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if r.len() < at + len {
            return None;
        }
        let frame = Frame { fin: r[0] & 0x80 != 0, opcode: r[0] & 0x0f, payload: r[at..at + len].to_vec() };
        self.raw.drain(..at + len);
        Some(frame)
    }

    /// Reads frames until `done` says so or the deadline passes.
    fn pump(&mut self, timeout: Duration, mut done: impl FnMut(&mut WsClient) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(f) = self.take_frame() {
                match f.opcode {
                    OP_BINARY | OP_CONTINUATION => self.mqtt.extend_from_slice(&f.payload),
                    _ => self.control.push(f),
                }
            }
            if done(self) {
                return true;
            }
            if !self.fill(deadline) && (self.closed || Instant::now() >= deadline) {
                while let Some(f) = self.take_frame() {
                    self.control.push(f);
                }
                return done(self);
            }
        }
    }

    fn expect_packet(&mut self) -> Packet {
        let mut got = None;
        self.pump(IO_TIMEOUT, |c| match c.decoder.decode(&mut c.mqtt) {
            Ok(Decoded::Packet(p)) => {
                got = Some(p);
                true
            }
            Ok(Decoded::Incomplete { .. }) => false,
            Err(e) => panic!("malformed packet: {e}"),
        });
        got.unwrap_or_else(|| panic!("no packet within {IO_TIMEOUT:?} (closed: {})", self.closed))
    }

    /// Sends one masked frame.
    fn send_frame(&mut self, opcode: u8, fin: bool, payload: &[u8]) {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        let _ = self.stream.write_all(&f);
        let _ = self.stream.flush();
    }

    fn encode(&self, p: &Packet) -> Vec<u8> {
        let mut out = BytesMut::new();
        p.encode(self.version, &mut out);
        out.to_vec()
    }

    /// One packet in one binary frame.
    fn send(&mut self, p: &Packet) {
        let bytes = self.encode(p);
        self.send_frame(OP_BINARY, true, &bytes);
    }

    fn subscribe(&mut self, filter: &str) {
        self.next_id += 1;
        let filters = vec![(ByteStr::from(filter), SubscriptionOptions::qos(Q1))];
        self.send(&Packet::Subscribe(Subscribe { packet_id: self.next_id, filters, properties: None }));
        match self.expect_packet() {
            Packet::SubAck(a) => assert_eq!(a.reasons, [ReasonCode(1)]),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Waits for the broker to close; returns the close frame's status, if one came.
    fn expect_closed(&mut self) -> Option<u16> {
        let closed = self.pump(IO_TIMEOUT, |c| c.closed);
        assert!(closed, "still open after {IO_TIMEOUT:?}");
        self.control
            .iter()
            .find(|f| f.opcode == OP_CLOSE)
            .map(|f| u16::from_be_bytes([f.payload[0], f.payload[1]]))
    }
}

fn ws_broker(f: impl FnOnce(&mut Config)) -> TestBroker {
    TestBroker::start_with(|c| {
        c.listeners[0].websockets = true;
        c.security.allow_anonymous = Some(true);
        f(c);
    })
}

fn expect_publish(c: &mut WsClient, payload: &[u8]) {
    match c.expect_packet() {
        Packet::Publish(p) => {
            assert_eq!(&p.payload[..], payload);
            c.send(&Packet::PubAck(ringmq::protocol::Ack::new(p.packet_id)));
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

/// Subscribes one client, and from another sends a PUBLISH split over three fragments
/// with a ping between them, then a frame with two PUBLISHes.
fn exchange(open: impl Fn() -> Box<dyn Stream>, v: ProtocolVersion, tag: &str) {
    let mut sub = WsClient::connect_ok(open(), Conn::new(format!("ws-sub-{tag}-{v:?}"), v));
    sub.subscribe("ws/#");
    let mut publisher = WsClient::connect_ok(open(), Conn::new(format!("ws-pub-{tag}-{v:?}"), v));
    let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    let bytes = publisher.encode(&publish_packet("ws/big", &big, Q1, false, 1, None));
    let (a, rest) = bytes.split_at(3);
    let (b, c) = rest.split_at(40_000);
    publisher.send_frame(OP_BINARY, false, a);
    publisher.send_frame(OP_PING, true, b"are you there");
    publisher.send_frame(OP_CONTINUATION, false, b);
    publisher.send_frame(OP_CONTINUATION, true, c);
    let mut two = publisher.encode(&publish_packet("ws/one", b"1", Q1, false, 2, None));
    two.extend(publisher.encode(&publish_packet("ws/two", b"2", Q1, false, 3, None)));
    publisher.send_frame(OP_BINARY, true, &two);
    for id in 1..=3 {
        match publisher.expect_packet() {
            Packet::PubAck(a) => assert_eq!(a.packet_id, id),
            other => panic!("expected PUBACK {id}, got {other:?}"),
        }
    }
    let pong = publisher.control.iter().find(|f| f.opcode == OP_PONG).expect("a pong");
    assert!(pong.fin && pong.payload == b"are you there", "{pong:?}");
    expect_publish(&mut sub, &big);
    expect_publish(&mut sub, b"1");
    expect_publish(&mut sub, b"2");
    // A clean close: the broker answers with the status sent, then closes.
    publisher.send_frame(OP_CLOSE, true, &1000u16.to_be_bytes());
    assert_eq!(publisher.expect_closed(), Some(1000));
}

#[test]
fn mqtt_over_websockets_at_3_1_1_and_5_0() {
    let broker = ws_broker(|_| {});
    for v in [V3_1_1, V5] {
        exchange(|| WsClient::tcp(broker.addr), v, "ws");
    }
}

#[test]
fn mqtt_over_websockets_inside_tls() {
    let pki = Pki::new();
    let broker = ws_broker(|c| c.listeners[0].tls = pki.server());
    for v in [V3_1_1, V5] {
        exchange(|| WsClient::tls(broker.addr, &pki), v, "wss");
    }
}

#[test]
fn an_upgrade_without_the_mqtt_subprotocol_is_refused() {
    let broker = ws_broker(|_| {});
    let (mut c, head) = WsClient::upgrade(WsClient::tcp(broker.addr), "chat, superchat", V5);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    c.expect_closed();
    // Older clients ask for mqttv3.1.
    let (_, head) = WsClient::upgrade(WsClient::tcp(broker.addr), "mqttv3.1", V3_1_1);
    assert!(
        head.starts_with("HTTP/1.1 101") && head.contains("Sec-WebSocket-Protocol: mqttv3.1\r\n"),
        "{head}"
    );
}

#[test]
fn a_text_frame_closes_with_1003_and_an_unmasked_frame_with_1002() {
    let broker = ws_broker(|_| {});
    let mut c = WsClient::connect_ok(WsClient::tcp(broker.addr), Conn::new("ws-text", V5));
    c.send_frame(OP_TEXT, true, b"hello");
    assert_eq!(c.expect_closed(), Some(1003));
    let mut c = WsClient::connect_ok(WsClient::tcp(broker.addr), Conn::new("ws-unmasked", V5));
    c.stream.write_all(&[0x82, 0x02, 0xc0, 0x00]).unwrap();
    assert_eq!(c.expect_closed(), Some(1002));
}

#[test]
fn garbage_instead_of_an_upgrade_closes_only_its_connection() {
    let broker = ws_broker(|_| {});
    let mut before = WsClient::connect_ok(WsClient::tcp(broker.addr), Conn::new("ws-before", V5));
    before.subscribe("g/#");
    // An MQTT CONNECT straight on the WebSockets port.
    let mut raw = TcpStream::connect(broker.addr).unwrap();
    raw.write_all(&[0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 5, 2, 0, 60]).unwrap();
    raw.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{:?}", String::from_utf8_lossy(&answer));
    let mut publisher = WsClient::connect_ok(WsClient::tcp(broker.addr), Conn::new("ws-after", V5));
    publisher.send(&publish_packet("g/1", b"still here", Q1, false, 1, None));
    expect_publish(&mut before, b"still here");
}

#[test]
fn an_upgrade_that_never_finishes_is_closed_at_connect_timeout() {
    let broker = ws_broker(|c| c.connect_timeout_secs = 1);
    let start = Instant::now();
    let mut s = TcpStream::connect(broker.addr).unwrap();
    s.write_all(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let took = start.elapsed();
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{took:?}");
}
