//! Client ids are unique in the process. The registry entry of a client id lives on its
//! home shard (a hash of the id); a CONNECT on any shard registers there and waits for
//! the answer, which is a session handed over from wherever the id was held, or none.

use super::connections::ConnId;
use super::messages::ConnectToken;
use super::sessions::SessionId;
use crate::protocol::ByteStr;
use std::collections::HashMap;

/// A client id's home shard, where its registry entry lives. FNV-1a: stable across
/// shards and runs, cheap for short ids.
pub fn home_shard(client_id: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client_id.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    (h % shards as u64) as usize
}

/// The shard a token's CONNECT arrived on.
pub fn token_shard(token: ConnectToken) -> usize {
    (token >> 48) as usize
}

/// The home-shard side: which registration owns each client id homed here.
#[derive(Default)]
pub struct Registry {
    owners: HashMap<ByteStr, ConnectToken>,
}

impl Registry {
    /// Registers `token` as the owner of `client_id`; returns the registration it
    /// replaces, whose session is to be taken over.
    pub fn register(&mut self, client_id: ByteStr, token: ConnectToken) -> Option<ConnectToken> {
        self.owners.insert(client_id, token)
    }

    /// A registration ended; forgotten unless a newer one replaced it.
    pub fn unregister(&mut self, client_id: &str, token: ConnectToken) {
        if self.owners.get(client_id) == Some(&token) {
            self.owners.remove(client_id);
        }
    }
}

/// A takeover of a registration: the session of `client_id` held under `holder` goes to
/// the CONNECT registered as `token` on shard `to`.
pub struct PendingTakeover {
    pub client_id: ByteStr,
    pub holder: ConnectToken,
    pub to: u16,
    pub token: ConnectToken,
    pub clean_start: bool,
}

/// A CONNECT waiting for its client id's home shard to answer.
struct PendingConnect {
    conn: ConnId,
    /// The answer, once it came: the resumed session (installed here, offline) or none.
    answer: Option<Option<SessionId>>,
}

/// The connecting side: this shard's CONNECTs waiting for their home shard.
pub struct PendingConnects {
    shard: u16,
    next_token: u64,
    pending: HashMap<ConnectToken, PendingConnect>,
    /// Tokens whose answer came, for the event loop to complete.
    answered: Vec<ConnectToken>,
    /// Takeovers of CONNECTs still waiting here, to run once each has completed.
    deferred_takeovers: HashMap<ConnectToken, PendingTakeover>,
}

impl PendingConnects {
    pub fn new(shard: u16) -> Self {
        PendingConnects {
            shard,
            next_token: 0,
            pending: HashMap::new(),
            answered: Vec::new(),
            deferred_takeovers: HashMap::new(),
        }
    }

    /// A token unique in the process: this shard in the top 16 bits, a counter below.
    pub fn new_token(&mut self) -> ConnectToken {
        self.next_token += 1;
        ((self.shard as u64) << 48) | self.next_token
    }

    /// Waits for the answer to the CONNECT registered under `token`.
    pub fn wait(&mut self, token: ConnectToken, conn: ConnId) {
        self.pending.insert(token, PendingConnect { conn, answer: None });
    }

    /// The home shard (or the old holder) answered. False when no CONNECT waits for it
    /// (its connection closed meanwhile).
    pub fn answer(&mut self, token: ConnectToken, resumed: Option<SessionId>) -> bool {
        let Some(p) = self.pending.get_mut(&token) else { return false };
        p.answer = Some(resumed);
        self.answered.push(token);
        true
    }

    /// Whether the CONNECT registered as `token` is still waiting to complete here.
    pub fn is_waiting(&self, token: ConnectToken) -> bool {
        self.pending.contains_key(&token)
    }

    /// Keeps a takeover of a CONNECT still waiting here until it has completed.
    pub fn defer_takeover(&mut self, t: PendingTakeover) {
        self.deferred_takeovers.insert(t.holder, t);
    }

    /// The takeover that waited for the CONNECT registered as `token`, now it has completed.
    pub fn take_deferred_takeover(&mut self, token: ConnectToken) -> Option<PendingTakeover> {
        self.deferred_takeovers.remove(&token)
    }

    /// Whether answers wait to be completed.
    pub fn has_answers(&self) -> bool {
        !self.answered.is_empty()
    }

    /// The next answered CONNECT: (connection, resumed session).
    pub fn next_answered(&mut self) -> Option<(ConnId, Option<SessionId>)> {
        while let Some(token) = self.answered.pop() {
            if let Some(PendingConnect { conn, answer: Some(resumed) }) = self.pending.remove(&token) {
                return Some((conn, resumed));
            }
        }
        None
    }
}
