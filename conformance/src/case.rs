//! What a conformance case is: its ID, the requirement and DES IDs it covers, what it expects,
//! what it needs of the gateway under test, and the function that runs it; the graded verdict
//! (docs/conformance.md, "Verdicts").

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::world::Ctx;

/// How strong the requirement a case checks is (docs/requirements.md levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A MUST (or a DESIGN rule the protocol states with MUST).
    Must,
    /// A SHOULD: missed → `non-strict` unless `--strict`.
    Should,
}

/// What a case needs of the target or its capability statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// The suite must be able to kill (a process: SIGKILL; in process: every task dropped at
    /// once) and restart the gateway.
    pub kill: bool,
    /// The gateway sends XML data profiles.
    pub xml: bool,
    /// The gateway can be disposed of (in process, or a `wipeCommand` in the capability
    /// statement).
    pub wipe: bool,
    /// A gateway of its own, fresh from provisioning: the case starts, stops or reconfigures
    /// it, or counts from its first state (commandSeq, counters, lockout). Not applicable to an
    /// already-running gateway (`--target running`), which is one gateway for the whole run.
    pub own_gateway: bool,
    /// The run to itself: the case changes what the run's cases share (the platform's
    /// data-protection certificate of the run's CA: rotated, revoked, about to expire), so no
    /// other case plays beside it.
    pub alone: bool,
    /// Over a minute of protocol time that no value the platform sends can shorten (DES-MQTT-8:
    /// a session of 60 s resets the back-off; DES-MSG-DATA-5: nine transmissions at the
    /// shortest timeout), always or against an already-running gateway:
    /// the case's hard deadline is the run's plus [`crate::MINUTE_MORE`], and it plays before
    /// the cases without it.
    pub minute: bool,
    /// The gateway's access history (DES-AUDIT-1) can be read: the reference gateway's file,
    /// or an `accessHistoryCommand` in the capability statement.
    pub access_history: bool,
    /// The case's platform sends `ackTimeoutSec` [`crate::world::QUICK_ACK_TIMEOUT_SEC`]
    /// instead of the run's [`crate::world::ACK_TIMEOUT_SEC`] (a case that waits out
    /// DES-MSG-DATA-5's nine transmissions); a world of its own only.
    pub quick_acks: bool,
    /// The case's platform waits [`crate::world::PATIENT_GAP_GRACE_SEC`] before it asks for a
    /// hole (DES-MSG-RS-4) instead of the run's [`crate::world::GAP_GRACE_SEC`]: over twice
    /// `ackTimeoutSec`, as DES-MSG-RS-4 says a platform SHOULD, so that its resend cannot
    /// settle records whose data message the case needs the gateway to send again (against an
    /// already-running gateway the run's one platform is set to it for the case).
    pub patient_gaps: bool,
}

/// The capability statement of the gateway under test (`--capabilities FILE`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Capabilities {
    /// Data profiles in XML (DES-PROF-5..7) besides JSON.
    #[serde(default = "yes")]
    pub xml_profiles: bool,
    /// The gateway's disposal command (SM-DISPOSE), `{bundle}` replaced by the bundle
    /// directory, run with `sh -c` while the gateway is stopped.
    #[serde(default)]
    pub wipe_command: Option<String>,
    /// A command that prints the gateway's access history (DES-AUDIT-1) on standard output,
    /// in any text form; `{bundle}` is replaced by the bundle directory and `{state_dir}` by
    /// its `[gateway] state_dir`; run with `sh -c`.
    #[serde(default)]
    pub access_history_command: Option<String>,
    /// A process target (`--target-cmd`, `--target sgw`) offers crash points: a file
    /// `CRASH-AT` written into its bundle, naming one (`after-ingest-commit`,
    /// `after-evacuation-commit`), is renamed `CRASH-AT.armed` within 5 s, and the
    /// gateway then dies right after its next durable commit of that kind, before anything
    /// later is made durable (docs/conformance.md, "Crash points"). `--target sgw` sets it
    /// when `sgw --version` names crash points (a test build).
    #[serde(default)]
    pub crash_points: bool,
}

fn yes() -> bool {
    true
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            xml_profiles: true,
            wipe_command: None,
            access_history_command: None,
            crash_points: false,
        }
    }
}

/// Why a case failed: what was expected and what was observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What the case saw instead of the expectation.
    pub observed: String,
}

impl<T: std::fmt::Display> From<T> for Failure {
    fn from(e: T) -> Self {
        Failure {
            observed: e.to_string(),
        }
    }
}

/// A case's result.
pub type CaseResult = Result<(), Failure>;

/// The future a case's function returns.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + Send + 'a>>;

/// One conformance case.
#[derive(Clone, Copy)]
pub struct Case {
    /// Stable ID, e.g. `PSTART-TAMPERED`.
    pub id: &'static str,
    /// Requirement IDs of docs/requirements.md it covers.
    pub requirements: &'static [&'static str],
    /// DES rules of docs/protocol.md it checks.
    pub rules: &'static [&'static str],
    /// MUST or SHOULD.
    pub level: Level,
    /// Negative or adversarial (tampered, malformed, crashed, …).
    pub negative: bool,
    /// What it does.
    pub description: &'static str,
    /// What a conforming gateway does.
    pub expectation: &'static str,
    /// What it needs of the target.
    pub needs: Needs,
    /// Runs it.
    pub run: for<'a> fn(&'a mut Ctx) -> CaseFuture<'a>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("id", &self.id).finish()
    }
}

/// The graded verdict of one case in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The expectation held.
    Pass,
    /// A MUST (or, with `--strict`, a SHOULD) was missed; or a listed deviation passed.
    Fail,
    /// A SHOULD was missed (not strict).
    NonStrict,
    /// Does not apply to this target (capability statement, or a restart it cannot do).
    NotApplicable,
    /// Failed as the known-deviations file says.
    ExpectedFailure,
}

impl Verdict {
    /// Whether the run fails because of it.
    pub fn fails_run(self) -> bool {
        self == Verdict::Fail
    }
}

/// Grades a case's result (docs/conformance.md, "Verdicts"): `deviation` is the reason the
/// known-deviations file gives for this case, if it lists it.
pub fn grade(
    level: Level,
    result: &CaseResult,
    deviation: Option<&str>,
    strict: bool,
) -> (Verdict, Option<String>) {
    match (result, deviation) {
        (Ok(()), None) => (Verdict::Pass, None),
        (Ok(()), Some(why)) => (
            Verdict::Fail,
            Some(format!(
                "listed as a known deviation ({why}) but passed: remove it from the deviations file"
            )),
        ),
        (Err(_), Some(why)) => (Verdict::ExpectedFailure, Some(why.to_owned())),
        (Err(_), None) if level == Level::Should && !strict => (Verdict::NonStrict, None),
        (Err(_), None) => (Verdict::Fail, None),
    }
}

/// `*` (any run, also empty) and `?` (one character) glob match of a case ID.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capability_statement_names_only_known_capabilities() {
        let c: Capabilities = serde_json::from_str(r#"{"xmlProfiles": false}"#).unwrap();
        assert_eq!(
            (c.xml_profiles, c.wipe_command, c.access_history_command),
            (false, None, None)
        );
        let c: Capabilities =
            serde_json::from_str(r#"{"accessHistoryCommand": "cat {state_dir}/h.log"}"#).unwrap();
        assert_eq!(
            c.access_history_command.as_deref(),
            Some("cat {state_dir}/h.log")
        );
        // Crash points are offered only when stated.
        assert!(!c.crash_points);
        let c: Capabilities = serde_json::from_str(r#"{"crashPoints": true}"#).unwrap();
        assert!(c.crash_points && c.xml_profiles);
        // FTPS is required of every gateway (DES-FTP-2), not a capability; a typo is refused.
        for bad in [r#"{"ftps": false}"#, r#"{"xmlProfile": false}"#] {
            let e = serde_json::from_str::<Capabilities>(bad).unwrap_err();
            assert!(e.to_string().contains("unknown field"), "{bad}: {e}");
        }
    }

    #[test]
    fn grading_follows_level_strictness_and_deviations() {
        let bad: CaseResult = Err(Failure {
            observed: "x".into(),
        });
        assert_eq!(grade(Level::Must, &Ok(()), None, false).0, Verdict::Pass);
        assert_eq!(grade(Level::Must, &bad, None, false).0, Verdict::Fail);
        assert_eq!(
            grade(Level::Should, &bad, None, false).0,
            Verdict::NonStrict
        );
        assert_eq!(grade(Level::Should, &bad, None, true).0, Verdict::Fail);
        assert_eq!(
            grade(Level::Must, &bad, Some("known"), false).0,
            Verdict::ExpectedFailure
        );
        // A stale deviation cannot hide: a listed case that passes fails the run.
        let (v, why) = grade(Level::Must, &Ok(()), Some("known"), false);
        assert_eq!(v, Verdict::Fail);
        assert!(why.unwrap().contains("passed"));
    }

    #[test]
    fn globs_match_whole_ids() {
        assert!(glob_match("FTP-*", "FTP-EMPTY"));
        assert!(glob_match("*", "CONN-OK"));
        assert!(glob_match("PSTART-?AMPERED", "PSTART-TAMPERED"));
        assert!(!glob_match("FTP-*", "XFTP-EMPTY"));
        assert!(!glob_match("CONN", "CONN-OK"));
    }
}
