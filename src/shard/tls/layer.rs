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

use super::super::input::Input;
use super::super::state::Shard;
use super::super::ws::WsLayer;
use super::identity;
use super::IdentitySource;
use crate::protocol::ByteStr;
use bytes::BytesMut;
use rustls::{ServerConfig, ServerConnection};
use std::io::{BufRead, Write};
use std::sync::Arc;

/// The TLS state of one connection.
pub struct TlsLayer {
    tls: ServerConnection,
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

impl TlsLayer {
    pub fn new(config: Arc<ServerConfig>, identity: IdentitySource) -> Result<Self, rustls::Error> {
        let mut tls = ServerConnection::new(config)?;
        // The shard bounds a connection's output (max_queued_messages and bytes) before
        // it reaches rustls; a second limit here would drop what passes the first.
        tls.set_buffer_limit(None);
        Ok(TlsLayer { tls, identity, handshake_done: false, close_sent: false })
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
    ) {
        let conn = input.conn;
        while !data.is_empty() && !input.is_ended() {
            if let Err(e) = self.tls.read_tls(&mut data) {
                return self.fail(input, shard, &e.to_string());
            }
            if let Err(e) = self.tls.process_new_packets() {
                return self.fail(input, shard, &e.to_string());
            }
            if !self.handshake_done && !self.tls.is_handshaking() {
                self.handshake_done = true;
                self.note_identity(shard, conn);
            }
            loop {
                let mut reader = self.tls.reader();
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
        if self.tls.wants_write() {
            shard.conns().wake_writer(conn);
        }
    }

    /// Hands the identity the listener asks for to the login that follows.
    fn note_identity(&mut self, shard: &mut Shard, conn: super::super::ids::ConnId) {
        let name = match self.identity {
            IdentitySource::Connect => return,
            IdentitySource::CommonName => self.peer_certificate().and_then(identity::common_name),
            IdentitySource::Subject => self.peer_certificate().and_then(identity::subject_rfc2253),
        };
        shard.set_tls_identity(conn, name.map(|n| ByteStr::from(n.as_str())));
    }

    fn peer_certificate(&self) -> Option<&[u8]> {
        self.tls.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref())
    }

    fn fail(&mut self, input: &mut Input, shard: &mut Shard, why: &str) {
        let peer = shard.conns().get(input.conn).map(|c| c.peer.to_string()).unwrap_or_default();
        crate::log!(Notice, "Client connection from {} failed: TLS error: {}.", peer, why);
        input.transport_failed(shard, "closed: TLS error");
        if self.tls.wants_write() {
            shard.conns().wake_writer(input.conn);
        }
    }

    /// Encrypts `plain` (taken, left empty) and appends the records rustls has to send,
    /// handshake messages and alerts included, to `out`. Returns whether `out` has bytes.
    pub fn encrypt(&mut self, plain: &mut BytesMut, out: &mut BytesMut) -> bool {
        if !plain.is_empty() {
            // rustls buffers plaintext written before the handshake ends; with no
            // buffer limit (see `new`) the write takes everything.
            let _ = self.tls.writer().write_all(plain);
            plain.clear();
        }
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut Sink(out)).is_err() {
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
        self.close_sent = true;
        self.tls.send_close_notify();
        true
    }
}
