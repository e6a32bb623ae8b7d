//! What one publish's route yields for the shard that walks it: one [`Match`] per local
//! subscription (merged per subscriber when filters overlap), and for each matching
//! shared group the one member it [`pick`]s, here or on another shard.

use super::node::SharedGroupRef;
use super::shared::{ShareStrategy, Target};
use crate::protocol::{QoS, SubscriptionOptions};

/// One subscriber's view of a matching subscription; after [`merge_overlapping`], its
/// merged view of all of them (3.1.1 [MQTT-3.3.5-1], 5.0 [MQTT-3.3.4-2]): delivered once,
/// at the highest granted QoS, with every subscription identifier (MQTT 5 section 3.3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match<S> {
    pub subscriber: S,
    pub qos: QoS,
    pub retain_as_published: bool,
    /// The subscription has No Local set (MQTT 5).
    pub no_local: bool,
    pub subscription_ids: Vec<u32>,
    /// The subscriber's ACL must be asked whether it may read the topic (see
    /// `Subscription::read_checked`).
    pub read_checked: bool,
}

impl<S> Match<S> {
    /// The match of one subscription.
    pub fn new(subscriber: S, options: &SubscriptionOptions, subscription_id: Option<u32>) -> Self {
        Match {
            subscriber,
            qos: options.qos,
            retain_as_published: options.retain_as_published,
            no_local: options.no_local,
            subscription_ids: subscription_id.into_iter().collect(),
            read_checked: false,
        }
    }
}

/// Merges the matches of a subscriber with overlapping subscriptions into one: sorting
/// by subscriber makes this O(n log n), where a search per match was O(n²) for a topic
/// with many subscribers.
pub fn merge_overlapping<S: Ord + Copy>(matches: &mut Vec<Match<S>>) {
    if matches.len() < 2 {
        return;
    }
    // Stable, so a subscriber's subscription identifiers keep the walk's order.
    matches.sort_by_key(|m| m.subscriber);
    let mut kept = 0;
    for i in 1..matches.len() {
        if matches[i].subscriber == matches[kept].subscriber {
            let ids = std::mem::take(&mut matches[i].subscription_ids);
            let (qos, rap, checked) =
                (matches[i].qos, matches[i].retain_as_published, matches[i].read_checked);
            let into = &mut matches[kept];
            into.qos = into.qos.max(qos);
            into.retain_as_published |= rap;
            into.subscription_ids.extend(ids);
            // Whether a client may read a topic does not depend on the subscription: one
            // subscription that needs no check proves the topic readable.
            into.read_checked &= checked;
        } else {
            kept += 1;
            matches.swap(kept, i);
        }
    }
    matches.truncate(kept + 1);
}

/// A shared group's choice for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick<S, V> {
    /// A member on this shard, with its subscription value.
    Local(S, V),
    /// A member on another shard: the message goes there, which picks its own member.
    Shard(u16),
}

/// Picks the one member, on any shard, that gets a message published on this shard
/// (section 4.8.2: each message goes to exactly one member of the group).
pub fn pick<S: Copy, V: Copy>(
    group: SharedGroupRef<'_, S, V>,
    strategy: ShareStrategy,
    publisher_hash: u64,
    random: u64,
) -> Option<Pick<S, V>> {
    match group.select(strategy, publisher_hash, random)? {
        Target::Local(i) => group.members().get(i).map(|&(s, v)| Pick::Local(s, v)),
        Target::Shard(shard) => Some(Pick::Shard(shard)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(subscriber: u32, qos: QoS, id: Option<u32>) -> Match<u32> {
        Match::new(subscriber, &SubscriptionOptions::qos(qos), id)
    }

    #[test]
    fn overlapping_matches_merge_into_one_per_subscriber_at_the_highest_qos() {
        let mut v = vec![
            m(3, QoS::AtMostOnce, Some(1)),
            m(1, QoS::AtLeastOnce, None),
            m(3, QoS::ExactlyOnce, Some(2)),
            m(2, QoS::AtMostOnce, None),
            m(3, QoS::AtLeastOnce, Some(3)),
        ];
        merge_overlapping(&mut v);
        let got: Vec<_> = v.iter().map(|m| (m.subscriber, m.qos, m.subscription_ids.clone())).collect();
        assert_eq!(
            got,
            vec![
                (1, QoS::AtLeastOnce, vec![]),
                (2, QoS::AtMostOnce, vec![]),
                (3, QoS::ExactlyOnce, vec![1, 2, 3]),
            ]
        );
    }
}
