//! The per-test platform fixture of the platform tests: one broker and CA per test binary,
//! tests run one at a time ([`serial`]), each with its own [`Platform`] (own SQLite store, own
//! faults) subscribed to its own gateway's uplinks, and a provisioned bundle for that gateway
//! (driven by the real gateway, `super::real`, or a scripted one, `super::scripted`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::OnceLock;

use gateway::protocol::ids::GatewayId;
use gateway::protocol::platform_side::PlatformConfig;
use platform_sim::broker::{self, BrokerSettings, MqttBroker, free_loopback_port};
use platform_sim::ca::Ca;
use platform_sim::ops::FaultConfig;
use platform_sim::platform::store::Store;
use platform_sim::platform::{Platform, PlatformHandle, PlatformOptions};
use platform_sim::provision::Bundle;

use super::{bundle, new_ca};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub ca_dir: PathBuf,
    pub broker: MqttBroker,
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let (dir, ca) = new_ca();
        let broker =
            broker::start(&BrokerSettings::from_ca(&ca, free_loopback_port().unwrap())).unwrap();
        Env {
            ca_dir: dir.path().join("ca"),
            dir,
            broker,
        }
    })
}

/// Tests of one binary share the broker and the CA directory: run them one at a time (an
/// async mutex: the guard is held across awaits, and a failed test does not poison it).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static M: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    M.lock().await
}

/// Fast timers for tests.
pub fn fast_config() -> PlatformConfig {
    PlatformConfig {
        monitor_interval_sec: 2,
        ack_timeout_sec: 2,
        command_retry_sec: 2,
        gap_grace_sec: 1,
        ..PlatformConfig::default()
    }
}

pub struct Fixture {
    pub platform: Platform,
    pub handle: PlatformHandle,
    pub store_path: PathBuf,
    pub bundle: Bundle,
    pub gw: GatewayId,
}

impl Fixture {
    /// The base URL of the fixture's HTTPS certificate endpoint ([`fixture_https`] only).
    pub fn https_base(&self) -> String {
        let https = self.platform.https().expect("a fixture_https fixture");
        format!("https://localhost:{}", https.addr().port())
    }

    pub fn store(&self) -> Store {
        Store::open(&self.store_path).unwrap()
    }

    /// Stops the platform runtime and starts a new one on the same SQLite store (the broker
    /// and the gateway's MQTT link stay up): what survives is what the store restores.
    pub fn restart_platform(&mut self, cfg: PlatformConfig) {
        static RESTARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = RESTARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let e = env();
        let mut opts = PlatformOptions::new(self.store_path.clone());
        opts.core = cfg;
        opts.client_id = format!("platform-{}-r{n}", self.gw);
        opts.subscription = format!("/tenants/{}/sgw/v1/up/#", self.gw);
        let ca = Ca::open(&e.ca_dir).unwrap();
        let platform = Platform::start(ca, e.broker.clone(), None, opts).unwrap();
        self.handle = platform.handle();
        // The old runtime stops when dropped.
        self.platform = platform;
    }
}

/// Provisions `id` with the shared CA and starts a platform runtime for it alone.
pub fn fixture(id: &str, cfg: PlatformConfig, faults: FaultConfig) -> Fixture {
    fixture_with(id, cfg, faults, None)
}

/// As [`fixture`], with an HTTPS certificate endpoint the runtime publishes CRLs to.
pub async fn fixture_https(id: &str, cfg: PlatformConfig, faults: FaultConfig) -> Fixture {
    let e = env();
    let ca = Ca::open(&e.ca_dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = platform_sim::https::serve(
        listener,
        platform_sim::https::TlsMaterial::from_ca(&ca).unwrap(),
        platform_sim::https::Published::from_ca(&ca).unwrap(),
    )
    .await
    .unwrap();
    fixture_with(id, cfg, faults, Some(server))
}

fn fixture_with(
    id: &str,
    cfg: PlatformConfig,
    faults: FaultConfig,
    https: Option<platform_sim::https::HttpsServer>,
) -> Fixture {
    let e = env();
    let mut ca = Ca::open(&e.ca_dir).unwrap();
    let b = bundle(&mut ca, id, e.dir.path(), e.broker.addr().port());
    let ca = Ca::open(&e.ca_dir).unwrap();
    let store_path = e.dir.path().join(format!("platform-{id}.sqlite"));
    let mut opts = PlatformOptions::new(store_path.clone());
    opts.core = cfg;
    opts.faults = faults;
    opts.client_id = format!("platform-{id}");
    opts.subscription = format!("/tenants/{id}/sgw/v1/up/#");
    let platform = Platform::start(ca, e.broker.clone(), https, opts).unwrap();
    let handle = platform.handle();
    Fixture {
        platform,
        handle,
        store_path,
        bundle: b,
        gw: GatewayId::new(id).unwrap(),
    }
}
