//! The rules of the south interface (system connection, `docs/protocol.md` §12) that do not
//! depend on the FTP library, as plain values with `now` passed in: the upload name rule
//! (DES-FTP-5), login lockout (DES-FTP-3, SM-LOCKOUT), uploads of the same name running at once
//! (DES-FTP-5), content duplicates within 24 h (DES-FTP-5, audit only) and password
//! verification against the Argon2id PHC string (DES-FTP-3). The libunftp adapter in
//! `runtime::ftp` and the ingest pipeline in `runtime::app` call these.
//!
//! Requirement IDs: SC-FTP-1, SM-LOCKOUT, SM-DEFAULTPW, SM-AUDIT.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use crate::protocol::flow::Time;

/// Consecutive failed logins of one (user, address) pair that lock it (DES-FTP-3).
pub const LOCKOUT_AFTER_FAILURES: u32 = 5;
/// Duration of the first lock of a pair, seconds (DES-FTP-3).
pub const FIRST_LOCK_SEC: i64 = 300;
/// Longest lock, seconds (DES-FTP-3).
pub const MAX_LOCK_SEC: i64 = 3600;
/// How long an accepted file's SHA-256 is remembered for the duplicate note (DES-FTP-5).
pub const DUPLICATE_WINDOW_SEC: i64 = 24 * 3600;

/// Whether `name` may be uploaded (DES-FTP-5): `^[A-Za-z0-9._-]{1,128}\.csv$`, no path. A
/// leading `/` (the session root, DES-FTP-4) is stripped first.
pub fn upload_name_allowed(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let Some(stem) = name.strip_suffix(".csv") else {
        return false;
    };
    (1..=128).contains(&stem.len())
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What a login attempt may do now (DES-FTP-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginGate {
    /// Check the password.
    Check,
    /// The pair is locked until the given time: answer 530 without checking.
    Locked(Time),
}

/// What a failed login led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; not locked yet.
    Counted(u32),
    /// This failure locked the pair until the given time (raise `anomaly` kind `ingest`, rule
    /// SM-LOCKOUT).
    LockedUntil(Time),
}

#[derive(Debug, Clone, Default)]
struct PairState {
    failures: u32,
    locked_until: Option<Time>,
    last_lock_sec: i64,
}

/// Lockout per (user, client address) (DES-FTP-3): 5 consecutive failures lock the pair,
/// 300 s the first time, each further lock twice the previous, at most 3600 s; the count
/// restarts after each lock; a successful login resets count and duration. An unknown user is
/// counted like a wrong password.
#[derive(Debug, Clone, Default)]
pub struct Lockout {
    pairs: HashMap<(String, IpAddr), PairState>,
}

impl Lockout {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a `PASS` of `user` from `ip` may be checked at `now`.
    pub fn gate(&self, user: &str, ip: IpAddr, now: Time) -> LoginGate {
        match self
            .pairs
            .get(&(user.to_owned(), ip))
            .and_then(|s| s.locked_until)
        {
            Some(t) if now < t => LoginGate::Locked(t),
            _ => LoginGate::Check,
        }
    }

    /// Counts a failed login.
    pub fn failed(&mut self, user: &str, ip: IpAddr, now: Time) -> FailureOutcome {
        let s = self.pairs.entry((user.to_owned(), ip)).or_default();
        if s.locked_until.is_some_and(|t| now < t) {
            // Attempts during a lock are refused unchecked and not counted.
            return FailureOutcome::LockedUntil(s.locked_until.unwrap_or(now));
        }
        s.failures += 1;
        if s.failures < LOCKOUT_AFTER_FAILURES {
            return FailureOutcome::Counted(s.failures);
        }
        let secs = if s.last_lock_sec == 0 {
            FIRST_LOCK_SEC
        } else {
            (s.last_lock_sec * 2).min(MAX_LOCK_SEC)
        };
        s.last_lock_sec = secs;
        s.failures = 0;
        let until = now + chrono::Duration::seconds(secs);
        s.locked_until = Some(until);
        FailureOutcome::LockedUntil(until)
    }

    /// A successful login resets the pair.
    pub fn succeeded(&mut self, user: &str, ip: IpAddr) {
        self.pairs.remove(&(user.to_owned(), ip));
    }
}

/// Uploads running per (user, name): a second one of the same name is answered 450
/// (DES-FTP-5).
#[derive(Debug, Default)]
pub struct Running {
    names: HashSet<(String, String)>,
}

impl Running {
    /// Registers an upload; `false` if the same user is already uploading that name.
    pub fn begin(&mut self, user: &str, name: &str) -> bool {
        self.names.insert((user.to_owned(), name.to_owned()))
    }

    /// The upload ended (whatever the outcome).
    pub fn end(&mut self, user: &str, name: &str) {
        self.names.remove(&(user.to_owned(), name.to_owned()));
    }
}

/// SHA-256s of files accepted in the last 24 h, to note duplicates in the audit log
/// (DES-FTP-5: a duplicate is ingested all the same).
#[derive(Debug, Default)]
pub struct RecentFiles {
    seen: VecDeque<(Time, [u8; 32])>,
}

impl RecentFiles {
    /// Records an accepted file; returns when the same content was accepted before (within
    /// [`DUPLICATE_WINDOW_SEC`]), if it was.
    pub fn accepted(&mut self, digest: [u8; 32], now: Time) -> Option<Time> {
        let window = chrono::Duration::seconds(DUPLICATE_WINDOW_SEC);
        while self.seen.front().is_some_and(|(t, _)| *t + window < now) {
            self.seen.pop_front();
        }
        let before = self
            .seen
            .iter()
            .find(|(_, d)| *d == digest)
            .map(|(t, _)| *t);
        self.seen.push_back((now, digest));
        before
    }
}

/// Verifies `password` against an Argon2id PHC string (DES-FTP-3), in constant time as the
/// `argon2` crate does. A malformed PHC string never verifies.
pub fn verify_password(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(h) if h.algorithm.as_str() == "argon2id" => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Time {
        chrono::DateTime::parse_from_rfc3339("2026-12-04T00:00:00+09:00").unwrap()
            + chrono::Duration::seconds(s)
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8));

    #[test]
    fn names_are_plain_csv_file_names_of_at_most_128_characters_before_the_extension() {
        for ok in [
            "a.csv",
            "/billing_2026-12-04.csv",
            "x.y.csv",
            &format!("{}.csv", "a".repeat(128)),
        ] {
            assert!(upload_name_allowed(ok), "{ok}");
        }
        for bad in [
            ".csv",
            "a.CSV",
            "a.txt",
            "dir/a.csv",
            "../a.csv",
            "a b.csv",
            "ａ.csv",
            &format!("{}.csv", "a".repeat(129)),
        ] {
            assert!(!upload_name_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn five_failures_lock_the_pair_for_300_s_then_600_s_and_never_more_than_3600_s() {
        let mut l = Lockout::new();
        let mut now = 0;
        let mut locks = Vec::new();
        for _ in 0..7 {
            for i in 1..LOCKOUT_AFTER_FAILURES {
                assert_eq!(l.failed("u", IP, at(now)), FailureOutcome::Counted(i));
            }
            let FailureOutcome::LockedUntil(t) = l.failed("u", IP, at(now)) else {
                panic!("not locked")
            };
            locks.push((t - at(now)).num_seconds());
            assert_eq!(l.gate("u", IP, at(now + 1)), LoginGate::Locked(t));
            // Another address, another user: not locked.
            assert_eq!(l.gate("u", OTHER, at(now + 1)), LoginGate::Check);
            assert_eq!(l.gate("v", IP, at(now + 1)), LoginGate::Check);
            now = (t - at(0)).num_seconds();
            assert_eq!(l.gate("u", IP, at(now)), LoginGate::Check, "lock ends");
        }
        assert_eq!(locks, [300, 600, 1200, 2400, 3600, 3600, 3600]);
    }

    #[test]
    fn attempts_during_a_lock_are_not_counted_and_a_success_resets_count_and_duration() {
        let mut l = Lockout::new();
        for _ in 0..5 {
            l.failed("u", IP, at(0));
        }
        // During the lock: refused unchecked, and the lock does not grow.
        assert!(
            matches!(l.failed("u", IP, at(10)), FailureOutcome::LockedUntil(t) if t == at(300))
        );
        l.succeeded("u", IP);
        for i in 1..5 {
            assert_eq!(l.failed("u", IP, at(400)), FailureOutcome::Counted(i));
        }
        assert_eq!(
            l.failed("u", IP, at(400)),
            FailureOutcome::LockedUntil(at(700)),
            "after a success the next lock is a first lock again"
        );
    }

    #[test]
    fn a_second_upload_of_the_same_name_by_the_same_user_waits_for_the_first() {
        let mut r = Running::default();
        assert!(r.begin("u", "a.csv"));
        assert!(!r.begin("u", "a.csv"));
        assert!(r.begin("v", "a.csv"), "another user");
        assert!(r.begin("u", "b.csv"), "another name");
        r.end("u", "a.csv");
        assert!(r.begin("u", "a.csv"));
    }

    #[test]
    fn the_same_content_within_24_h_is_noted_as_a_duplicate_and_not_after() {
        let mut f = RecentFiles::default();
        assert_eq!(f.accepted([1; 32], at(0)), None);
        assert_eq!(f.accepted([2; 32], at(10)), None);
        assert_eq!(f.accepted([1; 32], at(100)), Some(at(0)));
        assert_eq!(f.accepted([2; 32], at(10 + DUPLICATE_WINDOW_SEC + 1)), None);
    }

    #[test]
    fn passwords_verify_against_argon2id_only() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(&[9u8; 16]).unwrap();
        let phc = argon2::Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "correct hors"));
        assert!(!verify_password("plaintext", "plaintext"));
        let argon2i = phc.replacen("$argon2id$", "$argon2i$", 1);
        assert!(!verify_password(&argon2i, "correct horse"));
    }
}
