//! The whole gateway (`gateway::runtime::app`, what `sgw run` starts) from a provisioned
//! bundle against the platform simulator: a legacy system's CSV uploaded over explicit FTPS by
//! curl is decoded, masked, stored durably, answered 226, sent on the platform's start and
//! stored by the platform, masked columns masked; after a restart the gateway goes on with new
//! seqs and nothing is stored twice (SC-FTP-1, SC-ACQ-1, SEC-MASK-1, ST-STORE-1, IF-PSEND-*,
//! IF-DISC-1, MON-1).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::fixture::{env, fast_config, fixture_https, serial};
use common::real::wait_view as wait;
use gateway::config::Config;
use gateway::ingest::TextEncoding;
use gateway::protocol::ids::Dataset;
use gateway::protocol::message::ProfileFormat;
use gateway::runtime::app::{RunOptions, start};
use gateway::security::MaskingKeys;
use legacy_sim::dataset::Dataset as Ds;
use platform_sim::broker::free_loopback_port;
use platform_sim::ops::{FaultConfig, OperatorBackend, OperatorCommand};

const T: Duration = Duration::from_secs(20);

/// The utility's side of the bundle (masking key, FTPS certificate) and the test's ports.
fn utility_setup(dir: &Path, https_port: u16) -> std::path::PathBuf {
    platform_sim::demo::utility_setup(
        dir,
        free_loopback_port().unwrap(),
        platform_sim::broker::free_loopback_range(21).unwrap(),
        &format!("https://localhost:{https_port}"),
    )
    .unwrap()
}

/// Uploads `content` as `name` over explicit FTPS with certificate verification (curl).
async fn upload(
    cfg: &Config,
    ca: &Path,
    user: &str,
    pass: &str,
    name: &str,
    content: Vec<u8>,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join(name);
    std::fs::write(&f, content).unwrap();
    let url = format!("ftp://127.0.0.1:{}/{name}", cfg.ftp.listen.port());
    let args = vec![
        "-sSv".to_owned(),
        "--max-time".into(),
        "30".into(),
        "--ssl-reqd".into(),
        "--cacert".into(),
        ca.display().to_string(),
        "--user".into(),
        format!("{user}:{pass}"),
        "-T".into(),
        f.display().to_string(),
        url,
    ];
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(&args)
            .output()
            .expect("curl (.ci/run)");
        String::from_utf8_lossy(&out.stderr).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_csv_uploaded_over_ftps_reaches_the_platform_masked_and_a_restart_goes_on_without_duplicates()
 {
    let _s = serial().await;
    let f = fixture_https("SGWRUN1", fast_config(), FaultConfig::default()).await;
    let https_port = f.platform.https().unwrap().addr().port();
    let ftp_ca = utility_setup(&f.bundle.dir, https_port);
    let cfg = Config::load(&f.bundle.dir).unwrap();
    let billing = cfg
        .dataset(&Dataset::new("billing").unwrap())
        .unwrap()
        .clone();
    let user = billing.ftp_user.as_str().to_owned();
    let pass = f.bundle.ftp_passwords[&user].clone();
    let opts = RunOptions {
        bundle: f.bundle.dir.clone(),
        monitor: Some("127.0.0.1:0".parse().unwrap()),
    };

    let g = start(&opts).await.expect("sgw starts on a clean bundle");
    wait(&g, "session", |v| v.connected).await;

    // Before the platform's start, storing is stopped: 450, nothing stored (DES-FTP-6).
    let csv = |n: usize, seed: u64| {
        let enc = match billing.encoding {
            TextEncoding::Utf8 => legacy_sim::TextEncoding::Utf8,
            TextEncoding::Cp932 => legacy_sim::TextEncoding::Cp932,
        };
        let table = legacy_sim::Table::generate(Ds::Billing, n, seed);
        let bytes = table
            .to_csv(&legacy_sim::CsvOptions {
                encoding: enc,
                ..legacy_sim::CsvOptions::default()
            })
            .unwrap();
        (table, bytes)
    };
    let (_, early) = csv(3, 1);
    let out = upload(&cfg, &ftp_ca, &user, &pass, "early.csv", early).await;
    assert!(out.contains("< 450 "), "{out}");

    f.handle
        .command(
            &f.gw,
            OperatorCommand::Start {
                datasets: vec![],
                interval_sec: 1,
                format: ProfileFormat::Json,
            },
        )
        .unwrap();
    wait(&g, "started", |v| v.running).await;

    let (table, bytes) = csv(40, 7);
    let out = upload(&cfg, &ftp_ca, &user, &pass, "billing_1.csv", bytes).await;
    assert!(out.contains("< 226 "), "{out}");
    wait(&g, "acknowledged", |v| v.last_seq == 40 && v.unacked == 0).await;

    // The platform holds exactly the 40 records; masked columns masked, and they unmask (with
    // the utility's key, which only the gateway's bundle has) to what the legacy system sent.
    let stored = f.store().records(&f.gw).unwrap();
    assert_eq!(stored.len(), 40);
    let keys = MaskingKeys::load_dir(
        &f.bundle.dir.join("masking"),
        cfg.masking.active_key.as_str(),
    )
    .unwrap();
    let masked: Vec<(usize, &str)> = billing
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.masked)
        .map(|(i, c)| (i, c.name.as_str()))
        .collect();
    assert!(!masked.is_empty(), "billing masks personal columns");
    for r in &stored {
        let row = &table.rows[(r.seq - 1) as usize];
        for &(i, name) in &masked {
            assert_ne!(r.fields[i], row[i], "seq {} column {name} in clear", r.seq);
            assert_eq!(keys.unmask(name, &r.fields[i]).unwrap(), row[i]);
        }
    }
    let m = g.metrics.render();
    assert!(m.contains("sgw_files_accepted_total 1"), "{m}");
    assert!(m.contains("sgw_records_acked_total 40"), "{m}");
    assert!(!m.contains("sgw_data_messages_sent_total 0"), "{m}");
    // monitor.status is true to fact (DES-MSG-MON-1): the platform sees the accepted and
    // refused files, the stored bytes and every certificate's expiry.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let v = f.handle.view(&f.gw);
        if let Some(st) = &v.last_status
            && st.files_accepted == 1
            && st.files_rejected == 1
            && st.storage.bytes > 0
            && st.storage.free_bytes > 0
            && st.storage.oldest_unacked_sec == 0
            && st.records_acked == 40
            && st.messages_sent >= 1
        {
            let names: Vec<&str> = st.certificates.iter().map(|c| c.name.as_str()).collect();
            for want in ["tls-client", "data-protection", "platform", "root", "crl"] {
                assert!(names.contains(&want), "{want} missing from {names:?}");
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "monitor.status not true to fact: {:?}",
            v.last_status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(g.metrics.render().contains("sgw_files_rejected_total 1"));

    // Restart: disconnect, then the same bundle again.
    g.shutdown().await;
    let g = start(&opts).await.expect("restart");
    wait(&g, "session again", |v| {
        v.connected && v.running && v.last_seq == 40
    })
    .await;
    let (_, bytes) = csv(5, 8);
    let out = upload(&cfg, &ftp_ca, &user, &pass, "billing_2.csv", bytes).await;
    assert!(out.contains("< 226 "), "{out}");
    wait(&g, "acknowledged after restart", |v| {
        v.last_seq == 45 && v.unacked == 0
    })
    .await;
    let stored = f.store().records(&f.gw).unwrap();
    let mut seqs: Vec<u64> = stored.iter().map(|r| r.seq).collect();
    seqs.dedup();
    assert_eq!(seqs, (1..=45).collect::<Vec<_>>(), "every seq once");
    g.shutdown().await;
    let _ = env();
}
