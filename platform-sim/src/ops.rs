//! Operator API and live dashboard of the platform simulator (MON-2; fault injection for the
//! conformance suite).
//!
//! A JSON HTTP API on a loopback port (plain HTTP: it is the operator's console, not a gateway
//! interface) and a web page served from the same port that shows the same state live:
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/` | the dashboard page (polls `/api/gateways` every second) |
//! | GET | `/api/gateways` | every known gateway: connection, periodic state, records per dataset, gaps, anomalies, last monitoring status, certificate expiries |
//! | GET | `/api/gateways/{id}` | one gateway |
//! | POST | `/api/gateways/{id}/commands` | an [`OperatorCommand`] (`start`, `stop`, `resend`, `revoke`) |
//! | POST | `/api/platform/rotate-certificate` | rotate the platform's data-protection certificate (DES-CERT-7); `{"detail": …}` |
//! | POST | `/api/platform/revoke-certificate` | revoke it without a replacement (a compromised key); `{"detail": …}` |
//! | GET/PUT | `/api/faults` | the [`FaultConfig`] in force |
//!
//! The state and the effects live behind [`OperatorBackend`], implemented by the platform
//! runtime ([`crate::platform::PlatformHandle`]); this module only speaks HTTP. Errors are JSON `{"error": …, "rule": …}` with a
//! specific status code.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use gateway::protocol::ids::{Dataset, GatewayId, SeqRange};
use gateway::protocol::message::{
    AnomalyKind, CertExpiry, MonitorStatus, PeriodicState, ProfileFormat, TimeRange,
};
use serde::{Deserialize, Serialize};

/// One anomaly the platform recorded for a gateway (MON-1, IF-PSTART-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyView {
    /// When the platform recorded it (ISO 8601).
    pub at: String,
    /// Reported by the gateway (`gateway`) or detected by the platform (`platform`).
    pub source: String,
    /// Its class.
    pub kind: AnomalyKind,
    /// The rule it names.
    pub rule: String,
    /// What happened.
    pub detail: String,
}

/// What the operator sees of one gateway (MON-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayView {
    /// The gateway.
    pub gateway_id: GatewayId,
    /// Whether a session (accepted connect) is open.
    pub connected: bool,
    /// Whether its client certificate is revoked.
    pub revoked: bool,
    /// Last message received (ISO 8601), if any.
    pub last_seen: Option<String>,
    /// Periodic state as last confirmed by the gateway.
    pub periodic: PeriodicState,
    /// A start or stop sent and not yet answered, if any (`start#7`).
    pub pending_command: Option<String>,
    /// Records received and stored, per dataset.
    pub records: std::collections::BTreeMap<String, u64>,
    /// The gateway's current storage epoch (DES-ID-5, DES-MSG-CONN-4); `null` before its first
    /// connect. `records`, `highestSeq` and `gaps` are of this epoch's sequence space.
    pub epoch: Option<gateway::protocol::ids::StoreEpoch>,
    /// Highest sequence number received.
    pub highest_seq: u64,
    /// Sequence numbers missing below the highest received.
    pub gaps: Vec<SeqRange>,
    /// Recent anomalies, newest last.
    pub anomalies: Vec<AnomalyView>,
    /// The last monitoring status (MON-1).
    pub last_status: Option<MonitorStatus>,
    /// Certificates of this gateway known to the platform, with expiry.
    pub certificates: Vec<CertExpiry>,
}

/// A command from the operator (MON-2; IF-PSTART-1, IF-PSTOP-1, IF-RESEND-1, SEC-CERT-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "camelCase", deny_unknown_fields)]
pub enum OperatorCommand {
    /// Send `periodic.start`.
    #[serde(rename_all = "camelCase")]
    Start {
        /// Datasets (empty: all).
        #[serde(default)]
        datasets: Vec<Dataset>,
        /// Interval in seconds.
        interval_sec: u32,
        /// Profile format.
        #[serde(default = "default_format")]
        format: ProfileFormat,
    },
    /// Send `periodic.stop`.
    Stop,
    /// Send `resend.request` (exactly one of `seq` and `time`).
    Resend {
        /// Only this dataset.
        #[serde(default)]
        dataset: Option<Dataset>,
        /// By sequence range.
        #[serde(default)]
        seq: Option<SeqRange>,
        /// By time range.
        #[serde(default)]
        time: Option<TimeRange>,
    },
    /// Revoke the gateway's certificates: CRL updated, session closed.
    Revoke,
}

fn default_format() -> ProfileFormat {
    ProfileFormat::Json
}

/// What the platform answers when it accepted a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandReceipt {
    /// The message ID of the request sent to the gateway, if one was sent.
    pub message_id: Option<String>,
    /// What was done.
    pub detail: String,
}

/// Faults the platform injects on purpose (conformance; SM-RESEND, IF-PSTART-2, SEC-CERT-2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Percentage (0..=100) of platform→gateway messages dropped.
    pub drop_percent: u8,
    /// Delay added to every platform→gateway message, in milliseconds.
    pub delay_ms: u64,
    /// Percentage (0..=100) of platform→gateway messages sent twice.
    pub duplicate_percent: u8,
    /// Hold back one message and send it after the next (reordering).
    pub reorder: bool,
    /// Do not send `data.ack` nor `ack` (the platform still stores what it receives; the
    /// gateway must keep and resend).
    pub withhold_acks: bool,
    /// Keep every `data.ack` back (the platform still stores what it receives; the wire log
    /// shows each with fault `late` when it is made) and send them all, in order, when the
    /// faults are next set without this one: acknowledgements that arrive after the gateway
    /// gave the message up (DES-MSG-DATA-5: a late OK still acknowledges its records).
    pub late_acks: bool,
    /// The next N commands are tampered after signing (one ciphertext byte flipped).
    pub tamper_commands: u32,
    /// The next N commands are sent without signature (encrypted only).
    pub unsigned_commands: u32,
    /// The next N commands are signed with an expired platform certificate.
    pub expired_cert_commands: u32,
    /// The next N commands are signed with a revoked platform certificate.
    pub revoked_cert_commands: u32,
    /// The HTTPS endpoint serves the CRL from before the latest revocation.
    pub stale_crl: bool,
    /// The next N commands carry a `timestamp` 600 s in the past, correctly signed and
    /// encrypted (outside the ±300 s window of DES-ENV-7).
    pub stale_commands: u32,
    /// After each `periodic.stop`, once the gateway has answered it OK, the last
    /// `periodic.start` sent is sent again, byte for byte as it was sealed: a replay
    /// (DES-ENV-8).
    pub replay_start_after_stop: bool,
    /// The next command's inner JWS is forged with this attack of the JOSE attack classes of
    /// `vectors/` (then the fault clears): correctly encrypted to the gateway, so only its
    /// signature checks can refuse it (DES-SEAL-2, DES-SEAL-5).
    pub jose_attack: Option<JoseAttack>,
    /// The certificate endpoint serves a `root.pem` that is not the provisioned root (a
    /// self-signed stranger): a gateway must ignore it (DES-CERT-3, SM-UPDATE).
    pub foreign_root: bool,
    /// With `expired_cert_commands` or `revoked_cert_commands` armed: the certificate endpoint
    /// serves that faulty signer's certificate as `platform.pem`, so a gateway that refreshes
    /// `platform.pem` on the unknown `kid` (DES-SEAL-6) meets it and must refuse it by its
    /// validity period or the CRL (DES-CERT-4), not merely by its `kid`.
    pub offer_signer_cert: bool,
    /// The next command's envelope is made malformed by this attack before it is signed and
    /// encrypted correctly (then the fault clears): only the gateway's decoding and receiving
    /// checks can refuse it (DES-MSG-2, DES-MSG-3).
    pub envelope_attack: Option<EnvelopeAttack>,
    /// The next `data.ack` is made malformed by this attack before it is sealed correctly
    /// (then the fault clears): the gateway must ignore it as a reply it cannot decode
    /// (DES-MSG-2) and send the data again (DES-MSG-DATA-3).
    pub reply_attack: Option<ReplyAttack>,
    /// The certificate endpoint serves `platform.pem` broken by this attack (while set): a
    /// gateway must refuse it and keep the one it holds (DES-CERT-2, DES-CERT-3).
    pub platform_pem_attack: Option<PemAttack>,
    /// The certificate endpoint also lists an application `rogue` whose certificate is the
    /// platform's own (right root, wrong role and name): a gateway must refuse it
    /// (DES-CERT-6, DES-CERT-4 step 3).
    pub rogue_app: bool,
    /// The next N `connect`s the platform would answer OK are answered `BUSY` instead (a
    /// retryable refusal, DES-MSG-CONN-3; the refused `connect.result` carries
    /// `ackedThrough` 0): the gateway must send its next `connect` after the DES-MQTT-8
    /// back-off, on the same transport.
    pub busy_connects: u32,
    /// The next N `connect`s the platform would answer OK are answered `UNAUTHORIZED` instead
    /// (a lasting refusal, DES-MSG-CONN-3): the gateway must not send another `connect` for
    /// 300 s (after `busy_connects`, if both are set).
    pub unauthorized_connects: u32,
    /// The next N `data` messages from a gateway are lost on their way to the platform (as if
    /// in transit): never opened as data, not stored, not acknowledged; the wire log shows each
    /// with fault `lost`. The gateway must send them again (DES-MSG-DATA-3).
    pub lose_data: u32,
    /// The next N `data` messages the platform would store are answered `data.ack` BUSY instead
    /// (the platform cannot store now; nothing stored, no anomaly): the gateway must keep each in
    /// flight and send it again (DES-MSG-DATA-2: BUSY is not a reason to give up).
    pub busy_acks: u32,
    /// The next `data` message the platform would store is answered `data.ack` with this
    /// failure code instead (nothing stored, no anomaly; not `OK`): BUSY and INTERNAL keep it
    /// in flight, MALFORMED, SECURITY_FAILED, UNKNOWN_DATASET, INVALID_STATE and TOO_LARGE give
    /// it up (DES-MSG-DATA-2, DES-MSG-DATA-5).
    pub ack_code: Option<gateway::protocol::message::ResultCode>,
    /// The certificate endpoint (DES-CERT-1) is unreachable: every new connection to it is
    /// closed as it is accepted, before TLS. A gateway keeps the certificates and the CRL it
    /// holds (DES-CERT-3) and retries.
    pub https_unreachable: bool,
}

/// A `platform.pem` response a gateway must refuse although it holds the right certificate
/// (DES-CERT-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PemAttack {
    /// A `PRIVATE KEY` block after the certificate.
    PrivateKeyBlock,
    /// Explanatory text before the certificate that takes the response over 1 MiB.
    OverOneMib,
}

impl PemAttack {
    /// Every attack.
    pub const ALL: [PemAttack; 2] = [PemAttack::PrivateKeyBlock, PemAttack::OverOneMib];

    /// Its name (the CLI spelling).
    pub fn name(self) -> &'static str {
        match self {
            PemAttack::PrivateKeyBlock => "private-key-block",
            PemAttack::OverOneMib => "over-one-mib",
        }
    }
}

/// A correctly sealed `data.ack` that a v1 receiver must refuse as MALFORMED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplyAttack {
    /// `result.code` a later version's code v1 does not know (DES-RC-2).
    UnknownCode,
    /// `result.reason` of 1025 bytes, over `MAX_TEXT_BYTES` (DES-ENV-6).
    LongReason,
    /// `body.range` one seq longer than the data message's (it decodes; DES-MSG-DATA-2 makes a
    /// `data.ack` naming another range MALFORMED to the gateway).
    OtherRange,
}

impl ReplyAttack {
    /// Every attack.
    pub const ALL: [ReplyAttack; 3] = [
        ReplyAttack::UnknownCode,
        ReplyAttack::LongReason,
        ReplyAttack::OtherRange,
    ];

    /// Its name (the wire log's fault note).
    pub fn name(self) -> &'static str {
        match self {
            ReplyAttack::UnknownCode => "unknown-code",
            ReplyAttack::LongReason => "long-reason",
            ReplyAttack::OtherRange => "other-range",
        }
    }
}

/// A correctly sealed command whose envelope breaks one receiving rule (docs/protocol.md §6.10,
/// steps 5–14 of `periodic.start`), or — the `Resend*` ones, which break only a
/// `resend.request` — whose resend body breaks DES-MSG-RS-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvelopeAttack {
    /// Over 256 KiB of JSON (a long `ext` string): TOO_LARGE (DES-ENV-5).
    Oversize,
    /// Not JSON (a prefix before the object): not peekable, no reply (DES-ENV-1, DES-MSG-2).
    NotJson,
    /// The member `version` twice: MALFORMED (DES-ENV-1, DES-MSG-2).
    DuplicateMember,
    /// `version` 2: UNSUPPORTED_VERSION (DES-VER-2).
    Version2,
    /// An unknown member in the body: MALFORMED (DES-VER-3).
    UnknownMember,
    /// An `ext` member: ignored, the command is applied (DES-VER-3).
    Ext,
    /// `gatewayId` of another gateway: UNAUTHORIZED (DES-ENV-4).
    ForeignGatewayId,
    /// `commandSeq` one below the platform's next, i.e. the previous command's: not above
    /// the last applied, SUPERSEDED (DES-MSG-PS-4).
    OldCommandSeq,
    /// Not sealed: an MQTT payload of 1 MiB + 16 bytes instead of the token (the broker takes
    /// packets up to 1 MiB + 1 KiB): dropped unopened, reported (DES-MQTT-7).
    OversizePayload,
    /// A `resend.request` by `seq` that also carries a `time` range: MALFORMED (DES-MSG-RS-1:
    /// exactly one of the two).
    ResendBoth,
    /// A `resend.request` with neither `seq` nor `time`: MALFORMED (DES-MSG-RS-1).
    ResendNeither,
    /// A `resend.request` by `seq` whose `first` and `last` are swapped (`first` > `last`):
    /// MALFORMED (DES-MSG-RS-1, DES-ID-4).
    ResendUnorderedSeq,
    /// A `resend.request` by `seq` whose `first` is 0: MALFORMED (DES-ID-4: seqs start at 1).
    ResendSeqZero,
    /// A `resend.request` by `time` whose `from` is a day after its `to`: MALFORMED
    /// (DES-MSG-RS-1: `from ≤ to`).
    ResendUnorderedTime,
}

impl EnvelopeAttack {
    /// The attacks that break only a `resend.request`'s body (applied to another command
    /// they break nothing: the command is not sent).
    pub const RESEND_BODY: [EnvelopeAttack; 5] = [
        EnvelopeAttack::ResendBoth,
        EnvelopeAttack::ResendNeither,
        EnvelopeAttack::ResendUnorderedSeq,
        EnvelopeAttack::ResendSeqZero,
        EnvelopeAttack::ResendUnorderedTime,
    ];

    /// The attacks that break any command's envelope (the others: [`Self::RESEND_BODY`]).
    pub const ANY_COMMAND: [EnvelopeAttack; 9] = [
        EnvelopeAttack::Oversize,
        EnvelopeAttack::NotJson,
        EnvelopeAttack::DuplicateMember,
        EnvelopeAttack::Version2,
        EnvelopeAttack::UnknownMember,
        EnvelopeAttack::Ext,
        EnvelopeAttack::ForeignGatewayId,
        EnvelopeAttack::OldCommandSeq,
        EnvelopeAttack::OversizePayload,
    ];

    /// Every attack: [`Self::ANY_COMMAND`], then [`Self::RESEND_BODY`].
    pub const ALL: [EnvelopeAttack; 14] = {
        let mut all = [EnvelopeAttack::Oversize; 14];
        let mut i = 0;
        while i < all.len() {
            all[i] = match i < Self::ANY_COMMAND.len() {
                true => Self::ANY_COMMAND[i],
                false => Self::RESEND_BODY[i - Self::ANY_COMMAND.len()],
            };
            i += 1;
        }
        all
    };

    /// Its name (the wire log's fault note).
    pub fn name(self) -> &'static str {
        match self {
            EnvelopeAttack::Oversize => "oversize",
            EnvelopeAttack::NotJson => "not-json",
            EnvelopeAttack::DuplicateMember => "duplicate-member",
            EnvelopeAttack::Version2 => "version-2",
            EnvelopeAttack::UnknownMember => "unknown-member",
            EnvelopeAttack::Ext => "ext",
            EnvelopeAttack::ForeignGatewayId => "foreign-gateway-id",
            EnvelopeAttack::OldCommandSeq => "old-command-seq",
            EnvelopeAttack::OversizePayload => "oversize-payload",
            EnvelopeAttack::ResendBoth => "resend-both",
            EnvelopeAttack::ResendNeither => "resend-neither",
            EnvelopeAttack::ResendUnorderedSeq => "resend-unordered-seq",
            EnvelopeAttack::ResendSeqZero => "resend-seq-zero",
            EnvelopeAttack::ResendUnorderedTime => "resend-unordered-time",
        }
    }
}

/// A forged inner JWS (the attack classes of `vectors/data/jws_rs256.json` and `seal.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoseAttack {
    /// `alg` `none`, empty signature, the platform's `kid`.
    AlgNone,
    /// `alg` HS256 keyed with the platform certificate's PEM (key confusion).
    HmacKeyConfusion,
    /// A correct signature by the platform's key, but `alg` RS512 (not accepted).
    UnsupportedAlg,
    /// A correct RS256 signature by the platform's key with a `crit` header.
    HeaderCrit,
    /// A correct RS256 signature by the platform's key with a `jku` header.
    HeaderJku,
    /// Signed by an attacker's key that the header embeds as `jwk`, claiming the platform's
    /// `kid`.
    EmbeddedJwk,
    /// A correct RS256 signature by the platform's key over a header with `alg` twice.
    DuplicateAlg,
    /// A correct signature by the platform's key with `typ` of the profile (`sgw-profile`).
    WrongTyp,
    /// Signed by an unknown RSA-2048 key, claiming the platform's `kid`.
    UnknownSigner,
}

impl JoseAttack {
    /// Every attack.
    pub const ALL: [JoseAttack; 9] = [
        JoseAttack::AlgNone,
        JoseAttack::HmacKeyConfusion,
        JoseAttack::UnsupportedAlg,
        JoseAttack::HeaderCrit,
        JoseAttack::HeaderJku,
        JoseAttack::EmbeddedJwk,
        JoseAttack::DuplicateAlg,
        JoseAttack::WrongTyp,
        JoseAttack::UnknownSigner,
    ];

    /// Its name (the wire log's fault note).
    pub fn name(self) -> &'static str {
        match self {
            JoseAttack::AlgNone => "alg-none",
            JoseAttack::HmacKeyConfusion => "hmac-key-confusion",
            JoseAttack::UnsupportedAlg => "unsupported-alg",
            JoseAttack::HeaderCrit => "header-crit",
            JoseAttack::HeaderJku => "header-jku",
            JoseAttack::EmbeddedJwk => "embedded-jwk",
            JoseAttack::DuplicateAlg => "duplicate-alg",
            JoseAttack::WrongTyp => "wrong-typ",
            JoseAttack::UnknownSigner => "unknown-signer",
        }
    }
}

impl FaultConfig {
    /// Checks the percentages, and that `ack_code` is a failure code (an OK for records the
    /// platform did not store would lose them).
    pub fn validate(&self) -> Result<(), OperatorError> {
        if self.drop_percent > 100 || self.duplicate_percent > 100 {
            return Err(OperatorError::BadRequest(
                "percentages must be 0..=100".to_owned(),
            ));
        }
        if self.ack_code == Some(gateway::protocol::message::ResultCode::Ok) {
            return Err(OperatorError::BadRequest(
                "ackCode must be a failure code, not OK".to_owned(),
            ));
        }
        Ok(())
    }

    /// The failure code the next `data` message the platform would store is answered with
    /// instead, taken from the faults: BUSY while `busy_acks` lasts, then `ack_code` once.
    pub fn take_ack_fault(&mut self) -> Option<gateway::protocol::message::ResultCode> {
        if self.busy_acks > 0 {
            self.busy_acks -= 1;
            return Some(gateway::protocol::message::ResultCode::Busy);
        }
        self.ack_code.take()
    }
}

/// Why an operator request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// MON-2: no gateway with this ID is known to the platform.
    #[error("MON-2: unknown gateway {0}")]
    UnknownGateway(String),
    /// MON-2: the request is malformed or breaks a protocol rule (named in the text).
    #[error("{0}")]
    BadRequest(String),
    /// IF-CONN-1: the gateway has no open session, so a command cannot be delivered now.
    #[error("IF-CONN-1: gateway {0} is not connected")]
    NotConnected(String),
    /// The platform failed internally.
    #[error("internal: {0}")]
    Internal(String),
}

impl OperatorError {
    fn status(&self) -> StatusCode {
        match self {
            OperatorError::UnknownGateway(_) => StatusCode::NOT_FOUND,
            OperatorError::BadRequest(_) => StatusCode::BAD_REQUEST,
            OperatorError::NotConnected(_) => StatusCode::CONFLICT,
            OperatorError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for OperatorError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

/// The platform runtime as the operator API sees it.
pub trait OperatorBackend: Send + Sync + 'static {
    /// Every known gateway, sorted by ID.
    fn gateways(&self) -> Vec<GatewayView>;
    /// Carries out a command for one gateway.
    fn command(
        &self,
        gateway: &GatewayId,
        command: OperatorCommand,
    ) -> Result<CommandReceipt, OperatorError>;
    /// The faults in force.
    fn faults(&self) -> FaultConfig;
    /// Replaces the faults in force.
    fn set_faults(&self, faults: FaultConfig) -> Result<(), OperatorError>;
    /// Replaces the platform's data-protection certificate by a new one (SM-CERTEXP,
    /// DES-SEAL-6); what was done.
    fn rotate_platform_certificate(&self) -> Result<String, OperatorError>;
    /// Revokes the platform's data-protection certificate (a compromised key, SEC-CERT-2)
    /// without replacing it; what was done.
    fn revoke_platform_certificate(&self) -> Result<String, OperatorError>;
}

type Backend = Arc<dyn OperatorBackend>;

/// The dashboard page (MON-2).
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// The operator API and dashboard as an axum router.
pub fn router(backend: Backend) -> Router {
    Router::new()
        .route("/", get(|| async { Html(DASHBOARD_HTML) }))
        .route("/api/gateways", get(list))
        .route("/api/gateways/{id}", get(one))
        .route("/api/gateways/{id}/commands", post(command))
        .route("/api/faults", get(get_faults).put(put_faults))
        .route("/api/platform/rotate-certificate", post(rotate_certificate))
        .route("/api/platform/revoke-certificate", post(revoke_certificate))
        .with_state(backend)
}

async fn rotate_certificate(
    State(b): State<Backend>,
) -> Result<Json<serde_json::Value>, OperatorError> {
    let detail = b.rotate_platform_certificate()?;
    Ok(Json(serde_json::json!({ "detail": detail })))
}

async fn revoke_certificate(
    State(b): State<Backend>,
) -> Result<Json<serde_json::Value>, OperatorError> {
    let detail = b.revoke_platform_certificate()?;
    Ok(Json(serde_json::json!({ "detail": detail })))
}

fn parse_gateway(id: &str) -> Result<GatewayId, OperatorError> {
    GatewayId::new(id).map_err(|e| OperatorError::BadRequest(e.to_string()))
}

async fn list(State(b): State<Backend>) -> Json<Vec<GatewayView>> {
    Json(b.gateways())
}

async fn one(
    State(b): State<Backend>,
    Path(id): Path<String>,
) -> Result<Json<GatewayView>, OperatorError> {
    let gw = parse_gateway(&id)?;
    b.gateways()
        .into_iter()
        .find(|g| g.gateway_id == gw)
        .map(Json)
        .ok_or(OperatorError::UnknownGateway(id))
}

async fn command(
    State(b): State<Backend>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<CommandReceipt>, OperatorError> {
    let gw = parse_gateway(&id)?;
    let cmd: OperatorCommand = serde_json::from_slice(&body)
        .map_err(|e| OperatorError::BadRequest(format!("MON-2: invalid command: {e}")))?;
    if let OperatorCommand::Resend { seq, time, .. } = &cmd
        && seq.is_some() == time.is_some()
    {
        return Err(OperatorError::BadRequest(
            "DES-MSG-RS-1: exactly one of seq and time".to_owned(),
        ));
    }
    if let OperatorCommand::Start { interval_sec, .. } = &cmd
        && !(1..=86_400).contains(interval_sec)
    {
        return Err(OperatorError::BadRequest(
            "DES-MSG-PS-1: intervalSec must be 1..=86400".to_owned(),
        ));
    }
    b.command(&gw, cmd).map(Json)
}

async fn get_faults(State(b): State<Backend>) -> Json<FaultConfig> {
    Json(b.faults())
}

async fn put_faults(
    State(b): State<Backend>,
    body: axum::body::Bytes,
) -> Result<Json<FaultConfig>, OperatorError> {
    let faults: FaultConfig = serde_json::from_slice(&body)
        .map_err(|e| OperatorError::BadRequest(format!("invalid fault config: {e}")))?;
    faults.validate()?;
    b.set_faults(faults)?;
    Ok(Json(b.faults()))
}

/// A running operator server.
pub struct OperatorServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl OperatorServer {
    /// Binds `addr` (port 0 picks a free port) and serves the router.
    pub async fn start(addr: SocketAddr, backend: Backend) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(backend);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("operator API stopped: {e}");
            }
        });
        Ok(Self { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving.
    pub fn shutdown(self) {
        self.task.abort();
    }
}
