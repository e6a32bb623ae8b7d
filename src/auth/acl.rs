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
//! its own rules).
//!
//! Without an `acl_file` every client may do everything ([`ClientAcl::allow_all`]); with
//! one, a client that no rule names (a user without a block, an anonymous client when the
//! file starts with a `user` line, and no pattern) may do nothing. Both are Mosquitto's.
//!
//! SUBSCRIBE goes further than Mosquitto 2.0, which does not check filters against the
//! file: [`ClientAcl::subscribe`] refuses a filter none of whose topics is readable and
//! says whether deliveries still need checking, using [`filter_set`](super::filter_set).

use super::filter_set::{covers, intersects};
use super::lines::numbered;
use crate::protocol::topic::{matches, validate_topic_filter};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// What a rule allows; `Deny` refuses both directions whatever later rules say.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    Deny,
    Read,
    Write,
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

    fn allows_read(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    fn allows_write(self) -> bool {
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
        ClientAcl { rules: Rules::Checked(rules.into()), notice }
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

/// One compiled rule: substituted, ready to match.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    access: Access,
    filter: Box<str>,
}

#[derive(Clone, Debug)]
enum Rules {
    /// No `acl_file`: every check passes without looking at the topic.
    AllowAll,
    /// In check order; empty denies everything.
    Checked(Arc<[Rule]>),
}

/// Whether a SUBSCRIBE filter may be granted, and what its deliveries then need.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SubscribeAccess {
    /// No topic of the filter is readable: SUBACK 0x80 (3.1.1) or 0x87 (5.0).
    Denied,
    /// Every topic of the filter is readable: deliveries need no check.
    Granted,
    /// Some topics may be readable: grant, and check each delivery with
    /// [`ClientAcl::may_read`].
    GrantedFiltered,
}

/// The rules that apply to one client; cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct ClientAcl {
    rules: Rules,
    notice: Option<Box<str>>,
}

impl ClientAcl {
    /// Everything allowed: the broker has no `acl_file`.
    pub fn allow_all() -> ClientAcl {
        ClientAcl { rules: Rules::AllowAll, notice: None }
    }

    /// Whether this is [`allow_all`](Self::allow_all), so a caller can skip its checks.
    pub fn is_allow_all(&self) -> bool {
        matches!(self.rules, Rules::AllowAll)
    }

    /// Mosquitto's notice when patterns were withheld from this client because its user
    /// name or client id contains `+` or `#` (Mosquitto logs it on each check; once per
    /// client is enough).
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// Whether the client may publish to `topic` (a valid topic name); wills too.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.check(topic, Access::allows_write)
    }

    /// Whether a message on `topic` may be delivered to the client (retained included).
    pub fn may_read(&self, topic: &str) -> bool {
        self.check(topic, Access::allows_read)
    }

    fn check(&self, topic: &str, allows: fn(Access) -> bool) -> bool {
        let rules = match &self.rules {
            Rules::AllowAll => return true,
            Rules::Checked(rules) => rules,
        };
        for rule in rules.iter() {
            if matches(&rule.filter, topic) {
                if rule.access == Access::Deny {
                    return false;
                }
                if allows(rule.access) {
                    return true;
                }
            }
        }
        false
    }

    /// Judges a SUBSCRIBE filter (a valid one; for `$share/{group}/{filter}` pass the
    /// inner filter) against every topic it can match.
    ///
    /// The answer is sound, never exact-or-wrong: `Denied` only when no topic of the
    /// filter is readable, `Granted` only when all are, and `GrantedFiltered` otherwise or
    /// when the rules overlap in ways a walk of them cannot settle (deliveries are then
    /// checked one by one, which is always right).
    pub fn subscribe(&self, filter: &str) -> SubscribeAccess {
        let rules = match &self.rules {
            Rules::AllowAll => return SubscribeAccess::Granted,
            Rules::Checked(rules) => rules,
        };
        // Some topics of the filter may be decided by an earlier rule: readable by a read
        // rule, or refused by a deny rule.
        let mut some_readable = false;
        let mut some_denied = false;
        for rule in rules.iter() {
            let readable = rule.access.allows_read();
            if !(readable || rule.access == Access::Deny) || !intersects(&rule.filter, filter) {
                continue;
            }
            let covering = covers(&rule.filter, filter);
            match (readable, covering) {
                // Every topic not decided before is refused here.
                (false, true) => {
                    return if some_readable {
                        SubscribeAccess::GrantedFiltered
                    } else {
                        SubscribeAccess::Denied
                    };
                }
                (false, false) => some_denied = true,
                // Every topic not decided before is readable here.
                (true, true) => {
                    return if some_denied {
                        SubscribeAccess::GrantedFiltered
                    } else {
                        SubscribeAccess::Granted
                    };
                }
                (true, false) => some_readable = true,
            }
        }
        if some_readable {
            SubscribeAccess::GrantedFiltered
        } else {
            SubscribeAccess::Denied
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::filter_set::tests::filter_strategy;
    use crate::protocol::topic::validate_topic_name;
    use proptest::prelude::*;

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
    fn allow_all_allows_everything_cheaply() {
        let acl = ClientAcl::allow_all();
        assert!(acl.is_allow_all());
        assert!(acl.may_publish("$SYS/x") && acl.may_read("a"));
        assert_eq!(acl.subscribe("#"), SubscribeAccess::Granted);
        assert!(!parse("").for_client(None, "c").is_allow_all());
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

    #[test]
    fn subscribe_refuses_filters_no_read_rule_reaches() {
        let acl =
            parse("topic read foo/#\ntopic write bar/#\ntopic deny foo/secret/#\n").for_client(None, "c");
        assert_eq!(acl.subscribe("bar/#"), SubscribeAccess::Denied, "write-only is not readable");
        assert_eq!(acl.subscribe("baz"), SubscribeAccess::Denied);
        assert_eq!(acl.subscribe("foo/secret/x"), SubscribeAccess::Denied, "a deny rule covers it");
        assert_eq!(acl.subscribe("foo/public/+"), SubscribeAccess::Granted);
        assert_eq!(acl.subscribe("foo/#"), SubscribeAccess::GrantedFiltered);
        assert_eq!(acl.subscribe("#"), SubscribeAccess::GrantedFiltered);
        assert_eq!(acl.subscribe("$SYS/#"), SubscribeAccess::Denied);
    }

    #[test]
    fn refuses_test_nosubscribe_as_the_paho_suites_expect() {
        let acl = parse("topic deny test/nosubscribe\ntopic readwrite #\n").for_client(None, "c");
        assert_eq!(acl.subscribe("test/nosubscribe"), SubscribeAccess::Denied);
        assert_eq!(acl.subscribe("TopicA/+"), SubscribeAccess::Granted);
        assert_eq!(acl.subscribe("#"), SubscribeAccess::GrantedFiltered);
    }

    /// Every topic of up to four levels over the names the generated filters use, and one
    /// they do not (`z`).
    fn topics() -> Vec<String> {
        let names = ["a", "b", "$s", "", "z"];
        let mut all = Vec::new();
        let mut layer: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        for _ in 0..4 {
            all.extend(layer.iter().cloned());
            layer = layer.iter().flat_map(|t| names.iter().map(move |n| format!("{t}/{n}"))).collect();
        }
        all.retain(|t| validate_topic_name(t).is_ok());
        all
    }

    fn rule_strategy() -> impl Strategy<Value = String> {
        let access = prop::sample::select(&["read ", "write ", "readwrite ", "deny ", ""][..]);
        (access, filter_strategy()).prop_map(|(access, filter)| format!("topic {access}{filter}\n"))
    }

    proptest! {
        #[test]
        fn subscribe_answers_are_sound(
            rules in prop::collection::vec(rule_strategy(), 0..6),
            filter in filter_strategy(),
        ) {
            let acl = parse(&rules.concat()).for_client(None, "c");
            let readable: Vec<bool> =
                topics().iter().filter(|t| matches(&filter, t)).map(|t| acl.may_read(t)).collect();
            match acl.subscribe(&filter) {
                SubscribeAccess::Denied => prop_assert!(readable.iter().all(|r| !r), "{:?} {}", rules, filter),
                SubscribeAccess::Granted => prop_assert!(readable.iter().all(|r| *r), "{:?} {}", rules, filter),
                SubscribeAccess::GrantedFiltered => {}
            }
        }
    }
}
