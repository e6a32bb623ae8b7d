//! SCRAM-SHA-256 credentials (RFC 5802 section 3, RFC 7677) and the file that holds them.
//!
//! The server never stores a password or anything that logs in by itself: per user it
//! keeps the salt, the iteration count, `StoredKey = SHA-256(ClientKey)` and `ServerKey`,
//! where `SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations)`,
//! `ClientKey = HMAC(SaltedPassword, "Client Key")` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`.
//!
//! The file is ringmq's own, in the password file's line discipline (comments, blank
//! lines and CRLF as Mosquitto treats them there; a second line for a user is an error),
//! one line per user:
//!
//! ```text
//! user:SCRAM-SHA-256$<iterations>$<salt>$<StoredKey>$<ServerKey>
//! ```
//!
//! with the salt and keys in standard base64. `ringmq passwd --scram` writes it.

use super::lines::{self, Line, FIELD_LEN_MAX_BYTES};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// The MQTT 5 Authentication Method this credential serves.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// RFC 7677 section 4: at least 4096 iterations.
pub const ITERATIONS_DEFAULT: u32 = 4096;

/// Salt length for new credentials (RFC 5802 leaves it open; 16 bytes is common).
pub const SALT_LEN_BYTES: usize = 16;

/// Length of a SHA-256 digest, the size of every key.
pub const KEY_LEN_BYTES: usize = 32;

const PREFIX: &str = "SCRAM-SHA-256$";

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA-256 of `data` under `key`.
pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; KEY_LEN_BYTES] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `SaltedPassword` (RFC 5802 section 3, `Hi()`).
pub(crate) fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_LEN_BYTES] {
    pbkdf2::pbkdf2_hmac_array::<Sha256, KEY_LEN_BYTES>(password, salt, iterations)
}

/// What the server keeps for one user.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; KEY_LEN_BYTES],
    pub server_key: [u8; KEY_LEN_BYTES],
}

impl ScramCredentials {
    /// Derives the credentials for `password` with the given salt and iteration count.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramCredentials {
        assert!(iterations > 0, "PBKDF2 needs at least one iteration");
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        ScramCredentials {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// New credentials for `password` with a random salt.
    pub fn new(password: &[u8], iterations: u32) -> ScramCredentials {
        let mut salt = [0; SALT_LEN_BYTES];
        getrandom::getrandom(&mut salt).expect("the kernel's random source is unavailable");
        ScramCredentials::derive(password, &salt, iterations)
    }

    /// Parses the part of a line after `user:`.
    pub fn parse(text: &str) -> Result<ScramCredentials, String> {
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| format!("not a {PREFIX} line"))?;
        let fields: Vec<&str> = rest.split('$').collect();
        let [iterations, salt, stored_key, server_key] = fields[..] else {
            return Err(format!("expected {PREFIX}<iterations>$<salt>$<StoredKey>$<ServerKey>"));
        };
        let iterations = match iterations.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("invalid iteration count '{iterations}'")),
        };
        let salt = match BASE64.decode(salt) {
            Ok(salt) if !salt.is_empty() => salt,
            _ => return Err(format!("invalid salt '{salt}' (base64 expected)")),
        };
        let key = |name: &str, text: &str| -> Result<[u8; KEY_LEN_BYTES], String> {
            let bytes = BASE64.decode(text).map_err(|_| format!("invalid {name} (base64 expected)"))?;
            bytes.try_into().map_err(|_| format!("invalid {name} (base64 of {KEY_LEN_BYTES} bytes expected)"))
        };
        Ok(ScramCredentials {
            iterations,
            salt,
            stored_key: key("StoredKey", stored_key)?,
            server_key: key("ServerKey", server_key)?,
        })
    }
}

/// The credentials as they appear after `user:` in the file.
impl fmt::Display for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}${}${}${}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }
}

/// Shows the parameters, never the keys.
impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScramCredentials {{ iterations: {} }}", self.iterations)
    }
}

/// One line of a SCRAM credentials file: `user:credentials` and a newline.
pub fn format_line(user: &str, credentials: &ScramCredentials) -> String {
    format!("{user}:{credentials}\n")
}

/// A loaded SCRAM credentials file.
#[derive(Debug, Clone, Default)]
pub struct ScramFile {
    users: HashMap<String, ScramCredentials>,
    /// Keys the made-up credentials of users the file does not name, so that the
    /// exchange for an unknown user looks like one for a known user with a wrong password
    /// (RFC 5802 section 9). Derived from the file's text: stable across reloads of the
    /// same file, and unknowable without it.
    mock_key: [u8; KEY_LEN_BYTES],
    mock_iterations: u32,
    warnings: Vec<String>,
}

impl ScramFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<ScramFile, Vec<String>> {
        let text = std::fs::read(path)
            .map_err(|e| vec![format!("{}: unable to open SCRAM credentials file: {e}", path.display())])?;
        ScramFile::parse(&text, path)
    }

    /// Parses the file's text; `path` only names the file in messages. Every bad line is
    /// reported as `file:line: message`, all at once.
    pub fn parse(text: &[u8], path: &Path) -> Result<ScramFile, Vec<String>> {
        let mut file = ScramFile {
            mock_key: Sha256::digest(text).into(),
            mock_iterations: ITERATIONS_DEFAULT,
            ..ScramFile::default()
        };
        let mut errors = Vec::new();
        for (number, line) in lines::numbered(text) {
            let at = format!("{}:{number}", path.display());
            let Ok(line) = line else {
                errors.push(format!("{at}: line is not UTF-8"));
                continue;
            };
            let Line::Entry { user, secret } = lines::split(line) else { continue };
            if user.is_empty() {
                file.warnings.push(format!("{at}: empty user name, line ignored"));
            } else if user.len() > FIELD_LEN_MAX_BYTES {
                file.warnings.push(format!("{at}: user name too long, line ignored"));
            } else if file.users.contains_key(user) {
                errors.push(format!("{at}: duplicate user '{user}'"));
            } else {
                match ScramCredentials::parse(secret) {
                    Ok(credentials) => {
                        if file.users.is_empty() {
                            file.mock_iterations = credentials.iterations;
                        }
                        file.users.insert(user.to_string(), credentials);
                    }
                    Err(e) => errors.push(format!("{at}: user '{user}': {e}")),
                }
            }
        }
        if errors.is_empty() {
            Ok(file)
        } else {
            Err(errors)
        }
    }

    /// The credentials of `user`, if the file names that user.
    pub fn lookup(&self, user: &str) -> Option<&ScramCredentials> {
        self.users.get(user)
    }

    /// Credentials for a user the file does not name: the same for the same name, and
    /// no password matches them.
    pub(crate) fn mock(&self, user: &str) -> ScramCredentials {
        let derive = |label: &[u8]| hmac(&self.mock_key, &[label, user.as_bytes()].concat());
        ScramCredentials {
            iterations: self.mock_iterations,
            salt: derive(b"salt")[..SALT_LEN_BYTES].to_vec(),
            stored_key: derive(b"stored key"),
            server_key: derive(b"server key"),
        }
    }

    /// How many users the file names.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file names no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The lines skipped with a notice, as `file:line: message`, for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ScramFile, Vec<String>> {
        ScramFile::parse(text.as_bytes(), Path::new("scram"))
    }

    #[test]
    fn credentials_round_trip_through_their_line() {
        let credentials = ScramCredentials::derive(b"pencil", b"salt", 4096);
        let line = format_line("user", &credentials);
        let file = parse(&format!("# comment\n\n{}", line.replace('\n', "\r\n"))).unwrap();
        assert_eq!(file.lookup("user"), Some(&credentials));
        assert_eq!(file.len(), 1);
        assert!(line.starts_with("user:SCRAM-SHA-256$4096$c2FsdA==$"), "{line}");
    }

    #[test]
    fn new_credentials_have_a_random_salt() {
        let a = ScramCredentials::new(b"pw", 4096);
        let b = ScramCredentials::new(b"pw", 4096);
        assert_eq!(a.salt.len(), SALT_LEN_BYTES);
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.stored_key, b.stored_key);
    }

    #[test]
    fn reports_every_bad_line() {
        let good = ScramCredentials::derive(b"pw", b"salt", 4096);
        let text = format!(
            "a:$7$101$x$y\nb:{good}\nc:SCRAM-SHA-256$0$c2FsdA==$AA==$AA==\nd:SCRAM-SHA-256$1$c2FsdA==$AA==$AA==\nb:{good}\n"
        );
        let errors = parse(&text).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[3].starts_with("scram:5: duplicate user 'b'"));
        assert!(errors[0].starts_with("scram:1: user 'a': not a SCRAM-SHA-256$ line"));
        assert!(errors[1].starts_with("scram:3: user 'c': invalid iteration count '0'"));
        assert!(errors[2].starts_with("scram:4: user 'd': invalid StoredKey (base64 of 32 bytes"));
    }

    #[test]
    fn mock_credentials_are_stable_per_name_and_file() {
        let file = parse("").unwrap();
        assert_eq!(file.mock("ghost"), file.mock("ghost"));
        assert_ne!(file.mock("ghost").salt, file.mock("other").salt);
        let other_file = parse("# another file\n").unwrap();
        assert_ne!(file.mock("ghost").salt, other_file.mock("ghost").salt);
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let credentials = ScramCredentials::derive(b"pw", b"salt", 4096);
        assert_eq!(format!("{credentials:?}"), "ScramCredentials { iterations: 4096 }");
    }
}
