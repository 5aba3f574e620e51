//! Pieces shared by the two flow state machines ([`super::gateway_side`] and
//! [`super::platform_side`]): the time type, what an adapter hands in after data security
//! opened (or failed to open) an MQTT payload, a small set of sequence ranges, and the
//! DES-MQTT-8 back-off ([`backoff_delay`], [`Backoff`]) that serves both the gateway core's
//! `connect` retries and the runtime's transport reconnects.
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

/// Longest back-off delay, seconds (DES-MQTT-8): d_n = min(300, 2^(n-1)) s × f.
pub const BACKOFF_CAP_SEC: u64 = 300;

/// A session (OK `connect.result`) that lasted this long resets the back-off counts
/// (DES-MQTT-8).
pub const BACKOFF_RESET_AFTER_SEC: i64 = 60;

/// splitmix64 (Steele, Lea, Flood 2014): a tiny seeded generator, so the jitter of
/// DES-MQTT-8 is an input of the cores and tests are repeatable. Not for secrets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The delay before retry `n` (n = 1, 2, …) of DES-MQTT-8:
/// d_n = min(300, 2^(n-1)) s × f with f = 0.5 + 0.5 × `draw` / 2^64, i.e. f uniform in
/// [0.5, 1.0) for a uniform `draw`, in whole milliseconds. `n` = 0 is treated as 1. Pure: the
/// randomness is the argument.
pub fn backoff_delay(n: u32, draw: u64) -> chrono::Duration {
    let exp = n.saturating_sub(1).min(16);
    let base_ms = (1u64 << exp).min(BACKOFF_CAP_SEC) * 1000;
    let half = base_ms / 2;
    // (draw / 2^64) × half, exactly, in u128.
    let jitter = u64::try_from((u128::from(draw) * u128::from(half)) >> 64).unwrap_or(half);
    chrono::Duration::milliseconds(i64::try_from(half + jitter).unwrap_or(i64::MAX))
}

/// A DES-MQTT-8 retry counter with its generator: [`Backoff::failed`] counts a failed attempt
/// and returns the delay before the next one; [`Backoff::session_ended`] resets the count after
/// a session that lasted [`BACKOFF_RESET_AFTER_SEC`]. Used by the gateway core for `connect`
/// retries (b) and meant for the runtime's transport reconnects (a), one instance each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backoff {
    rng: SplitMix64,
    failures: u32,
}

impl Backoff {
    /// No failures yet; jitter drawn from a generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            failures: 0,
        }
    }

    /// Failed attempts since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Counts a failed attempt n and returns d_n, the delay before the next attempt.
    pub fn failed(&mut self) -> chrono::Duration {
        self.failures = self.failures.saturating_add(1);
        backoff_delay(self.failures, self.rng.next_u64())
    }

    /// A session that lasted `lasted` ended: the count resets to 0 if it lasted at least
    /// [`BACKOFF_RESET_AFTER_SEC`].
    pub fn session_ended(&mut self, lasted: chrono::Duration) {
        if lasted >= secs(BACKOFF_RESET_AFTER_SEC) {
            self.failures = 0;
        }
    }
}

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
            // Dropped before opening: the payload limit and the retain flag name their rules.
            InboundError::Decode(DecodeError::PayloadTooLarge(_)) => "DES-MQTT-7",
            InboundError::Decode(DecodeError::Rule(r)) if r.starts_with("DES-MQTT-6") => {
                "DES-MQTT-6"
            }
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
    fn backoff_delays_double_from_half_a_second_to_at_most_300_s() {
        let ms = |d: chrono::Duration| d.num_milliseconds();
        // f = 0.5 (draw 0) and f -> 1.0 (draw max).
        assert_eq!(ms(backoff_delay(1, 0)), 500);
        assert_eq!(ms(backoff_delay(1, u64::MAX)), 999);
        assert_eq!(ms(backoff_delay(0, 0)), 500);
        assert_eq!(ms(backoff_delay(2, 0)), 1000);
        assert_eq!(ms(backoff_delay(3, u64::MAX)), 3999);
        assert_eq!(ms(backoff_delay(9, 0)), 128_000);
        assert_eq!(ms(backoff_delay(10, 0)), 150_000);
        assert_eq!(ms(backoff_delay(10, u64::MAX)), 299_999);
        assert_eq!(ms(backoff_delay(u32::MAX, u64::MAX)), 299_999);
        assert_eq!(ms(backoff_delay(5, 1 << 63)), 12_000);
    }

    #[test]
    fn splitmix64_is_the_reference_sequence() {
        // First outputs for seed 0 (reference implementation by S. Vigna).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn backoff_counts_failures_and_resets_only_after_a_60_s_session() {
        let mut b = Backoff::new(7);
        let d: Vec<i64> = (0..10).map(|_| b.failed().num_milliseconds()).collect();
        for (i, d) in d.iter().enumerate() {
            let base = (1i64 << i).min(300) * 1000;
            assert!(base / 2 <= *d && *d < base, "retry {}: {d} ms", i + 1);
        }
        assert_eq!(b.failures(), 10);
        b.session_ended(secs(59));
        assert_eq!(b.failures(), 10);
        b.session_ended(secs(60));
        assert_eq!(b.failures(), 0);
        // The same seed gives the same delays.
        let mut again = Backoff::new(7);
        let d2: Vec<i64> = (0..10).map(|_| again.failed().num_milliseconds()).collect();
        assert_eq!(d, d2);
    }

    #[test]
    fn chunks_never_exceed_the_cap_and_cover_the_range() {
        assert_eq!(chunks(r(1, 5), 2), vec![r(1, 2), r(3, 4), r(5, 5)]);
        assert_eq!(chunks(r(7, 7), 1000), vec![r(7, 7)]);
    }
}
