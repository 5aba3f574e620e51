//! `sgw`: the System Gateway binary. `run` starts the gateway from a provisioning bundle (FTP
//! ingest, storage, MQTT to the platform, certificate refresh, evacuation, monitoring); the
//! other commands check protocol messages and the bundle, and make what the utility keeps on
//! its side: the masking key (DES-MASK-3, SEC-MASK-2) and FTP password hashes (DES-FTP-3).
#![forbid(unsafe_code)]

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `sgw --version`: a test build names its crash points there, which the conformance suite's
/// `--target sgw` looks for (docs/conformance.md, "Crash points").
#[cfg(feature = "crash-points")]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (test build: crash points after-ingest-commit, after-evacuation-commit)"
);
#[cfg(not(feature = "crash-points"))]
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The reference System Gateway (SGW).
#[derive(Parser)]
#[command(version = VERSION, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway from a provisioning bundle: the FTP(S) server legacy systems push CSV
    /// to, durable primary storage, MQTT over mutual TLS to the platform, certificate and CRL
    /// refresh, evacuation, and /healthz + /metrics on loopback. Refuses to start on any
    /// problem `check-config` reports (private keys readable by others included). Stops
    /// cleanly on Ctrl-C or SIGTERM: `disconnect` is sent and the state saved.
    Run {
        /// The bundle directory (the one holding gateway.toml).
        #[arg(long)]
        bundle: PathBuf,
        /// Loopback address of /healthz and /metrics (e.g. 127.0.0.1:9464); none if absent.
        #[arg(long)]
        monitor: Option<std::net::SocketAddr>,
    },
    /// Show the gateway's state. With --monitor, ask the running gateway (its /status
    /// endpoint: the monitor.status body it reports to the platform, DES-MSG-MON-1). Without,
    /// read the stopped gateway's store (epoch, boot count, seqs, records, unacknowledged,
    /// held, bytes against the quota, evacuated, oldest unacknowledged, free disk, quarantined
    /// files); while the gateway runs the store is locked and the command says to use
    /// --monitor. Exit status 0, or 1 when the state cannot be read.
    Status {
        /// The bundle directory (the one holding gateway.toml).
        #[arg(long, required_unless_present = "monitor")]
        bundle: Option<PathBuf>,
        /// The running gateway's monitoring address (what `run --monitor` was given).
        #[arg(long)]
        monitor: Option<std::net::SocketAddr>,
    },
    /// Export every record the stopped gateway holds — primary storage and the evacuation
    /// archives (read back and verified) — as JSON Lines in seq order: {seq, dataset,
    /// ingestedAt, place, acked, fields}. Fields are as stored: masked columns stay masked
    /// (unmask them with `sgw unmask`). For a hand-over before `sgw wipe` (SM-DISPOSE) or an
    /// audit. The output file is created owner-only and never overwritten.
    Export {
        /// The bundle directory (the one holding gateway.toml).
        #[arg(long)]
        bundle: PathBuf,
        /// The file to write (must not exist); standard output if absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Dispose of the gateway (SM-DISPOSE): overwrite with zeros, sync and delete the state
    /// directory (store, quarantine), the evacuation archives, the masking keys, every private
    /// key and gateway.toml (FTP password hashes). Without --yes it only lists what it would
    /// delete. Refuses while the gateway runs. Overwriting cannot reach blocks that
    /// copy-on-write file systems, SSDs or backups kept: see the module doc of `dispose`.
    Wipe {
        /// The bundle directory (the one holding gateway.toml).
        #[arg(long)]
        bundle: PathBuf,
        /// Really delete (otherwise: list only).
        #[arg(long)]
        yes: bool,
    },
    /// Decode a protocol v1 envelope (JSON) from standard input and report whether it is
    /// valid, with the result code a peer would answer.
    Check,
    /// Check a provisioning bundle: gateway.toml (every key, DES-PROV-2) and the files it
    /// names (present, private keys owner-only, certificates that parse and name the gateway,
    /// masking keys). Prints every problem with its key and how to fix it; exits 0 only when
    /// there is none, 1 otherwise.
    CheckConfig {
        /// The bundle directory (the one holding gateway.toml).
        #[arg(long)]
        bundle: PathBuf,
    },
    /// Give the gateway's store a new storage epoch (DES-ID-5, DES-MSG-CONN-4). Run it after
    /// every restore of the state directory from a backup, with the gateway stopped: the
    /// platform refuses (and retires) the old epoch of a restored store. Records and their
    /// seqs are kept; the boot count only grows.
    NewEpoch {
        /// The bundle directory (the one holding gateway.toml).
        #[arg(long)]
        bundle: PathBuf,
    },
    /// For the utility's operators: unmask values of a masked column (DES-MASK-3) with the
    /// utility's masking keys from the bundle. Reads one masked value per line from standard
    /// input (`m1.<keyId>.<…>`, as the platform and the archives hold them) and prints the
    /// clear value per line; a value that does not unmask (wrong column, unknown key,
    /// tampered) is reported on stderr with its line and rule, and the exit status is 1.
    Unmask {
        /// The bundle directory (the one holding gateway.toml).
        #[arg(long)]
        bundle: PathBuf,
        /// The column the values belong to (its name is part of the masking, DES-MASK-1).
        #[arg(long)]
        column: String,
    },
    /// Read a password from standard input (one line; the line end is not part of it) and
    /// print its Argon2id PHC string for `ftp_password_hash` in gateway.toml (DES-FTP-3). The
    /// password itself is stored nowhere.
    HashPassword,
    /// The utility's masking key (事業体用秘密鍵, DES-MASK-3): made and kept on the gateway,
    /// never by the platform (SEC-MASK-2).
    #[command(subcommand)]
    MaskingKey(MaskingKeyCommand),
}

#[derive(Subcommand)]
enum MaskingKeyCommand {
    /// Generate a new random 32-byte masking key into the bundle's [masking].keys_dir as
    /// <keyId>.key (64 hex digits, mode 0600). Refuses to overwrite an existing key. Without
    /// --key-id the key is named by [masking].active_key; to rotate, give a new --key-id and
    /// then set active_key to it (old keys stay for unmasking).
    New {
        /// The bundle directory (the one holding gateway.toml).
        #[arg(long)]
        bundle: PathBuf,
        /// The keyId: 1..=16 ASCII letters or digits (default: [masking].active_key).
        #[arg(long)]
        key_id: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { bundle, monitor } => run(bundle, monitor),
        Command::NewEpoch { bundle } => new_epoch(&bundle),
        Command::Status { bundle, monitor } => status(bundle.as_deref(), monitor),
        Command::Export { bundle, out } => export(&bundle, out.as_deref()),
        Command::Wipe { bundle, yes } => wipe(&bundle, yes),
        Command::Unmask { bundle, column } => unmask(&bundle, &column),
        Command::Check => check_message(),
        Command::CheckConfig { bundle } => check_config(&bundle),
        Command::HashPassword => hash_password(),
        Command::MaskingKey(MaskingKeyCommand::New { bundle, key_id }) => {
            match gateway::config::new_masking_key(&bundle, key_id.as_deref()) {
                Ok(k) => {
                    println!(
                        "wrote masking key {} to {} (0600)",
                        k.key_id,
                        k.path.display()
                    );
                    if !k.active {
                        println!(
                            "to mask new values with it, set [masking].active_key = \"{}\" in \
                             gateway.toml",
                            k.key_id
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sgw masking-key new: {e}");
                    if let gateway::config::MaskingKeyError::Config(
                        gateway::config::ConfigError::Invalid(problems),
                    ) = &e
                    {
                        for p in problems {
                            eprintln!("{p}");
                        }
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_message() -> ExitCode {
    let mut buf = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
        eprintln!("cannot read standard input: {e}");
        return ExitCode::from(2);
    }
    match gateway::protocol::Envelope::decode(&buf) {
        Ok(env) => {
            println!(
                "valid {} message {}",
                env.message_type().as_str(),
                env.message_id
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("invalid ({}): {e}", e.result_code().as_str());
            ExitCode::from(1)
        }
    }
}

fn check_config(bundle: &std::path::Path) -> ExitCode {
    let problems = gateway::config::check_bundle(bundle);
    let file = bundle.join(gateway::config::CONFIG_FILE);
    if problems.is_empty() {
        println!("{}: no problems", file.display());
        return ExitCode::SUCCESS;
    }
    for p in &problems {
        println!("{p}");
    }
    println!("{}: {} problem(s)", file.display(), problems.len());
    ExitCode::FAILURE
}

fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("cannot read standard input: {e}");
        return ExitCode::from(2);
    }
    let password = line
        .strip_suffix('\n')
        .map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
    match gateway::config::hash_password(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sgw hash-password: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(bundle: PathBuf, monitor: Option<std::net::SocketAddr>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,libunftp=warn,rumqttd=warn")
            }),
        )
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sgw: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let opts = gateway::runtime::app::RunOptions { bundle, monitor };
        let running = match gateway::runtime::app::start(&opts).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("sgw: not started: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "sgw: running; FTP on {}{}",
            running.ftp_addr,
            running
                .monitor_addr
                .map(|a| format!(", monitoring on http://{a}/metrics"))
                .unwrap_or_default()
        );
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sgw: cannot watch SIGTERM: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("sgw: stopping (disconnect, state saved)");
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn new_epoch(bundle: &std::path::Path) -> ExitCode {
    let cfg = match gateway::config::Config::load(bundle) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sgw: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result =
        gateway::store::Store::open(cfg.gateway.state_dir.path()).and_then(|mut s| s.new_epoch());
    match result {
        Ok(epoch) => {
            println!("new storage epoch {epoch} (DES-ID-5); start the gateway now");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sgw: {e}");
            ExitCode::FAILURE
        }
    }
}

fn unmask(bundle: &std::path::Path, column: &str) -> ExitCode {
    let cfg = match gateway::config::Config::load(bundle) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sgw: {e}");
            return ExitCode::FAILURE;
        }
    };
    let keys = match gateway::security::MaskingKeys::load_dir(
        cfg.masking.keys_dir.path(),
        cfg.masking.active_key.as_str(),
    ) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("sgw: masking keys: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let Ok(line) = line else {
            eprintln!("sgw: line {}: not UTF-8", i + 1);
            return ExitCode::FAILURE;
        };
        let value = line.trim_end_matches('\r');
        match keys.unmask(column, value) {
            Ok(clear) => println!("{clear}"),
            Err(e) => {
                // Never echo the value: it may be another column's secret.
                eprintln!("sgw: line {}: {e}", i + 1);
                println!();
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn load_config(bundle: &std::path::Path) -> Option<gateway::config::Config> {
    match gateway::config::Config::load(bundle) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("sgw: {e}");
            None
        }
    }
}

/// Opens the stopped gateway's store, or says why not.
fn open_store(cfg: &gateway::config::Config) -> Option<gateway::store::Store> {
    match gateway::store::Store::open_existing(cfg.gateway.state_dir.path()) {
        Ok(s) => Some(s),
        Err(gateway::store::StoreError::Locked(_)) => {
            eprintln!(
                "sgw: the gateway is running (its store is locked); stop it first, or for its \
                 state use `sgw status --monitor ADDR`"
            );
            None
        }
        Err(e) => {
            eprintln!("sgw: {e}");
            None
        }
    }
}

fn status(bundle: Option<&std::path::Path>, monitor: Option<std::net::SocketAddr>) -> ExitCode {
    if let Some(addr) = monitor {
        return match http_get(addr, "/status") {
            Ok((200, body)) => {
                println!("{body}");
                ExitCode::SUCCESS
            }
            Ok((code, body)) => {
                eprintln!("sgw: http://{addr}/status answered {code}: {}", body.trim());
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!(
                    "sgw: http://{addr}/status: {e} (is `sgw run --monitor {addr}` running?)"
                );
                ExitCode::FAILURE
            }
        };
    }
    let Some(bundle) = bundle else {
        return ExitCode::from(2);
    };
    let Some(cfg) = load_config(bundle) else {
        return ExitCode::FAILURE;
    };
    let Some(mut store) = open_store(&cfg) else {
        return ExitCode::FAILURE;
    };
    store.set_quota(Some(cfg.storage.quota_bytes));
    let facts = (|| -> Result<Vec<(String, String)>, gateway::store::StoreError> {
        let u = store.usage()?;
        let oldest = store.oldest_unacked_at()?;
        let now = chrono::Utc::now().fixed_offset();
        let quarantined = std::fs::read_dir(cfg.gateway.state_dir.path().join("quarantine"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| {
                        e.path().is_file() && e.path().extension().is_none_or(|x| x != "reason")
                    })
                    .count()
            })
            .unwrap_or(0);
        Ok(vec![
            ("gateway".into(), cfg.gateway.id.to_string()),
            ("state".into(), "stopped".into()),
            ("epoch".into(), store.epoch()?.to_string()),
            ("boot count".into(), store.boot_count().to_string()),
            ("last seq".into(), u.last_seq.to_string()),
            ("records".into(), u.records.to_string()),
            ("unacknowledged".into(), u.unacked.to_string()),
            (
                "oldest unacknowledged".into(),
                oldest.map_or("-".into(), |t| {
                    format!("{} ({} s ago)", t, (now - t).num_seconds().max(0))
                }),
            ),
            ("held".into(), u.held.to_string()),
            (
                "bytes".into(),
                format!(
                    "{} of quota {}{}",
                    u.bytes,
                    cfg.storage.quota_bytes,
                    if u.alarm() { " (above 80 %)" } else { "" }
                ),
            ),
            ("evacuated".into(), u.evacuated.to_string()),
            ("free disk bytes".into(), u.free_bytes.to_string()),
            ("quarantined files".into(), quarantined.to_string()),
        ])
    })();
    match facts {
        Ok(facts) => {
            for (k, v) in facts {
                println!("{k:<22} {v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sgw: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A plain HTTP/1.0 GET on loopback (the monitoring endpoint); returns (status, body).
fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let timeout = std::time::Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp.as_str(), ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    Ok((code, body.to_owned()))
}

fn export(bundle: &std::path::Path, out: Option<&std::path::Path>) -> ExitCode {
    use std::io::Write;
    let Some(cfg) = load_config(bundle) else {
        return ExitCode::FAILURE;
    };
    let keys = {
        let key = cfg.data_protection.key.path();
        let dir = key.parent().unwrap_or(std::path::Path::new("."));
        let own = key
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("gateway");
        match gateway::security::KeyStore::load_dir(dir, own)
            .map_err(|e| e.to_string())
            .and_then(|k| {
                gateway::store::ArchiveKeys::from_keystore(&k, &cfg.gateway.id)
                    .map_err(|e| e.to_string())
            }) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("sgw: DES-PROV-1: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let Some(store) = open_store(&cfg) else {
        return ExitCode::FAILURE;
    };
    let mut w: Box<dyn Write> = match out {
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(p) => {
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
            {
                Ok(f) => Box::new(std::io::BufWriter::new(f)),
                Err(e) => {
                    eprintln!("sgw: {}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let r = store.export(cfg.storage.evacuation_dir.path(), &keys, |rec| {
        serde_json::to_writer(&mut w, rec).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    });
    let r = r.and_then(|sum| {
        w.flush().map_err(|e| gateway::store::StoreError::Io {
            context: "write export",
            path: out.map_or("-".into(), std::path::Path::to_owned),
            source: e,
        })?;
        Ok(sum)
    });
    match r {
        Ok(sum) => {
            eprintln!(
                "sgw: exported {} records ({} from primary storage, {} from archives)",
                sum.primary + sum.archived,
                sum.primary,
                sum.archived
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sgw: export failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn wipe(bundle: &std::path::Path, yes: bool) -> ExitCode {
    let Some(cfg) = load_config(bundle) else {
        return ExitCode::FAILURE;
    };
    // Refuse while the gateway runs (its store lock); a missing store is fine.
    if cfg
        .gateway
        .state_dir
        .path()
        .join(gateway::store::DB_FILE)
        .exists()
    {
        let Some(store) = open_store(&cfg) else {
            return ExitCode::FAILURE;
        };
        drop(store);
    }
    let plan = gateway::dispose::plan(&cfg, bundle);
    if !yes {
        println!("sgw wipe would overwrite and delete (run again with --yes):");
        for p in &plan.paths {
            println!("  {}", p.display());
        }
        return ExitCode::SUCCESS;
    }
    match gateway::dispose::wipe(&plan) {
        Ok(r) => {
            for p in &plan.paths {
                println!("deleted {}", p.display());
            }
            println!(
                "SM-DISPOSE: {} files ({} bytes) overwritten and deleted",
                r.files, r.bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sgw: wipe stopped: {e} (run it again to finish)");
            ExitCode::FAILURE
        }
    }
}
