//! AUTH (section 3.15), MQTT 5.0 only.

use super::Props;
use crate::protocol::error::DecodeError;
use crate::protocol::properties::{block_len, put_block, Properties, PropertyContext};
use crate::protocol::reason::{valid_auth, ReasonCode};
use crate::protocol::wire::Reader;
use crate::protocol::ProtocolVersion;
use bytes::{BufMut, BytesMut};

/// An AUTH packet of the enhanced authentication exchange.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Auth {
    pub reason: ReasonCode,
    pub properties: Props,
}

impl Auth {
    pub fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        if !version.is_v5() {
            return Err(DecodeError::AuthBeforeV5);
        }
        let mut a = Auth::default();
        // A remaining length of 0 means Success with no properties (section 3.15.2.1).
        if !r.is_empty() {
            let raw = r.u8()?;
            if !valid_auth(raw) {
                return Err(DecodeError::InvalidReasonCode(raw));
            }
            a.reason = ReasonCode(raw);
            if !r.is_empty() {
                a.properties = Properties::decode(r, PropertyContext::Auth)?;
            }
        }
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(a)
    }

    pub fn body_len(&self) -> usize {
        match (&self.properties, self.reason) {
            (None, ReasonCode::SUCCESS) => 0,
            (p, _) => 1 + block_len(p.as_deref()),
        }
    }

    pub fn encode_body(&self, out: &mut BytesMut) {
        if self.body_len() > 0 {
            out.put_u8(self.reason.0);
            put_block(out, self.properties.as_deref());
        }
    }
}
