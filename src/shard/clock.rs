//! The one clock of a broker: milliseconds since it started. Every shard shares its
//! epoch, because message expiry times (`expires_at_ms`) cross the mesh. The event loop
//! reads it once per turn and passes the reading in; nothing below the loop reads it,
//! which is what lets the deterministic tests run the shards on virtual time.

use std::time::Instant;

/// The broker's clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Self {
        Clock { start: Instant::now() }
    }

    /// Milliseconds since the clock started.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}
