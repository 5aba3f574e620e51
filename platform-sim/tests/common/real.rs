//! The real gateway (`gateway::runtime::app`, what `sgw run` starts) for the platform tests:
//! the utility's side of a provisioned bundle (`platform_sim::demo::utility_setup`: masking
//! key, FTPS certificate, ports), legacy uploads over explicit FTPS with certificate
//! verification (`legacy_sim::push`), waits on the core's view with deadlines, the gateway's
//! access history (what it received and answered, DES-AUDIT-1), a check of what the platform
//! stored against what the legacy system uploaded, and a [`Tap`] on the fixture's broker that
//! opens every message of one gateway in both directions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::config::Config;
use gateway::ingest::TextEncoding;
use gateway::protocol::ids::{Dataset, SeqRange};
use gateway::protocol::message::{Envelope, MessageType, ProfileFormat};
use gateway::runtime::app::{RunOptions, Running, start};
use gateway::runtime::driver::CoreView;
use gateway::security::{DataSecurity, Identity, KeyStore, MaskingKeys};
use legacy_sim::dataset::Dataset as Ds;
use legacy_sim::push::{FtpTarget, FtpsTrust, RetryPolicy, Upload, push};
use platform_sim::broker::free_loopback_port;
use platform_sim::ca::Ca;
use platform_sim::ops::{OperatorBackend, OperatorCommand};
use platform_sim::provision::Bundle;
use serde_json::Value;

use super::fixture::{Fixture, env};

/// How long a test waits for one condition.
pub const T: Duration = Duration::from_secs(20);

/// Polls `cond` every 50 ms until it holds; panics with `what` after [`T`].
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the core's view of `r` satisfies `cond`; panics after [`T`] with the last view.
pub async fn wait_view(r: &Running, what: &str, cond: impl Fn(&CoreView) -> bool) {
    let deadline = Instant::now() + T;
    loop {
        let v = r.driver.inspect().await.expect("the driver runs");
        if cond(&v) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out: {what} ({v:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The operator's start of periodic sending every second, for every dataset.
pub fn start_cmd(format: ProfileFormat) -> OperatorCommand {
    OperatorCommand::Start {
        datasets: vec![],
        interval_sec: 1,
        format,
    }
}

/// A real gateway on one bundle, started and stopped like `sgw run`.
pub struct RealGateway {
    pub opts: RunOptions,
    pub cfg: Config,
    pub running: Option<Running>,
    ftp_ca_pem: Vec<u8>,
    passwords: BTreeMap<String, String>,
    masking: MaskingKeys,
    /// What the legacy systems uploaded and the gateway accepted (226), in clear, by seq.
    pub rows: BTreeMap<u64, (Ds, Vec<String>)>,
    files: u64,
}

impl RealGateway {
    /// The utility's side of `bundle` (its certificate endpoint at `https_base`); not started.
    pub fn setup(bundle: &Bundle, https_base: &str) -> Self {
        let ftp_ca = platform_sim::demo::utility_setup(
            &bundle.dir,
            free_loopback_port().unwrap(),
            platform_sim::broker::free_loopback_range(21).unwrap(),
            https_base,
        )
        .unwrap();
        let cfg = Config::load(&bundle.dir).unwrap();
        let masking =
            MaskingKeys::load_dir(cfg.masking.keys_dir.path(), cfg.masking.active_key.as_str())
                .unwrap();
        RealGateway {
            opts: RunOptions {
                bundle: bundle.dir.clone(),
                monitor: None,
            },
            cfg,
            running: None,
            ftp_ca_pem: std::fs::read(ftp_ca).unwrap(),
            passwords: bundle.ftp_passwords.clone(),
            masking,
            rows: BTreeMap::new(),
            files: 0,
        }
    }

    /// [`setup`](Self::setup) for the fixture's bundle and endpoint, started, in session with
    /// the fixture's platform.
    pub async fn connected(f: &Fixture) -> Self {
        let mut g = Self::setup(&f.bundle, &f.https_base());
        g.start().await;
        g.wait("session", |v| v.connected).await;
        wait_for("the platform sees the session", || {
            f.handle.view(&f.gw).connected
        })
        .await;
        g
    }

    /// [`connected`](Self::connected), then periodic sending started by the operator (every
    /// second, `format`) and applied.
    pub async fn started(f: &Fixture, format: ProfileFormat) -> Self {
        let g = Self::connected(f).await;
        f.handle.command(&f.gw, start_cmd(format)).unwrap();
        g.wait("periodic sending started", |v| v.running).await;
        g
    }

    /// Starts the gateway process (`sgw run`) on the bundle.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "already running");
        self.running = Some(start(&self.opts).await.expect("sgw starts"));
    }

    /// Clean shutdown (`disconnect`, snapshot saved, store closed).
    pub async fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the gateway runs")
    }

    pub async fn view(&self) -> CoreView {
        self.running()
            .driver
            .inspect()
            .await
            .expect("the driver runs")
    }

    /// Waits until the core's view satisfies `cond` ([`wait_view`]).
    pub async fn wait(&self, what: &str, cond: impl Fn(&CoreView) -> bool) {
        wait_view(self.running(), what, cond).await;
    }

    /// The dataset's configuration (columns, encoding, FTP account).
    pub fn dataset(&self, ds: Ds) -> &gateway::config::DatasetConfig {
        self.cfg.dataset(&Dataset::new(ds.name()).unwrap()).unwrap()
    }

    /// Uploads `n` generated rows of `ds` (seed `seed`) as the legacy system does: CSV in the
    /// dataset's encoding over explicit FTPS, one attempt. Returns the reply code.
    pub async fn try_upload(
        &mut self,
        ds: Ds,
        n: usize,
        seed: u64,
    ) -> (Option<u32>, Vec<Vec<String>>) {
        let d = self.dataset(ds);
        let encoding = match d.encoding {
            TextEncoding::Utf8 => legacy_sim::TextEncoding::Utf8,
            TextEncoding::Cp932 => legacy_sim::TextEncoding::Cp932,
        };
        let user = d.ftp_user.as_str().to_owned();
        let table = legacy_sim::Table::generate(ds, n, seed);
        let content = table
            .to_csv(&legacy_sim::CsvOptions {
                encoding,
                ..legacy_sim::CsvOptions::default()
            })
            .unwrap();
        self.files += 1;
        let upload = Upload {
            file_name: format!("{}_{:04}.csv", ds.name(), self.files),
            content,
            dataset: ds.name().into(),
            rows: n,
            encoding: encoding.label().into(),
        };
        let target = FtpTarget {
            host: "127.0.0.1".into(),
            port: self.cfg.ftp.listen.port(),
            password: self.passwords[&user].clone(),
            user,
            tls: Some(FtpsTrust {
                ca_pem: self.ftp_ca_pem.clone(),
                server_name: Some("localhost".into()),
            }),
            timeout: Duration::from_secs(10),
        };
        let policy = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let entry = push(&target, &upload, &policy).await;
        (entry.reply_code, table.rows)
    }

    /// [`try_upload`](Self::try_upload), which must be answered 226; the rows are kept in
    /// [`rows`](Self::rows). Returns their seqs (uploads are one at a time: the next seqs).
    pub async fn upload(&mut self, ds: Ds, n: usize, seed: u64) -> SeqRange {
        let before = self.view().await.last_seq;
        let (code, rows) = self.try_upload(ds, n, seed).await;
        assert_eq!(code, Some(226), "{} rows of {ds} not accepted", n);
        let range = SeqRange {
            first: before + 1,
            last: before + n as u64,
        };
        // The core indexed the commit before the 226 (DES-FTP-6).
        assert_eq!(self.view().await.last_seq, range.last);
        for (i, row) in rows.into_iter().enumerate() {
            self.rows.insert(range.first + i as u64, (ds, row));
        }
        range
    }

    /// The access history, one JSON object a line (DES-AUDIT-1).
    pub fn audit(&self) -> Vec<Value> {
        let path = self
            .cfg
            .gateway
            .state_dir
            .path()
            .join(gateway::audit::AUDIT_FILE);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The message IDs of the commands of type `ty` that the gateway opened, in order.
    pub fn received(&self, ty: MessageType) -> Vec<String> {
        self.audit()
            .into_iter()
            .filter(|l| l["event"] == "mqtt.received" && l["type"] == ty.as_str())
            .map(|l| l["messageId"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The topics of the messages the gateway refused to open or decode, in order.
    pub fn refused(&self) -> Vec<String> {
        self.audit()
            .into_iter()
            .filter(|l| l["event"] == "mqtt.refused")
            .map(|l| l["topic"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The answers of type `ty` the gateway sent: (message ID, in reply to, result code).
    pub fn answers(&self, ty: MessageType) -> Vec<(String, String, String)> {
        self.audit()
            .into_iter()
            .filter(|l| l["event"] == "mqtt.answer" && l["type"] == ty.as_str())
            .map(|l| {
                let s = |k: &str| l[k].as_str().unwrap().to_owned();
                (s("messageId"), s("inReplyTo"), s("code"))
            })
            .collect()
    }

    /// The records `first..=last` the platform stored for gateway `gw` at `db` are each there
    /// once, of the uploaded dataset; columns not masked equal the uploaded values, masked ones
    /// differ from them and unmask (with the utility's key) to them (SEC-MASK-1).
    pub fn assert_stored_in(
        &self,
        db: &Path,
        gw: &gateway::protocol::ids::GatewayId,
        first: u64,
        last: u64,
    ) {
        let stored = platform_sim::platform::store::Store::open(db)
            .unwrap()
            .records(gw)
            .unwrap();
        for seq in first..=last {
            let rows: Vec<_> = stored.iter().filter(|r| r.seq == seq).collect();
            assert_eq!(rows.len(), 1, "seq {seq} stored {} times", rows.len());
            let (ds, clear) = &self.rows[&seq];
            assert_eq!(rows[0].dataset, ds.name(), "seq {seq}");
            let fields = &rows[0].fields;
            let columns = &self.dataset(*ds).columns;
            assert_eq!(fields.len(), columns.len(), "seq {seq}");
            for (i, c) in columns.iter().enumerate() {
                if c.masked {
                    assert_ne!(fields[i], clear[i], "seq {seq} column {} in clear", c.name);
                    assert_eq!(
                        self.masking.unmask(&c.name, &fields[i]).unwrap(),
                        clear[i],
                        "seq {seq} column {}",
                        c.name
                    );
                } else {
                    assert_eq!(fields[i], clear[i], "seq {seq} column {}", c.name);
                }
            }
        }
    }

    /// [`assert_stored_in`](Self::assert_stored_in) the fixture's store.
    pub fn assert_stored(&self, f: &Fixture, first: u64, last: u64) {
        self.assert_stored_in(&f.store_path, &f.gw, first, last);
    }
}

/// One message of the tapped gateway as the broker carried it.
#[derive(Debug, Clone)]
pub struct Tapped {
    /// Gateway → platform.
    pub up: bool,
    /// The message type named by the topic.
    pub ty: String,
    /// The payload as published (a JWE compact).
    pub payload: Vec<u8>,
    /// The envelope, if it opened (with the recipient's key) and decoded.
    pub envelope: Option<Envelope>,
    /// When the tap saw it.
    pub at: Instant,
}

/// Every message of one gateway, both directions, as the fixture's broker carries them: an
/// in-process link subscribed to `/tenants/{gw}/sgw/v1/#`; uplinks opened with the platform's
/// key, downlinks with the gateway's. An observer only: it publishes nothing.
pub struct Tap {
    seen: Arc<Mutex<Vec<Tapped>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tap {
    pub fn start(f: &Fixture) -> Tap {
        static TAPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = TAPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let e = env();
        let mut link = e
            .broker
            .platform_link_with(
                &format!("tap-{}-{n}", f.gw),
                &format!("/tenants/{}/sgw/v1/#", f.gw),
            )
            .unwrap();
        let gateway_sec = DataSecurity::new(
            KeyStore::load_dir(&f.bundle.dir.join("data-protection"), "gateway").unwrap(),
        );
        let ca = Ca::open(&e.ca_dir).unwrap();
        let (cert, key) = ca.platform_dp_paths();
        let mut keys = KeyStore::from_pem(
            &std::fs::read(key).unwrap(),
            &std::fs::read(cert).unwrap(),
            ca.root_pem().as_bytes(),
        )
        .unwrap();
        keys.set_crl_pem(ca.crl_pem().unwrap().as_bytes()).unwrap();
        keys.add_peer_pem(
            Identity::gateway(f.gw.as_str()),
            ca.gateway_dp_cert_pem(&f.gw).unwrap().as_bytes(),
        )
        .unwrap();
        let platform_sec = DataSecurity::new(keys);
        let gw = f.gw.as_str().to_owned();
        let seen: Arc<Mutex<Vec<Tapped>>> = Arc::default();
        let out = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok(m) = link.next_inbound().await {
                let at = Instant::now();
                let up = m.topic.contains("/sgw/v1/up/");
                let opened = std::str::from_utf8(&m.payload).ok().and_then(|t| {
                    let now = chrono::Utc::now();
                    if up {
                        platform_sec.open_message(&gw, t, now).ok()
                    } else {
                        gateway_sec.open_message("platform", t, now).ok()
                    }
                });
                out.lock().unwrap().push(Tapped {
                    up,
                    ty: m.topic.rsplit('/').next().unwrap_or_default().to_owned(),
                    envelope: opened.and_then(|b| Envelope::decode(&b).ok()),
                    payload: m.payload,
                    at,
                });
            }
        });
        Tap { seen, task }
    }

    /// Everything seen so far, in order.
    pub fn all(&self) -> Vec<Tapped> {
        self.seen.lock().unwrap().clone()
    }

    /// The messages of type `ty` in one direction.
    pub fn of(&self, up: bool, ty: MessageType) -> Vec<Tapped> {
        self.all()
            .into_iter()
            .filter(|m| m.up == up && m.ty == ty.as_str())
            .collect()
    }

    /// The envelopes of type `ty` sent to the gateway that opened.
    pub fn down(&self, ty: MessageType) -> Vec<Envelope> {
        self.of(false, ty)
            .into_iter()
            .filter_map(|m| m.envelope)
            .collect()
    }

    /// The envelopes of type `ty` the gateway sent that opened.
    pub fn up(&self, ty: MessageType) -> Vec<Envelope> {
        self.of(true, ty)
            .into_iter()
            .filter_map(|m| m.envelope)
            .collect()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}
