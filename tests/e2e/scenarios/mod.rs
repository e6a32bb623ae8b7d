//! The scenarios run at both 3.1.1 and 5.0: each is a function of the protocol version,
//! named for the behaviour it checks, and [`twins!`] makes it a test in `v311` and in `v5`
//! under that same name (`v311::will_is_published_on_protocol_error` and
//! `v5::will_is_published_on_protocol_error`). Where the versions differ (MQTT 5 reason
//! codes, DISCONNECT before a close), the scenario says how.
//!
//! To add one: write it in the file of its kind and add its path to [`twins!`]. A scenario
//! left out of the list is never called, and the compiler says so (`dead_code`).

pub mod connection;
pub mod pubsub;
pub mod retained;
pub mod session;
pub mod will;

use crate::common::ProtocolVersion;

/// Every scenario, as a `#[test]` at protocol version `$v`; `v311.rs` and `v5.rs` each
/// invoke it once.
macro_rules! twins {
    ($v:expr) => {
        $crate::scenarios::twins!(@tests $v;
            pubsub::qos0_publish_reaches_every_subscriber_across_shards,
            pubsub::qos1_publish_reaches_every_subscriber_with_puback_both_ways,
            pubsub::qos2_publish_reaches_every_subscriber_with_full_handshake_both_ways,
            pubsub::publish_qos_is_downgraded_to_granted_qos,
            pubsub::publish_qos_is_never_upgraded_to_granted_qos,
            pubsub::wildcards_match_and_dollar_topics_are_not_matched_by_leading_wildcards,
            pubsub::overlapping_subscriptions_deliver_once_at_highest_qos,
            pubsub::client_receives_its_own_publishes_when_subscribed,
            pubsub::unsubscribe_stops_delivery,
            pubsub::shared_subscription_delivers_each_message_to_exactly_one_member,
            retained::retained_message_is_set_replaced_and_cleared_and_live_copies_have_retain_0,
            retained::retained_messages_are_sent_on_subscribe_through_wildcards_with_retain_1,
            retained::retained_message_set_on_one_connection_is_read_by_many_others,
            will::will_is_published_when_socket_closes_without_disconnect,
            will::will_is_published_on_keepalive_expiry,
            will::will_is_published_on_protocol_error,
            will::will_is_not_published_after_clean_disconnect,
            session::persistent_session_keeps_subscriptions_across_reconnect,
            session::persistent_session_queues_qos1_and_qos2_while_offline,
            session::session_present_is_1_only_for_a_resumed_session,
            session::unacknowledged_qos1_is_resent_with_dup_on_reconnect,
            session::unacknowledged_qos2_publish_and_pubrel_are_resent_on_reconnect,
            session::clean_connect_discards_subscriptions_and_queued_messages,
            session::same_client_id_takes_over_and_closes_older_connection,
            session::takeover_hands_persistent_session_to_new_connection,
            connection::pingreq_gets_pingresp,
            connection::first_packet_other_than_connect_closes_connection,
            connection::second_connect_closes_connection,
            connection::malformed_packet_closes_only_that_connection,
        );
    };
    (@tests $v:expr; $($file:ident::$name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::scenarios::$file::$name($v);
            }
        )*
    };
}
pub(crate) use twins;

/// A short tag for ids and topics, so that the two runs of a scenario differ.
pub fn vtag(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::V3_1 => "v31",
        ProtocolVersion::V3_1_1 => "v311",
        ProtocolVersion::V5 => "v5",
    }
}
