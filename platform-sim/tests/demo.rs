//! The whole system in one command (README's first command, `platform-sim demo`): run for a
//! bounded time, then records of both legacy systems must have reached the platform through
//! the real gateway (FTPS ingest, masking, store, MQTT, platform store).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

#[test]
fn the_demo_command_moves_csv_records_from_the_legacy_systems_to_the_platform() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_platform-sim"))
        .args([
            "demo",
            "--for",
            "15",
            "--push-every",
            "2",
            "--rows",
            "10",
            "--state-dir",
        ])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dashboard:  http://127.0.0.1:"), "{stdout}");
    for ds in ["billing", "pipe_ledger"] {
        let n: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("records stored by the platform: {ds} ")))
            .unwrap_or_else(|| panic!("no {ds} records: {stdout}"))
            .parse()
            .unwrap();
        assert!(
            n >= 10 && n % 10 == 0,
            "{ds}: {n} records (whole files of 10)"
        );
    }
    let files: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("files accepted by the gateway: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(files >= 2, "{stdout}");
}
