//! Who may connect and what they may read and write, as the shards see it: the password,
//! ACL and SCRAM files of each listener, loaded once and shared, behind a handle that a
//! reload swaps without a restart.
//!
//! A shard holds the `Arc<AccessControl>` it last took from the [`AccessHandle`] and
//! checks the handle's generation once per turn (one relaxed load), so a reload reaches
//! every shard within a turn and costs nothing otherwise.

use crate::auth::acl::{AclFile, ClientAcl, SubscribeAccess};
use crate::auth::password::{PasswordFile, PasswordHash};
use crate::auth::scram_file::ScramFile;
use crate::config::{Config, SecurityOptions};
use crate::protocol::ByteStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The access control of one listener (or of all, without `per_listener_settings`).
pub struct ListenerAccess {
    pub allow_anonymous: bool,
    /// Mosquitto's `use_username_as_clientid`.
    pub use_username_as_clientid: bool,
    passwords: Option<PasswordFile>,
    acl: Option<Arc<AclFile>>,
    scram: Option<Arc<ScramFile>>,
}

/// What checking a CONNECT's user name and password needs to do.
pub enum Credentials {
    /// Let it in: no password file, and a user name or anonymous clients allowed.
    Accept,
    /// Refuse it: anonymous where that is not allowed, an unknown user, or no password.
    Refuse,
    /// Compare the password with this hash: slow on purpose (PBKDF2), so off the loop.
    Verify(PasswordHash),
}

impl ListenerAccess {
    fn load(options: &SecurityOptions, allow_anonymous: bool, errors: &mut Vec<String>) -> Self {
        let passwords = options.password_file.as_deref().and_then(|p| collect(PasswordFile::load(p), errors));
        let acl = options.acl_file.as_deref().and_then(|p| collect(AclFile::load(p), errors)).map(Arc::new);
        let scram =
            options.scram_file.as_deref().and_then(|p| collect(ScramFile::load(p), errors)).map(Arc::new);
        let use_username_as_clientid = options.use_username_as_clientid;
        ListenerAccess { allow_anonymous, use_username_as_clientid, passwords, acl, scram }
    }

    /// Mosquitto 2's order: a client without a user name needs `allow_anonymous`; with
    /// one and a password file, the file decides; with one and no file, it is let in
    /// (Mosquitto's behaviour: the user name alone proves nothing, and nothing checks it).
    pub fn credentials(&self, username: Option<&str>, password: Option<&[u8]>) -> Credentials {
        let Some(user) = username else {
            return if self.allow_anonymous { Credentials::Accept } else { Credentials::Refuse };
        };
        let Some(file) = &self.passwords else { return Credentials::Accept };
        match (file.lookup(user), password) {
            (Some(hash), Some(_)) => Credentials::Verify(hash.clone()),
            _ => Credentials::Refuse,
        }
    }

    /// The rules one client is held to; `None` when no ACL file applies (everything is
    /// allowed, as in Mosquitto without one).
    pub fn acl_for(&self, username: Option<&str>, client_id: &str) -> Option<ClientAcl> {
        self.acl.as_ref().map(|acl| acl.for_client(username, client_id))
    }

    /// The SCRAM-SHA-256 credentials, when this listener offers enhanced authentication.
    pub fn scram(&self) -> Option<&Arc<ScramFile>> {
        self.scram.as_ref()
    }
}

fn collect<T>(loaded: Result<T, Vec<String>>, errors: &mut Vec<String>) -> Option<T> {
    loaded.map_err(|e| errors.extend(e)).ok()
}

/// The access control of every listener, indexed as [`Config::bind_listeners`].
pub struct AccessControl {
    listeners: Vec<Arc<ListenerAccess>>,
}

impl AccessControl {
    /// Loads every file the configuration names; all their errors at once (each
    /// `file:line: message`), so that a broker with a bad file does not start and a
    /// reload with one keeps the files it has.
    pub fn load(config: &Config) -> Result<AccessControl, Vec<String>> {
        let mut errors = Vec::new();
        // Without per_listener_settings every listener shares one copy of the files.
        let global =
            Arc::new(ListenerAccess::load(&config.security, config.allow_anonymous_on(0), &mut errors));
        let count = config.listeners.len().max(1);
        let listeners = (0..count)
            .map(|i| match config.listeners.get(i) {
                Some(l) if config.per_listener_settings => {
                    Arc::new(ListenerAccess::load(&l.security, config.allow_anonymous_on(i), &mut errors))
                }
                _ => global.clone(),
            })
            .collect();
        if errors.is_empty() {
            Ok(AccessControl { listeners })
        } else {
            Err(errors)
        }
    }

    /// The access control of listener `index`.
    pub fn listener(&self, index: u16) -> &Arc<ListenerAccess> {
        // Listeners added on the command line (`--listen`) come after the file's and share
        // the global options, as the first does without per_listener_settings.
        self.listeners.get(index as usize).unwrap_or(&self.listeners[0])
    }

    /// Whether any listener has a password, ACL or SCRAM file: sessions then keep a
    /// [`ClientAccess`].
    pub fn any_files(&self) -> bool {
        self.listeners.iter().any(|l| l.passwords.is_some() || l.acl.is_some() || l.scram.is_some())
    }
}

/// The broker's current [`AccessControl`], replaced whole by a reload.
pub struct AccessHandle {
    current: Mutex<Arc<AccessControl>>,
    generation: AtomicU64,
}

impl AccessHandle {
    pub fn new(access: AccessControl) -> Self {
        AccessHandle { current: Mutex::new(Arc::new(access)), generation: AtomicU64::new(0) }
    }

    /// Puts `access` in place; shards take it at their next turn.
    pub fn replace(&self, access: AccessControl) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(access);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Changes with every [`AccessHandle::replace`].
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<AccessControl> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One client's rights, kept with its session: who it is, the rules of its ACL, and the
/// answer for the topic it last published to (a publisher usually sends to one topic
/// over and over, so the rules are walked once per topic change, not per message).
///
/// Sessions get one only on a broker with access control files, so a broker without
/// them pays nothing per session; a reload recompiles the rules of every session that
/// has one (see [`AccessControl::any_files`]).
pub struct ClientAccess {
    /// The listener the client connected through: a reload recompiles its rules there.
    pub listener: u16,
    pub username: Option<ByteStr>,
    /// `None`: no ACL file applies, everything is allowed.
    acl: Option<ClientAcl>,
    last_publish: Option<(ByteStr, bool)>,
}

impl ClientAccess {
    pub fn new(listener: u16, username: Option<ByteStr>, acl: Option<ClientAcl>) -> Self {
        ClientAccess { listener, username, acl, last_publish: None }
    }

    /// Whether the client may publish to `topic`.
    pub fn may_publish(&mut self, topic: &ByteStr) -> bool {
        let Some(acl) = &self.acl else { return true };
        if let Some((last, allowed)) = &self.last_publish {
            if last == topic {
                return *allowed;
            }
        }
        let allowed = acl.may_publish(topic);
        self.last_publish = Some((topic.clone(), allowed));
        allowed
    }

    /// Whether a message on `topic` may be delivered to the client.
    pub fn may_read(&self, topic: &str) -> bool {
        self.acl.as_ref().is_none_or(|acl| acl.may_read(topic))
    }

    /// What the ACL says of a subscription to `filter` (the filter proper, without
    /// `$share/group/`).
    pub fn subscribe(&self, filter: &str) -> SubscribeAccess {
        self.acl.as_ref().map_or(SubscribeAccess::Granted, |acl| acl.subscribe(filter))
    }

    /// Puts rules recompiled by a reload in place.
    pub fn replace_acl(&mut self, acl: Option<ClientAcl>) {
        self.acl = acl;
        self.last_publish = None;
    }
}

/// Whether a client with `access` (none: no access control files) may write `topic`,
/// in a PUBLISH or a will. Clients never write under `$SYS/` (the broker's own figures
/// are the only writers there), whatever an ACL says, as Mosquitto refuses it.
pub fn may_write(access: Option<&mut ClientAccess>, topic: &ByteStr) -> bool {
    let reserved_for_broker = topic.starts_with("$SYS/") || &**topic == "$SYS";
    !reserved_for_broker && access.is_none_or(|a| a.may_publish(topic))
}
