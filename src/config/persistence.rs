//! The persistence options: Mosquitto's names, and ringmq's own `persistence_sync`
//! (docs/persistence.md says what each means here).

use super::values::{parse_bool, parse_range};
use std::path::PathBuf;

/// Mosquitto's default `autosave_interval`, in seconds.
pub const DEFAULT_AUTOSAVE_INTERVAL_SECS: u32 = 1800;
/// The longest `persistence_sync interval`: a minute of writes at risk on a power loss is
/// already more than anyone should choose.
pub const SYNC_INTERVAL_MAX_MS: u32 = 60_000;

/// When what a shard writes is made durable (`persistence_sync`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PersistenceSync {
    /// `fsync`: a QoS 1/2 PUBLISH is acknowledged once its record is on disk.
    Fsync,
    /// `interval MS`: acknowledged once written; synced within MS milliseconds.
    IntervalMs(u32),
    /// `os`: acknowledged once written; the kernel flushes when it will.
    Os,
}

/// Everything the persistence options set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistenceConfig {
    /// `persistence`.
    pub enabled: bool,
    /// `persistence_location`: the directory of the shards' files (default: the working
    /// directory, as in Mosquitto).
    pub location: PathBuf,
    /// `persistence_file`: the files' name; shard N writes `NAME.shard-N`.
    pub file: String,
    /// `autosave_interval`, accepted for Mosquitto's configs: ringmq writes each change
    /// as it happens, so there is no full save to schedule.
    pub autosave_interval_secs: u32,
    /// `autosave_on_changes`, accepted for the same reason.
    pub autosave_on_changes: bool,
    /// `persistence_sync`.
    pub sync: PersistenceSync,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        PersistenceConfig {
            enabled: false,
            location: PathBuf::new(),
            file: "mosquitto.db".into(),
            autosave_interval_secs: DEFAULT_AUTOSAVE_INTERVAL_SECS,
            autosave_on_changes: false,
            sync: PersistenceSync::Fsync,
        }
    }
}

/// Applies one persistence option; `None` when `option` is not one.
pub(super) fn apply(
    c: &mut PersistenceConfig,
    option: &str,
    rest: &str,
    args: &[&str],
) -> Option<Result<(), String>> {
    let one = || match args {
        [v] => Ok(*v),
        [] => Err("needs a value".to_string()),
        _ => Err(format!("takes one value, got {}", args.len())),
    };
    let text = || if rest.is_empty() { Err("needs a value".to_string()) } else { Ok(rest) };
    let result = match option {
        "persistence" => one().and_then(parse_bool).and_then(|on| {
            if on {
                // The shards store retained messages, not sessions yet: a broker that
                // said yes here would lose the queued messages it acknowledged.
                return Err("not in service yet: retained messages are stored, but sessions and their queued messages are not yet, and are kept in memory only; set 'persistence false' to run without".into());
            }
            c.enabled = on;
            Ok(())
        }),
        "persistence_location" => text().map(|t| c.location = PathBuf::from(t)),
        "persistence_file" => text().and_then(|t| {
            if t.contains('/') {
                return Err(format!("a file name, not a path (the directory is persistence_location), got '{t}'"));
            }
            c.file = t.to_string();
            Ok(())
        }),
        "autosave_interval" => {
            one().and_then(|v| parse_range::<u32>(v, 0, u32::MAX)).map(|n| c.autosave_interval_secs = n)
        }
        "autosave_on_changes" => one().and_then(parse_bool).map(|b| c.autosave_on_changes = b),
        "persistence_sync" => parse_sync(args).map(|s| c.sync = s),
        _ => return None,
    };
    Some(result)
}

/// `fsync`, `interval MS` or `os`.
fn parse_sync(args: &[&str]) -> Result<PersistenceSync, String> {
    match args {
        ["fsync"] => Ok(PersistenceSync::Fsync),
        ["os"] => Ok(PersistenceSync::Os),
        ["interval", ms] => parse_range::<u32>(ms, 1, SYNC_INTERVAL_MAX_MS).map(PersistenceSync::IntervalMs),
        ["interval"] => Err("interval needs milliseconds: persistence_sync interval MS".into()),
        _ => Err(format!("expected fsync, interval MS or os, got '{}'", args.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_line(c: &mut PersistenceConfig, line: &str) -> Result<(), String> {
        let (option, rest) = line.split_once(' ').unwrap_or((line, ""));
        let args: Vec<&str> = rest.split_whitespace().collect();
        apply(c, option, rest, &args).expect("a persistence option")
    }

    #[test]
    fn mosquitto_names_and_the_sync_setting_are_read() {
        let mut c = PersistenceConfig::default();
        for line in [
            "persistence false",
            "persistence_location /var/lib/ringmq",
            "persistence_file broker.db",
            "autosave_interval 60",
            "autosave_on_changes true",
            "persistence_sync interval 250",
        ] {
            apply_line(&mut c, line).unwrap();
        }
        assert_eq!(c.location, PathBuf::from("/var/lib/ringmq"));
        assert_eq!(
            (c.file.as_str(), c.autosave_interval_secs, c.autosave_on_changes),
            ("broker.db", 60, true)
        );
        assert_eq!(c.sync, PersistenceSync::IntervalMs(250));
        apply_line(&mut c, "persistence_sync os").unwrap();
        assert_eq!(c.sync, PersistenceSync::Os);
        apply_line(&mut c, "persistence_sync fsync").unwrap();
        assert_eq!(c.sync, PersistenceSync::Fsync);
        assert!(apply(&mut c, "max_queued_messages", "1", &["1"]).is_none());
    }

    #[test]
    fn bad_values_say_what_is_allowed() {
        let mut c = PersistenceConfig::default();
        let e = |c: &mut PersistenceConfig, line| apply_line(c, line).unwrap_err();
        assert!(e(&mut c, "persistence_sync sometimes").contains("fsync, interval MS or os"));
        assert!(e(&mut c, "persistence_sync interval").contains("milliseconds"));
        assert!(e(&mut c, "persistence_sync interval 0").contains("from 1 to 60000"));
        assert!(e(&mut c, "persistence_file a/b.db").contains("persistence_location"));
        assert!(e(&mut c, "persistence yes").contains("true or false"));
        assert!(e(&mut c, "persistence true").contains("not in service yet"));
        assert_eq!(c, PersistenceConfig::default(), "a refused line changes nothing");
    }
}
