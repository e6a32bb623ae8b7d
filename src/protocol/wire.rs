//! Wire primitives (section 1.5): integers, variable byte integers, UTF-8 strings and
//! binary data, read from a frame's `Bytes` without copying and written to a `BytesMut`.

use super::error::DecodeError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;
use std::ops::Deref;

/// Largest value a variable byte integer can hold (four bytes, section 1.5.5).
pub const VARINT_MAX: u32 = 268_435_455;

/// A UTF-8 string checked as MQTT requires: well-formed, no surrogates (which
/// well-formed UTF-8 excludes), no U+0000 (3.1.1 [MQTT-1.5.3-1] [MQTT-1.5.3-2],
/// 5.0 [MQTT-1.5.4-1] [MQTT-1.5.4-2]).
/// A zero-copy slice of the frame it came from.
#[derive(Clone, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct ByteStr(Bytes);

// Hashes as `str` does, so that maps keyed by `ByteStr` can be searched with a `&str`.
impl std::hash::Hash for ByteStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::borrow::Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl ByteStr {
    /// Checks `bytes` as an MQTT UTF-8 string.
    #[inline]
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, DecodeError> {
        // Fast path: every byte in 0x01..=0x7F is ASCII without U+0000. One pass that does
        // not stop early, so that it vectorises; topics are short and nearly always ASCII.
        let plain_ascii = bytes.iter().fold(true, |ok, &b| ok & (b.wrapping_sub(1) < 0x7F));
        if !plain_ascii {
            std::str::from_utf8(&bytes).map_err(|_| DecodeError::InvalidUtf8)?;
            if bytes.contains(&0) {
                return Err(DecodeError::NullCharacter);
            }
        }
        Ok(Self(bytes))
    }

    /// Whether the string holds a `+` or `#`. A byte scan suffices: in UTF-8 no byte of a
    /// multi-byte character is ASCII. It reads every byte rather than stopping at the
    /// first hit, so that it vectorises: topics are short and nearly always clean.
    #[inline]
    pub fn has_wildcard(&self) -> bool {
        self.0.iter().fold(false, |found, &b| found | (b == b'+') | (b == b'#'))
    }

    /// A string known at compile time.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The string's bytes, shared.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks or guarantees UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cursor over one frame's body. Every read checks the length first, so a short
/// frame is [`DecodeError::Truncated`], never a panic.
///
/// The cursor consumes its `Bytes` from the front: fixed-size reads only move the start,
/// and [`Reader::rest`] hands over what is left without touching the reference count, so
/// a PUBLISH costs one reference for its topic and none for its payload.
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    #[inline]
    pub fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.first().ok_or(DecodeError::Truncated)?;
        self.buf.advance(1);
        Ok(b)
    }

    #[inline]
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let [a, b] = self.array()?;
        Ok(u16::from_be_bytes([a, b]))
    }

    #[inline]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A variable byte integer; more than four bytes is malformed (3.1.1 section 2.2.3,
    /// 5.0 section 1.5.5).
    pub fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::RemainingLengthTooLong)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let a: [u8; N] = self.buf.get(..N).ok_or(DecodeError::Truncated)?.try_into().expect("N bytes");
        self.buf.advance(N);
        Ok(a)
    }

    /// `n` bytes as a shared slice of the frame.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.split_to(n))
    }

    /// Everything left in the frame.
    #[inline]
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Two-byte length followed by that many bytes (section 1.5.6).
    #[inline]
    pub fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u16()? as usize;
        self.bytes(n)
    }

    /// Two-byte length followed by a UTF-8 string (section 1.5.4).
    #[inline]
    pub fn string(&mut self) -> Result<ByteStr, DecodeError> {
        let b = self.binary()?;
        ByteStr::try_from_bytes(b)
    }

    /// A sub-reader over the next `n` bytes (the property block).
    pub fn take(&mut self, n: usize) -> Result<Reader, DecodeError> {
        Ok(Reader::new(self.bytes(n)?))
    }
}

/// Bytes needed to encode `v` as a variable byte integer.
pub fn varint_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `v` as a variable byte integer. `v` must not exceed [`VARINT_MAX`].
pub fn put_varint(out: &mut BytesMut, mut v: u32) {
    debug_assert!(v <= VARINT_MAX);
    loop {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            break;
        }
    }
}

/// Appends a two-byte length and the bytes. Callers keep strings and binary fields
/// under 65,536 bytes (the decoder can produce nothing longer).
pub fn put_binary(out: &mut BytesMut, b: &[u8]) {
    debug_assert!(b.len() <= u16::MAX as usize);
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

/// Bytes a string or binary field occupies on the wire.
pub fn binary_len(b: &[u8]) -> usize {
    2 + b.len()
}
