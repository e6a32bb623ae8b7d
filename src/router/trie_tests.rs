//! Unit tests for [`Trie`](super::Trie); the model-based property test is in `proptests.rs`.

use super::*;
use crate::router::{ShareStrategy, Target};

const THIS_SHARD: u16 = 0;

fn trie(filters: &[&str]) -> Trie<u32, &'static str> {
    let mut trie = Trie::new(THIS_SHARD);
    for (sub, filter) in filters.iter().enumerate() {
        trie.subscribe(filter, sub as u32, "v");
    }
    trie
}

/// The subscribers (indexes into the filter list) matching `topic`, sorted.
fn matching(trie: &Trie<u32, &'static str>, topic: &str) -> Vec<u32> {
    let mut subs = Vec::new();
    trie.for_each_match(topic, |sub, _| subs.push(sub));
    subs.sort_unstable();
    subs
}

fn remote(trie: &Trie<u32, &'static str>, topic: &str) -> Vec<u16> {
    let mut set = ShardSet::new();
    trie.remote_shards(topic, &mut set);
    set.iter().collect()
}

#[test]
fn matches_exact_plus_and_hash_filters() {
    let filters = [
        "a/b/c",   // 0
        "a/+/c",   // 1
        "a/#",     // 2
        "#",       // 3
        "+/+/+",   // 4
        "a/b",     // 5
        "a/+",     // 6
        "b/#",     // 7
        "+/b/#",   // 8
        "a/b/c/d", // 9
    ];
    let trie = trie(&filters);
    let cases: &[(&str, &[u32])] = &[
        ("a/b/c", &[0, 1, 2, 3, 4, 8]),
        ("a/x/c", &[1, 2, 3, 4]),
        ("a/b", &[2, 3, 5, 6, 8]),
        ("a", &[2, 3]),
        ("b", &[3, 7]),
        ("x/b", &[3, 8]),
        ("a/b/c/d", &[2, 3, 8, 9]),
        ("c", &[3]),
    ];
    for (topic, expected) in cases {
        assert_eq!(matching(&trie, topic), *expected, "topic {topic:?}");
    }
}

#[test]
fn empty_levels_are_levels() {
    let trie = trie(&["/", "+/+", "/+", "+", "a//b", "a/+/b", "a/", "/#"]);
    let cases: &[(&str, &[u32])] = &[
        ("/", &[0, 1, 2, 7]),
        ("/a", &[1, 2, 7]),
        ("a", &[3]),
        ("a//b", &[4, 5]),
        ("a/", &[1, 6]),
        ("a/b", &[1]),
    ];
    for (topic, expected) in cases {
        assert_eq!(matching(&trie, topic), *expected, "topic {topic:?}");
    }
}

#[test]
fn wildcards_at_first_level_skip_dollar_topics() {
    let trie = trie(&["#", "+/up", "+", "$SYS/#", "$SYS/+", "a/+", "+/#"]);
    assert_eq!(matching(&trie, "$SYS/up"), [3, 4]);
    assert_eq!(matching(&trie, "$SYS"), [3]);
    assert_eq!(matching(&trie, "a/$x"), [0, 5, 6]);
    assert_eq!(matching(&trie, "x/up"), [0, 1, 6]);
    let mut trie = trie;
    trie.add_remote_interest("#", 3);
    assert_eq!(remote(&trie, "$SYS/up"), [] as [u16; 0]);
    assert_eq!(remote(&trie, "up"), [3]);
}

#[test]
fn overlapping_filters_yield_one_call_each() {
    let mut trie = Trie::new(THIS_SHARD);
    trie.subscribe("a/+", 7u32, 1);
    trie.subscribe("a/#", 7, 2);
    trie.subscribe("a/b", 7, 3);
    let mut values = Vec::new();
    trie.for_each_match("a/b", |sub, value| values.push((sub, *value)));
    values.sort_unstable();
    assert_eq!(values, [(7, 1), (7, 2), (7, 3)]);
}

#[test]
fn resubscribing_replaces_the_value() {
    let mut trie = Trie::new(THIS_SHARD);
    assert_eq!(trie.subscribe("a/+", 1u32, "qos0"), None);
    assert_eq!(trie.subscribe("a/+", 1, "qos1"), Some("qos0"));
    assert_eq!(trie.len(), 1);
    let mut values = Vec::new();
    trie.for_each_match("a/b", |_, value| values.push(*value));
    assert_eq!(values, ["qos1"]);
}

#[test]
fn unsubscribe_returns_the_value_and_prunes_nodes() {
    let mut trie = Trie::new(THIS_SHARD);
    trie.subscribe("a/b/c", 1u32, 10);
    trie.subscribe("a/+/#", 2, 20);
    trie.subscribe("a/b", 3, 30);
    assert_eq!(trie.len(), 3);
    assert_eq!(trie.node_count(), 6);
    assert_eq!(trie.unsubscribe("a/b/c", 1), Some(10));
    // `c` is gone; `a/b` still holds subscriber 3.
    assert_eq!(trie.node_count(), 5);
    assert_eq!(trie.unsubscribe("a/+/#", 2), Some(20));
    assert_eq!(trie.node_count(), 3);
    assert_eq!(trie.unsubscribe("a/b", 3), Some(30));
    assert!(trie.is_empty());
    assert_eq!(trie.len(), 0);
}

#[test]
fn unsubscribe_of_unknown_subscription_changes_nothing() {
    let mut trie = trie(&["a/b"]);
    assert_eq!(trie.unsubscribe("a/b", 9), None);
    assert_eq!(trie.unsubscribe("a/c", 0), None);
    assert_eq!(trie.unsubscribe("a", 0), None);
    assert_eq!(trie.unsubscribe("a/b/#", 0), None);
    assert_eq!(trie.len(), 1);
    assert_eq!(matching(&trie, "a/b"), [0]);
}

#[test]
fn churn_reuses_freed_nodes() {
    let mut trie = Trie::new(THIS_SHARD);
    for round in 0..3 {
        for i in 0..100u32 {
            trie.subscribe(&format!("site/{}/device/{i}/+", i % 10), i, round);
        }
        for i in 0..100u32 {
            assert_eq!(trie.unsubscribe(&format!("site/{}/device/{i}/+", i % 10), i), Some(round));
        }
        assert!(trie.is_empty());
    }
    // One round's worth of nodes, allocated once.
    assert_eq!(trie.nodes.len(), 1 + 1 + 10 + 10 + 100 + 100);
}

#[test]
fn remote_interest_counts_until_zero() {
    let mut trie = trie(&[]);
    trie.add_remote_interest("a/+", 2);
    trie.add_remote_interest("a/+", 2);
    trie.add_remote_interest("a/b", 5);
    trie.add_remote_interest("#", 1023);
    assert_eq!(remote(&trie, "a/b"), [2, 5, 1023]);
    assert_eq!(remote(&trie, "a/c"), [2, 1023]);
    assert_eq!(remote(&trie, "b"), [1023]);
    assert!(trie.remove_remote_interest("a/+", 2));
    assert_eq!(remote(&trie, "a/c"), [2, 1023]);
    assert!(trie.remove_remote_interest("a/+", 2));
    assert_eq!(remote(&trie, "a/c"), [1023]);
    assert!(!trie.remove_remote_interest("a/+", 2));
    assert!(!trie.remove_remote_interest("x/y", 2));
    assert!(trie.remove_remote_interest("a/b", 5));
    assert!(trie.remove_remote_interest("#", 1023));
    assert!(trie.is_empty());
    // Remote interest alone never counts as a local subscription.
    assert_eq!(trie.len(), 0);
}

#[test]
#[should_panic(expected = "remote interest from this shard")]
fn remote_interest_from_this_shard_is_a_bug() {
    trie(&[]).add_remote_interest("a", THIS_SHARD);
}

#[test]
fn shared_groups_expose_members_and_remote_counts() {
    let mut trie: Trie<u32, u8> = Trie::new(THIS_SHARD);
    assert_eq!(trie.subscribe_shared("g", "a/+", 1, 0), None);
    assert_eq!(trie.subscribe_shared("g", "a/+", 1, 1), Some(0));
    trie.subscribe_shared("g", "a/+", 2, 2);
    trie.subscribe_shared("h", "a/#", 3, 3);
    trie.add_remote_shared("g", "a/+", 4);
    trie.add_remote_shared("g", "a/+", 4);
    trie.add_remote_shared("k", "a/b", 6);
    assert_eq!(trie.len(), 3);
    // Shared members are not plain subscribers.
    let mut plain = 0;
    trie.for_each_match("a/b", |_, _| plain += 1);
    assert_eq!(plain, 0);
    let mut groups = Vec::new();
    trie.for_each_shared_match("a/b", |group| {
        let members: Vec<(u32, u8)> = group.members().to_vec();
        let remote: Vec<(u16, u32)> = group.remote_counts().iter().collect();
        groups.push((group.group().to_string(), members, remote));
    });
    groups.sort();
    assert_eq!(
        groups,
        [
            ("g".to_string(), vec![(1, 1), (2, 2)], vec![(4, 2)]),
            ("h".to_string(), vec![(3, 3)], vec![]),
            ("k".to_string(), vec![], vec![(6, 1)]),
        ]
    );
}

#[test]
fn shared_group_lives_while_any_shard_has_members() {
    let mut trie: Trie<u32, ()> = Trie::new(THIS_SHARD);
    trie.subscribe_shared("g", "a", 1, ());
    trie.add_remote_shared("g", "a", 3);
    assert_eq!(trie.unsubscribe_shared("g", "a", 1), Some(()));
    assert_eq!(trie.unsubscribe_shared("g", "a", 1), None);
    let group = trie.shared_group("g", "a").expect("shard 3 still has a member");
    assert!(group.members().is_empty());
    let select = group.select(ShareStrategy::RoundRobin, 0, 0);
    assert_eq!(select, Some(Target::Shard(3)));
    assert!(!trie.remove_remote_shared("g", "a", 2));
    assert!(!trie.remove_remote_shared("x", "a", 3));
    assert!(trie.remove_remote_shared("g", "a", 3));
    assert!(trie.shared_group("g", "a").is_none());
    assert!(trie.is_empty());
}

#[test]
fn shared_group_selects_locally_for_forwarded_messages() {
    let mut trie: Trie<u32, ()> = Trie::new(THIS_SHARD);
    for sub in [10, 11, 12] {
        trie.subscribe_shared("g", "a/+", sub, ());
    }
    let group = trie.shared_group("g", "a/+").expect("group exists");
    let picked: Vec<u32> = (0..6)
        .filter_map(|_| group.select_local(ShareStrategy::RoundRobin, 0, 0))
        .map(|(sub, _)| *sub)
        .collect();
    assert_eq!(picked, [10, 11, 12, 10, 11, 12]);
    assert!(trie.shared_group("g", "a/b").is_none());
    assert!(trie.shared_group("h", "a/+").is_none());
}

#[test]
fn unsubscribe_shared_keeps_the_sticky_member() {
    let mut trie: Trie<u32, ()> = Trie::new(THIS_SHARD);
    for sub in [10, 11, 12] {
        trie.subscribe_shared("g", "t", sub, ());
    }
    let sticky = |trie: &Trie<u32, ()>| {
        let group = trie.shared_group("g", "t").expect("group exists");
        match group.select(ShareStrategy::Sticky, 0, u64::MAX) {
            Some(Target::Local(index)) => group.members()[index].0,
            other => panic!("expected a local member, got {other:?}"),
        }
    };
    assert_eq!(sticky(&trie), 12);
    trie.unsubscribe_shared("g", "t", 10);
    assert_eq!(sticky(&trie), 12);
}

#[test]
fn route_gives_local_remote_and_shared_in_one_walk() {
    let mut trie: Trie<u32, ()> = Trie::new(THIS_SHARD);
    trie.subscribe("a/#", 1, ());
    trie.subscribe_shared("g", "a/b", 2, ());
    trie.add_remote_interest("+/b", 7);
    let mut out = ShardSet::new();
    let (mut local, mut shared) = (Vec::new(), Vec::new());
    trie.route("a/b", &mut out, |sub, _| local.push(sub), |group| shared.push(group.group().to_string()));
    assert_eq!(local, [1]);
    assert_eq!(shared, ["g"]);
    assert_eq!(out.iter().collect::<Vec<_>>(), [7]);
}

#[test]
fn route_and_for_each_match_count_the_filters_that_matched() {
    let mut trie: Trie<u32, ()> = Trie::new(THIS_SHARD);
    trie.subscribe("a/b", 1, ());
    trie.subscribe("a/b", 2, ());
    let mut out = ShardSet::new();
    // One filter: no subscriber can appear twice, so the publish path skips the merge.
    assert_eq!(trie.route("a/b", &mut out, |_, _| {}, |_| {}), 1);
    trie.subscribe("a/+", 1, ());
    trie.subscribe_shared("g", "#", 3, ());
    trie.add_remote_interest("#", 7);
    // Two filters with local subscribers; shared groups and remote interest do not count.
    assert_eq!(trie.route("a/b", &mut out, |_, _| {}, |_| {}), 2);
    assert_eq!(trie.for_each_match("a/b", |_, _| {}), 2);
    assert_eq!(trie.for_each_match("x/y", |_, _| {}), 0);
}

#[test]
fn deep_topics_neither_recurse_nor_overflow() {
    // 30,000 levels, each with both a literal and a `+` child on the matching path:
    // the walk's stack spills to the heap instead of overflowing the thread's stack.
    let levels = 30_000;
    let exact = vec!["x"; levels].join("/");
    let mut trie = Trie::new(THIS_SHARD);
    trie.subscribe(&exact, 1u32, ());
    trie.subscribe(&vec!["+"; levels].join("/"), 2, ());
    trie.subscribe(&format!("{}/#", vec!["x"; levels / 2].join("/")), 3, ());
    assert_eq!(matching_unit(&trie, &exact), [1, 2, 3]);
    assert_eq!(trie.unsubscribe(&exact, 1), Some(()));
    assert_eq!(matching_unit(&trie, &exact), [2, 3]);
}

fn matching_unit(trie: &Trie<u32, ()>, topic: &str) -> Vec<u32> {
    let mut subs = Vec::new();
    trie.for_each_match(topic, |sub, _| subs.push(sub));
    subs.sort_unstable();
    subs
}

#[test]
fn walk_stack_is_last_in_first_out_across_the_spill() {
    let mut stack = WalkStack::new();
    for i in 0..40u32 {
        stack.push((i, i as usize));
    }
    for i in (0..40u32).rev() {
        assert_eq!(stack.pop(), Some((i, i as usize)));
    }
    assert_eq!(stack.pop(), None);
}

#[test]
fn thousands_of_subscribers_share_one_filter() {
    let mut trie = Trie::new(THIS_SHARD);
    for sub in 0..5_000u32 {
        assert_eq!(trie.subscribe("broadcast/#", sub, sub), None);
    }
    assert_eq!(trie.subscribe("broadcast/#", 42, 0), Some(42));
    let mut delivered = 0;
    trie.for_each_match("broadcast/all", |_, _| delivered += 1);
    assert_eq!(delivered, 5_000);
    for sub in (0..5_000u32).rev() {
        assert!(trie.unsubscribe("broadcast/#", sub).is_some(), "sub {sub}");
    }
    assert!(trie.is_empty());
}

#[test]
fn plus_and_hash_siblings_both_match_for_one_subscriber() {
    let mut t: Trie<u32, u8> = Trie::new(0);
    t.subscribe("u/v/#", 7, 0);
    t.subscribe("u/v/+", 7, 2);
    let mut got = Vec::new();
    t.for_each_match("u/v/x", |s, v| got.push((s, *v)));
    got.sort();
    assert_eq!(got, vec![(7, 0), (7, 2)]);
}

#[test]
fn every_change_moves_the_generation_and_lookups_do_not() {
    let mut t = trie(&[]);
    let mut last = t.generation();
    assert_ne!(last, 0, "0 marks empty route-cache slots");
    let mut changed = |t: &Trie<u32, &'static str>, what: &str| {
        assert_ne!(t.generation(), last, "{what} left the generation as it was");
        last = t.generation();
    };
    t.subscribe("a/b", 1, "v");
    changed(&t, "subscribe");
    t.subscribe("a/b", 1, "w");
    changed(&t, "a resubscribe with new options");
    t.subscribe_shared("g", "a/+", 2, "v");
    changed(&t, "subscribe_shared");
    t.add_remote_interest("a/#", 3);
    changed(&t, "add_remote_interest");
    t.add_remote_shared("g", "a/+", 3);
    changed(&t, "add_remote_shared");
    let before = t.generation();
    let _ = matching(&t, "a/b");
    let _ = remote(&t, "a/b");
    assert_eq!(t.generation(), before, "a lookup changes nothing");
    t.remove_remote_shared("g", "a/+", 3);
    changed(&t, "remove_remote_shared");
    t.remove_remote_interest("a/#", 3);
    changed(&t, "remove_remote_interest");
    t.unsubscribe_shared("g", "a/+", 2);
    changed(&t, "unsubscribe_shared");
    t.unsubscribe("a/b", 1);
    changed(&t, "unsubscribe");
}
