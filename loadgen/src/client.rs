//! One MQTT client connection: connect and CONNECT/CONNACK, then a reader task that
//! decodes every packet in each read and hands it to the client's role (an [`Inbox`]), and
//! a writer task that sends whatever the role and the reader queued since its last write
//! (one write per turn, double-buffered). The roles, `publisher.rs` and `subscriber.rs`,
//! build on this module; it knows them only as an [`Inbox`].

use crate::clock::now_ns;
use crate::config::RunConfig;
use crate::net::tcp_connect;
use crate::role_ctx::RoleCtx;
use crate::stats::{Counters, Hist, ThreadStats};
use crate::sync::{Event, Notify};
use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use ringmq::protocol::{
    ByteStr, ConnAck, Connect, Decoded, Decoder, Disconnect, Packet, Properties, ProtocolVersion,
};
use std::cell::RefCell;
use std::future::poll_fn;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// Largest packet accepted from the broker (MQTT's own limit).
pub const PACKET_BYTES_MAX: usize = 268_435_460;
/// Read size of a publishing or subscribing client.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Read size of an idle `conn` client (keeps 100k connections small).
pub const IDLE_READ_CHUNK_BYTES: usize = 256;
/// How long the goodbye (DISCONNECT and the last queued bytes) may take at the end.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
/// Session expiry requested in MQTT 5 with `--clean-session false`.
pub const PERSISTENT_SESSION_EXPIRY_SECS: u32 = 3600;
/// Receive Maximum announced in MQTT 5: we acknowledge at once, so any window is fine.
pub const RECEIVE_MAXIMUM: u16 = u16::MAX;

/// Everything the tasks of one connection share.
pub struct ClientState {
    pub version: ProtocolVersion,
    /// The socket, while open (cleared before it closes, so it is never shut down reused).
    pub fd: Option<i32>,
    /// Bytes queued for the writer.
    pub out: BytesMut,
    writer_waker: Option<Waker>,
    /// Set at the end: the writer sends what is queued, then exits.
    pub closing: bool,
    /// The socket failed or reached end of file.
    pub closed: bool,
    /// When the writer last completed a write (for keepalive).
    pub last_write_ns: u64,
    pub ping_outstanding: bool,
    /// Wakes the role task: an ack arrived, the writer made room, the connection closed.
    pub notify: Rc<Notify>,
    pub writer_exited: Rc<Event>,
    /// From CONNACK (MQTT 5): how many QoS 1/2 publishes the broker accepts unacknowledged.
    pub server_receive_maximum: u16,
}

impl ClientState {
    pub fn new(version: ProtocolVersion, fd: i32) -> Self {
        ClientState {
            version,
            fd: Some(fd),
            out: BytesMut::with_capacity(4096),
            writer_waker: None,
            closing: false,
            closed: false,
            last_write_ns: now_ns(),
            ping_outstanding: false,
            notify: Rc::new(Notify::default()),
            writer_exited: Rc::new(Event::default()),
            server_receive_maximum: u16::MAX,
        }
    }

    /// Appends one packet to the output.
    pub fn queue(&mut self, p: &Packet) {
        p.encode(self.version, &mut self.out);
    }

    /// Tells the writer there is output.
    pub fn wake_writer(&mut self) {
        if !self.out.is_empty() {
            if let Some(w) = self.writer_waker.take() {
                w.wake();
            }
        }
    }

    /// Queues a PINGREQ when nothing was written for `idle_ns`.
    pub fn keepalive(&mut self, now: u64, idle_ns: u64, counters: &mut Counters) {
        if !self.closed
            && !self.closing
            && now.saturating_sub(self.last_write_ns) >= idle_ns
            && self.out.is_empty()
        {
            self.queue(&Packet::PingReq);
            self.ping_outstanding = true;
            counters.pings_sent += 1;
            self.wake_writer();
        }
    }
}

pub type Client = Rc<RefCell<ClientState>>;

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    Tcp(std::io::Error),
    TimedOut,
    Refused(u8),
    Protocol(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Tcp(e) => write!(f, "TCP connect failed: {e}"),
            ConnectError::TimedOut => write!(f, "no CONNACK within the connect timeout"),
            ConnectError::Refused(c) => write!(f, "CONNACK refused the connection (code 0x{c:02x})"),
            ConnectError::Protocol(e) => write!(f, "bad answer to CONNECT: {e}"),
        }
    }
}

/// A connected, accepted client before its tasks start.
pub struct Connected {
    pub stream: TcpStream,
    pub leftover: BytesMut,
    pub decoder: Decoder,
    pub connack: ConnAck,
}

/// The CONNECT this run sends.
pub fn connect_packet(cfg: &RunConfig, client_id: &str) -> Connect {
    let properties = cfg.version.is_v5().then(|| {
        Box::new(Properties {
            session_expiry_interval_secs: (!cfg.clean_session).then_some(PERSISTENT_SESSION_EXPIRY_SECS),
            receive_maximum: Some(RECEIVE_MAXIMUM),
            ..Default::default()
        })
    });
    Connect {
        version: cfg.version,
        clean_start: cfg.clean_session,
        keep_alive_secs: cfg.keepalive_secs,
        client_id: ByteStr::from(client_id),
        will: None,
        username: cfg.username.as_deref().map(ByteStr::from),
        password: cfg.password.as_ref().map(|p| Bytes::copy_from_slice(p.as_bytes())),
        properties,
    }
}

/// TCP connect, CONNECT, CONNACK, all within the connect timeout. Records the connect
/// latency (and, with `scheduled_ns`, the latency from the scheduled start) and counts.
pub async fn connect(
    ctx: &RoleCtx,
    client_id: &str,
    source: Option<IpAddr>,
    scheduled_ns: Option<u64>,
) -> Result<Connected, ConnectError> {
    let started = now_ns();
    ctx.stats.borrow_mut().counters.conn_attempted += 1;
    let timeout = Duration::from_secs_f64(ctx.cfg.connect_timeout_s);
    let attempt = async {
        let mut stream = tcp_connect(ctx.cfg.broker, source).await.map_err(ConnectError::Tcp)?;
        let mut out = BytesMut::with_capacity(128);
        Packet::Connect(Box::new(connect_packet(&ctx.cfg, client_id))).encode(ctx.cfg.version, &mut out);
        let (res, _) = stream.write_all(out).await;
        res.map_err(ConnectError::Tcp)?;
        let mut decoder = Decoder::with_version(ctx.cfg.version, PACKET_BYTES_MAX);
        let mut buf = BytesMut::with_capacity(IDLE_READ_CHUNK_BYTES);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Decoded::Packet(Packet::ConnAck(c))) => return Ok((stream, buf, decoder, c)),
                Ok(Decoded::Packet(p)) => {
                    return Err(ConnectError::Protocol(format!("{} before CONNACK", p.name())))
                }
                Ok(Decoded::Incomplete { .. }) => {}
                Err(e) => return Err(ConnectError::Protocol(e.to_string())),
            }
            buf.reserve(IDLE_READ_CHUNK_BYTES);
            let (res, b) = read_append(&mut stream, buf).await;
            buf = b;
            match res {
                Ok(0) => return Err(ConnectError::Protocol("connection closed before CONNACK".into())),
                Ok(_) => {}
                Err(e) => return Err(ConnectError::Tcp(e)),
            }
        }
    };
    let result = match monoio::time::timeout(timeout, attempt).await {
        Err(_) => Err(ConnectError::TimedOut),
        Ok(Err(e)) => Err(e),
        Ok(Ok((stream, leftover, decoder, connack))) => {
            if connack.code.is_error() {
                Err(ConnectError::Refused(connack.code.0))
            } else {
                Ok(Connected { stream, leftover, decoder, connack })
            }
        }
    };
    let done = now_ns();
    let mut stats = ctx.stats.borrow_mut();
    match &result {
        Ok(_) => {
            stats.counters.conn_ok += 1;
            stats.hists.record(Hist::Connect, done - started);
            if let Some(s) = scheduled_ns {
                stats.hists.record(Hist::ConnectCorrected, done.saturating_sub(s));
            }
        }
        Err(e) => {
            stats.counters.conn_failed += 1;
            match e {
                ConnectError::TimedOut => stats.counters.conn_timed_out += 1,
                ConnectError::Refused(_) => stats.counters.conn_refused += 1,
                _ => {}
            }
            drop(stats);
            ctx.note_error(format!("{client_id}: {e}"));
        }
    }
    result
}

/// Starts the writer of a connected client; returns the client and its read half.
pub fn start(ctx: &RoleCtx, c: Connected) -> (Client, OwnedReadHalf<TcpStream>, BytesMut, Decoder) {
    let fd = c.stream.as_raw_fd();
    let mut state = ClientState::new(ctx.cfg.version, fd);
    if let Some(p) = &c.connack.properties {
        if let Some(rm) = p.receive_maximum {
            state.server_receive_maximum = rm.max(1);
        }
    }
    let client = Rc::new(RefCell::new(state));
    let (rd, wr) = c.stream.into_split();
    crate::turn::spawn(writer(client.clone(), wr));
    (client, rd, c.leftover, c.decoder)
}

/// Sends queued output until the client closes.
async fn writer(client: Client, mut wr: OwnedWriteHalf<TcpStream>) {
    let mut spare = Some(BytesMut::with_capacity(4096));
    loop {
        let taken = poll_fn(|cx| {
            let mut s = client.borrow_mut();
            if s.closed {
                return Poll::Ready(None);
            }
            if !s.out.is_empty() {
                let next = spare.take().unwrap_or_default();
                return Poll::Ready(Some(std::mem::replace(&mut s.out, next)));
            }
            if s.closing {
                return Poll::Ready(None);
            }
            s.writer_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let Some(buf) = taken else { break };
        let (res, mut buf) = wr.write_all(buf).await;
        let mut s = client.borrow_mut();
        if res.is_err() {
            s.closed = true;
            s.notify.notify();
            break;
        }
        s.last_write_ns = now_ns();
        s.notify.notify();
        buf.clear();
        spare = Some(buf);
    }
    let exited = client.borrow().writer_exited.clone();
    exited.set();
}

/// Reads into the free capacity of `buf`, after the bytes already there. (monoio's read
/// of a whole `BytesMut` writes from offset 0, over any partial packet kept from the
/// previous read; a slice starting at `len` appends instead.)
pub async fn read_append<R: AsyncReadRent>(rd: &mut R, buf: BytesMut) -> (std::io::Result<usize>, BytesMut) {
    let (begin, end) = (buf.len(), buf.capacity());
    let (res, slice) = rd.read(buf.slice_mut(begin..end)).await;
    (res, slice.into_inner())
}

/// How a reader ended.
pub enum ReadEnd {
    Eof,
    Error(std::io::Error),
    Protocol(String),
}

/// What a role does with the packets the reader decodes.
pub trait Inbox {
    /// Handles `p` if it is for this role (acknowledging through `s`, counting in
    /// `stats`); gives it back otherwise.
    fn on_packet(
        &mut self,
        ctx: &RoleCtx,
        s: &mut ClientState,
        stats: &mut ThreadStats,
        p: Packet,
        now: u64,
    ) -> Option<Packet>;
}

/// The role of a client that only holds its connection (`conn`): takes no packet.
pub struct NoRole;

impl Inbox for NoRole {
    fn on_packet(
        &mut self,
        _: &RoleCtx,
        _: &mut ClientState,
        _: &mut ThreadStats,
        p: Packet,
        _: u64,
    ) -> Option<Packet> {
        Some(p)
    }
}

/// Reads and dispatches to `role` until end of file or an error.
pub async fn reader<R: Inbox>(
    ctx: &RoleCtx,
    client: &Client,
    role: &RefCell<R>,
    rd: &mut OwnedReadHalf<TcpStream>,
    mut buf: BytesMut,
    mut decoder: Decoder,
    chunk: usize,
) -> ReadEnd {
    let mut now = now_ns();
    let end = loop {
        {
            let mut s = client.borrow_mut();
            let mut role = role.borrow_mut();
            let mut stats = ctx.stats.borrow_mut();
            let mut failed = None;
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Decoded::Packet(p)) => dispatch(ctx, &mut *role, &mut s, &mut stats, p, now),
                    Ok(Decoded::Incomplete { .. }) => break,
                    Err(e) => {
                        stats.counters.protocol_errors += 1;
                        failed = Some(format!("undecodable packet from the broker: {e}"));
                        break;
                    }
                }
            }
            s.wake_writer();
            if let Some(f) = failed {
                break ReadEnd::Protocol(f);
            }
        }
        if buf.capacity() - buf.len() < chunk / 4 {
            buf.reserve(chunk);
        }
        let (res, b) = read_append(rd, buf).await;
        buf = b;
        now = now_ns();
        match res {
            Ok(0) => break ReadEnd::Eof,
            Ok(_) => {}
            Err(e) => break ReadEnd::Error(e),
        }
    };
    let mut s = client.borrow_mut();
    // End of file after the thread shut the read side down is the planned end: the socket
    // can still carry the DISCONNECT. Anything else means the connection is gone.
    if !(matches!(end, ReadEnd::Eof) && ctx.stop.is_set()) {
        s.closed = true;
    }
    s.notify.notify();
    end
}

/// One packet: the connection's own (PINGRESP, DISCONNECT), else the role's. A role's
/// packet that reaches another role (a PUBLISH at a publisher) is a protocol error.
fn dispatch<R: Inbox>(
    ctx: &RoleCtx,
    role: &mut R,
    s: &mut ClientState,
    stats: &mut ThreadStats,
    p: Packet,
    now: u64,
) {
    let unhandled = match p {
        Packet::PingResp => {
            s.ping_outstanding = false;
            s.notify.notify();
            return;
        }
        Packet::Disconnect(d) => {
            stats.counters.disconnects_received += 1;
            stats.note_error(format!("broker sent DISCONNECT (reason 0x{:02x})", d.reason.0));
            return;
        }
        p => match role.on_packet(ctx, s, stats, p, now) {
            Some(p) => p,
            None => return,
        },
    };
    stats.counters.protocol_errors += 1;
    match unhandled {
        Packet::Publish(_)
        | Packet::PubRel(_)
        | Packet::SubAck(_)
        | Packet::PubAck(_)
        | Packet::PubRec(_)
        | Packet::PubComp(_) => {}
        other => stats.note_error(format!("unexpected {} from the broker", other.name())),
    }
}

/// Ends a connection politely: DISCONNECT after whatever is queued, then waits (bounded)
/// for the writer to send it. The socket closes when the halves drop.
pub async fn goodbye(client: &Client) {
    let exited = {
        let mut s = client.borrow_mut();
        if !s.closed {
            s.queue(&Packet::Disconnect(Disconnect::default()));
        }
        s.closing = true;
        s.fd = None;
        s.wake_writer();
        if let Some(w) = s.writer_waker.take() {
            w.wake();
        }
        s.writer_exited.clone()
    };
    let _ = monoio::time::timeout(GOODBYE_TIMEOUT, exited.wait()).await;
}

/// Takes every packet queued in `s.out`, decoded (for the roles' tests).
#[cfg(test)]
pub fn take_queued(s: &mut ClientState) -> Vec<Packet> {
    let mut decoder = Decoder::with_version(s.version, PACKET_BYTES_MAX);
    let mut out = std::mem::take(&mut s.out);
    let mut packets = Vec::new();
    while let Decoded::Packet(p) = decoder.decode(&mut out).expect("the client queued valid packets") {
        packets.push(p);
    }
    assert!(out.is_empty(), "a partial packet was queued");
    packets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role_ctx::test_ctx;
    use crate::shared::Times;
    use ringmq::protocol::{Ack, ReasonCode};

    #[test]
    fn the_connection_handles_pings_and_disconnects_and_refuses_strangers() {
        let ctx = test_ctx(&["conn", "--n", "1"], Times::default());
        let mut s = ClientState::new(ProtocolVersion::V3_1_1, -1);
        let mut stats = ThreadStats::new(0);
        s.ping_outstanding = true;
        dispatch(&ctx, &mut NoRole, &mut s, &mut stats, Packet::PingResp, 0);
        assert!(!s.ping_outstanding);
        assert_eq!((stats.counters.protocol_errors, stats.errors.len()), (0, 0));

        // A role's packet at a client without that role: counted, not reported.
        dispatch(&ctx, &mut NoRole, &mut s, &mut stats, Packet::PubAck(Ack::new(1)), 0);
        assert_eq!((stats.counters.protocol_errors, stats.errors.len()), (1, 0));

        // A packet no client should get: counted and reported.
        dispatch(&ctx, &mut NoRole, &mut s, &mut stats, Packet::PingReq, 0);
        assert_eq!(stats.counters.protocol_errors, 2);
        assert_eq!(stats.errors, ["unexpected PINGREQ from the broker"]);

        let d = Disconnect::with_reason(ReasonCode(0x8b));
        dispatch(&ctx, &mut NoRole, &mut s, &mut stats, Packet::Disconnect(d), 0);
        assert_eq!(stats.counters.disconnects_received, 1);
        assert_eq!(stats.errors[1], "broker sent DISCONNECT (reason 0x8b)");
        assert!(s.out.is_empty(), "nothing is answered");
    }

    #[test]
    fn keepalive_pings_only_an_idle_open_connection() {
        let mut s = ClientState::new(ProtocolVersion::V3_1_1, -1);
        let mut counters = Counters::default();
        let idle = s.last_write_ns + 1_000;
        s.keepalive(idle - 1, 1_000, &mut counters);
        assert_eq!(counters.pings_sent, 0);
        s.keepalive(idle, 1_000, &mut counters);
        assert_eq!(counters.pings_sent, 1);
        assert!(s.ping_outstanding);
        assert!(matches!(take_queued(&mut s)[..], [Packet::PingReq]));
        s.closing = true;
        s.keepalive(idle, 1_000, &mut counters);
        assert_eq!(counters.pings_sent, 1);
    }

    #[test]
    fn connect_asks_for_a_persistent_session_in_mqtt_5_when_told() {
        let ctx =
            test_ctx(&["pairs", "--n", "1", "--mqtt", "5", "--clean-session", "false"], Times::default());
        let c = connect_packet(&ctx.cfg, "lg-1");
        assert_eq!(&c.client_id[..], "lg-1");
        assert!(!c.clean_start);
        let p = c.properties.expect("MQTT 5 properties");
        assert_eq!(p.session_expiry_interval_secs, Some(PERSISTENT_SESSION_EXPIRY_SECS));
        assert_eq!(p.receive_maximum, Some(RECEIVE_MAXIMUM));
        let ctx = test_ctx(&["pairs", "--n", "1"], Times::default());
        assert!(connect_packet(&ctx.cfg, "lg-1").properties.is_none());
    }
}
