//! Who may connect, and what they may read and write: the pure parts (file formats,
//! rule logic, the SCRAM state machine). Nothing here touches a socket or a shard.
//!
//! # Layout
//!
//! - [`password`]: Mosquitto's `password_file` (`$6$` salted SHA-512 and `$7$`
//!   PBKDF2-SHA512 lines, as `mosquitto_passwd` writes them) and the slow, constant-time
//!   password check.
//! - [`acl`]: Mosquitto's `acl_file` (`topic`, `user`, `pattern` lines) and the rules it
//!   gives one client: publish, read and SUBSCRIBE checks with Mosquitto 2.0's semantics.
//! - [`filter_set`]: topic filters as sets of topics (does one cover another, do two
//!   intersect), so that a SUBSCRIBE is judged against the ACL once for all its topics.

pub mod acl;
pub mod filter_set;
mod lines;
pub mod password;
