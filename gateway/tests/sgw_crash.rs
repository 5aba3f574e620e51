//! Nothing is lost (ST-STORE-1, DES-FTP-6, DES-MSG-DATA-3): the `sgw` binary, run from a
//! provisioned bundle against the platform simulator, is killed with SIGKILL at random points
//! while legacy uploads stream in over FTPS and data goes out over MQTT, and restarted each
//! time. Then, counting by a unique ID written into every row: every upload answered `226`
//! reached the platform, whole; no file reached it in part; no row reached it twice. The seed
//! is printed (`SGW_CRASH_SEED` replays it; `SGW_CRASH_ROUNDS`, default 20).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::config::Config;
use gateway::protocol::ids::{Dataset, GatewayId};
use gateway::protocol::message::ProfileFormat;
use gateway::protocol::platform_side::PlatformConfig;
use platform_sim::broker::{self, BrokerSettings, free_loopback_port};
use platform_sim::ca::Ca;
use platform_sim::ops::{OperatorBackend, OperatorCommand};
use platform_sim::platform::store::Store;
use platform_sim::platform::{Platform, PlatformOptions};
use platform_sim::provision::{Endpoints, ProvisionOptions, provision};
use rand::{Rng, SeedableRng};

const ROWS: usize = 8;

fn spawn_sgw(bundle: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_sgw"))
        .args(["run", "--bundle"])
        .arg(bundle)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// One billing file whose customer numbers (first column) are `F{file}-{row}`.
fn file(n: u64) -> Vec<u8> {
    let mut t = legacy_sim::Table::generate(legacy_sim::Dataset::Billing, ROWS, n);
    for (i, row) in t.rows.iter_mut().enumerate() {
        row[0] = format!("F{n}-{i}");
    }
    t.to_csv(&legacy_sim::CsvOptions::default()).unwrap()
}

/// Uploads `content` with curl over FTPS; the reply code of STOR, if any.
fn upload(
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
    let out = Command::new("curl")
        .args(["-sSv", "--max-time", "10", "--ssl-reqd", "--cacert"])
        .arg(ca)
        .args(["--user", &format!("{user}:{pass}"), "-T"])
        .arg(&f)
        .arg(format!("ftp://127.0.0.1:{port}/{name}"))
        .output()
        .expect("curl (.ci/run)");
    let err = String::from_utf8_lossy(&out.stderr);
    // The reply to STOR after the transfer: the first non-1xx reply after "> STOR".
    err.lines()
        .skip_while(|l| !l.starts_with("> STOR"))
        .filter_map(|l| l.strip_prefix("< "))
        .filter_map(|l| l.get(..3)?.parse::<u16>().ok())
        .find(|c| *c >= 200)
}

#[test]
fn sigkill_at_random_points_loses_no_accepted_upload_and_sends_no_row_twice() {
    platform_sim::install_crypto_provider();
    let rounds: u32 = std::env::var("SGW_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("SGW_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("SGW_CRASH_SEED={seed} SGW_CRASH_ROUNDS={rounds}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // The platform.
    let mut ca = Ca::create(&dir.path().join("ca")).unwrap();
    let mqtt = broker::start(&BrokerSettings::from_ca(&ca, free_loopback_port().unwrap())).unwrap();
    let gw = GatewayId::new("GWCRASH").unwrap();
    let bundle_dir = dir.path().join("bundle");
    let bundle = provision(
        &mut ca,
        &gw,
        &bundle_dir,
        &ProvisionOptions {
            endpoints: Endpoints {
                mqtt_host: "localhost".into(),
                mqtt_port: mqtt.addr().port(),
                https_url: "https://localhost:9".into(),
            },
            ..ProvisionOptions::default()
        },
    )
    .unwrap();
    let ftp_port = free_loopback_port().unwrap();
    let ftp_ca = platform_sim::demo::utility_setup(
        &bundle_dir,
        ftp_port,
        free_loopback_port().unwrap(),
        "https://localhost:9",
    )
    .unwrap();
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

    // Outcomes of every upload: file number → STOR reply code (None: no reply, killed).
    let outcomes: Arc<Mutex<BTreeMap<u64, Option<u16>>>> = Arc::default();
    let mut next_file = 0u64;
    let wait_ftp = |secs: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::net::TcpStream::connect(("127.0.0.1", ftp_port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "sgw did not listen: see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut started = false;
    for round in 0..rounds {
        let mut child = spawn_sgw(&bundle_dir, &log);
        wait_ftp(30);
        if !started {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !handle.view(&gw).connected {
                assert!(std::time::Instant::now() < deadline, "no session");
                std::thread::sleep(Duration::from_millis(50));
            }
            handle
                .command(
                    &gw,
                    OperatorCommand::Start {
                        datasets: vec![],
                        interval_sec: 1,
                        format: ProfileFormat::Json,
                    },
                )
                .unwrap();
            started = true;
        }
        // Uploads while the gateway runs; SIGKILL at a random point.
        let kill_after = Duration::from_millis(rng.random_range(200..2500));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let uploader = {
            let (outcomes, stop, ca, uploads) = (
                outcomes.clone(),
                stop.clone(),
                ftp_ca.clone(),
                uploads.clone(),
            );
            let (user, pass) = (user.clone(), pass.clone());
            let first = next_file;
            std::thread::spawn(move || {
                let mut n = first;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let code = upload(
                        ftp_port,
                        &ca,
                        &user,
                        &pass,
                        &format!("f{n}.csv"),
                        &file(n),
                        &uploads,
                    );
                    outcomes.lock().unwrap().insert(n, code);
                    n += 1;
                }
                n
            })
        };
        std::thread::sleep(kill_after);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        next_file = uploader.join().unwrap();
        println!("round {round}: killed after {kill_after:?}, files so far {next_file}");
    }

    // A last run drains what is stored.
    let mut child = spawn_sgw(&bundle_dir, &log);
    wait_ftp(30);
    let outcomes = outcomes.lock().unwrap().clone();
    let accepted: BTreeSet<u64> = outcomes
        .iter()
        .filter(|(_, c)| **c == Some(226))
        .map(|(n, _)| *n)
        .collect();
    assert!(
        accepted.len() >= rounds as usize / 2,
        "too few uploads accepted: {outcomes:?}"
    );
    let ids_at_platform = || -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in Store::open(&store_path).unwrap().records(&gw).unwrap() {
            *m.entry(r.fields[0].clone()).or_insert(0) += 1;
        }
        m
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let ids = loop {
        let ids = ids_at_platform();
        let all = accepted
            .iter()
            .all(|n| (0..ROWS).all(|i| ids.contains_key(&format!("F{n}-{i}"))));
        if all {
            // Let in-flight retransmissions land, then look again.
            std::thread::sleep(Duration::from_secs(3));
            break ids_at_platform();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "accepted uploads missing at the platform after the drain (seed {seed}); log {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    drop(platform);

    // No row twice; no file in part; every accepted file whole.
    for (id, n) in &ids {
        assert_eq!(
            *n, 1,
            "row {id} reached the platform {n} times (seed {seed})"
        );
    }
    let mut files: BTreeMap<u64, usize> = BTreeMap::new();
    for id in ids.keys() {
        let n: u64 = id[1..].split('-').next().unwrap().parse().unwrap();
        *files.entry(n).or_insert(0) += 1;
    }
    for (n, rows) in &files {
        assert_eq!(
            *rows, ROWS,
            "file {n} reached the platform in part (seed {seed})"
        );
        assert!(outcomes.contains_key(n), "file {n} was never uploaded");
    }
    for n in &accepted {
        assert!(
            files.contains_key(n),
            "accepted file {n} lost (seed {seed})"
        );
    }
    println!(
        "{} uploads, {} answered 226, {} files at the platform ({} committed whose 226 was lost to a kill)",
        outcomes.len(),
        accepted.len(),
        files.len(),
        files.keys().filter(|n| !accepted.contains(n)).count()
    );
}
