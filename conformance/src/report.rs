//! Reports of a run (docs/conformance.md, "Reports"): `report.json` (the schema is
//! `docs/schemas/conformance-report.schema.json`), `junit.xml`, and the coverage matrix —
//! requirement ID → cases → outcomes, with the requirements no case covers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::case::{Capabilities, Case, Level, Verdict};

/// The requirement catalogue the suite ships with (docs/requirements.md).
pub const REQUIREMENTS: &str = include_str!("../../docs/requirements.md");

/// The protocol the suite checks (docs/protocol.md).
pub const PROTOCOL: &str = include_str!("../../docs/protocol.md");

/// Every DES rule docs/protocol.md defines (`- **DES-…**` items), in order of appearance.
pub fn des_rules() -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for line in PROTOCOL.lines() {
        let Some(rest) = line.trim_start().strip_prefix("- **DES-") else {
            continue;
        };
        let Some((tail, _)) = rest.split_once("**") else {
            continue;
        };
        let id = format!("DES-{tail}");
        if !v.contains(&id) {
            v.push(id);
        }
    }
    v
}

/// (ID, level) of every requirement in the catalogue's tables.
pub fn requirements() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for line in REQUIREMENTS.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() > 3
            && matches!(cells[2], "MUST" | "SHOULD" | "DESIGN")
            && cells[1].contains('-')
            && cells[1]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
            && !v.iter().any(|(id, _)| id == cells[1])
        {
            v.push((cells[1].to_owned(), cells[2].to_owned()));
        }
    }
    v
}

/// The IDs of the cases of `all` for which `covers` holds.
fn cases_of(all: &[Case], covers: impl Fn(&Case) -> bool) -> Vec<String> {
    all.iter()
        .filter(|c| covers(c))
        .map(|c| c.id.to_owned())
        .collect()
}

/// One case's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseReport {
    /// Case ID.
    pub id: String,
    /// Requirement IDs.
    pub requirements: Vec<String>,
    /// DES rules.
    pub rules: Vec<String>,
    /// MUST or SHOULD.
    pub level: Level,
    /// Negative or adversarial.
    pub negative: bool,
    /// What it does.
    pub description: String,
    /// What a conforming gateway does.
    pub expectation: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What was observed when it did not pass (or why not applicable / expected).
    pub observed: Option<String>,
    /// Notes the case made.
    pub notes: Vec<String>,
    /// The platform's wire log of the case (messages opened; no field values).
    pub wire: Vec<platform_sim::platform::WireEvent>,
    /// Seconds it took.
    pub seconds: f64,
    /// The case's seed.
    pub seed: u64,
    /// The command that replays exactly this case.
    pub replay: String,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// The suite's version.
    pub suite_version: String,
    /// The target.
    pub target: String,
    /// The run's seed.
    pub seed: u64,
    /// `--strict`.
    pub strict: bool,
    /// The capability statement.
    pub capabilities: Capabilities,
    /// Every case selected, in order.
    pub cases: Vec<CaseReport>,
    /// Requirement ID, and DES rule of docs/protocol.md (level `DES`) → the cases covering it
    /// (selected or not) and their verdicts in this run.
    pub coverage: BTreeMap<String, Coverage>,
    /// Verdict → count.
    pub totals: BTreeMap<String, usize>,
    /// Whether the run passed (no `fail`).
    pub passed: bool,
}

/// One requirement's line of the coverage matrix.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    /// MUST, SHOULD or DESIGN.
    pub level: String,
    /// Cases covering it (all of the suite).
    pub cases: Vec<String>,
    /// Verdicts of those run now.
    pub outcomes: Vec<Verdict>,
    /// Of a DES rule no case checks: why ([`crate::cases::RULES_WITHOUT_A_CASE`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl RunReport {
    /// Builds the coverage matrix and totals from `all` (every case of the suite) and the
    /// outcomes.
    pub fn finish(&mut self, all: &[Case]) {
        let mut cov = BTreeMap::new();
        let lines = requirements()
            .into_iter()
            .map(|(id, level)| {
                let cases = cases_of(all, |c| c.requirements.contains(&id.as_str()));
                (id, level, cases, None)
            })
            .chain(des_rules().into_iter().map(|id| {
                let cases = cases_of(all, |c| c.rules.contains(&id.as_str()));
                let why = crate::cases::RULES_WITHOUT_A_CASE
                    .iter()
                    .find(|(r, _)| *r == id)
                    .map(|(_, why)| (*why).to_owned());
                (id, "DES".to_owned(), cases, why)
            }));
        for (id, level, cases, why) in lines {
            let outcomes = self
                .cases
                .iter()
                .filter(|c| cases.contains(&c.id))
                .map(|c| c.verdict)
                .collect();
            cov.insert(
                id,
                Coverage {
                    level,
                    cases,
                    outcomes,
                    why,
                },
            );
        }
        self.coverage = cov;
        let mut totals = BTreeMap::new();
        for c in &self.cases {
            let k = serde_json::to_value(c.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *totals.entry(k).or_insert(0) += 1;
        }
        self.totals = totals;
        self.passed = !self.cases.iter().any(|c| c.verdict.fails_run());
    }

    /// Requirements of `level` (`DES`: the DES rules) that no case covers.
    pub fn uncovered(&self, level: &str) -> Vec<&str> {
        self.coverage
            .iter()
            .filter(|(_, c)| c.level == level && c.cases.is_empty())
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// JUnit XML: one testsuite, one testcase per case; `fail` → failure; `non-strict` and
    /// `not-applicable` → skipped with the reason; `expected-failure` → passed with a note.
    pub fn junit(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let failures = self
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .count();
        let skipped = self
            .cases
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::NotApplicable | Verdict::NonStrict))
            .count();
        let time: f64 = self.cases.iter().map(|c| c.seconds).sum();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuite name=\"sgw-conformance\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            self.cases.len()
        );
        for c in &self.cases {
            let _ = write!(
                x,
                "  <testcase classname=\"sgw.{}\" name=\"{}\" time=\"{:.3}\">",
                esc(&c.requirements.join(",")),
                esc(&c.id),
                c.seconds
            );
            let msg = esc(c.observed.as_deref().unwrap_or(""));
            match c.verdict {
                Verdict::Fail => {
                    let _ = write!(
                        x,
                        "<failure message=\"{msg}\">expected: {}\nreplay: {}</failure>",
                        esc(&c.expectation),
                        esc(&c.replay)
                    );
                }
                Verdict::NonStrict => {
                    let _ = write!(
                        x,
                        "<skipped message=\"non-strict (SHOULD missed): {msg}\"/>"
                    );
                }
                Verdict::NotApplicable => {
                    let _ = write!(x, "<skipped message=\"not applicable: {msg}\"/>");
                }
                Verdict::ExpectedFailure => {
                    let _ = write!(x, "<system-out>expected failure: {msg}</system-out>");
                }
                Verdict::Pass => {}
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("</testsuite>\n");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_parses_with_its_levels() {
        let r = requirements();
        assert!(r.iter().any(|(id, l)| id == "IF-CONN-1" && l == "MUST"));
        assert!(r.iter().any(|(id, l)| id == "SM-AUDIT" && l == "SHOULD"));
        assert!(r.len() >= 55, "{}", r.len());
    }

    #[test]
    fn every_smoke_and_core_id_names_a_case() {
        let all = crate::cases::all();
        for id in crate::cases::SMOKE.iter().chain(crate::cases::CORE) {
            assert!(all.iter().any(|c| c.id == *id), "{id}");
        }
    }

    fn empty() -> RunReport {
        RunReport {
            suite_version: String::new(),
            target: String::new(),
            seed: 0,
            strict: false,
            capabilities: Capabilities::default(),
            cases: Vec::new(),
            coverage: BTreeMap::new(),
            totals: BTreeMap::new(),
            passed: true,
        }
    }

    #[test]
    fn a_must_no_case_covers_is_listed_uncovered() {
        let mut all = crate::cases::all();
        let mut r = empty();
        r.finish(&all);
        assert!(r.uncovered("MUST").is_empty(), "{:?}", r.uncovered("MUST"));
        // Drop the only case of the archives' receiving side: SEC-FILE-*-2 are uncovered.
        all.retain(|c| !c.requirements.contains(&"SEC-FILE-SIG-2"));
        let mut r = empty();
        r.finish(&all);
        assert_eq!(
            r.uncovered("MUST"),
            vec!["SEC-FILE-ENC-2", "SEC-FILE-SIG-2"]
        );
    }
}
