//! The data plane's tests without sockets: routes served from the cache, No Local, shared
//! groups (`plane.rs`).

use super::super::shared::Shared;
use super::super::state::Shard;
use super::*;
use crate::config::Config;
use crate::protocol::{ProtocolVersion, SubscriptionOptions};
use crate::session::Session;

fn one_shard() -> Shard {
    Shard::new(0, Arc::new(Shared::for_tests(Config::default(), 1)), 0)
}

/// An offline persistent MQTT 5 session: QoS 1 deliveries wait in its queue.
fn offline_session(p: &mut DataPlane, name: &str) -> SessionId {
    let s = Session::new(ByteStr::from(name), ProtocolVersion::V5, 3600, p.sessions.limits());
    p.sessions.install(s, None, 1, 0)
}

fn subscribe(p: &mut DataPlane, sid: SessionId, filter: &str, no_local: bool) {
    let options = SubscriptionOptions { no_local, ..SubscriptionOptions::qos(QoS::AtLeastOnce) };
    p.subscribe(
        sid,
        &ByteStr::from(filter),
        Subscription { options, subscription_id: None, read_checked: false },
    );
}

fn message(topic: &str, publisher: PublisherKey) -> Message {
    Message {
        topic: ByteStr::from(topic),
        payload: bytes::Bytes::from_static(b"x"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: None,
        expires_at_ms: None,
        publisher,
        origin: Origin::UNROUTED,
    }
}

fn queued(p: &DataPlane, sid: SessionId) -> usize {
    p.sessions.get(sid).expect("session").session.outbound.queue.len()
}

#[test]
fn a_cached_route_gives_what_the_walk_gives_and_goes_stale_on_any_change() {
    let mut shard = one_shard();
    let p = shard.plane();
    let (a, b) = (offline_session(p, "a"), offline_session(p, "b"));
    subscribe(p, a, "t/+", false);
    subscribe(p, a, "t/x", false);
    for _ in 0..3 {
        assert!(p.publish(message("t/x", PublisherKey::NONE)));
    }
    assert!(p.routes.is_cached("t/x"), "the first publish cached it");
    assert_eq!(queued(p, a), 3, "once per message although two filters match");
    // A new subscriber must not be missed because of the cached route...
    subscribe(p, b, "t/#", false);
    assert!(p.publish(message("t/x", PublisherKey::NONE)));
    assert_eq!((queued(p, a), queued(p, b)), (4, 1));
    // ...nor a removed one still be served from it.
    assert!(p.unsubscribe(a, "t/+"));
    assert!(p.unsubscribe(a, "t/x"));
    assert!(p.publish(message("t/x", PublisherKey::NONE)));
    assert_eq!((queued(p, a), queued(p, b)), (4, 2));
}

#[test]
fn no_local_holds_for_routes_served_from_the_cache() {
    let mut shard = one_shard();
    let p = shard.plane();
    let (a, b) = (offline_session(p, "a"), offline_session(p, "b"));
    subscribe(p, a, "n/l", true);
    subscribe(p, b, "n/l", false);
    let from_a = PublisherKey::new(p.id, a, 0);
    // The first publish (a walk) and the later ones (cache hits) alike (5.0 [MQTT-3.8.3-3]).
    for _ in 0..3 {
        p.publish(message("n/l", from_a));
    }
    assert_eq!((queued(p, a), queued(p, b)), (0, 3));
    p.publish(message("n/l", PublisherKey::NONE));
    assert_eq!((queued(p, a), queued(p, b)), (1, 4), "others' messages still reach a");
}

#[test]
fn routes_through_shared_groups_are_walked_every_time() {
    let mut shard = one_shard();
    let p = shard.plane();
    let members = [offline_session(p, "m1"), offline_session(p, "m2")];
    for &sid in &members {
        subscribe(p, sid, "$share/g/s/t", false);
    }
    for _ in 0..10 {
        p.publish(message("s/t", PublisherKey::NONE));
    }
    assert!(!p.routes.is_cached("s/t"));
    // Each publish made its own pick: both members got some, together all ten.
    let got: Vec<usize> = members.iter().map(|&sid| queued(p, sid)).collect();
    assert_eq!(got.iter().sum::<usize>(), 10);
    assert!(got.iter().all(|&n| n > 0), "{got:?}");
}
