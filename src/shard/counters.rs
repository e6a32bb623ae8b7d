//! What a shard counts for `$SYS` and the metrics endpoint: plain integers that only the
//! shard's own thread adds to (nothing on the hot path takes a lock or an atomic to
//! count). `sys.rs` copies them, with the sessions' send counts and the drop counters,
//! into the shard's slot of the shared board at its housekeeping ticks.

/// One shard's message counters since it started.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Counters {
    /// MQTT packets decoded from clients, of every type (Mosquitto's `messages/received`).
    pub packets_received: u64,
    /// PUBLISH packets from clients, by QoS (Mosquitto's `publish/messages/received`).
    pub publish_received: [u64; 3],
    /// Their payload bytes (`publish/bytes/received`).
    pub publish_received_bytes: u64,
    /// Offline sessions ended because their expiry interval passed (`clients/expired`).
    pub clients_expired: u64,
    /// CONNECTs accepted (`load/connections`).
    pub connects_accepted: u64,
}
