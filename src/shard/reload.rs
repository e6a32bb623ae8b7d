//! The limits a SIGHUP reload changes, as Mosquitto reloads them: the broker-wide
//! `max_connections`, `max_keepalive`, `message_size_limit`, `max_packet_size`,
//! `max_inflight_messages`, `max_queued_messages`, `max_queued_bytes`,
//! `persistent_client_expiration`, `retain_available`, `check_payload_format`,
//! `connect_timeout`, `stuck_subscriber_secs` and `sys_interval`.
//!
//! The shards read their configuration from a copy they hold (`DataPlane::config`); a
//! reload puts a new copy behind the [`ConfigHandle`], and each shard takes it at its next
//! turn (one relaxed load per turn to see the generation move), as `security.rs` does
//! for the access files. What a reload does not change (listeners, `cores`, the mesh,
//! persistence, TLS options) stays as the broker started, whatever the new file says.

use crate::config::Config;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The configuration the shards run with now.
pub struct ConfigHandle {
    current: Mutex<Arc<Config>>,
    generation: AtomicU64,
}

impl ConfigHandle {
    pub fn new(config: Config) -> Self {
        ConfigHandle { current: Mutex::new(Arc::new(config)), generation: AtomicU64::new(0) }
    }

    /// Puts `config` in place; shards take it at their next turn.
    pub fn replace(&self, config: Config) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Changes with every [`ConfigHandle::replace`].
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<Config> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `running` with the options a reload changes taken from `reloaded`, and the names of
/// those whose value changed (for the log).
pub fn merged(running: &Config, reloaded: &Config) -> (Config, Vec<&'static str>) {
    let mut c = running.clone();
    let mut changed = Vec::new();
    macro_rules! take {
        ($($field:ident => $name:literal),* $(,)?) => {$(
            if c.$field != reloaded.$field {
                c.$field = reloaded.$field.clone();
                changed.push($name);
            }
        )*};
    }
    take! {
        max_connections => "max_connections",
        max_keepalive_secs => "max_keepalive",
        message_size_limit => "message_size_limit",
        max_packet_size => "max_packet_size",
        max_inflight_messages => "max_inflight_messages",
        max_queued_messages => "max_queued_messages",
        max_queued_bytes => "max_queued_bytes",
        persistent_client_expiration => "persistent_client_expiration",
        retain_available => "retain_available",
        check_payload_format => "check_payload_format",
        connect_timeout_secs => "connect_timeout",
        stuck_subscriber_secs => "stuck_subscriber_secs",
        sys_interval_secs => "sys_interval",
    }
    (c, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_reloadable_limits_and_keeps_the_start_up_shape() {
        let running = Config { cores: 4, max_queued_messages: 1000, ..Config::default() };
        let reloaded = Config {
            cores: 1,
            max_queued_messages: 10,
            max_keepalive_secs: 60,
            max_connections: Some(5),
            ..Config::default()
        };
        let (c, changed) = merged(&running, &reloaded);
        assert_eq!(
            (c.cores, c.max_queued_messages, c.max_keepalive_secs, c.max_connections),
            (4, 10, 60, Some(5))
        );
        assert_eq!(changed, ["max_connections", "max_keepalive", "max_queued_messages"]);
        let handle = ConfigHandle::new(running);
        let g = handle.generation();
        handle.replace(c);
        assert_ne!(handle.generation(), g);
        assert_eq!(handle.current().max_queued_messages, 10);
    }
}
