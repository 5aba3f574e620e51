//! `legacy-sim`: the simulated legacy business system's command line (SC-FTP-1, SM-RESEND,
//! SM-LOCKOUT): generate realistic CSV, push it to a gateway over FTP/FTPS once or on a
//! schedule with a JSON Lines manifest, or send bad input on demand.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use legacy_sim::bad::{self, BadKind, BadOptions};
use legacy_sim::push::{self, FtpTarget, FtpsTrust, RetryPolicy, Upload};
use legacy_sim::{
    CsvOptions, Dataset, HeaderStyle, LineEnding, ManifestEntry, Table, TextEncoding,
};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Simulated legacy business system (pipe ledger, billing, meter reading) for the SGW project.
///
/// It writes the CSV files such systems produce and pushes them to a System Gateway over FTP or
/// explicit FTPS, recording every send in a JSON Lines manifest; it can also send malformed or
/// hostile input on demand, labelled with the requirement each probes.
#[derive(Debug, Parser)]
#[command(name = "legacy-sim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write one CSV file of a dataset, deterministic by seed (same seed, same bytes).
    ///
    /// Example: legacy-sim generate --dataset billing --rows 100 --seed 7 --encoding cp932 --out bills.csv
    Generate {
        #[command(flatten)]
        csv: CsvArgs,
        /// Output file; `-` writes to standard output.
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Generate CSV and push it to the gateway over FTP/FTPS, once or every interval.
    ///
    /// Each file is stored directly under its final name (no temp name + rename); the STOR
    /// completion reply (226) is the gateway's acknowledgement. Connection errors and 4xx
    /// replies are retried with exponential backoff and jitter; 5xx replies are final. One
    /// JSON line per file is appended to --manifest and printed. Exit status 1 if any file was
    /// not acknowledged.
    ///
    /// Example: legacy-sim push --host 127.0.0.1 --port 2121 --user legacy --password secret
    ///          --ftps --ca ca.pem --dataset billing --rows 100 --every 30s --count 10 --manifest m.jsonl
    Push {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        csv: CsvArgs,
        #[command(flatten)]
        retry: RetryArgs,
        /// Start a file every interval (`500ms`, `30s`, `5m`, `1h`); without it, files are sent
        /// back to back. A late send delays the next tick rather than bursting.
        #[arg(long, value_parser = parse_duration)]
        every: Option<Duration>,
        /// Number of files to send (0 = until interrupted, with --every only). File i (0-based)
        /// is generated with seed+i.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Remote file name (single send only); default `{dataset}_{YYYYMMDDTHHMMSS}_{n}.csv` (JST).
        #[arg(long)]
        name: Option<String>,
        /// JSON Lines manifest to append to.
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Send bad input on demand: malformed files, hostile names, wrong passwords.
    ///
    /// Kinds (requirement probed): unterminated-quote, wrong-column-count, wrong-header
    /// (SC-FTP-1, SC-ACQ-1);
    /// cp932-as-utf8, invalid-utf8 (SC-FTP-1, SC-ACQ-1); truncated (SC-FTP-1, SM-RESEND);
    /// oversized (SM-THRESHOLD); empty (SC-FTP-1); duplicate (SC-FTP-1, ST-STORE-1);
    /// path-traversal (SM-ACL); wrong-password (SM-LOCKOUT); long-record (SC-FTP-1, SC-ACQ-1:
    /// a record over 65 536 bytes, DES-MSG-DATA-6). The manifest records the reply the
    /// gateway gave and what a conforming gateway is expected to do; this command does not judge
    /// and exits 0 unless it could not run. `legacy-sim kinds` lists the kinds.
    Bad {
        /// The kind of bad input (see `legacy-sim kinds`).
        #[arg(long)]
        kind: BadKind,
        #[command(flatten)]
        conn: ConnArgs,
        /// Dataset of the base content.
        #[arg(long, default_value = "billing")]
        dataset: Dataset,
        /// Rows of the base content.
        #[arg(long, default_value_t = 20)]
        rows: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Size in bytes for `oversized` (suffixes k, M, G = 1024-based).
        #[arg(long, default_value = "32M", value_parser = parse_size)]
        size: u64,
        /// Wrong-password logins for `wrong-password` (then one with the right password).
        #[arg(long, default_value_t = 5)]
        times: u32,
        /// Prefix of the remote file names.
        #[arg(long, default_value = "bad")]
        name_prefix: String,
        /// JSON Lines manifest to append to.
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[command(flatten)]
        retry: RetryArgs,
    },
    /// Print the dataset descriptions as JSON: columns (name, Japanese header label, type,
    /// unit), which columns are personal (to be masked), and the producing system. The
    /// gateway's provisioning and the conformance suite use the same description.
    Describe {
        /// Only this dataset (default: all, as a JSON array).
        #[arg(long)]
        dataset: Option<Dataset>,
    },
    /// List the bad-input kinds with the requirement IDs each probes and the expected reaction.
    Kinds,
}

/// What to generate and how to encode it.
#[derive(Debug, Args)]
struct CsvArgs {
    /// Dataset: pipe_ledger (管路台帳), billing (料金), meter_reading (検針).
    #[arg(long, default_value = "billing")]
    dataset: Dataset,
    /// Data rows (header excluded).
    #[arg(long, default_value_t = 100)]
    rows: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Text encoding: utf-8 or cp932 (Shift_JIS, Windows-31J).
    #[arg(long, default_value = "utf-8")]
    encoding: TextEncoding,
    /// Start with a UTF-8 byte order mark (utf-8 only).
    #[arg(long)]
    bom: bool,
    /// End records with LF instead of CRLF.
    #[arg(long)]
    lf: bool,
    /// Header row: japanese (labels), ascii (column names) or none.
    #[arg(long, default_value = "japanese", value_parser = parse_header)]
    header: HeaderStyle,
}

impl CsvArgs {
    fn options(&self) -> CsvOptions {
        CsvOptions {
            encoding: self.encoding,
            bom: self.bom,
            line_ending: if self.lf {
                LineEnding::Lf
            } else {
                LineEnding::Crlf
            },
            header: self.header,
        }
    }
}

/// Where the gateway's FTP service is and how to log in.
#[derive(Debug, Args)]
struct ConnArgs {
    /// Gateway host name or IP address.
    #[arg(long)]
    host: String,
    /// FTP control port.
    #[arg(long, default_value_t = 21)]
    port: u16,
    /// FTP user name.
    #[arg(long)]
    user: String,
    /// FTP password (default: the LEGACY_SIM_PASSWORD environment variable).
    #[arg(long)]
    password: Option<String>,
    /// Use explicit FTPS (AUTH TLS, PROT P) and verify the server certificate.
    #[arg(long)]
    ftps: bool,
    /// PEM file of the CA that issued the server certificate (required with --ftps).
    #[arg(long, requires = "ftps")]
    ca: Option<PathBuf>,
    /// Name to verify in the server certificate (default: --host).
    #[arg(long)]
    server_name: Option<String>,
    /// Limit for each step (connect, each command, the transfer), e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

impl ConnArgs {
    fn target(&self) -> Result<FtpTarget> {
        let password = match &self.password {
            Some(p) => p.clone(),
            None => std::env::var("LEGACY_SIM_PASSWORD")
                .context("--password or LEGACY_SIM_PASSWORD is needed")?,
        };
        let tls = if self.ftps {
            let Some(ca) = &self.ca else {
                bail!("--ftps needs --ca FILE (the CA that issued the gateway's certificate)");
            };
            let ca_pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            Some(FtpsTrust {
                ca_pem,
                server_name: self.server_name.clone(),
            })
        } else {
            None
        };
        Ok(FtpTarget {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password,
            tls,
            timeout: self.timeout,
        })
    }
}

/// Retry schedule for transient failures.
#[derive(Debug, Args)]
struct RetryArgs {
    /// Attempts per file in total (1 = no retry).
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// Delay before the first retry; doubles each time, with jitter.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    backoff: Duration,
    /// Upper bound of the retry delay.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    max_backoff: Duration,
}

impl RetryArgs {
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.attempts.max(1),
            base_delay: self.backoff,
            max_delay: self.max_backoff,
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1024),
        Some('m' | 'M') => (&s[..s.len() - 1], 1024 * 1024),
        Some('g' | 'G') => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("bad size {s:?}"))
}

fn parse_header(s: &str) -> Result<HeaderStyle, String> {
    match s {
        "japanese" => Ok(HeaderStyle::Japanese),
        "ascii" => Ok(HeaderStyle::Ascii),
        "none" => Ok(HeaderStyle::None),
        _ => Err(format!("bad header style {s:?} (japanese, ascii, none)")),
    }
}

fn record(manifest: Option<&PathBuf>, e: &ManifestEntry) -> Result<()> {
    if let Some(path) = manifest {
        legacy_sim::manifest::append(path, e)
            .with_context(|| format!("writing manifest {}", path.display()))?;
    }
    println!("{}", serde_json::to_string(e)?);
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    push::install_crypto_provider();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.command {
        Command::Describe { dataset } => {
            let json = match dataset {
                Some(d) => serde_json::to_string_pretty(&d.info())?,
                None => serde_json::to_string_pretty(
                    &Dataset::ALL.iter().map(|d| d.info()).collect::<Vec<_>>(),
                )?,
            };
            println!("{json}");
            Ok(())
        }
        Command::Kinds => {
            for k in BadKind::ALL {
                println!(
                    "{:<20} {:<24} {}",
                    k.name(),
                    k.probes().join(","),
                    k.expectation()
                );
            }
            Ok(())
        }
        Command::Generate { csv, out } => {
            let bytes =
                legacy_sim::generate::generate(csv.dataset, csv.rows, csv.seed, &csv.options())?;
            if out.as_os_str() == "-" {
                std::io::stdout().write_all(&bytes)?;
            } else {
                std::fs::write(&out, &bytes)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            Ok(())
        }
        Command::Push {
            conn,
            csv,
            retry,
            every,
            count,
            name,
            manifest,
        } => {
            let target = conn.target()?;
            let policy = retry.policy();
            if name.is_some() && count != 1 {
                bail!("--name names a single file; use it with --count 1");
            }
            let all_ok = rt.block_on(async {
                let mut all_ok = true;
                let mut i: u64 = 0;
                let mut ticker = every.map(|d| {
                    let mut t = tokio::time::interval(d);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                loop {
                    if let Some(t) = ticker.as_mut() {
                        t.tick().await;
                    }
                    let seed = csv.seed.wrapping_add(i);
                    let table = Table::generate(csv.dataset, csv.rows, seed);
                    let content = table.to_csv(&csv.options())?;
                    let seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    let upload = Upload {
                        file_name: name.clone().unwrap_or_else(|| {
                            legacy_sim::file_name(csv.dataset, chrono::Utc::now(), seq)
                        }),
                        content,
                        dataset: csv.dataset.name().to_owned(),
                        rows: table.rows.len(),
                        encoding: csv.encoding.label().to_owned(),
                    };
                    let e = push::push(&target, &upload, &policy).await;
                    all_ok &= e.acknowledged;
                    record(manifest.as_ref(), &e)?;
                    i += 1;
                    if i >= count && (count != 0 || every.is_none()) {
                        break;
                    }
                }
                anyhow::Ok(all_ok)
            })?;
            if !all_ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Bad {
            kind,
            conn,
            dataset,
            rows,
            seed,
            size,
            times,
            name_prefix,
            manifest,
            retry,
        } => {
            let target = conn.target()?;
            let opts = BadOptions {
                dataset,
                rows,
                seed,
                size,
                times,
                name_prefix,
            };
            let entries = rt.block_on(bad::run(kind, &target, &opts, &retry.policy()));
            for e in &entries {
                record(manifest.as_ref(), e)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_and_sizes_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_size("32M"), Ok(32 * 1024 * 1024));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("k").is_err());
    }
}
