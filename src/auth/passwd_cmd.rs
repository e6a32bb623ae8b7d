//! `ringmq passwd`: creates and edits password files as `mosquitto_passwd` (2.0) does, with
//! its options, messages and exit codes, and SCRAM credential files with `--scram`.
//!
//! ```text
//! ringmq passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] FILE USER
//! ringmq passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b FILE USER PASSWORD
//! ringmq passwd [-I iterations] -U FILE
//! ringmq passwd --scram [-I iterations] [-c | -D] [-b] FILE USER [PASSWORD]
//! ```
//!
//! Where it differs from `mosquitto_passwd`, it is on the side of not losing data: the file
//! is replaced atomically (a temporary file renamed over it, keeping the old file's mode and
//! owner; a new file gets mode 0600), comments and blank lines are kept where
//! `mosquitto_passwd` stops at them and drops the rest of the file, and `-U` leaves lines
//! that already hold a hash alone instead of hashing the hash.

use super::lines::{self, Line, FIELD_LEN_MAX_BYTES};
use super::password::{PasswordHash, PBKDF2_ITERATIONS_DEFAULT};
use super::prompt::prompt;
use super::scram_file::{self, ScramCredentials};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Runs the command; `args` are the arguments after `passwd`. Returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = match args.into_iter().map(OsString::into_string).collect() {
        Ok(args) => args,
        Err(_) => {
            eprintln!("Error: Arguments must be valid UTF-8.");
            return 1;
        }
    };
    let command = match parse_args(&args) {
        Ok(command) => command,
        Err(Exit(code)) => return code,
    };
    match run(&command) {
        Ok(()) => 0,
        Err(Exit(code)) => code,
    }
}

/// An exit code, the message having been printed already.
#[derive(Debug, PartialEq, Eq)]
struct Exit(i32);

fn fail(message: impl AsRef<str>) -> Exit {
    eprintln!("{}", message.as_ref());
    Exit(1)
}

/// How new secrets are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hasher {
    Sha512,
    Pbkdf2 { iterations: u32 },
    Scram { iterations: u32 },
}

impl Hasher {
    fn secret(self, password: &[u8]) -> String {
        match self {
            Hasher::Sha512 => PasswordHash::new_sha512(password).to_string(),
            Hasher::Pbkdf2 { iterations } => PasswordHash::new_pbkdf2(password, iterations).to_string(),
            Hasher::Scram { iterations } => ScramCredentials::new(password, iterations).to_string(),
        }
    }

    /// Whether `secret` is already something this file format holds (for `-U`).
    fn is_hashed(self, secret: &str) -> bool {
        match self {
            Hasher::Scram { .. } => ScramCredentials::parse(secret).is_ok(),
            Hasher::Sha512 | Hasher::Pbkdf2 { .. } => PasswordHash::parse(secret).is_ok(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// `-c`: a new file with one user.
    Create { user: String, password: Option<String> },
    /// Add the user or change its password.
    Update { user: String, password: Option<String> },
    /// `-D`.
    Delete { user: String },
    /// `-U`: hash a plain-text file.
    Upgrade,
}

#[derive(Debug, PartialEq, Eq)]
struct Command {
    file: PathBuf,
    hasher: Hasher,
    action: Action,
}

fn parse_args(args: &[String]) -> Result<Command, Exit> {
    if args.is_empty() {
        print_usage();
        return Err(Exit(1));
    }
    let (mut batch, mut create, mut delete, mut upgrade, mut scram) = (false, false, false, false, false);
    let mut sha512 = false;
    let mut iterations: Option<u32> = None;
    let mut idx = 0;
    while idx < args.len() {
        match args[idx].as_str() {
            "-H" => {
                let Some(kind) = args.get(idx + 1) else {
                    return Err(fail("Error: -H argument given but not enough other arguments."));
                };
                sha512 = match kind.as_str() {
                    "sha512" => true,
                    "sha512-pbkdf2" => false,
                    _ => return Err(fail(format!("Error: Unknown hash type '{kind}'"))),
                };
                idx += 1;
            }
            "-I" => {
                let Some(count) = args.get(idx + 1) else {
                    return Err(fail("Error: -I argument given but not enough other arguments."));
                };
                match count.parse::<u32>() {
                    Ok(n) if n > 0 => iterations = Some(n),
                    _ => return Err(fail("Error: Number of iterations must be > 0.")),
                }
                idx += 1;
            }
            "-b" => batch = true,
            "-c" => create = true,
            "-D" => delete = true,
            "-U" => upgrade = true,
            "--scram" => scram = true,
            _ => break,
        }
        idx += 1;
    }
    for (a, b, both) in [
        ("-c", "-D", create && delete),
        ("-c", "-U", create && upgrade),
        ("-D", "-U", delete && upgrade),
        ("-b", "-D", batch && delete),
    ] {
        if both {
            return Err(fail(format!("Error: {a} and {b} cannot be used together.")));
        }
    }
    if scram && sha512 {
        return Err(fail("Error: -H and --scram cannot be used together."));
    }
    let hasher = match (scram, sha512) {
        (true, _) => Hasher::Scram { iterations: iterations.unwrap_or(scram_file::ITERATIONS_DEFAULT) },
        (false, true) => Hasher::Sha512,
        (false, false) => Hasher::Pbkdf2 { iterations: iterations.unwrap_or(PBKDF2_ITERATIONS_DEFAULT) },
    };
    let rest = &args[idx..];
    let owned = |i: usize| rest[i].clone();
    let (file, action) = if create {
        match (batch, rest.len()) {
            (true, n) if n >= 3 => (owned(0), Action::Create { user: owned(1), password: Some(owned(2)) }),
            (true, _) => {
                return Err(fail(
                    "Error: -c argument given but password file, username, or password missing.",
                ))
            }
            (false, n) if n >= 2 => (owned(0), Action::Create { user: owned(1), password: None }),
            (false, _) => {
                return Err(fail("Error: -c argument given but password file or username missing."))
            }
        }
    } else if delete {
        if rest.len() < 2 {
            return Err(fail("Error: -D argument given but password file or username missing."));
        }
        (owned(0), Action::Delete { user: owned(1) })
    } else if upgrade {
        if rest.len() != 1 {
            return Err(fail("Error: -U argument given but password file missing."));
        }
        (owned(0), Action::Upgrade)
    } else if batch && rest.len() == 3 {
        (owned(0), Action::Update { user: owned(1), password: Some(owned(2)) })
    } else if !batch && rest.len() == 2 {
        (owned(0), Action::Update { user: owned(1), password: None })
    } else {
        print_usage();
        return Err(Exit(1));
    };
    let user = match &action {
        Action::Create { user, .. } | Action::Update { user, .. } | Action::Delete { user } => Some(user),
        Action::Upgrade => None,
    };
    if let Some(user) = user {
        check_username(user)?;
    }
    if let Action::Create { password: Some(password), .. } | Action::Update { password: Some(password), .. } =
        &action
    {
        if password.len() > FIELD_LEN_MAX_BYTES {
            return Err(fail("Error: Password must be less than 65536 characters long."));
        }
    }
    Ok(Command { file: PathBuf::from(file), hasher, action })
}

fn check_username(user: &str) -> Result<(), Exit> {
    if user.len() > FIELD_LEN_MAX_BYTES {
        return Err(fail("Error: Username must be less than 65536 characters long."));
    }
    if user.chars().any(char::is_control) {
        return Err(fail("Error: Username must not contain control characters."));
    }
    if user.contains(':') {
        return Err(fail("Error: Username must not contain the ':' character."));
    }
    Ok(())
}

fn print_usage() {
    print!(
        "ringmq passwd is a tool for managing password files for ringmq (and mosquitto).\n\n\
         Usage: ringmq passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username\n       \
         ringmq passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username password\n       \
         ringmq passwd [-I iterations] -U passwordfile\n       \
         ringmq passwd --scram [-I iterations] [-c | -D] [-b] scramfile username [password]\n \
         -b : run in batch mode to allow passing passwords on the command line.\n \
         -c : create a new password file. This will overwrite existing files.\n \
         -D : delete the username rather than adding/updating its password.\n \
         -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.\n      \
         Mosquitto 1.6 and earlier defaulted to sha512.\n \
         -I : the number of iterations for sha512-pbkdf2 (default 101) or --scram (default 4096).\n \
         -U : update a plain text password file to use hashed passwords.\n \
         --scram : write SCRAM-SHA-256 credentials (MQTT 5 enhanced authentication) instead.\n\n"
    );
}

fn run(command: &Command) -> Result<(), Exit> {
    let file = &command.file;
    let hasher = command.hasher;
    match &command.action {
        Action::Create { user, password } => {
            let password = obtain_password(password.as_deref())?;
            let line = format!("{user}:{}\n", hasher.secret(password.as_bytes()));
            write_atomically(file, line.as_bytes(), None).map_err(|e| {
                fail(format!(
                    "Error: Unable to open file {} for writing. {}.",
                    file.display(),
                    os_message(&e)
                ))
            })
        }
        Action::Update { user, password } => {
            let text = read_existing(file)?;
            let password = obtain_password(password.as_deref())?;
            let secret = hasher.secret(password.as_bytes());
            let edited = edit(&text, user, Some(&secret));
            let edited = if edited.found { edited.text } else { append(edited.text, user, &secret) };
            replace(file, &edited)
        }
        Action::Delete { user } => {
            let text = read_existing(file)?;
            let edited = edit(&text, user, None);
            if !edited.found {
                return Err(fail(format!("Warning: User {user} not found in password file.")));
            }
            replace(file, &edited.text)
        }
        Action::Upgrade => {
            let text = read_existing(file)?;
            replace(file, &upgrade(&text, hasher))
        }
    }
}

fn read_existing(file: &Path) -> Result<Vec<u8>, Exit> {
    std::fs::read(file).map_err(|e| {
        fail(format!("Error: Unable to open password file {}. {}.", file.display(), os_message(&e)))
    })
}

fn replace(file: &Path, text: &[u8]) -> Result<(), Exit> {
    let metadata = std::fs::metadata(file).ok();
    write_atomically(file, text, metadata.as_ref())
        .map_err(|e| fail(format!("Error occurred updating password file {}: {e}.", file.display())))
}

/// The text of a file after replacing (or, with `secret` None, deleting) every line of
/// `user`; lines that are not entries, or not UTF-8, pass through unchanged.
struct Edited {
    text: Vec<u8>,
    found: bool,
}

fn edit(text: &[u8], user: &str, secret: Option<&str>) -> Edited {
    let mut out = Vec::with_capacity(text.len() + 256);
    let mut found = false;
    for raw in text.split_inclusive(|b| *b == b'\n') {
        let entry_user = std::str::from_utf8(raw).ok().and_then(|line| match lines::split(line.trim_end()) {
            Line::Entry { user, .. } => Some(user),
            Line::Skip => None,
        });
        if entry_user != Some(user) {
            out.extend_from_slice(raw);
            continue;
        }
        found = true;
        if let Some(secret) = secret {
            out.extend_from_slice(format!("{user}:{secret}\n").as_bytes());
        }
    }
    Edited { text: out, found }
}

fn append(mut text: Vec<u8>, user: &str, secret: &str) -> Vec<u8> {
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(format!("{user}:{secret}\n").as_bytes());
    text
}

/// `-U`: every entry whose secret is plain text gets that text hashed.
fn upgrade(text: &[u8], hasher: Hasher) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for raw in text.split_inclusive(|b| *b == b'\n') {
        let entry = std::str::from_utf8(raw).ok().and_then(|line| match lines::split(line.trim_end()) {
            Line::Entry { user, secret } if !user.is_empty() && !secret.is_empty() => Some((user, secret)),
            _ => None,
        });
        match entry {
            Some((user, secret)) if !hasher.is_hashed(secret) => {
                out.extend_from_slice(format!("{user}:{}\n", hasher.secret(secret.as_bytes())).as_bytes());
            }
            _ => out.extend_from_slice(raw),
        }
    }
    out
}

/// Writes `text` to a temporary file beside `file` and renames it over `file`, so a crash
/// leaves the old file or the new one, never half of one. The new file takes the mode and
/// owner of `previous` (the file it replaces) or, for a new file, mode 0600.
fn write_atomically(file: &Path, text: &[u8], previous: Option<&std::fs::Metadata>) -> std::io::Result<()> {
    let name = file.file_name().ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut temp_name = OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp.{}", std::process::id()));
    let temp = file.with_file_name(temp_name);
    let result = (|| {
        let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        if let Some(previous) = previous {
            out.set_permissions(std::fs::Permissions::from_mode(previous.mode() & 0o7777))?;
            // Only root can give a file away; anyone else keeps the file as their own.
            let _ = std::os::unix::fs::fchown(&out, Some(previous.uid()), Some(previous.gid()));
        }
        out.write_all(text)?;
        out.sync_all()?;
        std::fs::rename(&temp, file)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// `strerror`'s text without Rust's " (os error N)".
fn os_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The password from the command line, or asked for twice on the terminal.
fn obtain_password(given: Option<&str>) -> Result<String, Exit> {
    if let Some(password) = given {
        return Ok(password.to_string());
    }
    let first = prompt("Password: ").unwrap_or_default();
    if first.is_empty() {
        return Err(fail("Error: Empty password."));
    }
    let second = prompt("Reenter password: ").unwrap_or_default();
    if first != second {
        eprintln!("Error: Passwords do not match.");
        return Err(Exit(2));
    }
    if first.len() > FIELD_LEN_MAX_BYTES {
        return Err(fail("Error: Password must be less than 65536 characters long."));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::PasswordFile;
    use crate::auth::scram_file::ScramFile;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringmq-passwd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run_args(text: &str) -> i32 {
        main(text.split_whitespace().map(OsString::from).collect())
    }

    #[test]
    fn parses_mosquitto_passwd_usage() {
        let command = parse_args(&args("-c -b pw alice secret")).unwrap();
        assert_eq!(command.hasher, Hasher::Pbkdf2 { iterations: 101 });
        assert_eq!(command.action, Action::Create { user: "alice".into(), password: Some("secret".into()) });
        let command = parse_args(&args("-H sha512 pw alice")).unwrap();
        assert_eq!(command.hasher, Hasher::Sha512);
        assert_eq!(command.action, Action::Update { user: "alice".into(), password: None });
        let command = parse_args(&args("-I 2000 -U pw")).unwrap();
        assert_eq!((command.hasher, command.action), (Hasher::Pbkdf2 { iterations: 2000 }, Action::Upgrade));
        let command = parse_args(&args("--scram -b creds bob pw")).unwrap();
        assert_eq!(command.hasher, Hasher::Scram { iterations: 4096 });
        assert_eq!(parse_args(&args("-D pw alice")).unwrap().action, Action::Delete { user: "alice".into() });
    }

    #[test]
    fn refuses_what_mosquitto_passwd_refuses() {
        for bad in [
            "",
            "-c -D pw a",
            "-c -U pw",
            "-D -U pw",
            "-b -D pw a",
            "-H md5 pw a",
            "-H",
            "-I 0 pw a",
            "-I",
            "-c pw",
            "-c -b pw a",
            "-U",
            "-b pw a",
            "pw",
            "pw a:b",
            "--scram -H sha512 pw a",
        ] {
            assert_eq!(parse_args(&args(bad)), Err(Exit(1)), "{bad}");
        }
    }

    #[test]
    fn creates_updates_and_deletes_users() {
        let dir = temp_dir("edit");
        let file = dir.join("pw");
        let path = file.display();
        assert_eq!(run_args(&format!("-c -b {path} alice one")), 0);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert_eq!(run_args(&format!("-H sha512 -b {path} bob two")), 0);
        assert_eq!(run_args(&format!("-I 7 -b {path} alice three")), 0);
        let loaded = PasswordFile::load(&file).unwrap();
        assert!(loaded.lookup("alice").unwrap().verify(b"three"));
        assert!(matches!(loaded.lookup("alice").unwrap(), PasswordHash::Pbkdf2Sha512 { iterations: 7, .. }));
        assert!(matches!(loaded.lookup("bob").unwrap(), PasswordHash::Sha512 { .. }));
        assert_eq!(run_args(&format!("-D {path} alice")), 0);
        assert_eq!(run_args(&format!("-D {path} alice")), 1, "not found any more");
        let loaded = PasswordFile::load(&file).unwrap();
        assert!(loaded.lookup("alice").is_none() && loaded.lookup("bob").unwrap().verify(b"two"));
        assert_eq!(run_args(&format!("-b {}/missing carol pw", dir.display())), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keeps_comments_blank_lines_and_the_file_mode() {
        let dir = temp_dir("keep");
        let file = dir.join("pw");
        let hash = PasswordHash::new_pbkdf2(b"x", 1);
        std::fs::write(&file, format!("# team\n\nzed:{hash}\nno-newline:{hash}")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(run_args(&format!("-b {} amy pw", file.display())), 0);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with(&format!("# team\n\nzed:{hash}\nno-newline:{hash}\namy:$7$101$")), "{text}");
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o640);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn upgrades_plain_text_and_leaves_hashes_alone() {
        let hash = PasswordHash::new_sha512(b"old").to_string();
        let text = format!("# c\nann:plain\nben:{hash}\r\n");
        let upgraded = String::from_utf8(upgrade(text.as_bytes(), Hasher::Pbkdf2 { iterations: 3 })).unwrap();
        let file = PasswordFile::parse(upgraded.as_bytes(), Path::new("pw")).unwrap();
        assert!(file.lookup("ann").unwrap().verify(b"plain"));
        assert!(upgraded.contains(&format!("ben:{hash}\r\n")), "{upgraded}");
        assert!(upgraded.starts_with("# c\n"));
    }

    #[test]
    fn writes_scram_credentials() {
        let dir = temp_dir("scram");
        let file = dir.join("scram");
        let path = file.display();
        assert_eq!(run_args(&format!("--scram -c -b {path} alice one")), 0);
        assert_eq!(run_args(&format!("--scram -I 5000 -b {path} bob two")), 0);
        let loaded = ScramFile::load(&file).unwrap();
        assert_eq!(loaded.lookup("alice").unwrap().iterations, 4096);
        let bob = loaded.lookup("bob").unwrap();
        assert_eq!(bob, &ScramCredentials::derive(b"two", &bob.salt, 5000));
        assert_eq!(run_args(&format!("--scram -D {path} alice")), 0);
        assert!(ScramFile::load(&file).unwrap().lookup("alice").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
