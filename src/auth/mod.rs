//! Who may connect, and what they may read and write: the pure parts (file formats,
//! rule logic, the SCRAM state machine). Nothing here touches a socket or a shard.
//!
//! # Layout
//!
//! - [`password`]: Mosquitto's `password_file` (`$6$` salted SHA-512 and `$7$`
//!   PBKDF2-SHA512 lines, as `mosquitto_passwd` writes them) and the slow, constant-time
//!   password check.
//! - [`passwd_cmd`]: `ringmq passwd`, `mosquitto_passwd`'s twin, which also writes SCRAM
//!   credential files (`--scram`).
//! - [`acl`]: Mosquitto's `acl_file` (`topic`, `user`, `pattern` lines) and the rules it
//!   compiles for one client, with Mosquitto 2.0's rule semantics.
//! - [`client_acl`]: one client's rules and the checks made with them: PUBLISH, delivery
//!   and SUBSCRIBE (refused, granted, or granted with each delivery checked).
//! - [`filter_set`]: topic filters as sets of topics (does one cover another, do two
//!   intersect), so that a SUBSCRIBE is judged against the ACL once for all its topics.
//! - [`scram_file`]: SCRAM-SHA-256 credentials (salt, iterations, StoredKey, ServerKey)
//!   and ringmq's file of them.
//! - [`scram`]: the server side of SCRAM-SHA-256 for MQTT 5 enhanced authentication, a
//!   state machine from the client's Authentication Data to the server's.
//! - [`scram_client`]: the client side, for tests and tools.

pub mod acl;
pub mod client_acl;
pub mod filter_set;
mod lines;
#[cfg(test)]
mod mosquitto_interop_tests;
pub mod passwd_cmd;
pub mod password;
mod prompt;
pub mod scram;
pub mod scram_client;
pub mod scram_file;
