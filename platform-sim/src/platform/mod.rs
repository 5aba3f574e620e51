//! The platform runtime: the platform's side of every protocol v1 flow, running for real on
//! tokio (IF-CONN-1, IF-DISC-1, IF-PSTART-1..4, IF-PSEND-3, IF-PSTOP-1, IF-RESEND-1, MON-1,
//! MON-2, SM-RESEND, SM-ACL, SEC-CERT-2; `docs/protocol.md` §5–§7).
//!
//! It drives the sans-IO [`PlatformCore`] with real time:
//!
//! - **Inbound**: the broker's [`PlatformLink`] → [`Inbound::admit`] (uplink topic, tenant not
//!   revoked) → [`DataSecurity::open_message`] with the gateway's data-protection certificate
//!   (issued by the CA, loaded as a peer named by the gateway ID, re-read once when opening
//!   fails) → [`Envelope::decode`] → [`PlatformInbound`]. Opening or decoding failures become
//!   [`PlatformInbound::Refused`]: an anomaly with its rule ID is recorded, nothing is acted on
//!   (DES-SEAL-5); for a payload that opened but did not decode the runtime passes what
//!   [`gateway::protocol::message::peek`] reads, and the core answers it if DES-MSG-2 allows. For `data`, the profile is opened (JSON: `open_json_profile`; XML:
//!   `open_xml_profile`, both validating the gateway's certificate first), decoded with
//!   [`gateway::profile`] and its header compared with the message (gateway, dataset, range;
//!   the record count equals the range length by the decoder) → [`ProfileVerdict`]: failing
//!   to open → `Failed` (SECURITY_FAILED), a header that differs → `Mismatch` (MALFORMED,
//!   DES-MSG-DATA-1).
//! - **Store before ack**: the core's `StoreRecords` events are written to SQLite
//!   ([`store`]) before any transmit produced by the same input is published, so a `data.ack`
//!   OK always follows a committed transaction (DES-MSG-DATA-2). A store failure stops the
//!   runtime instead of acknowledging.
//! - **Outbound**: [`PlatformTransmit`] → encode → `seal_message` to the gateway → faults
//!   ([`FaultConfig`]: drop, delay, duplicate, reorder, withheld acks, tampered / unsigned /
//!   expired-certificate / revoked-certificate commands) → publish on the down topic.
//! - **Timers**: `poll_timeout`/`handle_timeout` (command retries, gap resend requests); every
//!   2 s the CA index is re-read so revocations by another process are enforced.
//! - **Operator**: [`PlatformHandle`] implements [`OperatorBackend`]; revoke = CA revoke + CRL
//!   re-sign + HTTPS publish + broker kick + refusal of the gateway's further messages.
//! - **Restart**: at start the core is rebuilt from the store (per gateway its storage epoch,
//!   highest boot count and last seq in it, periodic state, and the seq runs held in that
//!   epoch), so `connect.result.ackedThrough`, gap detection and the DES-MSG-CONN-4 epoch
//!   rules survive a restart. The session row is written when the core accepts a `connect`
//!   (never for a refused one), records are stored by (epoch, seq).

pub mod faults;
pub mod store;

use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gateway::profile::DataProfile;
use gateway::protocol::flow::{InboundError, Time};
use gateway::protocol::ids::{GatewayId, MessageId, SeqRange, StoreEpoch};
use gateway::protocol::message::{
    Body, Data, Envelope, MessageType, PeriodicState, ProfileFormat, ResultCode,
};
use gateway::protocol::platform_side::{
    Command as CoreCommand, PlatformConfig, PlatformCore, PlatformEvent, PlatformInbound,
    PlatformTransmit, ProfileVerdict, ResendSelector, StoredGateway,
};
use gateway::protocol::topic::platform_subscription;
use gateway::security::jose::{KeyAlg, Profile};
use gateway::security::{DataSecurity, Identity, KeyStore, SecurityError};
use rumqttd::local::LinkTx;
use serde::Serialize;

use crate::broker::{BrokerError, Inbound, MqttBroker, PlatformLink, Refusal};
use crate::ca::{Ca, CaError, CertKind, FaultyCert};
use crate::https::{HttpsError, HttpsServer, Published};
use crate::ops::{
    AnomalyView, CommandReceipt, FaultConfig, GatewayView, OperatorBackend, OperatorCommand,
    OperatorError,
};
use store::{SessionRow, Store, StoreError};

/// Why the runtime could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// DES-MSG-DATA-2: the SQLite store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SEC-CERT-1: the platform's data-protection key material is unusable.
    #[error("SEC-CERT-1: platform key material: {0}")]
    Security(#[from] SecurityError),
    /// SEC-CERT-2: the CA failed (revocation, CRL).
    #[error("SEC-CERT-2: CA: {0}")]
    Ca(#[from] CaError),
    /// DES-MQTT-4: the broker link failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// IF-CERT-1: the HTTPS endpoint refused the new material.
    #[error(transparent)]
    Https(#[from] HttpsError),
    /// SEC-CERT-1: a key or certificate file could not be read.
    #[error("SEC-CERT-1: {0}")]
    Io(#[from] std::io::Error),
}

/// Anomalies per gateway shown to operators (the store keeps all).
const ANOMALIES_SHOWN: u32 = 100;

/// Rotated-away platform key stores kept for opening (DES-SEAL-6).
const RETIRED_KEPT: usize = 2;

/// Options of the runtime.
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    /// The protocol core's configuration (intervals told to gateways, retry and gap timers).
    pub core: PlatformConfig,
    /// The SQLite database file.
    pub store_path: PathBuf,
    /// The MQTT subscription of the platform link (default: every gateway's uplinks).
    pub subscription: String,
    /// The in-process MQTT client ID (a second link `{id}-tx` publishes).
    pub client_id: String,
    /// Faults in force from the start.
    pub faults: FaultConfig,
    /// Where every opened uplink and every sealed downlink is reported (the conformance
    /// suite's wire log); `None`: not reported.
    pub wire: Option<WireTap>,
    /// Seed of the draws that decide which messages the `drop_percent` and
    /// `duplicate_percent` faults hit, so that a run can be replayed exactly (the conformance
    /// suite passes each case's seed); `None`: seeded by the OS.
    pub fault_seed: Option<u64>,
}

/// Receives [`WireEvent`]s (called with the platform's state locked: keep it short).
#[derive(Clone)]
pub struct WireTap(pub Arc<dyn Fn(WireEvent) + Send + Sync>);

impl std::fmt::Debug for WireTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WireTap")
    }
}

impl WireTap {
    fn emit(&self, e: WireEvent) {
        (self.0)(e);
    }
}

/// One MQTT message as the platform saw it: opened (uplink) or before sealing (downlink). No
/// field value is in it (data profiles are summarised, DES-MASK-4 values never shown).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent {
    /// When (DES-ENV-2 timestamp).
    pub at: String,
    /// `up` (gateway → platform) or `down`.
    pub direction: &'static str,
    /// The gateway.
    pub gateway: String,
    /// The topic.
    pub topic: String,
    /// The message type (`undecodable` for an uplink that did not decode).
    pub message_type: String,
    /// Its messageId (empty if undecodable).
    pub message_id: String,
    /// The `inReplyTo` of a reply.
    pub in_reply_to: Option<String>,
    /// The result code of a reply.
    pub code: Option<String>,
    /// The body in short: a data message's dataset, kind, range, format, sealed size and, for a
    /// resend, the request it answers (`for request <messageId>`); other bodies as
    /// JSON; a refusal's reason.
    pub summary: String,
    /// A fault applied to a downlink (`dropped`, `duplicated`, `withheld`, `tampered`, …) or
    /// to an uplink (`lost`).
    pub fault: Option<String>,
    /// Of an uplink, what its JWE shows without the key (DES-SEAL-1/3): `alg`, `enc` and the
    /// SHA-256 of the encrypted content key (the same key twice means a content key reused).
    pub seal: Option<SealFacts>,
}

/// The visible part of an uplink's sealing (DES-SEAL-3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SealFacts {
    /// The JWE protected header's `alg`.
    pub alg: String,
    /// Its `enc`.
    pub enc: String,
    /// Lower-case hex SHA-256 of the JWE Encrypted Key.
    pub encrypted_key_sha256: String,
}

impl SealFacts {
    /// Reads them from a JWE Compact Serialization; `None` if it is not one.
    pub fn of(token: &[u8]) -> Option<SealFacts> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let token = std::str::from_utf8(token).ok()?;
        let mut parts = token.split('.');
        let (header, key) = (parts.next()?, parts.next()?);
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .ok()?;
        let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key)
            .ok()?;
        Some(SealFacts {
            alg: header["alg"].as_str()?.to_owned(),
            enc: header["enc"].as_str()?.to_owned(),
            encrypted_key_sha256: hex::encode(sha2::Sha256::digest(&key)),
        })
    }
}

fn wire_summary(env: &Envelope) -> String {
    match &env.body {
        Body::Data(d) => format!(
            "{} {} {}..={} {:?} ({} bytes sealed){}",
            d.dataset,
            serde_json::to_value(d.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            d.range.first,
            d.range.last,
            d.format,
            d.profile.len(),
            d.request
                .as_ref()
                .map(|r| format!(" for request {r}"))
                .unwrap_or_default()
        ),
        _ => {
            let body = serde_json::from_slice::<serde_json::Value>(&env.encode())
                .ok()
                .and_then(|v| v.get("body").map(ToString::to_string))
                .unwrap_or_default();
            // A refusal's reason after its body.
            match &env.result {
                Some(r) if r.code != ResultCode::Ok => {
                    format!("{body} — {}", r.reason.as_deref().unwrap_or(""))
                }
                _ => body,
            }
        }
    }
}

fn wire_event(
    direction: &'static str,
    gateway: &GatewayId,
    topic: &str,
    env: &Envelope,
    fault: Option<String>,
) -> WireEvent {
    WireEvent {
        at: ts(&now()),
        direction,
        gateway: gateway.to_string(),
        topic: topic.to_owned(),
        message_type: env.message_type().as_str().to_owned(),
        message_id: env.message_id.to_string(),
        in_reply_to: env.in_reply_to.as_ref().map(ToString::to_string),
        code: env.result.as_ref().map(|r| r.code.as_str().to_owned()),
        summary: wire_summary(env),
        fault,
        seal: None,
    }
}

impl PlatformOptions {
    /// Defaults of protocol v1 with the store at `store_path`.
    pub fn new(store_path: PathBuf) -> Self {
        PlatformOptions {
            core: PlatformConfig::default(),
            store_path,
            subscription: platform_subscription(),
            client_id: "platform".into(),
            faults: FaultConfig::default(),
            wire: None,
            fault_seed: None,
        }
    }
}

/// The platform's key store for `key_pem` / `cert_pem` (a data-protection certificate of
/// `ca`), holding the CA's current CRL.
fn signer(ca: &Ca, key_pem: &[u8], cert_pem: &[u8]) -> Result<DataSecurity, PlatformError> {
    let keys = KeyStore::from_pem(key_pem, cert_pem, ca.root_pem().as_bytes())?;
    let mut sec = DataSecurity::new(keys);
    sec.update_crl(ca.crl_pem()?.as_bytes(), Utc::now())?;
    Ok(sec)
}

/// The draws that decide which messages a percentage fault hits: seeded (a replay hits the
/// same messages) or from the OS.
struct FaultDraws(rand::rngs::StdRng);

impl FaultDraws {
    fn new(seed: Option<u64>) -> Self {
        FaultDraws(match seed {
            Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
            None => rand::rngs::StdRng::from_os_rng(),
        })
    }

    /// Starts the draws again from `seed`, whatever was drawn before.
    fn reseed(&mut self, seed: u64) {
        self.0 = rand::rngs::StdRng::seed_from_u64(seed);
    }

    /// Whether the next message is hit by a fault of `percent` (0: never, no draw made).
    fn hits(&mut self, percent: u8) -> bool {
        percent > 0 && self.0.random_range(0..100u8) < percent
    }
}

#[derive(Debug, Clone)]
struct Outgoing {
    topic: String,
    payload: Vec<u8>,
    delay: Duration,
}

struct State {
    core: PlatformCore,
    sec: DataSecurity,
    /// The key stores of rotated-away platform certificates, newest first (at most
    /// [`RETIRED_KEPT`]): still used to open what gateways sealed to the old certificate
    /// before they learnt the new one (DES-SEAL-6). Not persisted.
    retired: Vec<DataSecurity>,
    bad_signers: BTreeMap<&'static str, DataSecurity>,
    /// The faulty signer whose certificate is served as `platform.pem` (fault
    /// `offer_signer_cert`).
    offered: Option<&'static str>,
    ca: Ca,
    store: Store,
    faults: FaultConfig,
    /// The draws of the percentage faults ([`PlatformOptions::fault_seed`]).
    fault_draws: FaultDraws,
    held: Option<Outgoing>,
    /// The `data.ack`s kept back by the late-acks fault, oldest first: sent when the faults
    /// are next set without it.
    late: Vec<Outgoing>,
    last_seen: BTreeMap<GatewayId, Time>,
    /// What the HTTPS endpoint served before the latest CRL change (stale-CRL fault).
    pre_revocation: Option<Published>,
    /// The latest public material (real CRL), to tell when the CRL changes.
    published: Option<Published>,
    last_command_id: Option<MessageId>,
    /// The stranger served as `root.pem` by the foreign-root fault (made once).
    foreign_root: Option<String>,
    /// The last `periodic.start` as sent (envelope, outgoing token), for the replay fault.
    last_start: Option<(Envelope, Outgoing)>,
    /// The start the replay fault sends again once the gateway has answered the stop.
    replay_after_stop: Option<(GatewayId, Envelope, Outgoing)>,
    failed: Option<String>,
    wire: Option<WireTap>,
}

struct Shared {
    st: Mutex<State>,
    wake: tokio::sync::Notify,
    tx: Mutex<LinkTx>,
    mqtt: MqttBroker,
    https: Option<HttpsServer>,
    rt: tokio::runtime::Handle,
}

/// A running platform. Dropping it stops the runtime task (the broker lives on).
pub struct Platform {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    drain: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").finish_non_exhaustive()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.task.abort();
        self.drain.abort();
    }
}

/// A cheap handle on the runtime: the operator backend, and read access for tests.
#[derive(Clone)]
pub struct PlatformHandle(Arc<Shared>);

impl std::fmt::Debug for PlatformHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformHandle").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn publish_on(tx: &mut LinkTx, o: Outgoing) {
    if let Err(e) = tx.publish(o.topic.clone(), o.payload) {
        tracing::warn!(topic = %o.topic, error = %e, "publish failed");
    }
}

fn now() -> Time {
    Utc::now().fixed_offset()
}

fn ts(t: &Time) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// The wire spelling of a serde enum (e.g. an anomaly kind).
fn wire<T: Serialize>(t: &T) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    }
}

impl Platform {
    /// Starts the runtime on the current tokio runtime: loads the platform's data-protection
    /// key and the CRL from `ca`, opens the store, replays it into the core and subscribes.
    pub fn start(
        ca: Ca,
        mqtt: MqttBroker,
        https: Option<HttpsServer>,
        opts: PlatformOptions,
    ) -> Result<Self, PlatformError> {
        let (cert, key) = ca.platform_dp_paths();
        let sec = signer(&ca, &std::fs::read(&key)?, &std::fs::read(&cert)?)?;
        let store = Store::open(&opts.store_path)?;
        let published = Published::from_ca(&ca).ok();
        let mut cfg = opts.core.clone();
        cfg.epoch = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let mut core = PlatformCore::new(cfg.clone());
        restore(&mut core, &store, now())?;
        let link = mqtt.platform_link_with(&opts.client_id, &opts.subscription)?;
        let (tx, mut rx) = mqtt.link(&format!("{}-tx", opts.client_id))?;
        // The publishing link's notifications (acks) are drained so the router never finds
        // its queue full or closed.
        let drain = tokio::spawn(async move { while rx.next().await.is_ok() {} });
        if let Some(h) = https.as_ref() {
            h.set_unreachable(opts.faults.https_unreachable);
        }
        let shared = Arc::new(Shared {
            st: Mutex::new(State {
                core,
                sec,
                retired: Vec::new(),
                bad_signers: BTreeMap::new(),
                offered: None,
                ca,
                store,
                faults: opts.faults,
                fault_draws: FaultDraws::new(opts.fault_seed),
                held: None,
                late: Vec::new(),
                last_seen: BTreeMap::new(),
                pre_revocation: None,
                published,
                last_command_id: None,
                last_start: None,
                replay_after_stop: None,
                foreign_root: None,
                failed: None,
                wire: opts.wire.clone(),
            }),
            wake: tokio::sync::Notify::new(),
            tx: Mutex::new(tx),
            mqtt,
            https,
            rt: tokio::runtime::Handle::current(),
        });
        let task = tokio::spawn(run_loop(shared.clone(), link));
        Ok(Platform {
            shared,
            task,
            drain,
        })
    }

    /// A handle (operator backend; store path for readers).
    pub fn handle(&self) -> PlatformHandle {
        PlatformHandle(self.shared.clone())
    }

    /// The HTTPS endpoint, if one was given.
    pub fn https(&self) -> Option<&HttpsServer> {
        self.shared.https.as_ref()
    }
}

/// Rebuilds the core from the store (DES-MSG-CONN-4, DES-MSG-DATA-2): per known gateway its
/// current epoch, the highest boot count accepted and the highest seq reported in it, its
/// periodic state and the seq runs held in that epoch, all offline.
fn restore(core: &mut PlatformCore, store: &Store, now: Time) -> Result<(), PlatformError> {
    for s in store.sessions()? {
        let periodic: PeriodicState = serde_json::from_str(&s.periodic).unwrap_or_default();
        // A 1.0 database has the empty epoch: no epoch known, the next connect begins one.
        let epoch = StoreEpoch::new(s.epoch.as_str()).ok();
        let runs = store.runs(&s.gateway, &s.epoch)?;
        let last_seq = runs.last().map_or(0, |(_, r)| r.last).max(s.last_seq);
        core.restore_gateway(
            now,
            &s.gateway,
            StoredGateway {
                epoch,
                boot_count: s.boot_count,
                last_seq,
                periodic,
                runs,
            },
        );
    }
    while core.poll_transmit().is_some() {}
    while core.poll_event().is_some() {}
    Ok(())
}

async fn run_loop(shared: Arc<Shared>, mut link: PlatformLink) {
    let mut ca_tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        let sleep_for = {
            let st = lock(&shared.st);
            if let Some(f) = &st.failed {
                tracing::error!(error = %f, "platform runtime stopped");
                return;
            }
            st.core
                .poll_timeout()
                .map(|t| (t - now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1))
        };
        tokio::select! {
            m = link.next_inbound() => match m {
                Ok(m) => shared.inbound(m),
                Err(e) => {
                    tracing::error!(error = %e, "platform link lost");
                    return;
                }
            },
            _ = tokio::time::sleep(sleep_for) => {}
            _ = shared.wake.notified() => {}
            _ = ca_tick.tick() => shared.reload_ca(),
        }
        shared.tick();
    }
}

impl State {
    fn anomaly(
        &mut self,
        gw: Option<&GatewayId>,
        at: Time,
        src: &str,
        kind: &str,
        rule: &str,
        detail: &str,
    ) {
        if let Err(e) = self
            .store
            .insert_anomaly(gw, &ts(&at), src, kind, rule, detail)
        {
            self.failed = Some(e.to_string());
        }
    }

    /// Loads `gw`'s data-protection certificate from the CA into the current key store and
    /// every retired one (a gateway first heard from after a rotation may still seal to the
    /// previous platform certificate, DES-SEAL-6); `force`: even if the current store holds
    /// one (e.g. after re-provisioning).
    fn load_peer(&mut self, gw: &GatewayId, force: bool) {
        if !force && self.sec.keys().peer(gw.as_str()).is_ok() {
            return;
        }
        let Some(pem) = self.ca.gateway_dp_cert_pem(gw) else {
            return;
        };
        for sec in std::iter::once(&mut self.sec).chain(self.retired.iter_mut()) {
            if let Err(e) =
                sec.update_peer(Identity::gateway(gw.as_str()), pem.as_bytes(), Utc::now())
            {
                tracing::warn!(%gw, error = %e, "gateway data-protection certificate refused");
                return;
            }
        }
    }

    fn open(&mut self, gw: &GatewayId, token: &str) -> Option<Vec<u8>> {
        self.load_peer(gw, false);
        match self.with_any_key(|s| s.open_message(gw.as_str(), token, Utc::now())) {
            Ok(b) => Some(b),
            Err(_) => {
                self.load_peer(gw, true);
                self.with_any_key(|s| s.open_message(gw.as_str(), token, Utc::now()))
                    .ok()
            }
        }
    }

    /// `f` with the current key store, then, while it fails, with each retired one (newest
    /// first): what a gateway sealed to a previous certificate of ours opens with its key.
    /// Only after a rotation, and only for payloads the current key cannot open, is this more
    /// than one attempt.
    fn with_any_key<T>(
        &self,
        f: impl Fn(&DataSecurity) -> Result<T, gateway::security::SecurityError>,
    ) -> Result<T, gateway::security::SecurityError> {
        let mut r = f(&self.sec);
        for old in &self.retired {
            if r.is_ok() {
                break;
            }
            r = f(old);
        }
        r
    }

    /// Revokes the platform's own data-protection certificate (SEC-CERT-2): the CA lists it
    /// in a new CRL, which the endpoint serves; the platform keeps signing with it until
    /// `rotate_platform_cert`, so gateways that hold the new CRL refuse what it sends.
    fn revoke_platform_cert(
        &mut self,
        https: Option<&HttpsServer>,
    ) -> Result<String, PlatformError> {
        let n = self.ca.revoke_platform_dp()?;
        self.apply_crl(https)?;
        Ok(format!(
            "revoked {n} platform data-protection certificate(s); CRL number {}",
            self.ca.index().crl_number
        ))
    }

    /// Replaces the platform's data-protection certificate (SM-CERTEXP, DES-SEAL-6): the CA
    /// issues a new one, the endpoint serves it as `platform.pem`, commands are signed with
    /// it from now on; the old key store is kept for opening what was sealed to it.
    fn rotate_platform_cert(
        &mut self,
        https: Option<&HttpsServer>,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<String, PlatformError> {
        let c = match not_after {
            Some(t) => self.ca.rotate_platform_dp_until(t)?,
            None => self.ca.rotate_platform_dp()?,
        };
        let sec = signer(&self.ca, c.key_pem.as_bytes(), c.cert_pem.as_bytes())?;
        let old = std::mem::replace(&mut self.sec, sec);
        self.retired.insert(0, old);
        self.retired.truncate(RETIRED_KEPT);
        for gw in self.known_gateways() {
            self.load_peer(&gw, true);
        }
        self.apply_crl(https)?;
        Ok(format!(
            "platform data-protection certificate rotated: kid {}",
            c.record.kid
        ))
    }

    /// Opens and decodes a `data` message's profile and compares its header with the message:
    /// the profile, or the verdict that refuses it — [`ProfileVerdict::Failed`] if it does not
    /// open or decode (SECURITY_FAILED, DES-PROF-4/7), [`ProfileVerdict::Mismatch`] if its
    /// `gatewayId`, `dataset` or `range` differs from the message's (MALFORMED, DES-MSG-DATA-1).
    fn verify_profile(
        &self,
        gw: &GatewayId,
        env: &Envelope,
        d: &Data,
    ) -> Result<DataProfile, ProfileVerdict> {
        let t = Utc::now();
        let p = match d.format {
            ProfileFormat::Json => {
                let b = self
                    .with_any_key(|s| s.open_json_profile(gw.as_str(), &d.profile, t))
                    .map_err(|_| ProfileVerdict::Failed)?;
                DataProfile::from_json(&b).map_err(|_| ProfileVerdict::Failed)?
            }
            ProfileFormat::Xml => {
                let x = self
                    .with_any_key(|s| s.open_xml_profile(gw.as_str(), &d.profile, t))
                    .map_err(|_| ProfileVerdict::Failed)?;
                DataProfile::from_xml(&x).map_err(|_| ProfileVerdict::Failed)?
            }
        };
        let h = &p.header;
        if h.gateway_id == env.gateway_id && h.dataset == d.dataset && h.range == d.range {
            Ok(p)
        } else {
            Err(ProfileVerdict::Mismatch)
        }
    }

    fn bad_signer(
        &mut self,
        which: FaultyCert,
        gw: &GatewayId,
    ) -> Result<&DataSecurity, PlatformError> {
        let name = self.ensure_bad_signer(which)?;
        let pem = self.ca.gateway_dp_cert_pem(gw).unwrap_or_default();
        let Some(s) = self.bad_signers.get_mut(name) else {
            return Err(PlatformError::Security(SecurityError::UnknownKid));
        };
        if s.keys().peer(gw.as_str()).is_err() {
            s.keys_mut()
                .add_peer_pem(Identity::gateway(gw.as_str()), pem.as_bytes())?;
        }
        Ok(s)
    }

    /// Makes the faulty signer `which` once (its certificate issued by the CA); its name.
    fn ensure_bad_signer(&mut self, which: FaultyCert) -> Result<&'static str, PlatformError> {
        let name = match which {
            FaultyCert::Expired => "expired",
            FaultyCert::Revoked => "revoked",
        };
        if !self.bad_signers.contains_key(name) {
            let c = self.ca.issue_faulty_platform_dp(which)?;
            // The recipient (gateway) certificate is checked against a CRL when sealing.
            let s = signer(&self.ca, c.key_pem.as_bytes(), c.cert_pem.as_bytes())?;
            self.bad_signers.insert(name, s);
            if which == FaultyCert::Revoked {
                // The CA re-signed the CRL: take it into use here too.
                let _ = self
                    .sec
                    .update_crl(self.ca.crl_pem()?.as_bytes(), Utc::now());
            }
        }
        Ok(name)
    }

    /// Seals a command, applying a command fault if one is armed; returns the token and the
    /// fault's name.
    /// A command whose inner JWS is forged by `attack`, correctly encrypted to the gateway.
    fn jose_attack(
        &self,
        attack: crate::ops::JoseAttack,
        gw: &GatewayId,
        bytes: &[u8],
        t: chrono::DateTime<Utc>,
    ) -> Result<String, PlatformError> {
        let keys = self.sec.keys();
        let own = keys.own();
        let pem = own
            .cert
            .to_pem()
            .map_err(gateway::security::SecurityError::from)?;
        let jws = faults::attack_jws(attack, keys.own_key(), &pem, &own.kid, bytes)?;
        let peer = self.sec.validate_peer(gw.as_str(), t)?;
        let pk = peer
            .cert
            .public_key()
            .map_err(gateway::security::SecurityError::from)?;
        Ok(gateway::security::jose::jwe_encrypt(
            &pk,
            KeyAlg::RsaOaep256,
            jws.as_bytes(),
            Some(Profile::Message.cty()),
            Some(&peer.kid),
        )?)
    }

    fn seal_command(
        &mut self,
        gw: &GatewayId,
        bytes: &[u8],
    ) -> (Result<String, PlatformError>, Option<&'static str>) {
        let t = Utc::now();
        if let Some(attack) = self.faults.jose_attack.take() {
            return (self.jose_attack(attack, gw, bytes, t), Some(attack.name()));
        }
        if let Some(attack) = self.faults.envelope_attack.take() {
            if attack == crate::ops::EnvelopeAttack::OversizePayload {
                let junk = faults::attack_envelope(attack, bytes).unwrap_or_default();
                return (
                    Ok(String::from_utf8_lossy(&junk).into_owned()),
                    Some(attack.name()),
                );
            }
            let r = faults::attack_envelope(attack, bytes)
                .ok_or_else(|| {
                    PlatformError::Io(std::io::Error::other("envelope fault: not a command"))
                })
                .and_then(|b| Ok(self.sec.seal_message(gw.as_str(), &b, t)?));
            return (r, Some(attack.name()));
        }
        let f = &mut self.faults;
        if f.stale_commands > 0 {
            f.stale_commands -= 1;
            let r = Envelope::decode(bytes)
                .map_err(|e| PlatformError::Io(std::io::Error::other(format!("stale fault: {e}"))))
                .and_then(|mut env| {
                    env.timestamp -= chrono::Duration::seconds(600);
                    Ok(self.sec.seal_message(gw.as_str(), &env.encode(), t)?)
                });
            return (r, Some("stale"));
        }
        if f.tamper_commands > 0 {
            f.tamper_commands -= 1;
            let r = self
                .sec
                .seal_message(gw.as_str(), bytes, t)
                .map(|s| faults::tamper_token(&s));
            return (r.map_err(Into::into), Some("tampered"));
        }
        if f.unsigned_commands > 0 {
            f.unsigned_commands -= 1;
            let r = self.sec.validate_peer(gw.as_str(), t).and_then(|p| {
                let pk = p.cert.public_key()?;
                gateway::security::jose::jwe_encrypt(
                    &pk,
                    KeyAlg::RsaOaep256,
                    bytes,
                    Some(Profile::Message.cty()),
                    Some(&p.kid),
                )
            });
            return (r.map_err(Into::into), Some("unsigned"));
        }
        for (which, name) in [
            (FaultyCert::Expired, "expired-cert"),
            (FaultyCert::Revoked, "revoked-cert"),
        ] {
            let armed = match which {
                FaultyCert::Expired => &mut self.faults.expired_cert_commands,
                FaultyCert::Revoked => &mut self.faults.revoked_cert_commands,
            };
            if *armed > 0 {
                *armed -= 1;
                let r = self
                    .bad_signer(which, gw)
                    .and_then(|s| Ok(s.seal_message(gw.as_str(), bytes, t)?));
                return (r, Some(name));
            }
        }
        (
            self.sec
                .seal_message(gw.as_str(), bytes, t)
                .map_err(Into::into),
            None,
        )
    }

    /// Drains the core: events first (store before ack), then transmits through the faults.
    fn pump(
        &mut self,
        now: Time,
        profile: Option<(&DataProfile, &str)>,
        from_gateway: bool,
    ) -> Vec<Outgoing> {
        let mut replays = Vec::new();
        while let Some(ev) = self.core.poll_event() {
            match ev {
                PlatformEvent::StoreRecords {
                    gateway,
                    epoch,
                    dataset,
                    range,
                } => {
                    let Some((p, mid)) = profile else {
                        tracing::error!(%gateway, "records to store without a profile");
                        continue;
                    };
                    let off = (range.first - p.header.range.first) as usize;
                    let len = range.len() as usize;
                    let Some(rows) = p.records.get(off..off + len) else {
                        continue;
                    };
                    if let Err(e) = self.store.insert_records(
                        &gateway,
                        epoch.as_str(),
                        &dataset,
                        range.first,
                        rows,
                        &ts(&now),
                        mid,
                    ) {
                        // Never acknowledge what is not stored: stop instead.
                        self.failed = Some(e.to_string());
                        while self.core.poll_transmit().is_some() {}
                        return Vec::new();
                    }
                }
                PlatformEvent::Anomaly {
                    gateway,
                    kind,
                    rule,
                    detail,
                } => {
                    let src = if from_gateway { "gateway" } else { "platform" };
                    self.anomaly(gateway.as_ref(), now, src, &wire(&kind), &rule, &detail);
                }
                PlatformEvent::GatewayConnected {
                    gateway,
                    epoch,
                    new_epoch,
                    boot_count,
                    ..
                } => {
                    tracing::info!(%gateway, %epoch, new_epoch, boot_count, "gateway connected");
                    // Persisted only once accepted: a refused connect (DES-MSG-CONN-4) must
                    // not lower what the next start restores.
                    if let Some(v) = self.core.gateway(&gateway) {
                        let row = SessionRow {
                            gateway: gateway.clone(),
                            epoch: epoch.to_string(),
                            boot_count: v.boot_count,
                            last_seq: v.known_last_seq,
                            periodic: serde_json::to_string(&v.periodic).unwrap_or_default(),
                        };
                        if let Err(e) = self.store.upsert_session(&row) {
                            // Never answer a connect whose epoch state is not stored.
                            self.failed = Some(e.to_string());
                            while self.core.poll_transmit().is_some() {}
                            return Vec::new();
                        }
                    }
                }
                PlatformEvent::Logged {
                    gateway,
                    rule,
                    detail,
                } => {
                    tracing::info!(%gateway, rule, "{detail}");
                }
                PlatformEvent::GatewayDisconnected { gateway } => {
                    tracing::info!(%gateway, "gateway disconnected");
                }
                PlatformEvent::CommandCompleted {
                    gateway,
                    command,
                    code,
                    ..
                } => {
                    tracing::info!(%gateway, ?command, code = code.as_str(), "command completed");
                    let stopped = matches!(command, CoreCommand::Stop) && code == ResultCode::Ok;
                    if stopped
                        && self.faults.replay_start_after_stop
                        && self
                            .replay_after_stop
                            .as_ref()
                            .is_some_and(|(g, _, _)| *g == gateway)
                        && let Some((gw, env, start)) = self.replay_after_stop.take()
                    {
                        tracing::info!(%gw, id = %env.message_id, "fault: periodic.start replayed");
                        if let Some(tap) = &self.wire {
                            tap.emit(wire_event(
                                "down",
                                &gw,
                                &start.topic,
                                &env,
                                Some("replayed".into()),
                            ));
                        }
                        replays.push(start);
                    }
                }
                _ => {}
            }
        }
        let mut out = replays;
        while let Some(t) = self.core.poll_transmit() {
            self.transmit(now, t, &mut out);
        }
        out
    }

    fn transmit(&mut self, now: Time, mut t: PlatformTransmit, out: &mut Vec<Outgoing>) {
        let ty = t.envelope.message_type();
        let gw = t.gateway.clone();
        // The busy- and unauthorized-connects faults: an OK `connect.result` goes out as a
        // retryable (BUSY) or lasting (UNAUTHORIZED) refusal.
        let mut refused = None;
        if ty == MessageType::ConnectResult
            && t.envelope
                .result
                .as_ref()
                .is_some_and(|r| r.code == ResultCode::Ok)
        {
            let refusal = if self.faults.busy_connects > 0 {
                self.faults.busy_connects -= 1;
                Some((
                    ResultCode::Busy,
                    "fault: busy (retry after the DES-MQTT-8 back-off)",
                    "busy",
                ))
            } else if self.faults.unauthorized_connects > 0 {
                self.faults.unauthorized_connects -= 1;
                Some((
                    ResultCode::Unauthorized,
                    "fault: unauthorized (a lasting refusal: retry every 300 s)",
                    "unauthorized",
                ))
            } else {
                None
            };
            if let Some((code, reason, note)) = refusal {
                t.envelope.result = Some(gateway::protocol::message::Outcome::new(code, reason));
                if let Body::ConnectResult(r) = &mut t.envelope.body {
                    r.acked_through = 0;
                }
                tracing::info!(%gw, id = %t.envelope.message_id, ?code, "fault: connect refused");
                refused = Some(note);
            }
        }
        if self.faults.withhold_acks && matches!(ty, MessageType::DataAck | MessageType::Ack) {
            tracing::info!(%gw, id = %t.envelope.message_id, "fault: acknowledgement withheld");
            if let Some(tap) = &self.wire {
                tap.emit(wire_event(
                    "down",
                    &gw,
                    &t.topic,
                    &t.envelope,
                    Some("withheld".into()),
                ));
            }
            return;
        }
        if self.ca.is_gateway_revoked(&gw) {
            return;
        }
        self.load_peer(&gw, false);
        let bytes = t.envelope.encode();
        let is_cmd = matches!(
            ty,
            MessageType::PeriodicStart | MessageType::PeriodicStop | MessageType::ResendRequest
        );
        let (token, fault) = if is_cmd {
            self.seal_command(&gw, &bytes)
        } else if ty == MessageType::DataAck
            && let Some(attack) = self.faults.reply_attack.take()
        {
            let r = faults::attack_reply(attack, &bytes)
                .ok_or_else(|| PlatformError::Io(std::io::Error::other("reply fault: no result")))
                .and_then(|b| Ok(self.sec.seal_message(gw.as_str(), &b, Utc::now())?));
            (r, Some(attack.name()))
        } else {
            (
                self.sec
                    .seal_message(gw.as_str(), &bytes, Utc::now())
                    .map_err(Into::into),
                refused,
            )
        };
        if is_cmd {
            self.last_command_id = Some(t.envelope.message_id.clone());
            let json = String::from_utf8_lossy(&bytes).into_owned();
            if let Err(e) = self.store.insert_command(
                &gw,
                t.envelope.message_id.as_str(),
                ty.as_str(),
                &ts(&now),
                &json,
                fault,
            ) {
                self.failed = Some(e.to_string());
            }
        }
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%gw, error = %e, "cannot seal to the gateway");
                return;
            }
        };
        let (drop_percent, duplicate_percent) =
            (self.faults.drop_percent, self.faults.duplicate_percent);
        // Drawn in this order, the second only for a message not dropped (a seed repeats both).
        let dropped = self.fault_draws.hits(drop_percent);
        let duplicated = !dropped && self.fault_draws.hits(duplicate_percent);
        let late = !dropped && self.faults.late_acks && ty == MessageType::DataAck;
        if let Some(tap) = &self.wire {
            let note = match (dropped, duplicated, fault) {
                (true, _, _) => Some("dropped".to_owned()),
                _ if late => Some("late".to_owned()),
                (false, true, Some(x)) => Some(format!("{x}, duplicated")),
                (false, true, None) => Some("duplicated".to_owned()),
                (false, false, x) => x.map(str::to_owned),
            };
            tap.emit(wire_event("down", &gw, &t.topic, &t.envelope, note));
        }
        if dropped {
            tracing::info!(%gw, id = %t.envelope.message_id, "fault: dropped");
            return;
        }
        let o = Outgoing {
            topic: t.topic,
            payload: token.into_bytes(),
            delay: Duration::from_millis(self.faults.delay_ms),
        };
        if late {
            tracing::info!(%gw, id = %t.envelope.message_id, "fault: acknowledgement kept back");
            self.late.push(o);
            return;
        }
        let copies = if duplicated { 2 } else { 1 };
        for _ in 0..copies {
            if self.faults.reorder {
                match self.held.take() {
                    None => self.held = Some(o.clone()),
                    Some(h) => {
                        out.push(o.clone());
                        out.push(h);
                    }
                }
            } else {
                out.push(o.clone());
            }
        }
        match ty {
            MessageType::PeriodicStart if fault.is_none() => {
                self.last_start = Some((t.envelope.clone(), o));
            }
            MessageType::PeriodicStop if self.faults.replay_start_after_stop => {
                // Sent once the stop is answered OK (`pump`): a gateway that applied the
                // stop then meets the replay, whatever order it reads its topics in.
                if let Some((env, start)) = self.last_start.clone() {
                    self.replay_after_stop = Some((gw.clone(), env, start));
                }
            }
            _ => {}
        }
    }

    /// Current CRL into our own key store and (unless the stale-CRL fault is on) the HTTPS
    /// endpoint.
    fn apply_crl(&mut self, https: Option<&HttpsServer>) -> Result<(), PlatformError> {
        self.sec
            .update_crl(self.ca.crl_pem()?.as_bytes(), Utc::now())?;
        let current = Published::from_ca(&self.ca)?;
        if self
            .published
            .as_ref()
            .is_some_and(|p| p.crl_pem != current.crl_pem)
        {
            // The CRL changed (a revocation here or by `platform-sim revoke`): remember what
            // was served before, for the stale-CRL fault.
            self.pre_revocation = self.published.take();
        }
        self.published = Some(current.clone());
        if let Some(h) = https {
            let mut p = match (&self.pre_revocation, self.faults.stale_crl) {
                (Some(old), true) => old.clone(),
                _ => current,
            };
            if self.faults.offer_signer_cert
                && let Some(pem) = self
                    .offered
                    .and_then(|n| self.bad_signers.get(n))
                    .and_then(|s| s.keys().own().cert.to_pem().ok())
                    .and_then(|b| String::from_utf8(b).ok())
            {
                p.platform_pem = pem;
            }
            if self.faults.rogue_app
                && let Ok(cert) = openssl::x509::X509::from_pem(p.platform_pem.as_bytes())
                && let Ok(der) = cert.to_der()
            {
                let info = crate::ca::AppCertInfo {
                    app_id: "rogue".into(),
                    kid: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&der)),
                    not_after: Utc::now() + chrono::Duration::days(1),
                };
                p.apps.push((info, p.platform_pem.clone()));
            }
            if let Some(a) = self.faults.platform_pem_attack {
                p.platform_pem = faults::attack_pem(a, &p.platform_pem);
            }
            if self.faults.foreign_root {
                if self.foreign_root.is_none() {
                    self.foreign_root = Some(faults::foreign_root_pem()?);
                }
                p.root_pem = self.foreign_root.clone().unwrap_or_default();
            }
            h.publish(p)?;
        }
        Ok(())
    }

    fn known_gateways(&self) -> BTreeSet<GatewayId> {
        let mut s: BTreeSet<GatewayId> = self.core.gateways().cloned().collect();
        for r in &self.ca.index().certs {
            if r.kind == CertKind::GatewayClient
                && let Ok(g) = GatewayId::new(r.subject.as_str())
            {
                s.insert(g);
            }
        }
        s
    }

    fn view(&self, gw: &GatewayId) -> GatewayView {
        let core = self.core.gateway(gw);
        // From the store: every anomaly is written there when it happens, so the operator's
        // list survives a restart of the platform (MON-2); the last 100, oldest first.
        let anomalies: Vec<AnomalyView> = self
            .store
            .recent_anomalies(gw, ANOMALIES_SHOWN)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(at, source, kind, rule, detail)| {
                Some(AnomalyView {
                    at,
                    source,
                    kind: serde_json::from_value(serde_json::Value::String(kind)).ok()?,
                    rule,
                    detail,
                })
            })
            .collect();
        let mut certificates = Vec::new();
        for (kind, name) in [
            (CertKind::GatewayClient, "tls-client"),
            (CertKind::GatewayDataProtection, "data-protection"),
        ] {
            if let Some(r) = self
                .ca
                .index()
                .certs
                .iter()
                .rev()
                .find(|r| r.kind == kind && r.subject == gw.as_str())
            {
                certificates.push(gateway::protocol::message::CertExpiry {
                    name: name.into(),
                    not_after: r.not_after.fixed_offset(),
                });
            }
        }
        let pending = core.as_ref().and_then(|v| {
            v.pending_commands.iter().rev().find_map(|c| match c {
                CoreCommand::Start { .. } => Some(format!("start#{}", v.last_command_seq)),
                CoreCommand::Stop => Some(format!("stop#{}", v.last_command_seq)),
                _ => None,
            })
        });
        GatewayView {
            gateway_id: gw.clone(),
            connected: core.as_ref().is_some_and(|v| v.online),
            revoked: self.ca.is_gateway_revoked(gw),
            last_seen: self.last_seen.get(gw).map(ts),
            periodic: core.as_ref().map_or(
                PeriodicState {
                    running: false,
                    datasets: vec![],
                    interval_sec: 0,
                    format: ProfileFormat::Json,
                    command_seq: 0,
                },
                |v| v.periodic.clone(),
            ),
            pending_command: pending,
            records: core
                .as_ref()
                .map(|v| {
                    v.received_per_dataset
                        .iter()
                        .map(|(k, n)| (k.to_string(), *n))
                        .collect()
                })
                .unwrap_or_default(),
            epoch: core.as_ref().and_then(|v| v.epoch.clone()),
            highest_seq: core.as_ref().and_then(|v| v.received.max()).unwrap_or(0),
            gaps: core.as_ref().map(|v| v.gaps.clone()).unwrap_or_default(),
            anomalies,
            last_status: core
                .as_ref()
                .and_then(|v| v.last_status.clone())
                .map(|(_, s)| s),
            certificates,
        }
    }
}

impl Shared {
    /// Publishes `outs` in the order they were made: called with the state lock `st` (under
    /// which they were sealed), it takes the link before letting the state go, so that two
    /// threads cannot publish in the other order (a command overtaking the `connect.result`
    /// before it would reach the gateway outside its session). Delayed ones (fault
    /// `delay_ms`) are published later by a task of their own.
    fn send_in_order(self: &Arc<Self>, st: MutexGuard<'_, State>, outs: Vec<Outgoing>) {
        let mut tx = lock(&self.tx);
        drop(st);
        for o in outs {
            if o.delay.is_zero() {
                publish_on(&mut tx, o);
            } else {
                let me = self.clone();
                self.rt.spawn(async move {
                    tokio::time::sleep(o.delay).await;
                    me.publish(o);
                });
            }
        }
    }

    fn publish(&self, o: Outgoing) {
        publish_on(&mut lock(&self.tx), o);
    }

    fn tick(self: &Arc<Self>) {
        let mut st = lock(&self.st);
        let t = now();
        if st.core.poll_timeout().is_some_and(|d| d <= t) {
            st.core.handle_timeout(t);
        }
        let outs = st.pump(t, None, false);
        self.send_in_order(st, outs);
    }

    fn inbound(self: &Arc<Self>, m: Inbound) {
        let mut st = lock(&self.st);
        let outs = self.inbound_locked(&mut st, m);
        self.send_in_order(st, outs);
    }

    fn inbound_locked(&self, st: &mut State, m: Inbound) -> Vec<Outgoing> {
        let t = now();
        let gw = match m.admit(None, |g| st.ca.is_gateway_revoked(g)) {
            Ok(gw) => gw,
            Err(Refusal::Revoked(gw)) => {
                let detail = format!("message on {} refused: gateway revoked", m.topic);
                tracing::warn!(%gw, "{detail}");
                st.anomaly(
                    Some(&gw),
                    t,
                    "platform",
                    "unauthorized",
                    "SEC-CERT-2",
                    &detail,
                );
                return Vec::new();
            }
            Err(r) => {
                st.anomaly(
                    m.gateway.as_ref(),
                    t,
                    "platform",
                    "malformed",
                    "DES-MQTT-3",
                    &r.to_string(),
                );
                return Vec::new();
            }
        };
        st.last_seen.insert(gw.clone(), t);
        let opened = std::str::from_utf8(&m.payload)
            .ok()
            .filter(|_| m.payload.len() <= gateway::protocol::message::MAX_PAYLOAD_BYTES)
            .and_then(|tok| st.open(&gw, tok));
        let mut profile = None;
        let mut from_gateway = false;
        let inbound = match opened {
            None => PlatformInbound::Refused {
                topic: m.topic.clone(),
                error: InboundError::Security,
                peek: None,
            },
            Some(bytes) => match Envelope::decode(&bytes) {
                Err(e) => PlatformInbound::Refused {
                    topic: m.topic.clone(),
                    error: InboundError::Decode(e),
                    peek: gateway::protocol::message::peek(&bytes),
                },
                Ok(env) => {
                    if matches!(env.body, Body::Data(_)) && st.faults.lose_data > 0 {
                        st.faults.lose_data -= 1;
                        tracing::info!(%gw, id = %env.message_id, "fault: data lost in transit");
                        if let Some(tap) = &st.wire {
                            let mut e = wire_event("up", &gw, &m.topic, &env, Some("lost".into()));
                            e.seal = SealFacts::of(&m.payload);
                            tap.emit(e);
                        }
                        return Vec::new();
                    }
                    if let Some(tap) = &st.wire {
                        let mut e = wire_event("up", &gw, &m.topic, &env, None);
                        e.seal = SealFacts::of(&m.payload);
                        tap.emit(e);
                    }
                    let mut verdict = None;
                    match &env.body {
                        Body::Data(d) => {
                            verdict = Some(match st.verify_profile(&gw, &env, d) {
                                Ok(p) => match st.faults.take_ack_fault() {
                                    Some(code) => {
                                        tracing::info!(%gw, id = %env.message_id, code = code.as_str(), "fault: data answered with a failure code");
                                        ProfileVerdict::Refused(code)
                                    }
                                    None => {
                                        profile = Some((p, env.message_id.to_string()));
                                        ProfileVerdict::Verified
                                    }
                                },
                                Err(v) => v,
                            });
                        }
                        Body::MonitorStatus(s) => {
                            let json = serde_json::to_string(s).unwrap_or_default();
                            if let Err(e) = st.store.insert_status(&gw, &ts(&t), &json) {
                                st.failed = Some(e.to_string());
                            }
                        }
                        Body::PeriodicStartResult(s) | Body::PeriodicStopResult(s) => {
                            let json = serde_json::to_string(s).unwrap_or_default();
                            if let Err(e) = st.store.set_periodic(&gw, &json) {
                                st.failed = Some(e.to_string());
                            }
                        }
                        Body::Anomaly(_) => from_gateway = true,
                        _ => {}
                    }
                    PlatformInbound::Opened {
                        topic: m.topic.clone(),
                        envelope: env,
                        sender: gw.clone(),
                        profile: verdict,
                    }
                }
            },
        };
        st.core.handle_inbound(t, inbound);
        st.pump(
            t,
            profile.as_ref().map(|(p, id)| (p, id.as_str())),
            from_gateway,
        )
    }

    fn reload_ca(self: &Arc<Self>) {
        let mut st = lock(&self.st);
        let changed = match st.ca.reload() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "CA reload");
                return;
            }
        };
        let refreshed = st
            .ca
            .refresh_crl_if_due(crate::ca::crl_refresh_margin())
            .unwrap_or(false);
        if !(changed || refreshed) {
            return;
        }
        if let Err(e) = st.apply_crl(self.https.as_ref()) {
            tracing::warn!(error = %e, "CRL update");
        }
        let t = now();
        let revoked: Vec<GatewayId> = st
            .known_gateways()
            .into_iter()
            .filter(|g| st.ca.is_gateway_revoked(g))
            .collect();
        for g in revoked {
            if st.core.gateway(&g).is_some_and(|v| v.online) {
                let _ = self.mqtt.kick(&g);
                st.core.handle_link_lost(t, &g);
            }
        }
    }

    fn revoke(&self, st: &mut State, gw: &GatewayId) -> Result<CommandReceipt, PlatformError> {
        let n = st.ca.revoke_gateway(gw)?;
        st.apply_crl(self.https.as_ref())?;
        self.mqtt.kick(gw)?;
        st.core.handle_link_lost(now(), gw);
        Ok(CommandReceipt {
            message_id: None,
            detail: format!(
                "revoked {n} certificate(s) of {gw}; CRL number {}; MQTT session closed",
                st.ca.index().crl_number
            ),
        })
    }
}

fn internal(e: impl std::fmt::Display) -> OperatorError {
    OperatorError::Internal(e.to_string())
}

impl PlatformHandle {
    /// The CA signs a new CRL now, with the next CRL number and the same revocations (what it
    /// does once a CRL is a day old, DES-CERT-3); the HTTPS endpoint serves it, and the one it
    /// served before becomes what the stale-CRL fault serves. What was done.
    pub fn resign_crl(&self) -> Result<String, OperatorError> {
        let mut st = lock(&self.0.st);
        st.ca.sign_crl().map_err(internal)?;
        st.apply_crl(self.0.https.as_ref()).map_err(internal)?;
        Ok(format!("CRL number {} signed", st.ca.index().crl_number))
    }

    /// Replaces the platform's data-protection certificate by a new one that expires
    /// `valid_for` from now (a platform certificate that expires while gateways hold it,
    /// SM-CERTEXP, DES-CERT-8); what was done.
    pub fn rotate_platform_certificate_expiring(
        &self,
        valid_for: std::time::Duration,
    ) -> Result<String, OperatorError> {
        let valid_for = chrono::Duration::from_std(valid_for)
            .map_err(|e| OperatorError::BadRequest(e.to_string()))?;
        let not_after = Utc::now() + valid_for;
        let mut st = lock(&self.0.st);
        st.rotate_platform_cert(self.0.https.as_ref(), Some(not_after))
            .map(|d| format!("{d}, expiring at {}", not_after.to_rfc3339()))
            .map_err(internal)
    }

    /// The SQLite store's path is not kept here; tests open it themselves. This returns the
    /// gateway views (same as the operator API).
    pub fn views(&self) -> Vec<GatewayView> {
        OperatorBackend::gateways(self)
    }

    /// One gateway's view.
    pub fn view(&self, gw: &GatewayId) -> GatewayView {
        lock(&self.0.st).view(gw)
    }

    /// Registers the datasets `gw` may send (`None`: any, the default); data of another
    /// dataset is answered UNKNOWN_DATASET and not stored (DES-MSG-DATA-1).
    pub fn set_registered_datasets(
        &self,
        gw: &GatewayId,
        datasets: Option<std::collections::BTreeSet<gateway::protocol::ids::Dataset>>,
    ) {
        lock(&self.0.st).core.set_registered_datasets(gw, datasets);
    }

    /// Sets how long a hole in a gateway's seqs waits before the platform asks for it
    /// (`gap_grace_sec`, DES-MSG-RS-4), from now on; holes already open count from when they
    /// opened. The conformance suite's shared world gives each case the grace a world of its
    /// own would have.
    pub fn set_gap_grace_sec(&self, secs: i64) {
        lock(&self.0.st).core.set_gap_grace_sec(secs);
        self.wake();
    }

    /// Starts the draws of the percentage faults again from `seed`: what follows hits the
    /// messages a platform started with [`PlatformOptions::fault_seed`] `seed` would hit (the
    /// conformance suite's shared world replays any one of its cases exactly).
    pub fn reseed_faults(&self, seed: u64) {
        lock(&self.0.st).fault_draws.reseed(seed);
    }

    /// Wakes the runtime loop (e.g. after a change made from outside).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }
}

impl OperatorBackend for PlatformHandle {
    fn gateways(&self) -> Vec<GatewayView> {
        let st = lock(&self.0.st);
        st.known_gateways().iter().map(|g| st.view(g)).collect()
    }

    fn command(
        &self,
        gw: &GatewayId,
        command: OperatorCommand,
    ) -> Result<CommandReceipt, OperatorError> {
        let t = now();
        let (receipt, outs, st) = {
            let mut st = lock(&self.0.st);
            if !st.known_gateways().contains(gw) {
                return Err(OperatorError::UnknownGateway(gw.to_string()));
            }
            if st.ca.is_gateway_revoked(gw) {
                return Err(OperatorError::BadRequest(format!(
                    "SEC-CERT-2: gateway {gw} is revoked"
                )));
            }
            st.last_command_id = None;
            let what = match command {
                OperatorCommand::Start {
                    datasets,
                    interval_sec,
                    format,
                } => {
                    let seq = st
                        .core
                        .command_start(t, gw, datasets, interval_sec, format)
                        .map_err(|e| OperatorError::BadRequest(e.to_string()))?;
                    format!("periodic.start commandSeq {seq}")
                }
                OperatorCommand::Stop => {
                    let seq = st.core.command_stop(t, gw);
                    format!("periodic.stop commandSeq {seq}")
                }
                OperatorCommand::Resend { dataset, seq, time } => {
                    let selector = match (seq, time) {
                        (Some(r), None) => ResendSelector::Seq(r),
                        (None, Some(tr)) => ResendSelector::Time {
                            from: tr.from,
                            to: tr.to,
                        },
                        _ => {
                            return Err(OperatorError::BadRequest(
                                "DES-MSG-RS-1: exactly one of seq and time".into(),
                            ));
                        }
                    };
                    st.core
                        .command_resend(t, gw, dataset, selector)
                        .map_err(|e| OperatorError::BadRequest(e.to_string()))?;
                    "resend.request".to_owned()
                }
                OperatorCommand::Revoke => {
                    let r = self.0.revoke(&mut st, gw).map_err(internal)?;
                    let outs = st.pump(t, None, false);
                    self.0.send_in_order(st, outs);
                    return Ok(r);
                }
            };
            let outs = st.pump(t, None, false);
            let id = st.last_command_id.take();
            let detail = match &id {
                Some(_) => format!("{what} sent"),
                None => format!("{what} queued until {gw} connects"),
            };
            (
                CommandReceipt {
                    message_id: id.map(|i| i.to_string()),
                    detail,
                },
                outs,
                st,
            )
        };
        self.0.send_in_order(st, outs);
        self.0.wake.notify_one();
        Ok(receipt)
    }

    fn faults(&self) -> FaultConfig {
        lock(&self.0.st).faults.clone()
    }

    fn rotate_platform_certificate(&self) -> Result<String, OperatorError> {
        let mut st = lock(&self.0.st);
        st.rotate_platform_cert(self.0.https.as_ref(), None)
            .map_err(internal)
    }

    fn revoke_platform_certificate(&self) -> Result<String, OperatorError> {
        let mut st = lock(&self.0.st);
        st.revoke_platform_cert(self.0.https.as_ref())
            .map_err(internal)
    }

    fn set_faults(&self, faults: FaultConfig) -> Result<(), OperatorError> {
        faults.validate()?;
        let (outs, st) = {
            let mut st = lock(&self.0.st);
            let stale_changed = st.faults.stale_crl != faults.stale_crl
                || st.faults.foreign_root != faults.foreign_root
                || st.faults.platform_pem_attack != faults.platform_pem_attack
                || st.faults.rogue_app != faults.rogue_app
                || st.faults.offer_signer_cert != faults.offer_signer_cert
                || faults.offer_signer_cert;
            st.offered = None;
            if faults.offer_signer_cert {
                for (armed, which) in [
                    (faults.expired_cert_commands > 0, FaultyCert::Expired),
                    (faults.revoked_cert_commands > 0, FaultyCert::Revoked),
                ] {
                    if armed {
                        st.offered = Some(st.ensure_bad_signer(which).map_err(internal)?);
                    }
                }
            }
            if let Some(h) = self.0.https.as_ref() {
                h.set_unreachable(faults.https_unreachable);
            }
            st.faults = faults;
            let mut outs = Vec::new();
            if !st.faults.reorder
                && let Some(h) = st.held.take()
            {
                outs.push(h);
            }
            if !st.faults.late_acks {
                outs.append(&mut st.late);
            }
            if stale_changed {
                st.apply_crl(self.0.https.as_ref()).map_err(internal)?;
            }
            (outs, st)
        };
        self.0.send_in_order(st, outs);
        Ok(())
    }
}

/// Seq ranges helper for tests and views: the ranges held for `gw`, in its current epoch, by
/// the store at `path`.
pub fn stored_runs(path: &std::path::Path, gw: &GatewayId) -> Result<Vec<SeqRange>, StoreError> {
    let store = Store::open(path)?;
    let epoch = store
        .sessions()?
        .into_iter()
        .find(|s| s.gateway == *gw)
        .map(|s| s.epoch)
        .unwrap_or_default();
    Ok(store
        .runs(gw, &epoch)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::FaultDraws;

    fn pattern(d: &mut FaultDraws, percent: u8) -> Vec<bool> {
        (0..64).map(|_| d.hits(percent)).collect()
    }

    #[test]
    fn a_seed_hits_the_same_messages_again_and_another_seed_others() {
        let a = pattern(&mut FaultDraws::new(Some(7)), 30);
        assert_eq!(a, pattern(&mut FaultDraws::new(Some(7)), 30));
        assert_ne!(a, pattern(&mut FaultDraws::new(Some(8)), 30));
        let hits = a.iter().filter(|h| **h).count();
        assert!((5..=35).contains(&hits), "{hits} of 64 at 30 %");
    }

    #[test]
    fn reseeded_draws_hit_as_a_fresh_seed_does_whatever_was_drawn_before() {
        let mut d = FaultDraws::new(Some(7));
        let first = pattern(&mut d, 30);
        d.reseed(9);
        let fresh = pattern(&mut FaultDraws::new(Some(9)), 30);
        assert_eq!(pattern(&mut d, 30), fresh);
        assert_ne!(first, fresh);
        d.reseed(7);
        assert_eq!(pattern(&mut d, 30), first);
    }

    #[test]
    fn zero_percent_never_hits_nor_draws_and_100_percent_always_hits() {
        let mut d = FaultDraws::new(Some(7));
        assert!(pattern(&mut d, 0).iter().all(|h| !h));
        // No draw was made: the sequence goes on where a fresh one starts.
        assert_eq!(
            pattern(&mut d, 30),
            pattern(&mut FaultDraws::new(Some(7)), 30)
        );
        assert!(pattern(&mut d, 100).iter().all(|h| *h));
    }
}
