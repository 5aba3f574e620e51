//! The operator's commands on a real gateway (SM-DISPOSE, MON-1, ST-PROVIDE-1): `sgw status
//! --monitor` asks the running `sgw run` (its `/status` is the monitor.status body); `sgw
//! status --bundle`, `export` and `wipe` refuse while it runs (store lock) and work on the
//! stopped gateway — status shows the seqs and counts, export writes every record once in seq
//! order with masked columns masked, wipe lists, then overwrites and deletes keys, state and
//! configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod sgw_support;

use std::time::Duration;

use sgw_support::World;

#[test]
fn status_export_and_wipe_on_a_running_then_stopped_gateway() {
    let w = World::new("GWOPS");
    let monitor = format!(
        "127.0.0.1:{}",
        platform_sim::broker::free_loopback_port().unwrap()
    );
    let mut child = w.spawn_sgw(&["--monitor", &monitor]);
    w.wait_ftp(30);
    w.start_periodic();
    assert_eq!(w.upload(1, 5), Some(226));
    assert_eq!(w.upload(2, 7), Some(226));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while w.ids_at_platform().len() < 12 {
        assert!(
            std::time::Instant::now() < deadline,
            "records not at the platform"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let bundle = w.bundle_dir.to_str().unwrap();

    // Running: the monitor endpoint answers (the status refreshes every 5 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let (ok, out, err) = w.sgw(&["status", "--monitor", &monitor]);
        if ok {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            if v["lastSeq"] == 12 && v["storage"]["unacked"] == 0 {
                break v;
            }
        }
        assert!(std::time::Instant::now() < deadline, "{out}{err}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(status["filesAccepted"], 2);
    assert!(status["storage"]["freeBytes"].as_u64().unwrap() > 0);
    assert_eq!(status["periodic"]["running"], true);
    // … and the store tools refuse.
    for args in [
        vec!["status", "--bundle", bundle],
        vec!["export", "--bundle", bundle],
        vec!["wipe", "--bundle", bundle, "--yes"],
    ] {
        let (ok, _, err) = w.sgw(&args);
        assert!(!ok, "{args:?} ran beside the gateway");
        assert!(err.contains("the gateway is running"), "{args:?}: {err}");
    }
    assert!(
        w.cfg
            .gateway
            .state_dir
            .path()
            .join("store.sqlite3")
            .exists()
    );

    // Stopped (SIGTERM: clean shutdown).
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
    let (ok, _, err) = w.sgw(&["status", "--monitor", &monitor]);
    assert!(!ok && err.contains("is `sgw run --monitor"), "{err}");

    let (ok, out, err) = w.sgw(&["status", "--bundle", bundle]);
    assert!(ok, "{err}");
    let line = |k: &str| {
        out.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{k} missing: {out}"))
            .to_owned()
    };
    assert!(line("last seq").ends_with(" 12"), "{out}");
    assert!(line("records").ends_with(" 12"), "{out}");
    assert!(line("unacknowledged").ends_with(" 0"), "{out}");
    assert!(line("oldest unacknowledged").ends_with(" -"), "{out}");
    assert!(line("quarantined files").ends_with(" 0"), "{out}");

    // Export: every record once, in seq order, masked columns masked, owner-only file.
    let out_file = w.dir.path().join("export.jsonl");
    let (ok, _, err) = w.sgw(&[
        "export",
        "--bundle",
        bundle,
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("exported 12 records"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = recs.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    let billing = w
        .cfg
        .dataset(&gateway::protocol::ids::Dataset::new("billing").unwrap())
        .unwrap();
    let masked: Vec<usize> = billing
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.masked)
        .map(|(i, _)| i)
        .collect();
    assert!(!masked.is_empty());
    let ids: Vec<&str> = recs
        .iter()
        .map(|r| r["fields"][0].as_str().unwrap())
        .collect();
    assert_eq!(&ids[..2], &["F1-0", "F1-1"]);
    for r in &recs {
        assert_eq!(r["place"], "primary");
        assert_eq!(r["acked"], true);
        for &i in &masked {
            assert!(r["fields"][i].as_str().unwrap().starts_with("m1."), "{r}");
        }
    }
    // The export file is never overwritten.
    let (ok, _, err) = w.sgw(&[
        "export",
        "--bundle",
        bundle,
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("exists"), "{err}");

    // Wipe: a listing first, then the deletion.
    let (ok, listing, _) = w.sgw(&["wipe", "--bundle", bundle]);
    assert!(ok);
    let state = w.cfg.gateway.state_dir.path();
    for p in [
        state.to_path_buf(),
        w.cfg.masking.keys_dir.path().to_path_buf(),
        w.cfg.tls.client_key.path().to_path_buf(),
        w.cfg.data_protection.key.path().to_path_buf(),
        w.bundle_dir.join("gateway.toml"),
    ] {
        assert!(
            listing.contains(p.to_str().unwrap()),
            "{} not in {listing}",
            p.display()
        );
        assert!(p.exists(), "listing deleted {}", p.display());
    }
    let (ok, out, err) = w.sgw(&["wipe", "--bundle", bundle, "--yes"]);
    assert!(ok, "{err}");
    assert!(out.contains("SM-DISPOSE"), "{out}");
    assert!(!state.exists());
    assert!(!w.cfg.tls.client_key.path().exists());
    assert!(!w.cfg.data_protection.key.path().exists());
    assert!(!w.cfg.masking.keys_dir.path().exists());
    assert!(!w.bundle_dir.join("gateway.toml").exists());
    // Public certificates stay (they identify nothing secret).
    assert!(w.cfg.tls.client_cert.path().exists());
    // The gateway cannot start any more.
    let (ok, _, _) = w.sgw(&["check-config", "--bundle", bundle]);
    assert!(!ok);
}

#[test]
fn a_gateway_whose_ftp_port_is_taken_does_not_start() {
    let w = World::new("GWPORT");
    // Another program holds the FTP address of the bundle: `sgw run` must fail at once with the
    // reason, not run without listening for the legacy systems (SC-FTP-1).
    let _taken = std::net::TcpListener::bind(("127.0.0.1", w.ftp_port)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sgw"))
        .args(["run", "--bundle"])
        .arg(&w.bundle_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("sgw still runs 20 s after start with its FTP port taken");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("SC-FTP-1") && err.contains(&w.ftp_port.to_string()),
        "{err}"
    );
}
