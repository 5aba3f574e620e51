//! `sgw`: the System Gateway binary. `run` starts the gateway from a provisioning bundle (FTP
//! ingest, storage, MQTT to the platform, certificate refresh, evacuation, monitoring); the
//! other commands check protocol messages and the bundle, and make what the utility keeps on
//! its side: the masking key (DES-MASK-3, SEC-MASK-2) and FTP password hashes (DES-FTP-3).
#![forbid(unsafe_code)]

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The reference System Gateway (SGW).
#[derive(Parser)]
#[command(version, about, long_about = None)]
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
