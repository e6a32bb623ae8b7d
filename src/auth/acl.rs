//! Mosquitto's ACL file (`acl_file`) and the rules it gives one client.
//!
//! The syntax and the rule semantics are Mosquitto 2.0's (src/security_default.c,
//! `aclfile__parse` and `mosquitto_acl_check_default`):
//!
//! ```text
//! # comment
//! topic [read|write|readwrite|deny] FILTER   # before any `user` line: anonymous clients
//! user NAME                                   # the `topic` lines below are NAME's
//! pattern [read|write|readwrite|deny] FILTER  # every client, %c = client id, %u = user name
//! ```
//!
//! The access defaults to `readwrite`; as in Mosquitto, `topic read` (one word) grants
//! `readwrite` on the topic named `read` (a warning says so). A client's check walks its
//! user's rules (deny rules first, then the others in file order), then the patterns
//! (deny first, then the others); the first rule whose filter matches the topic decides if
//! it is a deny rule or grants the access asked for; no deciding rule means denied.
//! Topics starting with `$` are matched only by rules starting with `$` [MQTT-4.7.2-1].
//! Patterns with `%u` are skipped for clients without a user name, and a client whose user
//! name or client id contains `+` or `#` gets no pattern at all (it could otherwise widen
//! its own rules; Mosquitto 1.x refused `/` too, 2.0 allows it, so `%c` = `a/b` adds a
//! level). Where ringmq reads more than Mosquitto: tabs separate words as spaces do, and a
//! `#` comment may follow leading blanks (Mosquitto calls both lines invalid).
//!
//! Without an `acl_file` every client may do everything ([`ClientAcl::allow_all`]); with
//! one, a client that no rule names (a user without a block, an anonymous client when the
//! file starts with a `user` line, and no pattern) may do nothing. Both are Mosquitto's.
//!
//! SUBSCRIBE goes further than Mosquitto 2.0, which does not check filters against the
//! file: [`ClientAcl::subscribe`] refuses a filter none of whose topics is readable and
//! says whether deliveries still need checking ([`client_acl`](super::client_acl)).

use super::client_acl::Rule;
pub use super::client_acl::{ClientAcl, SubscribeAccess};
use super::lines::numbered;
use crate::protocol::topic::validate_topic_filter;
use std::collections::HashMap;
use std::path::Path;

/// What a rule allows; `Deny` refuses both directions whatever later rules say.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// `deny`: checked before every allowing rule of its section.
    Deny,
    /// `read`: deliveries (and SUBSCRIBE).
    Read,
    /// `write`: PUBLISH and wills.
    Write,
    /// `readwrite`, the default.
    ReadWrite,
}

impl Access {
    fn parse(word: &str) -> Option<Access> {
        match word {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            "readwrite" => Some(Access::ReadWrite),
            "deny" => Some(Access::Deny),
            _ => None,
        }
    }

    pub(super) fn allows_read(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    pub(super) fn allows_write(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// One rule as written: its access and its filter (with `%c`/`%u` unsubstituted).
#[derive(Clone, PartialEq, Eq, Debug)]
struct RuleText {
    access: Access,
    filter: String,
}

/// A parsed ACL file, ready to give each client its rules.
#[derive(Clone, Debug, Default)]
pub struct AclFile {
    /// `topic` lines before the first `user` line; `None` when there are none, which
    /// leaves anonymous clients with the patterns alone.
    anonymous: Option<Vec<RuleText>>,
    users: HashMap<String, Vec<RuleText>>,
    patterns: Vec<RuleText>,
    warnings: Vec<String>,
}

impl AclFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<AclFile, Vec<String>> {
        let text = std::fs::read(path)
            .map_err(|e| vec![format!("{}: unable to open acl_file: {e}", path.display())])?;
        AclFile::parse(&text, path)
    }

    /// Parses an ACL file's text; `path` only names the file in messages. Every bad line
    /// is reported as `file:line: message`, all at once.
    pub fn parse(text: &[u8], path: &Path) -> Result<AclFile, Vec<String>> {
        let mut file = AclFile::default();
        let mut errors = Vec::new();
        let mut user: Option<String> = None;
        for (number, line) in numbered(text) {
            let at = format!("{}:{number}", path.display());
            let Ok(line) = line else {
                errors.push(format!("{at}: line is not UTF-8"));
                continue;
            };
            match parse_line(line) {
                Ok(Parsed::Nothing) => {}
                Ok(Parsed::User(name)) => {
                    file.users.entry(name.to_string()).or_default();
                    user = Some(name.to_string());
                }
                Ok(Parsed::Rule { pattern, access, filter, bare }) => {
                    if bare {
                        file.warnings.push(format!(
                            "{at}: '{filter}' is read as a topic with access readwrite (the access word \
                             needs a topic after it)"
                        ));
                    }
                    if pattern && !filter.contains("%c") && !filter.contains("%u") {
                        file.warnings.push(format!("{at}: pattern '{filter}' does not contain '%c' or '%u'"));
                    }
                    let rule = RuleText { access, filter: filter.to_string() };
                    if pattern {
                        file.patterns.push(rule);
                    } else if let Some(user) = &user {
                        file.users.get_mut(user).expect("a user line adds its user").push(rule);
                    } else {
                        file.anonymous.get_or_insert_with(Vec::new).push(rule);
                    }
                }
                Err(message) => errors.push(format!("{at}: {message}")),
            }
        }
        if errors.is_empty() {
            Ok(file)
        } else {
            Err(errors)
        }
    }

    /// The lines Mosquitto accepts but which probably do not say what was meant, as
    /// `file:line: message`, for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The rules that apply to one client, with `%c` and `%u` substituted.
    pub fn for_client(&self, username: Option<&str>, client_id: &str) -> ClientAcl {
        let own = match username {
            Some(name) => self.users.get(name),
            None => self.anonymous.as_ref(),
        };
        let mut rules = Vec::new();
        if let Some(own) = own {
            rules.extend(
                deny_first(own).map(|rule| Rule { access: rule.access, filter: rule.filter.as_str().into() }),
            );
        }
        let dangerous = dangerous_identity(username, client_id);
        if dangerous.is_none() {
            for rule in deny_first(&self.patterns) {
                if username.is_none() && rule.filter.contains("%u") {
                    continue;
                }
                let filter = substitute(&rule.filter, username, client_id);
                rules.push(Rule { access: rule.access, filter });
            }
        }
        let notice = if self.patterns.is_empty() { None } else { dangerous };
        ClientAcl::checked(rules, notice)
    }
}

/// Mosquitto's log line for a client whose name could widen a pattern's filter, if it is
/// one: then patterns do not apply to it.
fn dangerous_identity(username: Option<&str>, client_id: &str) -> Option<Box<str>> {
    let dangerous = |s: &str| s.contains(['+', '#']);
    match username {
        Some(name) if dangerous(name) => {
            Some(format!("ACL denying access to client with dangerous username \"{name}\"").into())
        }
        _ if dangerous(client_id) => {
            Some(format!("ACL denying access to client with dangerous client id \"{client_id}\"").into())
        }
        _ => None,
    }
}

fn deny_first(rules: &[RuleText]) -> impl Iterator<Item = &RuleText> {
    let denies = rules.iter().filter(|rule| rule.access == Access::Deny);
    denies.chain(rules.iter().filter(|rule| rule.access != Access::Deny))
}

/// Replaces `%c` with the client id and `%u` with the user name (when there is one), as
/// Mosquitto does: text for text, so a `/` in either adds levels.
fn substitute(filter: &str, username: Option<&str>, client_id: &str) -> Box<str> {
    let mut out = String::with_capacity(filter.len() + client_id.len());
    let mut chars = filter.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek(), username) {
            ('%', Some('c'), _) => {
                chars.next();
                out.push_str(client_id);
            }
            ('%', Some('u'), Some(name)) => {
                chars.next();
                out.push_str(name);
            }
            _ => out.push(c),
        }
    }
    out.into()
}

/// What one line says.
enum Parsed<'a> {
    Nothing,
    User(&'a str),
    /// `bare`: the line had one word after `topic`/`pattern`, which is then the filter.
    Rule {
        pattern: bool,
        access: Access,
        filter: &'a str,
        bare: bool,
    },
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn parse_line(line: &str) -> Result<Parsed<'_>, String> {
    // Mosquitto trims trailing white space (CR included) and skips `#` in column one; a
    // comment after leading blanks is taken as one too, where Mosquitto calls the line
    // invalid.
    let line = line.trim_end().trim_start_matches(is_blank);
    if line.is_empty() || line.starts_with('#') {
        return Ok(Parsed::Nothing);
    }
    let (keyword, rest) = line.split_once(is_blank).unwrap_or((line, ""));
    let rest = rest.trim_start_matches(is_blank);
    match keyword {
        "topic" | "pattern" => {
            let pattern = keyword == "pattern";
            if rest.is_empty() {
                return Err(format!("empty topic in '{keyword}' line"));
            }
            let (access, filter, bare) = match rest.split_once(is_blank) {
                Some((word, filter)) => {
                    let access = Access::parse(word).ok_or_else(|| {
                        format!("invalid topic access type \"{word}\" (read, write, readwrite or deny)")
                    })?;
                    (access, filter.trim_matches(is_blank), false)
                }
                None => (Access::ReadWrite, rest, Access::parse(rest).is_some()),
            };
            validate_topic_filter(filter).map_err(|e| format!("invalid ACL topic \"{filter}\": {e}"))?;
            Ok(Parsed::Rule { pattern, access, filter, bare })
        }
        "user" if rest.is_empty() => Err("missing username in 'user' line".to_string()),
        "user" => Ok(Parsed::User(rest)),
        _ => Err(format!("invalid line: {line}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AclFile {
        AclFile::parse(text.as_bytes(), Path::new("acl")).unwrap()
    }

    fn errors(text: &str) -> Vec<String> {
        AclFile::parse(text.as_bytes(), Path::new("acl")).unwrap_err()
    }

    #[test]
    fn topic_lines_before_any_user_are_for_anonymous_clients() {
        let acl = parse("topic read public/#\nuser alice\ntopic readwrite alice/#\n");
        let anonymous = acl.for_client(None, "c1");
        assert!(anonymous.may_read("public/news"));
        assert!(!anonymous.may_publish("public/news"));
        assert!(!anonymous.may_read("alice/x"));
        let alice = acl.for_client(Some("alice"), "c2");
        assert!(alice.may_read("alice/x") && alice.may_publish("alice/x"));
        assert!(!alice.may_read("public/news"), "anonymous rules are not everyone's");
    }

    #[test]
    fn a_user_without_rules_may_do_nothing() {
        let acl = parse("user alice\ntopic a/#\n");
        let bob = acl.for_client(Some("bob"), "c");
        assert!(!bob.may_read("a/b") && !bob.may_publish("a/b"));
        assert_eq!(bob.subscribe("#"), SubscribeAccess::Denied);
        let anonymous = acl.for_client(None, "c");
        assert!(!anonymous.may_read("a/b"), "the file starts with a user line");
    }

    #[test]
    fn access_words_limit_direction() {
        let acl =
            parse("topic read r\ntopic write w\ntopic readwrite rw\ntopic both\n").for_client(None, "c");
        assert!(acl.may_read("r") && !acl.may_publish("r"));
        assert!(!acl.may_read("w") && acl.may_publish("w"));
        assert!(acl.may_read("rw") && acl.may_publish("rw"));
        assert!(acl.may_read("both") && acl.may_publish("both"));
    }

    #[test]
    fn deny_rules_win_wherever_they_are_written() {
        let acl = parse("topic readwrite a/#\ntopic deny a/secret\n").for_client(None, "c");
        assert!(acl.may_read("a/public"));
        assert!(!acl.may_read("a/secret") && !acl.may_publish("a/secret"));
    }

    #[test]
    fn a_user_rule_decides_before_a_pattern_deny() {
        // Mosquitto checks the user's own list before any pattern, deny patterns included.
        let acl = parse("pattern deny %c/#\nuser alice\ntopic read c1/x\n");
        let alice = acl.for_client(Some("alice"), "c1");
        assert!(alice.may_read("c1/x"));
        assert!(!alice.may_read("c1/y"));
    }

    #[test]
    fn dollar_topics_need_rules_that_start_with_dollar() {
        let acl = parse("topic readwrite #\ntopic read $SYS/broker/#\n").for_client(None, "c");
        assert!(acl.may_publish("a/b"));
        assert!(!acl.may_publish("$SYS/broker/version"));
        assert!(acl.may_read("$SYS/broker/version"));
        assert!(!acl.may_read("$SYS/other"));
        let plus = parse("topic +/broker\n").for_client(None, "c");
        assert!(!plus.may_read("$SYS/broker") && plus.may_read("x/broker"));
    }

    #[test]
    fn patterns_substitute_client_id_and_user_name() {
        let acl = parse("pattern readwrite devices/%c/#\npattern read users/%u/inbox\n");
        let alice = acl.for_client(Some("alice"), "dev1");
        assert!(alice.may_publish("devices/dev1/temp"));
        assert!(!alice.may_publish("devices/dev2/temp"));
        assert!(alice.may_read("users/alice/inbox") && !alice.may_publish("users/alice/inbox"));
        let anonymous = acl.for_client(None, "dev2");
        assert!(anonymous.may_publish("devices/dev2/x"));
        assert!(!anonymous.may_read("users/%u/inbox"), "%u patterns skip anonymous clients");
        // Text for text, as in Mosquitto: a `/` in the client id adds a level.
        let slashed = acl.for_client(None, "a/b");
        assert!(slashed.may_publish("devices/a/b/x"));
    }

    #[test]
    fn percent_sequences_other_than_c_and_u_stay() {
        assert_eq!(&*substitute("%x/%%c/%u/%", None, "id"), "%x/%id/%u/%");
        assert_eq!(&*substitute("%u%c", Some("u"), "c"), "uc");
    }

    #[test]
    fn wildcards_in_a_name_withhold_patterns() {
        let acl = parse("topic read public\npattern readwrite %c/#\n");
        for (user, id) in [(None, "+"), (None, "a#"), (Some("x+y"), "c")] {
            let client = acl.for_client(user, id);
            assert!(!client.may_read("+/x") && !client.may_read("a/x"), "{user:?} {id}");
            assert!(client.notice().unwrap().starts_with("ACL denying access to client with dangerous"));
        }
        let anonymous = acl.for_client(None, "+");
        assert!(anonymous.may_read("public"), "the client's own rules still apply");
        assert!(acl.for_client(None, "ok").notice().is_none());
    }

    #[test]
    fn parses_mosquitto_syntax_with_its_tolerances() {
        let text = "# comment\n\n  # indented comment\ntopic   read   a b/c  \r\nuser  bob smith \r\n\
                    topic\twrite\tx\n";
        let acl = parse(text);
        assert!(acl.for_client(None, "c").may_read("a b/c"), "the filter is the rest of the line");
        assert!(acl.for_client(Some("bob smith"), "c").may_publish("x"));
        assert!(acl.warnings().is_empty(), "{:?}", acl.warnings());
    }

    #[test]
    fn a_lone_access_word_is_a_topic_with_a_warning() {
        let acl = parse("topic read\n");
        assert!(acl.for_client(None, "c").may_publish("read"));
        assert!(acl.warnings()[0].starts_with("acl:1: 'read' is read as a topic"), "{:?}", acl.warnings());
    }

    #[test]
    fn warns_of_a_pattern_without_substitution() {
        let acl = parse("pattern read a/#\n");
        assert!(acl.warnings()[0].contains("does not contain '%c' or '%u'"));
    }

    #[test]
    fn reports_every_bad_line_at_once() {
        let errors =
            errors("topic\ntopic sometimes a\ntopic read a/#/b\nuser\nuser  \nbogus line\ntopic read ok\n");
        let expected = [
            "acl:1: empty topic",
            "acl:2: invalid topic access type \"sometimes\"",
            "acl:3: invalid ACL topic \"a/#/b\"",
            "acl:4: missing username",
            "acl:5: missing username",
            "acl:6: invalid line: bogus line",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(error.starts_with(expected), "{error} should start with {expected}");
        }
    }
}
