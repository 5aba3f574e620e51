//! The SGW conformance suite: certifies a gateway against the requirements
//! (docs/requirements.md) and the protocol (docs/protocol.md) by being its whole world — the
//! platform simulator (broker, HTTPS endpoint, platform side, faults) and the legacy systems
//! (FTPS uploads, bad input) — and grading each case (docs/conformance.md).
//!
//! - [`case`]: the case type, verdicts and their grading, selection globs.
//! - [`cases`]: the cases.
//! - [`world`]: the per-run and per-case world, and the targets (our gateway in process, any
//!   gateway as a command, a gateway already running from a world directory).
//! - [`summary`]: the signed certification summary (JWS).
//! - [`report`]: JSON and JUnit reports, the coverage matrix; [`html`]: the static HTML report.

pub mod case;
pub mod cases;
pub mod html;
pub mod report;
pub mod summary;
pub mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use case::{Capabilities, Case, Verdict, glob_match, grade};
use report::{CaseReport, RunReport};
use world::{Suite, Target};

/// The gateway under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Our gateway in this process.
    InProcess,
    /// A command template with `{bundle}` (e.g. `sgw run --bundle {bundle}`).
    Command(String),
    /// A gateway already running from the bundle of this world directory
    /// (`sgw-conformance provision`).
    Running(PathBuf),
}

impl TargetSpec {
    /// As given on the command line (for replay commands).
    pub fn arg(&self) -> String {
        match self {
            TargetSpec::InProcess => "--target inproc".into(),
            TargetSpec::Command(c) => format!("--target-cmd '{c}'"),
            TargetSpec::Running(w) => format!("--target running --world {}", w.display()),
        }
    }

    /// The target; a command target with `crash_points` offers them ([`Capabilities`]).
    pub fn make(&self, log: PathBuf, crash_points: bool) -> Box<dyn Target> {
        match self {
            TargetSpec::InProcess => Box::new(world::InProcess::default()),
            TargetSpec::Command(c) => {
                Box::new(world::Command::new(c, log).with_crash_points(crash_points))
            }
            TargetSpec::Running(w) => Box::new(world::Running::new(w)),
        }
    }

    /// The file of the gateway under test: the suite itself for `InProcess`, the first word of
    /// the command when it names a file.
    pub fn binary(&self) -> Option<PathBuf> {
        match self {
            TargetSpec::InProcess => std::env::current_exe().ok(),
            TargetSpec::Command(c) => c
                .split_whitespace()
                .next()
                .map(PathBuf::from)
                .filter(|p| p.is_file()),
            TargetSpec::Running(_) => None,
        }
    }

    fn can_kill(&self) -> bool {
        matches!(self, TargetSpec::Command(_) | TargetSpec::InProcess)
    }
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The gateway under test.
    pub target: TargetSpec,
    /// Case ID globs (empty: every case).
    pub select: Vec<String>,
    /// SHOULD missed → fail.
    pub strict: bool,
    /// The run's seed (each case's seed derives from it and the case ID).
    pub seed: u64,
    /// The capability statement.
    pub capabilities: Capabilities,
    /// Known deviations: (case ID glob, reason).
    pub deviations: Vec<(String, String)>,
    /// Hard deadline of one case.
    pub case_deadline: Duration,
    /// How many cases play side by side ([`DEFAULT_JOBS`]; 1 with an already-running gateway).
    pub jobs: usize,
    /// The suite's own tests: a broken variant of the reference gateway (written as `BROKEN`
    /// into every bundle; honoured only by a gateway built with `broken-variants`).
    pub variant: Option<String>,
}

/// Parses a known-deviations file: one `GLOB reason…` per line, `#` comments.
pub fn parse_deviations(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((g, why)) => (g.to_owned(), why.trim().to_owned()),
            None => (l.to_owned(), "listed".to_owned()),
        })
        .collect()
}

/// The seed of case `id` in a run seeded `seed` (FNV-1a over the ID, mixed with the seed).
pub fn case_seed(seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The cases `select` picks (every case when empty), in suite order.
pub fn selected(select: &[String]) -> Vec<Case> {
    cases::all()
        .into_iter()
        .filter(|c| select.is_empty() || select.iter().any(|g| glob_match(g, c.id)))
        .collect()
}

/// How many cases a run plays side by side by default ([`RunOptions::jobs`]): each has a world
/// of its own (gateway, platform, HTTPS endpoint, FTP port) beside the run's CA and broker.
pub const DEFAULT_JOBS: usize = 3;

/// What a case that needs [`case::Needs::minute`] gets on top of the run's hard deadline.
pub const MINUTE_MORE: Duration = Duration::from_secs(60);

/// Runs the selected cases and grades them: up to [`RunOptions::jobs`] at a time, a case that
/// needs the run to itself ([`case::Needs::alone`]) with none beside it, an already-running
/// gateway's cases one after the other. `progress` sees each case as it ends; the report lists
/// them in suite order.
pub async fn run(opts: &RunOptions, mut progress: impl FnMut(&CaseReport)) -> Result<RunReport> {
    let suite = match &opts.target {
        TargetSpec::Running(w) => Suite::open_world(w, opts.seed).await?,
        _ => Suite::new()?,
    };
    suite.wait_for_gateway(world::SESSION_WAIT).await?;
    let all = cases::all();
    let mut report = RunReport {
        suite_version: env!("CARGO_PKG_VERSION").into(),
        target: opts
            .target
            .make(
                suite.dir.path().join("x.log"),
                opts.capabilities.crash_points,
            )
            .describe(),
        seed: opts.seed,
        strict: opts.strict,
        capabilities: opts.capabilities.clone(),
        cases: Vec::new(),
        coverage: Default::default(),
        totals: Default::default(),
        passed: false,
    };
    let jobs = match opts.target {
        TargetSpec::Running(_) => 1,
        _ => opts.jobs.max(1),
    };
    let permits = u32::try_from(jobs).unwrap_or(u32::MAX);
    let suite = Arc::new(suite);
    let shared_opts = Arc::new(opts.clone());
    let slots = Arc::new(tokio::sync::Semaphore::new(jobs));
    let selected = selected(&opts.select);
    let mut running = tokio::task::JoinSet::new();
    let mut which = std::collections::HashMap::new();
    let mut done: Vec<(usize, CaseReport)> = Vec::new();
    let mut ended = |r: Result<(tokio::task::Id, Result<CaseReport>), tokio::task::JoinError>,
                     which: &std::collections::HashMap<tokio::task::Id, usize>|
     -> Result<()> {
        let (i, r) = match r {
            Ok((id, r)) => (which[&id], r?),
            Err(e) => {
                let i = which[&e.id()];
                (i, panicked(&selected[i], opts, &e))
            }
        };
        progress(&r);
        done.push((i, r));
        Ok(())
    };
    for i in play_order(&selected) {
        let case = &selected[i];
        let need = if case.needs.alone { permits } else { 1 };
        let slot = loop {
            tokio::select! {
                s = slots.clone().acquire_many_owned(need) => break s?,
                Some(r) = running.join_next_with_id() => ended(r, &which)?,
            }
        };
        let (suite, opts, case) = (suite.clone(), shared_opts.clone(), *case);
        let task = running.spawn(async move {
            let r = run_case(&suite, &opts, case).await;
            drop(slot);
            r
        });
        which.insert(task.id(), i);
    }
    while let Some(r) = running.join_next_with_id().await {
        ended(r, &which)?;
    }
    done.sort_by_key(|(i, _)| *i);
    report.cases = done.into_iter().map(|(_, r)| r).collect();
    report.finish(&all);
    Ok(report)
}

/// The order in which `cases` are played (indices; reports keep the suite's order): those that
/// want the run to themselves first (one after another, nothing beside them to drain), then
/// those of a minute more (so that the run does not wait for one at its end), then the rest,
/// each group in suite order.
fn play_order(cases: &[Case]) -> Vec<usize> {
    let rank = |c: &Case| match (c.needs.alone, c.needs.minute) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => 2,
    };
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|&i| rank(&cases[i]));
    order
}

/// The replay command of `case` in a run with `opts`.
fn replay(opts: &RunOptions, case: &Case) -> String {
    format!(
        "sgw-conformance run {} --select {} --seed {}",
        opts.target.arg(),
        case.id,
        opts.seed
    )
}

/// The report of a case whose task panicked: a failure of the suite, named as such.
fn panicked(case: &Case, opts: &RunOptions, e: &tokio::task::JoinError) -> CaseReport {
    CaseReport {
        observed: Some(format!("the suite's own task for the case ended: {e}")),
        ..case_report(case, opts, Verdict::Fail, Instant::now())
    }
}

/// A case's report without observations.
fn case_report(case: &Case, opts: &RunOptions, verdict: Verdict, started: Instant) -> CaseReport {
    CaseReport {
        id: case.id.to_owned(),
        requirements: case.requirements.iter().map(|s| (*s).to_owned()).collect(),
        rules: case.rules.iter().map(|s| (*s).to_owned()).collect(),
        level: case.level,
        negative: case.negative,
        description: case.description.to_owned(),
        expectation: case.expectation.to_owned(),
        verdict,
        observed: None,
        notes: Vec::new(),
        wire: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
        seed: case_seed(opts.seed, case.id),
        replay: replay(opts, case),
    }
}

/// Plays one case in a world of its own (or the running gateway's) and grades it.
async fn run_case(suite: &Suite, opts: &RunOptions, case: Case) -> Result<CaseReport> {
    let seed = case_seed(opts.seed, case.id);
    let started = Instant::now();
    let deviation = opts
        .deviations
        .iter()
        .find(|(g, _)| glob_match(g, case.id))
        .map(|(_, why)| why.as_str());
    let running = matches!(opts.target, TargetSpec::Running(_));
    let na = if case.needs.own_gateway && running {
        Some(
            "needs a gateway of its own (started, stopped, reconfigured or counted from \
             provisioning by the case); an already-running gateway is one for the whole run",
        )
    } else if case.needs.kill && !opts.target.can_kill() {
        Some("needs to kill and restart the gateway; this target cannot be killed")
    } else if case.needs.xml && !opts.capabilities.xml_profiles {
        Some("the capability statement has no XML profiles")
    } else if case.needs.wipe
        && opts.target != TargetSpec::InProcess
        && opts.capabilities.wipe_command.is_none()
    {
        Some("the capability statement names no disposal command (wipeCommand)")
    } else if case.needs.access_history
        && opts.target != TargetSpec::InProcess
        && opts.capabilities.access_history_command.is_none()
    {
        Some("the capability statement names no access-history command (accessHistoryCommand)")
    } else {
        None
    };
    if let Some(why) = na {
        return Ok(CaseReport {
            observed: Some(why.to_owned()),
            ..case_report(&case, opts, Verdict::NotApplicable, started)
        });
    }
    let timers = world::Timers {
        ack_timeout_sec: match case.needs.quick_acks {
            true => world::QUICK_ACK_TIMEOUT_SEC,
            false => world::ACK_TIMEOUT_SEC,
        },
        gap_grace_sec: match case.needs.patient_gaps {
            true => world::PATIENT_GAP_GRACE_SEC,
            false => world::GAP_GRACE_SEC,
        },
    };
    let mut ctx = suite.world_with(case.id, seed, timers).await?;
    ctx.alone = case.needs.alone;
    if let Some(v) = &opts.variant {
        std::fs::write(ctx.bundle.dir.join("BROKEN"), v)?;
    }
    ctx.target = Some(opts.target.make(
        suite.dir.path().join(format!("{}.log", case.id)),
        opts.capabilities.crash_points,
    ));
    ctx.wipe = match (&opts.target, &opts.capabilities.wipe_command) {
        (_, Some(c)) => Some(world::Wipe::Command(c.clone())),
        (TargetSpec::InProcess, None) => Some(world::Wipe::InProcess),
        _ => None,
    };
    ctx.history = match (&opts.target, &opts.capabilities.access_history_command) {
        (_, Some(c)) => Some(world::History::Command(c.clone())),
        (TargetSpec::InProcess, None) => Some(world::History::Reference),
        _ => None,
    };
    // A running gateway is first settled (within the case's deadline): what earlier cases
    // left delivered, sending stopped.
    let body = async {
        if ctx.shared() {
            ctx.settle().await.map_err(|e| case::Failure {
                observed: format!("settling the running gateway before the case: {e:#}"),
            })?;
        }
        (case.run)(&mut ctx).await
    };
    let deadline = match case.needs.minute {
        true => opts.case_deadline + MINUTE_MORE,
        false => opts.case_deadline,
    };
    let result = match tokio::time::timeout(deadline, body).await {
        Ok(r) => r,
        Err(_) => Err(case::Failure {
            observed: format!("hard deadline of {} s passed", deadline.as_secs()),
        }),
    };
    ctx.finish().await;
    let (verdict, why) = grade(case.level, &result, deviation, opts.strict);
    let observed = match (&result, why) {
        (_, Some(w)) => Some(match &result {
            Err(f) => format!("{w}: {}", f.observed),
            Ok(()) => w,
        }),
        (Err(f), None) => Some(f.observed.clone()),
        (Ok(()), None) => None,
    };
    Ok(CaseReport {
        observed,
        notes: ctx.notes.clone(),
        wire: ctx.wire(),
        ..case_report(&case, opts, verdict, started)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_alone_play_first_then_the_long_ones_then_the_rest_in_suite_order() {
        let all = cases::all();
        let ids: Vec<&str> = play_order(&all).into_iter().map(|i| all[i].id).collect();
        let alone: Vec<&str> = all.iter().filter(|c| c.needs.alone).map(|c| c.id).collect();
        assert_eq!(alone.len(), 4, "{alone:?}");
        assert_eq!(ids[..4], alone[..]);
        let minute: Vec<&str> = all
            .iter()
            .filter(|c| c.needs.minute && !c.needs.alone)
            .map(|c| c.id)
            .collect();
        assert_eq!(
            minute,
            [
                "DATA-GIVEN-UP",
                "LINK-LOSS",
                "BROKER-RESTART",
                "CONNECT-BACKOFF-RESET"
            ]
        );
        assert_eq!(ids[4..8], minute[..]);
        let rest: Vec<&str> = all
            .iter()
            .filter(|c| !c.needs.alone && !c.needs.minute)
            .map(|c| c.id)
            .collect();
        assert_eq!(ids[8..], rest[..]);
    }

    #[test]
    fn every_case_names_known_requirements_and_has_a_unique_id() {
        let known: Vec<String> = report::requirements()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let all = cases::all();
        let mut ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "duplicate case IDs");
        for c in &all {
            assert!(!c.requirements.is_empty(), "{}", c.id);
            for r in c.requirements {
                assert!(
                    known.iter().any(|k| k == r),
                    "{}: unknown requirement {r}",
                    c.id
                );
            }
            for d in c.rules {
                assert!(
                    report::REQUIREMENTS.contains(d) || PROTOCOL.contains(d),
                    "{}: rule {d} is in neither docs/protocol.md nor the catalogue",
                    c.id
                );
            }
        }
        let negative = all.iter().filter(|c| c.negative).count();
        assert!(
            negative * 2 >= all.len(),
            "{negative} of {} negative",
            all.len()
        );
    }

    use report::PROTOCOL;

    /// Item 2 of the suite's brief: every DES rule is checked by a case or its absence is
    /// explained (`cases::RULES_WITHOUT_A_CASE`), never both, and the list names only rules
    /// that exist.
    #[test]
    fn every_des_rule_has_a_case_or_a_reason_why_not() {
        let rules = report::des_rules();
        assert!(rules.len() > 100, "{} DES rules read", rules.len());
        let all = cases::all();
        let mut missing = Vec::new();
        for r in &rules {
            let checked = all.iter().any(|c| c.rules.contains(&r.as_str()));
            let why = cases::RULES_WITHOUT_A_CASE.iter().any(|(x, _)| x == r);
            assert!(
                !(checked && why),
                "{r} has a case and a reason why it has none"
            );
            if !checked && !why {
                missing.push(r.clone());
            }
        }
        assert!(
            missing.is_empty(),
            "DES rules without a case or a reason: {missing:?}"
        );
        let docs = include_str!("../../docs/conformance.md");
        for (r, why) in cases::RULES_WITHOUT_A_CASE {
            assert!(rules.iter().any(|x| x == r), "{r} is not a DES rule");
            assert!(!why.is_empty(), "{r}");
            assert!(
                docs.contains(&format!("| {r} | ")),
                "{r} is missing from docs/conformance.md's table of rules without a case"
            );
        }
        let with_case = rules.len() - cases::RULES_WITHOUT_A_CASE.len();
        assert!(
            docs.contains(&format!(
                "{with_case} of the {} rules have a case",
                rules.len()
            )),
            "docs/conformance.md should say {with_case} of the {} rules have a case",
            rules.len()
        );
        // The report carries them: a rule with no case has its reason in the matrix.
        let mut report = RunReport {
            suite_version: String::new(),
            target: String::new(),
            seed: 0,
            strict: false,
            capabilities: Default::default(),
            cases: Vec::new(),
            coverage: Default::default(),
            totals: Default::default(),
            passed: false,
        };
        report.finish(&all);
        assert!(
            report
                .uncovered("DES")
                .iter()
                .all(|r| { report.coverage[*r].why.is_some() })
        );
        assert_eq!(report.coverage["DES-MQTT-9"].cases.len(), 0);
        // And every MUST and SHOULD of the catalogue has a case (item 2 of the brief).
        assert_eq!(report.uncovered("MUST"), Vec::<&str>::new());
        assert_eq!(report.uncovered("SHOULD"), Vec::<&str>::new());
        assert!(!report.coverage["DES-SEAL-4"].cases.is_empty());
    }

    #[test]
    fn deviations_parse_and_case_seeds_differ() {
        let d = parse_deviations("# known\nFTP-*  libfoo fixes reply texts\n\nCONN-OK\n");
        assert_eq!(
            d,
            vec![
                ("FTP-*".to_owned(), "libfoo fixes reply texts".to_owned()),
                ("CONN-OK".to_owned(), "listed".to_owned())
            ]
        );
        assert_ne!(case_seed(1, "A"), case_seed(1, "B"));
        assert_ne!(case_seed(1, "A"), case_seed(2, "A"));
        assert_eq!(case_seed(7, "A"), case_seed(7, "A"));
    }
}
