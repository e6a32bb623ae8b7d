//! WebSockets listeners (RFC 6455) as a layer in the shard's byte path: the HTTP upgrade
//! with the `mqtt` subprotocol, then binary frames whose payloads are the MQTT byte
//! stream (MQTT 5.0 section 6; 3.1.1 section 6). Sans-IO like the TLS layer: bytes in
//! from the socket (or from TLS), the stream out to the connection's input; the
//! connection's packets out as binary frames.
//!
//! Written here rather than taken from a crate: the framing is small, and the crates
//! that do it (tungstenite and those built on it) own the stream (`Read`/`Write`) and
//! reassemble whole messages before handing them over, where MQTT wants the payload
//! bytes as they come, however the frames split them; what is left to write is about
//! 300 lines and a SHA-1.
//!
//! Frames are not reassembled: a binary frame and its continuations are a stream of
//! bytes to the MQTT decoder, so a packet may span frames and a frame may carry several
//! packets. Control frames (ping, pong, close) may arrive between fragments.

use super::input::Input;
use super::state::Shard;
use base64::Engine;
use bytes::{BufMut, BytesMut};
use sha1::{Digest, Sha1};

/// RFC 6455 section 1.3: appended to the client's key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

/// Close status codes (RFC 6455 section 7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;

/// Where the connection stands.
enum State {
    /// Reading the HTTP upgrade request, kept until its blank line.
    Upgrade(Vec<u8>),
    /// Frames, their header read a byte at a time into `frame`.
    Open,
    /// A close was received or sent, or the upgrade failed: nothing more is read.
    Closed,
}

/// The frame being read.
#[derive(Default)]
struct Frame {
    /// The header so far (2 to 14 bytes).
    header: [u8; 14],
    header_len: u8,
    /// Payload bytes still to come, once the header is whole.
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes already read (for the mask's offset).
    offset: u64,
    opcode: u8,
    fin: bool,
    in_payload: bool,
}

/// One connection's WebSocket state.
pub struct WsLayer {
    state: State,
    frame: Frame,
    /// A binary message is open (its continuations are data too).
    in_binary: bool,
    /// A control frame's payload, gathered (at most 125 bytes).
    control: Vec<u8>,
    /// Unmasked data, handed to the input.
    scratch: Vec<u8>,
    /// What goes out before the next data frame: the 101 answer, pongs, a close.
    replies: BytesMut,
    close_sent: bool,
    headers_max_bytes: usize,
}

/// Why the layer ends the connection.
struct Failure {
    /// For the log.
    why: &'static str,
    /// The close frame's status, or `None` during the upgrade (an HTTP 400 answers).
    status: Option<u16>,
}

impl WsLayer {
    pub fn new(headers_max_bytes: usize) -> Self {
        WsLayer {
            state: State::Upgrade(Vec::new()),
            frame: Frame::default(),
            in_binary: false,
            control: Vec::new(),
            scratch: Vec::new(),
            replies: BytesMut::new(),
            close_sent: false,
            headers_max_bytes,
        }
    }

    /// Handles bytes from the socket (or from TLS): the upgrade, then frames, whose
    /// data goes to `input`. Anything the layer must answer is queued and the
    /// connection listed for the turn's flush.
    pub fn on_bytes(&mut self, input: &mut Input, shard: &mut Shard, chunk: &mut BytesMut, data: &[u8]) {
        let had_replies = !self.replies.is_empty();
        let result = self.read(input, shard, chunk, data);
        if let Err(f) = result {
            let peer = shard.conns().get(input.conn).map(|c| c.peer.to_string()).unwrap_or_default();
            crate::log!(Notice, "Client connection from {} failed: WebSocket error: {}.", peer, f.why);
            match f.status {
                Some(status) => self.queue_close(status),
                None => self.replies.extend_from_slice(
                    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                ),
            }
            self.state = State::Closed;
            input.transport_failed(shard, "closed: WebSocket error");
        }
        if !had_replies && !self.replies.is_empty() {
            shard.conns().wake_writer(input.conn);
        }
    }

    fn read(
        &mut self,
        input: &mut Input,
        shard: &mut Shard,
        chunk: &mut BytesMut,
        mut data: &[u8],
    ) -> Result<(), Failure> {
        if let State::Upgrade(request) = &mut self.state {
            let before = request.len();
            request.extend_from_slice(data);
            // The blank line may straddle two receives: look from a little before.
            let from = before.saturating_sub(3);
            let Some(end) = find(&request[from..], b"\r\n\r\n").map(|i| from + i + 4) else {
                if request.len() > self.headers_max_bytes {
                    return Err(Failure { why: "upgrade request too long", status: None });
                }
                if !is_get_prefix(request) {
                    return Err(Failure { why: "not an HTTP upgrade request", status: None });
                }
                return Ok(());
            };
            if end > self.headers_max_bytes {
                return Err(Failure { why: "upgrade request too long", status: None });
            }
            let answer = upgrade(&request[..end]).map_err(|why| Failure { why, status: None })?;
            self.replies.extend_from_slice(answer.as_bytes());
            // Frames the client sent right behind its request.
            let rest = request.split_off(end);
            self.state = State::Open;
            return self.frames(input, shard, chunk, &rest);
        }
        if let State::Open = self.state {
            self.frames(input, shard, chunk, std::mem::take(&mut data))?;
        }
        Ok(())
    }

    /// Reads frames from `data`, data frames' payloads to `input`.
    fn frames(
        &mut self,
        input: &mut Input,
        shard: &mut Shard,
        chunk: &mut BytesMut,
        mut data: &[u8],
    ) -> Result<(), Failure> {
        while !data.is_empty() && matches!(self.state, State::Open) && !input.is_ended() {
            if !self.frame.in_payload {
                data = self.read_header(data)?;
                if !self.frame.in_payload {
                    continue;
                }
            }
            let f = &mut self.frame;
            let n = (f.remaining.min(data.len() as u64)) as usize;
            let (payload, rest) = data.split_at(n);
            data = rest;
            self.scratch.clear();
            self.scratch
                .extend(payload.iter().enumerate().map(|(i, b)| b ^ f.mask[((f.offset as usize) + i) & 3]));
            f.offset += n as u64;
            f.remaining -= n as u64;
            let (opcode, done) = (f.opcode, f.remaining == 0);
            if opcode == OP_BINARY || opcode == OP_CONTINUATION {
                if !self.scratch.is_empty() {
                    input.on_bytes(shard, chunk, &self.scratch);
                }
            } else {
                self.control.extend_from_slice(&self.scratch);
            }
            if done {
                self.frame_done(input, shard)?;
            }
        }
        Ok(())
    }

    /// Reads header bytes; once whole, checks the frame and starts its payload.
    fn read_header<'d>(&mut self, mut data: &'d [u8]) -> Result<&'d [u8], Failure> {
        while !self.frame.in_payload && !data.is_empty() {
            let f = &mut self.frame;
            f.header[f.header_len as usize] = data[0];
            f.header_len += 1;
            data = &data[1..];
            let h = &f.header[..f.header_len as usize];
            if h.len() < 2 {
                continue;
            }
            let short = h[1] & 0x7f;
            let extra = match short {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            // RFC 6455 section 5.1: a client masks every frame.
            if h[1] & 0x80 == 0 {
                return Err(Failure {
                    why: "an unmasked frame from the client",
                    status: Some(CLOSE_PROTOCOL_ERROR),
                });
            }
            let want = 2 + extra + 4;
            if h.len() < want {
                continue;
            }
            let len = match extra {
                0 => u64::from(short),
                2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
                _ => u64::from_be_bytes(h[2..10].try_into().expect("eight bytes")),
            };
            f.mask.copy_from_slice(&h[2 + extra..want]);
            f.fin = h[0] & 0x80 != 0;
            f.opcode = h[0] & 0x0f;
            f.remaining = len;
            f.offset = 0;
            f.in_payload = true;
            f.header_len = 0;
            if h[0] & 0x70 != 0 {
                return Err(Failure { why: "reserved bits set", status: Some(CLOSE_PROTOCOL_ERROR) });
            }
            self.start_frame()?;
        }
        Ok(data)
    }

    /// Checks a frame's header against what may come now.
    fn start_frame(&mut self) -> Result<(), Failure> {
        let f = &self.frame;
        let protocol = |why| Err(Failure { why, status: Some(CLOSE_PROTOCOL_ERROR) });
        match f.opcode {
            OP_BINARY if self.in_binary => return protocol("a new message inside a fragmented one"),
            OP_BINARY => self.in_binary = !f.fin,
            OP_CONTINUATION if !self.in_binary => return protocol("a continuation with no message open"),
            OP_CONTINUATION => self.in_binary = !f.fin,
            // MQTT 5.0 [MQTT-6.0.0-1]: packets travel in binary frames only; any other
            // data frame closes the connection.
            OP_TEXT => {
                return Err(Failure { why: "a text frame", status: Some(CLOSE_UNSUPPORTED_DATA) });
            }
            OP_CLOSE | OP_PING | OP_PONG => {
                // Section 5.5: control frames are not fragmented and carry at most 125 bytes.
                if !f.fin || f.remaining > 125 {
                    return protocol("a fragmented or oversized control frame");
                }
                self.control.clear();
            }
            _ => return protocol("an unknown opcode"),
        }
        Ok(())
    }

    /// A frame's payload has all arrived.
    fn frame_done(&mut self, input: &mut Input, shard: &mut Shard) -> Result<(), Failure> {
        self.frame.in_payload = false;
        match self.frame.opcode {
            OP_PING => {
                let payload = std::mem::take(&mut self.control);
                frame_header(&mut self.replies, OP_PONG, payload.len());
                self.replies.extend_from_slice(&payload);
            }
            OP_CLOSE => {
                // Answer with the status it sent (section 5.5.1), and end.
                let status = match self.control.as_slice() {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => CLOSE_NORMAL,
                };
                self.queue_close(status);
                self.state = State::Closed;
                input.on_end(shard, "closed its connection");
            }
            _ => {}
        }
        Ok(())
    }

    fn queue_close(&mut self, status: u16) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        frame_header(&mut self.replies, OP_CLOSE, 2);
        self.replies.put_u16(status);
    }

    /// Frames `plain` (taken, left empty) as one binary message, behind any replies, into
    /// `out`; a `closing` connection with nothing left gets a close frame. Returns whether
    /// `out` grew.
    pub fn frame(&mut self, plain: &mut BytesMut, out: &mut BytesMut, closing: bool) -> bool {
        let before = out.len();
        out.extend_from_slice(&self.replies);
        self.replies.clear();
        // Nothing goes out before the 101 answer, nor after a close.
        if !plain.is_empty() && !matches!(self.state, State::Upgrade(_)) && !self.close_sent {
            frame_header(out, OP_BINARY, plain.len());
            out.extend_from_slice(plain);
        }
        plain.clear();
        if closing && out.len() == before && !matches!(self.state, State::Upgrade(_)) {
            self.queue_close(CLOSE_NORMAL);
            out.extend_from_slice(&self.replies);
            self.replies.clear();
        }
        out.len() > before
    }
}

/// A server frame's header (FIN set, unmasked).
fn frame_header(out: &mut BytesMut, opcode: u8, len: usize) {
    out.put_u8(0x80 | opcode);
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=0xffff => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether what has come so far can still be the start of `GET `.
fn is_get_prefix(request: &[u8]) -> bool {
    let n = request.len().min(4);
    request[..n] == b"GET "[..n]
}

/// Checks an upgrade request (RFC 6455 section 4.2.1) and returns the 101 answer, which
/// names the `mqtt` subprotocol (or `mqttv3.1`, which older clients ask for).
fn upgrade(request: &[u8]) -> Result<String, &'static str> {
    let text = std::str::from_utf8(request).map_err(|_| "an upgrade request that is not text")?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    if parts.next() != Some("GET") || parts.next().is_none() || parts.next() != Some("HTTP/1.1") {
        return Err("not an HTTP/1.1 GET request");
    }
    let (mut key, mut version, mut upgrade, mut connection, mut protocols) =
        (None, None, false, false, Vec::new());
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else { return Err("a malformed header line") };
        let value = value.trim();
        let tokens = || value.split(',').map(str::trim);
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade = tokens().any(|t| t.eq_ignore_ascii_case("websocket")),
            "connection" => connection = tokens().any(|t| t.eq_ignore_ascii_case("upgrade")),
            "sec-websocket-key" => key = Some(value),
            "sec-websocket-version" => version = Some(value),
            "sec-websocket-protocol" => protocols.extend(tokens()),
            _ => {}
        }
    }
    if !upgrade || !connection {
        return Err("not a WebSocket upgrade");
    }
    if version != Some("13") {
        return Err("a WebSocket version other than 13");
    }
    let key = key.ok_or("no Sec-WebSocket-Key")?;
    // MQTT 5.0 [MQTT-6.0.0-3] / 3.1.1 [MQTT-6.0.0-3]: the client offers "mqtt".
    let protocol = ["mqtt", "mqttv3.1"]
        .into_iter()
        .find(|p| protocols.contains(p))
        .ok_or("no mqtt subprotocol offered")?;
    let accept = base64::engine::general_purpose::STANDARD
        .encode(Sha1::new().chain_update(key).chain_update(ACCEPT_GUID).finalize());
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = "GET /mqtt HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";

    #[test]
    fn the_accept_key_is_rfc_6455_s_example() {
        // RFC 6455 section 1.3's worked example.
        let answer = upgrade(REQUEST.as_bytes()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{answer}");
        assert!(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{answer}");
        assert!(answer.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{answer}");
    }

    #[test]
    fn upgrades_without_mqtt_or_websocket_are_refused() {
        let no_mqtt = REQUEST.replace("Sec-WebSocket-Protocol: mqtt", "Sec-WebSocket-Protocol: chat");
        assert_eq!(upgrade(no_mqtt.as_bytes()), Err("no mqtt subprotocol offered"));
        let old = REQUEST.replace("Sec-WebSocket-Protocol: mqtt", "Sec-WebSocket-Protocol: mqttv3.1");
        assert!(upgrade(old.as_bytes()).unwrap().contains("Sec-WebSocket-Protocol: mqttv3.1\r\n"));
        let v8 = REQUEST.replace("Version: 13", "Version: 8");
        assert!(upgrade(v8.as_bytes()).is_err());
        let plain = REQUEST.replace("Upgrade: websocket\r\n", "");
        assert_eq!(upgrade(plain.as_bytes()), Err("not a WebSocket upgrade"));
        assert!(upgrade(b"POST / HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn frame_headers_use_the_shortest_length() {
        for (len, want) in [(0, vec![0x82, 0]), (125, vec![0x82, 125]), (126, vec![0x82, 126, 0, 126])] {
            let mut out = BytesMut::new();
            frame_header(&mut out, OP_BINARY, len);
            assert_eq!(&out[..], &want[..], "{len}");
        }
        let mut out = BytesMut::new();
        frame_header(&mut out, OP_BINARY, 70_000);
        assert_eq!(&out[..], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn get_prefixes() {
        assert!(is_get_prefix(b"GE"));
        assert!(is_get_prefix(b"GET /x"));
        assert!(!is_get_prefix(b"\x16\x03\x01"));
    }
}
