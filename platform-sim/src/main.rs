//! `platform-sim`: the simulated water platform's command line (DES-PROV, IF-CERT-1, SM-ACL).
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gateway::protocol::ids::GatewayId;
use gateway::protocol::platform_side::PlatformConfig;
use platform_sim::broker::{self, BrokerSettings, free_loopback_port};
use platform_sim::ca::{AppId, Ca};
use platform_sim::https::{self, Published, TlsMaterial};
use platform_sim::ops::{FaultConfig, OperatorServer};
use platform_sim::platform::faults::parse_fault_spec;
use platform_sim::platform::{Platform, PlatformOptions};
use platform_sim::provision::{self, Endpoints, ProvisionOptions};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The simulated water platform for the SGW: a CA, an MQTT broker with mutual TLS and
/// per-gateway topic isolation, and the HTTPS certificate endpoint.
#[derive(Parser, Debug)]
#[command(name = "platform-sim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The whole system in one command, on loopback with no configuration: this simulated
    /// platform (and its dashboard), one provisioned gateway (the real SGW runtime) and the
    /// simulated legacy systems pushing billing and pipe-ledger CSV to it over FTPS on a
    /// schedule. Open the printed dashboard address to watch records arrive per gateway and
    /// dataset. Stops cleanly on Ctrl-C (or after --for), printing what arrived; exits 1 if
    /// nothing did.
    Demo {
        /// Directory for everything (default: a new temporary directory, kept and printed).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Seconds between two uploads of each legacy system.
        #[arg(long, default_value_t = 5)]
        push_every: u64,
        /// Rows per uploaded file.
        #[arg(long, default_value_t = 50)]
        rows: usize,
        /// Stop after this many seconds instead of waiting for Ctrl-C.
        #[arg(long = "for")]
        run_for: Option<u64>,
        /// Operator API and dashboard port on 127.0.0.1 (default: a free port).
        #[arg(long)]
        api_port: Option<u16>,
    },
    /// Run the platform: CA, MQTT broker (mTLS), HTTPS certificate endpoint, the platform side
    /// of every flow (SQLite store in the state directory) and the operator API, until Ctrl-C.
    ///
    /// With no options it needs no configuration: a fresh CA in a new temporary directory,
    /// free loopback ports, and the addresses and the state directory printed on stdout.
    /// Revocations done meanwhile with `platform-sim revoke --state-dir DIR` are picked up
    /// within two seconds (new CRL served and enforced at the HTTPS handshake; the revoked
    /// gateway's MQTT session is kicked and its messages refused).
    Run {
        /// CA state directory (created and initialised if empty; reused if it holds a CA).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// MQTT-over-TLS port on 127.0.0.1 (default: a free port).
        #[arg(long)]
        mqtt_port: Option<u16>,
        /// HTTPS port on 127.0.0.1 (default: a free port).
        #[arg(long)]
        https_port: Option<u16>,
        /// Application data-protection certificates to issue at start-up (repeatable).
        #[arg(long = "app", default_value = "app1")]
        apps: Vec<String>,
        /// Operator API and dashboard port on 127.0.0.1 (default: a free port).
        #[arg(long)]
        api_port: Option<u16>,
        /// Faults from the start, e.g. `drop=20,dup=10,delay=200,reorder,withhold-acks,
        /// tamper=1,unsigned,expired-cert,revoked-cert,stale-crl` (see `fault`).
        #[arg(long)]
        fault: Option<String>,
        /// `ackTimeoutSec` told to gateways (DES-MSG-CONN-2).
        #[arg(long, default_value_t = 30)]
        ack_timeout_sec: u32,
        /// `monitorIntervalSec` told to gateways (DES-MSG-MON-2).
        #[arg(long, default_value_t = 60)]
        monitor_interval_sec: u32,
        /// Seconds a hole in the received seqs may persist before a resend request.
        #[arg(long, default_value_t = 60)]
        gap_grace_sec: i64,
        /// Seconds before an unanswered command is sent again.
        #[arg(long, default_value_t = 30)]
        command_retry_sec: i64,
    },
    /// Set the faults of a running simulator through its operator API (PUT /api/faults).
    ///
    /// SPEC is a comma-separated list: `drop=PCT`, `dup=PCT`, `delay=MS`, `reorder`,
    /// `withhold-acks`, `tamper[=N]`, `unsigned[=N]`, `expired-cert[=N]`, `revoked-cert[=N]`,
    /// `stale-crl`, `busy-connects[=N]`, … (the full list: platform-sim's `platform::faults`),
    /// or `none`. The faults given replace those in force.
    Fault {
        /// State directory of the running simulator (its endpoints.json names the API).
        #[arg(long, conflicts_with = "api", required_unless_present = "api")]
        state_dir: Option<PathBuf>,
        /// Operator API address, e.g. 127.0.0.1:8080.
        #[arg(long)]
        api: Option<SocketAddr>,
        /// The faults.
        spec: String,
    },
    /// Issue a gateway's certificates and write its provisioning bundle.
    ///
    /// Writes DIR/gateway.toml (the gateway's own configuration type) and
    /// DIR/tls/{ca.pem,client.pem,client.key},
    /// DIR/data-protection/{gateway.pem,gateway.key,platform.pem,root.pem,crl.pem}; private
    /// keys are mode 0600. Endpoints are taken from the running simulator's state directory
    /// (endpoints.json) unless given. It writes no masking key: the utility makes it on the
    /// gateway with `sgw masking-key new --bundle DIR` (the platform never sees it), and adds
    /// its FTPS server certificate as DIR/ftp/server.{pem,key}. Each FTP user gets a random
    /// initial password, printed here once; only its Argon2id hash is in gateway.toml.
    Provision {
        /// Gateway ID: 1..=32 ASCII letters or digits (certificate O and CN, MQTT tenant).
        #[arg(long)]
        gateway: String,
        /// Output directory of the bundle.
        #[arg(long)]
        out: PathBuf,
        /// CA state directory (the one `run` printed); created if missing.
        #[arg(long)]
        state_dir: PathBuf,
        /// MQTT broker port written into gateway.toml (default: from endpoints.json, else 8883).
        #[arg(long)]
        mqtt_port: Option<u16>,
        /// HTTPS base URL written into gateway.toml (default: from endpoints.json).
        #[arg(long)]
        https_url: Option<String>,
    },
    /// Revoke a gateway's or an application's certificates and re-sign the CRL.
    ///
    /// A running `platform-sim run` on the same state directory serves and enforces the new
    /// CRL within two seconds.
    Revoke {
        /// CA state directory.
        #[arg(long)]
        state_dir: PathBuf,
        /// Gateway to revoke (client and data-protection certificates).
        #[arg(long, conflicts_with = "app", required_unless_present = "app")]
        gateway: Option<String>,
        /// Application to revoke (data-protection certificate).
        #[arg(long)]
        app: Option<String>,
    },
}

/// Addresses of a running simulator, written to STATE/endpoints.json for `provision`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointsFile {
    mqtt: SocketAddr,
    https: SocketAddr,
    #[serde(default)]
    api: Option<SocketAddr>,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn,libunftp=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    platform_sim::install_crypto_provider();
    match Cli::parse().command {
        Command::Demo {
            state_dir,
            push_every,
            rows,
            run_for,
            api_port,
        } => demo(state_dir, push_every, rows, run_for, api_port),
        Command::Run {
            state_dir,
            mqtt_port,
            https_port,
            apps,
            api_port,
            fault,
            ack_timeout_sec,
            monitor_interval_sec,
            gap_grace_sec,
            command_retry_sec,
        } => {
            let faults = match fault {
                Some(f) => parse_fault_spec(&f)?,
                None => FaultConfig::default(),
            };
            let core = PlatformConfig {
                ack_timeout_sec,
                monitor_interval_sec,
                gap_grace_sec,
                command_retry_sec,
                ..PlatformConfig::default()
            };
            run(RunArgs {
                state_dir,
                mqtt_port,
                https_port,
                apps,
                api_port,
                faults,
                core,
            })
        }
        Command::Fault {
            state_dir,
            api,
            spec,
        } => {
            let faults = parse_fault_spec(&spec)?;
            let api = match (api, state_dir) {
                (Some(a), _) => a,
                (None, Some(d)) => {
                    let text = std::fs::read_to_string(d.join("endpoints.json"))
                        .context("endpoints.json of the running simulator")?;
                    let e: EndpointsFile = serde_json::from_str(&text)?;
                    e.api
                        .context("the simulator did not record its API address")?
                }
                (None, None) => bail!("give --state-dir or --api"),
            };
            let body = serde_json::to_string(&faults)?;
            let (status, answer) = http_request(api, "PUT", "/api/faults", &body)?;
            if status != 200 {
                bail!("operator API answered {status}: {answer}");
            }
            println!("{answer}");
            Ok(())
        }
        Command::Provision {
            gateway,
            out,
            state_dir,
            mqtt_port,
            https_url,
        } => {
            let gw = GatewayId::new(gateway)?;
            let mut ca = Ca::open_or_create(&state_dir)?;
            let mut endpoints = Endpoints::default();
            if let Ok(text) = std::fs::read_to_string(state_dir.join("endpoints.json")) {
                let e: EndpointsFile = serde_json::from_str(&text)?;
                endpoints.mqtt_port = e.mqtt.port();
                endpoints.https_url = format!("https://localhost:{}", e.https.port());
            }
            if let Some(p) = mqtt_port {
                endpoints.mqtt_port = p;
            }
            if let Some(u) = https_url {
                endpoints.https_url = u;
            }
            let opts = ProvisionOptions {
                endpoints,
                ..ProvisionOptions::default()
            };
            let b = provision::provision(&mut ca, &gw, &out, &opts)?;
            println!("provisioned gateway {gw} into {}", b.dir.display());
            for (user, password) in &b.ftp_passwords {
                println!("initial FTP password of user {user}: {password}");
            }
            println!(
                "these passwords are shown once and stored nowhere (gateway.toml holds their \
                 hashes; replace one with `sgw hash-password`)"
            );
            println!(
                "next, on the gateway: `sgw masking-key new --bundle {0}`, put the utility's \
                 FTPS certificate and key at {0}/ftp/server.pem and server.key (0600), then \
                 `sgw check-config --bundle {0}`",
                b.dir.display()
            );
            Ok(())
        }
        Command::Revoke {
            state_dir,
            gateway,
            app,
        } => {
            let mut ca = Ca::open(&state_dir)?;
            let n = match (gateway, app) {
                (Some(g), None) => ca.revoke_gateway(&GatewayId::new(g)?)?,
                (None, Some(a)) => ca.revoke_app(&AppId::new(a)?)?,
                _ => bail!("give exactly one of --gateway and --app"),
            };
            println!(
                "revoked {n} certificate(s); CRL number {}",
                ca.index().crl_number
            );
            Ok(())
        }
    }
}

fn state_dir_or_temp(dir: Option<PathBuf>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d),
        None => {
            let d = tempfile::Builder::new()
                .prefix("platform-sim-")
                .tempdir()?
                .keep();
            Ok(d)
        }
    }
}

struct RunArgs {
    state_dir: Option<PathBuf>,
    mqtt_port: Option<u16>,
    https_port: Option<u16>,
    apps: Vec<String>,
    api_port: Option<u16>,
    faults: FaultConfig,
    core: PlatformConfig,
}

fn run(a: RunArgs) -> Result<()> {
    let dir = state_dir_or_temp(a.state_dir)?;
    let mut ca = Ca::open_or_create(&dir).with_context(|| format!("CA in {}", dir.display()))?;
    for app in a.apps {
        let id = AppId::new(app)?;
        if ca.app_cert_pem(&id).is_none() {
            ca.issue_app(&id)?;
        }
    }
    let mqtt_port = match a.mqtt_port {
        Some(p) => p,
        None => free_loopback_port()?,
    };
    let mqtt = broker::start(&BrokerSettings::from_ca(&ca, mqtt_port))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(
        ca,
        dir,
        mqtt,
        a.https_port.unwrap_or(0),
        a.api_port.unwrap_or(0),
        a.faults,
        a.core,
    ))
}

async fn serve(
    ca: Ca,
    dir: PathBuf,
    mqtt: broker::MqttBroker,
    https_port: u16,
    api_port: u16,
    faults: FaultConfig,
    core: PlatformConfig,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, https_port)).await?;
    let https = https::serve(
        listener,
        TlsMaterial::from_ca(&ca)?,
        Published::from_ca(&ca)?,
    )
    .await?;
    let https_addr = https.addr();
    let root = ca.root_path();
    let mqtt_addr = mqtt.addr();
    let mut opts = PlatformOptions::new(dir.join("platform.sqlite"));
    opts.core = core;
    opts.faults = faults;
    let platform = Platform::start(ca, mqtt, Some(https), opts)?;
    let api = OperatorServer::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, api_port)),
        Arc::new(platform.handle()),
    )
    .await?;
    write_endpoints(&dir, mqtt_addr, https_addr, api.addr())?;
    say(format_args!("state dir:  {}", dir.display()));
    say(format_args!(
        "MQTT (TLS): mqtts://localhost:{}",
        mqtt_addr.port()
    ));
    say(format_args!(
        "HTTPS:      https://localhost:{}",
        https_addr.port()
    ));
    say(format_args!(
        "operator:   http://127.0.0.1:{}/",
        api.addr().port()
    ));
    say(format_args!("root CA:    {}", root.display()));
    tokio::signal::ctrl_c().await?;
    say(format_args!("stopping"));
    drop(platform);
    Ok(())
}

/// One HTTP/1.1 request to the operator API (loopback, plain HTTP); returns status and body.
fn http_request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Prints a line on stdout; a closed stdout (the reader went away) must not stop the simulator.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn write_endpoints(dir: &Path, mqtt: SocketAddr, https: SocketAddr, api: SocketAddr) -> Result<()> {
    let text = serde_json::to_string_pretty(&EndpointsFile {
        mqtt,
        https,
        api: Some(api),
    })?;
    std::fs::write(dir.join("endpoints.json"), text)?;
    Ok(())
}

fn demo(
    state_dir: Option<PathBuf>,
    push_every: u64,
    rows: usize,
    run_for: Option<u64>,
    api_port: Option<u16>,
) -> Result<()> {
    let dir = state_dir_or_temp(state_dir)?;
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let summary = rt.block_on(platform_sim::demo::run(
        platform_sim::demo::DemoOptions {
            dir,
            push_every: Duration::from_secs(push_every.max(1)),
            rows: rows.max(1),
            run_for: run_for.map(Duration::from_secs),
            api_port: api_port.unwrap_or(0),
        },
        |line| say(format_args!("{line}")),
    ))?;
    say(format_args!(
        "files accepted by the gateway: {}",
        summary.files_accepted
    ));
    for (ds, n) in &summary.records {
        say(format_args!("records stored by the platform: {ds} {n}"));
    }
    if summary.records.values().sum::<u64>() == 0 {
        bail!("no record reached the platform");
    }
    Ok(())
}
