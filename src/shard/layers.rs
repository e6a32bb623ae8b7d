//! The layers a listener puts between a connection's socket and its [`Input`]: TLS
//! (`tls/`), WebSockets (`ws.rs`), or both, WebSockets inside TLS. A plain TCP
//! connection has none: its socket holds `None` and pays one branch per receive and per
//! send.
//!
//! In: socket bytes → TLS → WebSocket frames → the MQTT input. Out: the connection's
//! encoded packets → a binary frame → TLS records → the socket's send buffer.

use super::input::Input;
use super::shared::Shared;
use super::state::Shard;
use super::tls::{Stepped, TlsLayer};
use super::ws::WsLayer;
use bytes::BytesMut;

/// One connection's layers (at least one).
pub struct Layers {
    tls: Option<TlsLayer>,
    ws: Option<WsLayer>,
}

impl Layers {
    /// The layers listener `listener` puts on a new connection; `None` for plain TCP.
    pub fn for_listener(shared: &Shared, listener: u16) -> Result<Option<Box<Layers>>, rustls::Error> {
        let tls = match shared.tls.server_config(listener) {
            Some(config) => Some(TlsLayer::new(config, shared.tls.identity_source(listener))?),
            None => None,
        };
        let websockets = shared.config.listeners.get(listener as usize).is_some_and(|l| l.websockets);
        let ws = websockets.then(|| WsLayer::new(shared.config.websockets_headers_size));
        Ok((tls.is_some() || ws.is_some()).then(|| Box::new(Layers { tls, ws })))
    }

    /// Received bytes, through the layers to `input`. Never inlined, like
    /// [`Layers::flush`]: the event loop's plain path stays as small as it was.
    #[inline(never)]
    pub fn on_bytes(
        &mut self,
        input: &mut Input,
        shard: &mut Shard,
        chunk: &mut BytesMut,
        data: &[u8],
        shared: &Shared,
    ) {
        match (&mut self.tls, &mut self.ws) {
            (Some(tls), ws) => {
                tls.on_bytes(input, shard, chunk, data, ws.as_mut(), shared.handshakes.as_ref())
            }
            (None, Some(ws)) => ws.on_bytes(input, shard, chunk, data),
            (None, None) => input.on_bytes(shard, chunk, data),
        }
    }

    /// A TLS handshake step came back from the handshake threads.
    pub fn stepped(
        &mut self,
        r: Stepped,
        input: &mut Input,
        shard: &mut Shard,
        chunk: &mut BytesMut,
        shared: &Shared,
    ) {
        if let Some(tls) = &mut self.tls {
            tls.stepped(r, input, shard, chunk, self.ws.as_mut(), shared.handshakes.as_ref());
        }
    }

    /// The connection's output (`plain`, taken) through the layers into `out` (emptied
    /// first: the socket's spare send buffer), with what the layers have to send of their
    /// own (handshakes, pongs, alerts); a `closing` connection with nothing else to send
    /// gets the layers' goodbyes (a WebSocket close, TLS close_notify) before its FIN.
    /// Returns whether `out` has bytes to send.
    #[inline(never)]
    pub fn flush(&mut self, plain: &mut BytesMut, out: &mut BytesMut, closing: bool) -> bool {
        out.clear();
        match (&mut self.tls, &mut self.ws) {
            (Some(tls), ws) => {
                if let Some(ws) = ws {
                    let mut framed = BytesMut::new();
                    ws.frame(plain, &mut framed, closing);
                    *plain = framed;
                }
                tls.encrypt(plain, out) || (closing && tls.close() && tls.encrypt(plain, out))
            }
            (None, Some(ws)) => ws.frame(plain, out, closing),
            (None, None) => {
                out.extend_from_slice(plain);
                plain.clear();
                !out.is_empty()
            }
        }
    }
}
