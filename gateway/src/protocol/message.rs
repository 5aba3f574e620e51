//! Typed protocol messages and their strict codec (DES-ENV-*, DES-MSG-*, DES-RC-*).
//!
//! Every MQTT payload, once opened by data security (see `docs/protocol.md` DES-SEAL-1), is
//! one JSON [`Envelope`]. Decoding is strict: unknown fields, unknown types, unsupported
//! versions, missing or misplaced correlation and oversize input each fail with their own
//! [`DecodeError`], and every error maps to the [`ResultCode`] a peer answers with.
//!
//! Realises the message side of IF-CONN-1, IF-DISC-1, IF-PSTART-1..4, IF-PSEND-1..3,
//! IF-PSTOP-1, IF-RESEND-1, ST-PROVIDE-1 and MON-1.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{Dataset, GatewayId, MessageId, Seq, SeqRange, StoreEpoch};

/// The protocol version this implementation speaks (DES-VER-1).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest envelope, in bytes of JSON, a v1 peer accepts (DES-ENV-5).
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;

/// Largest MQTT payload (the sealed envelope) a v1 peer accepts (DES-MQTT-7).
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Largest `reason`, `detail` or other free-text field, in bytes (DES-ENV-6).
pub const MAX_TEXT_BYTES: usize = 1024;

/// Most entries of `monitor.status` `certificates` (DES-MSG-MON-1); more is MALFORMED.
pub const MAX_CERTIFICATES: usize = 16;

/// Deserializes a present optional field: `null` is refused, absence (via `#[serde(default)]`)
/// is the only way to leave an optional field out (DES-ENV-1).
fn non_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Whether `s` has the one timestamp shape of DES-ENV-2:
/// `YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|±hh:mm)` (upper-case `T` and `Z`, no spaces).
/// Calendar validity is left to chrono.
pub fn is_timestamp_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        let n = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        i += 1 + n;
    }
    match b.get(i) {
        Some(b'Z') => b.len() == i + 1,
        Some(b'+' | b'-') => {
            b.len() == i + 6 && digits(i + 1..i + 3) && at(i + 3, b':') && digits(i + 4..i + 6)
        }
        _ => false,
    }
}

/// Parses a DES-ENV-2 timestamp.
fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    if is_timestamp_shape(s) {
        DateTime::parse_from_rfc3339(s).ok()
    } else {
        None
    }
}

/// Writes a timestamp the DES-ENV-2 way: `±hh:mm` offset (`+00:00` for UTC, never `Z`) and 0,
/// 3, 6 or 9 fraction digits. chrono's own serde impl writes `Z` for a zero offset.
pub(crate) fn write_time<S: serde::Serializer>(
    t: &DateTime<FixedOffset>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false))
}

/// Deserializes a body timestamp with the DES-ENV-2 shape.
fn strict_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<FixedOffset>, D::Error> {
    let s = String::deserialize(d)?;
    parse_timestamp(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "DES-ENV-2: {s:?} is not an ISO 8601 timestamp with offset"
        ))
    })
}

/// Refuses JSON whose objects repeat a member name (DES-ENV-1): parsers disagree on which
/// duplicate wins, so a signed envelope must not contain any.
struct NoDuplicateMembers;

impl<'de> Deserialize<'de> for NoDuplicateMembers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateMembers)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateMembers {
    type Value = NoDuplicateMembers;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON without duplicate member names")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateMembers>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate member name {key:?}"
                )));
            }
            map.next_value::<NoDuplicateMembers>()?;
        }
        Ok(self)
    }
}

/// Which way a message travels (DES-MQTT-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Gateway to platform, published under `/tenants/{gw}/sgw/v1/up/{type}`.
    Up,
    /// Platform to gateway, published under `/tenants/{gw}/sgw/v1/down/{type}`.
    Down,
}

macro_rules! message_types {
    ($( $(#[$doc:meta])* $var:ident = $wire:literal, $dir:ident, $kind:ident; )*) => {
        /// The type of a message, as written in the envelope's `type` and the topic's last level
        /// (DES-MSG-1).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum MessageType { $( $(#[$doc])* $var, )* }

        impl MessageType {
            /// Every message type of protocol v1.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$var,)*];
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $(MessageType::$var => $wire,)* }
            }
            /// Parses a wire name.
            pub fn from_wire(s: &str) -> Option<Self> {
                match s { $($wire => Some(MessageType::$var),)* _ => None }
            }
            /// Which way it travels.
            pub fn direction(self) -> Direction {
                match self { $(MessageType::$var => Direction::$dir,)* }
            }
            /// Whether it answers another message (then `inReplyTo` and `result` are required,
            /// otherwise forbidden) (DES-ENV-3).
            pub fn is_reply(self) -> bool {
                match self { $(MessageType::$var => message_types!(@reply $kind),)* }
            }
        }
    };
    (@reply reply) => { true };
    (@reply request) => { false };
}

message_types! {
    /// Gateway asks to open a session (IF-CONN-1).
    Connect = "connect", Up, request;
    /// Platform answers a connect (IF-CONN-1).
    ConnectResult = "connect.result", Down, reply;
    /// Gateway closes its session (IF-DISC-1).
    Disconnect = "disconnect", Up, request;
    /// Platform answers a disconnect (IF-DISC-1).
    DisconnectResult = "disconnect.result", Down, reply;
    /// Platform asks the gateway to start periodic storing and sending (IF-PSTART-1).
    PeriodicStart = "periodic.start", Down, request;
    /// Gateway's start result (IF-PSTART-4).
    PeriodicStartResult = "periodic.start.result", Up, reply;
    /// Platform asks the gateway to stop periodic storing and sending (IF-PSTOP-1).
    PeriodicStop = "periodic.stop", Down, request;
    /// Gateway's stop result (IF-PSTOP-1 ③).
    PeriodicStopResult = "periodic.stop.result", Up, reply;
    /// Records, periodic or resent (IF-PSEND-3, ST-PROVIDE-1).
    Data = "data", Up, request;
    /// Platform's acknowledgement of a data message (IF-PSEND-3).
    DataAck = "data.ack", Down, reply;
    /// Platform asks for records again, by sequence or time range (IF-RESEND-1).
    ResendRequest = "resend.request", Down, request;
    /// Gateway's answer to a resend request, before the data messages (ST-PROVIDE-1).
    ResendResult = "resend.result", Up, reply;
    /// Gateway's monitoring status (MON-1).
    MonitorStatus = "monitor.status", Up, request;
    /// Gateway reports an anomaly, e.g. a command that failed verification (IF-PSTART-2).
    Anomaly = "anomaly", Up, request;
    /// Platform's communication result for a gateway result (IF-PSTART-4, IF-PSTOP-1).
    Ack = "ack", Down, reply;
}

/// Result codes (DES-RC-1). The table with the meaning of each is in `docs/protocol.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ResultCode {
    /// Done as asked.
    Ok,
    /// Done in part (a resend whose range is partly evacuated or not yet assigned).
    Partial,
    /// The message could not be decoded or broke a field rule.
    Malformed,
    /// The envelope's `version` is not one this peer speaks.
    UnsupportedVersion,
    /// The envelope's `type` is not known to this peer, or travels the wrong way.
    UnknownType,
    /// The message is larger than allowed.
    TooLarge,
    /// Opening the sealed message failed (decryption or signature; deliberately one code).
    SecurityFailed,
    /// The sender is not allowed to send this message (wrong gateway ID, revoked, not
    /// connected).
    Unauthorized,
    /// The message's timestamp is outside the acceptance window.
    Stale,
    /// A command with a lower or equal `commandSeq` than one already applied.
    Superseded,
    /// The command is not valid in the current state.
    InvalidState,
    /// The dataset is not provisioned on this gateway.
    UnknownDataset,
    /// Nothing of the requested range is available.
    NotFound,
    /// Temporarily unable; retry later.
    Busy,
    /// An internal failure of the answering peer.
    Internal,
}

impl ResultCode {
    /// The wire name, e.g. `SECURITY_FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultCode::Ok => "OK",
            ResultCode::Partial => "PARTIAL",
            ResultCode::Malformed => "MALFORMED",
            ResultCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ResultCode::UnknownType => "UNKNOWN_TYPE",
            ResultCode::TooLarge => "TOO_LARGE",
            ResultCode::SecurityFailed => "SECURITY_FAILED",
            ResultCode::Unauthorized => "UNAUTHORIZED",
            ResultCode::Stale => "STALE",
            ResultCode::Superseded => "SUPERSEDED",
            ResultCode::InvalidState => "INVALID_STATE",
            ResultCode::UnknownDataset => "UNKNOWN_DATASET",
            ResultCode::NotFound => "NOT_FOUND",
            ResultCode::Busy => "BUSY",
            ResultCode::Internal => "INTERNAL",
        }
    }
}

/// The outcome carried by every reply (DES-ENV-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The result code.
    pub code: ResultCode,
    /// A human-readable reason, at most [`MAX_TEXT_BYTES`]; should name the rule ID on failure.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    pub reason: Option<String>,
}

impl Outcome {
    /// `OK` without a reason.
    pub fn ok() -> Self {
        Self {
            code: ResultCode::Ok,
            reason: None,
        }
    }
    /// A code with a reason.
    pub fn new(code: ResultCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: Some(reason.into()),
        }
    }
}

/// The format of a data profile (DES-PROF-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileFormat {
    /// JSON data profile, protected with JWS + JWE (SEC-JSON-*).
    Json,
    /// XML data profile, protected with XML Encryption + XML Signature (SEC-XML-*).
    Xml,
}

/// The gateway software, for the platform's records (DES-MSG-CONN-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Software {
    /// Vendor name.
    pub vendor: String,
    /// Product name.
    pub product: String,
    /// Product version.
    pub version: String,
}

/// The periodic-sending state of a gateway (DES-MSG-PS-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeriodicState {
    /// Whether periodic storing and sending is running.
    pub running: bool,
    /// The datasets it covers (empty: every provisioned dataset).
    pub datasets: Vec<Dataset>,
    /// Send interval in seconds (0 while stopped).
    pub interval_sec: u32,
    /// Profile format used for data messages.
    pub format: ProfileFormat,
    /// The `commandSeq` of the last start or stop applied (0: none yet).
    pub command_seq: u64,
}

impl Default for PeriodicState {
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

/// `connect` body (IF-CONN-1, DES-MSG-CONN-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Connect {
    /// Protocol versions the gateway speaks, highest first.
    pub versions: Vec<u32>,
    /// The gateway software.
    pub software: Software,
    /// Profile formats the gateway can produce.
    pub formats: Vec<ProfileFormat>,
    /// The gateway's storage epoch (DES-ID-5, DES-MSG-CONN-4): `lastSeq` and `bootCount`
    /// count within it.
    pub epoch: StoreEpoch,
    /// How many times the gateway has started (persisted; increases on every start).
    pub boot_count: u64,
    /// The highest sequence number assigned so far (0: none).
    pub last_seq: Seq,
    /// The periodic state the gateway resumes with.
    pub periodic: PeriodicState,
}

/// `connect.result` body (IF-CONN-1, DES-MSG-CONN-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectResult {
    /// The protocol version chosen for the session.
    pub version: u32,
    /// How often the gateway sends `monitor.status`, in seconds.
    pub monitor_interval_sec: u32,
    /// How long the gateway waits for a `data.ack` before sending again, in seconds.
    pub ack_timeout_sec: u32,
    /// The highest sequence number the platform has received contiguously from 1 (0: none).
    pub acked_through: Seq,
}

/// `disconnect` body (IF-DISC-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Disconnect {
    /// Why the gateway disconnects (e.g. `shutdown`).
    pub reason: String,
}

/// `periodic.start` body (IF-PSTART-1, DES-MSG-PS-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeriodicStart {
    /// Platform-assigned, strictly increasing per gateway across start and stop; orders
    /// commands that the network reordered (DES-MSG-PS-4).
    pub command_seq: u64,
    /// Datasets to store and send (empty: every provisioned dataset).
    pub datasets: Vec<Dataset>,
    /// Send interval in seconds, 1..=86400.
    pub interval_sec: u32,
    /// Profile format for the data messages.
    pub format: ProfileFormat,
}

/// `periodic.stop` body (IF-PSTOP-1, DES-MSG-PS-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeriodicStop {
    /// As in [`PeriodicStart::command_seq`].
    pub command_seq: u64,
}

/// Why records are being sent (DES-MSG-DATA-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// Due for the period (IF-PSEND-1).
    Periodic,
    /// Answering a resend request (ST-PROVIDE-1); `request` names it.
    Resend,
}

/// `data` body (IF-PSEND-3, ST-PROVIDE-1, DES-MSG-DATA-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Data {
    /// Periodic or resend.
    pub kind: DataKind,
    /// For a resend: the resend request's message ID.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    pub request: Option<MessageId>,
    /// The dataset of every record in the message.
    pub dataset: Dataset,
    /// The storage epoch the records of `range` were numbered in (DES-ID-5; the gateway's
    /// current epoch).
    pub epoch: StoreEpoch,
    /// The records' sequence numbers: every number in the range, all of `dataset`.
    pub range: SeqRange,
    /// The profile's format.
    pub format: ProfileFormat,
    /// The protected data profile: a JWE compact serialization (JSON) or an XML document
    /// (XML) (DES-PROF-*).
    pub profile: String,
}

/// `data.ack` body (IF-PSEND-3, DES-MSG-DATA-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataAck {
    /// The acknowledged range (must equal the data message's range).
    pub range: SeqRange,
}

/// A time range, `from <= to`, both inclusive (DES-MSG-RS-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimeRange {
    /// Start (inclusive), ISO 8601 with offset.
    #[serde(deserialize_with = "strict_time", serialize_with = "write_time")]
    pub from: DateTime<FixedOffset>,
    /// End (inclusive), ISO 8601 with offset.
    #[serde(deserialize_with = "strict_time", serialize_with = "write_time")]
    pub to: DateTime<FixedOffset>,
}

/// `resend.request` body (IF-RESEND-1, DES-MSG-RS-1): exactly one of `seq` and `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResendRequest {
    /// Only records of this dataset (absent: every dataset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    pub dataset: Option<Dataset>,
    /// Records whose sequence number is in this range.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    pub seq: Option<SeqRange>,
    /// Records whose ingest time is in this range.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    pub time: Option<TimeRange>,
}

/// `resend.result` body (ST-PROVIDE-1, DES-MSG-RS-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResendResult {
    /// Number of records that will follow in `data` messages of kind `resend`.
    pub records: u64,
    /// Number of `data` messages that will follow.
    pub messages: u32,
    /// How many of `records` are read from evacuation archives (ST-EVAC-1) rather than the
    /// live store; at most `records`.
    pub archived: u64,
}

/// Storage figures in a monitoring status (MON-1, DES-MSG-MON-1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageStatus {
    /// Records held in primary storage.
    pub records: u64,
    /// Of those, not yet acknowledged by the platform.
    pub unacked: u64,
    /// Bytes used by primary storage.
    pub bytes: u64,
    /// Records evacuated to archive files so far (ST-EVAC-1).
    pub evacuated: u64,
    /// Records whose data message was given up (DES-MSG-DATA-5): still stored and
    /// unacknowledged, sent only in answer to a resend request.
    pub held: u64,
    /// Seconds since the oldest unacknowledged record was ingested; 0 when none (MON-1).
    pub oldest_unacked_sec: u64,
    /// Bytes free for the gateway on the file system of primary storage (MON-1).
    pub free_bytes: u64,
}

/// A certificate's expiry in a monitoring status (MON-1, SM-CERTEXP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertExpiry {
    /// Which certificate (`tls-client`, `data-protection`, `platform`, `root`, …).
    pub name: String,
    /// Its notAfter.
    #[serde(deserialize_with = "strict_time", serialize_with = "write_time")]
    pub not_after: DateTime<FixedOffset>,
}

/// Overall gateway state in a monitoring status (DES-MSG-MON-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Everything works.
    Ok,
    /// Working, with a problem that needs attention (e.g. storage nearly full, cert expiring).
    Degraded,
    /// A function has failed.
    Failed,
}

/// `monitor.status` body (MON-1, DES-MSG-MON-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MonitorStatus {
    /// Overall health.
    pub health: HealthState,
    /// Seconds since the gateway process started.
    pub uptime_sec: u64,
    /// Periodic state.
    pub periodic: PeriodicState,
    /// Highest sequence number assigned (0: none).
    pub last_seq: Seq,
    /// Storage figures.
    pub storage: StorageStatus,
    /// CSV files accepted since start.
    pub files_accepted: u64,
    /// CSV files refused since start.
    pub files_rejected: u64,
    /// `data` messages published for the first time since start.
    pub messages_sent: u64,
    /// `data` messages published again since start (DES-MSG-DATA-3).
    pub messages_retransmitted: u64,
    /// Records acknowledged by the platform since start.
    pub records_acked: u64,
    /// Anomalies detected since start (sent or not).
    pub anomalies: u64,
    /// Of those, not sent as `anomaly` messages (rate limit or offline-queue overflow,
    /// DES-MSG-AN-2).
    pub anomalies_dropped: u64,
    /// Certificates and their expiry, at most [`MAX_CERTIFICATES`].
    pub certificates: Vec<CertExpiry>,
    /// Last error, if any, naming its rule ID.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    pub last_error: Option<String>,
}

/// The class of an anomaly report (DES-MSG-AN-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum AnomalyKind {
    /// A message failed decryption or signature verification (IF-PSTART-2, SEC-*-SIG-2).
    Security,
    /// A message could not be decoded.
    Malformed,
    /// A message came from someone not allowed to send it.
    Unauthorized,
    /// A command outside the timestamp window (replay).
    Stale,
    /// A CSV file from a legacy system was refused (SC-FTP-1).
    Ingest,
    /// A certificate is expired, revoked or does not chain (SEC-CERT-2).
    Certificate,
    /// Storage trouble (ST-*).
    Storage,
}

/// `anomaly` body (IF-PSTART-2, DES-MSG-AN-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Anomaly {
    /// The class.
    pub kind: AnomalyKind,
    /// The requirement or DES rule it violated, e.g. `IF-PSTART-2`.
    pub rule: String,
    /// What happened, at most [`MAX_TEXT_BYTES`].
    pub detail: String,
    /// The topic the offending message came on, if any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    pub topic: Option<String>,
}

/// An empty body (`{}`) for messages whose meaning is all in the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A message body, one variant per [`MessageType`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Body {
    Connect(Connect),
    ConnectResult(ConnectResult),
    Disconnect(Disconnect),
    DisconnectResult(Empty),
    PeriodicStart(PeriodicStart),
    PeriodicStartResult(PeriodicState),
    PeriodicStop(PeriodicStop),
    PeriodicStopResult(PeriodicState),
    Data(Data),
    DataAck(DataAck),
    ResendRequest(ResendRequest),
    ResendResult(ResendResult),
    MonitorStatus(MonitorStatus),
    Anomaly(Anomaly),
    Ack(Empty),
}

impl Body {
    /// The message type of this body.
    pub fn message_type(&self) -> MessageType {
        match self {
            Body::Connect(_) => MessageType::Connect,
            Body::ConnectResult(_) => MessageType::ConnectResult,
            Body::Disconnect(_) => MessageType::Disconnect,
            Body::DisconnectResult(_) => MessageType::DisconnectResult,
            Body::PeriodicStart(_) => MessageType::PeriodicStart,
            Body::PeriodicStartResult(_) => MessageType::PeriodicStartResult,
            Body::PeriodicStop(_) => MessageType::PeriodicStop,
            Body::PeriodicStopResult(_) => MessageType::PeriodicStopResult,
            Body::Data(_) => MessageType::Data,
            Body::DataAck(_) => MessageType::DataAck,
            Body::ResendRequest(_) => MessageType::ResendRequest,
            Body::ResendResult(_) => MessageType::ResendResult,
            Body::MonitorStatus(_) => MessageType::MonitorStatus,
            Body::Anomaly(_) => MessageType::Anomaly,
            Body::Ack(_) => MessageType::Ack,
        }
    }

    fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            Body::Connect(b) => serde_json::to_value(b),
            Body::ConnectResult(b) => serde_json::to_value(b),
            Body::Disconnect(b) => serde_json::to_value(b),
            Body::DisconnectResult(b) | Body::Ack(b) => serde_json::to_value(b),
            Body::PeriodicStart(b) => serde_json::to_value(b),
            Body::PeriodicStartResult(b) | Body::PeriodicStopResult(b) => serde_json::to_value(b),
            Body::PeriodicStop(b) => serde_json::to_value(b),
            Body::Data(b) => serde_json::to_value(b),
            Body::DataAck(b) => serde_json::to_value(b),
            Body::ResendRequest(b) => serde_json::to_value(b),
            Body::ResendResult(b) => serde_json::to_value(b),
            Body::MonitorStatus(b) => serde_json::to_value(b),
            Body::Anomaly(b) => serde_json::to_value(b),
        }
    }

    fn from_value(ty: MessageType, v: Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value as f;
        Ok(match ty {
            MessageType::Connect => Body::Connect(f(v)?),
            MessageType::ConnectResult => Body::ConnectResult(f(v)?),
            MessageType::Disconnect => Body::Disconnect(f(v)?),
            MessageType::DisconnectResult => Body::DisconnectResult(f(v)?),
            MessageType::PeriodicStart => Body::PeriodicStart(f(v)?),
            MessageType::PeriodicStartResult => Body::PeriodicStartResult(f(v)?),
            MessageType::PeriodicStop => Body::PeriodicStop(f(v)?),
            MessageType::PeriodicStopResult => Body::PeriodicStopResult(f(v)?),
            MessageType::Data => Body::Data(f(v)?),
            MessageType::DataAck => Body::DataAck(f(v)?),
            MessageType::ResendRequest => Body::ResendRequest(f(v)?),
            MessageType::ResendResult => Body::ResendResult(f(v)?),
            MessageType::MonitorStatus => Body::MonitorStatus(f(v)?),
            MessageType::Anomaly => Body::Anomaly(f(v)?),
            MessageType::Ack => Body::Ack(f(v)?),
        })
    }
}

/// One protocol message (DES-ENV-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Protocol version (DES-VER-1).
    pub version: u32,
    /// Unique per sender (DES-ID-2).
    pub message_id: MessageId,
    /// The gateway the message is from or for; equals the topic's tenant and the certificate
    /// identity (DES-ENV-4).
    pub gateway_id: GatewayId,
    /// When the sender created it, ISO 8601 with offset (DES-ENV-2).
    pub timestamp: DateTime<FixedOffset>,
    /// For replies: the message it answers (DES-ENV-3).
    pub in_reply_to: Option<MessageId>,
    /// For replies: the outcome (DES-ENV-3).
    pub result: Option<Outcome>,
    /// The typed body.
    pub body: Body,
}

/// The envelope as it is on the wire (field names and order of DES-ENV-1).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireEnvelope {
    version: u32,
    message_id: String,
    gateway_id: String,
    #[serde(rename = "type")]
    ty: String,
    timestamp: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    in_reply_to: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    result: Option<Value>,
    body: Value,
    /// Reserved for extensions: ignored by v1 peers (DES-VER-3).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null"
    )]
    ext: Option<Value>,
}

/// Why bytes are not a valid v1 envelope (DES-ENV-*). Each maps to a [`ResultCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// DES-ENV-5: the envelope is larger than [`MAX_ENVELOPE_BYTES`].
    #[error("DES-ENV-5: envelope of {0} bytes exceeds {MAX_ENVELOPE_BYTES}")]
    TooLarge(usize),
    /// DES-MQTT-7: the MQTT payload is larger than [`MAX_PAYLOAD_BYTES`] (dropped unopened).
    #[error("DES-MQTT-7: payload of {0} bytes exceeds {MAX_PAYLOAD_BYTES}")]
    PayloadTooLarge(usize),
    /// DES-ENV-1: not a JSON object with exactly the envelope fields of the right types.
    #[error("DES-ENV-1: not a valid envelope: {0}")]
    Envelope(String),
    /// DES-VER-2: a version this peer does not speak.
    #[error("DES-VER-2: unsupported protocol version {0}")]
    UnsupportedVersion(u32),
    /// DES-MSG-1: a message type this peer does not know.
    #[error("DES-MSG-1: unknown message type {0:?}")]
    UnknownType(String),
    /// DES-ID-*: an identifier field is malformed.
    #[error("{0}")]
    Id(#[from] super::ids::IdError),
    /// DES-ENV-2: the timestamp is not ISO 8601 (RFC 3339 profile) with an offset.
    #[error("DES-ENV-2: timestamp {0:?} is not ISO 8601 with an offset")]
    Timestamp(String),
    /// DES-ENV-3: a reply without `inReplyTo`/`result`, or a request with them.
    #[error("DES-ENV-3: {0}")]
    Correlation(&'static str),
    /// DES-MSG-*: the body does not match its type's schema.
    #[error("DES-MSG-1: body of {ty} is invalid: {reason}")]
    Body {
        /// The message type.
        ty: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// DES-MSG-*: the body decoded but breaks a rule no schema states (e.g. both resend
    /// selectors).
    #[error("{0}")]
    Rule(String),
}

impl DecodeError {
    /// The result code a peer answers with.
    pub fn result_code(&self) -> ResultCode {
        match self {
            DecodeError::TooLarge(_) | DecodeError::PayloadTooLarge(_) => ResultCode::TooLarge,
            DecodeError::UnsupportedVersion(_) => ResultCode::UnsupportedVersion,
            DecodeError::UnknownType(_) => ResultCode::UnknownType,
            _ => ResultCode::Malformed,
        }
    }
}

fn text_ok(s: &str) -> bool {
    s.len() <= MAX_TEXT_BYTES
}

impl Envelope {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        self.body.message_type()
    }

    /// Encodes to JSON bytes (DES-ENV-1). Never fails for a value built from these types.
    pub fn encode(&self) -> Vec<u8> {
        let wire = WireEnvelope {
            version: self.version,
            message_id: self.message_id.to_string(),
            gateway_id: self.gateway_id.to_string(),
            ty: self.message_type().as_str().to_owned(),
            timestamp: self
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
            in_reply_to: self.in_reply_to.as_ref().map(ToString::to_string),
            // Invariant: our body and outcome types serialize to JSON without fallible parts
            // (no maps with non-string keys, no non-finite floats).
            result: self
                .result
                .as_ref()
                .map(|r| serde_json::to_value(r).unwrap_or(Value::Null)),
            body: self.body.to_value().unwrap_or(Value::Null),
            ext: None,
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Decodes and validates JSON bytes (DES-ENV-*, DES-MSG-*, DES-VER-*).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        // Check the version before the strict parse so that a v2 envelope with fields v1
        // does not know is answered UNSUPPORTED_VERSION, not MALFORMED (DES-VER-2).
        serde_json::from_slice::<NoDuplicateMembers>(bytes)
            .map_err(|e| DecodeError::Envelope(e.to_string()))?;
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Envelope(e.to_string()))?;
        if let Some(v) = value.get("version").and_then(Value::as_u64)
            && v != u64::from(PROTOCOL_VERSION)
        {
            return Err(DecodeError::UnsupportedVersion(
                u32::try_from(v).unwrap_or(u32::MAX),
            ));
        }
        let wire =
            WireEnvelope::deserialize(&value).map_err(|e| DecodeError::Envelope(e.to_string()))?;
        let ty = MessageType::from_wire(&wire.ty)
            .ok_or_else(|| DecodeError::UnknownType(wire.ty.clone()))?;
        let message_id = MessageId::new(wire.message_id)?;
        let gateway_id = GatewayId::new(wire.gateway_id)?;
        let timestamp = parse_timestamp(&wire.timestamp)
            .ok_or_else(|| DecodeError::Timestamp(wire.timestamp.clone()))?;
        let in_reply_to = wire.in_reply_to.map(MessageId::new).transpose()?;
        let result: Option<Outcome> = wire
            .result
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| DecodeError::Envelope(format!("result: {e}")))?;
        match (ty.is_reply(), in_reply_to.is_some(), result.is_some()) {
            (true, true, true) | (false, false, false) => {}
            (true, _, _) => {
                return Err(DecodeError::Correlation(
                    "a reply needs both inReplyTo and result",
                ));
            }
            (false, _, _) => {
                return Err(DecodeError::Correlation(
                    "a request carries neither inReplyTo nor result",
                ));
            }
        }
        if let Some(Outcome {
            reason: Some(r), ..
        }) = &result
            && !text_ok(r)
        {
            return Err(DecodeError::Rule(format!(
                "DES-ENV-6: reason longer than {MAX_TEXT_BYTES} bytes"
            )));
        }
        let body = Body::from_value(ty, wire.body).map_err(|e| DecodeError::Body {
            ty: ty.as_str(),
            reason: e.to_string(),
        })?;
        validate_body(&body)?;
        let envelope = Envelope {
            version: wire.version,
            message_id,
            gateway_id,
            timestamp,
            in_reply_to,
            result,
            body,
        };
        // serde's derived structs also accept a JSON array of the field values; the wire form
        // is objects only. Re-encoding gives the one object form: the input must have its shape.
        let canonical: Value = serde_json::from_slice(&envelope.encode())
            .map_err(|e| DecodeError::Envelope(e.to_string()))?;
        if !same_shape(&value, &canonical, true) {
            return Err(DecodeError::Envelope(
                "an object is written in another JSON form".into(),
            ));
        }
        Ok(envelope)
    }
}

/// What [`peek`] can read from a message that failed to decode (DES-MSG-2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peek {
    /// The envelope's `type`, a known message type.
    pub message_type: MessageType,
    /// The envelope's `messageId`, a valid DES-ID-2 identifier.
    pub message_id: MessageId,
    /// For `data`: `body.range`, if it is a valid sequence range (DES-ID-4).
    pub range: Option<SeqRange>,
}

/// Reads `type`, `messageId` and (for `data`) `body.range` from raw JSON that failed the
/// strict decode, so that a request can still be answered with its reply type and the
/// decode error's code (DES-MSG-2). `None` unless `bytes` (at most [`MAX_PAYLOAD_BYTES`]) is
/// a JSON object whose `type` is a known [`MessageType`] and whose `messageId` is a valid
/// [`MessageId`]. Nothing else of the message is trusted or checked.
pub fn peek(bytes: &[u8]) -> Option<Peek> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return None;
    }
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let obj = value.as_object()?;
    let message_type = MessageType::from_wire(obj.get("type")?.as_str()?)?;
    let message_id = MessageId::new(obj.get("messageId")?.as_str()?).ok()?;
    let range = (message_type == MessageType::Data)
        .then(|| {
            let r = obj.get("body")?.get("range")?.as_object()?;
            if r.len() != 2 {
                return None;
            }
            SeqRange::new(r.get("first")?.as_u64()?, r.get("last")?.as_u64()?)
        })
        .flatten();
    Some(Peek {
        message_type,
        message_id,
        range,
    })
}

/// Whether `input` has the JSON structure of `canonical`: the same member names, array
/// lengths and JSON types all the way down (string and number values may differ, e.g. a
/// timestamp written with `Z` instead of `+00:00`). The top-level `ext` member is skipped.
fn same_shape(input: &Value, canonical: &Value, top: bool) -> bool {
    match (input, canonical) {
        (Value::Object(a), Value::Object(b)) => {
            let a_len = a.len() - usize::from(top && a.contains_key("ext"));
            a_len == b.len()
                && b.iter()
                    .all(|(k, bv)| a.get(k).is_some_and(|av| same_shape(av, bv, false)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_shape(x, y, false))
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => true,
        _ => false,
    }
}

/// Rules on bodies that the serde types cannot state (DES-MSG-*).
fn validate_body(body: &Body) -> Result<(), DecodeError> {
    let rule = |s: String| Err(DecodeError::Rule(s));
    match body {
        Body::Connect(c) => {
            if c.versions.is_empty() || c.formats.is_empty() {
                return rule("DES-MSG-CONN-1: versions and formats must not be empty".into());
            }
            for s in [&c.software.vendor, &c.software.product, &c.software.version] {
                if !text_ok(s) {
                    return rule("DES-ENV-6: software text too long".into());
                }
            }
        }
        Body::PeriodicStart(s) => {
            if !(1..=86_400).contains(&s.interval_sec) {
                return rule("DES-MSG-PS-1: intervalSec must be 1..=86400".into());
            }
            if s.command_seq == 0 {
                return rule("DES-MSG-PS-4: commandSeq starts at 1".into());
            }
        }
        Body::PeriodicStop(s) if s.command_seq == 0 => {
            return rule("DES-MSG-PS-4: commandSeq starts at 1".into());
        }
        Body::Data(d) => match (d.kind, &d.request) {
            (DataKind::Periodic, None) | (DataKind::Resend, Some(_)) => {}
            _ => return rule("DES-MSG-DATA-1: `request` is present iff kind is resend".into()),
        },
        Body::ResendRequest(r) => match (&r.seq, &r.time) {
            (Some(s), None) if s.first >= 1 && s.first <= s.last => {}
            (None, Some(t)) if t.from <= t.to => {}
            (Some(_), None) | (None, Some(_)) => {
                return rule("DES-MSG-RS-1: range must be ordered and start at 1".into());
            }
            _ => return rule("DES-MSG-RS-1: exactly one of seq and time".into()),
        },
        Body::DataAck(a) if a.range.first == 0 || a.range.first > a.range.last => {
            return rule("DES-ID-4: range must be ordered and start at 1".into());
        }
        Body::Disconnect(d) if !text_ok(&d.reason) => {
            return rule("DES-ENV-6: reason too long".into());
        }
        Body::Anomaly(a)
            if !text_ok(&a.detail)
                || !text_ok(&a.rule)
                || a.topic.as_deref().is_some_and(|t| !text_ok(t)) =>
        {
            return rule("DES-ENV-6: anomaly text too long".into());
        }
        Body::MonitorStatus(m)
            if m.last_error.as_deref().is_some_and(|t| !text_ok(t))
                || m.certificates.iter().any(|c| !text_ok(&c.name)) =>
        {
            return rule("DES-ENV-6: monitoring text too long".into());
        }
        Body::MonitorStatus(m) if m.certificates.len() > MAX_CERTIFICATES => {
            return rule(format!(
                "DES-MSG-MON-1: at most {MAX_CERTIFICATES} certificates"
            ));
        }
        Body::ResendResult(r) if r.archived > r.records => {
            return rule("DES-MSG-RS-2: archived must not exceed records".into());
        }
        _ => {}
    }
    if let Body::Data(d) = body
        && (d.range.first == 0 || d.range.first > d.range.last)
    {
        return rule("DES-ID-4: range must be ordered and start at 1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_exactly_one_shape() {
        for ok in [
            "2026-11-22T10:15:00Z",
            "2026-11-22T10:15:00+09:00",
            "2026-11-22T10:15:00.5-03:30",
            "2026-11-22T10:15:00.123456789Z",
        ] {
            assert!(is_timestamp_shape(ok), "{ok}");
            assert!(parse_timestamp(ok).is_some(), "{ok}");
        }
        for bad in [
            "2026-11-22t10:15:00Z",
            "2026-11-22 10:15:00Z",
            "2026-11-22T10:15:00z",
            "2026-11-22T10:15:00",
            "2026-11-22T10:15:00.Z",
            "2026-11-22T10:15:00.1234567890Z",
            "2026-11-22T10:15:00+0900",
            "2026-11-22T10:15:00+09:00 ",
            "+2026-11-22T10:15:00Z",
        ] {
            assert!(!is_timestamp_shape(bad), "{bad}");
        }
        // the right shape, but not a date
        assert!(is_timestamp_shape("2026-02-30T10:15:00Z"));
        assert!(parse_timestamp("2026-02-30T10:15:00Z").is_none());
    }

    #[test]
    fn body_timestamps_in_utc_are_written_with_plus_00_00_not_z() {
        // DES-ENV-2: encoders write `±hh:mm`; chrono's serde default would write `Z`.
        let utc = parse_timestamp("2026-12-01T00:00:00Z").unwrap();
        let cert = CertExpiry {
            name: "root".into(),
            not_after: utc,
        };
        let range = TimeRange { from: utc, to: utc };
        assert_eq!(
            serde_json::to_string(&cert).unwrap(),
            r#"{"name":"root","notAfter":"2026-12-01T00:00:00+00:00"}"#
        );
        assert_eq!(
            serde_json::to_string(&range).unwrap(),
            r#"{"from":"2026-12-01T00:00:00+00:00","to":"2026-12-01T00:00:00+00:00"}"#
        );
    }

    #[test]
    fn shapes_compare_structure_not_values() {
        let canonical = serde_json::json!({"a": {"b": [1, "x"]}, "c": true});
        assert!(same_shape(
            &serde_json::json!({"c": false, "a": {"b": [2, "y"]}}),
            &canonical,
            true
        ));
        assert!(same_shape(
            &serde_json::json!({"a": {"b": [1, "x"]}, "c": true, "ext": [1]}),
            &canonical,
            true
        ));
        assert!(!same_shape(
            &serde_json::json!({"a": [[1, "x"]], "c": true}),
            &canonical,
            true
        ));
        assert!(!same_shape(
            &serde_json::json!({"a": {"b": [1]}, "c": true}),
            &canonical,
            true
        ));
        assert!(!same_shape(
            &serde_json::json!({"a": {"b": [1, "x"], "ext": 1}, "c": true}),
            &canonical,
            true
        ));
    }

    #[test]
    fn peek_reads_type_id_and_data_range_only_when_valid() {
        let p = peek(br#"{"type":"periodic.start","messageId":"p1.2","version":9,"body":7}"#);
        assert_eq!(
            p,
            Some(Peek {
                message_type: MessageType::PeriodicStart,
                message_id: MessageId::new("p1.2").unwrap_or_else(|e| panic!("{e}")),
                range: None,
            })
        );
        let d =
            peek(br#"{"type":"data","messageId":"g.1.2","body":{"range":{"first":3,"last":5}}}"#);
        assert_eq!(d.and_then(|p| p.range), SeqRange::new(3, 5));
        for no_range in [
            br#"{"type":"data","messageId":"g.1.2","body":{"range":{"first":0,"last":5}}}"#
                .as_slice(),
            br#"{"type":"data","messageId":"g.1.2","body":{"range":{"first":6,"last":5}}}"#,
            br#"{"type":"data","messageId":"g.1.2","body":{"range":{"first":1,"last":5,"x":1}}}"#,
            br#"{"type":"data","messageId":"g.1.2","body":{"range":[1,5]}}"#,
            br#"{"type":"data","messageId":"g.1.2"}"#,
        ] {
            let p = peek(no_range);
            assert!(p.is_some() && p.and_then(|p| p.range).is_none());
        }
        // Not an object, unknown type, bad or missing ID, not JSON, too large: nothing.
        for none in [
            br#"["type","data"]"#.as_slice(),
            br#"{"type":"data.nack","messageId":"a"}"#,
            br#"{"type":"data","messageId":"a b"}"#,
            br#"{"type":"data"}"#,
            br#"{"type":"data","messageId":"a""#,
            br#"{"type":1,"messageId":"a"}"#,
        ] {
            assert_eq!(peek(none), None, "{}", String::from_utf8_lossy(none));
        }
        let mut big = br#"{"type":"data","messageId":"a","pad":""#.to_vec();
        big.resize(MAX_PAYLOAD_BYTES, b'x');
        big.extend_from_slice(b"\"}");
        assert_eq!(peek(&big), None);
    }

    #[test]
    fn null_optional_members_are_refused_but_absent_ones_are_fine() {
        assert!(serde_json::from_str::<Outcome>(r#"{"code":"OK"}"#).is_ok());
        assert!(serde_json::from_str::<Outcome>(r#"{"code":"OK","reason":null}"#).is_err());
    }

    #[test]
    fn duplicate_member_names_are_found_at_any_depth() {
        let check = |s: &str| serde_json::from_str::<NoDuplicateMembers>(s).is_ok();
        assert!(check(r#"{"a":{"b":1,"c":[{"b":2},{"b":3}]},"b":1}"#));
        assert!(!check(r#"{"a":1,"a":1}"#));
        assert!(!check(r#"{"a":[{"x":1,"x":2}]}"#));
    }
}
