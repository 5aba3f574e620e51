//! The gateway's world during a run: the simulator CA and MQTT broker (one per run), and per
//! case a fresh gateway identity — its provisioning bundle with the utility's side (masking key,
//! FTPS certificate), a platform with its own HTTPS endpoint and SQLite store subscribed to that
//! gateway, the wire log of every message the platform saw — and the gateway under test,
//! started from the bundle through its [`Target`].
//!
//! An already-running gateway ([`Running`]) has one world for the whole run instead, kept in a
//! directory ([`provision_world`], [`Suite::open_world`]): each case settles the gateway and
//! sees its own [`Window`] of it (docs/conformance.md, "An already-running gateway").

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use gateway::config::Config;
use gateway::protocol::ids::{Dataset, GatewayId};
use gateway::protocol::message::AnomalyKind;
use gateway::protocol::message::ProfileFormat;
use gateway::protocol::platform_side::PlatformConfig;
use gateway::store::CrashPoint;
use legacy_sim::push::{FtpTarget, FtpsTrust};
use platform_sim::broker::{self, BrokerSettings, MqttBroker, free_loopback_port};
use platform_sim::ca::Ca;
use platform_sim::ops::{AnomalyView, FaultConfig, GatewayView, OperatorBackend, OperatorCommand};
use platform_sim::platform::store::{RecordRow, Store};
use platform_sim::platform::{Platform, PlatformHandle, PlatformOptions, WireEvent, WireTap};
use platform_sim::provision::Bundle;

/// What one look of [`Ctx::poll`] found.
pub enum Look<T> {
    /// Done, with this.
    Done(T),
    /// Not yet: the failure to report if the wait ends now.
    Not(String),
}

/// The gateway under test, as the suite drives it.
#[async_trait]
pub trait Target: Send + Sync {
    /// A short description for reports.
    fn describe(&self) -> String;
    /// Starts the gateway from the bundle in `bundle`.
    async fn start(&mut self, bundle: &Path) -> Result<()>;
    /// Stops it cleanly (it sends `disconnect`).
    async fn stop(&mut self) -> Result<()>;
    /// Kills it at once (a process: SIGKILL; in process: [`InProcess`]'s abort); `Ok(false)`
    /// if this target cannot be killed.
    async fn kill(&mut self) -> Result<bool>;
    /// Whether the gateway is still running (a process target: it has not exited).
    async fn running(&mut self) -> bool;
    /// Arms an aimed crash: the gateway dies right after `point` as if killed there, which
    /// [`Self::running`] then reports (in process: the store stops after that commit and the
    /// gateway is killed when `running` next asks). `Ok(false)`: the target offers no crash
    /// points (a process or a vendor's gateway: the suite sees only its outside).
    async fn crash_at(&mut self, point: CrashPoint) -> Result<bool> {
        let _ = point;
        Ok(false)
    }
}

/// Our gateway in this process (`gateway::runtime::app`), on a tokio runtime of its own, so
/// that a kill can drop every task it and its libraries spawned.
#[derive(Default)]
pub struct InProcess {
    running: Option<(OwnRuntime, gateway::runtime::app::Running)>,
}

/// How long the threads of a stopped or killed in-process gateway may take to end.
const IN_PROCESS_END_WAIT: Duration = Duration::from_secs(20);

/// The in-process gateway's runtime. Dropped where blocking is not allowed (a case cut off by
/// its deadline), it is shut down in the background instead of panicking.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    /// Shuts the runtime down, waiting (blocking) at most [`IN_PROCESS_END_WAIT`] for its
    /// tasks to be dropped.
    fn end(mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(IN_PROCESS_END_WAIT);
        }
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

#[async_trait]
impl Target for InProcess {
    fn describe(&self) -> String {
        format!("in-process reference gateway {}", env!("CARGO_PKG_VERSION"))
    }

    async fn start(&mut self, bundle: &Path) -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sgw-in-process")
            .enable_all()
            .build()?;
        let opts = gateway::runtime::app::RunOptions {
            bundle: bundle.to_owned(),
            monitor: None,
        };
        let started = rt.spawn(async move { gateway::runtime::app::start(&opts).await });
        let rt = OwnRuntime(Some(rt));
        let r = started.await?.map_err(|e| anyhow!("{e}"))?;
        self.running = Some((rt, r));
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some((rt, r)) = self.running.take() {
            if let Some(h) = &rt.0 {
                let _ = h.spawn(r.shutdown()).await;
            }
            // What the libraries spawned (FTP sessions) goes with the runtime.
            tokio::task::spawn_blocking(move || rt.end()).await?;
        }
        Ok(())
    }

    /// Not SIGKILL, the closest one process gets: the store runs no job after the one running
    /// now, every task is dropped at its next await point (no `disconnect`, no snapshot, no FTP
    /// reply) ([`gateway::runtime::app::Running::crash`]).
    async fn kill(&mut self) -> Result<bool> {
        if let Some((rt, r)) = self.running.take() {
            let threads = r.crash();
            let ended = tokio::task::spawn_blocking(move || {
                rt.end();
                threads.join();
            });
            tokio::time::timeout(IN_PROCESS_END_WAIT * 2, ended)
                .await
                .map_err(|_| {
                    anyhow!(
                        "the killed in-process gateway's store thread still ran after {} s",
                        (IN_PROCESS_END_WAIT * 2).as_secs()
                    )
                })??;
        }
        Ok(true)
    }

    /// Also ends a gateway whose store stopped at an armed crash point ([`Self::crash_at`]), as
    /// [`Self::kill`] does.
    async fn running(&mut self) -> bool {
        if self.running.as_ref().is_some_and(|(_, r)| r.store_halted())
            && let Err(e) = self.kill().await
        {
            tracing::warn!(error = %e, "the crashed in-process gateway did not end");
        }
        self.running.is_some()
    }

    /// The store's crash points ([`gateway::runtime::app::Running::crash_at`]).
    async fn crash_at(&mut self, point: CrashPoint) -> Result<bool> {
        match &self.running {
            Some((_, r)) => {
                r.crash_at(point);
                Ok(true)
            }
            None => bail!("the in-process gateway is not running: no crash point to arm"),
        }
    }
}

/// A gateway already running, started by its operator from the bundle of a world directory
/// (`sgw-conformance provision`): the suite neither starts, stops nor kills it; the cases that
/// need that are not applicable ([`crate::case::Needs::own_gateway`]).
pub struct Running {
    world: PathBuf,
}

impl Running {
    /// The gateway of the world directory `world`.
    pub fn new(world: &Path) -> Self {
        Self {
            world: world.to_owned(),
        }
    }
}

#[async_trait]
impl Target for Running {
    fn describe(&self) -> String {
        format!(
            "already-running gateway {WORLD_GATEWAY} of world {}",
            self.world.display()
        )
    }

    async fn start(&mut self, _bundle: &Path) -> Result<()> {
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    async fn kill(&mut self) -> Result<bool> {
        Ok(false)
    }

    async fn running(&mut self) -> bool {
        true
    }
}

/// A gateway started as a process from a command template: `{bundle}` is replaced by the
/// bundle directory (e.g. `sgw run --bundle {bundle}`); run with `sh -c`.
pub struct Command {
    template: String,
    child: Option<tokio::process::Child>,
    log: PathBuf,
    /// The capability statement's `crashPoints` ([`crate::case::Capabilities::crash_points`]).
    crash_points: bool,
    /// The bundle it was last started from.
    bundle: Option<PathBuf>,
}

/// How long a process target has to acknowledge its crash point (`CRASH-AT.armed`).
const ARM_WITHIN: Duration = Duration::from_secs(5);

impl Command {
    /// A target from `template`, its standard error appended to `log`.
    pub fn new(template: &str, log: PathBuf) -> Self {
        Self {
            template: template.to_owned(),
            child: None,
            log,
            crash_points: false,
            bundle: None,
        }
    }

    /// The same, offering crash points if `yes` (the capability statement's `crashPoints`).
    pub fn with_crash_points(mut self, yes: bool) -> Self {
        self.crash_points = yes;
        self
    }
}

#[async_trait]
impl Target for Command {
    fn describe(&self) -> String {
        format!("command `{}`", self.template)
    }

    async fn start(&mut self, bundle: &Path) -> Result<()> {
        let cmd = self
            .template
            .replace("{bundle}", &bundle.display().to_string());
        // A crash point armed before a crash is not armed again by the restart.
        for f in [CrashPoint::ARM_FILE, CrashPoint::ARMED_FILE] {
            match std::fs::remove_file(bundle.join(f)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {f} from the bundle"));
                }
                _ => {}
            }
        }
        self.bundle = Some(bundle.to_owned());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting `{cmd}`"))?;
        self.child = Some(child);
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                let _ = tokio::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                c.kill().await?;
                bail!("did not stop within 10 s of SIGTERM (killed)");
            }
        }
        Ok(())
    }

    async fn kill(&mut self) -> Result<bool> {
        if let Some(mut c) = self.child.take() {
            c.kill().await?;
        }
        Ok(true)
    }

    async fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// With the capability `crashPoints`: writes the point's name to the bundle's `CRASH-AT`
    /// and waits for the target to rename it `CRASH-AT.armed` (at most [`ARM_WITHIN`]).
    async fn crash_at(&mut self, point: CrashPoint) -> Result<bool> {
        if !self.crash_points {
            return Ok(false);
        }
        let Some(bundle) = self.bundle.clone() else {
            bail!("the gateway was never started: no crash point to arm");
        };
        if !self.running().await {
            bail!("the gateway is not running: no crash point to arm");
        }
        let (file, armed) = (
            bundle.join(CrashPoint::ARM_FILE),
            bundle.join(CrashPoint::ARMED_FILE),
        );
        let part = bundle.join(format!("{}.part", CrashPoint::ARM_FILE));
        std::fs::write(&part, point.name())?;
        std::fs::rename(&part, &file)?;
        let deadline = tokio::time::Instant::now() + ARM_WITHIN;
        while !armed.exists() {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the target did not arm its crash point {} within {} s: {} was not renamed \
                     {} (the capability statement says it offers crash points, crashPoints)",
                    point.name(),
                    ARM_WITHIN.as_secs(),
                    CrashPoint::ARM_FILE,
                    CrashPoint::ARMED_FILE
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(true)
    }
}

/// What one run shares: the CA and the broker; with an already-running gateway
/// ([`Suite::open_world`]) also its one platform.
pub struct Suite {
    /// Where everything of the run lives.
    pub dir: tempfile::TempDir,
    ca_dir: PathBuf,
    broker: MqttBroker,
    next: Mutex<u32>,
    shared: Option<Shared>,
    live: Arc<AtomicUsize>,
}

/// One live case world of a run: counted while it exists, so that a case which changes what the
/// run shares can see that no other case plays beside it ([`Ctx::only_alone`]).
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }

    fn others(&self) -> usize {
        self.0.load(Ordering::SeqCst).saturating_sub(1)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The world file of an already-running gateway (`world.json` in the directory
/// `sgw-conformance provision` wrote; owner-only, it holds the FTP accounts' passwords).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorldFile {
    /// The gateway's ID.
    pub gateway: String,
    /// The broker's loopback port the gateway connects to.
    pub broker_port: u16,
    /// The HTTPS certificate endpoint's loopback port.
    pub https_port: u16,
    /// The gateway's FTP port.
    pub ftp_port: u16,
    /// The FTPS server certificate (PEM), relative to the world directory: the legacy
    /// systems' trust anchor.
    pub ftp_ca: PathBuf,
    /// FTP user → password (the legacy systems' accounts).
    pub ftp_passwords: std::collections::BTreeMap<String, String>,
}

/// The world file's name in a world directory.
pub const WORLD_FILE: &str = "world.json";

/// The gateway of a world directory is provisioned as this ID.
pub const WORLD_GATEWAY: &str = "GWR0001";

/// Writes a world for an already-running gateway into `dir` (which must not hold one): a CA
/// (`ca/`), the gateway's bundle (`bundle/`, as every case's bundle: the suite's provisioning),
/// fixed loopback ports for the broker and the HTTPS endpoint, and [`WORLD_FILE`]. The gateway
/// is then started from `bundle/` and left running; `run --target running --world DIR` plays
/// its world (docs/conformance.md, "An already-running gateway").
pub fn provision_world(dir: &Path) -> Result<WorldFile> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if dir.join(WORLD_FILE).exists() {
        bail!("{} already holds a world", dir.display());
    }
    platform_sim::install_crypto_provider();
    std::fs::create_dir_all(dir)?;
    let mut ca = Ca::create(&dir.join("ca"))?;
    let gw = GatewayId::new(WORLD_GATEWAY).map_err(|e| anyhow!("{e}"))?;
    // Each port is held while the next is chosen, so that the three differ.
    let hold = |p: u16| std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, p));
    let broker_port = free_loopback_port()?;
    let held_broker = hold(broker_port)?;
    let https_port = free_loopback_port()?;
    let held_https = hold(https_port)?;
    let local = platform_sim::demo::local_gateway(
        &mut ca,
        &gw,
        &dir.join("bundle"),
        broker_port,
        &format!("https://localhost:{https_port}"),
    )?;
    drop((held_broker, held_https));
    suite_provisioning(&local.bundle.dir)?;
    let world = WorldFile {
        gateway: gw.to_string(),
        broker_port,
        https_port,
        ftp_port: local.ftp_port,
        ftp_ca: local
            .ftp_ca
            .strip_prefix(dir)
            .unwrap_or(&local.ftp_ca)
            .to_owned(),
        ftp_passwords: local.bundle.ftp_passwords.clone(),
    };
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(dir.join(WORLD_FILE))?;
    f.write_all(serde_json::to_string_pretty(&world)?.as_bytes())?;
    Ok(world)
}

/// The suite's provisioning on top of the simulator's: 1 MiB file limit, so the oversized
/// case stays small. The configuration written.
fn suite_provisioning(bundle: &Path) -> Result<Config> {
    let mut cfg = Config::load(bundle)?;
    cfg.ftp.max_file_bytes = MAX_FILE_BYTES;
    std::fs::write(bundle.join("gateway.toml"), cfg.to_toml()?)?;
    Ok(cfg)
}

/// `ackTimeoutSec` the platform of every case sends (DES-MSG-CONN-2): how long the gateway waits
/// for an `ack` or `data.ack` before it sends again.
pub const ACK_TIMEOUT_SEC: u32 = 2;

/// The `ackTimeoutSec` of a case's platform with [`crate::case::Needs::quick_acks`].
pub const QUICK_ACK_TIMEOUT_SEC: u32 = 1;

/// How long the platform of every case waits before it asks for a hole (DES-MSG-RS-4's
/// `gap_grace_sec`): short, so that held and lost records come back within a case.
pub const GAP_GRACE_SEC: i64 = 1;

/// The `gap_grace_sec` of a case's platform with [`crate::case::Needs::patient_gaps`]: over
/// twice [`ACK_TIMEOUT_SEC`] (DES-MSG-RS-4).
pub const PATIENT_GAP_GRACE_SEC: i64 = 5;

/// The timers of a case's platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// `ackTimeoutSec` it sends (DES-MSG-CONN-2).
    pub ack_timeout_sec: u32,
    /// How long a hole waits before it is asked for (DES-MSG-RS-4).
    pub gap_grace_sec: i64,
}

impl Timers {
    /// The run's.
    pub const RUN: Timers = Timers {
        ack_timeout_sec: ACK_TIMEOUT_SEC,
        gap_grace_sec: GAP_GRACE_SEC,
    };
}

/// The platform every case sees: short timers (sent to the gateway, DES-MSG-CONN-3), the
/// faults seeded by `seed` (replayable), every message it sees appended to `wire`.
fn platform_options(
    gw: &GatewayId,
    store: PathBuf,
    seed: u64,
    wire: &WireLog,
    timers: Timers,
) -> PlatformOptions {
    let mut opts = PlatformOptions::new(store);
    opts.core = PlatformConfig {
        monitor_interval_sec: 2,
        ack_timeout_sec: timers.ack_timeout_sec,
        command_retry_sec: 2,
        gap_grace_sec: timers.gap_grace_sec,
        ..PlatformConfig::default()
    };
    opts.client_id = format!("platform-{gw}");
    opts.fault_seed = Some(seed);
    opts.subscription = format!("/tenants/{gw}/sgw/v1/up/#");
    let tap = wire.clone();
    opts.wire = Some(WireTap(Arc::new(move |e| {
        let at = std::time::Instant::now();
        if let Ok(mut w) = tap.lock() {
            w.push((e, at));
        }
    })));
    opts
}

/// Every message the platform saw, with when the suite's tap saw it: an uplink as it arrived,
/// a downlink as the platform sealed it (before it went out).
type WireLog = Arc<Mutex<Vec<(WireEvent, std::time::Instant)>>>;

/// The world of an already-running gateway, one for the whole run.
struct Shared {
    gw: GatewayId,
    bundle: Bundle,
    cfg: Config,
    ftp_port: u16,
    ftp_ca: PathBuf,
    platform: Arc<Platform>,
    store_path: PathBuf,
    wire: WireLog,
}

impl Suite {
    /// A new CA and broker on loopback.
    pub fn new() -> Result<Self> {
        platform_sim::install_crypto_provider();
        let dir = tempfile::tempdir()?;
        let ca_dir = dir.path().join("ca");
        let ca = Ca::create(&ca_dir)?;
        let broker = broker::start(&BrokerSettings::from_ca(&ca, free_loopback_port()?))?;
        Ok(Suite {
            dir,
            ca_dir,
            broker,
            next: Mutex::new(0),
            live: Arc::default(),
            shared: None,
        })
    }

    /// The world of an already-running gateway, from the directory [`provision_world`] wrote:
    /// its CA, the broker and the HTTPS endpoint on the ports its bundle names, and one
    /// platform for the whole run whose store (`platform.sqlite`) stays in the directory, so
    /// that a later run continues where this one ends. `seed` seeds the platform's faults.
    pub async fn open_world(world: &Path, seed: u64) -> Result<Self> {
        platform_sim::install_crypto_provider();
        let file = world.join(WORLD_FILE);
        let wf: WorldFile =
            serde_json::from_str(&std::fs::read_to_string(&file).with_context(|| {
                format!("{}: run `sgw-conformance provision` first", file.display())
            })?)
            .with_context(|| file.display().to_string())?;
        let gw = GatewayId::new(wf.gateway.clone()).map_err(|e| anyhow!("{e}"))?;
        let ca_dir = world.join("ca");
        let ca = Ca::open(&ca_dir)?;
        let broker = broker::start(&BrokerSettings::from_ca(&ca, wf.broker_port))
            .with_context(|| format!("broker on port {}", wf.broker_port))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", wf.https_port))
            .await
            .with_context(|| format!("HTTPS endpoint on port {}", wf.https_port))?;
        let https = platform_sim::https::serve(
            listener,
            platform_sim::https::TlsMaterial::from_ca(&ca)?,
            platform_sim::https::Published::from_ca(&ca)?,
        )
        .await?;
        let mut bundle = Bundle::load(&world.join("bundle"))?;
        bundle.ftp_passwords = wf.ftp_passwords.clone();
        let cfg = bundle.config.clone();
        let wire: WireLog = Arc::default();
        let store_path = world.join("platform.sqlite");
        let opts = platform_options(&gw, store_path.clone(), seed, &wire, Timers::RUN);
        let platform = Platform::start(Ca::open(&ca_dir)?, broker.clone(), Some(https), opts)?;
        Ok(Suite {
            dir: tempfile::tempdir()?,
            ca_dir,
            broker,
            next: Mutex::new(0),
            live: Arc::default(),
            shared: Some(Shared {
                ftp_ca: world.join(&wf.ftp_ca),
                gw,
                bundle,
                cfg,
                ftp_port: wf.ftp_port,
                platform: Arc::new(platform),
                store_path,
                wire,
            }),
        })
    }

    /// Waits until the already-running gateway has opened its session with the run's platform,
    /// at most `t`: the broker came up with the run, and the gateway reconnects after its
    /// DES-MQTT-8 back-off (up to 300 s). Nothing to wait for without one.
    pub async fn wait_for_gateway(&self, t: Duration) -> Result<()> {
        let Some(sh) = &self.shared else {
            return Ok(());
        };
        let handle = sh.platform.handle();
        Ctx::poll(t, || {
            Ok(match handle.view(&sh.gw).connected {
                true => Look::Done(()),
                false => Look::Not(format!(
                    "the running gateway {} opened no session within {} s (is it running from \
                     the world's bundle?)",
                    sh.gw,
                    t.as_secs()
                )),
            })
        })
        .await
    }

    /// A fresh world for one case: gateway `GWC{n}` provisioned, the utility's side made, a
    /// platform (with `faults`) listening to it. The gateway is not started. With an
    /// already-running gateway: its world, to be settled ([`Ctx::settle`]) before the case.
    pub async fn world(&self, case_id: &str, seed: u64) -> Result<Ctx> {
        self.world_with(case_id, seed, Timers::RUN).await
    }

    /// [`Suite::world`] whose platform has `timers` (a world of its own; an already-running
    /// gateway's one platform takes the gap grace, and keeps the `ackTimeoutSec` it sent when
    /// the gateway's session began).
    pub async fn world_with(&self, case_id: &str, seed: u64, timers: Timers) -> Result<Ctx> {
        if let Some(sh) = &self.shared {
            // The run's one platform waits for holes as a world of the case's own would
            // (cases against a running gateway play one at a time).
            sh.platform.handle().set_gap_grace_sec(timers.gap_grace_sec);
            let ctx = Ctx {
                wipe: None,
                history: None,
                alone: false,
                live: Live::new(&self.live),
                platform_cert_unusable: false,
                broker: self.broker.clone(),
                case_id: case_id.to_owned(),
                seed,
                gw: sh.gw.clone(),
                bundle: sh.bundle.clone(),
                cfg: sh.cfg.clone(),
                ftp_port: sh.ftp_port,
                ftp_ca: sh.ftp_ca.clone(),
                handle: sh.platform.handle(),
                platform: Some(sh.platform.clone()),
                store_path: sh.store_path.clone(),
                wire: sh.wire.clone(),
                notes: Vec::new(),
                target: None,
                window: Some(Window::default()),
            };
            return Ok(ctx);
        }
        let n = {
            let mut n = self.next.lock().map_err(|_| anyhow!("poisoned"))?;
            *n += 1;
            *n
        };
        let gw = GatewayId::new(format!("GWC{n:04}")).map_err(|e| anyhow!("{e}"))?;
        let base = self.dir.path().join(format!("case-{n:04}"));
        std::fs::create_dir_all(&base)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let https_url = format!("https://localhost:{}", listener.local_addr()?.port());
        let local = platform_sim::demo::local_gateway(
            &mut Ca::open(&self.ca_dir)?,
            &gw,
            &base.join("bundle"),
            self.broker.addr().port(),
            &https_url,
        )?;
        // The endpoint serves the CA's material as it is after the bundle was written: the
        // bundle's CRL is never newer than the served one. (Another case may re-sign the run's
        // CRL at any time, CRL-ROLLBACK; a bundle newer than its endpoint made the gateway's
        // start-up fetch find the served CRL not newer than its own — a `certificate` anomaly
        // no case asked for, which a case waiting for one took as its own.)
        let ca = Ca::open(&self.ca_dir)?;
        let https = platform_sim::https::serve(
            listener,
            platform_sim::https::TlsMaterial::from_ca(&ca)?,
            platform_sim::https::Published::from_ca(&ca)?,
        )
        .await?;
        let (bundle, ftp_port, ftp_ca) = (local.bundle, local.ftp_port, local.ftp_ca);
        let cfg = suite_provisioning(&bundle.dir)?;
        let wire: WireLog = Arc::default();
        let store_path = base.join("platform.sqlite");
        // The case's seed decides which messages the percentage faults hit (replayable).
        let opts = platform_options(&gw, store_path.clone(), seed, &wire, timers);
        let platform = Platform::start(
            Ca::open(&self.ca_dir)?,
            self.broker.clone(),
            Some(https),
            opts,
        )?;
        let handle = platform.handle();
        Ok(Ctx {
            wipe: None,
            history: None,
            alone: false,
            live: Live::new(&self.live),
            platform_cert_unusable: false,
            broker: self.broker.clone(),
            case_id: case_id.to_owned(),
            seed,
            gw,
            bundle,
            cfg,
            ftp_port,
            ftp_ca,
            platform: Some(Arc::new(platform)),
            handle,
            store_path,
            wire,
            notes: Vec::new(),
            target: None,
            window: None,
        })
    }
}

/// The platform accepted a `connect`: a session begins.
pub fn is_session(e: &WireEvent) -> bool {
    e.message_type == "connect.result" && e.code.as_deref() == Some("OK")
}

/// Where a case's view of a shared world begins (an already-running gateway).
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// The gateway's `lastSeq` when the case began: the case's seq `n` is `base + n`.
    pub base: u64,
    /// The first wire event of the case.
    pub wire_from: usize,
    /// Anomalies recorded from this time on are the case's.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// One case's world, handed to the case function.
pub struct Ctx {
    /// The case.
    pub case_id: String,
    /// The case's seed (replays it).
    pub seed: u64,
    /// The gateway under test's ID in this case.
    pub gw: GatewayId,
    /// Its bundle.
    pub bundle: Bundle,
    /// Its configuration as provisioned.
    pub cfg: Config,
    /// Its FTP port.
    pub ftp_port: u16,
    /// The CA file of its FTPS certificate.
    pub ftp_ca: PathBuf,
    platform: Option<Arc<Platform>>,
    /// The platform's operator handle.
    pub handle: PlatformHandle,
    store_path: PathBuf,
    wire: WireLog,
    /// What the case noted along the way (reports).
    pub notes: Vec<String>,
    /// The gateway under test (set by the runner).
    pub target: Option<Box<dyn Target>>,
    broker: MqttBroker,
    /// How the gateway under test is disposed of (SM-DISPOSE), if it can be.
    pub wipe: Option<Wipe>,
    /// How the gateway's access history (DES-AUDIT-1) is read, if it can be.
    pub history: Option<History>,
    /// The case has the run to itself ([`crate::case::Needs::alone`]): only then may it change
    /// the platform's data-protection certificate, which every case of the run shares.
    pub(crate) alone: bool,
    live: Live,
    /// The platform's data-protection certificate was revoked by this case, or replaced by one
    /// about to expire, and not yet replaced: [`Ctx::finish`] replaces it, since the CA is
    /// shared by the run's cases.
    platform_cert_unusable: bool,
    /// With an already-running gateway: where this case's part of the shared world begins.
    window: Option<Window>,
}

/// How a gateway is disposed of (SM-DISPOSE).
#[derive(Debug, Clone)]
pub enum Wipe {
    /// `gateway::dispose` on the bundle (the reference gateway in process).
    InProcess,
    /// A command template with `{bundle}`, run with `sh -c`.
    Command(String),
}

/// How the gateway's access history (DES-AUDIT-1) is read.
#[derive(Debug, Clone)]
pub enum History {
    /// The reference gateway's `{state_dir}/audit.jsonl`.
    Reference,
    /// A command template with `{bundle}` and `{state_dir}`, run with `sh -c`, printing it.
    Command(String),
}

/// `[ftp].max_file_bytes` of every bundle the suite provisions.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// How long a run waits for an already-running gateway's session: its longest DES-MQTT-8
/// back-off (300 s) and a margin.
pub const SESSION_WAIT: Duration = Duration::from_secs(310);

/// How long a case waits for one expected event (the case's own deadline is longer).
pub const WAIT: Duration = Duration::from_secs(20);

impl Ctx {
    /// Notes an observation for the report.
    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    /// Changes the gateway's `gateway.toml` before it starts, as the utility would (DES-PROV-2;
    /// the suite's provisioning, so a vendor gateway reads the same file).
    pub fn reconfigure(&mut self, change: impl FnOnce(&mut Config)) -> Result<()> {
        change(&mut self.cfg);
        std::fs::write(self.bundle.dir.join("gateway.toml"), self.cfg.to_toml()?)?;
        Ok(())
    }

    /// Every message the platform saw so far in this case.
    pub fn wire(&self) -> Vec<WireEvent> {
        self.wire_timed().into_iter().map(|(e, _)| e).collect()
    }

    /// [`Ctx::wire`] with when the suite saw each message: an uplink as it arrived at the
    /// platform, a downlink as the platform sealed it (so the time from a downlink to the
    /// gateway's next uplink is never shorter than the gateway's own wait).
    pub fn wire_timed(&self) -> Vec<(WireEvent, std::time::Instant)> {
        let from = self.window.as_ref().map_or(0, |w| w.wire_from);
        self.wire
            .lock()
            .map(|w| w.get(from..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// When the gateway's latest session began (the suite saw an OK `connect.result` sent),
    /// searched in the whole run's wire log, not only the case's part of a shared world.
    pub fn session_began(&self) -> Option<std::time::Instant> {
        self.wire.lock().ok().and_then(|w| {
            w.iter()
                .rev()
                .find(|(e, _)| is_session(e))
                .map(|(_, at)| *at)
        })
    }

    /// The platform's view of the gateway (its anomalies: those of this case).
    pub fn view(&self) -> GatewayView {
        let mut v = self.handle.view(&self.gw);
        if let Some(since) = self.window.as_ref().and_then(|w| w.since) {
            v.anomalies.retain(|a| {
                chrono::DateTime::parse_from_rfc3339(&a.at).is_ok_and(|at| at >= since)
            });
        }
        v
    }

    /// The seq of the case's `n`th record: `n` for a gateway of the case's own, the running
    /// gateway's `lastSeq` at the case's start plus `n` otherwise.
    pub fn seq(&self, n: u64) -> u64 {
        self.window.as_ref().map_or(0, |w| w.base) + n
    }

    /// Whether the case runs in a shared world (an already-running gateway) and must
    /// [`Ctx::settle`] first.
    pub fn shared(&self) -> bool {
        self.window.is_some()
    }

    /// Brings an already-running gateway to where every case starts: the platform's faults
    /// off and every dataset registered; sending started until nothing is unacknowledged
    /// (what earlier cases left is delivered), then stopped; the platform holds every seq
    /// the gateway assigned. The case's window (seqs, wire log, anomalies) begins after it.
    pub async fn settle(&mut self) -> Result<()> {
        self.faults(FaultConfig::default())?;
        self.handle.set_registered_datasets(&self.gw, None);
        self.window = Some(Window::default());
        self.wait_view("the running gateway's session", WAIT, |v| v.connected)
            .await?;
        let from = self.wire.lock().map_or(0, |w| w.len());
        self.window = Some(Window {
            wire_from: from,
            ..Window::default()
        });
        // The answers to the settling commands themselves (a result of an earlier case's
        // command may still be sent again, DES-MSG-PS-5).
        let start = self.sent(OperatorCommand::Start {
            datasets: vec![],
            interval_sec: 1,
            format: ProfileFormat::Json,
        })?;
        self.wait_wire("periodic.start.result OK", WAIT, |e| {
            e.in_reply_to.as_deref() == Some(start.as_str()) && e.code.as_deref() == Some("OK")
        })
        .await?;
        // A status sent after the start was answered, with nothing unacknowledged.
        Self::poll(WAIT, || {
            let wire = self.wire();
            let answered = wire
                .iter()
                .position(|e| e.in_reply_to.as_deref() == Some(start.as_str()))
                .unwrap_or(usize::MAX);
            let fresh = wire
                .iter()
                .skip(answered.saturating_add(1))
                .any(|e| e.message_type == "monitor.status");
            let v = self.view();
            Ok(match v.last_status {
                Some(s) if fresh && s.storage.unacked == 0 && s.last_seq == v.highest_seq => {
                    Look::Done(())
                }
                s => Look::Not(format!(
                    "what earlier cases left not delivered within {} s: platform holds up to \
                     {}, last status {s:?}",
                    WAIT.as_secs(),
                    v.highest_seq
                )),
            })
        })
        .await?;
        let stop = self.sent(OperatorCommand::Stop)?;
        self.wait_wire("periodic.stop.result OK", WAIT, |e| {
            e.in_reply_to.as_deref() == Some(stop.as_str()) && e.code.as_deref() == Some("OK")
        })
        .await?;
        // The case's faults are drawn from its own seed, as in a world of its own: a replay
        // of the case alone hits the same messages as it did in the run.
        self.handle.reseed_faults(self.seed);
        let base = self.view().highest_seq;
        self.window = Some(Window {
            base,
            wire_from: self.wire.lock().map_or(0, |w| w.len()),
            since: Some(chrono::Utc::now()),
        });
        self.note(format!(
            "the running gateway settled: lastSeq {base}, sending stopped, the platform's \
             faults drawn from the case's seed {}",
            self.seed
        ));
        Ok(())
    }

    /// Connections the certificate endpoint closed unanswered while unreachable (fault
    /// `https_unreachable`).
    pub fn https_closed(&self) -> usize {
        self.platform
            .as_ref()
            .and_then(|p| p.https())
            .map_or(0, |h| h.closed_connections())
            .try_into()
            .unwrap_or(usize::MAX)
    }

    /// (client, path) of every HTTPS request the platform's certificate endpoint served.
    pub fn https_requests(&self) -> Vec<(String, String)> {
        self.platform
            .as_ref()
            .and_then(|p| p.https())
            .map(|h| h.requests())
            .unwrap_or_default()
    }

    /// Records the platform stored for the gateway in this case (seq above [`Ctx::seq`]`(0)`).
    pub fn stored(&self) -> Result<Vec<RecordRow>> {
        let base = self.seq(0);
        let mut r = Store::open(&self.store_path)?.records(&self.gw)?;
        r.retain(|r| r.seq > base);
        Ok(r)
    }

    /// Starts the gateway under test.
    pub async fn start_gateway(&mut self) -> Result<()> {
        let dir = self.bundle.dir.clone();
        let t = self.target.as_mut().context("no target")?;
        t.start(&dir).await
    }

    /// Stops it cleanly.
    pub async fn stop_gateway(&mut self) -> Result<()> {
        match self.target.as_mut() {
            Some(t) => t.stop().await,
            None => Ok(()),
        }
    }

    /// The MQTT CONNECT packets the gateway under test sent through the broker's TLS front
    /// (its certificate's tenant), oldest first.
    pub fn mqtt_connects(&self) -> Vec<platform_sim::broker::ConnectFacts> {
        self.broker
            .connects()
            .into_iter()
            .filter(|f| f.tenant == self.gw.as_str())
            .collect()
    }

    /// [`Self::mqtt_connects`] with the time the broker's front read each CONNECT.
    pub fn mqtt_connects_timed(
        &self,
    ) -> Vec<(platform_sim::broker::ConnectFacts, std::time::Instant)> {
        self.broker
            .connects_timed()
            .into_iter()
            .filter(|(f, _)| f.tenant == self.gw.as_str())
            .collect()
    }

    /// The PUBLISH packets the gateway under test sent through the broker's TLS front, by QoS
    /// and retain flag (all of the run for its tenant).
    pub fn mqtt_publishes(&self) -> platform_sim::broker::PublishCounts {
        self.broker.publishes(self.gw.as_str())
    }

    /// Cuts the gateway's MQTT connection at the broker (network loss as the gateway sees it:
    /// its client ID is taken over, DES-MQTT-2).
    pub fn cut_link(&self) -> Result<()> {
        self.broker.kick(&self.gw).map_err(|e| anyhow!("kick: {e}"))
    }

    /// The broker restarts as the gateway under test sees it: its MQTT connection is cut and
    /// its next `refusals` connections are closed unanswered once their CONNECT is read
    /// ([`platform_sim::broker::MqttBroker::restart_for`]); the other cases' gateways are not
    /// touched. Returns when the cut was made.
    pub fn restart_broker(&self, refusals: u32) -> Result<std::time::Instant> {
        let at = std::time::Instant::now();
        self.broker
            .restart_for(&self.gw, refusals)
            .map_err(|e| anyhow!("broker restart: {e}"))?;
        Ok(at)
    }

    /// The broker's TLS front closes the next `n` MQTT connections of the gateway under test
    /// unanswered once their CONNECT is read (a broker restarting as the gateway starts).
    pub fn refuse_connections(&self, n: u32) {
        self.broker.refuse_connections(&self.gw, n);
    }

    /// Disposes of the gateway (it must be stopped): `Ok(false)` if this target cannot be.
    pub async fn wipe_gateway(&mut self) -> Result<bool> {
        let dir = self.bundle.dir.clone();
        match self.wipe.clone() {
            None => Ok(false),
            Some(Wipe::InProcess) => {
                let cfg = Config::load(&dir)?;
                let plan = gateway::dispose::plan(&cfg, &dir);
                gateway::dispose::wipe(&plan)?;
                Ok(true)
            }
            Some(Wipe::Command(t)) => {
                let cmd = t.replace("{bundle}", &dir.display().to_string());
                let out = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .output()
                    .await?;
                if !out.status.success() {
                    bail!(
                        "`{cmd}` failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Ok(true)
            }
        }
    }

    /// The gateway's access history (DES-AUDIT-1) as text: `Ok(None)` if this target's
    /// cannot be read.
    pub async fn access_history(&self) -> Result<Option<String>> {
        let state_dir = self.cfg.gateway.state_dir.path().to_owned();
        match self.history.clone() {
            None => Ok(None),
            Some(History::Reference) => {
                let path = state_dir.join("audit.jsonl");
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("the access history {}", path.display()))?;
                Ok(Some(text))
            }
            Some(History::Command(t)) => {
                let cmd = t
                    .replace("{bundle}", &self.bundle.dir.display().to_string())
                    .replace("{state_dir}", &state_dir.display().to_string());
                let out = tokio::time::timeout(
                    WAIT,
                    tokio::process::Command::new("sh")
                        .arg("-c")
                        .arg(&cmd)
                        .kill_on_drop(true)
                        .output(),
                )
                .await
                .map_err(|_| anyhow!("`{cmd}` did not end within {WAIT:?}"))??;
                if !out.status.success() {
                    bail!(
                        "`{cmd}` failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
            }
        }
    }

    /// Whether the gateway under test is running.
    pub async fn gateway_running(&mut self) -> bool {
        match self.target.as_mut() {
            Some(t) => t.running().await,
            None => false,
        }
    }

    /// Arms an aimed crash at `point` ([`Target::crash_at`]); false when the target offers no
    /// crash points.
    pub async fn crash_gateway_at(&mut self, point: CrashPoint) -> Result<bool> {
        match self.target.as_mut() {
            Some(t) => t.crash_at(point).await,
            None => Ok(false),
        }
    }

    /// Waits until the gateway has died at the crash point armed by [`Self::crash_gateway_at`]
    /// (at most `within`; the failure names `what` should have got it there).
    pub async fn wait_gateway_crashed(&mut self, within: Duration, what: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        while self.gateway_running().await {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the gateway did not reach its armed crash point ({what}) within {} s",
                    within.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Kills it ([`Target::kill`]); false when the target cannot be killed.
    pub async fn kill_gateway(&mut self) -> Result<bool> {
        match self.target.as_mut() {
            Some(t) => t.kill().await,
            None => Ok(false),
        }
    }

    /// Rotates the platform's data-protection certificate: the CA issues a new one, the
    /// certificate endpoint serves it, commands and acknowledgements are signed with it from
    /// now on (what the platform sealed before is still opened with the old key). What was done.
    pub fn rotate_platform_certificate(&mut self) -> Result<String> {
        self.only_alone()?;
        self.platform_cert_unusable = false;
        self.handle
            .rotate_platform_certificate()
            .map_err(|e| anyhow!("rotate: {e:?}"))
    }

    /// Replaces the platform's data-protection certificate by one that expires `valid_for`
    /// from now (the platform goes on signing with it after that). What was done.
    pub fn rotate_platform_certificate_expiring(&mut self, valid_for: Duration) -> Result<String> {
        self.only_alone()?;
        self.platform_cert_unusable = true;
        self.handle
            .rotate_platform_certificate_expiring(valid_for)
            .map_err(|e| anyhow!("rotate: {e:?}"))
    }

    /// Revokes the platform's data-protection certificate without a replacement (the platform
    /// goes on signing with it). What was done.
    pub fn revoke_platform_certificate(&mut self) -> Result<String> {
        self.only_alone()?;
        self.platform_cert_unusable = true;
        self.handle
            .revoke_platform_certificate()
            .map_err(|e| anyhow!("revoke: {e:?}"))
    }

    /// The run's CA signs a new CRL (next number, same revocations), which the case's HTTPS
    /// endpoint then serves. The CA is the run's, but a re-signed CRL changes no case's
    /// outcome (every gateway that fetches it installs it: it is newer and revokes nothing
    /// new), so no `Needs::alone`. What was done.
    pub fn resign_crl(&mut self) -> Result<String> {
        self.handle
            .resign_crl()
            .map_err(|e| anyhow!("re-sign the CRL: {e:?}"))
    }

    /// Refuses a change of what the run's cases share unless the case has the run to itself.
    fn only_alone(&self) -> Result<()> {
        if !self.alone && self.window.is_none() {
            bail!(
                "the case changes the platform's certificate, which the run's cases share, \
                 but does not declare Needs::alone (a suite defect)"
            );
        }
        let others = self.live.others();
        if others > 0 {
            bail!(
                "the case changes the platform's certificate, which the run's cases share, \
                 while {others} other case(s) play beside it (a suite defect)"
            );
        }
        Ok(())
    }

    /// How many times the gateway fetched the CRL so far.
    pub fn crl_fetches(&self) -> usize {
        self.https_requests()
            .iter()
            .filter(|(_, p)| p.ends_with("/crl.pem") || p.ends_with("/crl.der"))
            .count()
    }

    /// Waits until the gateway has fetched the CRL more than `after` times
    /// ([`Ctx::crl_fetches`]); a failure names `what`.
    pub async fn wait_crl_fetches(&self, after: usize, what: &str) -> Result<()> {
        self.wait_count(what, after + 1, Ctx::crl_fetches)
            .await
            .map(drop)
    }

    /// Waits, at most [`WAIT`], until `count` of what the suite observed reaches `at_least`,
    /// and returns the count; a failure names `what` and the last count.
    pub async fn wait_count(
        &self,
        what: &str,
        at_least: usize,
        count: impl Fn(&Self) -> usize,
    ) -> Result<usize> {
        Self::poll(WAIT, || {
            let n = count(self);
            Ok(match n >= at_least {
                true => Look::Done(n),
                false => Look::Not(format!(
                    "{what}: not within {} s ({n} of {at_least})",
                    WAIT.as_secs()
                )),
            })
        })
        .await
    }

    /// How many messages of the wire log `pred` selects.
    pub fn wire_count(&self, pred: impl Fn(&WireEvent) -> bool) -> usize {
        self.wire().iter().filter(|e| pred(e)).count()
    }

    /// How many times the gateway fetched `platform.pem` so far.
    pub fn platform_pem_fetches(&self) -> usize {
        self.https_requests()
            .iter()
            .filter(|(_, p)| p.ends_with("/platform.pem"))
            .count()
    }

    /// Sets the platform's faults.
    pub fn faults(&self, f: FaultConfig) -> Result<()> {
        self.handle
            .set_faults(f)
            .map_err(|e| anyhow!("faults: {e:?}"))
    }

    /// Looks every 50 ms, for at most `t`, until `look` is done. An error of `look` (a wrong
    /// observation) ends the wait at once; when `t` has passed, the wait fails with what the
    /// last look said ([`Look::Not`]).
    pub async fn poll<T>(t: Duration, mut look: impl FnMut() -> Result<Look<T>>) -> Result<T> {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            match look()? {
                Look::Done(v) => return Ok(v),
                Look::Not(seen) if tokio::time::Instant::now() > deadline => bail!("{seen}"),
                Look::Not(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Waits until `cond` holds of the platform's view, at most `t`.
    pub async fn wait_view(
        &self,
        what: &str,
        t: Duration,
        cond: impl Fn(&GatewayView) -> bool,
    ) -> Result<GatewayView> {
        Self::poll(t, || {
            let v = self.view();
            Ok(match cond(&v) {
                true => Look::Done(v),
                false => Look::Not(format!("{what}: not within {} s", t.as_secs())),
            })
        })
        .await
    }

    /// Waits until the gateway has reported an anomaly of `kind` that also satisfies `also`; a
    /// failure lists the gateway's anomalies.
    pub async fn wait_gateway_anomaly(
        &self,
        what: &str,
        kind: AnomalyKind,
        also: impl Fn(&AnomalyView) -> bool,
    ) -> Result<GatewayView> {
        self.wait_gateway_anomaly_after(what, 0, kind, also).await
    }

    /// As [`Ctx::wait_gateway_anomaly`], among the gateway's anomalies after its first `after`
    /// (the length of [`Ctx::gateway_anomalies`] before the case's step).
    pub async fn wait_gateway_anomaly_after(
        &self,
        what: &str,
        after: usize,
        kind: AnomalyKind,
        also: impl Fn(&AnomalyView) -> bool,
    ) -> Result<GatewayView> {
        self.wait_view(what, WAIT, |v| {
            v.anomalies
                .iter()
                .filter(|a| a.source == "gateway")
                .skip(after)
                .any(|a| a.kind == kind && also(a))
        })
        .await
        .map_err(|e| {
            anyhow!(
                "{e}; the gateway's anomalies: {:?}",
                self.gateway_anomalies()
            )
        })
    }

    /// The anomalies the gateway reported in this case, in order, as `kind rule detail`.
    pub fn gateway_anomalies(&self) -> Vec<String> {
        self.view()
            .anomalies
            .iter()
            .filter(|a| a.source == "gateway")
            .map(|a| format!("{:?} {} {}", a.kind, a.rule, a.detail))
            .collect()
    }

    /// Waits until the platform holds records up to the case's `n`th ([`Ctx::seq`]) and the
    /// gateway reports it as `lastSeq` with nothing unacknowledged; a failure names the last
    /// status.
    pub async fn wait_all_acknowledged(&self, what: &str, n: u64) -> Result<GatewayView> {
        let n = self.seq(n);
        self.wait_view(what, WAIT, |v| {
            v.highest_seq == n
                && v.last_status
                    .as_ref()
                    .is_some_and(|s| s.last_seq == n && s.storage.unacked == 0)
        })
        .await
        .map_err(|e| anyhow!("{e}; last status {:?}", self.view().last_status))
    }

    /// Waits until some message the platform saw satisfies `cond`.
    pub async fn wait_wire(
        &self,
        what: &str,
        t: Duration,
        cond: impl Fn(&WireEvent) -> bool,
    ) -> Result<WireEvent> {
        Self::poll(t, || {
            Ok(match self.wire().into_iter().find(|e| cond(e)) {
                Some(e) => Look::Done(e),
                None => Look::Not(format!("{what}: not seen within {} s", t.as_secs())),
            })
        })
        .await
    }

    /// Sends an operator command that goes to the gateway; the messageId of the request the
    /// platform sent.
    pub fn sent(&self, c: OperatorCommand) -> Result<String> {
        self.handle
            .command(&self.gw, c)
            .map_err(|e| anyhow!("command: {e:?}"))?
            .message_id
            .context("the platform sent no request")
    }

    /// Sends an operator command (the platform seals it).
    pub fn command(&self, c: OperatorCommand) -> Result<()> {
        self.handle
            .command(&self.gw, c)
            .map(|_| ())
            .map_err(|e| anyhow!("command: {e:?}"))
    }

    /// Starts the gateway and waits until its session is open on its side: its first
    /// `monitor.status` follows the OK `connect.result` (DES-MSG-CONN-3).
    pub async fn session(&mut self) -> Result<()> {
        self.start_gateway().await?;
        self.wait_session_open().await
    }

    /// Waits until the started gateway's session is open on its side (its first
    /// `monitor.status`, DES-MSG-CONN-3).
    pub async fn wait_session_open(&self) -> Result<()> {
        self.wait_wire("the gateway's first monitor.status", WAIT, |e| {
            e.message_type == "monitor.status"
        })
        .await?;
        Ok(())
    }

    /// Starts the gateway, waits for its session, starts periodic sending every second.
    pub async fn started(&mut self, format: ProfileFormat) -> Result<()> {
        self.started_every(format, 1).await
    }

    /// As [`Ctx::started`], periodic sending every `interval_sec`.
    pub async fn started_every(&mut self, format: ProfileFormat, interval_sec: u32) -> Result<()> {
        let before = self.wire().len();
        self.start_gateway().await?;
        if let Err(e) = self.wait_view("session", WAIT, |v| v.connected).await {
            // Say why when the platform refused the connect (e.g. DES-MSG-CONN-4).
            let refusal =
                self.wire().into_iter().skip(before).find(|w| {
                    w.message_type == "connect.result" && w.code.as_deref() != Some("OK")
                });
            return match refusal {
                Some(r) => Err(e.context(format!(
                    "the platform answered connect {}: {}",
                    r.code.unwrap_or_default(),
                    r.summary
                ))),
                None => Err(e),
            };
        }
        self.command(OperatorCommand::Start {
            datasets: vec![],
            interval_sec,
            format,
        })?;
        self.wait_wire("periodic.start.result OK", WAIT, |e| {
            e.message_type == "periodic.start.result" && e.code.as_deref() == Some("OK")
        })
        .await?;
        Ok(())
    }

    /// The FTP account of `dataset`: (user, initial password).
    pub fn account(&self, dataset: &str) -> Result<(String, String)> {
        let ds = Dataset::new(dataset).map_err(|e| anyhow!("{e}"))?;
        let user = self
            .cfg
            .dataset(&ds)
            .context("dataset not provisioned")?
            .ftp_user
            .as_str()
            .to_owned();
        let pass = self
            .bundle
            .ftp_passwords
            .get(&user)
            .context("no initial password")?
            .clone();
        Ok((user, pass))
    }

    /// Where and how the legacy system reaches the gateway (explicit FTPS, verified).
    pub fn ftp_target(&self, dataset: &str) -> Result<FtpTarget> {
        let (user, password) = self.account(dataset)?;
        Ok(FtpTarget {
            host: "127.0.0.1".into(),
            port: self.ftp_port,
            user,
            password,
            tls: Some(FtpsTrust {
                ca_pem: std::fs::read(&self.ftp_ca)?,
                server_name: Some("localhost".into()),
            }),
            timeout: Duration::from_secs(15),
        })
    }

    /// Ends the case: the gateway stopped, the platform closed (with an already-running
    /// gateway: left running, the platform's faults off).
    pub async fn finish(&mut self) {
        let _ = self.stop_gateway().await;
        if self.window.is_some() {
            let _ = self.faults(FaultConfig::default());
            self.handle.set_registered_datasets(&self.gw, None);
        }
        if self.platform_cert_unusable {
            // The CA is the run's: later cases need a platform certificate that is not revoked.
            let _ = self.rotate_platform_certificate();
        }
        self.platform.take();
    }
}
