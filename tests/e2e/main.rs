//! The end-to-end tests, one test binary: brokers with 4 shards run in this process on
//! 127.0.0.1 (`binary` starts the real `ringmq` executable), and clients talk to them over
//! real sockets, with the raw client of `common` for byte-level cases and rumqttc for the
//! rest.
//!
//! - `common`: the harness (the broker guard, the raw client, placement on shards, fences,
//!   the rumqttc clients).
//! - `scenarios`: the behaviour both protocol versions share, each scenario a test in
//!   `v311` and in `v5` under the same name (`twins!`).
//! - `v311`, `v5`: the scenarios at each version, and what only that version has.
//! - `v5_features`: MQTT 5.0 feature by feature, above all across shards.
//! - `transport`: the socket path under stress (split packets, an empty buffer pool, a
//!   full mesh) and the end of a connection the broker closes.
//! - `access_control`: password and ACL files, per listener, `$SYS` kept for the broker.
//! - `edge_cases`: protocol edge cases answered as Mosquitto 2.0 does, or as the spec
//!   decides where it does.
//! - `flow_control`: a full subscriber queue holds its publishers; a stuck one is let go.
//! - `binary`: the `ringmq` executable: the tutorial, signals, a bad config file.
//! - `tls`: TLS listeners: 3.1.1 and 5.0 over TLS, client certificates, the
//!   certificate's name as the user name, stalled handshakes, garbage, reloads.
//! - `websockets`: WebSockets listeners: the upgrade, frames split and joined, ping,
//!   close, text frames, garbage, a stalled upgrade, WebSockets inside TLS.
//! - `operations`: the executable as Mosquitto users run it: real-world config files,
//!   reload, signals, pid_file, -d, log destinations, a closed log pipe, a port in use.
//!
//! - `persistence`: retained messages kept across a restart on the same directory, a
//!   corrupt or torn store cut and the broker started.
//!
//! Run one group with a filter: `cargo test --test e2e v311::`, `cargo test --test e2e
//! v5_features::shared`.

mod access_control;
mod binary;
mod common;
mod edge_cases;
mod flow_control;
mod operations;
mod persistence;
mod scenarios;
mod tls;
mod transport;
mod v311;
mod v5;
mod v5_features;
mod websockets;
