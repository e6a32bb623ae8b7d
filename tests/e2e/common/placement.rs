//! Cross-shard coverage, made certain rather than left to chance.
//!
//! The kernel spreads connections over the shards' SO_REUSEPORT sockets by a hash of the
//! 4-tuple, so a test cannot choose where a connection lands. It can find out, though: an
//! MQTT 5 CONNECT with an empty client id gets an Assigned Client Identifier, and ringmq
//! assigns `auto-<shard as 4 hex digits>-<token>`, naming the shard the connection is on.
//! [`one_per_shard`] opens such connections until it holds one on every shard, and
//! [`on_shard`] until one is on the shard asked for. A scenario that puts these on every
//! shard (as publishers, subscribers or will watchers) has, for any placement of the other
//! clients, both a same-shard pair and a cross-shard pair: the assertion does not depend
//! on chance. Both panic when the assigned id does not name a shard, rather than fall
//! back to chance: a cross-shard test must not pass without crossing.
//!
//! Where the clients under test must themselves be of one version (a 3.1.1 publisher and
//! a 3.1.1 subscriber), scenarios also use many of them (8 publishers by 8 subscribers,
//! several persistent clients reconnecting, a dozen takeover ids): the chance that 16
//! connections all land on one of 4 shards is 4 * 4^-16. A client id's home shard, where
//! its registry entry lives, is FNV-1a of the id modulo the shard count; [`ids_covering_homes`]
//! picks ids whose homes cover every shard, so takeovers certainly include remote homes.

use super::{Conn, Raw, SHARDS, V5};
use ringmq::protocol::ConnAck;
use std::net::SocketAddr;

/// How many connections [`one_per_shard`] and [`on_shard`] try before they give up.
const TRIES: usize = 400;

/// The shard ringmq names in an assigned client id (`auto-<shard hex>-<token>`).
pub fn shard_of_assigned_id(id: &str) -> Option<usize> {
    let rest = id.strip_prefix("auto-")?;
    let hex = rest.split('-').next()?;
    usize::from_str_radix(hex, 16).ok().filter(|s| *s < SHARDS)
}

/// The shard an assigned client id names; panics when it names none.
pub fn assigned_shard(id: &str) -> usize {
    shard_of_assigned_id(id).unwrap_or_else(|| {
        panic!(
            "cannot read the shard from the assigned client id {id:?} (expected \
             `auto-<shard as 4 hex digits>-<token>`, shard < {SHARDS}): the cross-shard tests \
             cannot place their connections; update `shard_of_assigned_id` to the broker's format"
        )
    })
}

/// MQTT 5 connections, one on each shard, index = shard (see the file header).
pub fn one_per_shard(addr: SocketAddr) -> Vec<Raw> {
    let mut slots: Vec<Option<Raw>> = (0..SHARDS).map(|_| None).collect();
    for _ in 0..TRIES {
        let raw = Raw::connect_ok(addr, Conn::new("", V5)).0;
        let s = assigned_shard(&raw.client_id);
        if slots[s].is_none() {
            slots[s] = Some(raw);
        }
        if slots.iter().all(Option::is_some) {
            return slots.into_iter().map(Option::unwrap).collect();
        }
    }
    panic!("{TRIES} connections did not cover all {SHARDS} shards");
}

/// Connects `c` (MQTT 5, empty client id) until the Assigned Client Identifier says the
/// connection is on `shard`. Other attempts are closed with DISCONNECT.
pub fn on_shard(addr: SocketAddr, c: Conn, shard: usize) -> (Raw, ConnAck) {
    assert!(c.client_id.is_empty() && c.version.is_v5(), "on_shard needs MQTT 5 and an empty client id");
    for _ in 0..TRIES {
        let (raw, ack) = Raw::connect_ok(addr, c.clone());
        if assigned_shard(&raw.client_id) == shard {
            return (raw, ack);
        }
        raw.disconnect();
    }
    panic!("{TRIES} connections and none on shard {shard}");
}

/// The home shard of a client id: FNV-1a of the id modulo the shard count, as the broker
/// computes it.
pub fn home_shard(client_id: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client_id.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

/// `per_shard` client ids with each home shard, prefixed by `prefix`.
pub fn ids_covering_homes(prefix: &str, per_shard: usize) -> Vec<String> {
    let mut count = [0usize; SHARDS];
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < per_shard * SHARDS {
        let id = format!("{prefix}-{i}");
        let h = home_shard(&id);
        if count[h] < per_shard {
            count[h] += 1;
            out.push(id);
        }
        i += 1;
    }
    out
}

#[test]
fn the_shard_is_read_from_an_assigned_client_id() {
    assert_eq!(shard_of_assigned_id("auto-0003-1a2b"), Some(3));
    assert_eq!(shard_of_assigned_id("auto-0004-1a2b"), None, "only shards below SHARDS");
    assert_eq!(shard_of_assigned_id("client-0001"), None);
}

#[test]
#[should_panic(expected = "cannot read the shard from the assigned client id \"client-0001\"")]
fn placement_fails_loudly_when_the_assigned_client_id_names_no_shard() {
    assigned_shard("client-0001");
}
