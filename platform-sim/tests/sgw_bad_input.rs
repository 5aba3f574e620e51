//! Every bad-input kind of legacy-sim (`legacy_sim::bad`) sent over explicit FTPS to the real
//! gateway (`gateway::runtime::app`, what `sgw run` starts) while periodic storing runs: each
//! gets the specific reply of DES-FTP-6 (the code; the pattern text goes to the anomaly), the
//! refused content files are quarantined with their reason (DES-FTP-7), nothing refused is
//! stored or sent, the duplicate is ingested again (DES-FTP-5), the brute force locks the
//! account (DES-FTP-3), the anomalies reach the platform with the rule and reply text, and
//! `monitor.status` counts the files (SC-FTP-1, SC-ACQ-1, SM-LOCKOUT, SM-ACL, SM-AUDIT,
//! ST-STORE-1, DES-MSG-AN-2).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::fixture::{env, fast_config, fixture_https, serial};
use common::real::wait_view as wait;
use gateway::config::Config;
use gateway::protocol::message::{AnomalyKind, ProfileFormat};
use gateway::runtime::app::{RunOptions, start};
use legacy_sim::bad::{self, BadKind, BadOptions};
use legacy_sim::dataset::Dataset as Ds;
use legacy_sim::push::{FtpTarget, FtpsTrust, RetryPolicy};
use platform_sim::broker::free_loopback_port;
use platform_sim::ops::{FaultConfig, OperatorBackend, OperatorCommand};

const T: Duration = Duration::from_secs(20);
/// The gateway's `[ftp].max_file_bytes` in this test; the oversized file is 4× that.
const MAX_FILE: u64 = 256 * 1024;

/// The reply codes DES-FTP-6 prescribes for each kind (one per send or login, in order), and
/// whether the files are to be quarantined (DES-FTP-7: 5xx after data was read).
fn expected(kind: BadKind) -> (Vec<u32>, bool) {
    match kind {
        // DES-CSV-1 (syntax), DES-CSV-3 (column count), DES-CSV-2 (encoding), DES-CSV-1 (no
        // data record): content refused.
        BadKind::UnterminatedQuote
        | BadKind::WrongColumnCount
        | BadKind::WrongHeader
        | BadKind::Cp932AsUtf8
        | BadKind::InvalidUtf8
        | BadKind::Empty => (vec![551], true),
        BadKind::Oversized => (vec![552], true),
        // DES-MSG-DATA-6: a record whose wire size is over 65 536 bytes refuses the file.
        BadKind::LongRecord => (vec![552], true),
        // The data connection reset: nothing stored, not kept (the legacy system retries).
        BadKind::Truncated => (vec![426], false),
        // DES-FTP-5: the same content is accepted and ingested again.
        BadKind::Duplicate => (vec![226, 226], false),
        // DES-FTP-5: a name with a path is refused before any byte is read.
        BadKind::PathTraversal => (vec![553; 4], false),
        // DES-FTP-3: 5 wrong passwords lock the (user, address); the right one is then refused.
        BadKind::WrongPassword => (vec![530; 6], false),
        other => panic!("{other}: a new bad-input kind needs its expectation here"),
    }
}

#[tokio::test]
async fn every_bad_input_kind_gets_its_specific_refusal_is_quarantined_and_leaves_the_store_consistent()
 {
    let _s = serial().await;
    let f = fixture_https("SGWBAD1", fast_config(), FaultConfig::default()).await;
    let https_port = f.platform.https().unwrap().addr().port();
    let ftp_ca = platform_sim::demo::utility_setup(
        &f.bundle.dir,
        free_loopback_port().unwrap(),
        platform_sim::broker::free_loopback_range(21).unwrap(),
        &format!("https://localhost:{https_port}"),
    )
    .unwrap();
    let mut cfg = Config::load(&f.bundle.dir).unwrap();
    cfg.ftp.max_file_bytes = MAX_FILE;
    std::fs::write(f.bundle.dir.join("gateway.toml"), cfg.to_toml().unwrap()).unwrap();
    let quarantine = cfg.gateway.state_dir.path().join("quarantine");
    let user = "billing".to_owned();
    let pass = f.bundle.ftp_passwords[&user].clone();

    let g = start(&RunOptions {
        bundle: f.bundle.dir.clone(),
        monitor: None,
    })
    .await
    .expect("sgw starts");
    wait(&g, "session", |v| v.connected).await;
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

    let target = FtpTarget {
        host: "127.0.0.1".into(),
        port: cfg.ftp.listen.port(),
        user: user.clone(),
        password: pass,
        tls: Some(FtpsTrust {
            ca_pem: std::fs::read(&ftp_ca).unwrap(),
            server_name: Some("localhost".into()),
        }),
        timeout: Duration::from_secs(10),
    };
    let opts = BadOptions {
        dataset: Ds::Billing,
        rows: 20,
        seed: 5,
        size: 4 * MAX_FILE,
        times: gateway::south::LOCKOUT_AFTER_FAILURES,
        name_prefix: "bad".into(),
    };
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    // The brute force last: it locks the account for the kinds after it.
    let mut order: Vec<BadKind> = BadKind::ALL
        .into_iter()
        .filter(|k| *k != BadKind::WrongPassword)
        .collect();
    order.push(BadKind::WrongPassword);
    let mut quarantined = 0usize;
    for kind in order {
        let entries = bad::run(kind, &target, &opts, &policy).await;
        let codes: Vec<u32> = entries.iter().map(|e| e.reply_code.unwrap_or(0)).collect();
        let (want, kept) = expected(kind);
        assert_eq!(
            codes,
            want,
            "{kind}: replies {:?}",
            entries.iter().map(|e| &e.reply_text).collect::<Vec<_>>()
        );
        if kept {
            quarantined += 1;
        }
        // Quarantine holds exactly the 5xx content refusals so far, each with its reason.
        let files = kept_files(&quarantine);
        assert_eq!(files.len(), quarantined, "{kind}: quarantine {files:?}");
    }

    // Only the two copies of the duplicate were stored: 40 records, every seq once on the
    // platform, none from a refused file.
    wait(&g, "the duplicate's records acknowledged", |v| {
        v.last_seq == 40 && v.unacked == 0
    })
    .await;
    let stored = f.store().records(&f.gw).unwrap();
    let seqs: Vec<u64> = stored.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());

    // DES-FTP-7: 0700, files 0600, the reason names the code, the rule and the client.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&quarantine), 0o700);
    let files = kept_files(&quarantine);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(name.contains("_billing_bad_"), "{name}");
        let reason = std::fs::read_to_string(format!("{}.reason", f.display())).unwrap();
        assert!(reason.contains("client 127.0.0.1"), "{reason}");
        let line = reason.lines().next().unwrap();
        if name.ends_with("_oversized.csv") {
            assert!(line.starts_with("552 DES-FTP-6: file over"), "{line}");
            assert_eq!(std::fs::metadata(f).unwrap().len(), MAX_FILE);
            assert!(
                reason.contains(&format!("first {MAX_FILE} bytes")),
                "{reason}"
            );
        } else if name.ends_with("_long-record.csv") {
            assert_eq!(line, "552 DES-MSG-DATA-6: line 2: record over 65536 bytes");
        } else {
            assert!(line.starts_with("551 DES-CSV-"), "{line}");
        }
    }
    assert!(
        std::fs::read_dir(quarantine.join(".incoming"))
            .unwrap()
            .next()
            .is_none(),
        "no copy left behind"
    );

    // The platform got the ingest anomalies with the rule and the reply text as detail: the
    // first 10 (DES-MSG-AN-2 rate limit per kind and minute) of the 14 detected — 9 refused
    // files, 4 refused names, 1 lock.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let v = f.handle.view(&f.gw);
        let ingest: Vec<_> = v
            .anomalies
            .iter()
            .filter(|a| a.source == "gateway" && a.kind == AnomalyKind::Ingest)
            .collect();
        let status_ok = v.last_status.as_ref().is_some_and(|s| {
            s.files_accepted == 2 && s.files_rejected == 13 && s.anomalies_dropped >= 4
        });
        if ingest.len() == 10 && status_ok {
            let details: Vec<(&str, &str)> = ingest
                .iter()
                .map(|a| (a.rule.as_str(), a.detail.as_str()))
                .collect();
            assert!(
                details
                    .iter()
                    .any(|(r, d)| *r == "SC-ACQ-1" && d.starts_with("551 DES-CSV-")),
                "{details:?}"
            );
            assert!(
                details
                    .iter()
                    .any(|(r, d)| *r == "SC-FTP-1" && d.starts_with("552 DES-FTP-6")),
                "{details:?}"
            );
            assert!(
                details
                    .iter()
                    .any(|(r, d)| *r == "SC-FTP-1" && d.starts_with("426 DES-FTP-6")),
                "{details:?}"
            );
            assert!(
                details
                    .iter()
                    .any(|(r, d)| *r == "SC-FTP-1" && d.starts_with("553 DES-FTP-5")),
                "{details:?}"
            );
            // Masked or not, no field value of a refused file is in a detail (DES-FTP-6).
            for (_, d) in &details {
                assert!(!d.contains("余分な列"), "{d}");
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "anomalies {:?}, status {:?}",
            v.anomalies,
            v.last_status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    g.shutdown().await;

    // The access history (DES-AUDIT-1): every login, failure, lock and upload outcome with the
    // user and address; the duplicate and the quarantined files; no field value.
    let text = std::fs::read_to_string(cfg.gateway.state_dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |event: &str| lines.iter().filter(|l| l["event"] == event).count();
    assert_eq!(
        count("ftp.login-failed"),
        6,
        "5 wrong, then the right one while locked"
    );
    assert_eq!(count("ftp.locked"), 1);
    assert_eq!(count("ftp.quarantined"), quarantined);
    assert_eq!(count("ftp.duplicate"), 1);
    let uploads: Vec<(u64, &str)> = lines
        .iter()
        .filter(|l| l["event"] == "ftp.upload")
        .map(|l| (l["code"].as_u64().unwrap(), l["file"].as_str().unwrap()))
        .collect();
    assert_eq!(uploads.len(), 15, "{uploads:?}");
    assert!(uploads.contains(&(426, "bad_truncated.csv")), "{uploads:?}");
    assert!(
        uploads.contains(&(552, "bad_long-record.csv")),
        "{uploads:?}"
    );
    assert!(
        uploads.contains(&(553, "../../etc/billing.csv")),
        "{uploads:?}"
    );
    for l in lines
        .iter()
        .filter(|l| l["event"].as_str().unwrap().starts_with("ftp."))
    {
        assert_eq!(l["addr"], "127.0.0.1", "{l}");
    }
    assert!(
        !text.contains("余分な列"),
        "a field value in the access history"
    );
    assert_eq!(count("gateway.start"), 1);
    assert_eq!(count("gateway.stop"), 1);
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "mqtt.received" && l["type"] == "periodic.start")
    );
    assert!(lines.iter().any(|l| l["event"] == "mqtt.answer"
        && l["type"] == "periodic.start.result"
        && l["code"] == "OK"));
    let _ = env();
}

fn kept_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|x| x != "reason"))
        .collect();
    v.sort();
    v
}
