//! What a shard drops, counted where it happens and logged once per episode (when the
//! count moved since the last report), never once per message.

/// Output bytes a connection may have waiting before QoS 0 messages to it are dropped.
pub const OUTPUT_HIGH_WATER_BYTES: usize = 4 << 20;

/// A drop counter: what was added since the last report.
#[derive(Default, Debug)]
pub struct DropCounter {
    count: u64,
    logged: u64,
}

impl DropCounter {
    pub fn add(&mut self) {
        self.count += 1;
    }

    /// Drops since the shard started.
    pub fn total(&self) -> u64 {
        self.count
    }

    /// Drops since the last call, if any.
    fn unreported(&mut self) -> Option<u64> {
        let new = self.count - self.logged;
        self.logged = self.count;
        (new > 0).then_some(new)
    }
}

/// One shard's drop counters.
#[derive(Default, Debug)]
pub struct DropStats {
    /// QoS 0 messages to a subscriber whose output was above [`OUTPUT_HIGH_WATER_BYTES`].
    pub qos0_slow_subscriber: DropCounter,
    /// QoS 1/2 messages beyond `max_queued_messages`.
    pub queue_full: DropCounter,
    /// Shared-subscription messages whose group had no member left on any shard.
    pub shared_no_member: DropCounter,
}

impl DropStats {
    /// Logs the counters that moved since the last call.
    pub fn log(&mut self) {
        if let Some(n) = self.qos0_slow_subscriber.unreported() {
            crate::log!(
                Warning,
                "Warning: dropped {n} QoS 0 messages to slow subscribers (output buffer above {OUTPUT_HIGH_WATER_BYTES} bytes)."
            );
        }
        if let Some(n) = self.shared_no_member.unreported() {
            crate::log!(Warning, "Warning: dropped {n} shared-subscription messages: no group member left.");
        }
        if let Some(n) = self.queue_full.unreported() {
            crate::log!(Warning, "Warning: dropped {n} QoS 1/2 messages: max_queued_messages reached.");
        }
    }
}
