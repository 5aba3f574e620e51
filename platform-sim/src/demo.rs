//! The whole system in one command (`platform-sim demo`): the simulated platform (CA, MQTT
//! broker with mutual TLS, HTTPS certificate endpoint, platform side of every flow, operator
//! dashboard), one provisioned gateway — the real one, `gateway::runtime::app`, in the same
//! process — and the simulated legacy systems pushing billing and pipe-ledger CSV to it over
//! explicit FTPS on a schedule, all on loopback with no configuration. The platform starts
//! periodic sending at once, so records flow from CSV to the platform's store and dashboard.
//!
//! [`utility_setup`] is the utility's side of a bundle (its masking key, its FTPS certificate,
//! its ports), which the platform's tooling never does (SEC-MASK-2, DES-PROV-1).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use gateway::config::{Config, HttpsBase, PortRange};
use gateway::ingest::TextEncoding;
use gateway::protocol::ids::GatewayId;
use gateway::protocol::message::ProfileFormat;
use gateway::protocol::platform_side::PlatformConfig;
use gateway::runtime::app::{RunOptions, Running};
use legacy_sim::push::{FtpTarget, FtpsTrust, RetryPolicy, Upload, push};

use crate::broker::{self, BrokerSettings, free_loopback_port, free_loopback_range};
use crate::ca::Ca;
use crate::https::{self, Published, TlsMaterial};
use crate::ops::{OperatorBackend, OperatorCommand, OperatorServer};
use crate::platform::store::Store;
use crate::platform::{Platform, PlatformOptions};
use crate::provision::{Bundle, Endpoints, ProvisionOptions, provision};

/// What a demo run is asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where everything is kept (CA, platform store, the gateway's bundle and state).
    pub dir: PathBuf,
    /// Seconds between two uploads of each legacy system.
    pub push_every: Duration,
    /// Rows per uploaded file.
    pub rows: usize,
    /// Stop after this long (None: until Ctrl-C).
    pub run_for: Option<Duration>,
    /// Operator dashboard port (0: a free one).
    pub api_port: u16,
}

/// What arrived, when the demo stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    /// Files the gateway accepted (226).
    pub files_accepted: u64,
    /// Records stored by the platform, per dataset.
    pub records: BTreeMap<String, u64>,
}

/// A gateway provisioned for this machine, with the utility's side made.
#[derive(Debug, Clone)]
pub struct LocalGateway {
    /// The bundle (its FTP users' initial passwords included).
    pub bundle: Bundle,
    /// The FTP listener's loopback port.
    pub ftp_port: u16,
    /// The FTPS server certificate (PEM file), the trust anchor of legacy systems.
    pub ftp_ca: PathBuf,
}

/// Provisions gateway `gw` into `bundle_dir` for the broker on loopback `mqtt_port` and the
/// HTTPS endpoint `https_url`, then makes the utility's side ([`utility_setup`], free ports).
pub fn local_gateway(
    ca: &mut Ca,
    gw: &GatewayId,
    bundle_dir: &Path,
    mqtt_port: u16,
    https_url: &str,
) -> Result<LocalGateway> {
    let popts = ProvisionOptions {
        endpoints: Endpoints {
            mqtt_host: "localhost".into(),
            mqtt_port,
            https_url: https_url.to_owned(),
        },
        ..ProvisionOptions::default()
    };
    let bundle = provision(ca, gw, bundle_dir, &popts)?;
    let ftp_port = free_loopback_port()?;
    let ftp_ca = utility_setup(bundle_dir, ftp_port, free_loopback_range(21)?, https_url)?;
    Ok(LocalGateway {
        bundle,
        ftp_port,
        ftp_ca,
    })
}

/// The utility's side of a provisioned bundle `dir`: a masking key (DES-MASK-3), a
/// self-signed FTPS certificate for loopback (DES-FTP-2), the FTP listener on loopback
/// `ftp_port` with passive ports from `passive_from`, and `https_base`.
pub fn utility_setup(
    dir: &Path,
    ftp_port: u16,
    passive_from: u16,
    https_base: &str,
) -> Result<PathBuf> {
    gateway::config::new_masking_key(dir, None).context("masking key")?;
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .context("FTPS certificate")?;
    std::fs::create_dir_all(dir.join("ftp"))?;
    let pem = dir.join("ftp/server.pem");
    std::fs::write(&pem, cert.cert.pem())?;
    let key = dir.join("ftp/server.key");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)?;
        f.write_all(cert.signing_key.serialize_pem().as_bytes())?;
    }
    let mut cfg = Config::load(dir).context("gateway.toml")?;
    cfg.ftp.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, ftp_port));
    cfg.ftp.passive_ports = PortRange::new(&format!("{passive_from}-{}", passive_from + 20))
        .map_err(anyhow::Error::msg)?;
    cfg.platform.https_base = HttpsBase::new(https_base).map_err(anyhow::Error::msg)?;
    std::fs::write(dir.join("gateway.toml"), cfg.to_toml()?)?;
    Ok(pem)
}

fn legacy_encoding(e: TextEncoding) -> legacy_sim::TextEncoding {
    match e {
        TextEncoding::Utf8 => legacy_sim::TextEncoding::Utf8,
        TextEncoding::Cp932 => legacy_sim::TextEncoding::Cp932,
    }
}

/// Runs the demo until Ctrl-C or `run_for`; prints the addresses through `say`.
pub async fn run(opts: DemoOptions, say: impl Fn(String)) -> Result<DemoSummary> {
    let gw = GatewayId::new("GW0001").map_err(anyhow::Error::msg)?;
    let mut ca = Ca::open_or_create(&opts.dir.join("ca"))?;
    let mqtt = broker::start(&BrokerSettings::from_ca(&ca, free_loopback_port()?))?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let https = https::serve(
        listener,
        TlsMaterial::from_ca(&ca)?,
        Published::from_ca(&ca)?,
    )
    .await?;
    let https_url = format!("https://localhost:{}", https.addr().port());
    let bundle_dir = opts.dir.join(format!("bundle-{gw}"));
    anyhow::ensure!(
        !bundle_dir.exists(),
        "{} holds an earlier demo: use a new directory",
        opts.dir.display()
    );
    let local = local_gateway(&mut ca, &gw, &bundle_dir, mqtt.addr().port(), &https_url)?;
    let passwords = local.bundle.ftp_passwords.clone();
    let ftp_ca = local.ftp_ca;
    let cfg = Config::load(&bundle_dir)?;

    let store_path = opts.dir.join("platform.sqlite");
    let mut popts = PlatformOptions::new(store_path.clone());
    popts.core = PlatformConfig {
        monitor_interval_sec: 10,
        ack_timeout_sec: 10,
        // A start that overtook the connect.result is ignored by the gateway (DES-MSG-CONN-3)
        // and sent again after this.
        command_retry_sec: 3,
        ..PlatformConfig::default()
    };
    let platform = Platform::start(Ca::open(&opts.dir.join("ca"))?, mqtt, Some(https), popts)?;
    let handle = platform.handle();
    let api = OperatorServer::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, opts.api_port)),
        Arc::new(platform.handle()),
    )
    .await?;

    let gateway: Running = gateway::runtime::app::start(&RunOptions {
        bundle: bundle_dir.clone(),
        monitor: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
    })
    .await
    .map_err(|e| anyhow::anyhow!("gateway: {e}"))?;
    say(format!(
        "dashboard:  http://127.0.0.1:{}/",
        api.addr().port()
    ));
    say(format!("gateway:    {gw}, FTPS on {}", gateway.ftp_addr));
    if let Some(m) = gateway.monitor_addr {
        say(format!("metrics:    http://{m}/metrics"));
    }
    say(format!("state dir:  {}", opts.dir.display()));

    // The platform starts periodic sending for every dataset once the gateway is connected.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !handle.view(&gw).connected {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the gateway did not connect within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle
        .command(
            &gw,
            OperatorCommand::Start {
                datasets: vec![],
                interval_sec: 2,
                format: ProfileFormat::Json,
            },
        )
        .map_err(|e| anyhow::anyhow!("start: {e:?}"))?;
    // Uploads are refused (450) until the gateway has applied the start.
    while !gateway.driver.inspect().await.is_some_and(|v| v.running) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the gateway did not apply the start within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The legacy systems: billing and pipe ledger, each on its own FTP account.
    let ca_pem = std::fs::read(&ftp_ca)?;
    let mut pushers = Vec::new();
    for (i, ds) in [
        legacy_sim::Dataset::Billing,
        legacy_sim::Dataset::PipeLedger,
    ]
    .into_iter()
    .enumerate()
    {
        let Some(d) = cfg.datasets.iter().find(|d| d.name.as_str() == ds.name()) else {
            continue;
        };
        let user = d.ftp_user.as_str().to_owned();
        let Some(password) = passwords.get(&user).cloned() else {
            continue;
        };
        let target = FtpTarget {
            host: "127.0.0.1".into(),
            port: cfg.ftp.listen.port(),
            user,
            password,
            tls: Some(FtpsTrust {
                ca_pem: ca_pem.clone(),
                server_name: Some("127.0.0.1".into()),
            }),
            timeout: Duration::from_secs(20),
        };
        let enc = legacy_encoding(d.encoding);
        let every = opts.push_every;
        let rows = opts.rows;
        pushers.push(tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                n += 1;
                let table = legacy_sim::Table::generate(ds, rows, n * 10 + i as u64);
                let Ok(content) = table.to_csv(&legacy_sim::CsvOptions {
                    encoding: enc,
                    ..legacy_sim::CsvOptions::default()
                }) else {
                    return;
                };
                let upload = Upload {
                    file_name: format!("{}_{n:04}.csv", ds.name()),
                    content,
                    dataset: ds.name().into(),
                    rows,
                    encoding: enc.label().into(),
                };
                let entry = push(&target, &upload, &RetryPolicy::default()).await;
                tracing::info!(
                    file = %entry.file_name,
                    reply = ?entry.reply_code,
                    "legacy system pushed"
                );
                tokio::time::sleep(every).await;
            }
        }));
    }

    match opts.run_for {
        Some(d) => tokio::time::sleep(d).await,
        None => {
            tokio::signal::ctrl_c().await?;
        }
    }
    say("stopping".into());
    for p in &pushers {
        p.abort();
    }
    let files_accepted = gateway
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("sgw_files_accepted_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    gateway.shutdown().await;
    drop(platform);
    let mut records = BTreeMap::new();
    for r in Store::open(&store_path)?.records(&gw)? {
        *records.entry(r.dataset).or_insert(0) += 1;
    }
    Ok(DemoSummary {
        files_accepted,
        records,
    })
}
