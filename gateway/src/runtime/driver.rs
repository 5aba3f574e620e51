//! The driver task: the one owner of [`GatewayCore`], reached through a command channel
//! ([`DriverHandle`]). It feeds the core the MQTT link's events, received payloads (opened off
//! the async workers), ingest notifications and timer expiries, and carries out what the core
//! asks: publish sealed envelopes, build and seal `data` from the records in storage, persist
//! the snapshot, hand storage its events.
//!
//! Order per turn (after every input): (1) drain [`GatewayCore::poll_event`] into storage
//! ([`RecordStore::on_event`]) and the log; (2) if the core's state changed, persist its
//! snapshot ([`RecordStore::save_snapshot`]) — **before** anything it produced is published,
//! so a reply the platform sees is always in the persisted reply memory (DES-ENV-8) and an
//! applied command is persisted before its result (DES-MSG-PS-3); (3) drain
//! [`GatewayCore::poll_transmit`]: seal and publish. Timers: [`GatewayCore::poll_timeout`]
//! is the only timer.
//!
//! Data retransmissions publish the sealed bytes kept from the first transmission
//! (DES-MSG-DATA-3); a message whose records cannot be read or sealed is given up through
//! [`GatewayCore::handle_data_failed`] (DES-MSG-DATA-5).
//!
//! A payload signed under an unknown `kid` is not handed to the core at once: the certificate
//! task refreshes the CRL and `platform.pem` (at most once per [`KID_REFETCH_EVERY`]) and the
//! payload is opened once more afterwards (DES-SEAL-6; how a rotated platform certificate is
//! learnt, DES-CERT-7).
//!
//! A message that cannot be sealed because the held platform certificate fails DES-CERT-4
//! starts an episode of DES-CERT-8: one `certificate` anomaly, a refresh of the CRL and
//! `platform.pem` (its own limit, also once per [`KID_REFETCH_EVERY`]), and every anomaly
//! not sealed goes back to the core ([`GatewayCore::handle_unsealable`]) until a message is
//! sealed again or a refresh is done ([`GatewayCore::handle_sealing_restored`]).
//!
//! Requirement IDs: IF-CONN-1, IF-PSEND-1..3, IF-PSTART-2, IF-RESEND-1, SM-RESEND, SEC-CERT-2.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use super::monitor::Metrics;
use super::mqtt::{Link, LinkEvent};
use crate::audit::AuditLog;
use crate::broken::{Broken, Variant};
use crate::outbound::{self, DatasetProfile, OutboundError};
use crate::protocol::flow::Time;
use crate::protocol::gateway_side::{
    DataRequest, ExternalStatus, GatewayCore, GatewayEvent, GatewaySnapshot, Inbound, IngestError,
    PeriodicSetting, Transmit,
};
use crate::protocol::ids::{Dataset, MessageId, SeqRange};
use crate::protocol::message::{AnomalyKind, Body, Envelope, HealthState, MessageType};
use crate::security::{DataSecurity, SecurityError};

/// The gateway's storage as the driver needs it. Called on blocking threads, never on the
/// async workers (SQLite and file I/O); implementations are synchronous.
pub trait RecordStore: Send + Sync + 'static {
    /// The masked fields of the records `range` of `dataset`, in seq order, from the live
    /// store or, when `archived`, from the evacuation archives (ST-PROVIDE-1).
    fn records(
        &self,
        dataset: &Dataset,
        range: SeqRange,
        archived: bool,
    ) -> Result<Vec<Vec<String>>, String>;
    /// Persists the core's snapshot durably (sequence numbers, periodic setting, record index,
    /// reply memory: DES-ID-4, DES-MSG-PS-3, DES-ENV-8).
    fn save_snapshot(&self, snapshot: &GatewaySnapshot) -> Result<(), String>;
    /// An event of the core that storage acts on (records acknowledged, storing started or
    /// stopped). Others may be ignored.
    fn on_event(&self, event: &GatewayEvent) -> Result<(), String>;
    /// One evacuation pass (ST-EVAC-1, DES-EVAC-1..4): acknowledged, not held records past
    /// the retention into durable, indexed archives — never a record of `pinned` (still to be
    /// read from primary storage by a queued or in-flight data message). Returns the ranges
    /// evacuated. The default evacuates nothing.
    fn evacuate(&self, pinned: &[SeqRange]) -> Result<Vec<SeqRange>, String> {
        let _ = pinned;
        Ok(Vec::new())
    }
}

/// What other tasks ask of the driver.
#[derive(Debug)]
enum Command {
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    Inspect {
        reply: oneshot::Sender<CoreView>,
    },
    Anomaly {
        kind: AnomalyKind,
        rule: &'static str,
        detail: String,
    },
    Evacuate {
        reply: oneshot::Sender<Result<u64, String>>,
    },
    Status(ExternalStatus),
    Stored {
        dataset: Dataset,
        range: SeqRange,
        sizes: Vec<u32>,
        ingested_at: Time,
        reply: oneshot::Sender<Result<(), IngestError>>,
    },
}

/// A storage commit waiting for its turn (commits are indexed in seq order).
type PendingStored = (
    Dataset,
    SeqRange,
    Vec<u32>,
    Time,
    oneshot::Sender<Result<(), IngestError>>,
);

/// A few facts of the core, for status output and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreView {
    /// Session open.
    pub connected: bool,
    /// Highest seq assigned.
    pub last_seq: u64,
    /// Records not yet acknowledged.
    pub unacked: u64,
    /// Records held after a give-up (DES-MSG-DATA-5).
    pub held: u64,
    /// Periodic sending running.
    pub running: bool,
    /// The periodic setting (which datasets are being stored, SC-START-1).
    pub periodic: PeriodicSetting,
}

/// How other tasks reach the driver.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    tx: mpsc::Sender<Command>,
}

impl DriverHandle {
    /// Tells the core that storage committed `range` of `dataset` (DES-FTP-6: after the
    /// durable commit, before `226`). Commits may arrive out of order; the driver indexes them
    /// in seq order ([`GatewayCore::handle_stored`]).
    pub async fn stored(
        &self,
        dataset: Dataset,
        range: SeqRange,
        sizes: Vec<u32>,
        ingested_at: Time,
    ) -> Option<Result<(), IngestError>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Stored {
                dataset,
                range,
                sizes,
                ingested_at,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok()
    }

    /// The figures of `monitor.status` the core cannot know (storage, files, certificates,
    /// health; DES-MSG-MON-1).
    pub async fn status(&self, status: ExternalStatus) {
        let _ = self.tx.send(Command::Status(status)).await;
    }

    /// Runs one evacuation pass inside the driver (DES-EVAC-1): the core names the records
    /// still to be sent, the store evacuates the others, the core marks them archived — with
    /// no message handled in between, so no resend can be planned on records being moved.
    /// Returns the records evacuated.
    pub async fn evacuate(&self) -> Result<u64, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Evacuate { reply })
            .await
            .map_err(|_| "driver stopped".to_owned())?;
        rx.await.map_err(|_| "driver stopped".to_owned())?
    }

    /// Sends `disconnect` (DES-MSG-DISC-1), waits briefly for its result and stops the driver.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Reports an anomaly detected outside the protocol (a refused upload, a login lock,
    /// DES-FTP-3/6), through the core's rate limit and offline queue (DES-MSG-AN-2).
    pub async fn anomaly(&self, kind: AnomalyKind, rule: &'static str, detail: String) {
        let _ = self.tx.send(Command::Anomaly { kind, rule, detail }).await;
    }

    /// A view of the core's state.
    pub async fn inspect(&self) -> Option<CoreView> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Inspect { reply }).await.ok()?;
        rx.await.ok()
    }
}

/// Sealed data payloads kept for retransmission (DES-MSG-DATA-3), oldest evicted first.
const SEALED_KEPT: usize = 64;

/// The driver's state; [`Driver::run`] consumes it.
pub struct Driver<S: RecordStore> {
    core: GatewayCore,
    sec: Arc<ArcSwap<DataSecurity>>,
    store: Arc<S>,
    link: Link,
    datasets: Arc<HashMap<Dataset, DatasetProfile>>,
    commands: mpsc::Receiver<Command>,
    link_up: bool,
    saved_hash: Option<u64>,
    sealed: HashMap<MessageId, String>,
    sealed_order: VecDeque<MessageId>,
    metrics: Option<Arc<Metrics>>,
    audit: AuditLog,
    broken: Broken,
    /// Commands renamed by the `replay-applied` variant, and the starts it has seen.
    rewritten: u64,
    starts_seen: std::collections::HashSet<String>,
    /// `monitor.status` messages made (the `slow-status` variant sends every third).
    statuses: u64,
    pending_stored: BTreeMap<u64, PendingStored>,
    /// Refreshes of the CRL and `platform.pem` (DES-SEAL-6, DES-CERT-8).
    refresh: Refresh,
    /// A message could not be sealed for want of a valid platform certificate, and none has
    /// been sealed since (DES-CERT-8: one anomaly per such episode).
    unsealable: bool,
}

/// A received payload kept for opening once more: (topic, payload, retain).
type Pending = (String, Vec<u8>, bool);

/// Why the driver asks for a refresh; each reason has its own limit.
#[derive(Debug, Clone, Copy)]
enum RefreshReason {
    /// DES-SEAL-6: a message signed under an unknown `kid`.
    UnknownKid = 0,
    /// DES-CERT-8: nothing can be sealed to the platform certificate held.
    Unsealable = 1,
}

/// The refreshes of the CRL and `platform.pem` the driver asks its certificate task for: one
/// at a time, at most one per [`KID_REFETCH_EVERY`] for each [`RefreshReason`]; payloads
/// signed under an unknown `kid` that arrive during one wait for it (at most
/// [`AWAITING_REFETCH_MAX`]).
struct Refresh {
    /// The certificate task (the reply says it is done); `None`: no certificate task.
    ask: Option<mpsc::Sender<oneshot::Sender<()>>>,
    /// When the last refresh of each reason was asked for.
    last: [Option<std::time::Instant>; 2],
    in_flight: bool,
    waiting: Vec<Pending>,
    /// A refresh is done (or [`KID_REFETCH_WAIT`] passed): the payload that asked for it.
    done_tx: mpsc::UnboundedSender<Option<Pending>>,
    done_rx: mpsc::UnboundedReceiver<Option<Pending>>,
}

impl Refresh {
    fn new() -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Refresh {
            ask: None,
            last: [None; 2],
            in_flight: false,
            waiting: Vec::new(),
            done_tx,
            done_rx,
        }
    }

    /// Starts a refresh for `reason`, `then` to be opened again when it is done; false (and
    /// nothing started) without a certificate task, while one is under way, or when one for
    /// `reason` was asked for less than [`KID_REFETCH_EVERY`] ago.
    fn start(&mut self, reason: RefreshReason, then: Option<Pending>) -> bool {
        let Some(ask) = &self.ask else {
            return false;
        };
        let last = &mut self.last[reason as usize];
        if self.in_flight || last.is_some_and(|t| t.elapsed() < KID_REFETCH_EVERY) {
            return false;
        }
        let (reply, done) = oneshot::channel();
        if ask.try_send(reply).is_err() {
            return false;
        }
        *last = Some(std::time::Instant::now());
        self.in_flight = true;
        let done_tx = self.done_tx.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(KID_REFETCH_WAIT, done).await;
            let _ = done_tx.send(then);
        });
        true
    }

    /// Keeps `p` for the refresh under way; false if none is or enough already wait.
    fn wait(&mut self, p: Pending) -> bool {
        if !self.in_flight || self.waiting.len() >= AWAITING_REFETCH_MAX {
            return false;
        }
        self.waiting.push(p);
        true
    }

    /// The refresh is done: the payloads to open once more, in order of arrival.
    fn finish(&mut self, first: Option<Pending>) -> Vec<Pending> {
        self.in_flight = false;
        first
            .into_iter()
            .chain(std::mem::take(&mut self.waiting))
            .collect()
    }
}

/// DES-SEAL-6: an unknown `kid` triggers at most one refresh of `platform.pem` per 5 minutes.
pub const KID_REFETCH_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Most payloads kept waiting for one refresh; more are opened (and refused) at once.
const AWAITING_REFETCH_MAX: usize = 64;

/// Longest wait for that refresh before the message is opened again anyway.
const KID_REFETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn now() -> Time {
    Utc::now().fixed_offset()
}

fn core_hash(core: &GatewayCore) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    core.hash(&mut h);
    h.finish()
}

impl<S: RecordStore> Driver<S> {
    /// A driver for `core` over `link`; `datasets` tells the outbound builder each dataset's
    /// profile header. `sec` is swapped by the certificate refresh (DES-CERT-3); every
    /// operation uses the state current when it starts.
    pub fn new(
        core: GatewayCore,
        sec: Arc<ArcSwap<DataSecurity>>,
        store: Arc<S>,
        link: Link,
        datasets: HashMap<Dataset, DatasetProfile>,
    ) -> (Self, DriverHandle) {
        let (tx, commands) = mpsc::channel(64);
        (
            Self {
                core,
                sec,
                store,
                link,
                datasets: Arc::new(datasets),
                commands,
                link_up: false,
                saved_hash: None,
                sealed: HashMap::new(),
                sealed_order: VecDeque::new(),
                metrics: None,
                audit: AuditLog::disabled(),
                broken: Broken::default(),
                rewritten: 0,
                starts_seen: std::collections::HashSet::new(),
                statuses: 0,
                pending_stored: BTreeMap::new(),
                refresh: Refresh::new(),
                unsealable: false,
            },
            DriverHandle { tx },
        )
    }

    /// Keeps `metrics` true to the core's state after every turn (MON-1).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Where to ask for a refresh of `platform.pem` when a message is signed under an unknown
    /// `kid` (DES-SEAL-6): the certificate task, which fetches and answers when done.
    pub fn with_platform_refetch(mut self, refetch: mpsc::Sender<oneshot::Sender<()>>) -> Self {
        self.refresh.ask = Some(refetch);
        self
    }

    /// Runs deliberately wrong (conformance suite tests only, [`crate::broken`]).
    pub fn with_broken(mut self, broken: Broken) -> Self {
        self.broken = broken;
        self
    }

    /// Records the MQTT side in the access history (SM-AUDIT, DES-AUDIT-1).
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = audit;
        self
    }

    fn audit_event(&self, e: &GatewayEvent) {
        use serde_json::json;
        match e {
            GatewayEvent::Connected { .. } => {
                self.audit
                    .record("mqtt.session", "DES-MSG-CONN-3", json!({"outcome": "OK"}));
            }
            GatewayEvent::ConnectRefused {
                code, rule, reason, ..
            } => self.audit.record(
                "mqtt.session",
                rule,
                json!({"outcome": code.as_str(), "reason": reason.clone().unwrap_or_default()}),
            ),
            GatewayEvent::Anomaly { kind, rule, detail } => self.audit.record(
                "anomaly",
                rule,
                json!({"kind": format!("{kind:?}").to_lowercase(), "detail": detail}),
            ),
            _ => {}
        }
    }

    fn update_metrics(&self, events: &[GatewayEvent]) {
        let Some(m) = &self.metrics else {
            return;
        };
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.connected.set(i64::from(self.core.is_connected()));
        m.periodic_running
            .set(i64::from(self.core.periodic().running));
        m.last_seq.set(as_i64(self.core.last_seq()));
        m.unacked_records.set(as_i64(self.core.unacked_records()));
        m.held_records.set(as_i64(self.core.held_records()));
        m.oldest_unacked_seconds
            .set(as_i64(self.core.oldest_unacked_sec(now())));
        for e in events {
            match e {
                GatewayEvent::Anomaly { .. } => m.anomalies.inc(),
                GatewayEvent::RecordsAcked { range, .. } => m.records_acked.inc_by(range.len()),
                GatewayEvent::ConnectRefused { lasting: true, .. } => {
                    m.set_health(HealthState::Failed);
                }
                GatewayEvent::Connected { .. } => m.set_health(HealthState::Ok),
                _ => {}
            }
        }
    }

    /// Runs until shut down through the handle (or every handle dropped).
    pub async fn run(mut self) {
        loop {
            let wait = self
                .core
                .poll_timeout()
                .map(|d| (d - now()).to_std().unwrap_or_default())
                .unwrap_or(std::time::Duration::from_secs(3600));
            tokio::select! {
                ev = self.link.next() => match ev {
                    Some(ev) => self.on_link(ev).await,
                    None => return,
                },
                Some(first) = self.refresh.done_rx.recv() => {
                    // The refresh is done: the payload that asked for it, then those that
                    // arrived meanwhile, in order, each opened once more; then the anomalies
                    // kept while nothing could be sealed are tried again (DES-CERT-8).
                    for (topic, payload, retain) in self.refresh.finish(first) {
                        self.on_publish(topic, payload, retain, false).await;
                    }
                    if self.unsealable {
                        self.core.handle_sealing_restored(now());
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Status(st)) => {
                        self.core.set_external_status(st);
                        if let Some(m) = &self.metrics {
                            m.set_status(&self.core.monitor_status(now()));
                        }
                    }
                    Some(Command::Evacuate { reply }) => {
                        let r = self.evacuate().await;
                        let _ = reply.send(r);
                    }
                    Some(Command::Stored { dataset, range, sizes, ingested_at, reply }) => {
                        self.on_stored((dataset, range, sizes, ingested_at, reply));
                    }
                    Some(Command::Anomaly { kind, rule, detail }) => {
                        self.core.handle_anomaly(now(), kind, rule, detail);
                    }
                    Some(Command::Inspect { reply }) => {
                        let _ = reply.send(self.view());
                    }
                    Some(Command::Shutdown { reply }) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {
                    if self.core.poll_timeout().is_some_and(|d| d <= now()) {
                        self.core.handle_timeout(now());
                    }
                }
            }
            self.pump().await;
        }
    }

    fn on_stored(&mut self, p: PendingStored) {
        let next = self.core.last_seq() + 1;
        if p.1.first < next {
            let got = p.1;
            let _ = p.4.send(Err(IngestError::OutOfOrder {
                expected: next,
                got,
            }));
            return;
        }
        self.pending_stored.insert(p.1.first, p);
        while let Some(entry) = self.pending_stored.first_entry() {
            if *entry.key() != self.core.last_seq() + 1 {
                break;
            }
            let (dataset, range, sizes, at, reply) = entry.remove();
            let r = self.core.handle_stored(&dataset, range, &sizes, at);
            if let Err(e) = &r {
                tracing::error!(rule = "DES-ID-4", error = %e, "storage and core disagree");
            }
            let _ = reply.send(r);
        }
    }

    fn view(&self) -> CoreView {
        CoreView {
            connected: self.core.is_connected(),
            last_seq: self.core.last_seq(),
            unacked: self.core.unacked_records(),
            held: self.core.held_records(),
            running: self.core.periodic().running,
            periodic: self.core.periodic().clone(),
        }
    }

    async fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Up => {
                self.link_up = true;
                tracing::info!(rule = "DES-MQTT-8", "MQTT link up and subscribed");
                self.audit
                    .record("mqtt.link-up", "DES-MQTT-8", serde_json::json!({}));
                self.core.handle_connected(now());
            }
            LinkEvent::Down(why) => {
                if self.link_up {
                    self.link_up = false;
                    tracing::warn!(rule = "DES-MSG-CONN-3", %why, "MQTT link lost");
                    self.audit.record(
                        "mqtt.link-down",
                        "DES-MSG-CONN-3",
                        serde_json::json!({"why": why.to_string()}),
                    );
                    let at = if self.broken.is(Variant::BackoffNeverResets) {
                        // Every session taken as ended before it began: never 60 s long.
                        now() - chrono::Duration::days(1)
                    } else {
                        now()
                    };
                    self.core.handle_disconnected(at);
                }
            }
            LinkEvent::Publish {
                topic,
                payload,
                retain,
            } => self.on_publish(topic, payload, retain, true).await,
        }
    }

    /// Opens a received payload (off the async workers) and hands it to the core. Signed under
    /// an unknown `kid` and `may_refetch`: `platform.pem` is refreshed first, at most once per
    /// [`KID_REFETCH_EVERY`], and the payload opened once more afterwards, without a second
    /// refresh; only that second opening's outcome counts (DES-SEAL-6).
    async fn on_publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        may_refetch: bool,
    ) {
        let sec = self.sec.load_full();
        let unsigned_ok = self.broken.is(Variant::UnsignedCommandAccepted);
        let opened = tokio::task::spawn_blocking(move || {
            // The topic is kept only for the variant that rebuilds a refused message.
            let kept = unsigned_ok.then(|| topic.clone());
            let (inbound, unknown_kid) =
                outbound::open_inbound_kid(&sec, topic, &payload, retain, Utc::now());
            let inbound = match (inbound, kept) {
                (refused @ Inbound::Refused { .. }, Some(topic)) => decrypt_only(&sec, &payload)
                    .map_or(refused, |envelope| Inbound::Opened { topic, envelope }),
                (other, _) => other,
            };
            (inbound, unknown_kid, payload)
        })
        .await;
        let (mut inbound, unknown_kid, payload) = match opened {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "opening task failed");
                return;
            }
        };
        if unknown_kid && may_refetch && self.ask_kid_refetch(&inbound, &payload, retain) {
            return;
        }
        self.audit_inbound(&inbound);
        self.broken_rewrites(&mut inbound);
        if !self.broken_drops(&inbound) {
            self.check_archives(&inbound).await;
            self.core.handle_inbound(now(), inbound);
        }
    }

    /// Asks the certificate task for `platform.pem` and queues the payload to be opened again
    /// when it is done; false if no refetch may be made now (none configured, or one was made
    /// less than [`KID_REFETCH_EVERY`] ago).
    fn ask_kid_refetch(&mut self, inbound: &Inbound, payload: &[u8], retain: bool) -> bool {
        let topic = match inbound {
            Inbound::Opened { topic, .. } | Inbound::Refused { topic, .. } => topic.clone(),
        };
        let p = (topic.clone(), payload.to_vec(), retain);
        if self.refresh.in_flight {
            // A refresh is under way: this payload waits for it too (bounded).
            return self.refresh.wait(p);
        }
        let started = self.refresh.start(RefreshReason::UnknownKid, Some(p));
        if started {
            tracing::info!(rule = "DES-SEAL-6", %topic, "signed under an unknown kid: refreshing the CRL and platform.pem");
        }
        started
    }

    /// DES-CERT-8: `envelope` could not be sealed because the held platform certificate fails
    /// DES-CERT-4. The core keeps it if it is an anomaly; the first such failure of an episode
    /// is reported (`certificate`, kept too until sealing works) and the CRL and
    /// `platform.pem` are fetched again (at most once per [`KID_REFETCH_EVERY`] for this
    /// reason, not counted against the unknown-`kid` refresh).
    fn on_unsealable(&mut self, envelope: Envelope, e: &SecurityError) {
        // Warned once per episode; every further message at debug level (no log flood).
        if self.unsealable {
            tracing::debug!(rule = "DES-CERT-8", r#type = envelope.message_type().as_str(), message = %envelope.message_id, error = %e, "not sealed");
        } else {
            tracing::warn!(rule = "DES-CERT-8", r#type = envelope.message_type().as_str(), message = %envelope.message_id, error = %e, "not sealed: the platform certificate held fails DES-CERT-4");
        }
        if self.broken.is(Variant::UnsealableReportsDropped) {
            return;
        }
        self.core.handle_unsealable(envelope);
        if !self.unsealable {
            self.unsealable = true;
            self.core.handle_anomaly(
                now(),
                AnomalyKind::Certificate,
                "DES-CERT-8",
                format!("nothing can be sealed to the platform: its certificate held fails: {e}"),
            );
        }
        if self.broken.is(Variant::UnsealableRefetchFlood) {
            self.refresh.last[RefreshReason::Unsealable as usize] = None;
        }
        if self.refresh.start(RefreshReason::Unsealable, None) {
            tracing::info!(rule = "DES-CERT-8", "refreshing the CRL and platform.pem");
        }
    }

    /// A message was sealed to the platform: an episode of DES-CERT-8 is over, the anomalies
    /// kept during it go.
    fn sealed_again(&mut self) {
        if self.unsealable {
            self.unsealable = false;
            tracing::info!(rule = "DES-CERT-8", "sealing to the platform works again");
            self.core.handle_sealing_restored(now());
        }
    }

    async fn shutdown(&mut self) {
        if self.core.in_session() {
            self.core.handle_shutdown(now());
            self.pump().await;
            // Wait a little for disconnect.result (DES-MSG-DISC-1); the link may be gone.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
            while self.core.in_session() {
                tokio::select! {
                    ev = self.link.next() => match ev {
                        Some(ev) => self.on_link(ev).await,
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
                self.pump().await;
            }
        }
        self.save_if_changed().await;
        self.link.close().await;
    }

    async fn save_if_changed(&mut self) {
        let h = core_hash(&self.core);
        if self.saved_hash == Some(h) {
            return;
        }
        let snap = self.core.snapshot();
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.save_snapshot(&snap)).await {
            Ok(Ok(())) => self.saved_hash = Some(h),
            Ok(Err(e)) => tracing::error!(rule = "ST-STORE-1", error = %e, "snapshot not saved"),
            Err(e) => tracing::error!(rule = "ST-STORE-1", error = %e, "snapshot task failed"),
        }
    }

    /// Steps (1)–(3) of the module doc.
    async fn pump(&mut self) {
        loop {
            let mut events = Vec::new();
            while let Some(e) = self.core.poll_event() {
                events.push(e);
            }
            for e in &events {
                log_event(e);
                self.audit_event(e);
            }
            self.update_metrics(&events);
            if self.broken.is(Variant::ConnectRetryAtOnce)
                && events
                    .iter()
                    .any(|e| matches!(e, GatewayEvent::ConnectRefused { lasting: false, .. }))
                && let Some(retry_at) = self.core.poll_timeout()
            {
                // The back-off not waited for: its timer fired now.
                self.core.handle_timeout(retry_at.max(now()));
            }
            if !events.is_empty() {
                let store = self.store.clone();
                let r = tokio::task::spawn_blocking(move || {
                    for e in &events {
                        store.on_event(e)?;
                    }
                    Ok::<(), String>(())
                })
                .await;
                if let Ok(Err(e)) | Err(e) = r.map_err(|e| e.to_string()) {
                    tracing::error!(rule = "ST-STORE-1", error = %e, "storage event failed");
                }
            }
            self.save_if_changed().await;
            let mut transmits = Vec::new();
            while let Some(t) = self.core.poll_transmit() {
                transmits.push(t);
            }
            if transmits.is_empty() {
                return;
            }
            for t in transmits {
                self.transmit(t).await;
            }
            // Giving a data message up produced new events: loop.
        }
    }

    async fn transmit(&mut self, t: Transmit) {
        match t {
            Transmit::Message { topic, envelope } => {
                if envelope.message_type() == MessageType::MonitorStatus
                    && self.broken.is(Variant::NoStatus)
                {
                    return;
                }
                if envelope.message_type() == MessageType::MonitorStatus
                    && self.broken.is(Variant::SlowStatus)
                {
                    self.statuses += 1;
                    if self.statuses % 3 != 1 {
                        return;
                    }
                }
                if let (Some(to), Some(r)) = (&envelope.in_reply_to, &envelope.result) {
                    self.audit.record(
                        "mqtt.answer",
                        "SM-AUDIT",
                        serde_json::json!({"type": envelope.message_type().as_str(),
                                           "messageId": envelope.message_id.as_str(),
                                           "inReplyTo": to.as_str(), "code": r.code.as_str()}),
                    );
                }
                let sec = self.sec.load_full();
                let sealed = tokio::task::spawn_blocking(move || {
                    let sealed = outbound::seal_envelope(&sec, &envelope, Utc::now());
                    (envelope, sealed)
                })
                .await;
                match sealed {
                    Ok((_, Ok(p))) => {
                        self.publish(topic, p).await;
                        self.sealed_again();
                    }
                    Ok((envelope, Err(OutboundError::Seal(e)))) if e.fails_certificate_check() => {
                        self.on_unsealable(envelope, &e);
                    }
                    Ok((_, Err(e))) => tracing::error!(rule = "DES-SEAL-1", error = %e, "not sent"),
                    Err(e) => tracing::error!(error = %e, "sealing task failed"),
                }
            }
            Transmit::Data(mut req) => {
                if req.retransmission && self.broken.is(Variant::NeverRetransmit) {
                    return;
                }
                if req.kind == crate::protocol::message::DataKind::Resend
                    && self.broken.is(Variant::WrongResendRange)
                    && let Some(r) = SeqRange::new(req.range.first + 1, req.range.last + 1)
                {
                    req.range = r;
                }
                if let Some(m) = &self.metrics {
                    if req.retransmission {
                        m.data_retransmitted.inc();
                    } else {
                        m.data_sent.inc();
                    }
                }
                if req.retransmission
                    && let Some(p) = self.sealed.get(&req.message_id)
                {
                    let p = p.clone();
                    self.publish(req.topic.clone(), p).await;
                    return;
                }
                let id = req.message_id.clone();
                let topic = req.topic.clone();
                match self.build_data(req).await {
                    Ok(p) => {
                        self.keep_sealed(id, p.clone());
                        self.publish(topic, p).await;
                        self.sealed_again();
                    }
                    Err(why) => {
                        tracing::warn!(rule = "DES-MSG-DATA-5", message = %id, %why, "data message given up");
                        self.core.handle_data_failed(now(), &id, &why);
                    }
                }
            }
        }
    }

    /// The broken variants that change a command before the core sees it (test-only).
    fn broken_rewrites(&mut self, inbound: &mut Inbound) {
        let Inbound::Opened { envelope, .. } = inbound else {
            return;
        };
        let command = matches!(
            envelope.message_type(),
            MessageType::PeriodicStart | MessageType::PeriodicStop | MessageType::ResendRequest
        );
        if command && self.broken.is(Variant::StaleAccepted) {
            envelope.timestamp = now();
        }
        if self.broken.is(Variant::UnknownDatasetAccepted)
            && let Body::PeriodicStart(start) = &mut envelope.body
        {
            let known = self.datasets.clone();
            start.datasets.retain(|d| known.contains_key(d));
        }
        // No replay protection at all: a start seen before is taken as a new command (a fresh
        // message ID past the reply memory, the next command sequence number).
        if self.broken.is(Variant::ReplayApplied)
            && let Body::PeriodicStart(start) = &mut envelope.body
            && !self.starts_seen.insert(envelope.message_id.to_string())
        {
            self.rewritten += 1;
            start.command_seq = self.core.periodic().command_seq + 1;
            if let Ok(id) = MessageId::new(format!("{}.r{}", envelope.message_id, self.rewritten)) {
                envelope.message_id = id;
            }
        }
    }

    fn broken_drops(&self, inbound: &Inbound) -> bool {
        let b = self.broken;
        match inbound {
            Inbound::Refused { .. } => b.is(Variant::SilentOnForged),
            Inbound::Opened { envelope, .. } => match envelope.message_type() {
                MessageType::PeriodicStop => b.is(Variant::IgnoreStop),
                MessageType::ResendRequest => b.is(Variant::ResendIgnored),
                _ => false,
            },
        }
    }

    fn audit_inbound(&self, inbound: &Inbound) {
        use serde_json::json;
        match inbound {
            Inbound::Opened { topic, envelope } => self.audit.record(
                "mqtt.received",
                "SM-AUDIT",
                json!({"topic": topic, "type": envelope.message_type().as_str(),
                       "messageId": envelope.message_id.as_str(),
                       "from": envelope.gateway_id.as_str()}),
            ),
            Inbound::Refused { topic, error, .. } => self.audit.record(
                "mqtt.refused",
                error.rule(),
                json!({"topic": topic, "code": error.result_code().as_str(),
                       "why": error.to_string()}),
            ),
        }
    }

    /// Before a `resend.request` is handed to the core: reads back every archive it would
    /// select (DES-EVAC-5: SHA-256 against the index, decryption, signature, header), so that
    /// an archive that is missing or fails a check is reported and its records count as no
    /// longer held — `resend.result` then says PARTIAL or NOT_FOUND instead of promising
    /// records that cannot be sent. The archives are read again when their data messages are
    /// built (`build_data`): the check has to come before the core answers, and keeping the
    /// records of a large resend in memory until then would cost more than a second read of
    /// a rare resend from the archive.
    async fn check_archives(&mut self, inbound: &Inbound) {
        let Inbound::Opened { envelope, .. } = inbound else {
            return;
        };
        let Body::ResendRequest(request) = &envelope.body else {
            return;
        };
        if self.broken.is(Variant::ArchiveLossUnreported) {
            return;
        }
        for (dataset, range) in self.core.archived_selection(request) {
            let store = self.store.clone();
            let ds = dataset.clone();
            let read =
                tokio::task::spawn_blocking(move || store.records(&ds, range, true).map(|_| ()))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
            if let Err(why) = read {
                tracing::error!(rule = "DES-EVAC-5", %dataset, first = range.first, last = range.last, %why, "archived records cannot be read back: no longer held");
                let detail = format!(
                    "archived records {dataset} {}..={} cannot be read back: {why}",
                    range.first, range.last
                );
                self.core.handle_archive_lost(now(), range, detail);
            }
        }
    }

    async fn build_data(&self, req: DataRequest) -> Result<String, String> {
        let sec = self.sec.load_full();
        let store = self.store.clone();
        let datasets = self.datasets.clone();
        let gw = self.core.gateway_id().clone();
        let unsigned = self.broken.is(Variant::UnsignedData);
        tokio::task::spawn_blocking(move || {
            let ds = datasets
                .get(&req.dataset)
                .ok_or_else(|| format!("dataset {} not configured", req.dataset))?;
            let records = store.records(&req.dataset, req.range, req.archived)?;
            let profile = outbound::build_profile(&gw, &req, ds, records, req.timestamp)
                .map_err(|e| e.to_string())?;
            if unsigned && req.format == crate::protocol::message::ProfileFormat::Json {
                return seal_data_unsigned(&sec, req, &profile.to_json());
            }
            let (_, sealed) = outbound::seal_data(&sec, req, &profile, ds, Utc::now())
                .map_err(|e| e.to_string())?;
            Ok(sealed)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn evacuate(&mut self) -> Result<u64, String> {
        let pinned = self.core.pinned_ranges();
        let store = self.store.clone();
        let ranges = tokio::task::spawn_blocking(move || store.evacuate(&pinned))
            .await
            .map_err(|e| e.to_string())??;
        let mut n = 0;
        for r in ranges {
            match self.core.handle_evacuated(r) {
                Ok(_) => n += r.len(),
                Err(e) => {
                    tracing::error!(rule = "ST-EVAC-1", error = %e, "evacuated range refused by the core");
                }
            }
        }
        self.save_if_changed().await;
        Ok(n)
    }

    fn keep_sealed(&mut self, id: MessageId, payload: String) {
        if self.sealed.insert(id.clone(), payload).is_none() {
            self.sealed_order.push_back(id);
        }
        while self.sealed_order.len() > SEALED_KEPT {
            if let Some(old) = self.sealed_order.pop_front() {
                self.sealed.remove(&old);
            }
        }
    }

    async fn publish(&self, topic: String, payload: String) {
        if let Err(e) = self.link.publish(topic, payload.into_bytes()).await {
            // The core retransmits what needs it (DES-MSG-DATA-3, DES-MSG-PS-5).
            tracing::warn!(rule = "DES-MQTT-6", error = %e, "publish failed");
        }
    }
}

fn log_event(e: &GatewayEvent) {
    match e {
        GatewayEvent::Anomaly { kind, rule, detail } => {
            tracing::warn!(rule, kind = ?kind, %detail, "anomaly");
        }
        GatewayEvent::Ignored { rule, detail } => {
            tracing::info!(rule, %detail, "ignored");
        }
        GatewayEvent::ConnectRefused {
            code, rule, reason, ..
        } => {
            tracing::warn!(rule, code = ?code, reason = ?reason, "connect refused");
        }
        other => tracing::debug!(event = ?other, "core event"),
    }
}

/// The `unsigned-data` variant: a JSON data profile encrypted to the platform but not signed.
fn seal_data_unsigned(sec: &DataSecurity, req: DataRequest, json: &[u8]) -> Result<String, String> {
    use crate::security::jose::{KeyAlg, Profile, jwe_encrypt};
    let now = Utc::now();
    let peer = sec
        .validate_peer(outbound::PLATFORM_PEER, now)
        .map_err(|e| e.to_string())?;
    let pk = peer.cert.public_key().map_err(|e| e.to_string())?;
    let protected = jwe_encrypt(
        &pk,
        KeyAlg::RsaOaep256,
        json,
        Some(Profile::JsonProfile.cty()),
        Some(&peer.kid),
    )
    .map_err(|e| e.to_string())?;
    let envelope = req.into_envelope(protected);
    sec.seal_message(outbound::PLATFORM_PEER, &envelope.encode(), now)
        .map_err(|e| e.to_string())
}

/// The `unsigned-command-accepted` variant: a command that decrypts to an envelope is taken
/// without any signature.
fn decrypt_only(sec: &DataSecurity, payload: &[u8]) -> Option<crate::protocol::message::Envelope> {
    use crate::security::jose::{JwePolicy, jwe_decrypt};
    let token = std::str::from_utf8(payload).ok()?;
    let bytes = jwe_decrypt(
        token,
        sec.keys().own_key(),
        &JwePolicy {
            cty: None,
            kid: None,
        },
    )
    .ok()?;
    crate::protocol::message::Envelope::decode(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refresh whose certificate task answers at once.
    fn answering() -> Refresh {
        let (ask, mut asked) = mpsc::channel::<oneshot::Sender<()>>(4);
        tokio::spawn(async move {
            while let Some(done) = asked.recv().await {
                let _ = done.send(());
            }
        });
        let mut r = Refresh::new();
        r.ask = Some(ask);
        r
    }

    fn pending(n: u8) -> Pending {
        (format!("t{n}"), vec![n], false)
    }

    #[tokio::test]
    async fn each_reason_has_its_own_limit_and_one_refresh_runs_at_a_time() {
        let mut r = answering();
        // DES-CERT-8 first: it does not use up the unknown-kid refresh (DES-SEAL-6).
        assert!(r.start(RefreshReason::Unsealable, None));
        assert!(
            !r.start(RefreshReason::UnknownKid, Some(pending(1))),
            "one at a time"
        );
        assert!(
            r.wait(pending(2)),
            "a payload waits for the refresh under way"
        );
        let first = r.done_rx.recv().await.unwrap();
        assert_eq!(r.finish(first), vec![pending(2)]);
        assert!(r.start(RefreshReason::UnknownKid, Some(pending(3))));
        let first = r.done_rx.recv().await.unwrap();
        assert_eq!(
            r.finish(first),
            vec![pending(3)],
            "the asking payload first"
        );
        // Both used within KID_REFETCH_EVERY: neither again.
        assert!(!r.start(RefreshReason::Unsealable, None));
        assert!(!r.start(RefreshReason::UnknownKid, Some(pending(4))));
        assert!(!r.wait(pending(5)), "nothing to wait for");
    }

    #[tokio::test]
    async fn waiting_payloads_are_bounded() {
        let mut r = answering();
        assert!(r.start(RefreshReason::UnknownKid, Some(pending(0))));
        for n in 0..AWAITING_REFETCH_MAX {
            assert!(r.wait(pending(n as u8)));
        }
        assert!(!r.wait(pending(255)));
    }
}
