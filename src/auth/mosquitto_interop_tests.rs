//! Files written by Debian's `mosquitto_passwd` (mosquitto 2.0.11) are read by ringmq, and
//! files written by `ringmq passwd` are edited by `mosquitto_passwd`.
//!
//! `tests/fixtures/auth/mosquitto_passwd.txt` was made with the real tool:
//!
//! ```text
//! mosquitto_passwd -c -H sha512 -b mosquitto_passwd.txt alice alice-secret
//! mosquitto_passwd -b mosquitto_passwd.txt bob bob-secret
//! mosquitto_passwd -I 1000 -b mosquitto_passwd.txt carol 'carol pässwörd'
//! ```
//!
//! The other tests run `/usr/bin/mosquitto_passwd` when it is installed (Debian's
//! `mosquitto` package) and print a skip line when it is not.

use super::passwd_cmd;
use super::password::{PasswordFile, PasswordHash};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/mosquitto_passwd.txt")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmq-interop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether the real tool is here; prints the skip line when it is not.
fn have_mosquitto_passwd(test: &str) -> bool {
    let present = Path::new(MOSQUITTO_PASSWD).exists();
    if !present {
        println!("SKIP {test}: {MOSQUITTO_PASSWD} is not installed (apt-get install mosquitto)");
    }
    present
}

fn mosquitto_passwd(args: &[&str]) {
    let status = Command::new(MOSQUITTO_PASSWD).args(args).status().expect("mosquitto_passwd runs");
    assert!(status.success(), "mosquitto_passwd {args:?}: {status}");
}

fn ringmq_passwd(args: &[&str]) {
    let code = passwd_cmd::main(args.iter().map(OsString::from).collect());
    assert_eq!(code, 0, "ringmq passwd {args:?}");
}

#[test]
fn verifies_the_committed_mosquitto_passwd_fixture() {
    let file = PasswordFile::load(&fixture()).unwrap();
    assert_eq!(file.len(), 3);
    let alice = file.lookup("alice").unwrap();
    assert!(matches!(alice, PasswordHash::Sha512 { .. }));
    assert!(alice.verify(b"alice-secret") && !alice.verify(b"bob-secret"));
    let bob = file.lookup("bob").unwrap();
    assert!(matches!(bob, PasswordHash::Pbkdf2Sha512 { iterations: 101, .. }));
    assert!(bob.verify(b"bob-secret") && !bob.verify(b"alice-secret"));
    let carol = file.lookup("carol").unwrap();
    assert!(matches!(carol, PasswordHash::Pbkdf2Sha512 { iterations: 1000, .. }));
    assert!(carol.verify("carol pässwörd".as_bytes()));
}

#[test]
fn verifies_a_fresh_file_from_mosquitto_passwd() {
    if !have_mosquitto_passwd("verifies_a_fresh_file_from_mosquitto_passwd") {
        return;
    }
    let dir = temp_dir("fresh");
    let path = dir.join("pw");
    let p = path.to_str().unwrap();
    mosquitto_passwd(&["-c", "-H", "sha512", "-b", p, "sha", "one"]);
    mosquitto_passwd(&["-b", p, "pbkdf2", "two"]);
    mosquitto_passwd(&["-I", "3", "-b", p, "few", "three"]);
    let file = PasswordFile::load(&path).unwrap();
    assert!(file.lookup("sha").unwrap().verify(b"one"));
    assert!(file.lookup("pbkdf2").unwrap().verify(b"two"));
    assert!(file.lookup("few").unwrap().verify(b"three"));
    assert!(!file.lookup("few").unwrap().verify(b"two"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mosquitto_passwd_edits_a_file_ringmq_wrote() {
    if !have_mosquitto_passwd("mosquitto_passwd_edits_a_file_ringmq_wrote") {
        return;
    }
    let dir = temp_dir("round-trip");
    let path = dir.join("pw");
    let p = path.to_str().unwrap();
    ringmq_passwd(&["-c", "-b", p, "ours", "first"]);
    ringmq_passwd(&["-H", "sha512", "-b", p, "sha", "second"]);
    ringmq_passwd(&["-b", p, "gone", "third"]);
    // Mosquitto reads every line it keeps, updates one of ours, adds one, deletes one.
    mosquitto_passwd(&["-b", p, "ours", "changed"]);
    mosquitto_passwd(&["-b", p, "theirs", "fourth"]);
    mosquitto_passwd(&["-D", p, "gone"]);
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.len(), 3);
    assert!(file.lookup("ours").unwrap().verify(b"changed"));
    assert!(file.lookup("sha").unwrap().verify(b"second"), "a line of ours that Mosquitto copied");
    assert!(file.lookup("theirs").unwrap().verify(b"fourth"));
    assert!(file.lookup("gone").is_none());
    // And back: ringmq edits what Mosquitto wrote.
    ringmq_passwd(&["-D", p, "theirs"]);
    mosquitto_passwd(&["-D", p, "sha"]);
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.len(), 1);
    assert!(file.lookup("ours").unwrap().verify(b"changed"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mosquitto_passwd_upgrade_and_ours_agree() {
    if !have_mosquitto_passwd("mosquitto_passwd_upgrade_and_ours_agree") {
        return;
    }
    let dir = temp_dir("upgrade");
    let theirs = dir.join("theirs");
    let ours = dir.join("ours");
    for path in [&theirs, &ours] {
        std::fs::write(path, "ann:plain one\nben:two\n").unwrap();
    }
    mosquitto_passwd(&["-U", theirs.to_str().unwrap()]);
    ringmq_passwd(&["-U", ours.to_str().unwrap()]);
    for path in [&theirs, &ours] {
        let file = PasswordFile::load(path).unwrap();
        assert!(file.lookup("ann").unwrap().verify(b"plain one"), "{}", path.display());
        assert!(file.lookup("ben").unwrap().verify(b"two"), "{}", path.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
