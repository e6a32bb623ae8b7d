//! One connection's TLS: rustls between the socket and the connection's [`Input`].
//!
//! In: what a receive brought goes to `read_tls`, `process_new_packets` decrypts it, and
//! the plaintext goes to [`Input::on_bytes`] (or to the WebSocket layer inside TLS)
//! straight out of rustls's buffer. Out: the connection's encoded packets go to rustls's
//! writer and its records into the socket's send buffer ([`TlsLayer::encrypt`]), sent as
//! plain output is. Handshake records are sent by listing the connection for the turn's
//! flush.
//!
//! The handshake runs while the input waits for CONNECT, so `connect_timeout` bounds it:
//! a client that never finishes is closed as one that never sends CONNECT.

use super::super::ids::ConnId;
use super::super::input::Input;
use super::super::state::Shard;
use super::super::ws::WsLayer;
use super::handshakes::{Handshakes, Step, Stepped};
use super::identity;
use super::IdentitySource;
use crate::protocol::ByteStr;
use bytes::BytesMut;
use rustls::{ServerConfig, ServerConnection};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The TLS state of one connection.
pub struct TlsLayer {
    /// `None` while a handshake step is away on the handshake threads.
    tls: Option<Box<ServerConnection>>,
    /// Tells this layer's handshake results apart from a later connection's.
    ticket: u64,
    /// Bytes that arrived while a handshake step was away, fed in when it returns.
    inbox: Vec<u8>,
    /// Records a handshake thread produced, sent ahead of anything else.
    outbound: Vec<u8>,
    /// Where the user name comes from; the certificate is read once the handshake ends.
    identity: IdentitySource,
    handshake_done: bool,
    /// close_notify has been queued: the next flush of a closing connection ends it.
    close_sent: bool,
}

/// `BytesMut` as the `io::Write` rustls writes records into.
struct Sink<'a>(&'a mut BytesMut);

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The user name a handshaken connection's client certificate gives.
fn identity_of(tls: &ServerConnection, source: IdentitySource) -> Option<ByteStr> {
    let cert = tls.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref());
    let name = match source {
        IdentitySource::Connect => None,
        IdentitySource::CommonName => cert.and_then(identity::common_name),
        IdentitySource::Subject => cert.and_then(identity::subject_rfc2253),
    };
    name.map(|n| ByteStr::from(n.as_str()))
}

impl TlsLayer {
    pub fn new(config: Arc<ServerConfig>, identity: IdentitySource) -> Result<Self, rustls::Error> {
        let mut tls = ServerConnection::new(config)?;
        // The shard bounds a connection's output (max_queued_messages and bytes) before
        // it reaches rustls; a second limit here would drop what passes the first.
        tls.set_buffer_limit(None);
        static TICKETS: AtomicU64 = AtomicU64::new(0);
        let ticket = TICKETS.fetch_add(1, Ordering::Relaxed);
        let tls = Some(Box::new(tls));
        let (inbox, outbound) = (Vec::new(), Vec::new());
        Ok(TlsLayer { tls, ticket, inbox, outbound, identity, handshake_done: false, close_sent: false })
    }

    /// Hands the handshake's next step to the handshake threads, when there are some and
    /// the handshake is not done; true when it went (the layer waits for it).
    fn send_away(&mut self, shard: &Shard, conn: ConnId, data: &[u8], pool: Option<&Handshakes>) -> bool {
        let Some(pool) = pool.filter(|_| !self.handshake_done) else { return false };
        let Some(tls) = self.tls.take() else { return false };
        let step = Step { shard: shard.id(), conn, ticket: self.ticket, tls, data: data.to_vec() };
        match pool.submit(step) {
            Ok(()) => true,
            Err(step) => {
                self.tls = Some(step.tls);
                false
            }
        }
    }

    /// A handshake step came back from the handshake threads: its records go out, its
    /// plaintext in, and what arrived meanwhile is fed in.
    #[allow(clippy::too_many_arguments)]
    pub fn stepped(
        &mut self,
        r: Stepped,
        input: &mut Input,
        shard: &mut Shard,
        chunk: &mut BytesMut,
        mut ws: Option<&mut WsLayer>,
        pool: Option<&Handshakes>,
    ) {
        if r.ticket != self.ticket || self.tls.is_some() {
            return;
        }
        let conn = input.conn;
        self.tls = Some(r.tls);
        self.outbound.extend_from_slice(&r.records);
        if !self.outbound.is_empty() {
            shard.conns().wake_writer(conn);
        }
        if let Some(e) = r.error {
            return self.fail(input, shard, &e);
        }
        if !self.handshake_done && !self.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
            self.handshake_done = true;
            self.note_identity(shard, conn);
        }
        if !r.plain.is_empty() && !input.is_ended() {
            match ws.as_deref_mut() {
                Some(ws) => ws.on_bytes(input, shard, chunk, &r.plain),
                None => input.on_bytes(shard, chunk, &r.plain),
            }
        }
        let inbox = std::mem::take(&mut self.inbox);
        if !inbox.is_empty() {
            self.on_bytes(input, shard, chunk, &inbox, ws, pool);
        }
    }

    /// Decrypts received bytes and hands the plaintext to `input`. A TLS error (garbage
    /// instead of a ClientHello, a bad certificate, a forged record) ends this connection
    /// only, with the alert rustls queued sent if the socket still takes it.
    pub fn on_bytes(
        &mut self,
        input: &mut Input,
        shard: &mut Shard,
        chunk: &mut BytesMut,
        mut data: &[u8],
        mut ws: Option<&mut WsLayer>,
        pool: Option<&Handshakes>,
    ) {
        let conn = input.conn;
        if self.tls.is_none() {
            self.inbox.extend_from_slice(data);
            return;
        }
        if self.send_away(shard, conn, data, pool) {
            return;
        }
        let Some(tls) = self.tls.as_deref_mut() else { return };
        while !data.is_empty() && !input.is_ended() {
            if let Err(e) = tls.read_tls(&mut data) {
                return self.fail(input, shard, &e.to_string());
            }
            if let Err(e) = tls.process_new_packets() {
                return self.fail(input, shard, &e.to_string());
            }
            if !self.handshake_done && !tls.is_handshaking() {
                self.handshake_done = true;
                let name = identity_of(tls, self.identity);
                if self.identity != IdentitySource::Connect {
                    shard.set_tls_identity(conn, name);
                }
            }
            loop {
                let mut reader = tls.reader();
                match reader.fill_buf() {
                    Ok([]) => {
                        // close_notify: the client ends the connection cleanly.
                        input.on_end(shard, "closed its connection");
                        break;
                    }
                    Ok(plain) => {
                        let n = plain.len();
                        match ws.as_deref_mut() {
                            Some(ws) => ws.on_bytes(input, shard, chunk, plain),
                            None => input.on_bytes(shard, chunk, plain),
                        }
                        reader.consume(n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return self.fail(input, shard, &e.to_string()),
                }
            }
        }
        if tls.wants_write() {
            shard.conns().wake_writer(conn);
        }
    }

    /// Hands the identity the listener asks for to the login that follows.
    fn note_identity(&mut self, shard: &mut Shard, conn: ConnId) {
        if let Some(tls) = self.tls.as_deref().filter(|_| self.identity != IdentitySource::Connect) {
            shard.set_tls_identity(conn, identity_of(tls, self.identity));
        }
    }

    fn fail(&mut self, input: &mut Input, shard: &mut Shard, why: &str) {
        let peer = shard.conns().get(input.conn).map(|c| c.peer.to_string()).unwrap_or_default();
        crate::log!(Notice, "Client connection from {} failed: TLS error: {}.", peer, why);
        input.transport_failed(shard, "closed: TLS error");
        if self.tls.as_ref().is_some_and(|t| t.wants_write()) || !self.outbound.is_empty() {
            shard.conns().wake_writer(input.conn);
        }
    }

    /// Encrypts `plain` (taken, left empty) and appends the records rustls has to send,
    /// handshake messages and alerts included, to `out`. Returns whether `out` has bytes.
    pub fn encrypt(&mut self, plain: &mut BytesMut, out: &mut BytesMut) -> bool {
        out.extend_from_slice(&self.outbound);
        self.outbound.clear();
        // Away on a handshake thread: the plaintext waits for it.
        let Some(tls) = self.tls.as_deref_mut() else { return !out.is_empty() };
        if !plain.is_empty() {
            // rustls buffers plaintext written before the handshake ends; with no
            // buffer limit (see `new`) the write takes everything.
            let _ = tls.writer().write_all(plain);
            plain.clear();
        }
        while tls.wants_write() {
            if tls.write_tls(&mut Sink(out)).is_err() {
                break;
            }
        }
        !out.is_empty()
    }

    /// Queues close_notify once; true the first time (there is then a record to send).
    pub fn close(&mut self) -> bool {
        if self.close_sent {
            return false;
        }
        let Some(tls) = self.tls.as_deref_mut() else { return false };
        self.close_sent = true;
        tls.send_close_notify();
        true
    }
}
