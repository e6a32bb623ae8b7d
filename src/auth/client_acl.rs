//! The rules one client is held to ([`ClientAcl`]), compiled from the ACL file by
//! [`AclFile::for_client`](super::acl::AclFile::for_client), and the checks the shard makes
//! with them: PUBLISH and wills ([`ClientAcl::may_publish`]), deliveries and retained
//! messages ([`ClientAcl::may_read`]), and SUBSCRIBE ([`ClientAcl::subscribe`]), which
//! judges a filter once for every topic it can match with the algebra of
//! [`filter_set`](super::filter_set).

use super::acl::Access;
use super::filter_set::{covers, intersects};
use crate::protocol::topic::matches;
use std::sync::Arc;

/// One compiled rule: substituted, ready to match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rule {
    pub(super) access: Access,
    pub(super) filter: Box<str>,
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
    /// The client's rules in check order (an empty list denies everything), and the
    /// notice to log for it, if any.
    pub(super) fn checked(rules: Vec<Rule>, notice: Option<Box<str>>) -> ClientAcl {
        ClientAcl { rules: Rules::Checked(rules.into()), notice }
    }

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
    use crate::auth::acl::AclFile;
    use crate::auth::filter_set::tests::filter_strategy;
    use crate::protocol::topic::validate_topic_name;
    use proptest::prelude::*;
    use std::path::Path;

    fn parse(text: &str) -> AclFile {
        AclFile::parse(text.as_bytes(), Path::new("acl")).unwrap()
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
