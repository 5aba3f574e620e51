//! The world the `sgw` binary tests run in: a simulator CA and MQTT broker, a platform on its
//! own SQLite store, a provisioned bundle with the utility's side (masking key, FTPS
//! certificate) and the billing account; `sgw run` as a child process, curl over FTPS.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gateway::config::Config;
use gateway::protocol::ids::{Dataset, GatewayId};
use gateway::protocol::message::ProfileFormat;
use gateway::protocol::platform_side::PlatformConfig;
use platform_sim::broker::{self, BrokerSettings, free_loopback_port};
use platform_sim::ca::Ca;
use platform_sim::ops::{OperatorBackend, OperatorCommand};
use platform_sim::platform::store::Store;
use platform_sim::platform::{Platform, PlatformHandle, PlatformOptions};

pub struct World {
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
    pub platform: Option<Platform>,
    pub handle: PlatformHandle,
    pub gw: GatewayId,
    pub bundle_dir: PathBuf,
    pub cfg: Config,
    pub user: String,
    pub pass: String,
    pub ftp_port: u16,
    pub ftp_ca: PathBuf,
    pub store_path: PathBuf,
    pub log: PathBuf,
    pub uploads: PathBuf,
}

impl World {
    pub fn new(id: &str) -> World {
        platform_sim::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut ca = Ca::create(&dir.path().join("ca")).unwrap();
        let mqtt =
            broker::start(&BrokerSettings::from_ca(&ca, free_loopback_port().unwrap())).unwrap();
        let gw = GatewayId::new(id).unwrap();
        let bundle_dir = dir.path().join("bundle");
        let local = platform_sim::demo::local_gateway(
            &mut ca,
            &gw,
            &bundle_dir,
            mqtt.addr().port(),
            "https://localhost:9",
        )
        .unwrap();
        let (bundle, ftp_port, ftp_ca) = (local.bundle, local.ftp_port, local.ftp_ca);
        let cfg = Config::load(&bundle_dir).unwrap();
        let billing = cfg.dataset(&Dataset::new("billing").unwrap()).unwrap();
        let user = billing.ftp_user.as_str().to_owned();
        let pass = bundle.ftp_passwords[&user].clone();
        let store_path = dir.path().join("platform.sqlite");
        let mut popts = PlatformOptions::new(store_path.clone());
        popts.core = PlatformConfig {
            monitor_interval_sec: 2,
            ack_timeout_sec: 2,
            command_retry_sec: 2,
            gap_grace_sec: 3,
            ..PlatformConfig::default()
        };
        let platform = {
            let _g = rt.enter();
            Platform::start(Ca::open(&dir.path().join("ca")).unwrap(), mqtt, None, popts).unwrap()
        };
        let handle = platform.handle();
        let log = dir.path().join("sgw.log");
        let uploads = dir.path().join("uploads");
        std::fs::create_dir_all(&uploads).unwrap();
        World {
            dir,
            rt,
            platform: Some(platform),
            handle,
            gw,
            bundle_dir,
            cfg,
            user,
            pass,
            ftp_port,
            ftp_ca,
            store_path,
            log,
            uploads,
        }
    }

    /// `sgw run` from the bundle (stderr appended to the log), with extra arguments.
    pub fn spawn_sgw(&self, extra: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_sgw"))
            .args(["run", "--bundle"])
            .arg(&self.bundle_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Waits until the gateway's FTP port accepts connections.
    pub fn wait_ftp(&self, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::net::TcpStream::connect(("127.0.0.1", self.ftp_port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "sgw did not listen: see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the session, then starts periodic sending every second (JSON).
    pub fn start_periodic(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.handle.view(&self.gw).connected {
            assert!(std::time::Instant::now() < deadline, "no session");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.handle
            .command(
                &self.gw,
                OperatorCommand::Start {
                    datasets: vec![],
                    interval_sec: 1,
                    format: ProfileFormat::Json,
                },
            )
            .unwrap();
    }

    /// Uploads billing file `n` (see [`file`]); the STOR reply code, if any.
    pub fn upload(&self, n: u64, rows: usize) -> Option<u16> {
        upload(
            self.ftp_port,
            &self.ftp_ca,
            &self.user,
            &self.pass,
            &format!("f{n}.csv"),
            &file(n, rows),
            &self.uploads,
        )
    }

    /// First column of every record the platform stored → how many times.
    pub fn ids_at_platform(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for r in Store::open(&self.store_path)
            .unwrap()
            .records(&self.gw)
            .unwrap()
        {
            *m.entry(r.fields[0].clone()).or_insert(0) += 1;
        }
        m
    }

    /// `sgw` with `args` (not `run`); (exit success, stdout, stderr).
    pub fn sgw(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_sgw"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// One billing file whose customer numbers (first column) are `F{n}-{row}`.
pub fn file(n: u64, rows: usize) -> Vec<u8> {
    let mut t = legacy_sim::Table::generate(legacy_sim::Dataset::Billing, rows, n);
    for (i, row) in t.rows.iter_mut().enumerate() {
        row[0] = format!("F{n}-{i}");
    }
    t.to_csv(&legacy_sim::CsvOptions::default()).unwrap()
}

/// Uploads `content` with curl over FTPS; the reply code of STOR, if any.
pub fn upload(
    port: u16,
    ca: &Path,
    user: &str,
    pass: &str,
    name: &str,
    content: &[u8],
    dir: &Path,
) -> Option<u16> {
    let f = dir.join(name);
    std::fs::write(&f, content).unwrap();
    let run = || {
        let out = Command::new("curl")
            .args(["-sSv", "--max-time", "10", "--ssl-reqd", "--cacert"])
            .arg(ca)
            .args(["--user", &format!("{user}:{pass}"), "-T"])
            .arg(&f)
            .arg(format!("ftp://127.0.0.1:{port}/{name}"))
            .output()
            .expect("curl (.ci/run)");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let mut err = run();
    if !err.lines().any(|l| l.starts_with("> USER")) {
        // A session that failed before USER (connect or TLS upgrade: the libunftp AUTH TLS
        // race, gateway/src/runtime/ftp.rs) is made once more, as the suite and legacy-sim do.
        err = run();
    }
    // The reply to STOR after the transfer: the first non-1xx reply after "> STOR".
    err.lines()
        .skip_while(|l| !l.starts_with("> STOR"))
        .filter_map(|l| l.strip_prefix("< "))
        .filter_map(|l| l.get(..3)?.parse::<u16>().ok())
        .find(|c| *c >= 200)
}
