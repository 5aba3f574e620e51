//! `platform-sim`: the simulated water platform's command line (DES-PROV, IF-CERT-1, SM-ACL).
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gateway::protocol::ids::GatewayId;
use platform_sim::broker::{self, BrokerSettings, free_loopback_port};
use platform_sim::ca::{AppId, Ca};
use platform_sim::https::{self, Published, TlsMaterial};
use platform_sim::provision::{self, Endpoints, ProvisionOptions};
use serde::{Deserialize, Serialize};

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
    /// Run the platform: CA, MQTT broker (mTLS) and HTTPS certificate endpoint, until Ctrl-C.
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
    },
    /// Issue a gateway's certificates and write its provisioning bundle.
    ///
    /// Writes DIR/gateway.toml, DIR/tls/{ca.pem,client.pem,client.key},
    /// DIR/data-protection/{gateway.pem,gateway.key,platform.pem,root.pem,crl.pem} and
    /// DIR/masking/k1.key; private keys are mode 0600. Endpoints are taken from the running
    /// simulator's state directory (endpoints.json) unless given.
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
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    platform_sim::install_crypto_provider();
    match Cli::parse().command {
        Command::Run {
            state_dir,
            mqtt_port,
            https_port,
            apps,
        } => run(state_dir, mqtt_port, https_port, apps),
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

fn run(
    state_dir: Option<PathBuf>,
    mqtt_port: Option<u16>,
    https_port: Option<u16>,
    apps: Vec<String>,
) -> Result<()> {
    let dir = state_dir_or_temp(state_dir)?;
    let mut ca = Ca::open_or_create(&dir).with_context(|| format!("CA in {}", dir.display()))?;
    for a in apps {
        let id = AppId::new(a)?;
        if ca.app_cert_pem(&id).is_none() {
            ca.issue_app(&id)?;
        }
    }
    let mqtt_port = match mqtt_port {
        Some(p) => p,
        None => free_loopback_port()?,
    };
    let mqtt = broker::start(&BrokerSettings::from_ca(&ca, mqtt_port))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(ca, dir, mqtt, https_port.unwrap_or(0)))
}

async fn serve(mut ca: Ca, dir: PathBuf, mqtt: broker::MqttBroker, https_port: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, https_port)).await?;
    let https = https::serve(
        listener,
        TlsMaterial::from_ca(&ca)?,
        Published::from_ca(&ca)?,
    )
    .await?;
    write_endpoints(&dir, mqtt.addr(), https.addr())?;
    say(format_args!("state dir:  {}", dir.display()));
    say(format_args!(
        "MQTT (TLS): mqtts://localhost:{}",
        mqtt.addr().port()
    ));
    say(format_args!(
        "HTTPS:      https://localhost:{}",
        https.addr().port()
    ));
    say(format_args!("root CA:    {}", ca.root_path().display()));

    let mut link = mqtt.platform_link("platform")?;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                say(format_args!("stopping"));
                return Ok(());
            }
            _ = tick.tick() => {
                // Reload first: another process (revoke, provision) may have written the index.
                let changed = ca.reload()?;
                let refreshed = ca.refresh_crl_if_due(chrono::Duration::hours(1))?;
                if changed || refreshed {
                    https.publish(Published::from_ca(&ca)?)?;
                    tracing::info!(crl_number = ca.index().crl_number, "CRL reloaded");
                    kick_revoked(&ca, &mqtt);
                }
            }
            msg = link.next_inbound() => {
                let msg = msg?;
                match msg.admit(None, |gw| ca.is_gateway_revoked(gw)) {
                    Ok(gw) => {
                        tracing::info!(%gw, topic = %msg.topic, bytes = msg.payload.len(), "uplink");
                    }
                    Err(refusal) => tracing::warn!(topic = %msg.topic, %refusal, "refused"),
                }
            }
        }
    }
}

/// Prints a line on stdout; a closed stdout (the reader went away) must not stop the simulator.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn kick_revoked(ca: &Ca, mqtt: &broker::MqttBroker) {
    let mut seen = std::collections::BTreeSet::new();
    for r in &ca.index().certs {
        if r.kind == platform_sim::ca::CertKind::GatewayClient && seen.insert(r.subject.clone()) {
            if let Ok(gw) = GatewayId::new(r.subject.as_str()) {
                if ca.is_gateway_revoked(&gw) {
                    if let Err(e) = mqtt.kick(&gw) {
                        tracing::warn!(%gw, error = %e, "kick failed");
                    }
                }
            }
        }
    }
}

fn write_endpoints(dir: &Path, mqtt: SocketAddr, https: SocketAddr) -> Result<()> {
    let text = serde_json::to_string_pretty(&EndpointsFile { mqtt, https })?;
    std::fs::write(dir.join("endpoints.json"), text)?;
    Ok(())
}
