//! The ids a shard hands out: stable `u32` slots in its tables ([`super::slab::Slab`]).

/// A connection's slot in its shard's connection table.
pub type ConnId = u32;

/// A session's slot in its shard's session table; the trie stores these.
pub type SessionId = u32;
