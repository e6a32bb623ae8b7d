//! Who may connect, and what they may read and write: the pure parts (file formats,
//! rule logic, the SCRAM state machine). Nothing here touches a socket or a shard.
//!
//! # Layout
//!
//! - [`password`]: Mosquitto's `password_file` (`$6$` salted SHA-512 and `$7$`
//!   PBKDF2-SHA512 lines, as `mosquitto_passwd` writes them) and the slow, constant-time
//!   password check.

mod lines;
pub mod password;
