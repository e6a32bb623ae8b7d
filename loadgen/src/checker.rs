//! Delivery checks: every subscriber verifies, per publisher, that sequence numbers arrive
//! once each. Loss, duplicates and reordering are counted, never assumed.
//!
//! Two checkers:
//!
//! - [`SeqChecker`], one per (subscriber, publisher) stream, where every message of the
//!   publisher is expected. It keeps the next expected number and the *holes* below it
//!   (ranges skipped over, not yet filled) as a range map, so a stream that arrives in
//!   order costs no memory, and a stream with losses costs one entry per lost burst.
//! - [`SharedSeen`], one per (shared-subscription group, publisher): every message must
//!   reach exactly one member, members may run on different threads, so the members
//!   mark a bitmap of atomics together. Each member checks its own order with
//!   [`OrderCheck`].
//!
//! Loss is known only at the end: `lost = sent - unique` once the publisher's final count
//! is known and the drain period has passed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Hole ranges one stream keeps before writing the oldest off as lost for good. A message
/// that arrives later inside a written-off range is counted as a duplicate; the count of
/// written-off numbers is reported, so this can never hide silently.
pub const HOLE_RANGES_MAX: usize = 65_536;

/// What one arrival was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The next number expected.
    InOrder,
    /// A number past the next expected; `skipped` numbers became holes.
    Gap { skipped: u64 },
    /// A number that fills a hole: it arrived after a later one.
    Late,
    /// A number already received.
    Duplicate,
}

impl Arrival {
    /// Whether this is the first arrival of its number.
    pub fn is_first(self) -> bool {
        !matches!(self, Arrival::Duplicate)
    }
}

/// The checker of one (subscriber, publisher) stream.
#[derive(Clone, Debug, Default)]
pub struct SeqChecker {
    /// Every number below this has been seen or is in `holes`.
    next: u64,
    /// Missing ranges below `next`: start → end (exclusive).
    holes: BTreeMap<u64, u64>,
    /// Numbers currently in `holes`.
    hole_count: u64,
    /// Numbers received at least once.
    pub unique: u64,
    pub duplicates: u64,
    /// Arrivals that filled a hole (a later number had arrived before them).
    pub out_of_order: u64,
    /// Numbers dropped from `holes` because of [`HOLE_RANGES_MAX`].
    pub written_off: u64,
}

impl SeqChecker {
    /// Checks one arriving sequence number.
    pub fn on_seq(&mut self, seq: u64) -> Arrival {
        if seq == self.next {
            self.next += 1;
            self.unique += 1;
            return Arrival::InOrder;
        }
        if seq > self.next {
            let skipped = seq - self.next;
            self.holes.insert(self.next, seq);
            self.hole_count += skipped;
            self.next = seq + 1;
            self.unique += 1;
            if self.holes.len() > HOLE_RANGES_MAX {
                if let Some((start, end)) = self.holes.pop_first() {
                    self.hole_count -= end - start;
                    self.written_off += end - start;
                }
            }
            return Arrival::Gap { skipped };
        }
        // Below `next`: either it fills a hole, or it was seen already.
        let hole = self.holes.range(..=seq).next_back().map(|(&s, &e)| (s, e));
        match hole {
            Some((start, end)) if seq < end => {
                self.holes.remove(&start);
                if start < seq {
                    self.holes.insert(start, seq);
                }
                if seq + 1 < end {
                    self.holes.insert(seq + 1, end);
                }
                self.hole_count -= 1;
                self.unique += 1;
                self.out_of_order += 1;
                Arrival::Late
            }
            _ => {
                self.duplicates += 1;
                Arrival::Duplicate
            }
        }
    }

    /// Checks one arriving number of a stream with no order to keep (the retained store:
    /// one topic per message): whether it is the first arrival; a late one is not counted
    /// as out of order.
    pub fn on_seq_unordered(&mut self, seq: u64) -> bool {
        let arrival = self.on_seq(seq);
        if arrival == Arrival::Late {
            self.out_of_order -= 1;
        }
        arrival.is_first()
    }

    /// Numbers skipped over and not yet arrived: the loss so far, while the run goes on.
    pub fn gaps(&self) -> u64 {
        self.hole_count + self.written_off
    }

    /// Messages lost once the publisher has sent `sent` in all and the drain is over.
    pub fn lost(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.unique)
    }
}

/// Order check of one member of a shared group for one publisher: the broker keeps each
/// publisher's order per subscriber, so a member must see increasing numbers.
#[derive(Clone, Copy, Debug, Default)]
pub struct OrderCheck {
    last: Option<u64>,
    pub out_of_order: u64,
}

impl OrderCheck {
    pub fn on_seq(&mut self, seq: u64) {
        if let Some(last) = self.last {
            if seq <= last {
                self.out_of_order += 1;
                return;
            }
        }
        self.last = Some(seq);
    }
}

/// Sequence numbers per chunk of a [`SharedSeen`] bitmap (128 KiB of bits).
pub const SHARED_CHUNK_SEQS: u64 = 1 << 20;
/// Chunks per publisher: numbers beyond `SHARED_CHUNK_SEQS * SHARED_CHUNKS_MAX` (268
/// million per publisher) are counted as unverified.
pub const SHARED_CHUNKS_MAX: usize = 256;

/// Which sequence numbers of one publisher some member of a shared group has received.
/// Chunks are allocated on first use; marking is one atomic OR.
pub struct SharedSeen {
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

/// What marking a number in a [`SharedSeen`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    First,
    Duplicate,
    /// Beyond the bitmap's reach: neither checked nor counted as unique.
    Unverified,
}

impl Default for SharedSeen {
    fn default() -> Self {
        SharedSeen { chunks: (0..SHARED_CHUNKS_MAX).map(|_| OnceLock::new()).collect() }
    }
}

impl SharedSeen {
    /// Marks `seq` received by some member.
    pub fn mark(&self, seq: u64) -> Mark {
        let chunk = (seq / SHARED_CHUNK_SEQS) as usize;
        let Some(slot) = self.chunks.get(chunk) else {
            return Mark::Unverified;
        };
        let words = slot.get_or_init(|| (0..SHARED_CHUNK_SEQS / 64).map(|_| AtomicU64::new(0)).collect());
        let bit = seq % SHARED_CHUNK_SEQS;
        let mask = 1u64 << (bit % 64);
        let prev = words[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed);
        if prev & mask == 0 {
            Mark::First
        } else {
            Mark::Duplicate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unordered_stream_counts_late_arrivals_as_unique_not_out_of_order() {
        let mut c = SeqChecker::default();
        for seq in [3, 0, 2, 1, 2] {
            c.on_seq_unordered(seq);
        }
        assert_eq!((c.unique, c.duplicates, c.out_of_order), (4, 1, 0));
        assert_eq!(c.lost(5), 1);
    }

    fn feed(seqs: &[u64]) -> SeqChecker {
        let mut c = SeqChecker::default();
        for &s in seqs {
            c.on_seq(s);
        }
        c
    }

    #[test]
    fn in_order_stream_is_clean() {
        let c = feed(&(0..1000).collect::<Vec<_>>());
        assert_eq!((c.unique, c.duplicates, c.out_of_order, c.gaps()), (1000, 0, 0, 0));
        assert_eq!(c.lost(1000), 0);
        assert!(c.holes.is_empty());
    }

    #[test]
    fn counts_loss_at_the_end_including_the_tail() {
        // 3 and 7..=8 never arrive; 10 and 11 were sent but never arrived either.
        let c = feed(&[0, 1, 2, 4, 5, 6, 9]);
        assert_eq!(c.unique, 7);
        assert_eq!(c.gaps(), 3);
        assert_eq!(c.lost(12), 5);
        assert_eq!((c.duplicates, c.out_of_order), (0, 0));
    }

    #[test]
    fn counts_duplicates_of_in_order_and_late_numbers() {
        let c = feed(&[0, 1, 1, 3, 2, 2, 3, 0]);
        assert_eq!(c.unique, 4);
        assert_eq!(c.duplicates, 4);
        assert_eq!(c.out_of_order, 1);
        assert_eq!(c.lost(4), 0);
    }

    #[test]
    fn reordered_stream_loses_nothing() {
        let c = feed(&[1, 0, 3, 2, 5, 4, 9, 6, 8, 7]);
        assert_eq!(c.unique, 10);
        assert_eq!(c.out_of_order, 6); // 0, 2, 4, then 6, 8 and 7 after 9
        assert_eq!(c.duplicates, 0);
        assert_eq!(c.gaps(), 0);
        assert_eq!(c.lost(10), 0);
        assert!(c.holes.is_empty());
    }

    #[test]
    fn filling_the_middle_of_a_hole_splits_it() {
        let mut c = feed(&[0, 10]);
        assert_eq!(c.gaps(), 9);
        assert_eq!(c.on_seq(5), Arrival::Late);
        assert_eq!(c.holes.len(), 2);
        assert_eq!(c.on_seq(1), Arrival::Late);
        assert_eq!(c.on_seq(9), Arrival::Late);
        assert_eq!(c.on_seq(5), Arrival::Duplicate);
        assert_eq!(c.gaps(), 6);
        assert_eq!(c.lost(11), 6);
    }

    #[test]
    fn classifies_arrivals() {
        let mut c = SeqChecker::default();
        assert_eq!(c.on_seq(0), Arrival::InOrder);
        assert_eq!(c.on_seq(3), Arrival::Gap { skipped: 2 });
        assert_eq!(c.on_seq(2), Arrival::Late);
        assert_eq!(c.on_seq(2), Arrival::Duplicate);
        assert!(!Arrival::Duplicate.is_first());
    }

    #[test]
    fn too_many_holes_write_the_oldest_off_and_say_so() {
        let mut c = SeqChecker::default();
        for i in 0..(HOLE_RANGES_MAX as u64 + 10) {
            c.on_seq(i * 2 + 1); // every even number missing
        }
        assert_eq!(c.holes.len(), HOLE_RANGES_MAX);
        assert_eq!(c.written_off, 10);
        // A written-off number that arrives late is counted as a duplicate.
        assert_eq!(c.on_seq(0), Arrival::Duplicate);
        let sent = HOLE_RANGES_MAX as u64 * 2 + 20;
        assert_eq!(c.lost(sent), sent - c.unique);
    }

    #[test]
    fn order_check_counts_backward_steps() {
        let mut o = OrderCheck::default();
        for s in [0, 2, 4, 3, 6, 6, 8] {
            o.on_seq(s);
        }
        assert_eq!(o.out_of_order, 2);
    }

    #[test]
    fn shared_seen_finds_duplicates_across_threads() {
        let seen = std::sync::Arc::new(SharedSeen::default());
        let firsts: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let seen = seen.clone();
                    s.spawn(move || {
                        (0..10_000u64).filter(|&q| seen.mark(q * 3) == Mark::First).count() as u64
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(firsts, 10_000, "each number is first exactly once over both threads");
        assert_eq!(seen.mark(SHARED_CHUNK_SEQS * SHARED_CHUNKS_MAX as u64), Mark::Unverified);
        assert_eq!(seen.mark(SHARED_CHUNK_SEQS + 5), Mark::First);
        assert_eq!(seen.mark(SHARED_CHUNK_SEQS + 5), Mark::Duplicate);
    }
}
