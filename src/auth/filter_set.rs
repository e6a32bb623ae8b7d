//! Topic filters as sets of topic names: whether one filter's topics include all of
//! another's ([`covers`]) and whether two filters share a topic ([`intersection_witness`]).
//!
//! A SUBSCRIBE is judged against the ACL once, for every topic its filter can match,
//! instead of once per delivery; these two questions are all that judgement needs. The set
//! of a filter is the topics [`matches`](crate::protocol::topic::matches) accepts, with its
//! two quirks: `a/#` includes `a`, and a filter whose first level is a wildcard includes no
//! topic whose first level starts with `$` [MQTT-4.7.2-1].
//!
//! Both functions take valid, non-shared filters (validate_topic_filter) and walk the two
//! level lists once: no allocation for [`covers`], one small string for a witness.

/// One level of a filter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level<'a> {
    Literal(&'a str),
    /// `+`: exactly one level.
    Single,
    /// `#`: this level and every one below it, or none (the parent).
    Multi,
}

fn levels(filter: &str) -> impl Iterator<Item = Level<'_>> + Clone {
    filter.split('/').map(|level| match level {
        "+" => Level::Single,
        "#" => Level::Multi,
        literal => Level::Literal(literal),
    })
}

/// Whether a wildcard in the first level may stand for `literal` there: never for a `$`
/// level [MQTT-4.7.2-1].
fn wildcard_takes(position: usize, literal: &str) -> bool {
    position > 0 || !literal.starts_with('$')
}

/// Whether every topic that `inner` matches is also matched by `outer`.
pub fn covers(outer: &str, inner: &str) -> bool {
    let mut outer = levels(outer);
    let mut inner = levels(inner);
    let mut position = 0;
    let first_inner_level_empty = inner.clone().next() == Some(Level::Literal(""));
    loop {
        match (outer.next(), inner.next()) {
            (None, None) => return true,
            // `#` takes what is left of `inner`, or nothing (the parent).
            (Some(Level::Multi), None) => return true,
            (Some(Level::Multi), Some(Level::Literal(literal))) => return wildcard_takes(position, literal),
            (Some(Level::Multi), Some(_)) => return true,
            // `inner` goes on (or is its parent through `#`) where `outer` has stopped.
            (None, Some(_)) => return false,
            // `+/#` is `#` less the parent, so it covers `inner`'s `#` where that parent is
            // the empty string, which is no topic [MQTT-4.7.3-1]: `#` alone or `/#`.
            (Some(Level::Single), Some(Level::Multi)) => {
                let parent_is_empty = position == 0 || (position == 1 && first_inner_level_empty);
                return parent_is_empty && outer.next() == Some(Level::Multi) && outer.next().is_none();
            }
            // `outer` needs a level here that `inner`'s parent match lacks, and `inner`'s `#`
            // reaches names that no literal level of `outer` holds.
            (Some(_), None | Some(Level::Multi)) => return false,
            (Some(Level::Single), Some(Level::Single)) => {}
            (Some(Level::Single), Some(Level::Literal(literal))) => {
                if !wildcard_takes(position, literal) {
                    return false;
                }
            }
            (Some(Level::Literal(_)), Some(Level::Single)) => return false,
            (Some(Level::Literal(a)), Some(Level::Literal(b))) => {
                if a != b {
                    return false;
                }
            }
        }
        position += 1;
    }
}

/// Whether some topic is matched by both filters.
pub fn intersects(a: &str, b: &str) -> bool {
    intersection_witness(a, b).is_some()
}

/// A topic that both filters match, if there is one (the proof that they intersect, which
/// the property tests check with the matcher itself).
pub fn intersection_witness(a: &str, b: &str) -> Option<String> {
    let witness = witness_levels(a, b)?.join("/");
    // One empty level is the empty string, which is no topic [MQTT-4.7.3-1] (`/#` and `+`
    // meet only there); that one level was forced by a literal, so no other witness exists.
    (!witness.is_empty()).then_some(witness)
}

/// A level name that no `$` rule refuses, for a level that both sides leave open.
const ANY_LEVEL: &str = "x";

fn witness_levels<'s>(a: &'s str, b: &'s str) -> Option<Vec<&'s str>> {
    let mut a = levels(a);
    let mut b = levels(b);
    let mut witness = Vec::new();
    loop {
        let position = witness.len();
        match (a.next(), b.next()) {
            (None, None) => return Some(witness),
            // One filter ends where the other's `#` matches the parent.
            (None, Some(Level::Multi)) | (Some(Level::Multi), None) => return Some(witness),
            (None, Some(_)) | (Some(_), None) => return None,
            (Some(Level::Multi), Some(level)) => return complete(witness, level, b),
            (Some(level), Some(Level::Multi)) => return complete(witness, level, a),
            (Some(Level::Single), Some(Level::Single)) => witness.push(ANY_LEVEL),
            (Some(Level::Single), Some(Level::Literal(literal)))
            | (Some(Level::Literal(literal)), Some(Level::Single)) => {
                if !wildcard_takes(position, literal) {
                    return None;
                }
                witness.push(literal);
            }
            (Some(Level::Literal(x)), Some(Level::Literal(y))) => {
                if x != y {
                    return None;
                }
                witness.push(x);
            }
        }
    }
}

/// Completes a witness where one filter has reached `#`: any topic of the other filter's
/// rest (`first` and what follows it) will do, if `#` may take its first level.
fn complete<'s>(
    mut witness: Vec<&'s str>,
    first: Level<'s>,
    rest: impl Iterator<Item = Level<'s>>,
) -> Option<Vec<&'s str>> {
    for level in std::iter::once(first).chain(rest) {
        match level {
            Level::Literal(literal) if !wildcard_takes(witness.len(), literal) => return None,
            Level::Literal(literal) => witness.push(literal),
            Level::Single => witness.push(ANY_LEVEL),
            // The other `#` takes this level, or nothing; one level keeps the topic non-empty.
            Level::Multi => {
                witness.push(ANY_LEVEL);
                break;
            }
        }
    }
    Some(witness)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::topic::{matches, validate_topic_filter, validate_topic_name};
    use proptest::prelude::*;

    #[test]
    fn covers_follows_wildcards_parents_and_dollar_topics() {
        let cases = [
            ("#", "a/b", true),
            ("#", "$SYS/#", false),
            ("#", "+/b", true),
            ("a/#", "a", true),
            ("a/#", "a/#", true),
            ("a", "a/#", false),
            ("a/+", "a/#", false),
            ("a/+", "a/b", true),
            ("a/b", "a/+", false),
            ("+/b", "$SYS/b", false),
            ("$SYS/#", "$SYS/broker/+", true),
            ("+", "+", true),
            ("a/+/c", "a/+/c", true),
            ("+/#", "#", true),
            ("a/+/#", "a/#", false),
            ("/+/#", "/#", true),
            ("//+/#", "//#", false),
        ];
        for (outer, inner, expected) in cases {
            assert_eq!(covers(outer, inner), expected, "covers({outer}, {inner})");
        }
    }

    #[test]
    fn intersects_with_a_witness_topic() {
        let cases = [
            ("#", "a/b", Some("a/b")),
            ("#", "$SYS/x", None),
            ("$SYS/#", "+/x", None),
            ("a/#", "a", Some("a")),
            ("a/+", "+/b", Some("a/b")),
            ("a/+", "b/+", None),
            ("a/#", "+/+/c", Some("a/x/c")),
            ("#", "#", Some("x")),
            ("a", "a/+", None),
            ("/#", "+", None),
        ];
        for (a, b, expected) in cases {
            assert_eq!(intersection_witness(a, b).as_deref(), expected, "({a}, {b})");
            assert_eq!(intersection_witness(b, a).is_some(), expected.is_some(), "({b}, {a})");
        }
    }

    /// Level names for filters and topics: `z` appears only in topics, so it stands for
    /// "some other name" when a witness needs one.
    const FILTER_LEVELS: [&str; 6] = ["a", "b", "$s", "", "+", "#"];
    const TOPIC_LEVELS: [&str; 5] = ["a", "b", "$s", "", "z"];
    /// One level deeper than the deepest filter, so `#` always has a topic below it.
    const TOPIC_DEPTH_MAX: usize = 5;

    fn all_topics() -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        let mut layer: Vec<String> = TOPIC_LEVELS.iter().map(|l| l.to_string()).collect();
        for _ in 0..TOPIC_DEPTH_MAX {
            topics.extend(layer.iter().cloned());
            layer = layer.iter().flat_map(|t| TOPIC_LEVELS.iter().map(move |l| format!("{t}/{l}"))).collect();
        }
        topics.retain(|t| validate_topic_name(t).is_ok());
        topics
    }

    pub(crate) fn filter_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(&FILTER_LEVELS[..]), 1..=4)
            .prop_map(|levels| levels.join("/"))
            .prop_filter("valid filter", |f| validate_topic_filter(f).is_ok())
    }

    proptest! {
        #[test]
        fn covers_agrees_with_the_matcher(outer in filter_strategy(), inner in filter_strategy()) {
            let topics = all_topics();
            let brute = topics.iter().all(|t| !matches(&inner, t) || matches(&outer, t));
            prop_assert_eq!(covers(&outer, &inner), brute, "covers({}, {})", outer, inner);
        }

        #[test]
        fn intersects_agrees_with_the_matcher(a in filter_strategy(), b in filter_strategy()) {
            let topics = all_topics();
            let brute = topics.iter().any(|t| matches(&a, t) && matches(&b, t));
            let witness = intersection_witness(&a, &b);
            prop_assert_eq!(witness.is_some(), brute, "intersects({}, {})", a, b);
            if let Some(topic) = witness {
                prop_assert!(validate_topic_name(&topic).is_ok(), "witness {:?}", topic);
                prop_assert!(matches(&a, &topic) && matches(&b, &topic), "witness {:?}", topic);
            }
        }
    }
}
