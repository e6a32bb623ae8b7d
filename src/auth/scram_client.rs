//! The client side of SCRAM-SHA-256, for tests and tools (the broker is only ever the
//! server): it drives [`ScramServer`](super::scram::ScramServer) in unit tests, and an MQTT
//! 5 client's AUTH exchange in end-to-end tests.
//!
//! ```text
//! let (client, first) = ScramClient::new("alice", b"secret", &random_nonce());
//! // send `first` as CONNECT's Authentication Data, receive server-first
//! let (client, last) = client.server_first(&server_first)?;
//! // send `last` in AUTH, receive server-final
//! client.server_final(&server_final)?;
//! ```

use super::password::constant_time_eq;
use super::scram::{encode_saslname, is_nonce, value, ScramError};
use super::scram_file::{hmac, salted_password, KEY_LEN_BYTES};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The GS2 header this client sends: no channel binding.
const GS2_HEADER: &str = "n,,";

/// Most PBKDF2 iterations the client accepts from a server: a bound on the work a
/// hostile server can make it do.
pub const ITERATIONS_MAX: u32 = 10_000_000;

/// A client that has sent its client-first message (no `Debug`: it holds the password).
pub struct ScramClient {
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
}

impl ScramClient {
    /// Starts an exchange; returns the client and its client-first message.
    /// `client_nonce` is printable ASCII without `,` (`scram::random_nonce()` will do).
    pub fn new(username: &str, password: &[u8], client_nonce: &str) -> (ScramClient, Vec<u8>) {
        assert!(is_nonce(client_nonce), "a client nonce is printable ASCII without ','");
        let client_first_bare = format!("n={},r={client_nonce}", encode_saslname(username));
        let first = format!("{GS2_HEADER}{client_first_bare}").into_bytes();
        let client = ScramClient {
            password: password.to_vec(),
            client_nonce: client_nonce.to_string(),
            client_first_bare,
        };
        (client, first)
    }

    /// Handles the server-first message; returns what checks the server-final and the
    /// client-final message.
    pub fn server_first(self, msg: &[u8]) -> Result<(ScramClientFinal, Vec<u8>), ScramError> {
        let server_first = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let mut attributes = server_first.split(',');
        let mut next =
            |name, what| value(attributes.next().unwrap_or(""), name).ok_or(ScramError::Malformed(what));
        let nonce = next('r', "no r= nonce")?;
        let salt = next('s', "no s= salt")?;
        let iterations = next('i', "no i= iteration count")?;
        if !nonce.starts_with(&self.client_nonce)
            || nonce.len() == self.client_nonce.len()
            || !is_nonce(nonce)
        {
            return Err(ScramError::NonceMismatch);
        }
        let salt = BASE64.decode(salt).map_err(|_| ScramError::Malformed("s= is not base64"))?;
        let iterations = match iterations.parse::<u32>() {
            Ok(n) if (1..=ITERATIONS_MAX).contains(&n) => n,
            _ => return Err(ScramError::Malformed("i= is not a sensible iteration count")),
        };

        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; KEY_LEN_BYTES] = Sha256::digest(client_key).into();
        let without_proof = format!("c={},r={nonce}", BASE64.encode(GS2_HEADER));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(client_signature).map(|(k, s)| k ^ s).collect();
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        let last = format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes();
        Ok((ScramClientFinal { server_signature }, last))
    }
}

/// A client that has sent its client-final message and waits for the server's proof.
#[derive(Debug)]
pub struct ScramClientFinal {
    server_signature: [u8; KEY_LEN_BYTES],
}

impl ScramClientFinal {
    /// Checks the server-final message: the server knew the credentials.
    pub fn server_final(self, msg: &[u8]) -> Result<(), ScramError> {
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(error) = value(msg, 'e') {
            return Err(if error == "invalid-proof" {
                ScramError::InvalidProof
            } else {
                ScramError::Malformed("e=")
            });
        }
        let signature =
            value(msg.split(',').next().unwrap_or(""), 'v').ok_or(ScramError::Malformed("no v="))?;
        let signature = BASE64.decode(signature).map_err(|_| ScramError::Malformed("v= is not base64"))?;
        if constant_time_eq(&signature, &self.server_signature) {
            Ok(())
        } else {
            Err(ScramError::InvalidServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_server_nonce_that_drops_the_client_half() {
        let (client, _) = ScramClient::new("user", b"pencil", "abc");
        assert_eq!(client.server_first(b"r=xyz,s=AAAA,i=4096").unwrap_err(), ScramError::NonceMismatch);
        let (client, _) = ScramClient::new("user", b"pencil", "abc");
        assert_eq!(client.server_first(b"r=abc,s=AAAA,i=4096").unwrap_err(), ScramError::NonceMismatch);
    }

    #[test]
    fn refuses_an_absurd_iteration_count() {
        for count in ["0", "10000001", "lots"] {
            let (client, _) = ScramClient::new("user", b"pencil", "abc");
            let msg = format!("r=abcdef,s=AAAA,i={count}");
            assert!(matches!(client.server_first(msg.as_bytes()), Err(ScramError::Malformed(_))), "{count}");
        }
    }

    #[test]
    fn reports_a_server_error_and_a_forged_signature() {
        let (client, _) = ScramClient::new("user", b"pencil", "abc");
        let (last, _) = client.server_first(b"r=abcdef,s=AAAA,i=1").unwrap();
        assert_eq!(last.server_final(b"e=invalid-proof"), Err(ScramError::InvalidProof));
        let (client, _) = ScramClient::new("user", b"pencil", "abc");
        let (last, _) = client.server_first(b"r=abcdef,s=AAAA,i=1").unwrap();
        let forged = format!("v={}", BASE64.encode([0u8; KEY_LEN_BYTES]));
        assert_eq!(last.server_final(forged.as_bytes()), Err(ScramError::InvalidServerSignature));
    }
}
