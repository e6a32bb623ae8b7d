//! Topic names, topic filters and shared-subscription filters: validation and matching.
//!
//! Pure functions over `&str`; matching allocates nothing. The checks that the UTF-8
//! decoder already does (well-formed UTF-8) are not repeated here, but the rules that
//! are about topics (wildcards, U+0000, length, `$` topics) all live in this file.

use std::fmt;

/// Longest topic name or filter, in bytes: the length prefix of a UTF-8 string is 16 bits.
pub const TOPIC_LEN_MAX_BYTES: usize = 65_535;

/// Most levels a topic name or filter may have: 201, that is at most 200 `/`. The spec
/// sets no bound (only the 65,535-byte length, [MQTT-4.7.3-3]), but every level of a
/// filter is a node in the trie and every level of a name a step of the walk, so a topic
/// of 65,535 `/` would cost 65,536 of each per packet. Mosquitto refuses more than 200
/// `/` (`TOPIC_HIERARCHY_LIMIT`, lib/util_topic.c, added for CVE-2019-11779) in names,
/// filters and wills alike; the same bound answers its clients the same way.
pub const TOPIC_LEVELS_MAX: usize = 201;

/// Prefix that marks a shared subscription's filter (`$share/{group}/{filter}`).
pub const SHARED_PREFIX: &str = "$share/";

/// Why a topic name or filter was refused; each variant names the rule it enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicError {
    /// [MQTT-4.7.3-1] Topic names and filters must be at least one character long.
    Empty,
    /// [MQTT-4.7.3-3] Topic names and filters must not encode to more than 65,535 bytes.
    TooLong,
    /// [MQTT-4.7.3-2] Topic names and filters must not include U+0000.
    NullCharacter,
    /// [MQTT-3.3.2-2] A topic name (the PUBLISH topic) must not contain `+` or `#`.
    WildcardInTopicName,
    /// 3.1.1 [MQTT-4.7.1-2], 5.0 [MQTT-4.7.1-1]: `#` must be alone in its level and the last
    /// character of the filter.
    MultiLevelWildcardNotLast,
    /// 3.1.1 [MQTT-4.7.1-3], 5.0 [MQTT-4.7.1-2]: `+` must occupy an entire level of the filter.
    SingleLevelWildcardNotAlone,
    /// 5.0 [MQTT-4.8.2-1] A shared subscription's share name must be at least one character long.
    EmptyShareName,
    /// 5.0 [MQTT-4.8.2-2] A share name must not contain `/`, `+` or `#`.
    InvalidShareName,
    /// 5.0 [MQTT-4.8.2-2] The share name must be followed by `/` and a topic filter.
    MissingSharedFilter,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            TopicError::Empty => "topic is empty [MQTT-4.7.3-1]",
            TopicError::TooLong => "topic is longer than 65535 bytes [MQTT-4.7.3-3]",
            TopicError::NullCharacter => "topic contains U+0000 [MQTT-4.7.3-2]",
            TopicError::WildcardInTopicName => "topic name contains a wildcard [MQTT-3.3.2-2]",
            TopicError::MultiLevelWildcardNotLast => {
                "'#' is not alone in the last level of the filter (3.1.1 [MQTT-4.7.1-2], 5.0 [MQTT-4.7.1-1])"
            }
            TopicError::SingleLevelWildcardNotAlone => {
                "'+' is not alone in its level of the filter (3.1.1 [MQTT-4.7.1-3], 5.0 [MQTT-4.7.1-2])"
            }
            TopicError::EmptyShareName => "shared subscription has an empty share name (5.0 [MQTT-4.8.2-1])",
            TopicError::InvalidShareName => "share name contains '/', '+' or '#' (5.0 [MQTT-4.8.2-2])",
            TopicError::MissingSharedFilter => {
                "share name is not followed by '/' and a topic filter (5.0 [MQTT-4.8.2-2])"
            }
        };
        f.write_str(text)
    }
}

impl std::error::Error for TopicError {}

/// The rules shared by names and filters: non-empty, bounded length, no U+0000.
fn validate_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > TOPIC_LEN_MAX_BYTES {
        return Err(TopicError::TooLong);
    }
    if topic.as_bytes().contains(&0) {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// Whether a topic name or filter has more than [`TOPIC_LEVELS_MAX`] levels. Kept apart
/// from the spec's rules above (the validators): the decoders apply it to what clients
/// send, while the trie and the ACL file take any valid topic. A topic shorter than that
/// many bytes cannot have so many levels, so the PUBLISH path counts nothing for the
/// topics it nearly always sees.
#[inline]
pub fn too_many_levels(topic: &str) -> bool {
    let separators_max = TOPIC_LEVELS_MAX - 1;
    topic.len() > separators_max && topic.bytes().filter(|&b| b == b'/').count() > separators_max
}

/// Checks a topic name as it appears in PUBLISH (and in a will).
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    validate_common(name)?;
    if name.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInTopicName);
    }
    Ok(())
}

/// Checks a (non-shared) topic filter as it appears in SUBSCRIBE or UNSUBSCRIBE.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    validate_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !is_last) {
            return Err(TopicError::MultiLevelWildcardNotLast);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::SingleLevelWildcardNotAlone);
        }
    }
    Ok(())
}

/// The two parts of a shared subscription's filter, borrowed from `$share/{group}/{filter}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name: which group of subscribers shares the messages.
    pub group: &'a str,
    /// The topic filter the group subscribes to.
    pub filter: &'a str,
}

/// Splits a `$share/{group}/{filter}` filter; `Ok(None)` when the filter is not shared.
///
/// A non-shared filter is returned as `Ok(None)` without being checked: pass it to
/// [`validate_topic_filter`]. A shared one is checked whole, its inner filter included.
pub fn parse_shared(filter: &str) -> Result<Option<SharedFilter<'_>>, TopicError> {
    let Some(rest) = filter.strip_prefix(SHARED_PREFIX) else {
        return Ok(None);
    };
    // The outer filter's length and U+0000 bound both parts at once.
    validate_common(filter)?;
    let (group, inner) = match rest.find('/') {
        Some(slash) => (&rest[..slash], Some(&rest[slash + 1..])),
        None => (rest, None),
    };
    if group.is_empty() {
        return Err(TopicError::EmptyShareName);
    }
    if group.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::InvalidShareName);
    }
    let inner = match inner {
        Some(inner) if !inner.is_empty() => inner,
        _ => return Err(TopicError::MissingSharedFilter),
    };
    validate_topic_filter(inner)?;
    Ok(Some(SharedFilter { group, filter: inner }))
}

/// Whether `topic` (a valid topic name) matches `filter` (a valid, non-shared filter).
///
/// `+` matches exactly one level, `#` the rest of the topic including its parent level
/// (`a/#` matches `a`), and empty levels are levels (`+/a` matches `/a`).
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    // [MQTT-4.7.2-1] A filter starting with a wildcard must not match a topic starting
    // with `$`: `#` must not hand `$SYS` statistics to every catch-all subscriber.
    if topic.starts_with('$') && matches!(filter_levels.clone().next(), Some("+" | "#")) {
        return false;
    }
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_topic_names() {
        let long = "a".repeat(TOPIC_LEN_MAX_BYTES);
        let too_long = "a".repeat(TOPIC_LEN_MAX_BYTES + 1);
        let cases: &[(&str, Result<(), TopicError>)] = &[
            ("a", Ok(())),
            ("a/b", Ok(())),
            ("/", Ok(())),
            ("//", Ok(())),
            ("/a", Ok(())),
            ("a/", Ok(())),
            ("$SYS/broker", Ok(())),
            ("caf\u{e9}/\u{1f600}", Ok(())),
            (&long, Ok(())),
            ("", Err(TopicError::Empty)),
            (&too_long, Err(TopicError::TooLong)),
            ("a\0b", Err(TopicError::NullCharacter)),
            ("+", Err(TopicError::WildcardInTopicName)),
            ("a/+", Err(TopicError::WildcardInTopicName)),
            ("#", Err(TopicError::WildcardInTopicName)),
            ("a/#", Err(TopicError::WildcardInTopicName)),
            ("a+b", Err(TopicError::WildcardInTopicName)),
            ("a#b", Err(TopicError::WildcardInTopicName)),
        ];
        for (name, expected) in cases {
            assert_eq!(validate_topic_name(name), *expected, "topic name {name:?}");
        }
    }

    #[test]
    fn validates_topic_filters() {
        let too_long = "a".repeat(TOPIC_LEN_MAX_BYTES + 1);
        let cases: &[(&str, Result<(), TopicError>)] = &[
            ("abc", Ok(())),
            ("a/b", Ok(())),
            ("/", Ok(())),
            ("//", Ok(())),
            ("a/b/+", Ok(())),
            ("+/a", Ok(())),
            ("+", Ok(())),
            ("+//+", Ok(())),
            ("+/+/#", Ok(())),
            ("a/b/#", Ok(())),
            ("#", Ok(())),
            ("/#", Ok(())),
            ("$SYS/#", Ok(())),
            ("", Err(TopicError::Empty)),
            (&too_long, Err(TopicError::TooLong)),
            ("a/\0", Err(TopicError::NullCharacter)),
            ("++", Err(TopicError::SingleLevelWildcardNotAlone)),
            ("b+/", Err(TopicError::SingleLevelWildcardNotAlone)),
            ("a/+b", Err(TopicError::SingleLevelWildcardNotAlone)),
            ("+#", Err(TopicError::MultiLevelWildcardNotLast)),
            ("a#", Err(TopicError::MultiLevelWildcardNotLast)),
            ("a/#/", Err(TopicError::MultiLevelWildcardNotLast)),
            ("a/#b", Err(TopicError::MultiLevelWildcardNotLast)),
            ("a/##", Err(TopicError::MultiLevelWildcardNotLast)),
            ("a/#+", Err(TopicError::MultiLevelWildcardNotLast)),
            ("#/a", Err(TopicError::MultiLevelWildcardNotLast)),
        ];
        for (filter, expected) in cases {
            assert_eq!(validate_topic_filter(filter), *expected, "filter {filter:?}");
        }
    }

    #[test]
    fn parses_shared_subscription_filters() {
        let shared = |group, filter| Ok(Some(SharedFilter { group, filter }));
        let cases: &[(&str, Result<Option<SharedFilter<'_>>, TopicError>)] = &[
            ("a/b", Ok(None)),
            ("$share", Ok(None)),
            ("$shared/g/a", Ok(None)),
            ("$SYS/#", Ok(None)),
            ("$share/g/a/b", shared("g", "a/b")),
            ("$share/g/#", shared("g", "#")),
            ("$share/g/+/x", shared("g", "+/x")),
            ("$share/g//", shared("g", "/")),
            ("$share/$g/$SYS/a", shared("$g", "$SYS/a")),
            ("$share/", Err(TopicError::EmptyShareName)),
            ("$share//a", Err(TopicError::EmptyShareName)),
            ("$share/g+/a", Err(TopicError::InvalidShareName)),
            ("$share/#/a", Err(TopicError::InvalidShareName)),
            ("$share/g", Err(TopicError::MissingSharedFilter)),
            ("$share/g/", Err(TopicError::MissingSharedFilter)),
            ("$share/g/a/#/b", Err(TopicError::MultiLevelWildcardNotLast)),
            ("$share/g/a+", Err(TopicError::SingleLevelWildcardNotAlone)),
            ("$share/g/a\0", Err(TopicError::NullCharacter)),
        ];
        for (filter, expected) in cases {
            assert_eq!(parse_shared(filter), *expected, "filter {filter:?}");
        }
    }

    #[test]
    fn matches_topics_against_filters() {
        let cases: &[(&str, &str, bool)] = &[
            ("test", "test", true),
            ("test", "tes", false),
            ("test", "test/", false),
            ("$SYS", "$SYS", true),
            ("a/b", "a/b", true),
            ("a/b", "a", false),
            ("a", "a/b", false),
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
            ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
            ("sport/#", "sport", true),
            ("sport/#", "sports", false),
            ("#", "a", true),
            ("#", "a/b/c", true),
            ("#", "/", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+", "a", true),
            ("+", "a/b", false),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("+/b/+", "a/b/c", true),
            ("+/+/#", "a/b", true),
            ("+/+/#", "a", false),
            ("a//b", "a//b", true),
            ("a/+/b", "a//b", true),
            ("a/+/b", "a/b", false),
            ("a/#", "a/", true),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), *expected, "{filter:?} vs {topic:?}");
        }
    }

    #[test]
    fn wildcard_first_level_does_not_match_dollar_topics() {
        let cases: &[(&str, &str, bool)] = &[
            ("#", "$SYS", false),
            ("#", "$SYS/broker/uptime", false),
            ("+", "$SYS", false),
            ("+/#", "$SYS", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("+/+", "$a/b", false),
            ("$SYS/#", "$SYS", true),
            ("$SYS/#", "$SYS/", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("#", "/$SYS/monitor", true),
            ("a/+", "a/$b", true),
            ("a/#", "a/$b/c", true),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), *expected, "{filter:?} vs {topic:?}");
        }
    }

    #[test]
    fn topics_of_more_than_201_levels_are_too_many() {
        let deepest = "/".repeat(TOPIC_LEVELS_MAX - 1);
        let too_deep = "/".repeat(TOPIC_LEVELS_MAX);
        assert!(!too_many_levels(&deepest));
        assert!(too_many_levels(&too_deep));
        assert!(too_many_levels(&format!("{too_deep}#")));
        assert!(!too_many_levels(&"a".repeat(TOPIC_LEVELS_MAX * 10)), "long but shallow");
        let shared_deepest = format!("$share/g/{}", "/".repeat(TOPIC_LEVELS_MAX - 3));
        assert!(!too_many_levels(&shared_deepest));
        assert!(too_many_levels(&format!("{shared_deepest}/")), "the share prefix counts");
        // The 65,535 `/` of the report: 65,536 levels.
        assert!(too_many_levels(&"/".repeat(TOPIC_LEN_MAX_BYTES)));
    }

    #[test]
    fn topic_errors_display_their_conformance_id() {
        let errors = [
            (TopicError::Empty, "MQTT-4.7.3-1"),
            (TopicError::TooLong, "MQTT-4.7.3-3"),
            (TopicError::NullCharacter, "MQTT-4.7.3-2"),
            (TopicError::WildcardInTopicName, "MQTT-3.3.2-2"),
            (TopicError::MultiLevelWildcardNotLast, "MQTT-4.7.1-2"),
            (TopicError::SingleLevelWildcardNotAlone, "MQTT-4.7.1-3"),
            (TopicError::EmptyShareName, "MQTT-4.8.2-1"),
            (TopicError::InvalidShareName, "MQTT-4.8.2-2"),
            (TopicError::MissingSharedFilter, "MQTT-4.8.2-2"),
        ];
        for (error, id) in errors {
            assert!(error.to_string().contains(id), "{error:?} lacks {id}");
        }
    }
}
