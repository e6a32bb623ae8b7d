//! What the counters must say together, and why messages were lost when they were.
//!
//! Two checks on a finished run, both pure so that a unit test feeds them any figures:
//!
//! - [`disagreements`]: the identities between the counters (every PUBLISH received is
//!   counted once, as a first arrival, a duplicate or a packet that could not be checked;
//!   the per-publisher rows add up to the totals). A disagreement is a bug in the load
//!   generator, and the summary says so rather than printing two different truths.
//! - [`likely_causes`]: the causes of loss the load generator can see from where it
//!   stands: a per-client limit in the broker (subscribers that all stop at the same
//!   count), messages the broker acknowledged and then dropped, publishes it refused,
//!   connections that closed, a load thread that was saturated, a drain that ended early.

use crate::report::{Connections, LossCause, Messages, PublisherRow};

/// One subscriber's deliveries, for the loss diagnosis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriberTally {
    /// Deliveries owed to it: the messages of every publisher it expects.
    pub owed: u64,
    /// Messages it received at least once.
    pub unique: u64,
}

/// What [`likely_causes`] looks at.
pub struct LossInput<'a> {
    pub qos: u8,
    /// Publishes sent at QoS 1/2, the ones the broker acknowledges (a scenario file may
    /// mix them with QoS 0 publishes).
    pub acked_kind_sent: u64,
    pub messages: &'a Messages,
    pub connections: &'a Connections,
    /// Subscribers outside shared groups (a member of a group is owed no fixed share).
    pub subscribers: &'a [SubscriberTally],
    pub loadgen_busy_max_pct: f64,
    pub loadgen_saturated: bool,
    pub drain_timed_out: bool,
}

/// Mosquitto's and ringmq's default `max_queued_messages`, named in the queue-limit cause.
pub const DEFAULT_QUEUE_LIMIT: u64 = 1000;

/// The causes of the run's loss the load generator can see, most specific first; empty
/// when nothing was lost.
pub fn likely_causes(inp: &LossInput<'_>) -> Vec<LossCause> {
    let m = inp.messages;
    let mut out = Vec::new();
    if m.lost == 0 {
        return out;
    }
    let cause = |kind: &str, detail: String| LossCause { kind: kind.into(), detail };
    let short: Vec<&SubscriberTally> = inp.subscribers.iter().filter(|s| s.unique < s.owed).collect();
    // A per-client bound stops every subscriber it applies to at the same count, whatever
    // it was owed; loss spread by chance (drops under load) does not line up like that.
    if let Some(first) = short.first() {
        let plateau = short.len() >= 2 && short.iter().all(|s| s.unique == first.unique) && first.unique > 0;
        if plateau {
            out.push(cause(
                "queue_limit",
                format!(
                    "{} subscribers each received exactly {} of the {} messages owed to them: a \
                     per-client limit in the broker, such as max_queued_messages ({} by default in \
                     Mosquitto and ringmq; 0 means no limit) plus the messages in flight",
                    short.len(),
                    first.unique,
                    first.owed,
                    DEFAULT_QUEUE_LIMIT
                ),
            ));
        }
    }
    if m.rejected > 0 {
        out.push(cause(
            "refused",
            format!("the broker refused {} publish(es) with an error reason code", m.rejected),
        ));
    }
    let owed_acks = inp.acked_kind_sent;
    if owed_acks > 0 && m.acked + m.rejected < owed_acks {
        out.push(cause(
            "unacknowledged",
            format!("{} QoS 1/2 publish(es) were never acknowledged", owed_acks - m.acked - m.rejected),
        ));
    }
    let closed = inp.connections.closed_mid_run;
    if closed > 0 {
        out.push(cause(
            "disconnects",
            format!("{closed} connection(s) closed during the run: what was in flight on them is lost"),
        ));
    }
    if inp.qos > 0 && m.acked == owed_acks && !out.iter().any(|c| c.kind == "queue_limit") && closed == 0 {
        out.push(cause(
            "broker_dropped",
            format!(
                "every QoS 1/2 publish was acknowledged, so the broker accepted the {} lost message(s) and \
                 dropped them on the way out: a queue or memory limit in the broker \
                 (max_queued_messages, max_queued_bytes) is the likely cause",
                m.lost
            ),
        ));
    }
    if inp.loadgen_saturated {
        out.push(cause(
            "loadgen_saturated",
            format!(
                "a load thread was {:.0}% busy: the load generator may not have read its sockets \
                 in time (add --cores)",
                inp.loadgen_busy_max_pct
            ),
        ));
    }
    // A queue limit also leaves deliveries outstanding at the end; naming the drain
    // then would send the reader after the wrong knob.
    if inp.drain_timed_out && !out.iter().any(|c| c.kind == "queue_limit") {
        out.push(cause(
            "drain_ended",
            "the drain ended with deliveries outstanding: messages still queued in the broker \
             count as lost (raise --drain, or lower the rate)"
                .into(),
        ));
    }
    out
}

/// The identities the counters must satisfy; each broken one as a sentence.
pub fn disagreements(m: &Messages, rows: &[PublisherRow]) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            out.push(what);
        }
    };
    let accounted = m.unique + m.duplicated + m.unexpected + m.malformed + m.qos2_redelivered + m.unverified;
    check(
        m.delivered == accounted,
        format!(
            "delivered {} != unique {} + duplicated {} + unexpected {} + malformed {} + QoS 2 \
             redelivered {} + unverified {}",
            m.delivered, m.unique, m.duplicated, m.unexpected, m.malformed, m.qos2_redelivered, m.unverified
        ),
    );
    let sum = |f: fn(&PublisherRow) -> u64| rows.iter().map(f).sum::<u64>();
    check(
        sum(|r| r.unique) == m.unique,
        format!("per-publisher unique {} != unique {}", sum(|r| r.unique), m.unique),
    );
    check(
        sum(|r| r.duplicated) == m.duplicated,
        format!("per-publisher duplicated {} != duplicated {}", sum(|r| r.duplicated), m.duplicated),
    );
    check(
        sum(|r| r.out_of_order) == m.out_of_order,
        format!("per-publisher out of order {} != out of order {}", sum(|r| r.out_of_order), m.out_of_order),
    );
    check(sum(|r| r.sent) == m.sent, format!("per-publisher sent {} != sent {}", sum(|r| r.sent), m.sent));
    check(
        sum(|r| r.expected) == m.expected_deliveries,
        format!(
            "per-publisher owed {} != expected deliveries {}",
            sum(|r| r.expected),
            m.expected_deliveries
        ),
    );
    check(m.unique <= m.expected_deliveries, format!("unique {} > owed {}", m.unique, m.expected_deliveries));
    check(m.delivered_in_window <= m.delivered, "more delivered in the window than in all".into());
    check(m.sent_in_window <= m.sent, "more sent in the window than in all".into());
    check(
        m.acked + m.rejected <= m.sent,
        format!("acked {} + refused {} > sent {}", m.acked, m.rejected, m.sent),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(sent: u64, owed: u64, unique: u64) -> Messages {
        Messages {
            sent,
            acked: sent,
            expected_deliveries: owed,
            delivered: unique,
            unique,
            lost: owed - unique,
            ..Default::default()
        }
    }

    fn input<'a>(m: &'a Messages, k: &'a Connections, subs: &'a [SubscriberTally]) -> LossInput<'a> {
        LossInput {
            qos: 1,
            acked_kind_sent: m.sent,
            messages: m,
            connections: k,
            subscribers: subs,
            loadgen_busy_max_pct: 10.0,
            loadgen_saturated: false,
            drain_timed_out: false,
        }
    }

    #[test]
    fn names_a_queue_limit_when_subscribers_stop_at_the_same_count() {
        // retained --n 10000 --subs 10 --qos 1 against default limits: 1,000 queued + 20 in flight.
        let m = messages(10_000, 100_000, 10_200);
        let subs = [SubscriberTally { owed: 10_000, unique: 1020 }; 10];
        let k = Connections::default();
        let causes = likely_causes(&input(&m, &k, &subs));
        assert_eq!(causes[0].kind, "queue_limit", "{causes:?}");
        assert!(causes[0].detail.contains("exactly 1020 of the 10000"), "{}", causes[0].detail);
        assert!(
            !causes.iter().any(|c| c.kind == "broker_dropped"),
            "the specific cause replaces the general one"
        );
    }

    #[test]
    fn scattered_loss_of_acknowledged_messages_is_blamed_on_the_broker_not_a_limit() {
        let m = messages(1000, 2000, 1990);
        let subs = [SubscriberTally { owed: 1000, unique: 993 }, SubscriberTally { owed: 1000, unique: 997 }];
        let k = Connections::default();
        let kinds: Vec<String> = likely_causes(&input(&m, &k, &subs)).into_iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["broker_dropped"]);
    }

    #[test]
    fn names_disconnects_saturation_and_an_early_drain() {
        let m = messages(1000, 1000, 900);
        let k = Connections { closed_mid_run: 2, ..Default::default() };
        let subs = [SubscriberTally { owed: 1000, unique: 900 }];
        let mut inp = input(&m, &k, &subs);
        inp.loadgen_saturated = true;
        inp.loadgen_busy_max_pct = 97.0;
        inp.drain_timed_out = true;
        let kinds: Vec<String> = likely_causes(&inp).into_iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["disconnects", "loadgen_saturated", "drain_ended"]);
        assert!(likely_causes(&input(&messages(10, 10, 10), &k, &[])).is_empty(), "no loss, no cause");
    }

    #[test]
    fn qos0_publishes_of_a_mixed_run_owe_no_acknowledgement() {
        // A scenario file: 800 QoS 0 publishes and 200 QoS 1, all 200 acknowledged.
        let mut m = messages(1000, 1000, 990);
        m.acked = 200;
        let k = Connections::default();
        let mut inp = input(&m, &k, &[]);
        inp.acked_kind_sent = 200;
        let kinds: Vec<String> = likely_causes(&inp).into_iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["broker_dropped"]);
        inp.acked_kind_sent = 250;
        let kinds: Vec<String> = likely_causes(&inp).into_iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["unacknowledged"]);
    }

    #[test]
    fn finds_counters_that_disagree() {
        let row = PublisherRow {
            id: 0,
            sent: 10,
            expected: 20,
            unique: 20,
            lost: 0,
            duplicated: 1,
            out_of_order: 0,
        };
        let mut m = messages(10, 20, 20);
        m.duplicated = 1;
        m.delivered = 21;
        assert!(disagreements(&m, std::slice::from_ref(&row)).is_empty());
        // The retained bug this check was written for: clean-up packets counted as deliveries.
        m.delivered = 49_240;
        let found = disagreements(&m, std::slice::from_ref(&row));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("delivered 49240 != unique 20"), "{}", found[0]);
        m.delivered = 21;
        m.out_of_order = 5;
        assert_eq!(disagreements(&m, &[row]).len(), 1);
    }
}
