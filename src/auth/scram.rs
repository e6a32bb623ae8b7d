//! The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) for MQTT 5 enhanced
//! authentication, as a state machine with no I/O: bytes of the client's Authentication
//! Data in, bytes of the server's out.
//!
//! ```text
//! CONNECT/AUTH  client-first  "n,,n=user,r=<client nonce>"
//!   ScramServer::client_first ──> server-first "r=<client nonce><server nonce>,s=<salt>,i=<n>"
//! AUTH          client-final  "c=biws,r=<nonce>,p=<ClientProof>"
//!   ScramServer::client_final ──> server-final "v=<ServerSignature>", and the user name
//! ```
//!
//! The same exchange serves a re-authentication (AUTH with reason 0x19): a new
//! `ScramServer` per exchange. Channel binding is not offered: the client's GS2 header must
//! be `n,,` (no binding) or `y,,` (the client could bind but believes the server cannot,
//! which is true); `p=` and an authorization identity (`a=`) are refused. User names and
//! passwords are compared as bytes, without SASLprep (the same for ASCII).

use super::password::constant_time_eq;
use super::scram_file::{hmac, ScramCredentials, ScramFile, KEY_LEN_BYTES};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Random bytes in a server nonce; base64 makes them 24 printable characters.
pub const SERVER_NONCE_LEN_BYTES: usize = 18;

/// Why an exchange failed. On the wire every failure is the same CONNACK or DISCONNECT
/// (Not authorized / Bad authentication method); the variants are for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message does not follow RFC 5802's grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding (`p=`), which is not offered.
    #[error("channel binding is not supported")]
    ChannelBindingUnsupported,
    /// An authorization identity (`a=`) or a mandatory extension (`m=`).
    #[error("unsupported SCRAM feature: {0}")]
    Unsupported(&'static str),
    /// The client-final's `c=` is not the GS2 header of the client-first.
    #[error("channel binding data does not match")]
    ChannelBindingMismatch,
    /// The client-final's nonce is not the one the server sent.
    #[error("nonce does not match")]
    NonceMismatch,
    /// The credentials file does not name the user (found only after the proof, so that
    /// the exchange looks the same as a wrong password's).
    #[error("unknown user")]
    UnknownUser,
    /// The proof is wrong: the wrong password.
    #[error("invalid proof")]
    InvalidProof,
    /// The server's signature is wrong (a client-side check: the server does not know
    /// the password).
    #[error("invalid server signature")]
    InvalidServerSignature,
}

impl ScramError {
    /// The RFC 5802 `server-error` message for a server-final that reports this failure;
    /// an unknown user reads as a wrong password.
    pub fn server_final(&self) -> Vec<u8> {
        let value = match self {
            ScramError::ChannelBindingUnsupported => "channel-binding-not-supported",
            ScramError::ChannelBindingMismatch => "channel-bindings-dont-match",
            ScramError::Unsupported(_) => "extensions-not-supported",
            ScramError::UnknownUser | ScramError::InvalidProof => "invalid-proof",
            _ => "other-error",
        };
        format!("e={value}").into_bytes()
    }
}

/// A server nonce from the kernel's random source (the `server_nonce` of
/// [`ScramServer::client_first`]).
pub fn random_nonce() -> String {
    let mut bytes = [0; SERVER_NONCE_LEN_BYTES];
    getrandom::getrandom(&mut bytes).expect("the kernel's random source is unavailable");
    BASE64.encode(bytes)
}

/// An exchange waiting for the client-final message.
#[derive(Debug)]
pub struct ScramServer {
    username: String,
    known: bool,
    credentials: ScramCredentials,
    gs2_header: String,
    nonce: String,
    /// `client-first-message-bare "," server-first-message`: the start of AuthMessage.
    auth_message_start: String,
}

impl ScramServer {
    /// Handles the client-first message; `server_nonce` is the server's half of the nonce
    /// (printable ASCII without `,`; [`random_nonce`] in the broker, fixed in tests).
    /// Returns the exchange and the server-first message.
    pub fn client_first(
        file: &ScramFile,
        msg: &[u8],
        server_nonce: &str,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        assert!(is_nonce(server_nonce), "a server nonce is printable ASCII without ','");
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (gs2_header, bare) = split_gs2_header(msg)?;
        let mut attributes = bare.split(',');
        let mut first = attributes.next().unwrap_or("");
        if first.starts_with("m=") {
            return Err(ScramError::Unsupported("mandatory extension"));
        }
        let username = decode_saslname(value(first, 'n').ok_or(ScramError::Malformed("no n= user name"))?)?;
        first = attributes.next().unwrap_or("");
        let client_nonce = value(first, 'r').ok_or(ScramError::Malformed("no r= nonce"))?;
        if !is_nonce(client_nonce) {
            return Err(ScramError::Malformed("nonce is not printable"));
        }
        let (known, credentials) = match file.lookup(&username) {
            Some(credentials) => (true, credentials.clone()),
            None => (false, file.mock(&username)),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first =
            format!("r={nonce},s={},i={}", BASE64.encode(&credentials.salt), credentials.iterations);
        let auth_message_start = format!("{bare},{server_first}");
        let server = ScramServer {
            username,
            known,
            credentials,
            gs2_header: gs2_header.to_string(),
            nonce,
            auth_message_start,
        };
        Ok((server, server_first.into_bytes()))
    }

    /// The user name the client-first message named (not yet authenticated).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Handles the client-final message: on a valid proof, returns the server-final
    /// message and the authenticated user name.
    pub fn client_final(self, msg: &[u8]) -> Result<(Vec<u8>, String), ScramError> {
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let final_without_proof_len = msg.rfind(",p=").ok_or(ScramError::Malformed("no p= proof"))?;
        let (without_proof, proof) = (&msg[..final_without_proof_len], &msg[final_without_proof_len + 3..]);
        let mut attributes = without_proof.split(',');
        let binding =
            value(attributes.next().unwrap_or(""), 'c').ok_or(ScramError::Malformed("no c= binding"))?;
        let binding = BASE64.decode(binding).map_err(|_| ScramError::Malformed("c= is not base64"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        let nonce =
            value(attributes.next().unwrap_or(""), 'r').ok_or(ScramError::Malformed("no r= nonce"))?;
        if nonce != self.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof = BASE64.decode(proof).map_err(|_| ScramError::Malformed("p= is not base64"))?;
        let proof: [u8; KEY_LEN_BYTES] = proof.try_into().map_err(|_| ScramError::Malformed("p= length"))?;

        let auth_message = format!("{},{without_proof}", self.auth_message_start);
        let client_signature = hmac(&self.credentials.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(client_signature).map(|(p, s)| p ^ s).collect();
        let proven = constant_time_eq(&Sha256::digest(&client_key), &self.credentials.stored_key);
        if !self.known {
            return Err(ScramError::UnknownUser);
        }
        if !proven {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac(&self.credentials.server_key, auth_message.as_bytes());
        Ok((format!("v={}", BASE64.encode(server_signature)).into_bytes(), self.username))
    }
}

/// Splits `gs2-header` from `client-first-message-bare`, refusing what is not offered.
fn split_gs2_header(msg: &str) -> Result<(&str, &str), ScramError> {
    let flag_end = msg.find(',').ok_or(ScramError::Malformed("no GS2 header"))?;
    match &msg[..flag_end] {
        "n" | "y" => {}
        flag if flag.starts_with("p=") => return Err(ScramError::ChannelBindingUnsupported),
        _ => return Err(ScramError::Malformed("GS2 flag is not n, y or p=")),
    }
    let authzid_end =
        flag_end + 1 + msg[flag_end + 1..].find(',').ok_or(ScramError::Malformed("no GS2 header"))?;
    if authzid_end != flag_end + 1 {
        return Err(ScramError::Unsupported("authorization identity"));
    }
    Ok((&msg[..=authzid_end], &msg[authzid_end + 1..]))
}

/// The value of attribute `name` (`name=value`), if `attribute` is that attribute.
pub(crate) fn value(attribute: &str, name: char) -> Option<&str> {
    let mut chars = attribute.chars();
    (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &attribute[2..])
}

/// RFC 5802 `printable`: `%x21-2B / %x2D-7E`.
pub(crate) fn is_nonce(nonce: &str) -> bool {
    !nonce.is_empty() && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Decodes a `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    if name.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad '=' escape in user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Encodes a user name as a `saslname` (the inverse of the server's decoding).
pub(crate) fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram_client::ScramClient;
    use crate::auth::scram_file::format_line;
    use std::path::Path;

    // RFC 7677 section 3: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc7677_file() -> ScramFile {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let line = format_line("user", &ScramCredentials::derive(b"pencil", &salt, 4096));
        ScramFile::parse(line.as_bytes(), Path::new("scram")).unwrap()
    }

    #[test]
    fn server_follows_the_rfc_7677_example() {
        let file = rfc7677_file();
        let (server, server_first) =
            ScramServer::client_first(&file, CLIENT_FIRST.as_bytes(), SERVER_NONCE).unwrap();
        assert_eq!(std::str::from_utf8(&server_first).unwrap(), SERVER_FIRST);
        assert_eq!(server.username(), "user");
        let (server_final, user) = server.client_final(CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(std::str::from_utf8(&server_final).unwrap(), SERVER_FINAL);
        assert_eq!(user, "user");
    }

    #[test]
    fn client_follows_the_rfc_7677_example() {
        let (client, client_first) = ScramClient::new("user", b"pencil", CLIENT_NONCE);
        assert_eq!(std::str::from_utf8(&client_first).unwrap(), CLIENT_FIRST);
        let (client, client_final) = client.server_first(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(std::str::from_utf8(&client_final).unwrap(), CLIENT_FINAL);
        client.server_final(SERVER_FINAL.as_bytes()).unwrap();
    }

    fn round_trip(file: &ScramFile, user: &str, password: &[u8]) -> Result<String, ScramError> {
        let (client, client_first) = ScramClient::new(user, password, &random_nonce());
        let (server, server_first) = ScramServer::client_first(file, &client_first, &random_nonce())?;
        let (client, client_final) = client.server_first(&server_first)?;
        let (server_final, user) = server.client_final(&client_final)?;
        client.server_final(&server_final)?;
        Ok(user)
    }

    #[test]
    fn round_trips_with_random_nonces_and_escaped_names() {
        let text = [("alice", "wonder"), ("a,b=c", "odd name")]
            .map(|(user, pw)| format_line(user, &ScramCredentials::new(pw.as_bytes(), 4096)))
            .concat();
        let file = ScramFile::parse(text.as_bytes(), Path::new("scram")).unwrap();
        assert_eq!(round_trip(&file, "alice", b"wonder").unwrap(), "alice");
        assert_eq!(round_trip(&file, "a,b=c", b"odd name").unwrap(), "a,b=c");
        assert_eq!(round_trip(&file, "alice", b"wrong"), Err(ScramError::InvalidProof));
        assert_eq!(round_trip(&file, "nobody", b"wonder"), Err(ScramError::UnknownUser));
    }

    #[test]
    fn an_unknown_user_gets_a_plausible_server_first() {
        let file = rfc7677_file();
        let first = |user: &str| {
            let msg = format!("n,,n={user},r=abc");
            String::from_utf8(ScramServer::client_first(&file, msg.as_bytes(), "xyz").unwrap().1).unwrap()
        };
        let ghost = first("ghost");
        assert!(ghost.starts_with("r=abcxyz,s=") && ghost.ends_with(",i=4096"), "{ghost}");
        assert_eq!(ghost, first("ghost"), "the same made-up salt each time");
    }

    #[test]
    fn refuses_what_is_not_offered() {
        let file = rfc7677_file();
        let first = |msg: &str| ScramServer::client_first(&file, msg.as_bytes(), "xyz").map(|_| ());
        assert_eq!(first("p=tls-unique,,n=user,r=abc"), Err(ScramError::ChannelBindingUnsupported));
        assert_eq!(first("n,a=admin,n=user,r=abc"), Err(ScramError::Unsupported("authorization identity")));
        assert_eq!(first("n,,m=ext,n=user,r=abc"), Err(ScramError::Unsupported("mandatory extension")));
        assert!(first("y,,n=user,r=abc").is_ok());
        assert!(matches!(first("x,,n=user,r=abc"), Err(ScramError::Malformed(_))));
        assert!(matches!(first("n,,r=abc"), Err(ScramError::Malformed(_))));
        assert!(matches!(first("n,,n=us=er,r=abc"), Err(ScramError::Malformed(_))));
        assert!(matches!(first("n,,n=user,r=a,bc"), Ok(())), "extensions after the nonce are ignored");
        assert!(matches!(first("n,,n=user"), Err(ScramError::Malformed(_))));
        assert!(matches!(first("n,,"), Err(ScramError::Malformed(_))));
        assert!(matches!(first(""), Err(ScramError::Malformed(_))));
    }

    #[test]
    fn refuses_a_client_final_that_does_not_follow_the_first() {
        let file = rfc7677_file();
        let start = || ScramServer::client_first(&file, CLIENT_FIRST.as_bytes(), SERVER_NONCE).unwrap().0;
        let tampered_nonce = CLIENT_FINAL.replace("k0,", "k1,");
        assert_eq!(start().client_final(tampered_nonce.as_bytes()), Err(ScramError::NonceMismatch));
        let tampered_binding = CLIENT_FINAL.replace("c=biws", "c=eSws");
        assert_eq!(
            start().client_final(tampered_binding.as_bytes()),
            Err(ScramError::ChannelBindingMismatch)
        );
        let tampered_proof = CLIENT_FINAL.replace("dHzb", "dHzc");
        assert_eq!(start().client_final(tampered_proof.as_bytes()), Err(ScramError::InvalidProof));
        assert!(matches!(start().client_final(b"c=biws,r=x"), Err(ScramError::Malformed(_))));
        assert!(matches!(start().client_final(b"c=biws,r=x,p=AA=="), Err(ScramError::NonceMismatch)));
    }

    #[test]
    fn saslnames_escape_comma_and_equals() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
        assert!(decode_saslname("a=2").is_err());
    }

    #[test]
    fn failures_map_to_rfc_server_errors() {
        assert_eq!(ScramError::UnknownUser.server_final(), b"e=invalid-proof");
        assert_eq!(ScramError::ChannelBindingUnsupported.server_final(), b"e=channel-binding-not-supported");
    }
}
