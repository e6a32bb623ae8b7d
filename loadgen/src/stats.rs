//! What one load thread counts and records; merged by the runner at the end.

use crate::schedule::new_histogram;
use hdrhistogram::Histogram;
use serde::Serialize;

/// The histograms, all in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hist {
    /// End to end, from the actual send time to the subscriber's read.
    E2e,
    /// End to end from the scheduled send time (open loop; coordinated-omission corrected).
    E2eCorrected,
    /// PUBLISH to PUBACK (QoS 1) or PUBCOMP (QoS 2), at the publisher.
    AckRtt,
    /// TCP connect + CONNECT to CONNACK, from the actual start.
    Connect,
    /// Connect latency from the scheduled start (`conn`, open loop).
    ConnectCorrected,
    /// SUBSCRIBE to SUBACK.
    Subscribe,
    /// How late the sender was against its schedule (actual - scheduled send time).
    SendLag,
    /// `retained`: SUBSCRIBE to the arrival of each retained message.
    RetainedDelivery,
    /// `retained`: SUBSCRIBE to the arrival of the last of the N retained messages.
    RetainedComplete,
}

impl Hist {
    pub const ALL: [Hist; 9] = [
        Hist::E2e,
        Hist::E2eCorrected,
        Hist::AckRtt,
        Hist::Connect,
        Hist::ConnectCorrected,
        Hist::Subscribe,
        Hist::SendLag,
        Hist::RetainedDelivery,
        Hist::RetainedComplete,
    ];

    /// Name in summary.json and in the .hgrm file name.
    pub fn name(self) -> &'static str {
        match self {
            Hist::E2e => "e2e",
            Hist::E2eCorrected => "e2e_corrected",
            Hist::AckRtt => "ack_rtt",
            Hist::Connect => "connect",
            Hist::ConnectCorrected => "connect_corrected",
            Hist::Subscribe => "subscribe",
            Hist::SendLag => "send_lag",
            Hist::RetainedDelivery => "retained_delivery",
            Hist::RetainedComplete => "retained_complete",
        }
    }

    /// One line for report.md.
    pub fn describe(self) -> &'static str {
        match self {
            Hist::E2e => "end to end, from the actual send",
            Hist::E2eCorrected => "end to end, from the scheduled send (coordinated-omission corrected)",
            Hist::AckRtt => "PUBLISH to PUBACK/PUBCOMP at the publisher",
            Hist::Connect => "TCP connect + CONNECT to CONNACK",
            Hist::ConnectCorrected => "connect, from the scheduled start",
            Hist::Subscribe => "SUBSCRIBE to SUBACK",
            Hist::SendLag => "publisher lateness against its schedule",
            Hist::RetainedDelivery => "SUBSCRIBE to each retained message",
            Hist::RetainedComplete => "SUBSCRIBE to the last retained message",
        }
    }
}

/// One histogram per [`Hist`].
#[derive(Clone, Debug)]
pub struct Histograms(Vec<Histogram<u64>>);

impl Default for Histograms {
    fn default() -> Self {
        Histograms(Hist::ALL.iter().map(|_| new_histogram()).collect())
    }
}

impl Histograms {
    pub fn get(&self, h: Hist) -> &Histogram<u64> {
        &self.0[h as usize]
    }

    pub fn get_mut(&mut self, h: Hist) -> &mut Histogram<u64> {
        &mut self.0[h as usize]
    }

    /// Records `ns`, clamped into the histogram's range.
    pub fn record(&mut self, h: Hist, ns: u64) {
        self.0[h as usize].saturating_record(ns.max(1));
    }

    pub fn merge(&mut self, other: &Histograms) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            a.add(b).expect("histograms share bounds");
        }
    }
}

/// Counters of one thread (and, summed, of the run). Message counts are PUBLISH packets.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    /// PUBLISH packets written by publishers.
    pub published: u64,
    /// ... of which sent inside the measurement window.
    pub published_in_window: u64,
    /// QoS 1/2 publishes completed (PUBACK / PUBCOMP received).
    pub acked: u64,
    /// QoS 1/2 publishes the broker refused (MQTT 5 reason code 0x80 or above).
    pub rejected: u64,
    /// PUBLISH packets received by subscribers (duplicates included).
    pub delivered: u64,
    /// ... of which received inside the measurement window.
    pub delivered_in_window: u64,
    /// First arrivals of a (publisher, sequence) at a subscriber (or group).
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Numbers skipped over and not (yet) filled, summed over streams.
    pub gaps: u64,
    /// Hole ranges written off by the checker (see `checker::HOLE_RANGES_MAX`).
    pub written_off: u64,
    /// Shared-group numbers beyond the bitmap's reach (see `checker::SHARED_CHUNKS_MAX`).
    pub unverified: u64,
    /// Payloads from a publisher this subscriber does not expect.
    pub unexpected: u64,
    /// Payloads too short to carry our header.
    pub malformed: u64,
    /// QoS 2 PUBLISH repeated with a packet id awaiting PUBREL (answered, not delivered).
    pub qos2_redelivered: u64,
    pub conn_attempted: u64,
    pub conn_ok: u64,
    pub conn_failed: u64,
    /// CONNACK with a refusal code.
    pub conn_refused: u64,
    /// No CONNACK (or no TCP connection) within --connect-timeout.
    pub conn_timed_out: u64,
    /// SUBACK missing, late, or with a failure code.
    pub subscribe_failed: u64,
    /// Granted QoS below the requested one.
    pub subscribe_downgraded: u64,
    /// Connections the broker (or the network) closed before the run ended.
    pub closed_mid_run: u64,
    /// DISCONNECT packets received from the broker.
    pub disconnects_received: u64,
    /// Packets that made no sense where they arrived, or failed to decode.
    pub protocol_errors: u64,
    pub pings_sent: u64,
}

impl Counters {
    /// Adds `o` field by field.
    pub fn add(&mut self, o: &Counters) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        sum!(
            published,
            published_in_window,
            acked,
            rejected,
            delivered,
            delivered_in_window,
            unique,
            duplicates,
            out_of_order,
            gaps,
            written_off,
            unverified,
            unexpected,
            malformed,
            qos2_redelivered,
            conn_attempted,
            conn_ok,
            conn_failed,
            conn_refused,
            conn_timed_out,
            subscribe_failed,
            subscribe_downgraded,
            closed_mid_run,
            disconnects_received,
            protocol_errors,
            pings_sent
        );
    }
}

/// Deliveries of one publisher's messages, summed over the streams that expect them.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PubDelivery {
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
}

impl PubDelivery {
    pub fn add(&mut self, o: &PubDelivery) {
        self.unique += o.unique;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
    }
}

/// One subscriber's first arrivals, and whose messages it is owed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubTally {
    pub expects: std::ops::Range<u32>,
    pub unique: u64,
    /// A shared-group member: owed no fixed share of its publishers' messages.
    pub shared: bool,
}

/// Error messages kept per thread (the counters count all of them).
pub const ERRORS_KEPT: usize = 20;

/// What a thread measured.
pub struct ThreadStats {
    pub counters: Counters,
    pub hists: Histograms,
    /// End-to-end latency since the last snapshot, for the progress line.
    pub interval: Histogram<u64>,
    /// Deliveries per publisher, summed over this thread's subscribers.
    pub per_pub: Vec<PubDelivery>,
    /// One entry per subscriber of this thread, for the loss diagnosis.
    pub per_sub: Vec<SubTally>,
    pub errors: Vec<String>,
}

impl ThreadStats {
    pub fn new(pubs: usize) -> Self {
        ThreadStats {
            counters: Counters::default(),
            hists: Histograms::default(),
            interval: new_histogram(),
            per_pub: vec![PubDelivery::default(); pubs],
            per_sub: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Keeps the first [`ERRORS_KEPT`] error messages.
    pub fn note_error(&mut self, e: String) {
        if self.errors.len() < ERRORS_KEPT {
            self.errors.push(e);
        }
    }

    /// Records one measured delivery.
    pub fn latency(&mut self, recv_ns: u64, sent_ns: u64, scheduled_ns: Option<u64>) {
        let measured = recv_ns.saturating_sub(sent_ns);
        self.hists.record(Hist::E2e, measured);
        let shown = match scheduled_ns {
            Some(s) => {
                let corrected = recv_ns.saturating_sub(s.min(sent_ns));
                self.hists.record(Hist::E2eCorrected, corrected);
                corrected
            }
            None => measured,
        };
        self.interval.saturating_record(shown.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_and_histograms() {
        let mut a = Histograms::default();
        let mut b = Histograms::default();
        a.record(Hist::E2e, 1000);
        b.record(Hist::E2e, 3000);
        b.record(Hist::AckRtt, 0);
        a.merge(&b);
        assert_eq!(a.get(Hist::E2e).len(), 2);
        assert_eq!(a.get(Hist::AckRtt).min(), 1);
        let mut c = Counters { published: 1, gaps: 2, ..Default::default() };
        c.add(&Counters { published: 2, pings_sent: 1, ..Default::default() });
        assert_eq!((c.published, c.gaps, c.pings_sent), (3, 2, 1));
    }
}
