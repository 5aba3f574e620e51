//! The gateway's side of every protocol v1 flow as one sans-IO state machine, [`GatewayCore`]
//! (IF-CONN-1, IF-DISC-1, IF-PSTART-1..4, IF-PSEND-1..3, IF-PSTOP-1, IF-RESEND-1, ST-STORE-1,
//! ST-PROVIDE-1, SC-START-1, SC-STOP-1, MON-1, SM-RESEND; DES-MSG-*).
//!
//! Like `quinn-proto`, the core does no I/O and reads no clock. The adapter
//!
//! - feeds inputs: [`GatewayCore::handle_connected`] / [`GatewayCore::handle_disconnected`]
//!   (transport), [`GatewayCore::handle_inbound`] (an MQTT payload already opened and
//!   verified by data security — [`Inbound::Opened`] — or one that failed —
//!   [`Inbound::Refused`], never acted on, IF-PSTART-2), [`GatewayCore::handle_ingest`] (a
//!   batch of masked CSV rows from system connection, SC-ACQ-1), [`GatewayCore::handle_timeout`]
//!   and [`GatewayCore::handle_shutdown`];
//! - drains outputs: [`GatewayCore::poll_transmit`] (what to seal and publish; a
//!   [`Transmit::Data`] asks the adapter to read the records from storage, build and seal the
//!   data profile and call [`DataRequest::into_envelope`]), [`GatewayCore::poll_event`] (local
//!   effects: start/stop storing, records acknowledged, anomaly log lines) and
//!   [`GatewayCore::poll_timeout`] (when to call `handle_timeout` next).
//!
//! # Rules the core enforces
//!
//! - Nothing but `connect` is sent, and no command is acted on, before an OK
//!   `connect.result` answers the current `connect` (DES-MSG-CONN-3). The epoch (DES-ID-5)
//!   goes in `connect` and every `data`. A `connect` unanswered for
//!   [`GatewayConfig::connect_timeout_sec`], or refused BUSY/INTERNAL/STALE, is followed by a
//!   new one after the DES-MQTT-8 back-off ([`super::flow::Backoff`], seeded by
//!   [`GatewayConfig::backoff_seed`]; the count resets after a session of 60 s). Any other
//!   refusal is lasting ([`GatewayEvent::ConnectRefused`] `lasting`: health `failed`): a new
//!   `connect` every [`LASTING_REFUSAL_RETRY_SEC`] on the same transport. `monitorIntervalSec`
//!   / `ackTimeoutSec` 0 mean [`DEFAULT_MONITOR_INTERVAL_SEC`] / [`DEFAULT_ACK_TIMEOUT_SEC`]
//!   (DES-MSG-CONN-2).
//! - Every down message goes through the gateway's order of checks of DES-MSG-3, first
//!   failure wins: (3) topic outside this gateway's down tree → `malformed` anomaly, dropped;
//!   (5–8, [`Inbound::Refused`]) undecodable → `malformed` anomaly, and if [`Inbound::Refused`]
//!   carries a [`Peek`] of a command type and the gateway is in session, the command's reply
//!   type with the decode code and the neutral body (DES-MSG-2; never UNKNOWN_TYPE, never for
//!   a failed opening); (9) envelope type ≠ topic level → anomaly; (10) envelope `gatewayId`
//!   not this gateway → `UNAUTHORIZED` (in session) and an `unauthorized` anomaly (DES-ENV-4,
//!   SM-ACL); (11) not in session → logged only; after `disconnect` → `INVALID_STATE`;
//!   (12) a command message ID in the reply memory (with the same type and timestamp; a
//!   reused ID with another type or timestamp is processed as new) → the stored replies
//!   re-sent unchanged (DES-ENV-8; before the freshness check, so a late retransmission of an
//!   applied command gets its OK again); (13) timestamp more than [`STALE_WINDOW_SEC`] from `now` → `STALE`
//!   and a `stale` anomaly (DES-ENV-7); (14) the type's rules below.
//! - `periodic.start`/`periodic.stop` with `commandSeq` <= the last applied one is answered
//!   `SUPERSEDED` with the current state, no change (DES-MSG-PS-4). The result body always
//!   carries the gateway's periodic state, so a platform can tell "already applied" (state's
//!   commandSeq equals its command's) from "overtaken" (greater).
//! - Records are only ingested while periodic storing is started for their dataset
//!   (SC-START-1, SC-STOP-1). Sequence numbers start at 1, increase strictly and are never
//!   reused, also across [`GatewayCore::snapshot`]/[`GatewayCore::restore`] (DES-ID-4).
//! - Records are ingested with their wire sizes; a record over `MAX_RECORD_BYTES` refuses its
//!   batch, and the index keeps batches that are message units: at most
//!   [`GatewayConfig::max_records_per_message`] records whose sizes sum to at most
//!   `MAX_MESSAGE_RECORD_BYTES` (DES-MSG-DATA-6, [`super::size`]). No data message is planned
//!   over either bound.
//! - `data` of kind `periodic` is only sent while started: every `intervalSec` the unacked,
//!   not held records not in flight go out, one dataset and one contiguous range per message;
//!   data not acknowledged within `ackTimeoutSec` is sent again under the same message ID, the
//!   timeout doubling up to 8× (IF-PSEND-3, DES-MSG-DATA-3). A stop ends new periodic
//!   messages, not the retransmission of those already sent (§6.5); after a reconnect while
//!   stopped, unacked records wait for the next start or a resend request. At most
//!   [`MAX_DATA_IN_FLIGHT`] data messages, periodic and resend, are unacknowledged at a time.
//! - A data message is given up after [`MAX_DATA_TRANSMISSIONS`] transmissions, on a
//!   `data.ack` MALFORMED / SECURITY_FAILED / UNKNOWN_DATASET / INVALID_STATE / TOO_LARGE, or
//!   when the adapter cannot build it ([`GatewayCore::handle_data_failed`]): anomaly, and its
//!   records are marked held in the persisted index — never sent periodically again, only on
//!   a resend request (DES-MSG-DATA-5).
//! - `resend.request` is answered by `resend.result` (`OK`, `PARTIAL` or `NOT_FOUND`) and then
//!   `data` of kind `resend` carrying exactly the stored or archived records it selects
//!   (ST-PROVIDE-1, DES-MSG-RS-2), queued and released as the in-flight window frees; `BUSY`
//!   (nothing sent) while an earlier resend still has data queued or unacknowledged
//!   (DES-MSG-RS-3). A reconnect abandons a running resend.
//! - `data.ack` with `OK` for the exact range of a data message this process sent (also one
//!   given up meanwhile) marks those records acknowledged and no longer held
//!   ([`GatewayEvent::RecordsAcked`]: storage may mark them); the `ackedThrough` of
//!   `connect.result` does the same for `1..=n`. [`GatewayCore::handle_evacuated`] marks
//!   acknowledged records archived (ST-EVAC-1); they stay in the index. Before handing in a
//!   `resend.request`, the adapter reads back the archives of
//!   [`GatewayCore::archived_selection`]; [`GatewayCore::handle_archive_lost`] takes the
//!   records of one that fails out of the index (no longer held, anomaly `storage`,
//!   DES-EVAC-5), so `resend.result` never promises what cannot be sent.
//! - Every `periodic.start.result` / `periodic.stop.result` is sent again (same message) each
//!   `ackTimeoutSec` until the platform's `ack` arrives, at most [`MAX_RESULT_RESENDS`] times,
//!   then reported as an anomaly (DES-MSG-PS-5).
//! - `monitor.status` right after an OK `connect.result` and then every `monitorIntervalSec`
//!   (MON-1, DES-MSG-MON-2); `anomaly` for every refused message (IF-PSTART-2,
//!   DES-MSG-AN-1), at most [`ANOMALY_RATE_LIMIT`] per kind per [`ANOMALY_WINDOW_SEC`],
//!   queued while not connected (at most [`ANOMALY_QUEUE_LEN`], oldest dropped) and sent after
//!   the first `monitor.status` of the next session; every one not sent is counted in
//!   `anomaliesDropped`, every one detected is a [`GatewayEvent::Anomaly`] (DES-MSG-AN-2);
//!   one the adapter could not seal (no valid platform certificate) goes back into that queue
//!   until it can seal again ([`GatewayCore::handle_unsealable`], DES-CERT-8);
//!   `disconnect` on shutdown (IF-DISC-1).
//!
//! # Timers and poll order
//!
//! [`GatewayCore::poll_timeout`] is the earliest armed deadline; [`GatewayCore::handle_timeout`]
//! first forgets replies older than [`REPLY_MEMORY_SEC`], then handles what is due, in this
//! order:
//!
//! | link state | timer | armed at | fires → |
//! |---|---|---|---|
//! | connecting | connect timeout | `connect` sent + `connect_timeout_sec` | attempt n failed: back off d_n (DES-MQTT-8) |
//! | backing off | connect retry | timeout or retryable refusal + d_n | new `connect` (new message ID) |
//! | refused (lasting) | connect retry | refusal + [`LASTING_REFUSAL_RETRY_SEC`] | new `connect` |
//! | up | data retransmission | each in-flight message: sent + `ackTimeoutSec` × 2^k (≤ 8×) | same message again (DES-MSG-DATA-3) |
//! | up | result re-send | each unacked start/stop result: sent + `ackTimeoutSec` | same result again, at most [`MAX_RESULT_RESENDS`] (DES-MSG-PS-5) |
//! | up | periodic send | start applied / last send + `intervalSec` | new periodic `data` (IF-PSEND-1) |
//! | up | monitoring | session open / last status + `monitorIntervalSec` | `monitor.status` (DES-MSG-MON-2) |
//!
//! Nothing is armed while the transport is down, closing or closed. Within one call outputs
//! are queued in that order; the adapter drains [`GatewayCore::poll_transmit`] and
//! [`GatewayCore::poll_event`] after every input.
//!
//! # Persistence
//!
//! The storage epoch, the record index (batches of one dataset's contiguous range, ingest
//! time, wire bytes, acked, held and archived flags), the sequence counter, the boot count,
//! the periodic state and the reply memory of DES-ENV-8 (entries younger than
//! [`REPLY_MEMORY_SEC`]) are the persisted state ([`GatewaySnapshot`], serde). Everything else
//! (link, in-flight data, resend queue, back-off, anomaly queue and rate windows, timers) is
//! volatile and rebuilt after [`GatewayCore::restore`], which increments the boot count.
//! The store MUST persist the new sequence counter (with the rows) before the FTP upload that
//! caused the ingest is acknowledged, and persist the snapshot taken right after `restore`
//! (the boot count is part of every message ID this process makes).

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use super::flow::{Backoff, RangeSet, STALE_WINDOW_SEC, Time, chunks, intersect, secs};
use super::ids::{Dataset, GatewayId, MessageId, Seq, SeqRange, StoreEpoch};
use super::message::{
    Anomaly, AnomalyKind, Body, CertExpiry, Connect, Data, DataKind, Direction, Disconnect,
    Envelope, HealthState, MessageType, MonitorStatus, Outcome, PROTOCOL_VERSION, Peek,
    PeriodicStart, PeriodicState, PeriodicStop, ProfileFormat, ResendRequest, ResendResult,
    ResultCode, Software, StorageStatus,
};
use super::size::{MAX_MESSAGE_RECORD_BYTES, MAX_RECORD_BYTES};
use super::topic::{parse_topic, topic_for};

pub use super::flow::InboundError;

/// Static configuration of a gateway core (from the provisioning bundle, DES-PROV-*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// This gateway's ID (DES-ID-1).
    pub gateway_id: GatewayId,
    /// Provisioned datasets; commands naming others are answered `UNKNOWN_DATASET`.
    pub datasets: Vec<Dataset>,
    /// Profile formats this gateway can produce.
    pub formats: Vec<ProfileFormat>,
    /// Protocol versions spoken, highest first (DES-VER-1).
    pub versions: Vec<u32>,
    /// Reported in `connect`.
    pub software: Software,
    /// Cap on records per `data` message (default 1000).
    pub max_records_per_message: u64,
    /// Seconds a `connect` waits for its result before it counts as failed and the DES-MQTT-8
    /// back-off starts (`connect_timeout_sec`, default 30).
    pub connect_timeout_sec: i64,
    /// Seed of the generator of the DES-MQTT-8 jitter. The adapter draws it from a CSPRNG at
    /// start; tests fix it so runs are repeatable.
    pub backoff_seed: u64,
}

impl GatewayConfig {
    /// A configuration with the defaults of protocol v1.
    pub fn new(gateway_id: GatewayId, datasets: Vec<Dataset>) -> Self {
        Self {
            gateway_id,
            datasets,
            formats: vec![ProfileFormat::Json, ProfileFormat::Xml],
            versions: vec![PROTOCOL_VERSION],
            software: Software {
                vendor: "SGW project".into(),
                product: "sgw".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            max_records_per_message: 1000,
            connect_timeout_sec: 30,
            backoff_seed: 0,
        }
    }
}

/// What the adapter hands in for one MQTT message received on the gateway's subscription.
// Moved once per message; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Opened by data security (decrypted, signature verified against the platform's
    /// data-protection certificate) and decoded.
    Opened {
        /// The MQTT topic it arrived on.
        topic: String,
        /// The decoded envelope.
        envelope: Envelope,
    },
    /// Could not be opened or decoded: reported as an anomaly, never acted on (IF-PSTART-2).
    Refused {
        /// The MQTT topic it arrived on.
        topic: String,
        /// Why.
        error: InboundError,
        /// What [`super::message::peek`] read from the opened bytes (`None` if it could not
        /// be opened or peeked), for the DES-MSG-2 reply.
        peek: Option<Peek>,
    },
}

/// A `data` message to send: the adapter reads records `range` of `dataset` from storage,
/// builds the data profile in `format`, seals it (DES-PROF-*) and calls
/// [`DataRequest::into_envelope`]. If it cannot (records unreadable, the sealed envelope over
/// `MAX_ENVELOPE_BYTES`), it calls [`GatewayCore::handle_data_failed`]: the message is given
/// up and its records held (DES-MSG-DATA-5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataRequest {
    /// Topic to publish on.
    pub topic: String,
    /// The data message's ID (the `data.ack` names it).
    pub message_id: MessageId,
    /// This gateway.
    pub gateway_id: GatewayId,
    /// The envelope timestamp to use.
    pub timestamp: Time,
    /// Whether this is a retransmission (DES-MSG-DATA-3): the same message ID, timestamp,
    /// range and format as the first transmission. The adapter SHOULD publish the sealed
    /// payload it kept from the first transmission, so the bytes are identical; if it kept
    /// none (e.g. evicted), it builds the profile again from the same records.
    pub retransmission: bool,
    /// The dataset of every record.
    pub dataset: Dataset,
    /// The storage epoch the records were numbered in (DES-ID-5).
    pub epoch: StoreEpoch,
    /// The records' sequence numbers.
    pub range: SeqRange,
    /// Periodic or resend.
    pub kind: DataKind,
    /// For a resend: the resend request's ID.
    pub request: Option<MessageId>,
    /// The profile format.
    pub format: ProfileFormat,
    /// The records were evacuated (ST-EVAC-1): read them from the archive, not the live store.
    /// Only ever set for resend data.
    pub archived: bool,
}

impl DataRequest {
    /// The `data` envelope carrying `profile` (the sealed data profile).
    pub fn into_envelope(self, profile: String) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            message_id: self.message_id,
            gateway_id: self.gateway_id,
            timestamp: self.timestamp,
            in_reply_to: None,
            result: None,
            body: Body::Data(Data {
                kind: self.kind,
                request: self.request,
                dataset: self.dataset,
                epoch: self.epoch,
                range: self.range,
                format: self.format,
                profile,
            }),
        }
    }
}

/// Something to publish (QoS 1, retain false).
#[derive(Debug, Clone, PartialEq)]
pub enum Transmit {
    /// A complete envelope: seal and publish on `topic`.
    Message {
        /// Topic to publish on.
        topic: String,
        /// The envelope.
        envelope: Envelope,
    },
    /// A `data` message whose profile the adapter must fill from storage.
    Data(DataRequest),
}

impl Transmit {
    /// The topic to publish on.
    pub fn topic(&self) -> &str {
        match self {
            Transmit::Message { topic, .. } => topic,
            Transmit::Data(d) => &d.topic,
        }
    }
    /// The message ID.
    pub fn message_id(&self) -> &MessageId {
        match self {
            Transmit::Message { envelope, .. } => &envelope.message_id,
            Transmit::Data(d) => &d.message_id,
        }
    }
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Transmit::Message { envelope, .. } => envelope.message_type(),
            Transmit::Data(_) => MessageType::Data,
        }
    }
}

/// A local effect for the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayEvent {
    /// The session is open (IF-CONN-1).
    Connected {
        /// Negotiated protocol version.
        version: u32,
    },
    /// The platform refused the connect (DES-MSG-CONN-3). `BUSY`, `INTERNAL`, `STALE` are
    /// retryable: a new `connect` after the DES-MQTT-8 back-off. Every other code is lasting:
    /// no session, a new `connect` every [`LASTING_REFUSAL_RETRY_SEC`] on the same transport;
    /// the adapter sets health `failed` with `lastError` naming `code` and `rule` until a
    /// session opens.
    ConnectRefused {
        /// The platform's code.
        code: ResultCode,
        /// The platform's reason.
        reason: Option<String>,
        /// Whether the refusal is lasting (health `failed`).
        lasting: bool,
        /// The rule to name in `lastError`: `DES-MSG-CONN-4` for INVALID_STATE, else
        /// `DES-MSG-CONN-3`.
        rule: &'static str,
        /// When the next `connect` goes out.
        retry_at: Time,
    },
    /// Start periodic storing (SC-START-1): system connection accepts these datasets now.
    StartStoring {
        /// Datasets (empty: all provisioned).
        datasets: Vec<Dataset>,
        /// Send interval.
        interval_sec: u32,
        /// Profile format.
        format: ProfileFormat,
        /// The applied command's `commandSeq` (persist it).
        command_seq: u64,
    },
    /// Stop periodic storing (SC-STOP-1).
    StopStoring {
        /// The applied command's `commandSeq` (persist it).
        command_seq: u64,
    },
    /// The platform acknowledged these records (IF-PSEND-3): storage may mark them.
    RecordsAcked {
        /// Their dataset.
        dataset: Dataset,
        /// Their sequence numbers.
        range: SeqRange,
    },
    /// An anomaly to log (and, when connected, reported in an `anomaly` message).
    Anomaly {
        /// The class.
        kind: AnomalyKind,
        /// The rule it violated.
        rule: &'static str,
        /// What happened.
        detail: String,
    },
    /// A message was not acted on for a benign reason (duplicate, unknown correlation, not
    /// connected yet); a log line.
    Ignored {
        /// The rule that made it so.
        rule: &'static str,
        /// What was ignored.
        detail: String,
    },
    /// The platform acknowledged one of our results with `ack` (IF-PSTART-4).
    ResultAcknowledged {
        /// The result's message ID.
        in_reply_to: MessageId,
    },
    /// The platform answered our `disconnect` (IF-DISC-1); the adapter may close the transport.
    Closed,
}

/// Why an ingest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// SC-START-1: periodic storing is not started, so nothing is stored.
    #[error("SC-START-1: periodic storing is not started")]
    NotStarted,
    /// SC-START-1: periodic storing is started for other datasets only.
    #[error("SC-START-1: periodic storing does not cover dataset {0}")]
    NotCovered(Dataset),
    /// DES-ID-3: the dataset is not provisioned on this gateway.
    #[error("DES-ID-3: dataset {0} is not provisioned")]
    UnknownDataset(Dataset),
    /// SC-ACQ-1: a batch holds at least one record.
    #[error("SC-ACQ-1: empty batch")]
    Empty,
    /// DES-ID-4: the sequence space is exhausted.
    #[error("DES-ID-4: sequence numbers exhausted")]
    Exhausted,
    /// DES-MSG-DATA-6: a record's wire size is over [`MAX_RECORD_BYTES`]; the whole batch is
    /// refused (FTP 552).
    #[error("DES-MSG-DATA-6: record {index} has a wire size of {bytes} bytes, more than 65536")]
    RecordTooLarge {
        /// Index of the record in the batch (0-based).
        index: usize,
        /// Its wire size.
        bytes: u32,
    },
    /// DES-ID-4: records storage committed do not start at the core's next seq (storage and
    /// core disagree; the adapter must hand commits over in seq order).
    #[error("DES-ID-4: stored records {}..={} do not start at the next seq {expected}", .got.first, .got.last)]
    OutOfOrder {
        /// The next seq the core expected.
        expected: Seq,
        /// The range storage reported.
        got: SeqRange,
    },
}

/// Why [`GatewayCore::handle_evacuated`] refused to mark a range archived (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvacuateError {
    /// ST-EVAC-1: records not yet acknowledged by the platform are never evacuated.
    #[error("ST-EVAC-1: records {}..={} are not acknowledged", .0.first, .0.last)]
    Unacknowledged(SeqRange),
    /// DES-MSG-DATA-5: held records wait for a resend request and are never evacuated.
    #[error("DES-MSG-DATA-5: records {}..={} are held", .0.first, .0.last)]
    Held(SeqRange),
    /// DES-EVAC-1: records still to be sent from primary storage (a data message queued or in
    /// flight) are not evacuated.
    #[error("DES-EVAC-1: records {}..={} are still to be sent from primary storage", .0.first, .0.last)]
    Pinned(SeqRange),
}

/// One ingested batch (or part of one): one dataset's contiguous records (ST-STORE-1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Batch {
    /// The dataset.
    pub dataset: Dataset,
    /// The records' sequence numbers.
    pub range: SeqRange,
    /// When the batch was ingested (for resend by time range).
    pub ingested_at: Time,
    /// Whether the platform acknowledged every record of it.
    pub acked: bool,
    /// Sum of the records' wire sizes (DES-MSG-DATA-6), at most
    /// [`MAX_MESSAGE_RECORD_BYTES`]. A piece of a cut batch keeps its batch's figure, an upper
    /// bound.
    pub bytes: u64,
    /// Its data message was given up (DES-MSG-DATA-5): unacknowledged, never sent periodically
    /// again, only in answer to a resend request.
    pub held: bool,
    /// Evacuated to an archive (ST-EVAC-1): acknowledged, read from the archive for a resend.
    pub archived: bool,
}

/// The periodic setting, persisted (mirror of [`PeriodicState`] that can be hashed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeriodicSetting {
    /// Whether periodic storing and sending runs.
    pub running: bool,
    /// Covered datasets (empty: every provisioned dataset).
    pub datasets: Vec<Dataset>,
    /// Interval in seconds (0 while stopped).
    pub interval_sec: u32,
    /// Profile format.
    pub format: ProfileFormat,
    /// Last applied `commandSeq` (0: none).
    pub command_seq: u64,
}

impl Default for PeriodicSetting {
    fn default() -> Self {
        Self {
            running: false,
            datasets: Vec::new(),
            interval_sec: 0,
            format: ProfileFormat::Json,
            command_seq: 0,
        }
    }
}

impl PeriodicSetting {
    /// As the wire type.
    pub fn to_state(&self) -> PeriodicState {
        PeriodicState {
            running: self.running,
            datasets: self.datasets.clone(),
            interval_sec: self.interval_sec,
            format: self.format,
            command_seq: self.command_seq,
        }
    }
    /// Whether a running setting covers `dataset`.
    pub fn covers(&self, dataset: &Dataset) -> bool {
        self.running && (self.datasets.is_empty() || self.datasets.contains(dataset))
    }
}

/// The persisted state of a gateway core (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewaySnapshot {
    /// The storage epoch (DES-ID-5); sequence numbers and boot counts count within it.
    pub epoch: StoreEpoch,
    /// Starts of the process so far.
    pub boot_count: u64,
    /// The next sequence number to assign (1 + last assigned).
    pub next_seq: Seq,
    /// Periodic setting and last applied `commandSeq`.
    pub periodic: PeriodicSetting,
    /// The record index, ascending by sequence number.
    pub batches: Vec<Batch>,
    /// The reply memory of DES-ENV-8: commands answered in the last [`REPLY_MEMORY_SEC`].
    pub reply_memory: Vec<RememberedReply>,
}

/// One entry of the reply memory (DES-ENV-8): a command's message ID and the reply envelopes
/// sent for it, re-sent unchanged (same message IDs) when the command arrives again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RememberedReply {
    /// The command's `messageId`.
    pub request: MessageId,
    /// The command's `type` (wire name).
    pub request_type: String,
    /// The command's `timestamp`; absent when it was answered from a peek (DES-MSG-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timestamp: Option<Time>,
    /// When it was answered; forgotten [`REPLY_MEMORY_SEC`] later.
    pub answered_at: Time,
    /// The replies, each as its DES-ENV-1 JSON text (before sealing).
    pub replies: Vec<String>,
}

/// Figures the core cannot know, set by the adapter for `monitor.status` (MON-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalStatus {
    /// Overall health.
    pub health: HealthState,
    /// Bytes used by primary storage.
    pub storage_bytes: u64,
    /// Records evacuated so far (ST-EVAC-1).
    pub evacuated: u64,
    /// Bytes free on the file system of primary storage (statvfs).
    pub free_bytes: u64,
    /// CSV files accepted since start.
    pub files_accepted: u64,
    /// CSV files refused since start.
    pub files_rejected: u64,
    /// `data` messages published for the first time since start (counted by the adapter).
    pub messages_sent: u64,
    /// `data` messages published again since start.
    pub messages_retransmitted: u64,
    /// Records acknowledged since start.
    pub records_acked: u64,
    /// Certificates and their expiry.
    pub certificates: Vec<CertExpiry>,
    /// Last error, naming its rule ID.
    pub last_error: Option<String>,
}

impl Default for ExternalStatus {
    fn default() -> Self {
        Self {
            health: HealthState::Ok,
            storage_bytes: 0,
            evacuated: 0,
            free_bytes: 0,
            files_accepted: 0,
            files_rejected: 0,
            messages_sent: 0,
            messages_retransmitted: 0,
            records_acked: 0,
            certificates: Vec::new(),
            last_error: None,
        }
    }
}

/// The session with the platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Link {
    /// No transport.
    Down,
    /// `connect` sent, waiting for its result until `timeout_at`.
    Connecting { id: MessageId, timeout_at: Time },
    /// The last `connect` failed (no result in time, or a retryable refusal); the next one goes
    /// out at `retry_at` (DES-MQTT-8).
    BackingOff { retry_at: Time },
    /// Session open since `since`.
    Up {
        version: u32,
        monitor_interval_sec: u32,
        ack_timeout_sec: u32,
        since: Time,
    },
    /// The platform refused the connect lastingly; the next `connect` goes out at `retry_at`
    /// (DES-MSG-CONN-3).
    Refused { retry_at: Time },
    /// `disconnect` sent.
    Closing { id: MessageId },
    /// Shut down.
    Closed,
}

/// A data message sent and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InFlight {
    /// The message ID; retransmissions reuse it (DES-MSG-DATA-3).
    id: MessageId,
    /// The envelope timestamp of the first transmission, reused by retransmissions.
    sent_at: Time,
    dataset: Dataset,
    range: SeqRange,
    kind: DataKind,
    request: Option<MessageId>,
    /// The profile format of the first transmission, reused by retransmissions.
    format: ProfileFormat,
    /// Read from the archive (ST-EVAC-1).
    archived: bool,
    /// Retransmissions so far; the timeout is `ackTimeoutSec × 2^sent_again`, at most
    /// [`MAX_BACKOFF`] × (DES-MSG-DATA-3).
    sent_again: u32,
    /// When to send again; `None` after shutdown (waits for a late ack only).
    deadline: Option<Time>,
}

/// In-flight window: no new periodic `data` message is started while this many data messages
/// are unacknowledged (DES-MSG-DATA-3).
pub const MAX_DATA_IN_FLIGHT: usize = 8;

/// Largest multiple of `ackTimeoutSec` a retransmission waits (DES-MSG-DATA-3).
const MAX_BACKOFF: i64 = 8;

/// Most transmissions of one data message, the first included (DES-MSG-DATA-5): after the
/// 8th retransmission's timeout the message is given up and its records held.
pub const MAX_DATA_TRANSMISSIONS: u32 = 9;

/// The rule of giving up a data message and holding its records.
const RULE_GIVE_UP: &str = "DES-MSG-DATA-5";

/// The rule of an archive that cannot be read back for a resend.
const RULE_ARCHIVE_LOST: &str = "DES-EVAC-5";

/// Given-up data messages remembered (volatile) so that a late OK `data.ack` for one of them
/// still acknowledges its records (the platform stored another copy of it).
const GIVEN_UP_KEPT: usize = 64;

/// A deliberate defect of the core, for the mutation tests of `gateway/tests/model_check.rs`
/// and `gateway/tests/model_gateway.rs`, and for the broken variants `resend-flood`,
/// `never-gives-up` and `busy-resend-served` (`crate::broken`, which only the conformance
/// crate's tests enable): it shows that the properties and the suite's cases catch a core that breaks DES-MSG-DATA-5 or
/// DES-MSG-RS-3, which no broken adapter or store can do from the outside. Set by
/// [`GatewayCore::set_defect`]; never set elsewhere.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Defect {
    /// The core as specified.
    #[default]
    None,
    /// Data messages are retransmitted without the [`MAX_DATA_TRANSMISSIONS`] cap.
    NoTransmissionCap,
    /// Queued resend data is released whatever the in-flight window.
    ResendIgnoresWindow,
    /// A resend request refused BUSY (DES-MSG-RS-2) is served all the same: its records are
    /// queued behind the running resend's.
    BusyResendServed,
}

/// A resend data message announced in `resend.result` and not yet sent: released as the
/// in-flight window frees (DES-MSG-RS-3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct QueuedResend {
    request: MessageId,
    dataset: Dataset,
    range: SeqRange,
    archived: bool,
}

/// Records of one dataset planned into one data message: contiguous, at most the count cap,
/// `bytes` (an upper bound of their wire sizes) at most [`MAX_MESSAGE_RECORD_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    dataset: Dataset,
    range: SeqRange,
    bytes: u64,
    archived: bool,
}

/// Cuts `range`, a part of a batch of `bytes`, into pieces within the count cap and the byte
/// budget. A well-formed batch is one piece; a batch from an index written under a larger
/// cap is cut by count (each piece keeps the bound), and one whose figure is over the budget
/// into single records (each at most [`MAX_RECORD_BYTES`], DES-MSG-DATA-6).
fn pieces_of(
    dataset: &Dataset,
    range: SeqRange,
    bytes: u64,
    archived: bool,
    cap: u64,
) -> Vec<Piece> {
    let (cap, bytes) = if bytes <= MAX_MESSAGE_RECORD_BYTES {
        (cap, bytes)
    } else {
        (1, bytes.min(u64::from(MAX_RECORD_BYTES)))
    };
    chunks(range, cap)
        .into_iter()
        .map(|range| Piece {
            dataset: dataset.clone(),
            range,
            bytes,
            archived,
        })
        .collect()
}

/// Joins consecutive pieces into data messages: same dataset and archive flag, contiguous,
/// at most `cap` records and [`MAX_MESSAGE_RECORD_BYTES`] (DES-MSG-DATA-6).
fn plan_messages(pieces: impl IntoIterator<Item = Piece>, cap: u64) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for p in pieces {
        match out.last_mut() {
            Some(m)
                if m.dataset == p.dataset
                    && m.archived == p.archived
                    && m.range.last.checked_add(1) == Some(p.range.first)
                    && m.range.len() + p.range.len() <= cap
                    && m.bytes + p.bytes <= MAX_MESSAGE_RECORD_BYTES =>
            {
                m.range.last = p.range.last;
                m.bytes += p.bytes;
            }
            _ => out.push(p),
        }
    }
    out
}

/// The retransmission timeout after `sent_again` retransmissions: `ack_timeout_sec` doubled
/// per retransmission, capped at [`MAX_BACKOFF`] × `ack_timeout_sec` (DES-MSG-DATA-3).
fn backoff(ack_timeout_sec: u32, sent_again: u32) -> chrono::Duration {
    let factor = 1_i64
        .checked_shl(sent_again.min(3))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    secs(i64::from(ack_timeout_sec).saturating_mul(factor))
}

/// A `periodic.start.result` / `periodic.stop.result` not yet answered by `ack`
/// (DES-MSG-PS-5).
#[derive(Debug, Clone, PartialEq)]
struct UnackedResult {
    envelope: Envelope,
    /// Times sent again so far (at most [`MAX_RESULT_RESENDS`]).
    resent: u32,
    deadline: Time,
}

/// How often a periodic result without `ack` is sent again before it is reported
/// (DES-MSG-PS-5).
pub const MAX_RESULT_RESENDS: u32 = 5;

/// `monitorIntervalSec` 0 in `connect.result` means this (DES-MSG-CONN-2).
pub const DEFAULT_MONITOR_INTERVAL_SEC: u32 = 60;

/// `ackTimeoutSec` 0 in `connect.result` means this (DES-MSG-CONN-2).
pub const DEFAULT_ACK_TIMEOUT_SEC: u32 = 30;

/// Seconds between `connect` attempts after a lasting refusal (DES-MSG-CONN-3), no jitter.
pub const LASTING_REFUSAL_RETRY_SEC: i64 = 300;

/// How long a command's replies are remembered (DES-ENV-8): twice the freshness window, so a
/// duplicate is either answered from memory or refused STALE, never applied twice.
pub const REPLY_MEMORY_SEC: i64 = 2 * STALE_WINDOW_SEC;

/// Most `anomaly` messages sent per kind per [`ANOMALY_WINDOW_SEC`] (DES-MSG-AN-2).
pub const ANOMALY_RATE_LIMIT: u32 = 10;

/// The rate-limit window of DES-MSG-AN-2, seconds.
pub const ANOMALY_WINDOW_SEC: i64 = 60;

/// Most anomalies queued while not connected (DES-MSG-AN-2); the oldest is dropped beyond.
pub const ANOMALY_QUEUE_LEN: usize = 100;

/// What identifies a command for the reply memory (DES-ENV-8).
struct RequestKey {
    id: MessageId,
    ty: MessageType,
    /// `None` when only peeked (DES-MSG-2).
    timestamp: Option<Time>,
}

impl RequestKey {
    /// Whether a remembered entry with this key's ID is this request again (a duplicate):
    /// same type and, where both are known, same timestamp.
    fn same_request(&self, r: &RememberedReply) -> bool {
        r.request_type == self.ty.as_str()
            && match (self.timestamp, r.request_timestamp) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// The gateway's protocol state machine. See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayCore {
    cfg: GatewayConfig,
    epoch: StoreEpoch,
    boot_count: u64,
    next_seq: Seq,
    next_msg: u64,
    periodic: PeriodicSetting,
    /// Ascending by `range.first`, disjoint.
    batches: Vec<Batch>,
    link: Link,
    inflight: Vec<InFlight>,
    /// Periodic results waiting for `ack` (DES-MSG-PS-5).
    results: Vec<UnackedResult>,
    /// The reply memory (DES-ENV-8), persisted; oldest first.
    replies: Vec<RememberedReply>,
    /// `connect` retries (DES-MQTT-8).
    backoff: Backoff,
    /// Resend data announced and not yet sent (DES-MSG-RS-3).
    resend_queue: VecDeque<QueuedResend>,
    /// The last [`GIVEN_UP_KEPT`] given-up data messages: (ID, range).
    given_up: VecDeque<(MessageId, SeqRange)>,
    next_send_at: Option<Time>,
    next_monitor_at: Option<Time>,
    anomalies: u64,
    /// Anomalies not sent: rate limit or queue overflow (DES-MSG-AN-2).
    anomalies_dropped: u64,
    /// `anomaly` messages made while not connected, sent after the next OK `connect.result`.
    anomaly_queue: VecDeque<Envelope>,
    /// Per kind: start of the current rate-limit window and anomalies sent in it.
    anomaly_windows: Vec<(AnomalyKind, Time, u32)>,
    started_at: Time,
    external: ExternalStatus,
    out: VecDeque<Transmit>,
    events: VecDeque<GatewayEvent>,
    /// Mutation tests only ([`Defect`]).
    defect: Defect,
}

/// Hashes every field that influences future behaviour, for explicit-state model checking.
/// Envelopes in the output queue are hashed by their message ID: within one core, a message
/// ID names one envelope. Observational fields (adapter status, anomaly counts, the anomaly
/// queue and rate windows — they decide only which `anomaly` messages go out —, queued events)
/// are left out. Equal values hash equally.
impl Hash for GatewayCore {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.epoch.hash(h);
        self.boot_count.hash(h);
        self.next_seq.hash(h);
        self.next_msg.hash(h);
        self.periodic.hash(h);
        self.batches.hash(h);
        self.link.hash(h);
        self.inflight.hash(h);
        for r in &self.results {
            r.envelope.message_id.hash(h);
            r.resent.hash(h);
            r.deadline.hash(h);
        }
        self.replies.hash(h);
        self.backoff.hash(h);
        self.resend_queue.hash(h);
        self.given_up.hash(h);
        self.next_send_at.hash(h);
        self.next_monitor_at.hash(h);
        for t in &self.out {
            t.message_id().hash(h);
        }
        self.defect.hash(h);
    }
}

/// The ID of message number `n` of boot `boot` of gateway `gw` (DES-ID-2): `{gw}.{boot}.{n}`
/// in hex, the gateway part cut to 28 characters so the ID stays within 64.
fn make_message_id(gw: &GatewayId, boot: u64, n: u64) -> MessageId {
    let g: String = gw.as_str().chars().take(28).collect();
    // Invariant: at most 28 alphanumerics + 2 dots + 2 × 16 hex digits = 62 characters of the
    // allowed alphabet, so the ID is always valid.
    MessageId::new(format!("{g}.{boot:x}.{n:x}")).expect("message ID within DES-ID-2")
}

impl GatewayCore {
    /// A gateway's first start with a new store of storage epoch `epoch` (DES-ID-5, drawn
    /// at random by the caller): boot count 1, no records.
    pub fn new(cfg: GatewayConfig, epoch: StoreEpoch, now: Time) -> Self {
        Self::from_snapshot(
            cfg,
            GatewaySnapshot {
                epoch,
                boot_count: 0,
                next_seq: 1,
                periodic: PeriodicSetting::default(),
                batches: Vec::new(),
                reply_memory: Vec::new(),
            },
            now,
        )
    }

    /// A restart from persisted state: the boot count increments, sequence numbers continue
    /// after `snapshot.next_seq - 1`, the periodic setting and the reply memory (DES-ENV-8)
    /// resume, volatile state is empty.
    pub fn restore(cfg: GatewayConfig, snapshot: GatewaySnapshot, now: Time) -> Self {
        Self::from_snapshot(cfg, snapshot, now)
    }

    fn from_snapshot(cfg: GatewayConfig, s: GatewaySnapshot, now: Time) -> Self {
        let mut batches = s.batches;
        batches.sort_by_key(|b| b.range.first);
        let last = batches.last().map_or(0, |b| b.range.last);
        let backoff = Backoff::new(cfg.backoff_seed);
        let mut replies = s.reply_memory;
        replies.sort_by_key(|r| r.answered_at);
        replies.retain(|r| now - r.answered_at <= secs(REPLY_MEMORY_SEC));
        Self {
            cfg,
            epoch: s.epoch,
            boot_count: s.boot_count.saturating_add(1),
            // Never below what the index proves was assigned.
            next_seq: s.next_seq.max(last.saturating_add(1)).max(1),
            next_msg: 1,
            periodic: s.periodic,
            batches,
            link: Link::Down,
            inflight: Vec::new(),
            results: Vec::new(),
            replies,
            backoff,
            resend_queue: VecDeque::new(),
            given_up: VecDeque::new(),
            next_send_at: None,
            next_monitor_at: None,
            anomalies: 0,
            anomalies_dropped: 0,
            anomaly_queue: VecDeque::new(),
            anomaly_windows: Vec::new(),
            started_at: now,
            external: ExternalStatus::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            defect: Defect::None,
        }
    }

    /// The persisted state (persist it after every input that changed it).
    pub fn snapshot(&self) -> GatewaySnapshot {
        GatewaySnapshot {
            epoch: self.epoch.clone(),
            boot_count: self.boot_count,
            next_seq: self.next_seq,
            periodic: self.periodic.clone(),
            batches: self.batches.clone(),
            reply_memory: self.replies.clone(),
        }
    }

    // ----- accessors -----

    /// This gateway's ID.
    pub fn gateway_id(&self) -> &GatewayId {
        &self.cfg.gateway_id
    }
    /// The storage epoch (DES-ID-5).
    pub fn epoch(&self) -> &StoreEpoch {
        &self.epoch
    }
    /// The boot count of this process.
    pub fn boot_count(&self) -> u64 {
        self.boot_count
    }
    /// The last sequence number assigned (0: none).
    pub fn last_seq(&self) -> Seq {
        self.next_seq - 1
    }
    /// The periodic setting.
    pub fn periodic(&self) -> &PeriodicSetting {
        &self.periodic
    }
    /// Whether the session is open.
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Up { .. })
    }
    /// The record index.
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }
    /// Records not yet acknowledged.
    pub fn unacked_records(&self) -> u64 {
        self.batches
            .iter()
            .filter(|b| !b.acked)
            .map(|b| b.range.len())
            .sum()
    }
    /// Seconds since the oldest unacknowledged record was ingested, 0 when none
    /// (`monitor.status.storage.oldestUnackedSec`).
    pub fn oldest_unacked_sec(&self, now: Time) -> u64 {
        self.batches
            .iter()
            .filter(|b| !b.acked)
            .map(|b| b.ingested_at)
            .min()
            .map_or(0, |t| u64::try_from((now - t).num_seconds()).unwrap_or(0))
    }
    /// Records whose data message was given up (DES-MSG-DATA-5), sent only on a resend
    /// request (`monitor.status.storage.held`).
    pub fn held_records(&self) -> u64 {
        self.batches
            .iter()
            .filter(|b| b.held)
            .map(|b| b.range.len())
            .sum()
    }
    /// Records in primary storage, i.e. not evacuated (`monitor.status.storage.records`).
    pub fn stored_records(&self) -> u64 {
        self.batches
            .iter()
            .filter(|b| !b.archived)
            .map(|b| b.range.len())
            .sum()
    }
    /// Whether a resend is running: some of its data is queued or unacknowledged
    /// (DES-MSG-RS-2: another request is answered BUSY).
    pub fn resend_running(&self) -> bool {
        !self.resend_queue.is_empty() || self.inflight.iter().any(|f| f.kind == DataKind::Resend)
    }
    /// Data messages sent and not yet acknowledged or given up (at most
    /// [`MAX_DATA_IN_FLIGHT`]).
    pub fn data_in_flight(&self) -> usize {
        self.inflight.len()
    }
    /// Anomalies detected since start.
    pub fn anomaly_count(&self) -> u64 {
        self.anomalies
    }
    /// Of those, not sent (DES-MSG-AN-2).
    pub fn anomalies_dropped(&self) -> u64 {
        self.anomalies_dropped
    }
    /// Whether the gateway is in session (DES-MSG-3): an OK `connect.result` arrived on the
    /// current transport, also after `disconnect` was sent.
    pub fn in_session(&self) -> bool {
        matches!(self.link, Link::Up { .. } | Link::Closing { .. })
    }
    /// Sets the figures of `monitor.status` the core cannot know.
    pub fn set_external_status(&mut self, status: ExternalStatus) {
        self.external = status;
    }
    /// Mutation tests only: makes this core deliberately defective ([`Defect`]). Not
    /// persisted: [`Self::restore`] makes a core without defect.
    #[doc(hidden)]
    pub fn set_defect(&mut self, defect: Defect) {
        self.defect = defect;
    }

    // ----- outputs -----

    /// The next message to publish.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// The next local effect.
    pub fn poll_event(&mut self) -> Option<GatewayEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] should be called next (`None`: no timer armed).
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut t: Option<Time> = None;
        let mut consider = |d: Option<Time>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        };
        match &self.link {
            Link::Connecting { timeout_at, .. } => consider(Some(*timeout_at)),
            Link::BackingOff { retry_at } | Link::Refused { retry_at } => consider(Some(*retry_at)),
            Link::Up { .. } => {
                consider(self.next_send_at);
                consider(self.next_monitor_at);
                for f in &self.inflight {
                    consider(f.deadline);
                }
                for r in &self.results {
                    consider(Some(r.deadline));
                }
            }
            _ => {}
        }
        t
    }

    // ----- inputs -----

    /// The transport (MQTT over TLS) is up: send `connect` (IF-CONN-1).
    pub fn handle_connected(&mut self, now: Time) {
        if matches!(self.link, Link::Closing { .. } | Link::Closed) {
            return;
        }
        self.send_connect(now);
    }

    /// The transport went down: the session ends; unsent output is dropped; data in flight
    /// will be sent again after the next `connect.result`. A session that lasted
    /// [`super::flow::BACKOFF_RESET_AFTER_SEC`] resets the `connect` back-off (DES-MQTT-8).
    pub fn handle_disconnected(&mut self, now: Time) {
        if let Link::Up { since, .. } = self.link {
            self.backoff.session_ended(now - since);
        }
        self.link = match self.link {
            Link::Closing { .. } | Link::Closed => Link::Closed,
            _ => Link::Down,
        };
        self.out.clear();
        self.inflight.clear();
        // A reconnect abandons a running resend (DES-MSG-RS-3).
        self.resend_queue.clear();
        self.results.clear();
        self.next_send_at = None;
        self.next_monitor_at = None;
    }

    /// Shut down: send `disconnect` if connected (IF-DISC-1); nothing is sent afterwards.
    pub fn handle_shutdown(&mut self, now: Time) {
        if self.is_connected() {
            let id = self.next_id();
            let env = self.envelope(
                now,
                id.clone(),
                Body::Disconnect(Disconnect {
                    reason: "shutdown".into(),
                }),
            );
            self.push(env);
            self.link = Link::Closing { id };
        } else {
            self.link = Link::Closed;
        }
        self.next_send_at = None;
        self.next_monitor_at = None;
        self.results.clear();
        self.resend_queue.clear();
        for f in &mut self.inflight {
            f.deadline = None;
        }
    }

    /// A batch of records of `dataset` was received from a legacy system and masked
    /// (SC-ACQ-1), `record_bytes[i]` the wire size of record `i`
    /// ([`super::size::record_wire_bytes`]): assign their sequence numbers (ST-STORE-1).
    /// Refused unless periodic storing is started for the dataset (SC-START-1, SC-STOP-1), and
    /// whole if any record is over [`MAX_RECORD_BYTES`] (DES-MSG-DATA-6). The records are
    /// indexed in batches that are message units: at most `max_records_per_message` records
    /// whose sizes sum to at most [`MAX_MESSAGE_RECORD_BYTES`]. An adapter that lets the core
    /// assign seqs stores the rows under the returned range and persists [`Self::snapshot`]
    /// before acknowledging the upload; the reference runtime lets its store assign them inside
    /// the commit and calls [`Self::handle_stored`] instead (this entry serves the model checks
    /// and the scripted gateways of the tests).
    pub fn handle_ingest(
        &mut self,
        now: Time,
        dataset: &Dataset,
        record_bytes: &[u32],
    ) -> Result<SeqRange, IngestError> {
        if !self.cfg.datasets.contains(dataset) {
            return Err(IngestError::UnknownDataset(dataset.clone()));
        }
        if !self.periodic.running {
            return Err(IngestError::NotStarted);
        }
        if !self.periodic.covers(dataset) {
            return Err(IngestError::NotCovered(dataset.clone()));
        }
        self.index_records(now, dataset, record_bytes)
    }

    /// Records that storage has already committed durably as `range` (DES-FTP-6: the store
    /// assigns the seqs inside its commit, DES-ID-4), ingested at `ingested_at`: indexed as new
    /// unacknowledged batches exactly as [`GatewayCore::handle_ingest`] would. The periodic
    /// state is not checked here — the adapter checked it when the upload began (450,
    /// DES-FTP-6), and durable rows must be sent whatever happened since. `range` must start
    /// at the next seq and hold one seq per record ([`IngestError::OutOfOrder`] otherwise:
    /// the adapter hands commits over in seq order).
    pub fn handle_stored(
        &mut self,
        dataset: &Dataset,
        range: SeqRange,
        record_bytes: &[u32],
        ingested_at: Time,
    ) -> Result<(), IngestError> {
        if !self.cfg.datasets.contains(dataset) {
            return Err(IngestError::UnknownDataset(dataset.clone()));
        }
        if range.first != self.next_seq || range.len() != record_bytes.len() as u64 {
            return Err(IngestError::OutOfOrder {
                expected: self.next_seq,
                got: range,
            });
        }
        self.index_records(ingested_at, dataset, record_bytes)
            .map(|_| ())
    }

    /// Indexes `record_bytes` as new batches from the next seq on, ingested at `at`.
    fn index_records(
        &mut self,
        at: Time,
        dataset: &Dataset,
        record_bytes: &[u32],
    ) -> Result<SeqRange, IngestError> {
        let now = at;
        if record_bytes.is_empty() {
            return Err(IngestError::Empty);
        }
        if let Some((index, &bytes)) = record_bytes
            .iter()
            .enumerate()
            .find(|(_, b)| **b > MAX_RECORD_BYTES)
        {
            return Err(IngestError::RecordTooLarge { index, bytes });
        }
        let rows = record_bytes.len() as u64;
        let first = self.next_seq;
        let last = first
            .checked_add(rows - 1)
            .filter(|l| *l < Seq::MAX)
            .ok_or(IngestError::Exhausted)?;
        let cap = self.cfg.max_records_per_message.max(1);
        let mut start = first;
        let mut count = 0u64;
        let mut bytes = 0u64;
        let batch = |start: Seq, count: u64, bytes: u64| Batch {
            dataset: dataset.clone(),
            range: SeqRange {
                first: start,
                last: start + (count - 1),
            },
            ingested_at: now,
            acked: false,
            bytes,
            held: false,
            archived: false,
        };
        let mut new = Vec::new();
        for w in record_bytes.iter().map(|w| u64::from(*w)) {
            if count > 0 && (count == cap || bytes + w > MAX_MESSAGE_RECORD_BYTES) {
                new.push(batch(start, count, bytes));
                start += count;
                count = 0;
                bytes = 0;
            }
            count += 1;
            bytes += w;
        }
        new.push(batch(start, count, bytes));
        self.batches.extend(new);
        self.next_seq = last + 1;
        Ok(SeqRange { first, last })
    }

    /// The adapter could not build or publish the data message `message_id` (records
    /// unreadable, sealed envelope over `MAX_ENVELOPE_BYTES`, …): the message is given up like
    /// one refused by the platform (DES-MSG-DATA-5): out of flight, an anomaly naming `reason`,
    /// its records held until a resend request asks for them.
    pub fn handle_data_failed(&mut self, now: Time, message_id: &MessageId, reason: &str) {
        let Some(pos) = self.inflight.iter().position(|f| f.id == *message_id) else {
            self.ignored(
                RULE_GIVE_UP,
                format!("data {message_id} failed but is not in flight: {reason}"),
            );
            return;
        };
        self.give_up(now, pos, AnomalyKind::Malformed, reason, None);
        self.release_resend(now);
    }

    /// An anomaly detected by an adapter outside the protocol (south interface: a refused
    /// upload or a login lock, DES-FTP-3/6; storage; certificates, DES-CERT-3): counted,
    /// rate-limited, queued while offline and reported exactly like the core's own
    /// (DES-MSG-AN-1, DES-MSG-AN-2).
    pub fn handle_anomaly(
        &mut self,
        now: Time,
        kind: AnomalyKind,
        rule: &'static str,
        detail: String,
    ) {
        self.anomaly(now, kind, rule, detail, None);
    }

    /// DES-CERT-8: the adapter could not seal `envelope` because the held platform
    /// certificate no longer passes DES-CERT-4. An `anomaly` goes back into the offline queue
    /// of DES-MSG-AN-2 (its bound; the oldest dropped and counted), to be sent by
    /// [`Self::handle_sealing_restored`]; anything else is not kept (a status is sent again at
    /// its interval, a result again on its own timer, data is given up by the adapter through
    /// [`Self::handle_data_failed`]).
    pub fn handle_unsealable(&mut self, envelope: Envelope) {
        if !matches!(envelope.body, Body::Anomaly(_)) {
            return;
        }
        self.anomaly_queue.push_back(envelope);
        while self.anomaly_queue.len() > ANOMALY_QUEUE_LEN {
            self.anomaly_queue.pop_front();
            self.anomalies_dropped += 1;
        }
    }

    /// DES-CERT-8: the adapter can seal again (it sealed a message, or installed a
    /// `platform.pem`): in session, the anomalies kept meanwhile are sent, oldest first, subject
    /// to the rate limit (DES-MSG-AN-2). Out of session they stay queued for the next one.
    pub fn handle_sealing_restored(&mut self, now: Time) {
        if self.is_connected() {
            self.flush_anomaly_queue(now);
        }
    }

    /// Records still to be read from primary storage by a data message queued or in flight
    /// (DES-EVAC-1: not evacuated while so): the resend messages planned but not yet released
    /// and every in-flight message built from primary storage (a retransmission may have to
    /// be built again, e.g. after a restart). Sorted, may overlap.
    pub fn pinned_ranges(&self) -> Vec<SeqRange> {
        let mut v: Vec<SeqRange> = self
            .inflight
            .iter()
            .filter(|f| !f.archived)
            .map(|f| f.range)
            .chain(
                self.resend_queue
                    .iter()
                    .filter(|q| !q.archived)
                    .map(|q| q.range),
            )
            .collect();
        v.sort_by_key(|r| (r.first, r.last));
        v
    }

    /// Records `range` were evacuated to an archive (ST-EVAC-1): their batches are marked
    /// archived and stay in the index (last seq, time ranges, resend from the archive). Refused,
    /// nothing changed, if any record of `range` is unacknowledged or held. Returns how many
    /// records were newly marked. The caller keeps [`Self::pinned_ranges`] out of the evacuation
    /// (DES-EVAC-1); a pinned record reported here is refused ([`EvacuateError::Pinned`]).
    pub fn handle_evacuated(&mut self, range: SeqRange) -> Result<u64, EvacuateError> {
        for b in &self.batches {
            let Some(x) = intersect(b.range, range) else {
                continue;
            };
            if b.held {
                return Err(EvacuateError::Held(x));
            }
            if !b.acked {
                return Err(EvacuateError::Unacknowledged(x));
            }
        }
        if let Some(x) = self
            .pinned_ranges()
            .into_iter()
            .find_map(|p| intersect(p, range))
        {
            return Err(EvacuateError::Pinned(x));
        }
        let changed = self.update_range(range, |b| !b.archived, |b| b.archived = true);
        Ok(changed.iter().map(|(_, r)| r.len()).sum())
    }

    /// The archived pieces (dataset, seqs) a resend request would read back from evacuation
    /// archives (DES-EVAC-5). The adapter reads and checks those archives before it hands the
    /// request in, and reports an unreadable one with [`Self::handle_archive_lost`], so that
    /// `resend.result` counts only records that can really be sent.
    pub fn archived_selection(&self, request: &ResendRequest) -> Vec<(Dataset, SeqRange)> {
        self.select(request)
            .into_iter()
            .filter(|p| p.archived)
            .map(|p| (p.dataset, p.range))
            .collect()
    }

    /// The archive holding the archived records `range` is missing or failed a check (SHA-256,
    /// decryption, signature, header; DES-EVAC-5): those records count as no longer held —
    /// they leave the record index (`lastSeq` is unchanged), so a resend selecting them answers
    /// PARTIAL or NOT_FOUND (DES-MSG-RS-2) — and an `anomaly` of kind `storage`, rule
    /// DES-EVAC-5, reports it. Records not archived are never touched. Returns how many
    /// records left the index.
    pub fn handle_archive_lost(&mut self, now: Time, range: SeqRange, detail: String) -> u64 {
        let mut lost = 0;
        let mut out = Vec::with_capacity(self.batches.len() + 1);
        for b in std::mem::take(&mut self.batches) {
            let Some(mid) = intersect(b.range, range).filter(|_| b.archived) else {
                out.push(b);
                continue;
            };
            lost += mid.len();
            for keep in [
                SeqRange::new(b.range.first, mid.first.saturating_sub(1)),
                SeqRange::new(mid.last + 1, b.range.last),
            ]
            .into_iter()
            .flatten()
            {
                out.push(Batch {
                    range: keep,
                    ..b.clone()
                });
            }
        }
        self.batches = out;
        if lost > 0 {
            self.anomaly(now, AnomalyKind::Storage, RULE_ARCHIVE_LOST, detail, None);
        }
        lost
    }

    /// An MQTT message arrived on the gateway's subscription.
    pub fn handle_inbound(&mut self, now: Time, inbound: Inbound) {
        match inbound {
            Inbound::Refused { topic, error, peek } => {
                self.anomaly(
                    now,
                    error.anomaly_kind(),
                    error.rule(),
                    format!("{} refused: {error}", error.result_code().as_str()),
                    Some(topic.clone()),
                );
                self.answer_undecodable(now, &topic, &error, peek);
            }
            Inbound::Opened { topic, envelope } => self.handle_opened(now, topic, envelope),
        }
    }

    /// Timers (see the module doc's table): connect timeout and retry, periodic send,
    /// retransmission, result re-sends, monitoring status.
    pub fn handle_timeout(&mut self, now: Time) {
        self.expire_replies(now);
        match self.link.clone() {
            Link::Connecting { timeout_at, .. } if timeout_at <= now => {
                let delay = self.backoff.failed();
                self.ignored(
                    "DES-MQTT-8",
                    format!(
                        "no connect.result within {} s; connect attempt {} failed, next in {} ms",
                        self.cfg.connect_timeout_sec.max(1),
                        self.backoff.failures(),
                        delay.num_milliseconds()
                    ),
                );
                self.link = Link::BackingOff {
                    retry_at: timeout_at + delay,
                };
            }
            Link::BackingOff { retry_at } | Link::Refused { retry_at } if retry_at <= now => {
                self.send_connect(now);
            }
            Link::Up {
                monitor_interval_sec,
                ack_timeout_sec,
                ..
            } => {
                self.retransmit_due(now, ack_timeout_sec);
                self.resend_results_due(now, ack_timeout_sec);
                if self.next_send_at.is_some_and(|t| t <= now) {
                    if self.periodic.running {
                        self.send_pending(now, ack_timeout_sec);
                        self.next_send_at =
                            Some(now + secs(i64::from(self.periodic.interval_sec.max(1))));
                    } else {
                        self.next_send_at = None;
                    }
                }
                if self.next_monitor_at.is_some_and(|t| t <= now) {
                    self.send_status(now);
                    self.next_monitor_at = Some(now + secs(i64::from(monitor_interval_sec.max(1))));
                }
            }
            _ => {}
        }
    }

    // ----- internals -----

    fn next_id(&mut self) -> MessageId {
        let id = make_message_id(&self.cfg.gateway_id, self.boot_count, self.next_msg);
        self.next_msg += 1;
        id
    }

    fn envelope(&self, now: Time, id: MessageId, body: Body) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            message_id: id,
            gateway_id: self.cfg.gateway_id.clone(),
            timestamp: now,
            in_reply_to: None,
            result: None,
            body,
        }
    }

    fn push(&mut self, envelope: Envelope) {
        let topic = topic_for(&self.cfg.gateway_id, envelope.message_type());
        self.out.push_back(Transmit::Message { topic, envelope });
    }

    fn reply(&mut self, now: Time, to: &Envelope, outcome: Outcome, body: Body) -> Envelope {
        let id = self.next_id();
        let mut env = self.envelope(now, id, body);
        env.in_reply_to = Some(to.message_id.clone());
        env.result = Some(outcome);
        env
    }

    fn send_connect(&mut self, now: Time) {
        let id = self.next_id();
        let env = self.envelope(
            now,
            id.clone(),
            Body::Connect(Connect {
                versions: self.cfg.versions.clone(),
                software: self.cfg.software.clone(),
                formats: self.cfg.formats.clone(),
                epoch: self.epoch.clone(),
                boot_count: self.boot_count,
                last_seq: self.last_seq(),
                periodic: self.periodic.to_state(),
            }),
        );
        self.out.clear();
        self.push(env);
        self.link = Link::Connecting {
            id,
            timeout_at: now + secs(self.cfg.connect_timeout_sec.max(1)),
        };
    }

    fn anomaly(
        &mut self,
        now: Time,
        kind: AnomalyKind,
        rule: &'static str,
        detail: String,
        topic: Option<String>,
    ) {
        self.anomalies += 1;
        let mut detail = detail;
        truncate_text(&mut detail);
        self.events.push_back(GatewayEvent::Anomaly {
            kind,
            rule,
            detail: detail.clone(),
        });
        let connected = self.is_connected();
        if connected && !self.anomaly_allowed(now, kind) {
            self.anomalies_dropped += 1;
            return;
        }
        let id = self.next_id();
        let topic = topic.map(|mut t| {
            truncate_text(&mut t);
            t
        });
        let env = self.envelope(
            now,
            id,
            Body::Anomaly(Anomaly {
                kind,
                rule: rule.into(),
                detail,
                topic,
            }),
        );
        if connected {
            self.push(env);
        } else {
            // Offline queue (DES-MSG-AN-2): the oldest goes when a 101st arrives.
            self.anomaly_queue.push_back(env);
            while self.anomaly_queue.len() > ANOMALY_QUEUE_LEN {
                self.anomaly_queue.pop_front();
                self.anomalies_dropped += 1;
            }
        }
    }

    /// The rate limit of DES-MSG-AN-2: whether one more `anomaly` of `kind` may be sent at
    /// `now` (and counts it). A window starts at the first anomaly of its kind after the
    /// previous window ended and lasts [`ANOMALY_WINDOW_SEC`].
    fn anomaly_allowed(&mut self, now: Time, kind: AnomalyKind) -> bool {
        let window = secs(ANOMALY_WINDOW_SEC);
        match self.anomaly_windows.iter_mut().find(|w| w.0 == kind) {
            Some(w) if now - w.1 < window => {
                if w.2 >= ANOMALY_RATE_LIMIT {
                    return false;
                }
                w.2 += 1;
            }
            Some(w) => *w = (kind, now, 1),
            None => self.anomaly_windows.push((kind, now, 1)),
        }
        true
    }

    /// Sends the anomalies queued while not connected, oldest first, subject to the rate limit
    /// (DES-MSG-AN-2).
    fn flush_anomaly_queue(&mut self, now: Time) {
        while let Some(env) = self.anomaly_queue.pop_front() {
            let Body::Anomaly(a) = &env.body else {
                continue;
            };
            if self.anomaly_allowed(now, a.kind) {
                self.push(env);
            } else {
                self.anomalies_dropped += 1;
            }
        }
    }

    /// DES-MSG-2 (steps 5–8 of DES-MSG-3): a down command that failed to decode is answered
    /// with its reply type, the decode error's code and the neutral body, if `peek` read a
    /// command type and message ID, the topic is this gateway's down tree and the gateway is
    /// in session. UNKNOWN_TYPE is never a reply; a message that failed to open is never
    /// answered.
    fn answer_undecodable(
        &mut self,
        now: Time,
        topic: &str,
        error: &InboundError,
        peek: Option<Peek>,
    ) {
        let (InboundError::Decode(e), Some(peek)) = (error, peek) else {
            return;
        };
        let code = e.result_code();
        if code == ResultCode::UnknownType || !self.in_session() {
            return;
        }
        let Some(body) = self.neutral_reply_body(peek.message_type) else {
            return;
        };
        let own_down_topic = parse_topic(topic)
            .is_ok_and(|t| t.gateway == self.cfg.gateway_id && t.direction == Direction::Down);
        if !own_down_topic {
            return;
        }
        let mut reason = e.to_string();
        truncate_text(&mut reason);
        let id = self.next_id();
        let mut reply = self.envelope(now, id, body);
        reply.in_reply_to = Some(peek.message_id.clone());
        reply.result = Some(Outcome::new(code, reason));
        let request = RequestKey {
            id: peek.message_id,
            ty: peek.message_type,
            timestamp: None,
        };
        self.send_command_replies(now, request, vec![reply], Vec::new());
    }

    fn ignored(&mut self, rule: &'static str, detail: String) {
        self.events
            .push_back(GatewayEvent::Ignored { rule, detail });
    }

    /// Steps 3, 9 and 10 of DES-MSG-3 for an opened down message, then its type's rules.
    fn handle_opened(&mut self, now: Time, topic: String, env: Envelope) {
        let ty = env.message_type();
        // Step 3: the topic is in this gateway's down tree (DES-MQTT-3/4).
        let parsed = match parse_topic(&topic) {
            Ok(p) => p,
            Err(e) => {
                self.anomaly(
                    now,
                    AnomalyKind::Malformed,
                    "DES-MQTT-3",
                    e.to_string(),
                    None,
                );
                return;
            }
        };
        if parsed.gateway != self.cfg.gateway_id {
            self.anomaly(
                now,
                AnomalyKind::Malformed,
                "DES-MQTT-3",
                format!("{} arrived on another tenant's topic", ty.as_str()),
                Some(topic),
            );
            return;
        }
        if parsed.direction != Direction::Down || ty.direction() != Direction::Down {
            self.anomaly(
                now,
                AnomalyKind::Malformed,
                "DES-MQTT-4",
                format!("{} arrived on a topic not for the gateway", ty.as_str()),
                Some(topic),
            );
            return;
        }
        // Step 9: the envelope type is the topic's last level (DES-MQTT-4).
        if parsed.message_type != Some(ty) {
            self.anomaly(
                now,
                AnomalyKind::Malformed,
                "DES-MQTT-4",
                format!("{} arrived on the wrong topic", ty.as_str()),
                Some(topic),
            );
            return;
        }
        // Step 10: the envelope names this gateway (DES-ENV-4).
        if env.gateway_id != self.cfg.gateway_id {
            self.anomaly(
                now,
                AnomalyKind::Unauthorized,
                "DES-ENV-4",
                format!(
                    "{} for gateway {} is not for {}",
                    ty.as_str(),
                    env.gateway_id,
                    self.cfg.gateway_id
                ),
                Some(topic),
            );
            if self.in_session()
                && let Some(body) = self.neutral_reply_body(ty)
            {
                let r = self.reply(
                    now,
                    &env,
                    Outcome::new(ResultCode::Unauthorized, "DES-ENV-4: not this gateway"),
                    body,
                );
                self.push(r);
            }
            return;
        }
        match env.body {
            Body::ConnectResult(_) => self.on_connect_result(now, &env),
            Body::DataAck(_) => self.on_data_ack(now, &env),
            Body::Ack(_) => {
                if let Some(id) = env.in_reply_to.clone() {
                    self.results.retain(|r| r.envelope.message_id != id);
                    self.events
                        .push_back(GatewayEvent::ResultAcknowledged { in_reply_to: id });
                }
            }
            Body::DisconnectResult(_) => {
                if matches!(&self.link, Link::Closing { id } if Some(id) == env.in_reply_to.as_ref())
                {
                    self.link = Link::Closed;
                    self.events.push_back(GatewayEvent::Closed);
                } else {
                    self.ignored("DES-ENV-3", "disconnect.result for no disconnect".into());
                }
            }
            Body::PeriodicStart(_) | Body::PeriodicStop(_) | Body::ResendRequest(_) => {
                self.on_command(now, env);
            }
            // Up-direction bodies were refused by the topic check above.
            _ => self.ignored(
                "DES-MQTT-4",
                format!("{} is not for a gateway", ty.as_str()),
            ),
        }
    }

    /// The neutral body of the reply to a down command of type `ty` (DES-MSG-2): the current
    /// periodic state for start/stop, `{0,0,0}` for resend; `None` for other types.
    fn neutral_reply_body(&self, ty: MessageType) -> Option<Body> {
        match ty {
            MessageType::PeriodicStart => Some(Body::PeriodicStartResult(self.periodic.to_state())),
            MessageType::PeriodicStop => Some(Body::PeriodicStopResult(self.periodic.to_state())),
            MessageType::ResendRequest => Some(Body::ResendResult(ResendResult {
                records: 0,
                messages: 0,
                archived: 0,
            })),
            _ => None,
        }
    }

    fn on_connect_result(&mut self, now: Time, env: &Envelope) {
        let Link::Connecting { id, .. } = &self.link else {
            self.ignored("DES-ENV-3", "connect.result while not connecting".into());
            return;
        };
        if env.in_reply_to.as_ref() != Some(id) {
            self.ignored("DES-ENV-3", "connect.result for an earlier connect".into());
            return;
        }
        let (Body::ConnectResult(cr), Some(outcome)) = (&env.body, &env.result) else {
            return;
        };
        if outcome.code != ResultCode::Ok || !self.cfg.versions.contains(&cr.version) {
            let code = if outcome.code == ResultCode::Ok {
                ResultCode::UnsupportedVersion
            } else {
                outcome.code
            };
            // DES-MSG-CONN-3: BUSY, INTERNAL and STALE are retried with the DES-MQTT-8
            // back-off; every other code is lasting, retried every 300 s.
            let lasting = !matches!(
                code,
                ResultCode::Busy | ResultCode::Internal | ResultCode::Stale
            );
            let retry_at = if lasting {
                now + secs(LASTING_REFUSAL_RETRY_SEC)
            } else {
                now + self.backoff.failed()
            };
            self.link = if lasting {
                Link::Refused { retry_at }
            } else {
                Link::BackingOff { retry_at }
            };
            let rule = if code == ResultCode::InvalidState {
                "DES-MSG-CONN-4"
            } else {
                "DES-MSG-CONN-3"
            };
            self.events.push_back(GatewayEvent::ConnectRefused {
                code,
                reason: outcome.reason.clone(),
                lasting,
                rule,
                retry_at,
            });
            return;
        }
        // DES-MSG-CONN-2: 0 means the default.
        let monitor_interval_sec = match cr.monitor_interval_sec {
            0 => DEFAULT_MONITOR_INTERVAL_SEC,
            n => n,
        };
        let ack_timeout_sec = match cr.ack_timeout_sec {
            0 => DEFAULT_ACK_TIMEOUT_SEC,
            n => n,
        };
        self.link = Link::Up {
            version: cr.version,
            monitor_interval_sec,
            ack_timeout_sec,
            since: now,
        };
        self.events.push_back(GatewayEvent::Connected {
            version: cr.version,
        });
        let through = cr.acked_through.min(self.last_seq());
        if let Some(r) = SeqRange::new(1, through) {
            self.mark_acked(r);
        }
        // The first status right after the OK result, then every interval (DES-MSG-MON-2),
        // then the anomalies queued while offline (DES-MSG-CONN-3, DES-MSG-AN-2).
        self.send_status(now);
        self.next_monitor_at = Some(now + secs(i64::from(monitor_interval_sec)));
        self.flush_anomaly_queue(now);
        self.next_send_at = self.periodic.running.then_some(now);
    }

    /// `data.ack` (DES-MSG-DATA-2): OK marks the range acknowledged (held records too).
    /// MALFORMED, SECURITY_FAILED, UNKNOWN_DATASET, INVALID_STATE and TOO_LARGE give the message
    /// up (sending the same bytes again cannot help, DES-MSG-DATA-5): its records are held,
    /// sent again only in answer to a resend request. Any other failure (BUSY, INTERNAL, …)
    /// leaves the message in flight, sent again when its timeout fires (DES-MSG-DATA-3).
    fn on_data_ack(&mut self, now: Time, env: &Envelope) {
        let (Body::DataAck(ack), Some(outcome), Some(to)) =
            (&env.body, &env.result, &env.in_reply_to)
        else {
            return;
        };
        let Some(pos) = self.inflight.iter().position(|f| f.id == *to) else {
            let late = self
                .given_up
                .iter()
                .position(|(id, range)| id == to && *range == ack.range);
            match late {
                // A late OK for a given-up message: the platform stored another copy of it
                // (DES-MSG-DATA-2: OK for the exact range of a message this process sent).
                Some(i) if outcome.code == ResultCode::Ok => {
                    self.given_up.remove(i);
                    self.mark_acked(ack.range);
                }
                _ => self.ignored(
                    "DES-ENV-3",
                    format!("data.ack for unknown or settled message {to}"),
                ),
            }
            return;
        };
        if self.inflight[pos].range != ack.range {
            // Treated as MALFORMED; the data stays unacknowledged and is sent again.
            self.anomaly(
                now,
                AnomalyKind::Malformed,
                "DES-MSG-DATA-2",
                format!("data.ack for {to} names another range (MALFORMED)"),
                Some(topic_for(&self.cfg.gateway_id, MessageType::DataAck)),
            );
            return;
        }
        match outcome.code {
            ResultCode::Ok => {
                let f = self.inflight.remove(pos);
                self.mark_acked(f.range);
            }
            code @ (ResultCode::Malformed
            | ResultCode::SecurityFailed
            | ResultCode::UnknownDataset
            | ResultCode::InvalidState
            | ResultCode::TooLarge) => {
                let kind = if code == ResultCode::SecurityFailed {
                    AnomalyKind::Security
                } else {
                    AnomalyKind::Malformed
                };
                let why = format!("answered {}", code.as_str());
                self.give_up(
                    now,
                    pos,
                    kind,
                    &why,
                    Some(topic_for(&self.cfg.gateway_id, MessageType::DataAck)),
                );
            }
            code => {
                // Sent again when the ack timeout fires (DES-MSG-DATA-3).
                self.ignored(
                    "DES-MSG-DATA-2",
                    format!("data {to} answered {}", code.as_str()),
                );
            }
        }
        self.release_resend(now);
    }

    /// Gives up in-flight message `pos` (DES-MSG-DATA-5): out of flight, its unacknowledged
    /// records held (persisted; periodic sending skips them), an anomaly naming `why`.
    fn give_up(
        &mut self,
        now: Time,
        pos: usize,
        kind: AnomalyKind,
        why: &str,
        topic: Option<String>,
    ) {
        let f = self.inflight.remove(pos);
        self.update_range(f.range, |b| !b.acked && !b.held, |b| b.held = true);
        self.given_up.push_back((f.id.clone(), f.range));
        while self.given_up.len() > GIVEN_UP_KEPT {
            self.given_up.pop_front();
        }
        let topic = topic.unwrap_or_else(|| topic_for(&self.cfg.gateway_id, MessageType::Data));
        self.anomaly(
            now,
            kind,
            RULE_GIVE_UP,
            format!(
                "data {} ({} {}..={}) given up: {why}; its records are held until a resend request",
                f.id, f.dataset, f.range.first, f.range.last
            ),
            Some(topic),
        );
    }

    /// Marks every stored record of `range` acknowledged (no longer held), splitting batches
    /// at its edges.
    fn mark_acked(&mut self, range: SeqRange) {
        let changed = self.update_range(
            range,
            |b| !b.acked,
            |b| {
                b.acked = true;
                b.held = false;
            },
        );
        for (dataset, range) in changed {
            self.events
                .push_back(GatewayEvent::RecordsAcked { dataset, range });
        }
        self.drop_settled_periodic();
    }

    /// Drops periodic in-flight messages whose records are all acknowledged by now (through
    /// another message or `ackedThrough`). Resend messages stay until their own ack or give-up:
    /// the platform asked for those records, acknowledged or not (DES-MSG-RS-3).
    fn drop_settled_periodic(&mut self) {
        let acked = self.acked_set();
        self.inflight
            .retain(|f| f.kind == DataKind::Resend || !acked.contains_range(f.range));
    }

    /// Applies `change` to the records of `range` in every batch for which `applies` holds,
    /// cutting batches at the range's edges (each piece keeps its batch's `bytes`, an upper
    /// bound), then merges neighbours. Returns the changed pieces.
    fn update_range(
        &mut self,
        range: SeqRange,
        applies: impl Fn(&Batch) -> bool,
        change: impl Fn(&mut Batch),
    ) -> Vec<(Dataset, SeqRange)> {
        let mut changed = Vec::new();
        let mut out = Vec::with_capacity(self.batches.len() + 2);
        for b in std::mem::take(&mut self.batches) {
            let Some(mid) = intersect(b.range, range).filter(|_| applies(&b)) else {
                out.push(b);
                continue;
            };
            if let Some(left) = SeqRange::new(b.range.first, mid.first - 1) {
                out.push(Batch {
                    range: left,
                    ..b.clone()
                });
            }
            changed.push((b.dataset.clone(), mid));
            let mut m = Batch {
                range: mid,
                ..b.clone()
            };
            change(&mut m);
            out.push(m);
            if let Some(right) = SeqRange::new(mid.last + 1, b.range.last) {
                out.push(Batch { range: right, ..b });
            }
        }
        self.batches = out;
        self.merge_batches();
        changed
    }

    /// Merges neighbouring batches with equal dataset, ingest time and flags while the result
    /// stays a message unit (count cap, [`MAX_MESSAGE_RECORD_BYTES`]).
    fn merge_batches(&mut self) {
        let mut out: Vec<Batch> = Vec::with_capacity(self.batches.len());
        for b in std::mem::take(&mut self.batches) {
            if let Some(p) = out.last_mut()
                && p.dataset == b.dataset
                && p.ingested_at == b.ingested_at
                && (p.acked, p.held, p.archived) == (b.acked, b.held, b.archived)
                && p.range.last + 1 == b.range.first
                && b.range.last - p.range.first < self.cfg.max_records_per_message
                && p.bytes + b.bytes <= MAX_MESSAGE_RECORD_BYTES
            {
                p.range.last = b.range.last;
                p.bytes += b.bytes;
                continue;
            }
            out.push(b);
        }
        self.batches = out;
    }

    fn acked_set(&self) -> RangeSet {
        let mut s = RangeSet::new();
        for b in self.batches.iter().filter(|b| b.acked) {
            s.insert(b.range);
        }
        s
    }

    /// Steps 11–14 of DES-MSG-3 for a down command (gateway ID already checked).
    fn on_command(&mut self, now: Time, env: Envelope) {
        let ty = env.message_type();
        // Step 11a: not in session — logged, not answered (DES-MSG-CONN-3).
        if !self.in_session() {
            self.ignored(
                "DES-MSG-CONN-3",
                format!(
                    "{} {} before the session is open",
                    ty.as_str(),
                    env.message_id
                ),
            );
            return;
        }
        // Step 11b: after `disconnect`: answered, never acted on (DES-MSG-DISC-1).
        if matches!(self.link, Link::Closing { .. }) {
            if let Some(body) = self.neutral_reply_body(ty) {
                let o = Outcome::new(
                    ResultCode::InvalidState,
                    "DES-MSG-DISC-1: the gateway is disconnecting",
                );
                let r = self.reply(now, &env, o, body);
                self.push(r);
            }
            return;
        }
        // Step 12: a duplicate gets the stored replies, unchanged (DES-ENV-8); before the
        // freshness check, so an applied command retransmitted late gets its OK again.
        self.expire_replies(now);
        let request = RequestKey {
            id: env.message_id.clone(),
            ty,
            timestamp: Some(env.timestamp),
        };
        if let Some(pos) = self.replies.iter().position(|c| c.request == request.id)
            && !request.same_request(&self.replies[pos])
        {
            // Same ID, another type or timestamp: a reused ID, not a retransmission
            // (DES-ENV-8 MAY): processed as new, its reply replaces the remembered one.
            self.replies.remove(pos);
            self.ignored(
                "DES-ENV-8",
                format!(
                    "message ID {} reused by another {} message: processed as new",
                    env.message_id,
                    ty.as_str()
                ),
            );
        }
        if let Some(c) = self.replies.iter().find(|c| c.request == env.message_id) {
            let again: Vec<Envelope> = c
                .replies
                .iter()
                .filter_map(|r| Envelope::decode(r.as_bytes()).ok())
                .collect();
            self.ignored(
                "DES-ENV-8",
                format!(
                    "duplicate {} {}: earlier reply sent again",
                    ty.as_str(),
                    env.message_id
                ),
            );
            for e in again {
                self.push(e);
            }
            return;
        }
        // Step 13: freshness (DES-ENV-7); step 14: the type's rules.
        let skew = (now - env.timestamp).num_seconds().abs();
        let (replies, data) = if skew > STALE_WINDOW_SEC {
            self.anomaly(
                now,
                AnomalyKind::Stale,
                "DES-ENV-7",
                format!("{} {} is {skew} s off", ty.as_str(), env.message_id),
                Some(topic_for(&self.cfg.gateway_id, ty)),
            );
            let o = Outcome::new(
                ResultCode::Stale,
                format!("DES-ENV-7: timestamp outside ±{STALE_WINDOW_SEC} s"),
            );
            let replies = match self.neutral_reply_body(ty) {
                Some(b) => vec![self.reply(now, &env, o, b)],
                None => Vec::new(),
            };
            (replies, Vec::new())
        } else {
            match &env.body {
                Body::PeriodicStart(s) => (vec![self.on_start(now, &env, s)], Vec::new()),
                Body::PeriodicStop(s) => (vec![self.on_stop(now, &env, s)], Vec::new()),
                Body::ResendRequest(r) => {
                    let (reply, data) = self.on_resend(now, &env, r);
                    (vec![reply], data)
                }
                _ => (Vec::new(), Vec::new()),
            }
        };
        self.send_command_replies(now, request, replies, data);
    }

    /// Sends the replies to command `request` (start/stop results then wait for `ack`,
    /// DES-MSG-PS-5), then `data`, and remembers the replies for duplicates (DES-ENV-8).
    fn send_command_replies(
        &mut self,
        now: Time,
        request: RequestKey,
        replies: Vec<Envelope>,
        data: Vec<Transmit>,
    ) {
        let ack_timeout = self.ack_timeout();
        let connected = self.is_connected();
        for e in &replies {
            self.push(e.clone());
            if connected
                && matches!(
                    e.body,
                    Body::PeriodicStartResult(_) | Body::PeriodicStopResult(_)
                )
            {
                self.results.push(UnackedResult {
                    envelope: e.clone(),
                    resent: 0,
                    deadline: now + secs(i64::from(ack_timeout)),
                });
            }
        }
        self.out.extend(data);
        self.replies.push(RememberedReply {
            request: request.id,
            request_type: request.ty.as_str().to_owned(),
            request_timestamp: request.timestamp,
            answered_at: now,
            replies: replies
                .iter()
                .map(|e| String::from_utf8(e.encode()).unwrap_or_default())
                .collect(),
        });
    }

    /// Forgets replies older than [`REPLY_MEMORY_SEC`] (DES-ENV-8): a duplicate that old is
    /// refused STALE instead (never applied twice). Exact: nothing younger is evicted.
    fn expire_replies(&mut self, now: Time) {
        let horizon = secs(REPLY_MEMORY_SEC);
        self.replies.retain(|c| now - c.answered_at <= horizon);
    }

    fn result_msg(&mut self, now: Time, to: &Envelope, outcome: Outcome, body: Body) -> Envelope {
        self.reply(now, to, outcome, body)
    }

    fn on_start(&mut self, now: Time, env: &Envelope, s: &PeriodicStart) -> Envelope {
        let state = |c: &Self| Body::PeriodicStartResult(c.periodic.to_state());
        if s.command_seq <= self.periodic.command_seq {
            let o = Outcome::new(
                ResultCode::Superseded,
                format!(
                    "DES-MSG-PS-4: commandSeq {} <= applied {}",
                    s.command_seq, self.periodic.command_seq
                ),
            );
            let b = state(self);
            return self.result_msg(now, env, o, b);
        }
        if let Some(d) = s.datasets.iter().find(|d| !self.cfg.datasets.contains(d)) {
            let o = Outcome::new(
                ResultCode::UnknownDataset,
                format!("DES-ID-3: dataset {d} is not provisioned"),
            );
            let b = state(self);
            return self.result_msg(now, env, o, b);
        }
        if !self.cfg.formats.contains(&s.format) {
            let o = Outcome::new(
                ResultCode::Malformed,
                "DES-MSG-PS-1: profile format not among this gateway's connect.formats",
            );
            let b = state(self);
            return self.result_msg(now, env, o, b);
        }
        self.periodic = PeriodicSetting {
            running: true,
            datasets: s.datasets.clone(),
            interval_sec: s.interval_sec,
            format: s.format,
            command_seq: s.command_seq,
        };
        self.events.push_back(GatewayEvent::StartStoring {
            datasets: s.datasets.clone(),
            interval_sec: s.interval_sec,
            format: s.format,
            command_seq: s.command_seq,
        });
        self.next_send_at = Some(now + secs(i64::from(s.interval_sec.max(1))));
        let b = state(self);
        self.result_msg(now, env, Outcome::ok(), b)
    }

    fn on_stop(&mut self, now: Time, env: &Envelope, s: &PeriodicStop) -> Envelope {
        let state = |c: &Self| Body::PeriodicStopResult(c.periodic.to_state());
        if s.command_seq <= self.periodic.command_seq {
            let o = Outcome::new(
                ResultCode::Superseded,
                format!(
                    "DES-MSG-PS-4: commandSeq {} <= applied {}",
                    s.command_seq, self.periodic.command_seq
                ),
            );
            let b = state(self);
            return self.result_msg(now, env, o, b);
        }
        self.periodic = PeriodicSetting {
            running: false,
            datasets: Vec::new(),
            interval_sec: 0,
            format: self.periodic.format,
            command_seq: s.command_seq,
        };
        self.events.push_back(GatewayEvent::StopStoring {
            command_seq: s.command_seq,
        });
        self.next_send_at = None;
        let b = state(self);
        self.result_msg(now, env, Outcome::ok(), b)
    }

    /// The stored records a resend request selects (ST-PROVIDE-1), held and archived ones
    /// included, planned into data messages (DES-MSG-DATA-6), ascending.
    fn select(&self, r: &ResendRequest) -> Vec<Piece> {
        let cap = self.cfg.max_records_per_message;
        let mut pieces = Vec::new();
        for b in &self.batches {
            if r.dataset.as_ref().is_some_and(|d| *d != b.dataset) {
                continue;
            }
            let piece = match (&r.seq, &r.time) {
                (Some(s), _) => intersect(b.range, *s),
                (None, Some(t)) => {
                    (t.from <= b.ingested_at && b.ingested_at <= t.to).then_some(b.range)
                }
                (None, None) => None,
            };
            if let Some(piece) = piece {
                pieces.extend(pieces_of(&b.dataset, piece, b.bytes, b.archived, cap));
            }
        }
        plan_messages(pieces, cap)
    }

    /// The result code of a resend by seq range that selected `records` (DES-MSG-RS-2): OK
    /// when every seq of the range clipped to `1..=lastSeq` that belongs to the selected
    /// dataset(s) is provided; seqs of other datasets never count as missing; PARTIAL when
    /// part of the range is beyond lastSeq or a seq of it is in no batch of the index (its
    /// record is gone, and with it the knowledge of its dataset); NOT_FOUND when none.
    fn seq_resend_code(&self, s: SeqRange, records: u64) -> ResultCode {
        let last = self.last_seq();
        let Some(clipped) = SeqRange::new(s.first, s.last.min(last)).filter(|_| records > 0) else {
            return ResultCode::NotFound;
        };
        let indexed: u64 = self
            .batches
            .iter()
            .filter_map(|b| intersect(b.range, clipped))
            .map(|x| x.len())
            .sum();
        if s.last > last || indexed < clipped.len() {
            ResultCode::Partial
        } else {
            ResultCode::Ok
        }
    }

    fn on_resend(
        &mut self,
        now: Time,
        env: &Envelope,
        r: &ResendRequest,
    ) -> (Envelope, Vec<Transmit>) {
        if let Some(d) = r
            .dataset
            .as_ref()
            .filter(|d| !self.cfg.datasets.contains(d))
        {
            let o = Outcome::new(
                ResultCode::UnknownDataset,
                format!("DES-ID-3: dataset {d} is not provisioned"),
            );
            let b = Body::ResendResult(ResendResult {
                records: 0,
                messages: 0,
                archived: 0,
            });
            return (self.result_msg(now, env, o, b), Vec::new());
        }
        if self.resend_running() {
            // One resend at a time: the previous one's data is queued or not all acknowledged.
            let o = Outcome::new(
                ResultCode::Busy,
                "DES-MSG-RS-2: another resend is still running",
            );
            let b = Body::ResendResult(ResendResult {
                records: 0,
                messages: 0,
                archived: 0,
            });
            let reply = self.result_msg(now, env, o, b);
            if self.defect == Defect::BusyResendServed {
                let parts = self.select(r);
                self.queue_resend(&env.message_id, parts);
            }
            return (reply, Vec::new());
        }
        let parts = self.select(r);
        let records: u64 = parts.iter().map(|p| p.range.len()).sum();
        let archived: u64 = parts
            .iter()
            .filter(|p| p.archived)
            .map(|p| p.range.len())
            .sum();
        let code = match r.seq {
            Some(s) => self.seq_resend_code(s, records),
            // Time ranges: OK if any record, else NOT_FOUND.
            None if records == 0 => ResultCode::NotFound,
            None => ResultCode::Ok,
        };
        let outcome = match code {
            ResultCode::Ok => Outcome::ok(),
            c => Outcome::new(
                c,
                format!(
                    "DES-MSG-RS-2: {records} of the requested records are stored ({archived} archived)"
                ),
            ),
        };
        let messages = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        let body = Body::ResendResult(ResendResult {
            records,
            messages,
            archived,
        });
        let reply = self.result_msg(now, env, outcome, body);
        self.queue_resend(&env.message_id, parts);
        // What fits the window goes out right after the result; the rest as acks free it.
        let data = self.take_released(now);
        (reply, data)
    }

    /// Queues the announced resend messages of `request` (DES-MSG-RS-3).
    fn queue_resend(&mut self, request: &MessageId, parts: Vec<Piece>) {
        for p in parts {
            self.resend_queue.push_back(QueuedResend {
                request: request.clone(),
                dataset: p.dataset,
                range: p.range,
                archived: p.archived,
            });
        }
    }

    /// Registers queued resend messages as in flight while the window has room
    /// (DES-MSG-RS-3, [`MAX_DATA_IN_FLIGHT`]) and returns them.
    fn take_released(&mut self, now: Time) -> Vec<Transmit> {
        let mut out = Vec::new();
        if !self.is_connected() {
            return out;
        }
        let ack_timeout = self.ack_timeout();
        while self.inflight.len() < MAX_DATA_IN_FLIGHT || self.defect == Defect::ResendIgnoresWindow
        {
            let Some(q) = self.resend_queue.pop_front() else {
                break;
            };
            out.push(self.data(
                now,
                q.dataset,
                q.range,
                DataKind::Resend,
                Some(q.request),
                ack_timeout,
                q.archived,
            ));
        }
        out
    }

    /// Sends queued resend messages the window has room for.
    fn release_resend(&mut self, now: Time) {
        let data = self.take_released(now);
        self.out.extend(data);
    }

    fn ack_timeout(&self) -> u32 {
        match self.link {
            Link::Up {
                ack_timeout_sec, ..
            } => ack_timeout_sec,
            _ => DEFAULT_ACK_TIMEOUT_SEC,
        }
    }

    /// A data request, registered as in flight.
    #[allow(clippy::too_many_arguments)]
    fn data(
        &mut self,
        now: Time,
        dataset: Dataset,
        range: SeqRange,
        kind: DataKind,
        request: Option<MessageId>,
        ack_timeout_sec: u32,
        archived: bool,
    ) -> Transmit {
        let id = self.next_id();
        let format = self.periodic.format;
        self.inflight.push(InFlight {
            id: id.clone(),
            sent_at: now,
            dataset: dataset.clone(),
            range,
            kind,
            request: request.clone(),
            format,
            archived,
            sent_again: 0,
            deadline: Some(now + backoff(ack_timeout_sec, 0)),
        });
        Transmit::Data(DataRequest {
            topic: topic_for(&self.cfg.gateway_id, MessageType::Data),
            message_id: id,
            gateway_id: self.cfg.gateway_id.clone(),
            timestamp: now,
            retransmission: false,
            dataset,
            epoch: self.epoch.clone(),
            range,
            kind,
            request,
            format,
            archived,
        })
    }

    /// Periodic send (IF-PSEND-1..3): every unacked, not held record of a covered dataset that
    /// is not in flight, planned into messages of one dataset's contiguous range within the
    /// count cap and the byte budget (DES-MSG-DATA-6), while fewer than [`MAX_DATA_IN_FLIGHT`]
    /// messages are unacknowledged (the rest waits for the next send).
    fn send_pending(&mut self, now: Time, ack_timeout_sec: u32) {
        let cap = self.cfg.max_records_per_message;
        let mut busy = RangeSet::new();
        for f in self.inflight.iter().filter(|f| f.deadline.is_some()) {
            busy.insert(f.range);
        }
        let mut pieces = Vec::new();
        for b in self
            .batches
            .iter()
            .filter(|b| !b.acked && !b.held && self.periodic.covers(&b.dataset))
        {
            for free in busy.missing_in(b.range) {
                pieces.extend(pieces_of(&b.dataset, free, b.bytes, false, cap));
            }
        }
        for p in plan_messages(pieces, cap) {
            if self.inflight.len() >= MAX_DATA_IN_FLIGHT {
                return;
            }
            let t = self.data(
                now,
                p.dataset,
                p.range,
                DataKind::Periodic,
                None,
                ack_timeout_sec,
                false,
            );
            self.out.push_back(t);
        }
    }

    /// Sends again what was not acknowledged in time (IF-PSEND-3): the same message (ID,
    /// timestamp, range, format), the timeout doubling up to 8× (DES-MSG-DATA-3). Also while
    /// stopped: a stop ends new periodic messages, not the delivery of those already sent
    /// (§6.5). A message sent [`MAX_DATA_TRANSMISSIONS`] times is given up instead when its
    /// last timeout fires (DES-MSG-DATA-5), which frees its window slot for queued resend data.
    fn retransmit_due(&mut self, now: Time, ack_timeout_sec: u32) {
        self.drop_settled_periodic();
        let mut again = Vec::new();
        let mut exhausted = Vec::new();
        let capped = self.defect != Defect::NoTransmissionCap;
        for f in &mut self.inflight {
            if f.deadline.is_none_or(|d| d > now) {
                continue;
            }
            if capped && f.sent_again.saturating_add(1) >= MAX_DATA_TRANSMISSIONS {
                exhausted.push(f.id.clone());
                continue;
            }
            f.sent_again = f.sent_again.saturating_add(1);
            f.deadline = Some(now + backoff(ack_timeout_sec, f.sent_again));
            again.push(Transmit::Data(DataRequest {
                topic: topic_for(&self.cfg.gateway_id, MessageType::Data),
                message_id: f.id.clone(),
                gateway_id: self.cfg.gateway_id.clone(),
                timestamp: f.sent_at,
                retransmission: true,
                dataset: f.dataset.clone(),
                epoch: self.epoch.clone(),
                range: f.range,
                kind: f.kind,
                request: f.request.clone(),
                format: f.format,
                archived: f.archived,
            }));
        }
        self.out.extend(again);
        for id in exhausted {
            if let Some(pos) = self.inflight.iter().position(|f| f.id == id) {
                let why = format!("no data.ack after {MAX_DATA_TRANSMISSIONS} transmissions");
                self.give_up(now, pos, AnomalyKind::Malformed, &why, None);
            }
        }
        self.release_resend(now);
    }

    /// Sends a periodic result again (same message) when its `ack` is overdue, up to
    /// [`MAX_RESULT_RESENDS`] times, then reports an anomaly and keeps the state (DES-MSG-PS-5).
    fn resend_results_due(&mut self, now: Time, ack_timeout_sec: u32) {
        let mut given_up = Vec::new();
        let mut again = Vec::new();
        self.results.retain_mut(|r| {
            if r.deadline > now {
                return true;
            }
            if r.resent >= MAX_RESULT_RESENDS {
                given_up.push(r.envelope.message_id.clone());
                return false;
            }
            r.resent += 1;
            r.deadline = now + secs(i64::from(ack_timeout_sec));
            again.push(r.envelope.clone());
            true
        });
        for e in again {
            self.push(e);
        }
        for id in given_up {
            self.anomaly(
                now,
                AnomalyKind::Malformed,
                "DES-MSG-PS-5",
                format!("no ack for result {id}"),
                None,
            );
        }
    }

    fn send_status(&mut self, now: Time) {
        let body = Body::MonitorStatus(self.monitor_status(now));
        let id = self.next_id();
        let env = self.envelope(now, id, body);
        self.push(env);
    }

    /// The `monitor.status` body as of `now` (DES-MSG-MON-1): what the next status message
    /// carries, also shown locally (`/status`, `sgw status`).
    pub fn monitor_status(&self, now: Time) -> MonitorStatus {
        let records = self.stored_records();
        let mut ext = self.external.clone();
        // The wire allows at most MAX_CERTIFICATES entries (DES-MSG-MON-1).
        ext.certificates.truncate(super::message::MAX_CERTIFICATES);
        MonitorStatus {
            health: ext.health,
            uptime_sec: u64::try_from((now - self.started_at).num_seconds()).unwrap_or(0),
            periodic: self.periodic.to_state(),
            last_seq: self.last_seq(),
            storage: StorageStatus {
                records,
                unacked: self.unacked_records(),
                bytes: ext.storage_bytes,
                evacuated: ext.evacuated,
                held: self.held_records(),
                oldest_unacked_sec: self.oldest_unacked_sec(now),
                free_bytes: ext.free_bytes,
            },
            files_accepted: ext.files_accepted,
            files_rejected: ext.files_rejected,
            messages_sent: ext.messages_sent,
            messages_retransmitted: ext.messages_retransmitted,
            records_acked: ext.records_acked,
            anomalies: self.anomalies,
            anomalies_dropped: self.anomalies_dropped,
            certificates: ext.certificates,
            last_error: ext.last_error,
        }
    }
}

/// Cuts free text to the protocol's limit at a character boundary (DES-ENV-6).
fn truncate_text(s: &mut String) {
    let max = super::message::MAX_TEXT_BYTES;
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}
