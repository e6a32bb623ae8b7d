//! Mosquitto's password file (`password_file`), as `mosquitto_passwd` writes it.
//!
//! One `user:hash` line per user, where the hash is one of Mosquitto 2.0's two formats
//! (common/password_mosq.c):
//!
//! - `$6$<salt>$<hash>`: `hash = SHA-512(password || salt)`, Mosquitto 1.6's format.
//! - `$7$<iterations>$<salt>$<hash>`: `hash = PBKDF2-HMAC-SHA512(password, salt,
//!   iterations, 64 bytes)`, the default since 2.0, with the iteration count the line
//!   carries.
//!
//! Salts and hashes are standard base64 with padding; `mosquitto_passwd` uses 12-byte
//! salts and 101 iterations. Plain-text passwords are refused, as Mosquitto 2.0 refuses
//! them (`mosquitto_passwd -U` or `ringmq passwd -U` hashes such a file).

use super::lines::{self, Line, FIELD_LEN_MAX_BYTES};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// `mosquitto_passwd`'s default PBKDF2 iteration count (`PW_DEFAULT_ITERATIONS`).
pub const PBKDF2_ITERATIONS_DEFAULT: u32 = 101;

/// `mosquitto_passwd`'s salt length (`SALT_LEN`).
pub const SALT_LEN_BYTES: usize = 12;

/// Length of a SHA-512 digest, and of the PBKDF2 output Mosquitto stores.
pub const HASH_LEN_BYTES: usize = 64;

/// A password hash from one line of a password file.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$6$`: one round of salted SHA-512.
    Sha512 { salt: Vec<u8>, hash: [u8; HASH_LEN_BYTES] },
    /// `$7$`: PBKDF2-HMAC-SHA512 with the given iteration count.
    Pbkdf2Sha512 { iterations: u32, salt: Vec<u8>, hash: [u8; HASH_LEN_BYTES] },
}

impl PasswordHash {
    /// Hashes `password` as `mosquitto_passwd` does by default: PBKDF2 with a random salt.
    pub fn new_pbkdf2(password: &[u8], iterations: u32) -> PasswordHash {
        assert!(iterations > 0, "PBKDF2 needs at least one iteration");
        let salt = random_salt();
        let hash = pbkdf2_sha512(password, &salt, iterations);
        PasswordHash::Pbkdf2Sha512 { iterations, salt: salt.to_vec(), hash }
    }

    /// Hashes `password` as `mosquitto_passwd -H sha512` does: salted SHA-512.
    pub fn new_sha512(password: &[u8]) -> PasswordHash {
        let salt = random_salt();
        let hash = sha512_salted(password, &salt);
        PasswordHash::Sha512 { salt: salt.to_vec(), hash }
    }

    /// Parses the part of a line after `user:`.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        if let Some(rest) = text.strip_prefix("$6$") {
            let (salt, hash) = rest.split_once('$').ok_or("a $6$ hash has no '$' between salt and hash")?;
            Ok(PasswordHash::Sha512 { salt: decode_salt(salt)?, hash: decode_hash(hash)? })
        } else if let Some(rest) = text.strip_prefix("$7$") {
            let mut fields = rest.splitn(3, '$');
            let iterations = fields.next().unwrap_or("");
            let iterations = match iterations.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("invalid iteration count '{iterations}' in a $7$ hash")),
            };
            let (Some(salt), Some(hash)) = (fields.next(), fields.next()) else {
                return Err("a $7$ hash needs '$7$iterations$salt$hash'".to_string());
            };
            Ok(PasswordHash::Pbkdf2Sha512 { iterations, salt: decode_salt(salt)?, hash: decode_hash(hash)? })
        } else {
            Err("not a $6$ or $7$ hash (plain-text passwords need `ringmq passwd -U` first)".to_string())
        }
    }

    /// Whether `password` is the one this hash was made from.
    ///
    /// Slow on purpose for `$7$`: one PBKDF2 run of the line's iteration count, two
    /// SHA-512 blocks per iteration, so the cost grows with the count the file chose (101 by
    /// default, often 100,000 or more in hardened installations): callers run it off the
    /// shard's loop. The final comparison takes the same time wherever the hashes differ.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Sha512 { salt, hash } => constant_time_eq(&sha512_salted(password, salt), hash),
            PasswordHash::Pbkdf2Sha512 { iterations, salt, hash } => {
                constant_time_eq(&pbkdf2_sha512(password, salt, *iterations), hash)
            }
        }
    }
}

/// The hash as it appears after `user:` in the file.
impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Sha512 { salt, hash } => {
                write!(f, "$6${}${}", BASE64.encode(salt), BASE64.encode(hash))
            }
            PasswordHash::Pbkdf2Sha512 { iterations, salt, hash } => {
                write!(f, "$7${iterations}${}${}", BASE64.encode(salt), BASE64.encode(hash))
            }
        }
    }
}

/// Shows the format and parameters, never the hash: a log line must not carry it.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Sha512 { .. } => f.write_str("PasswordHash::Sha512"),
            PasswordHash::Pbkdf2Sha512 { iterations, .. } => {
                write!(f, "PasswordHash::Pbkdf2Sha512 {{ iterations: {iterations} }}")
            }
        }
    }
}

/// One line of a password file: `user:hash` and a newline.
pub fn format_line(user: &str, hash: &PasswordHash) -> String {
    format!("{user}:{hash}\n")
}

/// A loaded password file: user name to hash.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    users: HashMap<String, PasswordHash>,
    warnings: Vec<String>,
}

impl PasswordFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<PasswordFile, Vec<String>> {
        let text = std::fs::read(path)
            .map_err(|e| vec![format!("{}: unable to open password file: {e}", path.display())])?;
        PasswordFile::parse(&text, path)
    }

    /// Parses a password file's text; `path` only names the file in messages.
    ///
    /// Every line that does not give a user a usable hash (a hash that does not decode, a
    /// user with no hash, a second line for the same user, a line that is not UTF-8) is
    /// reported as `file:line: message`, all of them at once. The lines Mosquitto skips
    /// with a notice (an empty user name, an over-long field) are kept in
    /// [`warnings`](Self::warnings).
    pub fn parse(text: &[u8], path: &Path) -> Result<PasswordFile, Vec<String>> {
        let (file, errors) = PasswordFile::parse_as_mosquitto(text, path);
        if errors.is_empty() {
            Ok(file)
        } else {
            Err(errors)
        }
    }

    /// Parses as Mosquitto 2.0 loads: every good entry is kept and every bad line only
    /// reported (Mosquitto logs "Invalid password hash for user X, removing entry." and
    /// starts). Of two lines for one user the first is kept, as Mosquitto 2.0.15 and later
    /// do (2.0.11 kept the last).
    pub fn parse_as_mosquitto(text: &[u8], path: &Path) -> (PasswordFile, Vec<String>) {
        let mut file = PasswordFile::default();
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
            } else if user.len() > FIELD_LEN_MAX_BYTES || secret.len() > FIELD_LEN_MAX_BYTES {
                file.warnings.push(format!("{at}: user name or hash too long, line ignored"));
            } else if file.users.contains_key(user) {
                errors.push(format!("{at}: duplicate user '{user}' (the first line for it is kept)"));
            } else if secret.is_empty() {
                errors.push(format!("{at}: no password hash for user '{user}'"));
            } else {
                match PasswordHash::parse(secret) {
                    Ok(hash) => {
                        file.users.insert(user.to_string(), hash);
                    }
                    Err(e) => errors.push(format!("{at}: user '{user}': {e}")),
                }
            }
        }
        (file, errors)
    }

    /// The hash of `user`, if the file names that user.
    pub fn lookup(&self, user: &str) -> Option<&PasswordHash> {
        self.users.get(user)
    }

    /// How many users the file names.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file names no user (then every login with a user name fails).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The lines Mosquitto would skip with a notice, as `file:line: message`, for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn decode_salt(text: &str) -> Result<Vec<u8>, String> {
    match BASE64.decode(text) {
        Ok(salt) if !salt.is_empty() => Ok(salt),
        _ => Err(format!("invalid salt '{text}' (base64 expected)")),
    }
}

fn decode_hash(text: &str) -> Result<[u8; HASH_LEN_BYTES], String> {
    let bytes = BASE64.decode(text).map_err(|_| "invalid hash (base64 expected)".to_string())?;
    bytes.try_into().map_err(|_| format!("invalid hash (base64 of {HASH_LEN_BYTES} bytes expected)"))
}

fn random_salt() -> [u8; SALT_LEN_BYTES] {
    let mut salt = [0; SALT_LEN_BYTES];
    getrandom::getrandom(&mut salt).expect("the kernel's random source is unavailable");
    salt
}

fn sha512_salted(password: &[u8], salt: &[u8]) -> [u8; HASH_LEN_BYTES] {
    let mut digest = Sha512::new();
    digest.update(password);
    digest.update(salt);
    digest.finalize().into()
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; HASH_LEN_BYTES] {
    pbkdf2::pbkdf2_hmac_array::<Sha512, HASH_LEN_BYTES>(password, salt, iterations)
}

/// Compares two byte strings in time that depends only on their lengths (public: the
/// lengths are fixed by the hash format), so a timing does not tell how many leading
/// bytes of a guess were right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "pw.txt";

    fn parse(text: &str) -> Result<PasswordFile, Vec<String>> {
        PasswordFile::parse(text.as_bytes(), Path::new(PATH))
    }

    /// From `mosquitto_passwd -H sha512 -b FILE alice alice-secret` (Debian 2.0.11).
    const ALICE_SHA512: &str = "$6$pwmLO/HIkbXstr6g$4mwKql0EXxnjbqLLPxt8dJJHzLGyjyDRVD4C4sgyyzjosvudZGd/\
                                1X5fjMXBUMRQhXE0aTBj4wdlHqZ08lhXQQ==";
    /// From `mosquitto_passwd -b FILE bob bob-secret` (Debian 2.0.11).
    const BOB_PBKDF2: &str = "$7$101$5Z91PE7WYlLLmlhw$1N3hMEvTX1GDXx4EMiCPdhkgZdOCPKjD5y7sKxIyvpX7NIknQ20l\
                              Sky/Pv+b6YWpTzNkUZvov/kc5scj8Emc1w==";

    #[test]
    fn verifies_hashes_made_by_mosquitto_passwd() {
        let alice = PasswordHash::parse(ALICE_SHA512).unwrap();
        assert!(alice.verify(b"alice-secret"));
        assert!(!alice.verify(b"alice-secreT"));
        assert!(!alice.verify(b""));
        let bob = PasswordHash::parse(BOB_PBKDF2).unwrap();
        assert!(matches!(bob, PasswordHash::Pbkdf2Sha512 { iterations: 101, .. }));
        assert!(bob.verify(b"bob-secret"));
        assert!(!bob.verify(b"alice-secret"));
    }

    #[test]
    fn formats_back_to_the_text_it_was_parsed_from() {
        for text in [ALICE_SHA512, BOB_PBKDF2] {
            assert_eq!(PasswordHash::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn new_hashes_use_mosquitto_parameters_and_verify() {
        let hash = PasswordHash::new_pbkdf2(b"pw", PBKDF2_ITERATIONS_DEFAULT);
        let text = hash.to_string();
        assert!(text.starts_with("$7$101$"), "{text}");
        let PasswordHash::Pbkdf2Sha512 { salt, .. } = &hash else { panic!() };
        assert_eq!(salt.len(), SALT_LEN_BYTES);
        assert!(PasswordHash::parse(&text).unwrap().verify(b"pw"));
        let sha = PasswordHash::new_sha512(b"pw");
        assert!(sha.to_string().starts_with("$6$"));
        assert!(sha.verify(b"pw") && !sha.verify(b"pW"));
        assert_ne!(PasswordHash::new_sha512(b"pw"), sha, "salts are random");
    }

    #[test]
    fn tolerates_comments_blank_lines_crlf_and_blanks() {
        let text = format!("# users\n\n alice : {ALICE_SHA512} \r\nbob:{BOB_PBKDF2}\r\nno colon\n");
        let file = parse(&text).unwrap();
        assert_eq!(file.len(), 2);
        assert!(file.lookup("alice").unwrap().verify(b"alice-secret"));
        assert!(file.lookup("bob").unwrap().verify(b"bob-secret"));
        assert!(file.lookup("carol").is_none());
        assert!(file.warnings().is_empty());
    }

    #[test]
    fn reports_every_bad_line_with_its_number() {
        let text = format!("alice:secret\nbob:{BOB_PBKDF2}\ncarol:\ndave:$7$0$AAAA$AAAA\neve:$6$!!$x\n");
        let errors = parse(&text).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("pw.txt:1: user 'alice': not a $6$ or $7$ hash"), "{}", errors[0]);
        assert!(errors[1].starts_with("pw.txt:3: no password hash for user 'carol'"), "{}", errors[1]);
        assert!(errors[2].starts_with("pw.txt:4: user 'dave': invalid iteration count '0'"), "{}", errors[2]);
        assert!(errors[3].starts_with("pw.txt:5: user 'eve': invalid salt"), "{}", errors[3]);
    }

    #[test]
    fn rejects_a_hash_of_the_wrong_length() {
        let short = format!("$6$AAAAAAAAAAAAAAAA${}", BASE64.encode([0u8; 32]));
        assert!(PasswordHash::parse(&short).unwrap_err().contains("64 bytes"));
    }

    #[test]
    fn refuses_duplicate_users_unless_loading_as_mosquitto_does() {
        let text = format!("bob:{BOB_PBKDF2}\nbob:{ALICE_SHA512}\n :{ALICE_SHA512}\ncarol:plain\n");
        let errors = parse(&text).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("pw.txt:2: duplicate user 'bob'"), "{}", errors[0]);
        let (file, errors) = PasswordFile::parse_as_mosquitto(text.as_bytes(), Path::new(PATH));
        assert_eq!(errors.len(), 2);
        assert!(file.lookup("bob").unwrap().verify(b"bob-secret"), "the first line wins");
        assert!(file.lookup("carol").is_none(), "a bad entry is removed");
        assert_eq!(file.warnings().len(), 1, "{:?}", file.warnings());
        assert!(file.warnings()[0].starts_with("pw.txt:3: empty user name"));
    }

    #[test]
    fn debug_output_hides_the_hash() {
        let hash = PasswordHash::parse(BOB_PBKDF2).unwrap();
        assert_eq!(format!("{hash:?}"), "PasswordHash::Pbkdf2Sha512 { iterations: 101 }");
    }

    #[test]
    fn compares_in_constant_time_shape() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
