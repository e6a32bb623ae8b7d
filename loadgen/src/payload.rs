//! The payload every message carries, so that a subscriber can check delivery and measure
//! latency without any side channel.
//!
//! ```text
//! offset  size  field
//!      0     4  publisher id, u32 big-endian (index into the run's publishers)
//!      4     8  sequence number, u64 big-endian (0, 1, 2, ... per publisher)
//!     12     8  send time, u64 big-endian: nanoseconds since the run's epoch (one
//!               CLOCK_MONOTONIC origin shared by every thread of the process)
//!     20     -  padding (zeros) up to --size bytes
//! ```
//!
//! The send time is when the message was actually handed to the socket buffer. The time
//! it was *scheduled* to be sent is not in the payload: the subscriber derives it from the
//! publisher id and sequence number with the publisher's [`crate::schedule::Schedule`].

/// Bytes of the header above; the smallest payload.
pub const HEADER_BYTES: usize = 20;

/// Largest payload accepted: MQTT's packet limit less room for the headers.
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024 * 1024 - 64 * 1024;

/// The header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub publisher: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

impl Stamp {
    /// Writes the header into the first [`HEADER_BYTES`] of `payload`.
    pub fn write(&self, payload: &mut [u8]) {
        assert!(payload.len() >= HEADER_BYTES, "payload shorter than its header");
        payload[0..4].copy_from_slice(&self.publisher.to_be_bytes());
        payload[4..12].copy_from_slice(&self.seq.to_be_bytes());
        payload[12..20].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads the header; `None` when the payload is too short to be one of ours.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        if payload.len() < HEADER_BYTES {
            return None;
        }
        Some(Stamp {
            publisher: u32::from_be_bytes(payload[0..4].try_into().ok()?),
            seq: u64::from_be_bytes(payload[4..12].try_into().ok()?),
            sent_ns: u64::from_be_bytes(payload[12..20].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_padding_is_untouched() {
        let mut p = vec![0xAAu8; 64];
        let s = Stamp { publisher: 7, seq: 0x0102_0304_0506_0708, sent_ns: 42 };
        s.write(&mut p);
        assert_eq!(&p[0..4], &[0, 0, 0, 7]);
        assert_eq!(&p[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&p[12..20], &[0, 0, 0, 0, 0, 0, 0, 42]);
        assert!(p[20..].iter().all(|&b| b == 0xAA));
        assert_eq!(Stamp::read(&p), Some(s));
    }

    #[test]
    fn short_payload_is_not_ours() {
        assert_eq!(Stamp::read(&[0u8; HEADER_BYTES - 1]), None);
    }
}
