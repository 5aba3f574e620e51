//! `sgw`: the System Gateway binary. The runtime (FTP ingest, storage, MQTT) arrives with the
//! runtime issue; today the binary only validates and prints protocol messages.
#![forbid(unsafe_code)]

use std::io::Read;

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
                eprintln!("cannot read standard input: {e}");
                return std::process::ExitCode::from(2);
            }
            match gateway::protocol::Envelope::decode(&buf) {
                Ok(env) => {
                    println!(
                        "valid {} message {}",
                        env.message_type().as_str(),
                        env.message_id
                    );
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("invalid ({}): {e}", e.result_code().as_str());
                    std::process::ExitCode::from(1)
                }
            }
        }
    }
}
