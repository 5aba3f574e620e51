//! `sgw-conformance`: the certification suite's runner (docs/conformance.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use conformance::case::{Capabilities, Verdict};
use conformance::{RunOptions, TargetSpec, parse_deviations, run, selected};

/// Certifies a System Gateway against the SGW requirements and docs/protocol.md.
///
/// The suite is the gateway's whole world: for every case it provisions a fresh gateway
/// identity (a bundle as `platform-sim provision` writes it, plus the utility's masking key and
/// FTPS certificate), runs a platform (MQTT broker with mutual TLS, HTTPS certificate endpoint,
/// the platform side of every flow, faults) and plays the legacy systems (CSV over FTPS, bad
/// input). It starts the gateway under test from that bundle, drives the case, stops it, and
/// grades the outcome: pass, fail, non-strict (a SHOULD missed), not-applicable (capability
/// statement or target), expected-failure (known-deviations file).
///
/// To certify a vendor gateway: give its start command with `{bundle}` where the bundle
/// directory goes, e.g.
///
///   sgw-conformance run --target-cmd 'vendor-gw --config {bundle}/gateway.toml' --out report/
///
/// The gateway must read the bundle (docs/protocol.md §11), listen for FTP(S) where
/// `[ftp].listen` says, connect to the broker of `[platform].mqtt_url`, and stop cleanly on
/// SIGTERM. Every failure prints a command that replays exactly that case with the same seed.
///
/// A gateway that only runs as a service (already running, not started by the suite):
///
///   sgw-conformance provision --world w/      # CA, bundle w/bundle, fixed ports, w/world.json
///   (start the gateway from w/bundle and leave it running)
///   sgw-conformance run --target running --world w/ --out report/
///
/// Cases that start, stop, kill, reconfigure or wipe the gateway are then not applicable; the
/// others run one after the other against the one gateway, each from where the last left it.
///
/// The exit status is the verdict: 0 when no case failed, 1 otherwise, 2 when the run could
/// not be set up.
#[derive(Parser)]
#[command(name = "sgw-conformance", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct TargetArgs {
    /// `inproc`: the reference gateway in this process; `sgw`: the `sgw` binary next to this
    /// one (`sgw run --bundle {bundle}`); `running`: the gateway already running from the
    /// bundle of `--world`.
    #[arg(long, default_value = "inproc", conflicts_with = "target_cmd")]
    target: String,
    /// The world directory of `--target running` (`sgw-conformance provision --world`).
    #[arg(long)]
    world: Option<PathBuf>,
    /// The gateway's start command; `{bundle}` is replaced by the bundle directory. Run with
    /// `sh -c`; stopped with SIGTERM, killed with SIGKILL.
    #[arg(long)]
    target_cmd: Option<String>,
}

impl TargetArgs {
    fn spec(&self) -> Result<TargetSpec, String> {
        if let Some(c) = &self.target_cmd {
            if !c.contains("{bundle}") {
                return Err("--target-cmd must contain {bundle}".into());
            }
            return Ok(TargetSpec::Command(c.clone()));
        }
        if self.world.is_some() && self.target != "running" {
            return Err("--world goes with --target running".into());
        }
        match self.target.as_str() {
            "running" => match &self.world {
                Some(w) => Ok(TargetSpec::Running(w.clone())),
                None => {
                    Err("--target running needs --world DIR (sgw-conformance provision)".into())
                }
            },
            "inproc" => Ok(TargetSpec::InProcess),
            "sgw" => {
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                let sgw = exe.with_file_name("sgw");
                if !sgw.is_file() {
                    return Err(format!(
                        "{} not found: build it (cargo build -p gateway --bin sgw) or use --target-cmd",
                        sgw.display()
                    ));
                }
                Ok(TargetSpec::Command(format!(
                    "{} run --bundle {{bundle}}",
                    sgw.display()
                )))
            }
            other => Err(format!("--target {other}: inproc, sgw or running")),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// List the cases (ID, level, negative, requirement IDs, DES rules).
    List {
        /// Only cases whose ID matches one of these globs (`*`, `?`).
        #[arg(long)]
        select: Vec<String>,
    },
    /// Check the set-up without running cases: provision one gateway, start it, wait for its
    /// session with the platform, stop it (`--target running`: wait for the running gateway's
    /// session and settle it as before every case).
    DryRun {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Write the world of an already-running gateway into a new directory: a CA, the
    /// gateway's bundle (`bundle/`: start the gateway from it), fixed loopback ports for the
    /// broker and the HTTPS endpoint, and `world.json` (owner-only: the FTP passwords). Then
    /// `run --target running --world DIR`.
    Provision {
        /// The directory (must not hold a world yet).
        #[arg(long)]
        world: PathBuf,
    },
    /// Run the cases and write the reports.
    Run {
        #[command(flatten)]
        target: TargetArgs,
        /// Only cases whose ID matches one of these globs (`*`, `?`); repeatable.
        #[arg(long)]
        select: Vec<String>,
        /// The smoke selection (a dozen cases across session, sending, commands, forgeries,
        /// FTP refusals and resend; under a minute): added to `--select`.
        #[arg(long)]
        smoke: bool,
        /// A missed SHOULD fails the run (otherwise: non-strict).
        #[arg(long)]
        strict: bool,
        /// The run's seed (default: random, printed); each case's seed derives from it.
        #[arg(long)]
        seed: Option<u64>,
        /// The capability statement (JSON: {"xmlProfiles": bool, "wipeCommand": "CMD {bundle}",
        /// "accessHistoryCommand": "CMD {bundle} {state_dir}", "crashPoints": bool}).
        #[arg(long)]
        capabilities: Option<PathBuf>,
        /// Known deviations: one `CASE-GLOB reason` per line; such a case failing is an
        /// expected failure, passing fails the run (the file is stale).
        #[arg(long)]
        deviations: Option<PathBuf>,
        /// Where report.json, junit.xml and the HTML report (index.html, cases/) go.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Hard deadline of one case, seconds (a case that needs over a minute of protocol
        /// time no platform value can shorten gets 60 s more: CONNECT-BACKOFF-RESET and
        /// DATA-GIVEN-UP, and LINK-LOSS and BROKER-RESTART against an already-running gateway).
        #[arg(long, default_value_t = 90)]
        case_deadline: u64,
        /// How many cases play side by side, each in a world of its own (a case that changes
        /// what the run shares plays alone; an already-running gateway's cases one by one).
        #[arg(long, default_value_t = conformance::DEFAULT_JOBS)]
        jobs: usize,
        /// The certification body's RSA signing key (PEM) for summary.jws; without it a key is
        /// made for the run (the summary then proves integrity only).
        #[arg(long, requires = "sign_cert")]
        sign_key: Option<PathBuf>,
        /// The certificate of --sign-key (PEM), embedded in the summary.
        #[arg(long, requires = "sign_key")]
        sign_cert: Option<PathBuf>,
    },
    /// Verify a certification summary (summary.jws) offline and print its claims. With --cert
    /// the signer must be that certificate (the certification body's); without, the embedded
    /// certificate is used and its SHA-256 fingerprint printed to compare with a published one.
    VerifySummary {
        /// The summary.jws file.
        file: PathBuf,
        /// The expected signer's certificate (PEM).
        #[arg(long)]
        cert: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Cmd::Provision { world } => match conformance::world::provision_world(&world) {
            Ok(w) => {
                println!(
                    "world {}: gateway {}, broker port {}, HTTPS port {}, FTP port {}",
                    world.display(),
                    w.gateway,
                    w.broker_port,
                    w.https_port,
                    w.ftp_port
                );
                println!(
                    "start the gateway from {} and leave it running, then:\n  \
                     sgw-conformance run --target running --world {}",
                    world.join("bundle").display(),
                    world.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sgw-conformance: provision: {e:#}");
                ExitCode::from(2)
            }
        },
        Cmd::VerifySummary { file, cert } => {
            let jws = match std::fs::read_to_string(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sgw-conformance: {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let pem = match cert.map(std::fs::read) {
                None => None,
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    eprintln!("sgw-conformance: certificate: {e}");
                    return ExitCode::from(2);
                }
            };
            match conformance::summary::verify(jws.trim(), pem.as_deref()) {
                Ok((claims, fp)) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&claims).unwrap_or_default()
                    );
                    println!("signature valid; signer SHA-256 fingerprint {fp}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sgw-conformance: summary NOT valid: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::List { select } => {
            for c in selected(&select) {
                println!(
                    "{:<30} {:<6} {:<8} {:<40} {}",
                    c.id,
                    format!("{:?}", c.level).to_uppercase(),
                    if c.negative { "negative" } else { "" },
                    c.requirements.join(","),
                    c.rules.join(",")
                );
            }
            ExitCode::SUCCESS
        }
        Cmd::DryRun { target } => {
            let spec = match target.spec() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sgw-conformance: {e}");
                    return ExitCode::from(2);
                }
            };
            let running = matches!(spec, TargetSpec::Running(_));
            match tokio_rt().block_on(dry_run(spec)) {
                Ok(()) if running => {
                    println!(
                        "dry run: the running gateway opened its session, delivered what it \
                         held and stopped sending when told"
                    );
                    ExitCode::SUCCESS
                }
                Ok(()) => {
                    println!("dry run: the gateway started, opened its session, and stopped");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sgw-conformance: dry run failed: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Run {
            target,
            mut select,
            smoke,
            strict,
            seed,
            capabilities,
            deviations,
            out,
            case_deadline,
            jobs,
            sign_key,
            sign_cert,
        } => {
            let spec = match target.spec() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sgw-conformance: {e}");
                    return ExitCode::from(2);
                }
            };
            let capabilities = match capabilities.map(std::fs::read_to_string) {
                None => Capabilities::default(),
                Some(Ok(t)) => match serde_json::from_str(&t) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("sgw-conformance: capability statement: {e}");
                        return ExitCode::from(2);
                    }
                },
                Some(Err(e)) => {
                    eprintln!("sgw-conformance: capability statement: {e}");
                    return ExitCode::from(2);
                }
            };
            // `--target sgw`: its disposal command is `sgw wipe` (SM-DISPOSE) and its access
            // history `{state_dir}/audit.jsonl` (DES-AUDIT-1), unless the statement says other.
            let mut capabilities = capabilities;
            if let TargetSpec::Command(c) = &spec
                && let Some(bin) = c.strip_suffix(" run --bundle {bundle}")
                && bin.ends_with("sgw")
            {
                capabilities
                    .wipe_command
                    .get_or_insert_with(|| format!("{bin} wipe --bundle {{bundle}} --yes"));
                capabilities
                    .access_history_command
                    .get_or_insert_with(|| "cat {state_dir}/audit.jsonl".into());
                // A test build of sgw (feature `crash-points`) names its crash points in
                // `sgw --version`.
                capabilities.crash_points |= std::process::Command::new(bin)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("crash points"));
            }
            let deviations = match deviations.map(std::fs::read_to_string) {
                None => Vec::new(),
                Some(Ok(t)) => parse_deviations(&t),
                Some(Err(e)) => {
                    eprintln!("sgw-conformance: deviations: {e}");
                    return ExitCode::from(2);
                }
            };
            let key = match (sign_key, sign_cert) {
                (Some(k), Some(c)) => conformance::summary::SuiteKey::load(&k, &c),
                _ => conformance::summary::SuiteKey::ephemeral(),
            };
            let key = match key {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("sgw-conformance: signing key: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let target_sha256 = spec
                .binary()
                .and_then(|p| conformance::summary::file_sha256(&p).ok());
            if smoke {
                select.extend(conformance::cases::SMOKE.iter().map(|s| (*s).to_owned()));
            }
            let seed = seed.unwrap_or_else(rand::random);
            println!("seed {seed}");
            let opts = RunOptions {
                target: spec,
                select,
                strict,
                seed,
                capabilities,
                deviations,
                case_deadline: Duration::from_secs(case_deadline),
                jobs,
                variant: None,
            };
            let report = match tokio_rt().block_on(run(&opts, |c| {
                let v = serde_json::to_value(c.verdict).unwrap_or_default();
                println!(
                    "{:<30} {:<16} {:>6.1} s{}",
                    c.id,
                    v.as_str().unwrap_or("?"),
                    c.seconds,
                    c.observed
                        .as_deref()
                        .map(|o| format!("  {o}"))
                        .unwrap_or_default()
                );
                if c.verdict == Verdict::Fail {
                    println!("    replay: {}", c.replay);
                }
            })) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sgw-conformance: {e:#}");
                    return ExitCode::from(2);
                }
            };
            println!("{:?}", report.totals);
            let uncovered = report.uncovered("MUST");
            if !uncovered.is_empty() {
                println!("MUST requirements without a case: {}", uncovered.join(", "));
            }
            if let Some(dir) = out {
                let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
                let claims = conformance::summary::claims(&report, target_sha256, &json);
                let jws = match conformance::summary::sign(&claims, &key) {
                    Ok(j) => j,
                    Err(e) => {
                        eprintln!("sgw-conformance: summary: {e:#}");
                        return ExitCode::from(2);
                    }
                };
                let w = std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(dir.join("report.json"), &json))
                    .and_then(|()| std::fs::write(dir.join("summary.jws"), &jws))
                    .and_then(|()| std::fs::write(dir.join("junit.xml"), report.junit()))
                    .and_then(|()| conformance::html::write(&report, &dir));
                if let Err(e) = w {
                    eprintln!("sgw-conformance: reports: {e}");
                    return ExitCode::from(2);
                }
                println!(
                    "reports in {} (summary.jws signed by {})",
                    dir.display(),
                    if key.ephemeral {
                        "a key made for this run: integrity only"
                    } else {
                        "the given key"
                    }
                );
            }
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    #[allow(clippy::expect_used)]
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

async fn dry_run(spec: TargetSpec) -> anyhow::Result<()> {
    if let TargetSpec::Running(w) = &spec {
        // Its world settles: the session is open and what the gateway holds is delivered.
        let suite = conformance::world::Suite::open_world(w, 0).await?;
        suite
            .wait_for_gateway(conformance::world::SESSION_WAIT)
            .await?;
        let mut ctx = suite.world("DRY-RUN", 0).await?;
        let r = ctx.settle().await;
        ctx.finish().await;
        return r;
    }
    let suite = conformance::world::Suite::new()?;
    let mut ctx = suite.world("DRY-RUN", 0).await?;
    // No case arms a crash point in a dry run.
    ctx.target = Some(spec.make(suite.dir.path().join("dry-run.log"), false));
    ctx.start_gateway().await?;
    let r = ctx
        .wait_view("session", conformance::world::WAIT, |v| v.connected)
        .await;
    ctx.finish().await;
    r.map(|_| ())
}
