//! The two tasks of one connection. The reader reads into a buffer, decodes every
//! complete packet in it and hands each to the shard state; the writer sends whatever
//! output accumulated since its last write, so everything a turn produced for a
//! connection goes out in one write. This file and `mod.rs` are the socket seam: moving
//! to the io-uring crate directly (multishot receive, provided buffers) changes only them.

use super::handle::ConnectDecision;
use super::messages::MeshMsg;
use super::state::{CloseKind, ConnEntry, ConnId, PendingConnect, ShardState};
use crate::protocol::{Connect, DecodeError, Decoded, Decoder, Packet, ReasonCode};
use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::cell::RefCell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

/// Read sizes adapt per connection between these bounds: a mostly idle connection
/// keeps a small buffer, a busy one reads many packets per call.
const READ_MIN_BYTES: usize = 256;
const READ_MAX_BYTES: usize = 64 * 1024;
/// An output buffer larger than this is not kept for reuse after its write.
const SPARE_KEEP_MAX_BYTES: usize = 256 * 1024;

/// Chooses the next read size from how full the last read came back.
struct ReadSizer {
    chunk: usize,
}

impl ReadSizer {
    fn new() -> Self {
        ReadSizer { chunk: READ_MIN_BYTES }
    }

    /// Makes room for the next read.
    fn prepare(&self, buf: &mut BytesMut) {
        if buf.is_empty() && buf.capacity() > 2 * self.chunk {
            // Idle again after a burst: give the big buffer back.
            *buf = BytesMut::with_capacity(self.chunk);
        } else if buf.capacity() - buf.len() < self.chunk / 2 {
            buf.reserve(self.chunk);
        }
    }

    /// Learns from a read of `n` bytes into `room` bytes of space.
    fn record(&mut self, n: usize, room: usize) {
        if n >= room {
            self.chunk = (self.chunk * 2).min(READ_MAX_BYTES);
        } else if n < self.chunk / 8 {
            self.chunk = (self.chunk / 2).max(READ_MIN_BYTES);
        }
    }
}

type State = Rc<RefCell<ShardState>>;

/// Serves one accepted connection until it closes.
pub async fn serve(state: State, stream: TcpStream, peer: SocketAddr, port: u16) {
    let fd = stream.as_raw_fd();
    let _ = stream.set_nodelay(true);
    crate::log!(Information, "New connection from {} on port {}.", peer, port);
    let conn = state.borrow_mut().conns.insert(ConnEntry::new(peer));
    let (mut rd, wr) = stream.into_split();
    monoio::spawn(writer(state.clone(), conn, wr, fd));
    let why = reader(&state, conn, &mut rd).await;
    let mut st = state.borrow_mut();
    st.connection_closed(conn, why);
    st.task_done(conn, true);
    st.wake_peers();
}

/// Reads with a deadline; `None` as the deadline waits forever.
async fn read(
    rd: &mut OwnedReadHalf<TcpStream>,
    buf: BytesMut,
    deadline: Option<Duration>,
) -> Result<(usize, BytesMut), ReadEnd> {
    // monoio reads into a buffer from its start; a slice from `len` to `capacity` keeps
    // the partial packet already buffered and appends after it.
    let (len, cap) = (buf.len(), buf.capacity());
    let fut = rd.read(buf.slice_mut(len..cap));
    let (res, slice) = match deadline {
        Some(d) => monoio::time::timeout(d, fut).await.map_err(|_| ReadEnd::Timeout)?,
        None => fut.await,
    };
    let buf = slice.into_inner();
    match res {
        Ok(0) => Err(ReadEnd::Closed),
        Ok(n) => Ok((n, buf)),
        Err(_) => Err(ReadEnd::Error),
    }
}

enum ReadEnd {
    Closed,
    Error,
    Timeout,
}

async fn reader(state: &State, conn: ConnId, rd: &mut OwnedReadHalf<TcpStream>) -> &'static str {
    let (max_packet, connect_timeout) = {
        let st = state.borrow();
        (st.config().max_packet_size as usize, Duration::from_secs(st.config().connect_timeout_secs))
    };
    let mut decoder = Decoder::server(max_packet);
    let mut sizer = ReadSizer::new();
    let mut buf = BytesMut::with_capacity(READ_MIN_BYTES);

    // The CONNECT phase: the first packet must be CONNECT, within the deadline.
    let connect: Box<Connect> = loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Packet(Packet::Connect(c))) => break c,
            Ok(Decoded::Packet(_)) => return "sent a packet before CONNECT",
            Ok(Decoded::Incomplete { .. }) => {}
            Err(e) => {
                connect_error(state, conn, e);
                return "sent a malformed CONNECT";
            }
        }
        sizer.prepare(&mut buf);
        match read(rd, buf, Some(connect_timeout)).await {
            Ok((_, b)) => buf = b,
            Err(_) => return "closed its connection before CONNECT",
        }
    };
    crate::log!(Debug, "Received CONNECT from {}", connect.client_id);
    let Some(keep_alive) = connect_session(state, conn, &connect).await else {
        return "refused";
    };
    // Keepalive: the shard's sweep closes the connection after one and a half keepalive
    // periods of silence [MQTT-3.1.2-24]; reads carry no timer of their own.
    {
        let mut st = state.borrow_mut();
        let now = st.tick();
        if let Some(c) = st.conns.get_mut(conn) {
            c.keepalive_ms = keep_alive as u64 * 1500;
            c.last_heard_ms = now;
        }
    }

    loop {
        // Process what is buffered first: a CONNECT may have arrived with more packets.
        {
            let mut st = state.borrow_mut();
            let now = st.tick();
            if let Some(c) = st.conns.get_mut(conn) {
                c.last_heard_ms = now;
            }
        }
        loop {
            let mut st = state.borrow_mut();
            match decoder.decode(&mut buf) {
                Ok(Decoded::Packet(p)) => {
                    if let Err(close) = st.handle_packet(conn, p) {
                        let goodbye = (close.kind == CloseKind::Abnormal).then_some(close.reason);
                        if !close.detail.is_empty() {
                            crate::log!(
                                Information,
                                "Client protocol error: {}, disconnecting.",
                                close.detail
                            );
                        }
                        st.close_conn_explained(conn, goodbye, close.detail);
                        st.wake_peers();
                        return if close.kind == CloseKind::Clean {
                            "disconnected"
                        } else {
                            "closed: protocol error"
                        };
                    }
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(e) => {
                    crate::log!(Information, "Bad packet from client: {}, disconnecting.", e);
                    st.close_conn_explained(conn, Some(e.reason_code()), &e.to_string());
                    st.wake_peers();
                    return "closed: malformed packet";
                }
            }
        }
        {
            let mut st = state.borrow_mut();
            st.wake_peers();
            match st.conns.get(conn) {
                Some(c) if c.keepalive_expired => return "has exceeded timeout, disconnecting",
                Some(c) if !c.closing => {}
                _ => return "closed by the broker",
            }
        }
        wait_for_backlog(state).await;
        sizer.prepare(&mut buf);
        let room = buf.capacity() - buf.len();
        let res = read(rd, buf, None).await;
        if state.borrow().conns.get(conn).is_some_and(|c| c.keepalive_expired) {
            return "has exceeded timeout, disconnecting";
        }
        match res {
            Ok((n, b)) => {
                sizer.record(n, room);
                buf = b;
            }
            Err(ReadEnd::Timeout) => return "has exceeded timeout, disconnecting",
            Err(ReadEnd::Closed) => return "closed its connection",
            Err(ReadEnd::Error) => return "socket error, disconnecting",
        }
    }
}

/// A CONNECT that failed to decode: MQTT 5 gets a CONNACK with the reason when the
/// version is known; an unsupported level gets CONNACK 0x01 in 3.1.1 [MQTT-3.1.2-2].
fn connect_error(state: &State, conn: ConnId, e: DecodeError) {
    let mut st = state.borrow_mut();
    crate::log!(
        Notice,
        "Bad CONNECT from {}: {}",
        st.conns.get(conn).map(|c| c.peer.to_string()).unwrap_or_default(),
        e
    );
    if let DecodeError::UnsupportedProtocolLevel(_) | DecodeError::InvalidProtocolName = e {
        st.refuse_connect(
            conn,
            crate::protocol::ProtocolVersion::V3_1_1,
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        );
    } else {
        st.close_conn(conn, None);
    }
}

/// Registers the client id at its home shard, waits for the answer (and the old
/// session, if resumed), then completes the CONNECT. Returns the keepalive in force, or
/// `None` if the connection was refused.
async fn connect_session(state: &State, conn: ConnId, connect: &Connect) -> Option<u16> {
    let (client_id, assigned, token) = {
        let mut st = state.borrow_mut();
        let max = st.shared.config.max_connections;
        let count = st.shared.connections.load(std::sync::atomic::Ordering::Relaxed);
        let decision = if max.is_some_and(|m| count > m) {
            ConnectDecision::Refuse(ReasonCode::SERVER_UNAVAILABLE)
        } else {
            st.check_connect(connect)
        };
        match decision {
            ConnectDecision::Refuse(reason) => {
                st.refuse_connect(conn, connect.version, reason);
                return None;
            }
            ConnectDecision::Register { client_id, assigned } => {
                let token = st.new_token();
                st.pending.insert(token, PendingConnect { result: None, waker: None });
                let home = st.home_shard(&client_id);
                let from = st.id;
                st.send(
                    home,
                    MeshMsg::Register {
                        client_id: client_id.clone(),
                        from,
                        token,
                        clean_start: connect.clean_start,
                    },
                );
                st.wake_peers();
                (client_id, assigned, token)
            }
        }
    };
    let resumed = poll_fn(|cx| {
        let mut st = state.borrow_mut();
        let p = st.pending.get_mut(&token).expect("pending connect outlives its task");
        match p.result.take() {
            Some(r) => {
                st.pending.remove(&token);
                Poll::Ready(r)
            }
            None => {
                p.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await;
    let mut st = state.borrow_mut();
    let max_keepalive = st.config().max_keepalive_secs;
    st.complete_connect(conn, connect, client_id, assigned, token, resumed);
    st.wake_peers();
    let ka = connect.keep_alive_secs;
    // An MQTT 5 client is told the server keepalive in CONNACK and must use it.
    Some(if connect.version.is_v5() && (ka > max_keepalive || (ka == 0 && max_keepalive < u16::MAX)) {
        max_keepalive
    } else {
        ka
    })
}

/// While the mesh toward another shard is backed up, stop reading (TCP back-pressure).
async fn wait_for_backlog(state: &State) {
    poll_fn(|cx| {
        let mut st = state.borrow_mut();
        if !st.is_backlogged() {
            return Poll::Ready(());
        }
        st.backlog_waiters.push(cx.waker().clone());
        Poll::Pending
    })
    .await
}

async fn writer(state: State, conn: ConnId, mut wr: OwnedWriteHalf<TcpStream>, fd: i32) {
    let mut spare = BytesMut::new();
    loop {
        let next = poll_fn(|cx| {
            let mut st = state.borrow_mut();
            let Some(c) = st.conns.get_mut(conn) else { return Poll::Ready(None) };
            if !c.out.is_empty() {
                spare.clear();
                return Poll::Ready(Some(std::mem::replace(&mut c.out, std::mem::take(&mut spare))));
            }
            if c.closing {
                return Poll::Ready(None);
            }
            c.writer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let Some(buf) = next else { break };
        let (res, buf) = wr.write_all(buf).await;
        if buf.capacity() <= SPARE_KEEP_MAX_BYTES {
            spare = buf;
        }
        if res.is_err() {
            break;
        }
    }
    // Wake the reader if it is still reading: the socket is done.
    // SAFETY: fd belongs to this connection's socket, still open (the read half holds it).
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    state.borrow_mut().task_done(conn, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_size_grows_when_reads_fill_the_buffer_and_shrinks_when_idle() {
        let mut s = ReadSizer::new();
        for _ in 0..10 {
            s.record(s.chunk, s.chunk);
        }
        assert_eq!(s.chunk, READ_MAX_BYTES);
        for _ in 0..10 {
            s.record(2, s.chunk);
        }
        assert_eq!(s.chunk, READ_MIN_BYTES);
    }

    #[test]
    fn an_idle_connection_gives_back_a_large_read_buffer() {
        let s = ReadSizer::new();
        let mut buf = BytesMut::with_capacity(READ_MAX_BYTES);
        s.prepare(&mut buf);
        assert!(buf.capacity() < READ_MAX_BYTES);
        assert!(buf.capacity() >= READ_MIN_BYTES);
    }
}
