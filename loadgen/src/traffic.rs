//! Scenario files: traffic described in TOML, run with `ringmq-loadgen run FILE`.
//!
//! A file lists groups of publishers (how many, their topic, QoS, rate, payload sizes) and
//! groups of subscribers (how many, their filter with `+`/`#` wildcards, QoS). Topics and
//! filters are relative: each run puts them under its own root, as for the built-in
//! scenarios. Each subscriber is owed every message of every publisher whose topic its
//! filter matches, and the delivery checks, latency and loss diagnosis work as for the
//! built-in scenarios. Example files: `loadgen/scenarios/`.
//!
//! ```toml
//! name = "telemetry fleet"
//! duration = "30s"       # also warmup, drain; --duration on the command line wins
//! [[publishers]]
//! count = 500
//! topic = "sensors/{i}/temperature"   # {i}: the publisher's index in its group
//! qos = 0
//! rate = 1                            # messages per second per publisher
//! size = { min = 32, max = 256 }      # bytes, uniform; or `size = 64`
//! [[subscribers]]
//! count = 2
//! filter = "sensors/+/temperature"
//! qos = 1
//! ```

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A scenario file as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    pub name: String,
    /// Defaults for the broker's address and the protocol; the command line overrides.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `3.1.1` (default), `5` or `3.1`.
    pub mqtt: Option<String>,
    /// `10s`, `500ms`, `2m`, or seconds as a number.
    pub duration: Option<Duration>,
    pub warmup: Option<Duration>,
    pub drain: Option<Duration>,
    /// Unacknowledged QoS 1/2 messages per publisher (default 64).
    pub inflight: Option<u16>,
    pub publishers: Vec<PublisherGroup>,
    pub subscribers: Vec<SubscriberGroup>,
}

/// A duration in a file: a number of seconds or a string with a unit.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Duration {
    Secs(f64),
    Text(String),
}

impl Duration {
    pub fn secs(&self) -> anyhow::Result<f64> {
        match self {
            Duration::Secs(s) if s.is_finite() && *s >= 0.0 => Ok(*s),
            Duration::Secs(s) => bail!("duration {s} must be 0 or more"),
            Duration::Text(t) => crate::cli::parse_secs(t).map_err(anyhow::Error::msg),
        }
    }
}

/// Publishers that share a topic pattern, QoS, rate and payload sizes.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublisherGroup {
    pub count: u32,
    /// `{i}` is replaced by the publisher's index in the group.
    pub topic: String,
    #[serde(default)]
    pub qos: u8,
    /// Messages per second per publisher (open loop).
    pub rate: f64,
    #[serde(default = "Size::default_size")]
    pub size: Size,
}

/// Payload bytes: one size, or uniform between two.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Size {
    Fixed(usize),
    Uniform { min: usize, max: usize },
}

impl Size {
    fn default_size() -> Size {
        Size::Fixed(64)
    }

    /// (smallest, largest) payload in bytes.
    pub fn range(self) -> (usize, usize) {
        match self {
            Size::Fixed(n) => (n, n),
            Size::Uniform { min, max } => (min, max),
        }
    }
}

/// Subscribers that share a filter and QoS.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubscriberGroup {
    pub count: u32,
    pub filter: String,
    #[serde(default)]
    pub qos: u8,
}

/// Most clients one file may describe (as for the built-in scenarios, one descriptor each).
pub const CLIENTS_MAX: u64 = 1_000_000;

impl Traffic {
    /// Parses and checks a file's text.
    pub fn parse(text: &str) -> anyhow::Result<Traffic> {
        let t: Traffic = toml::from_str(text).context("scenario file")?;
        t.check()?;
        Ok(t)
    }

    /// The checks a file must pass before anything connects.
    fn check(&self) -> anyhow::Result<()> {
        ensure!(!self.publishers.is_empty(), "a scenario needs at least one [[publishers]] group");
        ensure!(!self.subscribers.is_empty(), "a scenario needs at least one [[subscribers]] group");
        for (i, p) in self.publishers.iter().enumerate() {
            let at = format!("publishers[{i}] ({})", p.topic);
            ensure!(p.count > 0, "{at}: count must be at least 1");
            ensure!(p.qos <= 2, "{at}: qos must be 0, 1 or 2");
            ensure!(p.rate.is_finite() && p.rate > 0.0, "{at}: rate must be above 0 messages per second");
            ensure!(!p.topic.is_empty() && !p.topic.contains(['+', '#']), "{at}: a topic has no wildcards");
            let (min, max) = p.size.range();
            ensure!(
                min >= crate::payload::HEADER_BYTES,
                "{at}: size must be at least {} bytes",
                crate::payload::HEADER_BYTES
            );
            ensure!(
                min <= max && max <= crate::payload::PAYLOAD_BYTES_MAX,
                "{at}: size min must not exceed max"
            );
        }
        for (i, s) in self.subscribers.iter().enumerate() {
            let at = format!("subscribers[{i}] ({})", s.filter);
            ensure!(s.count > 0, "{at}: count must be at least 1");
            ensure!(s.qos <= 2, "{at}: qos must be 0, 1 or 2");
            ensure!(
                !s.filter.starts_with('$'),
                "{at}: shared subscriptions ($share) are not supported in files"
            );
            ensure!(
                valid_filter(&s.filter),
                "{at}: `#` only as the last level, wildcards only as whole levels"
            );
            ensure!(!self.matching(&s.filter).is_empty(), "{at}: the filter matches no publisher's topic");
        }
        let clients =
            self.publishers().len() as u64 + self.subscribers.iter().map(|s| s.count as u64).sum::<u64>();
        ensure!(clients <= CLIENTS_MAX, "{clients} clients: at most {CLIENTS_MAX}");
        for s in &self.subscribers {
            self.expects(&s.filter)?;
        }
        Ok(())
    }

    /// Every publisher: (group index, topic), in id order.
    pub fn publishers(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (g, p) in self.publishers.iter().enumerate() {
            for i in 0..p.count {
                out.push((g, p.topic.replace("{i}", &i.to_string())));
            }
        }
        out
    }

    /// Ids of the publishers whose topic `filter` matches.
    fn matching(&self, filter: &str) -> Vec<u32> {
        self.publishers()
            .iter()
            .enumerate()
            .filter(|(_, (_, t))| matches(filter, t))
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// The publishers a subscriber with `filter` is owed, as one id range (the delivery
    /// checker keeps a stream per publisher of a range).
    pub fn expects(&self, filter: &str) -> anyhow::Result<Range<u32>> {
        let ids = self.matching(filter);
        let (first, last) = (ids[0], ids[ids.len() - 1]);
        ensure!(
            last - first + 1 == ids.len() as u32,
            "filter {filter} matches publishers that are not next to each other in the file's order; \
             list the groups it matches one after the other"
        );
        Ok(first..last + 1)
    }

    /// Sends and deliveries per second the file asks for: what decides whether load
    /// threads work in turns (see `turn.rs`).
    pub fn events_per_s(&self) -> f64 {
        let owed = |topic: &str| -> f64 {
            self.subscribers.iter().filter(|s| matches(&s.filter, topic)).map(|s| s.count as f64).sum()
        };
        self.publishers().iter().map(|(g, topic)| self.publishers[*g].rate * (1.0 + owed(topic))).sum()
    }

    /// The group of publisher `id`.
    pub fn group_of(&self, id: u32) -> &PublisherGroup {
        let mut left = id;
        for g in &self.publishers {
            if left < g.count {
                return g;
            }
            left -= g.count;
        }
        panic!("publisher {id} is beyond the file's {} groups", self.publishers.len())
    }

    /// The subscriber group of subscriber `index` (counted over all groups).
    pub fn subscriber_group(&self, index: u32) -> &SubscriberGroup {
        let mut left = index;
        for g in &self.subscribers {
            if left < g.count {
                return g;
            }
            left -= g.count;
        }
        panic!("subscriber {index} is beyond the file's groups")
    }
}

/// Whether `filter` is a well-formed MQTT filter (wildcards as whole levels, `#` last).
fn valid_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains(['+', '#']),
    })
}

/// MQTT topic matching: `+` one level, `#` this level and all below (and the parent).
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match (f, t.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(level)) if f == level => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_topics_as_mqtt_does() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/b/d"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("#", "x/y"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(valid_filter("a/+/#") && !valid_filter("a/#/b") && !valid_filter("a/b+"));
    }

    const FLEET: &str = r##"
        name = "fleet"
        duration = "3s"
        warmup = 1
        [[publishers]]
        count = 3
        topic = "sensors/{i}/t"
        rate = 2
        size = { min = 32, max = 64 }
        [[publishers]]
        count = 2
        topic = "alarms/{i}"
        qos = 1
        rate = 0.5
        [[subscribers]]
        count = 2
        filter = "sensors/+/t"
        [[subscribers]]
        count = 1
        filter = "#"
        qos = 1
    "##;

    #[test]
    fn reads_groups_topics_and_what_each_subscriber_is_owed() {
        let t = Traffic::parse(FLEET).unwrap();
        assert_eq!(t.duration.as_ref().unwrap().secs().unwrap(), 3.0);
        assert_eq!(t.warmup.as_ref().unwrap().secs().unwrap(), 1.0);
        let topics: Vec<String> = t.publishers().into_iter().map(|(_, t)| t).collect();
        assert_eq!(topics, ["sensors/0/t", "sensors/1/t", "sensors/2/t", "alarms/0", "alarms/1"]);
        assert_eq!(t.expects("sensors/+/t").unwrap(), 0..3);
        assert_eq!(t.expects("#").unwrap(), 0..5);
        assert_eq!(t.group_of(3).qos, 1);
        assert_eq!(t.group_of(0).size.range(), (32, 64));
        assert_eq!(t.group_of(4).size, Size::Fixed(64), "64 B unless the file says");
        assert_eq!(t.subscriber_group(2).filter, "#");
    }

    #[test]
    fn example_files_read() {
        for (name, text) in [
            ("telemetry-fleet", include_str!("../scenarios/telemetry-fleet.toml")),
            ("chat-fanout", include_str!("../scenarios/chat-fanout.toml")),
        ] {
            let t = Traffic::parse(text).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(t.events_per_s() > 0.0, "{name}");
        }
    }

    #[test]
    fn refuses_files_it_cannot_check() {
        let bad = |from: &str, to: &str| Traffic::parse(&FLEET.replace(from, to)).unwrap_err().to_string();
        assert!(bad("filter = \"#\"", "filter = \"nothing/here\"").contains("matches no publisher"));
        assert!(bad("rate = 2", "rate = 0").contains("rate must be above 0"));
        assert!(bad("min = 32", "min = 8").contains("at least"));
        assert!(bad("qos = 1\n        rate", "qos = 3\n        rate").contains("qos must be"));
        assert!(format!(
            "{:#}",
            Traffic::parse(&FLEET.replace("count = 3", "count = 3\n        colour = 1")).unwrap_err()
        )
        .contains("colour"));
        // A filter whose publishers are not listed together cannot be one range.
        let split = FLEET
            .replace("topic = \"alarms/{i}\"", "topic = \"sensors/{i}/x\"")
            .replace("\"#\"", "\"sensors/1/+\"");
        assert!(Traffic::parse(&split).unwrap_err().to_string().contains("not next to each other"));
    }
}
