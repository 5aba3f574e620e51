//! `sgw run`: the whole gateway from one provisioning bundle — the five modules of GW §2 on
//! their owners (data flows left to right):
//!
//! ```text
//! legacy system ──FTP(S)──▶ ftp::FtpServer ──▶ Pipeline (ingest::Decoder, masking)
//!                                                 │ one durable commit (store::StoreHandle)
//!                                                 ▼
//!   platform ◀──MQTT/mTLS── mqtt::Link ◀── driver::Driver (GatewayCore) ◀── records, snapshot
//!   platform ──HTTPS──▶ certfetch::CertFetcher ──▶ data security (ArcSwap)
//!   operator ◀── monitor (/healthz, /metrics)
//! ```
//!
//! Start-up refuses a configuration with any problem of `config::Config::validate` (private
//! keys readable by others included, SEC-CERT-3). The store is opened (boot count +1), its
//! archives repaired (DES-EVAC-4), the core restored from the store's snapshot (repaired
//! against the rows, so nothing ingested before a crash is lost). Every upload is decoded,
//! checked and masked while it streams into one store transaction; `226` goes out only after
//! the commit, and the core is told of the commit in seq order (DES-FTP-6). Evacuation and the
//! certificate refresh run on their periods.
//!
//! Requirement IDs: IF-*, SC-FTP-1, SC-ACQ-1, ST-STORE-1, ST-EVAC-1, MON-1, SEC-CERT-3.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use chrono::Utc;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use super::certfetch::CertFetcher;
use super::driver::{Driver, DriverHandle, RecordStore};
use super::ftp::{
    Accepted, FtpServer, FtpUser, Refusal, RefusalCode, SouthEvent, SouthEvents, UploadSink,
};
use super::monitor::{Metrics, serve};
use super::mqtt::Link;
use crate::audit::{AuditLog, AuditWriter};
use crate::broken::{Broken, Variant};
use crate::config::{Config, Problem};
use crate::ingest::{DatasetSpec, Decoder, IngestError as CsvError};
use crate::outbound::DatasetProfile;
use crate::protocol::flow::Time;
use crate::protocol::gateway_side::{ExternalStatus, GatewayCore, GatewayEvent, GatewaySnapshot};
use crate::protocol::ids::{Dataset, SeqRange};
use crate::protocol::message::{AnomalyKind, CertExpiry, HealthState};
use crate::quarantine::Quarantine;
use crate::security::{DataSecurity, KeyStore, MaskingKeys};
use crate::south::RecentFiles;
use crate::store::{
    ArchiveKeys, CrashPoint, Evacuation, IngestFailure, Ingested, MAX_ARCHIVE_PAYLOAD_BYTES, Store,
    StoreError, StoreHandle, StoreThread,
};
use sha2::{Digest, Sha256};

/// Bytes read from an upload per step (the decoder's memory stays flat whatever the file).
const UPLOAD_CHUNK: usize = 64 * 1024;

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// DES-PROV-2: the bundle has problems (each with its key and fix).
    #[error("DES-PROV-2: the bundle has {} problem(s):\n{}", .0.len(), .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Config(Vec<Problem>),
    /// DES-PROV-1: key material could not be loaded.
    #[error("DES-PROV-1: {0}")]
    Keys(String),
    /// ST-STORE-1: the store could not be opened or restored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A runtime part could not start.
    #[error("{0}")]
    Start(String),
}

/// What `sgw run` needs besides the bundle.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The provisioning bundle directory.
    pub bundle: PathBuf,
    /// Where `/healthz` and `/metrics` listen (loopback); `None`: not served.
    pub monitor: Option<SocketAddr>,
}

/// A running gateway.
pub struct Running {
    /// The driver (core owner).
    pub driver: DriverHandle,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Where the monitoring endpoints listen.
    pub monitor_addr: Option<SocketAddr>,
    /// The FTP server's address.
    pub ftp_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    driver_task: tokio::task::JoinHandle<()>,
    store: StoreHandle,
    store_thread: Option<StoreThread>,
    audit: AuditLog,
    audit_writer: Option<AuditWriter>,
    broken: Broken,
}

impl Running {
    /// Ends the gateway as a crash would, as far as one process can (the conformance suite's
    /// in-process kill): the store runs no job after the one running now
    /// ([`StoreThread::halt`]), every task is aborted at its next await point — no
    /// `disconnect`, no snapshot saved, no more replies — and the handles are dropped. Tasks the
    /// libraries spawned (the FTP sessions) go only when the runtime the gateway runs on is
    /// shut down; join the returned threads after that.
    pub fn crash(mut self) -> Crashed {
        if let Some(t) = &self.store_thread {
            t.halt();
        }
        self.driver_task.abort();
        for t in &self.tasks {
            t.abort();
        }
        Crashed {
            store_thread: self.store_thread.take(),
            audit_writer: self.audit_writer.take(),
        }
    }

    /// Arms the store's aimed crash ([`StoreThread::halt_at`]): right after the next commit of
    /// `point`'s kind the store runs no more jobs, as if the process had died there — before
    /// the core's snapshot that indexes the commit is saved. The gateway runs on with a dead
    /// store until [`Self::crash`]; the conformance suite's in-process target calls that next.
    pub fn crash_at(&self, point: CrashPoint) {
        if let Some(t) = &self.store_thread {
            t.halt_at(point);
        }
    }

    /// Whether the store has stopped at the crash point armed by [`Self::crash_at`] (or was
    /// halted otherwise): the gateway is as good as dead and waits for [`Self::crash`].
    pub fn store_halted(&self) -> bool {
        self.store_thread.as_ref().is_some_and(|t| t.is_halted())
    }

    /// Clean shutdown: `disconnect` (DES-MSG-DISC-1), the snapshot saved, the store closed.
    pub async fn shutdown(mut self) {
        if self.broken.is(Variant::NoDisconnect) {
            self.driver_task.abort();
        }
        self.driver.shutdown().await;
        let _ = (&mut self.driver_task).await;
        for t in &self.tasks {
            t.abort();
        }
        drop(self.store);
        if let Some(t) = self.store_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        self.audit
            .record("gateway.stop", "SM-AUDIT", serde_json::json!({}));
        drop(self.audit);
        // The writer ends when the aborted tasks have dropped their handles; wait a moment
        // for the last lines, not longer.
        if let Some(w) = self.audit_writer.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::task::spawn_blocking(move || w.join()),
            )
            .await;
        }
    }
}

/// The threads of a crashed gateway ([`Running::crash`]), which end once every task that held a
/// handle to them is gone.
pub struct Crashed {
    store_thread: Option<StoreThread>,
    audit_writer: Option<AuditWriter>,
}

impl Crashed {
    /// Waits (blocking) until the store thread has ended the job it was running and closed the
    /// database, and the audit writer has written its last line.
    pub fn join(mut self) {
        if let Some(t) = self.store_thread.take() {
            let _ = t.join();
        }
        if let Some(w) = self.audit_writer.take() {
            w.join();
        }
    }
}

/// The store as the driver sees it.
struct StoreBackend {
    handle: StoreHandle,
    archive_keys: Arc<ArchiveKeys>,
    evacuation_dir: PathBuf,
    gateway_id: crate::protocol::ids::GatewayId,
    columns: BTreeMap<Dataset, Vec<crate::profile::Column>>,
    retention: chrono::Duration,
    broken: Broken,
}

impl RecordStore for StoreBackend {
    fn records(
        &self,
        dataset: &Dataset,
        range: SeqRange,
        archived: bool,
    ) -> Result<Vec<Vec<String>>, String> {
        let ds = dataset.clone();
        let r = if archived {
            let keys = self.archive_keys.clone();
            let dir = self.evacuation_dir.clone();
            self.handle.call(move |s| {
                s.read_archived(&ds, range, &dir, &keys)
                    .map(|v| v.into_iter().map(|r| r.fields).collect::<Vec<_>>())
            })
        } else {
            self.handle.call(move |s| {
                s.read_records(&ds, range)
                    .map(|v| v.into_iter().map(|r| r.fields).collect::<Vec<_>>())
            })
        };
        r.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
    }

    fn save_snapshot(&self, snapshot: &GatewaySnapshot) -> Result<(), String> {
        let snap = snapshot.clone();
        self.handle
            .call(move |s| s.save_snapshot(&snap))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    fn on_event(&self, _event: &GatewayEvent) -> Result<(), String> {
        // Acknowledged and held flags follow the snapshot (Store::save_snapshot).
        Ok(())
    }

    fn evacuate(&self, pinned: &[SeqRange]) -> Result<Vec<SeqRange>, String> {
        let (gw, keys, dir, columns, retention) = (
            self.gateway_id.clone(),
            self.archive_keys.clone(),
            self.evacuation_dir.clone(),
            self.columns.clone(),
            self.retention,
        );
        let wrong = self.broken.is(Variant::EvacuateUnacked);
        let pinned = if wrong { Vec::new() } else { pinned.to_vec() };
        let report = self
            .handle
            .call(move |s| {
                if wrong && let Some(all) = SeqRange::new(1, u64::MAX / 2) {
                    s.mark_acked(all)?;
                }
                s.evacuate(
                    Utc::now().fixed_offset(),
                    &Evacuation {
                        gateway_id: &gw,
                        dir: &dir,
                        keys: &keys,
                        columns: &columns,
                        retention,
                        max_payload_bytes: MAX_ARCHIVE_PAYLOAD_BYTES,
                        pinned: &pinned,
                    },
                )
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(report.archives.into_iter().map(|l| l.range).collect())
    }
}

/// The ingest pipeline behind `STOR` (DES-FTP-6, DES-CSV-5).
#[derive(Debug)]
struct Pipeline {
    store: StoreHandle,
    driver: DriverHandle,
    specs: HashMap<Dataset, DatasetSpec>,
    masking: Arc<MaskingKeys>,
    max_file_bytes: u64,
    /// Content digests of files accepted in the last 24 h (DES-FTP-5: duplicates are
    /// ingested all the same and noted in the audit log).
    recent: std::sync::Mutex<RecentFiles>,
    /// Where files refused with 5xx are kept (DES-FTP-7).
    quarantine: Quarantine,
    /// The access history (duplicates, quarantined files).
    audit: AuditLog,
    /// A deliberately wrong behaviour (conformance suite tests only).
    broken: Broken,
    /// The `ack-before-durable` variant's queue: uploads answered 226 at once and stored
    /// later.
    deferred: std::sync::OnceLock<mpsc::UnboundedSender<(FtpUser, String, Vec<u8>)>>,
}

/// The name prefix of an upload the `ack-before-durable` variant stores late.
const DEFERRED: &str = "deferred:";

/// How late that variant stores an upload it already answered 226.
const DEFERRED_BY: Duration = Duration::from_secs(2);

/// A chunk of an upload, or the end of it.
enum Chunk {
    Data(Vec<u8>),
    /// The data connection closed at the end of the file.
    End,
    /// The data connection failed before the end (426).
    Broken,
}

/// What the record iterator fails with.
enum Fail {
    Csv(CsvError),
    Aborted,
}

fn refusal_of(e: &CsvError) -> Refusal {
    let reply = e.reply();
    let code = match reply.code {
        450 => RefusalCode::Busy450,
        451 => RefusalCode::LocalError451,
        452 => RefusalCode::Quota452,
        552 => RefusalCode::TooLarge552,
        553 => RefusalCode::Name553,
        _ => RefusalCode::Content551,
    };
    Refusal {
        code,
        rule: e.anomaly_rule(),
        text: reply.reason().to_owned(),
    }
}

#[async_trait]
impl UploadSink for Pipeline {
    async fn upload(
        &self,
        user: &FtpUser,
        name: &str,
        mut input: Pin<Box<dyn tokio::io::AsyncRead + Send + Sync>>,
    ) -> Result<Accepted, Refusal> {
        if let Some(later) = self.deferred.get()
            && !name.starts_with(DEFERRED)
        {
            // The variant: 226 before anything is durable (ST-STORE-1 broken).
            let mut bytes = Vec::new();
            let _ = input.read_to_end(&mut bytes).await;
            let _ = later.send((user.clone(), format!("{DEFERRED}{name}"), bytes));
            return Ok(Accepted {
                records: 0,
                range: SeqRange::new(1, 1).ok_or_else(|| Refusal {
                    code: RefusalCode::LocalError451,
                    rule: "SC-FTP-1",
                    text: "DES-FTP-6: local storage error".into(),
                })?,
            });
        }
        let dataset = user.dataset.clone();
        // Storing stopped for the dataset (SC-STOP-1, DES-MSG-DATA-4) → 450.
        let view = self.driver.inspect().await.ok_or_else(|| Refusal {
            code: RefusalCode::LocalError451,
            rule: "SC-FTP-1",
            text: "DES-FTP-6: local storage error".into(),
        })?;
        let storing = view.periodic.running && view.periodic.covers(&dataset);
        if !(storing || self.broken.is(Variant::AcceptWhileStopped)) {
            return Err(Refusal {
                code: RefusalCode::Busy450,
                rule: "SC-FTP-1",
                text: format!("DES-FTP-6: storing stopped for {dataset}"),
            });
        }
        let quota = {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.call(|s| s.check_quota()))
                .await
                .unwrap_or(Err(StoreError::Closed))
        };
        if let Ok(Err(StoreError::QuotaExceeded { .. })) = quota {
            return Err(Refusal {
                code: RefusalCode::Quota452,
                rule: "SC-FTP-1",
                text: "DES-FTP-6: storage quota reached".into(),
            });
        }
        let Some(spec) = self.specs.get(&dataset).cloned() else {
            return Err(Refusal {
                code: RefusalCode::LocalError451,
                rule: "SC-FTP-1",
                text: format!("DES-FTP-6: dataset {dataset} not configured"),
            });
        };
        // The transfer streams through a bounded channel into a blocking task that decodes,
        // masks and writes into the one store transaction.
        let (tx, mut rx) = mpsc::channel::<Chunk>(4);
        let store = self.store.clone();
        let keys = self.masking.clone();
        let max = if self.broken.is(Variant::OversizeAccepted) {
            u64::MAX
        } else {
            self.max_file_bytes
        };
        let ds = dataset.clone();
        let ingested_at: Time = Utc::now().fixed_offset();
        let quarantine = self.quarantine.clone();
        let work = tokio::task::spawn_blocking(move || {
            // The copy for the quarantine (DES-FTP-7), at most max_file_bytes of it.
            let mut copy = match quarantine.incoming(max) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(rule = "DES-FTP-7", error = %e, "no quarantine copy of this upload");
                    None
                }
            };
            let mut decoder = Decoder::new(&spec, &keys).with_max_file_bytes(max);
            let mut queue: std::collections::VecDeque<Vec<String>> = Default::default();
            let mut failed: Option<Fail> = None;
            let mut done = false;
            let records = std::iter::from_fn(|| {
                loop {
                    if let Some(r) = queue.pop_front() {
                        return Some(Ok(r));
                    }
                    if done {
                        return None;
                    }
                    match rx.blocking_recv() {
                        Some(Chunk::Data(bytes)) => {
                            if let Some(c) = copy.as_mut() {
                                c.write(&bytes);
                            }
                            if let Err(e) = decoder.feed(&bytes) {
                                // Keep reading the transfer: the size check wins (DES-FTP-6).
                                failed = Some(Fail::Csv(e));
                                while let Some(c) = rx.blocking_recv() {
                                    match c {
                                        Chunk::Data(b) => {
                                            if let Some(c) = copy.as_mut() {
                                                c.write(&b);
                                            }
                                            if let Err(e) = decoder.feed(&b) {
                                                failed = Some(Fail::Csv(e));
                                            }
                                        }
                                        Chunk::End => break,
                                        Chunk::Broken => {
                                            failed = Some(Fail::Aborted);
                                            break;
                                        }
                                    }
                                }
                                done = true;
                                return failed.take().map(Err);
                            }
                            while let Some(r) = decoder.poll_record() {
                                queue.push_back(r.fields);
                            }
                        }
                        // The transfer's task went away before the end (the session
                        // dropped, the process crashing): nothing of it is committed.
                        Some(Chunk::Broken) | None => {
                            done = true;
                            return Some(Err(Fail::Aborted));
                        }
                        Some(Chunk::End) => {
                            done = true;
                            let d = std::mem::replace(&mut decoder, Decoder::new(&spec, &keys));
                            match d.finish() {
                                Ok(f) => queue.extend(f.records.into_iter().map(|r| r.fields)),
                                Err(e) => return Some(Err(Fail::Csv(e))),
                            }
                        }
                    }
                }
            });
            let outcome = store.ingest_file(ds, ingested_at, records);
            (outcome, copy)
        });
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        let mut digest = Sha256::new();
        loop {
            match input.read(&mut buf).await {
                Ok(0) => {
                    let _ = tx.send(Chunk::End).await;
                    break;
                }
                Ok(n) => {
                    digest.update(&buf[..n]);
                    if tx.send(Chunk::Data(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
                Err(_) => {
                    let _ = tx.send(Chunk::Broken).await;
                    break;
                }
            }
        }
        drop(tx);
        let (outcome, copy) = work.await.map_err(|_| Refusal {
            code: RefusalCode::LocalError451,
            rule: "SC-FTP-1",
            text: "DES-FTP-6: local storage error".into(),
        })?;
        let mut result = self
            .conclude(user, dataset, outcome, ingested_at, digest, name)
            .await;
        if let Err(r) = &mut result
            && r.code == RefusalCode::Content551
            && self.broken.is(Variant::ContentRefused451)
        {
            r.code = RefusalCode::LocalError451;
        }
        // DES-FTP-7: an accepted file or one refused with 4xx is not kept; 5xx is quarantined.
        if let Some(copy) = copy {
            let keep = match &result {
                Err(r) if r.code.code() >= 500 => Some(format!("{} {}", r.code.code(), r.text)),
                _ => None,
            };
            let q = self.quarantine.clone();
            let audit = self.audit.clone();
            let (user, name, addr) = (user.name.clone(), name.to_owned(), user.addr.clone());
            let _ = tokio::task::spawn_blocking(move || match keep {
                None => copy.discard(),
                Some(reply) => match q.keep(copy, ingested_at, &user, &name, &reply, &addr) {
                    Ok(p) => {
                        audit.record(
                            "ftp.quarantined",
                            "DES-FTP-7",
                            serde_json::json!({"user": user, "addr": addr, "file": name,
                                               "kept": p.file_name().map(|f| f.to_string_lossy().into_owned())}),
                        );
                        tracing::warn!(
                        rule = "DES-FTP-7",
                        user = %user,
                        addr = %addr,
                        file = %name,
                        kept = %p.display(),
                        "refused upload quarantined"
                    );
                    }
                    Err(e) => {
                        tracing::error!(rule = "DES-FTP-7", error = %e, file = %name, "refused upload not quarantined");
                    }
                },
            })
            .await;
        }
        result
    }
}

impl Pipeline {
    /// The reply to an upload from the store's outcome (DES-FTP-6); on success the core
    /// indexes the commit before the reply goes out.
    async fn conclude(
        &self,
        user: &FtpUser,
        dataset: Dataset,
        outcome: Result<Ingested, IngestFailure<Fail>>,
        ingested_at: Time,
        digest: Sha256,
        name: &str,
    ) -> Result<Accepted, Refusal> {
        match outcome {
            Ok(ingested) => {
                let earlier = self
                    .recent
                    .lock()
                    .ok()
                    .and_then(|mut r| r.accepted(digest.finalize().into(), ingested_at));
                if earlier.is_some() && self.broken.is(Variant::DuplicateRefused) {
                    return Err(Refusal {
                        code: RefusalCode::Name553,
                        rule: "SC-FTP-1",
                        text: "duplicate".into(),
                    });
                }
                if let Some(at) = earlier {
                    self.audit.record(
                        "ftp.duplicate",
                        "DES-FTP-5",
                        serde_json::json!({"user": user.name, "addr": user.addr, "file": name,
                                           "earlier": at.to_rfc3339()}),
                    );
                    tracing::info!(
                        rule = "DES-FTP-5",
                        user = %user.name,
                        file = name,
                        earlier = %at,
                        "duplicate upload: same content accepted before, ingested again"
                    );
                }
                let records = ingested.record_bytes.len() as u64;
                let range = ingested.range;
                // The rows are durable: the core indexes them (in seq order) before 226.
                match self
                    .driver
                    .stored(dataset, range, ingested.record_bytes, ingested_at)
                    .await
                {
                    Some(Ok(())) => {}
                    other => tracing::error!(
                        rule = "DES-ID-4",
                        outcome = ?other,
                        "stored records not indexed by the core; indexed again at the next start"
                    ),
                }
                Ok(Accepted { records, range })
            }
            Err(IngestFailure::Source(Fail::Csv(e))) => Err(refusal_of(&e)),
            Err(IngestFailure::Source(Fail::Aborted)) => Err(Refusal {
                code: RefusalCode::Aborted426,
                rule: "SC-FTP-1",
                text: "DES-FTP-6: transfer aborted".into(),
            }),
            Err(IngestFailure::Store(StoreError::QuotaExceeded { .. })) => Err(Refusal {
                code: RefusalCode::Quota452,
                rule: "SC-FTP-1",
                text: "DES-FTP-6: storage quota reached".into(),
            }),
            Err(IngestFailure::Store(e)) => {
                tracing::error!(rule = "ST-STORE-1", error = %e, "ingest failed");
                Err(Refusal {
                    code: RefusalCode::LocalError451,
                    rule: "SC-FTP-1",
                    text: "DES-FTP-6: local storage error".into(),
                })
            }
        }
    }
}

/// The access history of the FTP side (SM-AUDIT, DES-AUDIT-1).
fn audit_south(audit: &AuditLog, ev: &SouthEvent) {
    use serde_json::json;
    match ev {
        SouthEvent::LoggedIn { user, addr } => {
            audit.record("ftp.login", "SM-AUDIT", json!({"user": user, "addr": addr}));
        }
        SouthEvent::LoginFailed { user, addr } => {
            audit.record(
                "ftp.login-failed",
                "DES-FTP-3",
                json!({"user": user, "addr": addr}),
            );
        }
        SouthEvent::Locked { user, addr, until } => audit.record(
            "ftp.locked",
            "SM-LOCKOUT",
            json!({"user": user, "addr": addr, "until": until.to_rfc3339()}),
        ),
        SouthEvent::Accepted {
            user,
            addr,
            name,
            accepted,
        } => audit.record(
            "ftp.upload",
            "DES-FTP-6",
            json!({"user": user, "addr": addr, "file": name, "code": 226,
                   "records": accepted.records, "first": accepted.range.first,
                   "last": accepted.range.last}),
        ),
        SouthEvent::Refused {
            user,
            addr,
            name,
            refusal,
        } => audit.record(
            "ftp.upload",
            refusal.rule,
            json!({"user": user, "addr": addr, "file": name, "code": refusal.code.code(),
                   "reply": format!("{} {}", refusal.code.code(), refusal.text)}),
        ),
    }
}

/// FTP events → anomalies (through the core's limits) and counters.
#[derive(Debug)]
struct SouthForward(mpsc::UnboundedSender<SouthEvent>);

impl SouthEvents for SouthForward {
    fn event(&self, event: SouthEvent) {
        let _ = self.0.send(event);
    }
}

fn problems_or(cfg: &Config, broken: Broken) -> Result<(), AppError> {
    let mut problems = cfg.validate();
    if broken.is(Variant::KeyPermsIgnored) {
        problems.retain(|p| !p.problem.contains("SEC-CERT-3"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AppError::Config(problems))
    }
}

fn security(cfg: &Config) -> Result<(KeyStore, MaskingKeys), AppError> {
    let key = cfg.data_protection.key.path();
    let dir = key.parent().unwrap_or(Path::new("."));
    let own = key
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("gateway");
    let keys = KeyStore::load_dir(dir, own).map_err(|e| AppError::Keys(e.to_string()))?;
    let masking =
        MaskingKeys::load_dir(cfg.masking.keys_dir.path(), cfg.masking.active_key.as_str())
            .map_err(|e| AppError::Keys(format!("masking keys: {e}")))?;
    Ok((keys, masking))
}

/// Starts every part of the gateway from `opts.bundle`.
pub async fn start(opts: &RunOptions) -> Result<Running, AppError> {
    super::install_crypto_provider();
    let mut cfg = Config::load(&opts.bundle).map_err(|e| AppError::Start(e.to_string()))?;
    let broken = Broken::from_bundle(&opts.bundle);
    problems_or(&cfg, broken)?;
    // DES-FTP-1: a gateway that cannot listen for the legacy systems does not start (libunftp
    // binds only once its task runs, and would only log the failure): the address is tried
    // here first, so that a port already taken is a start error, not a deaf gateway.
    std::net::TcpListener::bind(cfg.ftp.listen).map_err(|e| {
        AppError::Start(format!(
            "DES-FTP-1, SC-FTP-1: cannot listen for FTP on {} ([ftp].listen): {e}",
            cfg.ftp.listen
        ))
    })?;
    if broken.is(Variant::PlainFtpAllowed) {
        cfg.ftp.ftps_required = false;
    }
    let (keys, mut masking) = security(&cfg)?;
    if broken.is(Variant::MaskWrongKey) {
        let mut other = [0u8; 32];
        rand::fill(&mut other);
        masking = MaskingKeys::new(cfg.masking.active_key.as_str(), &other)
            .map_err(|e| AppError::Keys(e.to_string()))?;
    }
    let gw = cfg.gateway.id.clone();
    let archive_keys = Arc::new(ArchiveKeys::from_keystore(&keys, &gw)?);
    let sec = DataSecurity::new(keys).with_masking(masking.clone());
    #[cfg(feature = "broken-variants")]
    let sec = sec.with_lax(crate::security::cert::Lax {
        period: broken.is(Variant::ExpiredCertAccepted),
        revocation: broken.is(Variant::RevokedCertAccepted),
    });
    let cell = Arc::new(ArcSwap::from_pointee(sec));
    let evacuation_dir = cfg.storage.evacuation_dir.path().to_owned();
    std::fs::create_dir_all(&evacuation_dir)
        .map_err(|e| AppError::Start(format!("{}: {e}", evacuation_dir.display())))?;

    // Storage: open (boot count +1), repair archives, restore the core.
    let mut pcfg = cfg.protocol_config();
    // DES-MQTT-8: the jitter of `connect` retries from a secure source at each start (the
    // transport's reconnects draw their own seed below).
    pcfg.backoff_seed = rand::random();
    let mut store = Store::open(cfg.gateway.state_dir.path())?;
    store.set_quota((!broken.is(Variant::QuotaIgnored)).then_some(cfg.storage.quota_bytes));
    store.recover_archives(&evacuation_dir)?;
    #[cfg(feature = "broken-variants")]
    let forgotten = match broken.is(Variant::SeqReusedAfterRestart) {
        true => Some(store.broken_forget_acknowledged()?),
        false => None,
    };
    let mut snapshot = store.load_snapshot(pcfg.max_records_per_message)?;
    #[cfg(feature = "broken-variants")]
    if let Some(next) = forgotten {
        snapshot.next_seq = next;
        snapshot.batches.retain(|b| b.range.last < next);
    }
    if broken.is(Variant::UnackedForgottenAtRestart) {
        snapshot.batches.retain(|b| b.acked);
    }
    if broken.is(Variant::BootCountReused) {
        snapshot.boot_count = 1;
    }
    let now = Utc::now().fixed_offset();
    let mut core = GatewayCore::restore(pcfg, snapshot, now);
    if broken.is(Variant::ResendFlood) {
        core.set_defect(crate::protocol::gateway_side::Defect::ResendIgnoresWindow);
    }
    if broken.is(Variant::NeverGivesUp) {
        core.set_defect(crate::protocol::gateway_side::Defect::NoTransmissionCap);
    }
    if broken.is(Variant::BusyResendServed) {
        core.set_defect(crate::protocol::gateway_side::Defect::BusyResendServed);
    }
    store.save_snapshot(&core.snapshot())?;
    let (store_handle, store_thread) = StoreHandle::spawn(store)?;
    #[cfg(feature = "crash-points")]
    super::crash_points::watch(&opts.bundle, store_thread.crash_switch());
    let (audit, audit_writer) = AuditLog::open(cfg.gateway.state_dir.path())
        .map_err(|e| AppError::Start(format!("SM-AUDIT: access history: {e}")))?;
    audit.record(
        "gateway.start",
        "SM-AUDIT",
        serde_json::json!({"gateway": cfg.gateway.id.as_str(), "ftp": cfg.ftp.listen.to_string(),
                           "ftpsRequired": cfg.ftp.ftps_required}),
    );
    if !cfg.ftp.ftps_required {
        audit.record(
            "gateway.deviation",
            "DES-FTP-2",
            serde_json::json!({"what": "ftps_required = false: FTP without TLS allowed (SM-TLS)"}),
        );
    }

    let metrics = Arc::new(Metrics::new().map_err(|e| AppError::Start(e.to_string()))?);
    let link = Link::start(&crate::runtime::mqtt::LinkSettings {
        broken,
        ..cfg.link_settings(rand::random())
    })
    .map_err(|e| AppError::Start(e.to_string()))?;
    let mut profiles = HashMap::new();
    let mut specs = HashMap::new();
    let mut columns = BTreeMap::new();
    for d in &cfg.datasets {
        profiles.insert(
            d.name.clone(),
            DatasetProfile {
                source_system: d.source_system.as_str().to_owned(),
                columns: d.columns.clone(),
                xml_cipher: crate::security::xml::XmlCipher::Aes128Cbc,
            },
        );
        let mut spec = d.ingest_spec();
        if broken.is(Variant::MaskSecondColumnInClear)
            && let Some(c) = spec.columns.iter_mut().filter(|c| c.masked).nth(1)
        {
            c.masked = false;
        }
        specs.insert(d.name.clone(), spec);
        columns.insert(d.name.clone(), d.columns.clone());
    }
    let backend = Arc::new(StoreBackend {
        handle: store_handle.clone(),
        archive_keys: archive_keys.clone(),
        evacuation_dir: evacuation_dir.clone(),
        gateway_id: gw.clone(),
        columns: columns.clone(),
        retention: chrono::Duration::days(i64::from(cfg.storage.retention_days)),
        broken,
    });
    let (driver, handle) = Driver::new(core, cell.clone(), backend, link, profiles);
    // Certificates: the fetcher, if the endpoint is usable (DES-CERT-1).
    let fetcher = if broken.is(Variant::NoCertFetch) {
        None
    } else {
        CertFetcher::new(cfg.platform.https_base.as_str(), cfg.link_settings(0).tls)
            .ok()
            .map(|f| f.with_broken(broken))
    };
    let (refetch_tx, mut refetch_rx) = mpsc::channel::<oneshot::Sender<()>>(4);
    let driver = if fetcher.is_some() && !broken.is(Variant::NoKidRefetch) {
        driver.with_platform_refetch(refetch_tx)
    } else {
        driver
    };
    let driver_task = tokio::spawn(
        driver
            .with_metrics(metrics.clone())
            .with_audit(audit.clone())
            .with_broken(broken)
            .run(),
    );
    let mut tasks = Vec::new();

    // South: the FTP server and its events.
    let (south_tx, mut south_rx) = mpsc::unbounded_channel();
    let (quarantine, left) = Quarantine::open(&cfg.gateway.state_dir.path().join("quarantine"))
        .map_err(|e| AppError::Start(format!("DES-FTP-7: quarantine: {e}")))?;
    if left > 0 {
        tracing::info!(
            rule = "DES-FTP-7",
            removed = left,
            "copies of unanswered uploads removed (the legacy system sends them again)"
        );
    }
    let pipeline = Arc::new(Pipeline {
        store: store_handle.clone(),
        driver: handle.clone(),
        specs,
        masking: Arc::new(masking),
        max_file_bytes: cfg.ftp.max_file_bytes,
        recent: std::sync::Mutex::new(RecentFiles::default()),
        quarantine,
        audit: audit.clone(),
        broken,
        deferred: std::sync::OnceLock::new(),
    });
    if broken.is(Variant::AckBeforeDurable) {
        let (later, mut queue) = mpsc::unbounded_channel::<(FtpUser, String, Vec<u8>)>();
        let _ = pipeline.deferred.set(later);
        let p = pipeline.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((user, name, bytes)) = queue.recv().await {
                tokio::time::sleep(DEFERRED_BY).await;
                let _ = p
                    .upload(&user, &name, Box::pin(std::io::Cursor::new(bytes)))
                    .await;
            }
        }));
    }
    let mut ftp_settings = cfg.ftp_settings();
    if broken.is(Variant::DefaultFtpAccount)
        && let (Some(d), Ok(phc)) = (cfg.datasets.first(), crate::config::hash_password("admin"))
    {
        ftp_settings.accounts.push(super::ftp::Account {
            user: "admin".into(),
            password_phc: phc.as_str().to_owned(),
            dataset: d.name.clone(),
        });
    }
    let ftp_addr = ftp_settings.listen;
    let ftp = FtpServer::new(&ftp_settings, pipeline, Arc::new(SouthForward(south_tx)))
        .map_err(|e| AppError::Start(e.to_string()))?;
    tasks.push(tokio::spawn(async move {
        if let Err(e) = ftp.listen().await {
            tracing::error!(rule = "SC-FTP-1", error = %e, "FTP server stopped");
        }
    }));
    {
        let d = handle.clone();
        let m = metrics.clone();
        let audit = audit.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = south_rx.recv().await {
                audit_south(&audit, &ev);
                match ev {
                    SouthEvent::Accepted { accepted, .. } => {
                        m.files_accepted.inc();
                        m.records_ingested.inc_by(accepted.records);
                    }
                    SouthEvent::Refused { refusal, .. } => {
                        m.files_rejected.inc();
                        // DES-FTP-6: the detail is the reply line (user, name and address are
                        // in the audit log, runtime::ftp).
                        if !broken.is(Variant::SilentIngestRefusal) {
                            d.anomaly(
                                AnomalyKind::Ingest,
                                refusal.rule,
                                format!("{} {}", refusal.code.code(), refusal.text),
                            )
                            .await;
                        }
                    }
                    SouthEvent::Locked { user, addr, until } => {
                        d.anomaly(
                            AnomalyKind::Ingest,
                            "SM-LOCKOUT",
                            format!("FTP user {user} from {addr} locked until {until}"),
                        )
                        .await;
                    }
                    _ => {}
                }
            }
        }));
    }

    // Certificates: refresh on the period (DES-CERT-3), and `platform.pem` when the driver
    // asks (a message signed under an unknown kid, DES-SEAL-6). This task is the one writer
    // of the certificate state.
    if let Some(fetcher) = fetcher {
        let period = Duration::from_secs(cfg.data_protection.crl_refresh_sec.0.max(1));
        let d = handle.clone();
        let cell = cell.clone();
        tasks.push(tokio::spawn(async move {
            let report = |r: super::certfetch::Refreshed| {
                let d = d.clone();
                async move {
                    for f in r.findings {
                        d.anomaly(
                            AnomalyKind::Certificate,
                            f.rule,
                            format!("{}: {}", f.what, f.detail),
                        )
                        .await;
                    }
                }
            };
            loop {
                report(fetcher.refresh(&cell, Utc::now()).await).await;
                let next = tokio::time::sleep(period);
                tokio::pin!(next);
                loop {
                    tokio::select! {
                        () = &mut next => break,
                        Some(done) = refetch_rx.recv() => {
                            report(fetcher.refresh_platform(&cell, Utc::now()).await).await;
                            let _ = done.send(());
                        }
                    }
                }
            }
        }));
    }

    // Evacuation on its period (DES-EVAC-1).
    {
        let period = Duration::from_secs(cfg.storage.evacuation_interval_sec.0.max(1));
        let d = handle.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if let Err(e) = d.evacuate().await {
                    d.anomaly(AnomalyKind::Storage, "DES-EVAC-6", e).await;
                }
            }
        }));
    }

    // monitor.status true to fact (DES-MSG-MON-1): storage, files, certificates, health.
    {
        let store = store_handle.clone();
        let d = handle.clone();
        let m = metrics.clone();
        let cell = cell.clone();
        let tls_cert = cfg.tls.client_cert.path().to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let usage = {
                    let store = store.clone();
                    tokio::task::spawn_blocking(move || store.call(|s| s.usage())).await
                };
                let sec = cell.load_full();
                let certificates = cert_expiries(&sec, &tls_cert);
                let mut st = ExternalStatus {
                    files_accepted: if broken.is(Variant::StatusLies) {
                        0
                    } else {
                        m.files_accepted.get()
                    },
                    files_rejected: m.files_rejected.get(),
                    messages_sent: m.data_sent.get(),
                    messages_retransmitted: m.data_retransmitted.get(),
                    records_acked: m.records_acked.get(),
                    certificates: if broken.is(Variant::StatusWithoutCertificates) {
                        Vec::new()
                    } else {
                        certificates
                    },
                    ..ExternalStatus::default()
                };
                if let Ok(Ok(Ok(u))) = usage {
                    st.storage_bytes = u.bytes;
                    st.evacuated = u.evacuated;
                    st.free_bytes = u.free_bytes;
                    m.free_bytes
                        .set(i64::try_from(u.free_bytes).unwrap_or(i64::MAX));
                    m.storage_bytes
                        .set(i64::try_from(u.bytes).unwrap_or(i64::MAX));
                    if u.alarm() {
                        st.health = HealthState::Degraded;
                        st.last_error = Some(format!(
                            "DES-MSG-MON-1: primary storage above 80 % of its quota ({} bytes)",
                            u.bytes
                        ));
                    }
                }
                for c in &st.certificates {
                    let left = (c.not_after - Utc::now().fixed_offset()).num_seconds();
                    m.cert_expiry_seconds
                        .with_label_values(&[c.name.as_str()])
                        .set(left);
                }
                d.status(st).await;
                // DES-MSG-MON-1: the figures at most 10 s old.
                let every = if broken.is(Variant::StatusFiguresStale) {
                    30
                } else {
                    5
                };
                tokio::time::sleep(Duration::from_secs(every)).await;
            }
        }));
    }

    let monitor_addr = match opts.monitor {
        Some(addr) => {
            let (bound, task) = serve(addr, metrics.clone())
                .await
                .map_err(|e| AppError::Start(e.to_string()))?;
            tasks.push(task);
            Some(bound)
        }
        None => None,
    };
    tracing::info!(gateway = %cfg.gateway.id, ftp = %ftp_addr, "SGW running");
    Ok(Running {
        driver: handle,
        metrics,
        monitor_addr,
        ftp_addr,
        tasks,
        driver_task,
        store: store_handle,
        store_thread: Some(store_thread),
        audit,
        audit_writer: Some(audit_writer),
        broken,
    })
}

/// The notAfter of `cert` as a DES-ENV-2 time.
fn not_after(cert: &openssl::x509::X509Ref) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    asn1_time(cert.not_after())
}

fn asn1_time(t: &openssl::asn1::Asn1TimeRef) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    let secs = i64::from(d.days) * 86_400 + i64::from(d.secs);
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.fixed_offset())
}

/// The certificates `monitor.status` lists (DES-MSG-MON-1): `tls-client`, `data-protection`,
/// `platform`, `root` and `crl` (its nextUpdate).
fn cert_expiries(sec: &DataSecurity, tls_cert: &Path) -> Vec<CertExpiry> {
    let mut out = Vec::new();
    let mut push = |name: &str, t: Option<chrono::DateTime<chrono::FixedOffset>>| {
        if let Some(t) = t {
            out.push(CertExpiry {
                name: name.to_owned(),
                not_after: t,
            });
        }
    };
    let tls = std::fs::read(tls_cert)
        .ok()
        .and_then(|p| openssl::x509::X509::from_pem(&p).ok());
    push("tls-client", tls.as_deref().and_then(not_after));
    let keys = sec.keys();
    push("data-protection", not_after(&keys.own().cert));
    push(
        "platform",
        keys.peer("platform").ok().and_then(|p| not_after(&p.cert)),
    );
    push("root", not_after(keys.root()));
    push(
        "crl",
        keys.crl().and_then(|c| c.next_update()).and_then(asn1_time),
    );
    out
}
