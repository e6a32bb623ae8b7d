//! The trie and the retained store against naive models built on `topic::matches`.

use super::{RetainedStore, ShardSet, Trie};
use crate::protocol::topic::matches;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use std::collections::BTreeMap;

const THIS_SHARD: u16 = 0;
const GROUPS: [&str; 2] = ["g", "h"];

fn join(levels: Vec<&str>) -> String {
    levels.join("/")
}

/// Valid filters over a small alphabet, so that random operations collide often.
fn filter() -> impl Strategy<Value = String> {
    let inner = select(&["a", "b", "$sys", "", "+"][..]);
    let last = select(&["a", "b", "$sys", "", "+", "#"][..]);
    (prop::collection::vec(inner, 0..3), last)
        .prop_map(|(mut levels, last)| {
            levels.push(last);
            join(levels)
        })
        .prop_filter("a filter is never empty", |f| !f.is_empty())
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(select(&["a", "b", "$sys", ""][..]), 1..5)
        .prop_map(join)
        .prop_filter("a topic is never empty", |t| !t.is_empty())
}

#[derive(Debug, Clone)]
enum Op {
    Subscribe(String, u8, u8),
    Unsubscribe(String, u8),
    UnsubscribeExisting(Index),
    AddRemote(String, u16),
    RemoveRemote(String, u16),
    SubscribeShared(&'static str, String, u8, u8),
    UnsubscribeShared(&'static str, String, u8),
    AddRemoteShared(&'static str, String, u16),
    RemoveRemoteShared(&'static str, String, u16),
}

fn op() -> impl Strategy<Value = Op> {
    let sub = 0u8..4;
    let shard = 1u16..4;
    let group = select(&GROUPS[..]);
    prop_oneof![
        4 => (filter(), sub.clone(), any::<u8>()).prop_map(|(f, s, v)| Op::Subscribe(f, s, v)),
        1 => (filter(), sub.clone()).prop_map(|(f, s)| Op::Unsubscribe(f, s)),
        3 => any::<Index>().prop_map(Op::UnsubscribeExisting),
        2 => (filter(), shard.clone()).prop_map(|(f, s)| Op::AddRemote(f, s)),
        2 => (filter(), shard.clone()).prop_map(|(f, s)| Op::RemoveRemote(f, s)),
        2 => (group.clone(), filter(), sub.clone(), any::<u8>())
            .prop_map(|(g, f, s, v)| Op::SubscribeShared(g, f, s, v)),
        2 => (group.clone(), filter(), sub).prop_map(|(g, f, s)| Op::UnsubscribeShared(g, f, s)),
        1 => (group.clone(), filter(), shard.clone())
            .prop_map(|(g, f, s)| Op::AddRemoteShared(g, f, s)),
        1 => (group, filter(), shard).prop_map(|(g, f, s)| Op::RemoveRemoteShared(g, f, s)),
    ]
}

/// What the trie should hold, as flat maps.
#[derive(Default)]
struct Model {
    plain: BTreeMap<(String, u8), u8>,
    remote: BTreeMap<(String, u16), u32>,
    shared: BTreeMap<(&'static str, String, u8), u8>,
    remote_shared: BTreeMap<(&'static str, String, u16), u32>,
}

/// Decrements a model count; returns whether there was one to take.
fn take_one<K: Ord>(counts: &mut BTreeMap<K, u32>, key: K) -> bool {
    match counts.get_mut(&key) {
        Some(count) if *count > 1 => *count -= 1,
        Some(_) => {
            counts.remove(&key);
        }
        None => return false,
    }
    true
}

fn apply(trie: &mut Trie<u8, u8>, model: &mut Model, op: Op) {
    match op {
        Op::Subscribe(f, s, v) => {
            assert_eq!(trie.subscribe(&f, s, v), model.plain.insert((f, s), v));
        }
        Op::Unsubscribe(f, s) => {
            assert_eq!(trie.unsubscribe(&f, s), model.plain.remove(&(f, s)));
        }
        Op::UnsubscribeExisting(index) => {
            if model.plain.is_empty() {
                return;
            }
            let key = model.plain.keys().nth(index.index(model.plain.len())).cloned();
            if let Some((f, s)) = key {
                assert_eq!(trie.unsubscribe(&f, s), model.plain.remove(&(f, s)));
            }
        }
        Op::AddRemote(f, shard) => {
            trie.add_remote_interest(&f, shard);
            *model.remote.entry((f, shard)).or_default() += 1;
        }
        Op::RemoveRemote(f, shard) => {
            let expected = take_one(&mut model.remote, (f.clone(), shard));
            assert_eq!(trie.remove_remote_interest(&f, shard), expected);
        }
        Op::SubscribeShared(g, f, s, v) => {
            assert_eq!(trie.subscribe_shared(g, &f, s, v), model.shared.insert((g, f, s), v));
        }
        Op::UnsubscribeShared(g, f, s) => {
            assert_eq!(trie.unsubscribe_shared(g, &f, s), model.shared.remove(&(g, f, s)));
        }
        Op::AddRemoteShared(g, f, shard) => {
            trie.add_remote_shared(g, &f, shard);
            *model.remote_shared.entry((g, f, shard)).or_default() += 1;
        }
        Op::RemoveRemoteShared(g, f, shard) => {
            let expected = take_one(&mut model.remote_shared, (g, f.clone(), shard));
            assert_eq!(trie.remove_remote_shared(g, &f, shard), expected);
        }
    }
}

/// A matching shared group, flattened: (group, sorted members, remote counts).
type GroupView = (String, Vec<(u8, u8)>, Vec<(u16, u32)>);
/// The model's shared groups matching a topic: (group, filter) → (members, remote counts).
type GroupsByPair<'m> = BTreeMap<(&'m str, &'m str), (Vec<(u8, u8)>, Vec<(u16, u32)>)>;

fn check_topic(trie: &Trie<u8, u8>, model: &Model, topic: &str) {
    let mut local = Vec::new();
    trie.for_each_match(topic, |s, v| local.push((s, *v)));
    local.sort_unstable();
    let mut expected: Vec<(u8, u8)> =
        model.plain.iter().filter(|((f, _), _)| matches(f, topic)).map(|((_, s), v)| (*s, *v)).collect();
    expected.sort_unstable();
    assert_eq!(local, expected, "local matches for {topic:?}");

    let mut shards = ShardSet::new();
    trie.remote_shards(topic, &mut shards);
    let mut expected = ShardSet::new();
    for (f, shard) in model.remote.keys() {
        if matches(f, topic) {
            expected.insert(*shard);
        }
    }
    assert_eq!(shards, expected, "remote shards for {topic:?}");

    let mut groups: Vec<GroupView> = Vec::new();
    trie.for_each_shared_match(topic, |group| {
        let mut members = group.members().to_vec();
        members.sort_unstable();
        let remote = group.remote_counts().iter().collect();
        groups.push((group.group().to_string(), members, remote));
    });
    groups.sort();
    let mut by_pair: GroupsByPair<'_> = BTreeMap::new();
    for ((g, f, s), v) in &model.shared {
        if matches(f, topic) {
            by_pair.entry((g, f)).or_default().0.push((*s, *v));
        }
    }
    for ((g, f, shard), count) in &model.remote_shared {
        if matches(f, topic) {
            by_pair.entry((g, f)).or_default().1.push((*shard, *count));
        }
    }
    let mut expected: Vec<GroupView> =
        by_pair.into_iter().map(|((g, _), (members, remote))| (g.to_string(), members, remote)).collect();
    expected.sort();
    assert_eq!(groups, expected, "shared groups for {topic:?}");

    let (mut routed_local, mut routed_shards, mut routed_groups) = (0, ShardSet::new(), 0);
    trie.route(topic, &mut routed_shards, |_, _| routed_local += 1, |_| routed_groups += 1);
    assert_eq!((routed_local, routed_shards, routed_groups), (local.len(), shards, groups.len()));
}

/// Removes everything the model says the trie holds.
fn empty_out(trie: &mut Trie<u8, u8>, model: Model) {
    for (f, s) in model.plain.keys() {
        assert!(trie.unsubscribe(f, *s).is_some());
    }
    for ((f, shard), count) in model.remote {
        (0..count).for_each(|_| assert!(trie.remove_remote_interest(&f, shard)));
    }
    for (g, f, s) in model.shared.keys() {
        assert!(trie.unsubscribe_shared(g, f, *s).is_some());
    }
    for ((g, f, shard), count) in model.remote_shared {
        (0..count).for_each(|_| assert!(trie.remove_remote_shared(g, &f, shard)));
    }
}

proptest! {
    #[test]
    fn trie_agrees_with_naive_matcher_and_prunes_to_root(
        ops in prop::collection::vec(op(), 1..80),
        topics in prop::collection::vec(topic(), 1..12),
    ) {
        let mut trie = Trie::new(THIS_SHARD);
        let mut model = Model::default();
        for op in ops {
            apply(&mut trie, &mut model, op);
        }
        prop_assert_eq!(trie.len(), model.plain.len() + model.shared.len());
        for topic in &topics {
            check_topic(&trie, &model, topic);
        }
        empty_out(&mut trie, model);
        prop_assert_eq!(trie.len(), 0);
        prop_assert_eq!(trie.node_count(), 1);
        prop_assert!(trie.is_empty());
    }

    #[test]
    fn retained_store_agrees_with_naive_matcher_and_prunes_to_root(
        ops in prop::collection::vec((any::<bool>(), topic()), 1..60),
        filters in prop::collection::vec(filter(), 1..12),
    ) {
        let mut store = RetainedStore::new();
        let mut model: BTreeMap<String, String> = BTreeMap::new();
        for (set, topic) in ops {
            if set {
                let old = store.set(&topic, topic.clone());
                prop_assert_eq!(old, model.insert(topic.clone(), topic));
            } else {
                prop_assert_eq!(store.remove(&topic), model.remove(&topic));
            }
        }
        prop_assert_eq!(store.len(), model.len());
        for topic in model.keys() {
            prop_assert_eq!(store.get(topic), Some(topic));
        }
        for filter in &filters {
            let mut found = Vec::new();
            store.for_each_match(filter, |m| found.push(m.clone()));
            found.sort();
            let expected: Vec<String> =
                model.keys().filter(|t| matches(filter, t)).cloned().collect();
            prop_assert_eq!(found, expected, "filter {:?}", filter);
        }
        for topic in model.keys() {
            prop_assert!(store.remove(topic).is_some());
        }
        prop_assert!(store.is_empty());
        prop_assert_eq!(store.node_count(), 1);
    }
}
