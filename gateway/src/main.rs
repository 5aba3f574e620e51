//! `sgw`: the System Gateway binary. The runtime (FTP ingest, storage, MQTT) arrives with the
//! runtime issue; today the binary checks protocol messages and the provisioning bundle, and
//! makes what the utility keeps on its side: the masking key (DES-MASK-3, SEC-MASK-2) and FTP
//! password hashes (DES-FTP-3).
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
