//! DISCONNECT (section 3.14).

use super::Props;
use crate::protocol::error::DecodeError;
use crate::protocol::properties::{block_len, put_block, Properties, PropertyContext};
use crate::protocol::reason::{valid_disconnect, ReasonCode};
use crate::protocol::wire::Reader;
use crate::protocol::ProtocolVersion;
use bytes::{BufMut, BytesMut};

/// A DISCONNECT. In 3.x it has no body; in 5.0 the reason and properties may be left out.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Disconnect {
    pub reason: ReasonCode,
    pub properties: Props,
}

impl Disconnect {
    /// A DISCONNECT with this reason and no properties.
    pub fn with_reason(reason: ReasonCode) -> Self {
        Disconnect { reason, properties: None }
    }

    pub fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut d = Disconnect::default();
        if version.is_v5() && !r.is_empty() {
            let raw = r.u8()?;
            if !valid_disconnect(raw) {
                return Err(DecodeError::InvalidReasonCode(raw));
            }
            d.reason = ReasonCode(raw);
            if !r.is_empty() {
                d.properties = Properties::decode(r, PropertyContext::Disconnect)?;
            }
        }
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(d)
    }

    pub fn body_len(&self, version: ProtocolVersion) -> usize {
        match (version.is_v5(), &self.properties, self.reason) {
            (false, _, _) | (true, None, ReasonCode::SUCCESS) => 0,
            (true, None, _) => 1,
            (true, Some(p), _) => 1 + block_len(Some(p)),
        }
    }

    pub fn encode_body(&self, version: ProtocolVersion, out: &mut BytesMut) {
        let len = self.body_len(version);
        if len >= 1 {
            out.put_u8(self.reason.0);
        }
        if len > 1 {
            put_block(out, self.properties.as_deref());
        }
    }
}
