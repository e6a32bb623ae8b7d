//! CONNECTs between their arrival and their registration: a password being compared on
//! the verifier threads, or a SCRAM exchange waiting for the client's next AUTH; and the
//! SCRAM re-authentications of connected clients (MQTT 5 section 4.12.1).
//!
//! Entries are keyed by connection and carry a ticket, since a connection's slot is
//! reused: an answer for a connection that has gone must not complete its successor.

use super::connack::{self, ConnectDecision};
use super::ids::ConnId;
use super::messages::MeshMsg;
use super::plane::Close;
use super::registry::home_shard;
use super::security::Credentials;
use super::state::{Registration, Shard};
use super::tls::IdentitySource;
use super::verifier::{Verified, VerifyJob};
use crate::auth::scram::{random_nonce, ScramServer};
use crate::protocol::{Auth, ByteStr, ConnAck, Connect, Packet, Properties, ProtocolVersion, ReasonCode};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// The SCRAM method ringmq offers (RFC 7677), as named in Authentication Method.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// A CONNECT whose credentials are being checked.
pub struct PendingLogin {
    pub ticket: u64,
    pub client_id: ByteStr,
    /// The broker chose the client id (MQTT 5 Assigned Client Identifier).
    pub assigned: bool,
    /// The user name the check is for.
    pub username: Option<ByteStr>,
    /// The server side of a SCRAM exchange under way; `None` for a password check.
    pub scram: Option<Box<ScramServer>>,
}

/// This shard's logins in progress.
#[derive(Default)]
pub struct Logins {
    pending: HashMap<ConnId, PendingLogin>,
    /// Connected clients in the middle of a SCRAM re-authentication.
    reauthenticating: HashMap<ConnId, Box<ScramServer>>,
    /// The user names client certificates gave connections still to send CONNECT, on
    /// listeners with `use_identity_as_username` or `use_subject_as_username` (`None`:
    /// the certificate names none).
    tls_identities: HashMap<ConnId, Option<ByteStr>>,
    next_ticket: u64,
}

impl Logins {
    /// A fresh ticket for a new login.
    pub fn new_ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    pub fn insert(&mut self, conn: ConnId, login: PendingLogin) {
        self.pending.insert(conn, login);
    }

    /// Takes the login of `conn` if its ticket is `ticket` (the password check's answer).
    pub fn take_if(&mut self, conn: ConnId, ticket: u64) -> Option<PendingLogin> {
        match self.pending.get(&conn) {
            Some(l) if l.ticket == ticket => self.pending.remove(&conn),
            _ => None,
        }
    }

    /// Takes the login of `conn`, whatever its ticket (the client's AUTH).
    pub fn take(&mut self, conn: ConnId) -> Option<PendingLogin> {
        self.pending.remove(&conn)
    }

    pub fn start_reauthentication(&mut self, conn: ConnId, scram: Box<ScramServer>) {
        self.reauthenticating.insert(conn, scram);
    }

    pub fn take_reauthentication(&mut self, conn: ConnId) -> Option<Box<ScramServer>> {
        self.reauthenticating.remove(&conn)
    }

    /// The connection has gone: whatever it was in the middle of is dropped.
    pub fn forget(&mut self, conn: ConnId) {
        self.pending.remove(&conn);
        self.reauthenticating.remove(&conn);
        self.tls_identities.remove(&conn);
    }
}

/// Who a CONNECT proved to be, once its credentials are checked.
pub struct Identity {
    pub client_id: ByteStr,
    pub assigned: bool,
    pub username: Option<ByteStr>,
    /// The SCRAM server-final-message, for the CONNACK.
    pub scram_final: Option<Bytes>,
}

/// Where a CONNECT stands after a step of its login.
pub enum ConnectStep {
    /// Refused: the CONNACK saying why is queued and the connection closing.
    Refused,
    /// Waiting for the password check's answer (`exchange` false), or for the client's
    /// next AUTH packet (`exchange` true).
    Waiting { exchange: bool },
    /// Registered at its client id's home shard.
    Registered(Registration),
}

impl Shard {
    /// Checks a CONNECT against the rules that need no other shard: the client id and
    /// the configuration's limits. `None` when it was refused (the CONNACK saying why is
    /// queued and the connection closing).
    pub(super) fn check_connect(&mut self, conn: ConnId, connect: &Connect) -> Option<(ByteStr, bool)> {
        let cfg = &self.plane.config;
        let count = self.plane.shared.connections.load(Ordering::Relaxed);
        let decision = if cfg.max_connections.is_some_and(|m| count > m) {
            ConnectDecision::Refuse(ReasonCode::SERVER_UNAVAILABLE)
        } else {
            let (shard, token) = (self.plane.id, &mut self.connects);
            connack::check_connect(cfg, connect, || {
                format!("auto-{:04x}-{:012x}", shard, token.new_token() & 0xFFFF_FFFF_FFFF)
            })
        };
        match decision {
            // A refusal is a CONNACK too: not sent when it does not fit either.
            ConnectDecision::Refuse(code) if !connack::refusal_fits(connect, code) => {
                self.drop_connect(conn);
                None
            }
            ConnectDecision::Refuse(reason) => {
                self.refuse_connect(conn, connect.version, reason);
                None
            }
            ConnectDecision::Register { client_id, assigned }
                if !self.connack_fits(connect, assigned.then_some(&client_id)) =>
            {
                self.drop_connect(conn);
                None
            }
            ConnectDecision::Register { client_id, assigned } => Some((client_id, assigned)),
        }
    }

    /// Registers an authenticated CONNECT's client id at its home shard.
    pub(super) fn register(&mut self, conn: ConnId, connect: &Connect, identity: Identity) -> Registration {
        let Identity { client_id, assigned, username, scram_final } = identity;
        let token = self.connects.new_token();
        self.connects.wait(token, conn);
        let home = home_shard(&client_id, self.plane.outbox.shards());
        let (from, clean_start) = (self.plane.id, connect.clean_start);
        self.plane
            .outbox
            .send(home, MeshMsg::Register { client_id: client_id.clone(), from, token, clean_start });
        Registration { client_id, assigned, token, username, scram_final }
    }

    /// Whether the CONNACK that accepts this CONNECT fits the client's Maximum Packet
    /// Size: the server must not send a packet larger than that (5.0 [MQTT-3.1.2-24]).
    /// Asked before the client id is registered, so a client that could not be told it is
    /// connected takes no session over.
    fn connack_fits(&self, connect: &Connect, assigned: Option<&ByteStr>) -> bool {
        if connect.properties.as_ref().and_then(|p| p.maximum_packet_size).is_none() {
            return true;
        }
        let limits = self.plane.sessions.limits();
        let properties = connack::connack_properties(&self.plane.config, &limits, connect, assigned);
        let ack = ConnAck { session_present: true, code: ReasonCode::SUCCESS, properties };
        connack::fits_client(connect, ack)
    }

    /// Closes a connection whose CONNACK would not fit its client's Maximum Packet Size,
    /// sending nothing: no CONNACK, and no DISCONNECT, which may only follow a CONNACK
    /// (5.0 [MQTT-3.14.0-1]). Mosquitto closes it so too.
    fn drop_connect(&mut self, conn: ConnId) {
        if let Some(c) = self.plane.conns.get(conn) {
            crate::log!(
                Information,
                "Client connection from {} closed: CONNACK larger than its Maximum Packet Size.",
                c.peer
            );
        }
        self.plane.conns.close(conn, None, "");
    }

    /// Writes a refusing CONNACK and marks the connection for closing.
    pub fn refuse_connect(&mut self, conn: ConnId, version: ProtocolVersion, reason: ReasonCode) {
        if let Some(c) = self.plane.conns.get_mut(conn) {
            Packet::ConnAck(ConnAck { session_present: false, code: reason, properties: None })
                .encode(version, &mut c.out);
            // Mosquitto's line, with the code that went on the wire (a 3.x return code,
            // or the MQTT 5 reason).
            let code = if version.is_v5() { reason.0 } else { reason.to_v3_connack() };
            crate::log!(Debug, "Sending CONNACK to {} (0, {})", c.peer.ip(), code);
        }
        self.plane.conns.close(conn, None, "");
    }

    /// A CONNECT has arrived: check it, then its credentials (at once, on the verifier
    /// threads, or by a SCRAM exchange), then register it.
    pub fn begin_connect(&mut self, conn: ConnId, connect: &Connect) -> ConnectStep {
        let Some((client_id, assigned)) = self.check_connect(conn, connect) else {
            return ConnectStep::Refused;
        };
        let listener = self.plane.conns.get(conn).map_or(0, |c| c.listener);
        let access = self.access.listener(listener).clone();
        let v = connect.version;
        if self.plane.shared.tls.identity_source(listener) != IdentitySource::Connect {
            return self.connect_as_tls_identity(conn, connect, client_id, assigned);
        }
        let props = connect.properties.as_deref();
        if let Some(method) = props.and_then(|p| p.authentication_method.as_ref()) {
            // Enhanced authentication (MQTT 5 section 4.12): SCRAM-SHA-256 where the
            // listener has credentials for it; any other method is refused with 0x8C.
            let Some(scram) = access.scram().filter(|_| &**method == SCRAM_SHA_256) else {
                crate::log!(
                    Notice,
                    "Client {} refused: unsupported authentication method '{}'.",
                    client_id,
                    method
                );
                self.refuse_connect(conn, v, ReasonCode::BAD_AUTHENTICATION_METHOD);
                return ConnectStep::Refused;
            };
            let data = props.and_then(|p| p.authentication_data.clone()).unwrap_or_default();
            return match ScramServer::client_first(scram, &data, &random_nonce()) {
                Ok((server, first)) => {
                    self.send_auth(conn, ReasonCode::CONTINUE_AUTHENTICATION, first);
                    let ticket = self.logins.new_ticket();
                    let scram = Some(Box::new(server));
                    self.logins
                        .insert(conn, PendingLogin { ticket, client_id, assigned, username: None, scram });
                    ConnectStep::Waiting { exchange: true }
                }
                Err(e) => {
                    crate::log!(Notice, "Client {} SCRAM authentication failed: {}.", client_id, e);
                    self.refuse_not_authorised(conn, v)
                }
            };
        }
        let username = connect.username.as_deref().map(ByteStr::from);
        match access.credentials(username.as_deref(), connect.password.as_deref()) {
            Credentials::Accept => {
                let identity = Identity { client_id, assigned, username, scram_final: None };
                self.admit(conn, connect, identity)
            }
            Credentials::Refuse => self.refuse_not_authorised(conn, v),
            Credentials::Verify(hash) => {
                let ticket = self.logins.new_ticket();
                // A copy: the password must not keep the receive buffer it came in alive.
                let password = Bytes::copy_from_slice(connect.password.as_deref().unwrap_or_default());
                let job = VerifyJob { shard: self.id(), conn, ticket, hash, password };
                if !self.plane.shared.verifier.submit(job) {
                    crate::log!(Warning, "Warning: password checks are backed up; refusing {}.", client_id);
                    self.refuse_connect(conn, v, ReasonCode::SERVER_UNAVAILABLE);
                    return ConnectStep::Refused;
                }
                self.logins.insert(conn, PendingLogin { ticket, client_id, assigned, username, scram: None });
                ConnectStep::Waiting { exchange: false }
            }
        }
    }

    /// The user name a client certificate gave `conn` (see [`TlsLayer`]), for its CONNECT.
    ///
    /// [`TlsLayer`]: super::tls::TlsLayer
    pub fn set_tls_identity(&mut self, conn: ConnId, username: Option<ByteStr>) {
        self.logins.tls_identities.insert(conn, username);
    }

    /// A CONNECT on a listener whose user names come from client certificates: the
    /// certificate's name replaces the CONNECT's, and no password is checked (the
    /// certificate proved it), as Mosquitto does; no name refuses it.
    fn connect_as_tls_identity(
        &mut self,
        conn: ConnId,
        connect: &Connect,
        client_id: ByteStr,
        assigned: bool,
    ) -> ConnectStep {
        let Some(username) = self.logins.tls_identities.remove(&conn).flatten() else {
            crate::log!(Notice, "Client {} refused: its certificate gives no user name.", client_id);
            return self.refuse_not_authorised(conn, connect.version);
        };
        let identity = Identity { client_id, assigned, username: Some(username), scram_final: None };
        self.admit(conn, connect, identity)
    }

    /// The next password check answered for this shard (the connection may have gone:
    /// [`Shard::after_verified`] tells).
    pub fn next_verified(&mut self) -> Option<Verified> {
        self.plane.shared.verifier.next_answer(self.id())
    }

    /// Whether password checks have answered (checked before the shard sleeps).
    pub fn has_verified(&self) -> bool {
        self.plane.shared.verifier.has_answers(self.id())
    }

    /// A password check answered for `conn`'s CONNECT; `None` when the answer is for a
    /// connection that has gone (its slot may hold another one by now).
    pub fn after_verified(&mut self, conn: ConnId, connect: &Connect, v: Verified) -> Option<ConnectStep> {
        let login = self.logins.take_if(conn, v.ticket)?;
        if !v.ok {
            return Some(self.refuse_not_authorised(conn, connect.version));
        }
        let PendingLogin { client_id, assigned, username, .. } = login;
        let identity = Identity { client_id, assigned, username, scram_final: None };
        Some(self.admit(conn, connect, identity))
    }

    /// The client's AUTH in a SCRAM exchange at CONNECT (its client-final-message).
    pub fn continue_exchange(&mut self, conn: ConnId, connect: &Connect, auth: Auth) -> ConnectStep {
        let v = connect.version;
        let Some(PendingLogin { client_id, assigned, scram: Some(server), .. }) = self.logins.take(conn)
        else {
            return self.refuse_not_authorised(conn, v);
        };
        // The client continues (0x18) with the method it started with (MQTT 5 section
        // 4.12: [MQTT-4.12.0-5] the same Authentication Method throughout).
        if auth.reason != ReasonCode::CONTINUE_AUTHENTICATION || !is_scram(&auth) {
            crate::log!(
                Notice,
                "Client {} sent an AUTH that does not continue its SCRAM exchange.",
                client_id
            );
            self.refuse_connect(conn, v, ReasonCode::PROTOCOL_ERROR);
            return ConnectStep::Refused;
        }
        let data = auth.properties.as_ref().and_then(|p| p.authentication_data.clone()).unwrap_or_default();
        match server.client_final(&data) {
            Ok((last, user)) => {
                let username = Some(ByteStr::from(user.as_str()));
                let identity =
                    Identity { client_id, assigned, username, scram_final: Some(Bytes::from(last)) };
                self.admit(conn, connect, identity)
            }
            Err(e) => {
                crate::log!(Notice, "Client {} SCRAM authentication failed: {}.", client_id, e);
                self.refuse_not_authorised(conn, v)
            }
        }
    }

    /// An AUTH from a connected client that authenticated with SCRAM: a
    /// re-authentication (MQTT 5 section 4.12.1), which must prove the same user.
    pub(super) fn reauthenticate(&mut self, conn: ConnId, auth: Auth) -> Result<(), Close> {
        // [MQTT-4.12.1-1]: the method originally used to authenticate.
        if !is_scram(&auth) {
            return Err(Close::protocol_error(
                ReasonCode::PROTOCOL_ERROR,
                "AUTH with another authentication method",
            ));
        }
        let refused = Close::protocol_error(ReasonCode::NOT_AUTHORIZED, "re-authentication failed");
        let data = auth.properties.as_ref().and_then(|p| p.authentication_data.clone()).unwrap_or_default();
        match auth.reason {
            ReasonCode::RE_AUTHENTICATE => {
                let listener = self.plane.conns.get(conn).map_or(0, |c| c.listener);
                let access = self.access.listener(listener).clone();
                let scram = access.scram().ok_or(refused)?;
                let (server, first) =
                    ScramServer::client_first(scram, &data, &random_nonce()).map_err(|_| refused)?;
                self.logins.start_reauthentication(conn, Box::new(server));
                self.send_auth(conn, ReasonCode::CONTINUE_AUTHENTICATION, first);
            }
            ReasonCode::CONTINUE_AUTHENTICATION => {
                let server = self.logins.take_reauthentication(conn).ok_or(Close::protocol_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "AUTH continues no re-authentication",
                ))?;
                let (last, user) = server.client_final(&data).map_err(|_| refused)?;
                // Another user than the one connected is a failure too: the session's
                // rights were granted to the first.
                let sid = self.plane.conns.get(conn).and_then(|c| c.session);
                let same = sid
                    .and_then(|sid| self.plane.sessions.get(sid))
                    .and_then(|e| e.access.as_deref())
                    .is_some_and(|a| a.username.as_deref() == Some(user.as_str()));
                if !same {
                    return Err(refused);
                }
                self.send_auth(conn, ReasonCode::SUCCESS, last);
            }
            _ => {
                return Err(Close::protocol_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "AUTH with a reason a client may not send",
                ))
            }
        }
        Ok(())
    }

    /// Registers a client whose credentials passed. With `use_username_as_clientid` its
    /// user name becomes its client id (so one user holds one session), and a client
    /// without a user name is refused, as Mosquitto does.
    fn admit(&mut self, conn: ConnId, connect: &Connect, mut identity: Identity) -> ConnectStep {
        let listener = self.plane.conns.get(conn).map_or(0, |c| c.listener);
        if self.access.listener(listener).use_username_as_clientid {
            let Some(user) = identity.username.clone() else {
                return self.refuse_not_authorised(conn, connect.version);
            };
            identity.client_id = user;
            identity.assigned = false;
        }
        ConnectStep::Registered(self.register(conn, connect, identity))
    }

    /// Writes an AUTH packet with SCRAM data.
    fn send_auth(&mut self, conn: ConnId, reason: ReasonCode, data: Vec<u8>) {
        let Some(c) = self.plane.conns.get_mut(conn) else { return };
        let properties = Properties {
            authentication_method: Some(ByteStr::from(SCRAM_SHA_256)),
            authentication_data: Some(Bytes::from(data)),
            ..Default::default()
        };
        Packet::Auth(Auth { reason, properties: Some(Box::new(properties)) })
            .encode(ProtocolVersion::V5, &mut c.out);
        self.plane.conns.wake_writer(conn);
    }

    /// Refuses a CONNECT whose credentials failed, as Mosquitto 2.0 does: CONNACK 5 at
    /// 3.1/3.1.1, 0x87 (Not authorized) at 5.0, for a wrong password, an unknown user and
    /// a refused anonymous client alike (telling them apart would tell an attacker which
    /// user names exist).
    fn refuse_not_authorised(&mut self, conn: ConnId, version: ProtocolVersion) -> ConnectStep {
        self.refuse_connect(conn, version, ReasonCode::NOT_AUTHORIZED);
        crate::log!(Notice, "Client <unknown> disconnected, not authorised.");
        ConnectStep::Refused
    }

    /// A reload replaced the password and ACL files: take them, and apply the new rules
    /// to the sessions here.
    pub(super) fn reload_access(&mut self) {
        self.access = self.plane.shared.access.current();
        self.plane.sessions.recompile_access(&self.access);
        self.plane.rejudge_subscriptions();
    }
}

fn is_scram(auth: &Auth) -> bool {
    auth.properties.as_ref().and_then(|p| p.authentication_method.as_deref()) == Some(SCRAM_SHA_256)
}
