//! The end-to-end throughput run (docs/PERFORMANCE.md, "End to end"): the real gateway
//! (`gateway::runtime::app`, in this process) between the platform simulator (embedded broker,
//! platform core, SQLite store) and a legacy system uploading billing CSV over explicit FTPS
//! (`legacy_sim::push`, one session, files one after the other). Measures the ingest phase
//! (first `STOR` to the last `226`: decode, check, mask, durable commit) and the whole way (first
//! `STOR` to the last record stored by the platform: periodic sending every second, sealing,
//! MQTT, opening and storing at the platform, `data.ack`). Prints one JSON object. Nothing here
//! asserts on time.
//!
//! usage: sgw-e2e [FILES] [ROWS] [json|xml]   (default 20 files × 5 000 rows, json)

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gateway::config::Config;
use gateway::protocol::ids::GatewayId;
use gateway::protocol::message::ProfileFormat;
use gateway::protocol::platform_side::PlatformConfig;
use gateway::runtime::app::{RunOptions, start};
use legacy_sim::push::{FtpTarget, FtpsTrust, Session};
use platform_sim::broker::{self, BrokerSettings, free_loopback_port};
use platform_sim::ca::Ca;
use platform_sim::ops::{OperatorBackend, OperatorCommand};
use platform_sim::platform::{Platform, PlatformOptions};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let files: u64 = args.first().map_or(Ok(20), |s| s.parse())?;
    let rows: usize = args.get(1).map_or(Ok(5000), |s| s.parse())?;
    let format = match args.get(2).map(String::as_str) {
        None | Some("json") => ProfileFormat::Json,
        Some("xml") => ProfileFormat::Xml,
        Some(o) => bail!("format {o}: json or xml"),
    };
    platform_sim::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run(files, rows, format))
}

async fn run(files: u64, rows: usize, format: ProfileFormat) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut ca = Ca::create(&dir.path().join("ca"))?;
    let mqtt = broker::start(&BrokerSettings::from_ca(&ca, free_loopback_port()?))?;
    let gw = GatewayId::new("GWPERF").map_err(anyhow::Error::msg)?;
    let bundle_dir = dir.path().join("bundle");
    let local = platform_sim::demo::local_gateway(
        &mut ca,
        &gw,
        &bundle_dir,
        mqtt.addr().port(),
        "https://localhost:9",
    )?;
    let (bundle, ftp_port, ftp_ca) = (local.bundle, local.ftp_port, local.ftp_ca);
    let mut cfg = Config::load(&bundle_dir)?;
    cfg.ftp.max_file_bytes = 1 << 30;
    cfg.storage.quota_bytes = 1 << 40;
    std::fs::write(bundle_dir.join("gateway.toml"), cfg.to_toml()?)?;
    let user = "billing".to_owned();
    let password = bundle
        .ftp_passwords
        .get(&user)
        .context("billing account")?
        .clone();

    let mut popts = PlatformOptions::new(dir.path().join("platform.sqlite"));
    popts.core = PlatformConfig {
        monitor_interval_sec: 5,
        ..PlatformConfig::default()
    };
    let platform = Platform::start(Ca::open(&dir.path().join("ca"))?, mqtt, None, popts)?;
    let handle = platform.handle();
    let g = start(&RunOptions {
        bundle: bundle_dir.clone(),
        monitor: None,
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !handle.view(&gw).connected {
        if Instant::now() > deadline {
            bail!("no session");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle
        .command(
            &gw,
            OperatorCommand::Start {
                datasets: vec![],
                interval_sec: 1,
                format,
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    while !g.driver.inspect().await.is_some_and(|v| v.running) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The files, made before the clock starts.
    let contents: Vec<Vec<u8>> = (0..files)
        .map(|n| {
            legacy_sim::Table::generate(legacy_sim::Dataset::Billing, rows, n)
                .to_csv(&legacy_sim::CsvOptions::default())
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<Result<_>>()?;
    let bytes: usize = contents.iter().map(Vec::len).sum();
    let total = files * rows as u64;
    let target = FtpTarget {
        host: "127.0.0.1".into(),
        port: ftp_port,
        user,
        password,
        tls: Some(FtpsTrust {
            ca_pem: std::fs::read(&ftp_ca)?,
            server_name: Some("localhost".into()),
        }),
        timeout: Duration::from_secs(120),
    };
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let t0 = Instant::now();
    let mut session = Session::open(&target)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (n, c) in contents.iter().enumerate() {
        session
            .store(&format!("perf_{n}.csv"), c)
            .await
            .map_err(|e| anyhow::anyhow!("file {n}: {e}"))?;
    }
    session.quit().await;
    let ingest = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let v = handle.view(&gw);
        if v.highest_seq >= total && v.gaps.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("not every record reached the platform: {}", v.highest_seq);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end_to_end = t0.elapsed();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    g.shutdown().await;
    drop(platform);
    let secs = |d: Duration| d.as_secs_f64();
    let out = serde_json::json!({
        "files": files,
        "rowsPerFile": rows,
        "records": total,
        "csvBytes": bytes,
        "format": format!("{format:?}").to_lowercase(),
        "ingestSec": secs(ingest),
        "ingestRecordsPerSec": total as f64 / secs(ingest),
        "ingestMBPerSec": bytes as f64 / 1e6 / secs(ingest),
        "endToEndSec": secs(end_to_end),
        "endToEndRecordsPerSec": total as f64 / secs(end_to_end),
        "loadavgBefore": load_before.trim(),
        "loadavgAfter": load_after.trim(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
