//! Pieces shared by the two flow state machines ([`super::gateway_side`] and
//! [`super::platform_side`]): the time type, what an adapter hands in after data security
//! opened (or failed to open) an MQTT payload, and a small set of sequence ranges.
//!
//! # Time
//!
//! Both cores take `now: Time` (= `DateTime<FixedOffset>`) on every input and never read a
//! clock. A wall-clock type rather than a monotonic one was chosen because every use of time in
//! protocol v1 is a wall-clock use: envelope timestamps (DES-ENV-2), the ±300 s acceptance
//! window (STALE), resend by ingest-time range (DES-MSG-RS-1) and `createdAt` of profiles.
//! Timers (`intervalSec`, `ackTimeoutSec`, `monitorIntervalSec`, retry delays) are deadlines in
//! the same type and fire when `now >= deadline`, so a clock stepping backwards only delays
//! them and a step forwards fires them early; neither breaks a safety rule. Adapters pass
//! `chrono::Utc::now().fixed_offset()` (or the local offset).

use std::fmt;

use chrono::{DateTime, FixedOffset};

use super::ids::{Seq, SeqRange};
use super::message::{AnomalyKind, DecodeError, ResultCode};
use super::topic::TopicError;

/// The time every input of the cores carries (see the module doc for why wall-clock).
pub type Time = DateTime<FixedOffset>;

/// Acceptance window for command timestamps, seconds either side of `now` (DES-ENV-7, STALE).
pub const STALE_WINDOW_SEC: i64 = 300;

/// Longest timer the cores arm (ten years): larger configured or received values are cut, so
/// `now + secs(x)` can never overflow the date range.
const MAX_TIMER_SEC: i64 = 10 * 366 * 86_400;

/// Seconds as a chrono duration, clamped to `0..=MAX_TIMER_SEC` (never panics).
pub(crate) fn secs(s: i64) -> chrono::Duration {
    chrono::Duration::try_seconds(s.clamp(0, MAX_TIMER_SEC)).unwrap_or(chrono::Duration::zero())
}

/// Why an inbound MQTT payload could not be turned into an envelope the core may act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// IF-PSTART-2 / DES-SEAL-1: decryption or signature verification failed (one code, no
    /// oracle: the adapter must not say which).
    #[error("IF-PSTART-2: the message could not be opened (SECURITY_FAILED)")]
    Security,
    /// DES-ENV-1: opened and verified, but not a valid v1 envelope.
    #[error("{0}")]
    Decode(DecodeError),
    /// DES-MQTT-3: the topic is outside the SGW tree.
    #[error("{0}")]
    Topic(TopicError),
}

impl InboundError {
    /// The result code this failure corresponds to (DES-RC-1).
    pub fn result_code(&self) -> ResultCode {
        match self {
            InboundError::Security => ResultCode::SecurityFailed,
            InboundError::Decode(e) => e.result_code(),
            InboundError::Topic(_) => ResultCode::Malformed,
        }
    }

    /// The anomaly class reported for it (DES-MSG-AN-1).
    pub fn anomaly_kind(&self) -> AnomalyKind {
        match self {
            InboundError::Security => AnomalyKind::Security,
            InboundError::Decode(_) | InboundError::Topic(_) => AnomalyKind::Malformed,
        }
    }

    /// The rule ID named in the anomaly.
    pub fn rule(&self) -> &'static str {
        match self {
            InboundError::Security => "IF-PSTART-2",
            InboundError::Decode(_) => "DES-ENV-1",
            InboundError::Topic(_) => "DES-MQTT-3",
        }
    }
}

/// A set of sequence numbers kept as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RangeSet {
    ranges: Vec<SeqRange>,
}

impl fmt::Debug for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.ranges.iter().map(|r| r.first..=r.last))
            .finish()
    }
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ranges, ascending, disjoint and non-adjacent.
    pub fn ranges(&self) -> &[SeqRange] {
        &self.ranges
    }

    /// Number of sequence numbers in the set.
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(SeqRange::len).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Highest member.
    pub fn max(&self) -> Option<Seq> {
        self.ranges.last().map(|r| r.last)
    }

    /// Whether `seq` is a member.
    pub fn contains(&self, seq: Seq) -> bool {
        self.ranges.iter().any(|r| r.contains(seq))
    }

    /// Whether every member of `range` is a member.
    pub fn contains_range(&self, range: SeqRange) -> bool {
        self.ranges
            .iter()
            .any(|r| r.first <= range.first && range.last <= r.last)
    }

    /// Adds every member of `range`.
    pub fn insert(&mut self, range: SeqRange) {
        let mut first = range.first;
        let mut last = range.last;
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for r in self.ranges.drain(..) {
            // Overlapping or adjacent ranges merge.
            if r.last.saturating_add(1) < first || last.saturating_add(1) < r.first {
                kept.push(r);
            } else {
                first = first.min(r.first);
                last = last.max(r.last);
            }
        }
        kept.push(SeqRange { first, last });
        kept.sort_by_key(|r| r.first);
        self.ranges = kept;
    }

    /// The highest `n` such that `1..=n` are all members (0 if 1 is not a member).
    pub fn contiguous_from_one(&self) -> Seq {
        match self.ranges.first() {
            Some(r) if r.first == 1 => r.last,
            _ => 0,
        }
    }

    /// The members of `range` that are not members of the set, as ranges.
    pub fn missing_in(&self, range: SeqRange) -> Vec<SeqRange> {
        let mut out = Vec::new();
        let mut next = range.first;
        for r in &self.ranges {
            if r.last < next {
                continue;
            }
            if r.first > range.last {
                break;
            }
            if r.first > next {
                out.push(SeqRange {
                    first: next,
                    last: r.first - 1,
                });
            }
            next = r.last.saturating_add(1);
            if next > range.last {
                return out;
            }
        }
        if next <= range.last {
            out.push(SeqRange {
                first: next,
                last: range.last,
            });
        }
        out
    }
}

/// Splits `range` into consecutive pieces of at most `cap` (>= 1) numbers.
pub(crate) fn chunks(range: SeqRange, cap: u64) -> Vec<SeqRange> {
    let cap = cap.max(1);
    let mut out = Vec::new();
    let mut first = range.first;
    while first <= range.last {
        let last = range.last.min(first.saturating_add(cap - 1));
        out.push(SeqRange { first, last });
        if last == Seq::MAX {
            break;
        }
        first = last + 1;
    }
    out
}

/// The intersection of two ranges.
pub(crate) fn intersect(a: SeqRange, b: SeqRange) -> Option<SeqRange> {
    SeqRange::new(a.first.max(b.first), a.last.min(b.last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: Seq, last: Seq) -> SeqRange {
        SeqRange { first, last }
    }

    #[test]
    fn inserting_adjacent_and_overlapping_ranges_merges_them() {
        let mut s = RangeSet::new();
        s.insert(r(5, 6));
        s.insert(r(1, 2));
        s.insert(r(3, 3));
        assert_eq!(s.ranges(), &[r(1, 3), r(5, 6)]);
        s.insert(r(2, 5));
        assert_eq!(s.ranges(), &[r(1, 6)]);
        assert_eq!(s.count(), 6);
        assert_eq!(s.contiguous_from_one(), 6);
    }

    #[test]
    fn missing_in_lists_exactly_the_holes_of_a_range() {
        let mut s = RangeSet::new();
        s.insert(r(2, 3));
        s.insert(r(6, 6));
        assert_eq!(s.missing_in(r(1, 8)), vec![r(1, 1), r(4, 5), r(7, 8)]);
        assert_eq!(s.missing_in(r(2, 3)), vec![]);
        assert_eq!(s.contiguous_from_one(), 0);
    }

    #[test]
    fn chunks_never_exceed_the_cap_and_cover_the_range() {
        assert_eq!(chunks(r(1, 5), 2), vec![r(1, 2), r(3, 4), r(5, 5)]);
        assert_eq!(chunks(r(7, 7), 1000), vec![r(7, 7)]);
    }
}
