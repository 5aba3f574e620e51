//! The machinery behind `vectors/golden/` (`docs/protocol.md` §17; the vendor's offline
//! check): the golden keys, and the harness that drives the two sans-IO cores —
//! [`GatewayCore`] and [`PlatformCore`] — as a pair, either to *record* a scenario as a
//! transcript ([`Recorder`], used by the regenerating test) or to *replay* a transcript and
//! compare every message the cores emit with the file ([`replay`]).
//!
//! The harness plays both adapters, and nothing more: it hands each message a core emits to
//! the other core (unless the step says it was lost), builds and seals data profiles from the
//! ingested records, opens the profiles the platform receives (the verdict is what data
//! security says, DES-PROF-4/7), and counts ingests for `monitor.status`. Everything a
//! transcript shows being *sent* comes from a core; what the harness *injects* (a duplicate, a
//! payload that does not open, undecodable bytes) is marked `"injected": true`.
//!
//! Transcript format (also in `vectors/golden/README.md`): a JSON object with `title`,
//! `description`, `rules`, `gateway` and `platform` (the cores' configuration and the adapter's
//! fixed inputs) and `steps`, an ordered list. A step is an event (`"event"`) or a message
//! (`"direction"`). Events: `transport.up`, `transport.down`, `operator` (a platform operator
//! command), `ingest` (masked rows accepted from the legacy system, with the seqs the gateway
//! assigned), `timer` (the named core's earliest deadline, which is exactly `at`), `shutdown`,
//! `snapshot` / `restart` (a process restart from a saved state, optionally after
//! `sgw new-epoch`). Messages: `direction` `up` (gateway → platform) or `down`, `topic`, and one
//! of `envelope` (the clear envelope), `raw` (bytes that fail to decode; `padTo` pads the value
//! of its `pad` member with `x` to that many bytes) or `unopenable: true` (a payload that fails
//! DES-SEAL-5); `injected`, `delivered` (default true) and `note`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use gateway::profile::{Column, DataProfile, ProfileHeader};
use gateway::protocol::flow::{InboundError, Time};
use gateway::protocol::gateway_side::{
    DataRequest, ExternalStatus, GatewayConfig, GatewayCore, GatewaySnapshot, Inbound, Transmit,
};
use gateway::protocol::message::{
    CertExpiry, Envelope, HealthState, MessageType, ProfileFormat, Software, peek,
};
use gateway::protocol::platform_side::{
    PlatformConfig, PlatformCore, PlatformInbound, PlatformTransmit, ProfileVerdict, ResendSelector,
};
use gateway::protocol::size::record_wire_bytes;
use gateway::protocol::topic::topic_for;
use gateway::protocol::{Dataset, GatewayId, SeqRange, StoreEpoch};
use gateway::security::xml::XmlCipher;
use gateway::security::{DataSecurity, Identity, KeyStore, MaskingKeys};
use serde_json::{Value, json};

pub mod scenarios;

/// `vectors/golden/` of this repository.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/golden")
}

/// The time at which the golden PKI and the sealed files are checked: 2026-11-22 10:00 JST.
pub fn check_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00+09:00")
        .unwrap()
        .with_timezone(&Utc)
}

/// Reads `rel` under `dir`.
pub fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The masking key of the golden set (`masking/k2026a.key`, DES-MASK-3).
pub fn masking_keys(dir: &Path) -> MaskingKeys {
    let hex_text = String::from_utf8(read(dir, "masking/k2026a.key")).unwrap();
    MaskingKeys::new("k2026a", &hex::decode(hex_text.trim()).unwrap()).unwrap()
}

/// GW0001's data security: own key and certificate, the platform as peer, root and CRL.
pub fn gateway_security(dir: &Path) -> DataSecurity {
    let mut ks = KeyStore::from_pem(
        &read(dir, "pki/GW0001.key"),
        &read(dir, "pki/GW0001.pem"),
        &read(dir, "pki/root.pem"),
    )
    .unwrap();
    ks.add_peer_pem(Identity::platform(), &read(dir, "pki/platform.pem"))
        .unwrap();
    ks.set_crl_pem(&read(dir, "pki/crl.pem")).unwrap();
    DataSecurity::new(ks).with_masking(masking_keys(dir))
}

/// The platform's data security: own key, gateways GW0001 and GW0002 (revoked) as peers.
pub fn platform_security(dir: &Path) -> DataSecurity {
    let mut ks = KeyStore::from_pem(
        &read(dir, "pki/platform.key"),
        &read(dir, "pki/platform.pem"),
        &read(dir, "pki/root.pem"),
    )
    .unwrap();
    for gw in ["GW0001", "GW0002"] {
        ks.add_peer_pem(Identity::gateway(gw), &read(dir, &format!("pki/{gw}.pem")))
            .unwrap();
    }
    ks.set_crl_pem(&read(dir, "pki/crl.pem")).unwrap();
    DataSecurity::new(ks)
}

/// GW0002's data security (its certificate is revoked by the golden CRL).
pub fn revoked_gateway_security(dir: &Path) -> DataSecurity {
    let mut ks = KeyStore::from_pem(
        &read(dir, "pki/GW0002.key"),
        &read(dir, "pki/GW0002.pem"),
        &read(dir, "pki/root.pem"),
    )
    .unwrap();
    ks.add_peer_pem(Identity::platform(), &read(dir, "pki/platform.pem"))
        .unwrap();
    ks.set_crl_pem(&read(dir, "pki/crl.pem")).unwrap();
    DataSecurity::new(ks)
}

/// The columns of dataset `billing` (`masking/columns.json`, DES-PROF-2).
pub fn columns(dir: &Path) -> Vec<Column> {
    serde_json::from_slice(&read(dir, "masking/columns.json")).unwrap()
}

/// The masked rows of `masking/billing.masked.csv` (header row skipped; no field is quoted).
pub fn masked_rows(dir: &Path) -> Vec<Vec<String>> {
    let text = String::from_utf8(read(dir, "masking/billing.masked.csv")).unwrap();
    text.split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// DES-ENV-2 text of a time, as the encoders write it.
pub fn ts(t: &Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn parse_ts(s: &str) -> Result<Time, String> {
    DateTime::parse_from_rfc3339(s).map_err(|e| format!("bad time {s:?}: {e}"))
}

fn js<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

fn utc(t: &Time) -> DateTime<Utc> {
    t.with_timezone(&Utc)
}

// ------------------------------------------------------------------------ configuration

/// The gateway's configuration and the adapter's fixed inputs, as written in a transcript.
#[derive(Debug, Clone)]
pub struct GatewaySetup {
    pub cfg: GatewayConfig,
    pub epoch: StoreEpoch,
    pub source_system: String,
    pub certificates: Vec<CertExpiry>,
}

impl GatewaySetup {
    pub fn to_json(&self) -> Value {
        json!({
            "gatewayId": self.cfg.gateway_id.as_str(),
            "datasets": self.cfg.datasets.iter().map(Dataset::as_str).collect::<Vec<_>>(),
            "formats": self.cfg.formats,
            "versions": self.cfg.versions,
            "software": self.cfg.software,
            "maxRecordsPerMessage": self.cfg.max_records_per_message,
            "connectTimeoutSec": self.cfg.connect_timeout_sec,
            "backoffSeed": self.cfg.backoff_seed,
            "epoch": self.epoch.to_string(),
            "sourceSystem": self.source_system,
            "certificates": self.certificates,
        })
    }

    pub fn from_json(v: &Value) -> Result<Self, String> {
        let s = |k: &str| {
            v.get(k)
                .cloned()
                .ok_or_else(|| format!("gateway.{k} missing"))
        };
        let de = |k: &str| -> Result<Value, String> { s(k) };
        let gw = GatewayId::new(de("gatewayId")?.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let datasets: Vec<Dataset> =
            serde_json::from_value(de("datasets")?).map_err(|e| e.to_string())?;
        let mut cfg = GatewayConfig::new(gw, datasets);
        cfg.formats = serde_json::from_value(de("formats")?).map_err(|e| e.to_string())?;
        cfg.versions = serde_json::from_value(de("versions")?).map_err(|e| e.to_string())?;
        cfg.software =
            serde_json::from_value::<Software>(de("software")?).map_err(|e| e.to_string())?;
        cfg.max_records_per_message = de("maxRecordsPerMessage")?.as_u64().unwrap_or(0);
        cfg.connect_timeout_sec = de("connectTimeoutSec")?.as_i64().unwrap_or(0);
        cfg.backoff_seed = de("backoffSeed")?.as_u64().unwrap_or(0);
        Ok(Self {
            cfg,
            epoch: serde_json::from_value(de("epoch")?).map_err(|e| e.to_string())?,
            source_system: de("sourceSystem")?.as_str().unwrap_or_default().to_owned(),
            certificates: serde_json::from_value(de("certificates")?).map_err(|e| e.to_string())?,
        })
    }
}

/// The platform's configuration, as written in a transcript.
pub fn platform_to_json(c: &PlatformConfig) -> Value {
    json!({
        "versions": c.versions,
        "monitorIntervalSec": c.monitor_interval_sec,
        "ackTimeoutSec": c.ack_timeout_sec,
        "commandRetrySec": c.command_retry_sec,
        "gapGraceSec": c.gap_grace_sec,
        "messageIdPrefix": c.epoch,
    })
}

fn platform_from_json(v: &Value) -> Result<PlatformConfig, String> {
    let n = |k: &str| {
        v.get(k)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("platform.{k} missing"))
    };
    Ok(PlatformConfig {
        versions: serde_json::from_value(v.get("versions").cloned().unwrap_or_default())
            .map_err(|e| e.to_string())?,
        monitor_interval_sec: u32::try_from(n("monitorIntervalSec")?).unwrap_or(0),
        ack_timeout_sec: u32::try_from(n("ackTimeoutSec")?).unwrap_or(0),
        command_retry_sec: n("commandRetrySec")?,
        gap_grace_sec: n("gapGraceSec")?,
        epoch: u64::try_from(n("messageIdPrefix")?).unwrap_or(0),
        ..PlatformConfig::default()
    })
}

// ------------------------------------------------------------------------ the pair

/// A message a core emitted, not yet matched / delivered.
#[derive(Debug, Clone)]
pub enum Emitted {
    Up(Transmit),
    Down(PlatformTransmit),
}

impl Emitted {
    fn direction(&self) -> &'static str {
        match self {
            Emitted::Up(_) => "up",
            Emitted::Down(_) => "down",
        }
    }
    fn message_type(&self) -> MessageType {
        match self {
            Emitted::Up(t) => t.message_type(),
            Emitted::Down(t) => t.envelope.message_type(),
        }
    }
    fn topic(&self) -> &str {
        match self {
            Emitted::Up(t) => t.topic(),
            Emitted::Down(t) => &t.topic,
        }
    }
}

/// What a message step carries.
// Made once per step; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Content {
    Envelope(Envelope),
    Raw { text: String, pad_to: Option<usize> },
    Unopenable,
}

impl Content {
    fn raw_bytes(text: &str, pad_to: Option<usize>) -> Vec<u8> {
        let mut s = text.to_owned();
        if let Some(n) = pad_to {
            let at = s
                .find(r#""pad":""#)
                .expect("raw with padTo has a pad member")
                + 7;
            let fill = n.saturating_sub(s.len());
            s.insert_str(at, &"x".repeat(fill));
        }
        s.into_bytes()
    }
}

/// The two cores with their adapters' state.
pub struct Pair {
    pub setup: GatewaySetup,
    pub g: GatewayCore,
    pub p: PlatformCore,
    pub gw_sec: DataSecurity,
    pub pf_sec: DataSecurity,
    columns: Vec<Column>,
    /// The adapter's store: seq → masked fields (what profiles are built from).
    pub store: BTreeMap<u64, Vec<String>>,
    files_accepted: u64,
    storage_bytes: u64,
    snapshots: BTreeMap<String, GatewaySnapshot>,
    pub fifo: VecDeque<Emitted>,
}

impl Pair {
    pub fn new(dir: &Path, setup: GatewaySetup, pcfg: PlatformConfig, start: Time) -> Self {
        let g = GatewayCore::new(setup.cfg.clone(), setup.epoch.clone(), start);
        let mut pair = Pair {
            g,
            p: PlatformCore::new(pcfg),
            gw_sec: gateway_security(dir),
            pf_sec: platform_security(dir),
            columns: columns(dir),
            store: BTreeMap::new(),
            files_accepted: 0,
            storage_bytes: 0,
            snapshots: BTreeMap::new(),
            fifo: VecDeque::new(),
            setup,
        };
        pair.refresh_status();
        pair
    }

    /// The adapter's figures for `monitor.status` (MON-1): fixed certificates, files and
    /// bytes counted from the ingests.
    fn refresh_status(&mut self) {
        self.g.set_external_status(ExternalStatus {
            health: HealthState::Ok,
            storage_bytes: self.storage_bytes,
            evacuated: 0,
            free_bytes: 40 << 30,
            files_accepted: self.files_accepted,
            files_rejected: 0,
            messages_sent: 0,
            messages_retransmitted: 0,
            records_acked: 0,
            certificates: self.setup.certificates.clone(),
            last_error: None,
        });
    }

    /// Moves everything both cores want to send into the FIFO (gateway first); local
    /// events are not part of a transcript.
    pub fn drain(&mut self) {
        while let Some(t) = self.g.poll_transmit() {
            self.fifo.push_back(Emitted::Up(t));
        }
        while let Some(t) = self.p.poll_transmit() {
            self.fifo.push_back(Emitted::Down(t));
        }
        while self.g.poll_event().is_some() {}
        while self.p.poll_event().is_some() {}
    }

    /// The sealed profile of a data request, built from the store like an adapter does.
    pub fn build_profile(&self, d: &DataRequest) -> String {
        let records: Vec<Vec<String>> = (d.range.first..=d.range.last)
            .map(|s| self.store.get(&s).cloned().expect("record in store"))
            .collect();
        let profile = DataProfile {
            header: ProfileHeader {
                gateway_id: d.gateway_id.clone(),
                source_system: self.setup.source_system.clone(),
                dataset: d.dataset.clone(),
                columns: self.columns.clone(),
                range: d.range,
                created_at: d.timestamp,
            },
            records,
        };
        let now = utc(&d.timestamp);
        match d.format {
            ProfileFormat::Json => self
                .gw_sec
                .seal_json_profile("platform", &profile.to_json(), now)
                .unwrap(),
            ProfileFormat::Xml => self
                .gw_sec
                .seal_xml_profile("platform", &profile.to_xml(), XmlCipher::Aes128Cbc, now)
                .unwrap(),
        }
    }

    /// What the platform's data security says about a data message's profile, and the
    /// opened profile when it opened.
    fn verdict(&self, at: &Time, env: &Envelope) -> (ProfileVerdict, Option<DataProfile>) {
        let gateway::protocol::message::Body::Data(d) = &env.body else {
            return (ProfileVerdict::Failed, None);
        };
        let sender = env.gateway_id.as_str();
        let opened = match d.format {
            ProfileFormat::Json => self
                .pf_sec
                .open_json_profile(sender, &d.profile, utc(at))
                .ok()
                .and_then(|b| DataProfile::from_json(&b).ok()),
            ProfileFormat::Xml => self
                .pf_sec
                .open_xml_profile(sender, &d.profile, utc(at))
                .ok()
                .and_then(|x| DataProfile::from_xml(&x).ok()),
        };
        match opened {
            None => (ProfileVerdict::Failed, None),
            Some(p) => {
                let h = &p.header;
                let ok =
                    h.gateway_id == env.gateway_id && h.dataset == d.dataset && h.range == d.range;
                let v = if ok {
                    ProfileVerdict::Verified
                } else {
                    ProfileVerdict::Mismatch
                };
                (v, Some(p))
            }
        }
    }

    /// Hands a message to the receiving core at `at`, then drains both cores. Returns the
    /// opened profile of an up `data` message (to compare with the store).
    pub fn deliver(
        &mut self,
        at: Time,
        direction: &str,
        topic: &str,
        content: &Content,
    ) -> Result<Option<DataProfile>, String> {
        let mut opened = None;
        match (direction, content) {
            ("up", Content::Envelope(env)) => {
                let (verdict, p) = if env.message_type() == MessageType::Data {
                    self.verdict(&at, env)
                } else {
                    (ProfileVerdict::Verified, None)
                };
                opened = p;
                self.p.handle_inbound(
                    at,
                    PlatformInbound::Opened {
                        topic: topic.to_owned(),
                        envelope: env.clone(),
                        sender: env.gateway_id.clone(),
                        profile: (env.message_type() == MessageType::Data).then_some(verdict),
                    },
                );
            }
            ("down", Content::Envelope(env)) => self.g.handle_inbound(
                at,
                Inbound::Opened {
                    topic: topic.to_owned(),
                    envelope: env.clone(),
                },
            ),
            (dir, Content::Raw { text, pad_to }) => {
                let bytes = Content::raw_bytes(text, *pad_to);
                let error = match Envelope::decode(&bytes) {
                    Ok(_) => return Err("a raw step decodes as an envelope".into()),
                    Err(e) => InboundError::Decode(e),
                };
                let peek = peek(&bytes);
                let topic = topic.to_owned();
                if dir == "up" {
                    self.p
                        .handle_inbound(at, PlatformInbound::Refused { topic, error, peek });
                } else {
                    self.g
                        .handle_inbound(at, Inbound::Refused { topic, error, peek });
                }
            }
            (dir, Content::Unopenable) => {
                let topic = topic.to_owned();
                let error = InboundError::Security;
                if dir == "up" {
                    self.p.handle_inbound(
                        at,
                        PlatformInbound::Refused {
                            topic,
                            error,
                            peek: None,
                        },
                    );
                } else {
                    self.g.handle_inbound(
                        at,
                        Inbound::Refused {
                            topic,
                            error,
                            peek: None,
                        },
                    );
                }
            }
            (d, _) => return Err(format!("unknown direction {d:?}")),
        }
        self.drain();
        Ok(opened)
    }

    /// Applies one event (the `event` member and its fields) at `at`, then drains.
    pub fn apply_event(&mut self, at: Time, ev: &Value) -> Result<(), String> {
        let kind = ev["event"].as_str().ok_or("event without a name")?;
        let gw = self.setup.cfg.gateway_id.clone();
        match kind {
            "transport.up" => self.g.handle_connected(at),
            "transport.down" => {
                self.g.handle_disconnected(at);
                self.p.handle_link_lost(at, &gw);
            }
            "shutdown" => self.g.handle_shutdown(at),
            "timer" => {
                let core = ev["core"].as_str().unwrap_or_default();
                let due = match core {
                    "gateway" => self.g.poll_timeout(),
                    "platform" => self.p.poll_timeout(),
                    c => return Err(format!("timer of unknown core {c:?}")),
                };
                if due != Some(at) {
                    return Err(format!(
                        "{core} timer at {}: the core's next deadline is {:?}",
                        ts(&at),
                        due.map(|d| ts(&d))
                    ));
                }
                match core {
                    "gateway" => self.g.handle_timeout(at),
                    _ => self.p.handle_timeout(at),
                }
            }
            "ingest" => {
                let dataset: Dataset =
                    serde_json::from_value(ev["dataset"].clone()).map_err(|e| e.to_string())?;
                let rows: Vec<Vec<String>> =
                    serde_json::from_value(ev["records"].clone()).map_err(|e| e.to_string())?;
                let sizes: Vec<u32> = rows.iter().map(|r| record_wire_bytes(r)).collect();
                let got = self
                    .g
                    .handle_ingest(at, &dataset, &sizes)
                    .map_err(|e| format!("ingest refused: {e}"))?;
                let want: SeqRange =
                    serde_json::from_value(ev["seqs"].clone()).map_err(|e| e.to_string())?;
                if got != want {
                    return Err(format!("ingest got seqs {got:?}, transcript says {want:?}"));
                }
                for (i, r) in rows.into_iter().enumerate() {
                    self.store.insert(got.first + i as u64, r);
                }
                self.files_accepted += 1;
                self.storage_bytes += sizes.iter().map(|s| u64::from(*s)).sum::<u64>();
                self.refresh_status();
            }
            "operator" => {
                let c = &ev["command"];
                match c["type"].as_str().unwrap_or_default() {
                    "periodic.start" => {
                        let datasets: Vec<Dataset> = serde_json::from_value(c["datasets"].clone())
                            .map_err(|e| e.to_string())?;
                        let interval = u32::try_from(c["intervalSec"].as_u64().unwrap_or(0))
                            .map_err(|e| e.to_string())?;
                        let format: ProfileFormat = serde_json::from_value(c["format"].clone())
                            .map_err(|e| e.to_string())?;
                        self.p
                            .command_start(at, &gw, datasets, interval, format)
                            .map_err(|e| e.to_string())?;
                    }
                    "periodic.stop" => {
                        self.p.command_stop(at, &gw);
                    }
                    "resend.request" => {
                        let dataset: Option<Dataset> = match c.get("dataset") {
                            Some(d) => {
                                Some(serde_json::from_value(d.clone()).map_err(|e| e.to_string())?)
                            }
                            None => None,
                        };
                        let selector = match (c.get("seq"), c.get("time")) {
                            (Some(s), None) => ResendSelector::Seq(
                                serde_json::from_value(s.clone()).map_err(|e| e.to_string())?,
                            ),
                            (None, Some(t)) => ResendSelector::Time {
                                from: parse_ts(t["from"].as_str().unwrap_or_default())?,
                                to: parse_ts(t["to"].as_str().unwrap_or_default())?,
                            },
                            _ => return Err("resend command needs seq or time".into()),
                        };
                        self.p
                            .command_resend(at, &gw, dataset, selector)
                            .map_err(|e| e.to_string())?;
                    }
                    t => return Err(format!("unknown operator command {t:?}")),
                }
            }
            "snapshot" => {
                let name = ev["name"].as_str().ok_or("snapshot without name")?;
                self.snapshots.insert(name.to_owned(), self.g.snapshot());
            }
            "restart" => {
                let from = ev["from"].as_str().ok_or("restart without from")?;
                let mut snap = self
                    .snapshots
                    .get(from)
                    .cloned()
                    .ok_or_else(|| format!("no snapshot {from:?}"))?;
                if let Some(e) = ev.get("newEpoch") {
                    snap.epoch = serde_json::from_value(e.clone()).map_err(|e| e.to_string())?;
                }
                self.g = GatewayCore::restore(self.setup.cfg.clone(), snap, at);
                self.refresh_status();
            }
            other => return Err(format!("unknown event {other:?}")),
        }
        self.drain();
        Ok(())
    }
}

// ------------------------------------------------------------------------ recording

/// Records a scenario: the scenario gives inputs; every message the cores emit is written
/// with the time, and delivered unless the scenario asked to lose it.
pub struct Recorder {
    pub pair: Pair,
    pub now: Time,
    start: Time,
    header: Value,
    steps: Vec<String>,
    /// (direction, type, note): the next emitted message of that type is lost.
    drops: Vec<(&'static str, MessageType, String)>,
    /// Notes for the next emitted message of a type.
    notes: Vec<(MessageType, String)>,
    /// Sealed profiles by data message ID: a retransmission publishes the same bytes.
    profiles: BTreeMap<String, String>,
    /// The last envelope each type was sent with (to build duplicates and replies).
    last: BTreeMap<&'static str, Envelope>,
    /// The time of the last step written (steps never go back in time).
    last_at: Time,
}

/// The default note of a message a core emitted.
fn default_note(t: MessageType) -> &'static str {
    match t {
        MessageType::Connect => "connect (DES-MSG-CONN-1)",
        MessageType::ConnectResult => "connect.result (DES-MSG-CONN-2)",
        MessageType::Disconnect => "disconnect (DES-MSG-DISC-1)",
        MessageType::DisconnectResult => "disconnect.result (DES-MSG-DISC-1)",
        MessageType::PeriodicStart => "periodic.start (DES-MSG-PS-1)",
        MessageType::PeriodicStartResult => "periodic.start.result (DES-MSG-PS-3)",
        MessageType::PeriodicStop => "periodic.stop (DES-MSG-PS-2)",
        MessageType::PeriodicStopResult => "periodic.stop.result (DES-MSG-PS-3)",
        MessageType::Data => "data (DES-MSG-DATA-1)",
        MessageType::DataAck => "data.ack (DES-MSG-DATA-2)",
        MessageType::ResendRequest => "resend.request (DES-MSG-RS-1)",
        MessageType::ResendResult => "resend.result (DES-MSG-RS-2)",
        MessageType::MonitorStatus => "monitor.status (DES-MSG-MON-1/2)",
        MessageType::Anomaly => "anomaly (DES-MSG-AN-1)",
        MessageType::Ack => "ack (DES-MSG-PS-5)",
    }
}

impl Recorder {
    pub fn new(
        dir: &Path,
        title: &str,
        description: &str,
        rules: &[&str],
        setup: GatewaySetup,
        pcfg: PlatformConfig,
        start: Time,
    ) -> Self {
        let header = json!({
            "title": title,
            "description": description,
            "rules": rules,
            "start": ts(&start),
            "gateway": setup.to_json(),
            "platform": platform_to_json(&pcfg),
        });
        Recorder {
            pair: Pair::new(dir, setup, pcfg, start),
            now: start,
            start,
            header,
            steps: Vec::new(),
            drops: Vec::new(),
            notes: Vec::new(),
            profiles: BTreeMap::new(),
            last: BTreeMap::new(),
            last_at: start,
        }
    }

    /// The last envelope of type `ty` a core sent (or the harness injected).
    pub fn last_sent(&self, ty: MessageType) -> Option<Envelope> {
        self.last.get(ty.as_str()).cloned()
    }

    /// The up topic of GW0001 for type `ty`.
    pub fn up_topic(&self, ty: MessageType) -> String {
        topic_for(&self.pair.setup.cfg.gateway_id, ty)
    }

    /// The time `s` seconds after the start.
    pub fn t(&self, s: f64) -> Time {
        self.start + chrono::Duration::milliseconds((s * 1000.0).round() as i64)
    }

    /// The next emitted `ty` in `direction` is lost in the network (not delivered).
    pub fn lose_next(&mut self, direction: &'static str, ty: MessageType, note: &str) {
        self.drops.push((direction, ty, note.to_owned()));
    }

    /// The next emitted `ty` gets this note.
    pub fn note_next(&mut self, ty: MessageType, note: &str) {
        self.notes.push((ty, note.to_owned()));
    }

    fn event_line(&mut self, at: Time, ev: &Value, note: &str) {
        let s = Self::event_text(at, ev, note);
        self.push_step(at, s);
    }

    fn push_step(&mut self, at: Time, line: String) {
        assert!(
            at >= self.last_at,
            "time went backwards: {at} < {}",
            self.last_at
        );
        self.last_at = at;
        self.steps.push(line);
    }

    fn event_text(at: Time, ev: &Value, note: &str) -> String {
        let mut s = format!(r#"{{"at":{},"#, js(&ts(&at)));
        let obj = ev.as_object().unwrap();
        // "event" first, then the rest in alphabetical order.
        s.push_str(&format!(r#""event":{}"#, js(&obj["event"])));
        for (k, v) in obj.iter().filter(|(k, _)| *k != "event") {
            s.push_str(&format!(",{}:{}", js(k), js(v)));
        }
        if !note.is_empty() {
            s.push_str(&format!(r#","note":{}"#, js(note)));
        }
        s.push('}');
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn message_line(
        &mut self,
        at: Time,
        direction: &str,
        topic: &str,
        content: &Content,
        injected: bool,
        delivered: bool,
        note: &str,
    ) {
        let mut s = format!(
            r#"{{"at":{},"direction":{},"topic":{}"#,
            js(&ts(&at)),
            js(direction),
            js(topic)
        );
        match content {
            Content::Envelope(e) => {
                s.push_str(r#","envelope":"#);
                s.push_str(std::str::from_utf8(&e.encode()).unwrap());
            }
            Content::Raw { text, pad_to } => {
                s.push_str(&format!(r#","raw":{}"#, js(text)));
                if let Some(n) = pad_to {
                    s.push_str(&format!(r#","padTo":{n}"#));
                }
            }
            Content::Unopenable => s.push_str(r#","unopenable":true"#),
        }
        if injected {
            s.push_str(r#","injected":true"#);
        }
        if !delivered {
            s.push_str(r#","delivered":false"#);
        }
        s.push_str(&format!(r#","note":{}}}"#, js(note)));
        self.push_step(at, s);
    }

    /// Writes, delivers (or loses) everything in the FIFO until both cores are quiet.
    fn settle(&mut self) {
        let mut guard = 0;
        while let Some(e) = self.pair.fifo.pop_front() {
            guard += 1;
            assert!(guard < 100_000, "no quiescence");
            let dir = e.direction();
            let ty = e.message_type();
            let topic = e.topic().to_owned();
            let env = match &e {
                Emitted::Up(Transmit::Message { envelope, .. }) => envelope.clone(),
                Emitted::Up(Transmit::Data(d)) => {
                    let id = d.message_id.to_string();
                    let profile = match self.profiles.get(&id) {
                        Some(p) => p.clone(),
                        None => {
                            let p = self.pair.build_profile(d);
                            self.profiles.insert(id, p.clone());
                            p
                        }
                    };
                    d.clone().into_envelope(profile)
                }
                Emitted::Down(t) => t.envelope.clone(),
            };
            let mut note = default_note(ty).to_owned();
            if let Some(i) = self.notes.iter().position(|(t, _)| *t == ty) {
                note = self.notes.remove(i).1;
            }
            let mut delivered = true;
            if let Some(i) = self
                .drops
                .iter()
                .position(|(d, t, _)| *d == dir && *t == ty)
            {
                delivered = false;
                note = format!("{note} — {}", self.drops.remove(i).2);
            }
            self.last.insert(ty.as_str(), env.clone());
            let content = Content::Envelope(env);
            self.message_line(self.now, dir, &topic, &content, false, delivered, &note);
            if delivered {
                self.pair.deliver(self.now, dir, &topic, &content).unwrap();
            }
        }
    }

    /// An input event at the current time.
    pub fn event(&mut self, ev: Value, note: &str) {
        let now = self.now;
        self.event_line(now, &ev, note);
        self.pair.apply_event(now, &ev).unwrap();
        self.settle();
    }

    /// Lets time pass until `to`, firing every timer that falls due on the way (gateway first
    /// on a tie).
    pub fn advance_to(&mut self, to: Time) {
        for _ in 0..10_000 {
            let g = self.pair.g.poll_timeout().filter(|t| *t <= to);
            let p = self.pair.p.poll_timeout().filter(|t| *t <= to);
            let (core, at) = match (g, p) {
                (Some(g), Some(p)) if p < g => ("platform", p),
                (Some(g), _) => ("gateway", g),
                (None, Some(p)) => ("platform", p),
                (None, None) => {
                    self.now = self.now.max(to);
                    return;
                }
            };
            assert!(
                at >= self.now,
                "a deadline in the past: {at} < {}",
                self.now
            );
            self.now = at;
            let i = self.steps.len();
            let ev = json!({"event": "timer", "core": core});
            self.event(ev.clone(), "");
            let note = if self.steps.len() == i + 1 {
                format!(
                    "the {core} core's next deadline (poll_timeout) falls due; it sends nothing"
                )
            } else {
                format!("the {core} core's next deadline (poll_timeout) falls due")
            };
            self.steps[i] = Self::event_text(at, &ev, &note);
        }
        panic!("timers do not settle");
    }

    /// A message the harness sends in the name of a peer, delivered to the other core.
    pub fn inject(&mut self, direction: &'static str, topic: &str, content: Content, note: &str) {
        let now = self.now;
        self.message_line(now, direction, topic, &content, true, true, note);
        self.pair.deliver(now, direction, topic, &content).unwrap();
        self.settle();
    }

    /// A down message to GW0001 of type `ty`, as the harness injects it.
    pub fn down_topic(&self, ty: MessageType) -> String {
        topic_for(&self.pair.setup.cfg.gateway_id, ty)
    }

    /// The transcript text: the header members, then one step per line.
    pub fn finish(self) -> String {
        let mut s = String::from("{\n");
        for (k, v) in self.header.as_object().unwrap() {
            s.push_str(&format!(" {}: {},\n", js(k), js(v)));
        }
        s.push_str(" \"steps\": [\n");
        s.push_str(&self.steps.join(",\n"));
        s.push_str("\n ]\n}\n");
        s
    }
}

// ------------------------------------------------------------------------ replay

fn content_of(step: &Value) -> Result<Content, String> {
    if let Some(e) = step.get("envelope") {
        let bytes = serde_json::to_vec(e).map_err(|e| e.to_string())?;
        return Envelope::decode(&bytes)
            .map(Content::Envelope)
            .map_err(|e| format!("envelope does not decode: {e}"));
    }
    if let Some(r) = step.get("raw") {
        return Ok(Content::Raw {
            text: r.as_str().ok_or("raw is not a string")?.to_owned(),
            pad_to: step
                .get("padTo")
                .and_then(Value::as_u64)
                .map(|n| n as usize),
        });
    }
    if step.get("unopenable") == Some(&Value::Bool(true)) {
        return Ok(Content::Unopenable);
    }
    Err("a message step needs envelope, raw or unopenable".into())
}

/// Replays transcript `text` against the cores, with the golden keys of `dir`: every event
/// is applied, every message the cores emit must be the next message step (same direction,
/// topic and envelope; a data message's profile is the adapter's and is taken from the step,
/// then opened and compared with the ingested records), every timer must be the core's next
/// deadline, and nothing may be emitted that the transcript does not show.
pub fn replay(dir: &Path, text: &str) -> Result<usize, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let setup = GatewaySetup::from_json(&doc["gateway"])?;
    let pcfg = platform_from_json(&doc["platform"])?;
    let start = parse_ts(doc["start"].as_str().ok_or("no start")?)?;
    let mut pair = Pair::new(dir, setup, pcfg, start);
    let steps = doc["steps"].as_array().ok_or("no steps")?;
    let mut last_at = start;
    for (i, step) in steps.iter().enumerate() {
        let ctx = |e: String| format!("step {}: {e}", i + 1);
        let at = parse_ts(
            step["at"]
                .as_str()
                .ok_or("step without at")
                .map_err(|e| ctx(e.into()))?,
        )
        .map_err(ctx)?;
        if at < last_at {
            return Err(ctx(format!("time goes back to {}", ts(&at))));
        }
        last_at = at;
        if step.get("event").is_some() {
            if let Some(e) = pair.fifo.front() {
                return Err(ctx(format!(
                    "the cores sent {} {} that the transcript does not show",
                    e.direction(),
                    e.message_type().as_str()
                )));
            }
            pair.apply_event(at, step).map_err(ctx)?;
            continue;
        }
        let direction = step["direction"]
            .as_str()
            .ok_or_else(|| ctx("no direction".into()))?;
        let topic = step["topic"]
            .as_str()
            .ok_or_else(|| ctx("no topic".into()))?;
        let content = content_of(step).map_err(ctx)?;
        let delivered = step.get("delivered") != Some(&Value::Bool(false));
        if step.get("injected") == Some(&Value::Bool(true)) {
            if let Some(e) = pair.fifo.front() {
                return Err(ctx(format!(
                    "the cores sent {} {} that the transcript does not show",
                    e.direction(),
                    e.message_type().as_str()
                )));
            }
        } else {
            let emitted = pair.fifo.pop_front().ok_or_else(|| {
                ctx("the transcript shows a message the cores did not send".into())
            })?;
            let Content::Envelope(want) = &content else {
                return Err(ctx("a core's message must be an envelope".into()));
            };
            let got = match &emitted {
                Emitted::Up(Transmit::Message { envelope, .. }) => envelope.clone(),
                Emitted::Up(Transmit::Data(d)) => {
                    let gateway::protocol::message::Body::Data(b) = &want.body else {
                        return Err(ctx(format!(
                            "the cores sent data, the transcript {}",
                            want.message_type().as_str()
                        )));
                    };
                    d.clone().into_envelope(b.profile.clone())
                }
                Emitted::Down(t) => t.envelope.clone(),
            };
            if emitted.direction() != direction || emitted.topic() != topic {
                return Err(ctx(format!(
                    "the cores sent {} on {}, the transcript shows {direction} on {topic}",
                    emitted.direction(),
                    emitted.topic()
                )));
            }
            let got_v: Value = serde_json::from_slice(&got.encode()).unwrap();
            if &got_v != step.get("envelope").unwrap() {
                return Err(ctx(format!(
                    "the cores sent\n  {}\nthe transcript shows\n  {}",
                    String::from_utf8_lossy(&got.encode()),
                    step["envelope"]
                )));
            }
        }
        if delivered {
            let opened = pair.deliver(at, direction, topic, &content).map_err(ctx)?;
            if let Some(p) = opened {
                let want: Vec<Vec<String>> = (p.header.range.first..=p.header.range.last)
                    .map(|s| pair.store.get(&s).cloned().unwrap_or_default())
                    .collect();
                if p.records != want {
                    return Err(ctx(
                        "the data profile does not carry the ingested records".into()
                    ));
                }
            }
        }
    }
    if let Some(e) = pair.fifo.front() {
        return Err(format!(
            "at the end the cores sent {} {} that the transcript does not show",
            e.direction(),
            e.message_type().as_str()
        ));
    }
    Ok(steps.len())
}

/// A fixed offset of +09:00 (JST), the zone of every golden time.
pub fn jst(s: &str) -> Time {
    DateTime::<FixedOffset>::parse_from_rfc3339(s).unwrap()
}
