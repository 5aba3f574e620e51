//! The platform's side of every protocol v1 flow as one sans-IO state machine,
//! [`PlatformCore`], kept next to the gateway's ([`super::gateway_side`]) so the two cannot
//! drift; the platform simulator and the conformance suite drive it (IF-CONN-1, IF-DISC-1,
//! IF-PSTART-1..4, IF-PSEND-3, IF-PSTOP-1, IF-RESEND-1, MON-1, MON-2, SM-RESEND, SM-ACL).
//!
//! Inputs: [`PlatformCore::handle_inbound`] (a payload opened by the platform's data security:
//! [`PlatformInbound::Opened`] with the authenticated sender — the subject of the data-protection
//! certificate that signed it — and, for `data`, the verdict on the sealed profile; or
//! [`PlatformInbound::Refused`]), operator commands ([`PlatformCore::command_start`],
//! [`PlatformCore::command_stop`], [`PlatformCore::command_resend`]),
//! [`PlatformCore::handle_link_lost`] and [`PlatformCore::handle_timeout`]. Outputs:
//! [`PlatformCore::poll_transmit`], [`PlatformCore::poll_event`], [`PlatformCore::poll_timeout`],
//! and the operator view [`PlatformCore::gateway`] (MON-2).
//!
//! Rules (protocol revision 1.1; the order of checks for every up message is that of
//! DES-MSG-3, first failure wins; the adapter does steps 1–4 — payload size, topic ACL,
//! unknown or revoked gateway, opening):
//! - 5–8, decoding (DES-MSG-2): a payload that opened but failed to decode is recorded as an
//!   anomaly; if [`super::message::peek`] read its `type` (the topic's) and `messageId`,
//!   `connect` is answered `connect.result`, `disconnect` `disconnect.result` and `data`
//!   (only with a readable `body.range`) `data.ack`, with the decode error's code (TOO_LARGE,
//!   MALFORMED, UNSUPPORTED_VERSION); nothing else is answered.
//! - 9–10: `type` ≠ the topic's → recorded, no reply (DES-MQTT-4); envelope `gatewayId`
//!   other than the topic tenant and the authenticated sender → `UNAUTHORIZED` (DES-ENV-4).
//! - 11, duplicates (DES-ENV-8): for [`REPLY_MEMORY_SEC`] per gateway, the replies to every
//!   `connect`, `disconnect`, `data` and start/stop result (answered by `ack`) are
//!   remembered by request message ID (an `anomaly` too, without replies, so that it is
//!   recorded once); the same message again (same ID, type and timestamp) is answered with
//!   them unchanged (same message IDs) and not processed. This comes before the freshness
//!   window, so a retransmission gets its first answer, not STALE. The same ID with another
//!   type or timestamp is a reused ID: recorded as an anomaly and processed as new. The
//!   memory is exact (not bounded).
//! - 12, freshness (DES-ENV-7): a `connect` outside ±300 s of `now` → `STALE`; other
//!   messages outside it are noted ([`PlatformEvent::Logged`]) and processed (data sent
//!   again keeps its first timestamp).
//! - 13, session (DES-MSG-CONN-3): `data` outside a session → `UNAUTHORIZED`;
//!   `monitor.status`, `anomaly`, start/stop results and `resend.result` outside a session →
//!   noted, not acted on, not acknowledged; `disconnect` outside a session → `OK`
//!   (idempotent).
//! - 14, `connect`: no common version → `UNSUPPORTED_VERSION` (DES-VER-4); storage epochs
//!   (DES-MSG-CONN-4): per gateway the platform keeps its current epoch, the highest
//!   `bootCount` accepted in it and the seqs held in it. An epoch other than the current
//!   one (or the first) is accepted and begins a new, empty sequence space (records of
//!   older epochs stay stored under theirs; `ackedThrough` is the new epoch's, 0) and clears
//!   the gateway's reply memory (its message IDs may repeat those of the old epoch). In the
//!   current epoch, `bootCount` below the highest accepted or `lastSeq` below the highest
//!   seq held → `INVALID_STATE` (reason names DES-MSG-CONN-4), and the epoch is *retired*:
//!   every later `connect` in it is refused the same way, so a restored store that caught up
//!   is never accepted; an equal `bootCount` is accepted. `connect.result` OK carries `ackedThrough`, the highest seq of
//!   the epoch received contiguously from 1; every refused `connect.result` carries 0.
//! - 14, `data`: `data.epoch` ≠ the session's epoch → `INVALID_STATE`, not stored
//!   (DES-MSG-CONN-4); profile failed to open → `SECURITY_FAILED` (DES-PROF-4/7); profile
//!   header differs from the message → `MALFORMED` (DES-MSG-DATA-1) — neither stored,
//!   anomaly recorded; else stored by (epoch, seq) and `OK` (duplicates too, whether sent
//!   again under the same or a new message ID, DES-MSG-DATA-3).
//! - Commands are numbered with `commandSeq`, strictly increasing per gateway and never below
//!   what the gateway reports as applied (DES-MSG-PS-4). A command not answered within
//!   [`PlatformConfig::command_retry_sec`] — or outstanding when the gateway reconnects — is
//!   sent again under a new message ID with the same `commandSeq`; a `SUPERSEDED` answer whose
//!   state carries the command's own `commandSeq` means it was already applied. Start/stop
//!   results are answered with `ack` (IF-PSTART-4).
//! - Received seqs are tracked per gateway and epoch; a hole below the highest known seq
//!   (received or reported in `connect`/`monitor.status`) that persists for
//!   [`PlatformConfig::gap_grace_sec`] is requested with `resend.request` by seq range; a
//!   `NOT_FOUND` answer marks it lost. A new epoch drops the requests for holes of the old.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};

use super::flow::{InboundError, RangeSet, STALE_WINDOW_SEC, Time, secs};
use super::gateway_side::PeriodicSetting;
use super::ids::{Dataset, GatewayId, MessageId, Seq, SeqRange, StoreEpoch};
use super::message::{
    AnomalyKind, Body, Connect, ConnectResult, Data, DataAck, DecodeError, Empty, Envelope,
    MAX_TEXT_BYTES, MessageType, MonitorStatus, Outcome, PROTOCOL_VERSION, Peek, PeriodicStart,
    PeriodicState, PeriodicStop, ProfileFormat, ResendRequest, ResultCode, TimeRange,
};
use super::topic::{parse_topic, topic_for};

/// Static configuration of the platform core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformConfig {
    /// Protocol versions spoken.
    pub versions: Vec<u32>,
    /// `monitorIntervalSec` told to gateways.
    pub monitor_interval_sec: u32,
    /// `ackTimeoutSec` told to gateways.
    pub ack_timeout_sec: u32,
    /// Seconds before an unanswered command is sent again.
    pub command_retry_sec: i64,
    /// Seconds a hole in the received seqs may persist before it is requested.
    pub gap_grace_sec: i64,
    /// Distinguishes this platform process in its message IDs (e.g. its start time).
    pub epoch: u64,
    /// Anomalies kept per gateway for the operator view.
    pub anomalies_kept: usize,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            versions: vec![PROTOCOL_VERSION],
            monitor_interval_sec: 60,
            ack_timeout_sec: 30,
            command_retry_sec: 30,
            gap_grace_sec: 60,
            epoch: 0,
            anomalies_kept: 100,
        }
    }
}

/// Outcome of verifying a `data` message's sealed profile (DES-PROF-*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileVerdict {
    /// Signature verified, decrypted, and its header matches the envelope (gateway, dataset,
    /// range).
    Verified,
    /// Opened and verified, but its header's `gatewayId`, `dataset` or `range` differs from
    /// the envelope's and the body's: `data.ack` MALFORMED (DES-MSG-DATA-1).
    Mismatch,
    /// It failed to open or decode (one verdict, no oracle): `data.ack` SECURITY_FAILED
    /// (DES-PROF-4, DES-PROF-7).
    Failed,
    /// Verified, but the platform does not store it and answers `data.ack` with this code
    /// instead: BUSY when its store cannot take it now (platform-sim's fault `busy-acks`), any
    /// other failure code as platform-sim's fault `ack-code` says; nothing stored, no anomaly
    /// (DES-MSG-DATA-2).
    Refused(ResultCode),
}

/// What the platform's adapter hands in for one MQTT message.
// Moved once per message; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformInbound {
    /// Opened by data security and decoded.
    Opened {
        /// The topic it arrived on.
        topic: String,
        /// The envelope.
        envelope: Envelope,
        /// The authenticated sender: subject of the certificate whose key signed it.
        sender: GatewayId,
        /// For `data`: the verdict on its profile (`None` counts as failed).
        profile: Option<ProfileVerdict>,
    },
    /// Could not be opened or decoded.
    Refused {
        /// The topic it arrived on.
        topic: String,
        /// Why.
        error: InboundError,
        /// What [`super::message::peek`] read from the opened bytes (`None` if it could not
        /// be opened or peeked), for the DES-MSG-2 reply.
        peek: Option<super::message::Peek>,
    },
}

/// A message to seal (to the gateway's data-protection certificate) and publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformTransmit {
    /// The gateway it is for.
    pub gateway: GatewayId,
    /// Topic to publish on.
    pub topic: String,
    /// The envelope.
    pub envelope: Envelope,
}

/// Which operator command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// `periodic.start`.
    Start {
        /// Datasets (empty: all).
        datasets: Vec<Dataset>,
        /// Interval, 1..=86400 s.
        interval_sec: u32,
        /// Profile format.
        format: ProfileFormat,
    },
    /// `periodic.stop`.
    Stop,
    /// `resend.request`.
    Resend {
        /// Only this dataset.
        dataset: Option<Dataset>,
        /// What to resend.
        selector: ResendSelector,
    },
}

/// The range of a resend request (DES-MSG-RS-1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResendSelector {
    /// By sequence numbers.
    Seq(SeqRange),
    /// By ingest time, inclusive.
    Time {
        /// From.
        from: Time,
        /// To.
        to: Time,
    },
}

/// A local effect for the platform's adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlatformEvent {
    /// A gateway opened a session.
    GatewayConnected {
        /// Which.
        gateway: GatewayId,
        /// Its storage epoch (DES-ID-5).
        epoch: StoreEpoch,
        /// Whether that epoch is new to the platform: a new sequence space began
        /// (DES-MSG-CONN-4).
        new_epoch: bool,
        /// Its boot count.
        boot_count: u64,
        /// Negotiated version.
        version: u32,
    },
    /// A gateway closed its session or its link was lost.
    GatewayDisconnected {
        /// Which.
        gateway: GatewayId,
    },
    /// Newly received records: the adapter stores the opened profile's records of `range`
    /// under (`epoch`, seq) (DES-MSG-CONN-4).
    StoreRecords {
        /// From.
        gateway: GatewayId,
        /// The storage epoch their seqs belong to.
        epoch: StoreEpoch,
        /// Dataset.
        dataset: Dataset,
        /// Seqs received for the first time.
        range: SeqRange,
    },
    /// A command was answered (finally).
    CommandCompleted {
        /// Gateway.
        gateway: GatewayId,
        /// The command.
        command: Command,
        /// Its `commandSeq` (start/stop).
        command_seq: Option<u64>,
        /// The outcome (`OK` also for "already applied").
        code: ResultCode,
    },
    /// Noted, not an anomaly: a duplicate answered from the reply memory (DES-ENV-8), a
    /// message other than `connect` outside the freshness window (DES-ENV-7, still acted on),
    /// a message without a reply type outside a session (DES-MSG-CONN-3, not acted on).
    Logged {
        /// The gateway concerned.
        gateway: GatewayId,
        /// Rule.
        rule: String,
        /// Detail.
        detail: String,
    },
    /// An anomaly, detected here or reported by the gateway.
    Anomaly {
        /// The gateway concerned, if known.
        gateway: Option<GatewayId>,
        /// Class.
        kind: AnomalyKind,
        /// Rule.
        rule: String,
        /// Detail.
        detail: String,
    },
}

/// What the platform's store holds about one gateway, to rebuild the core after a restart
/// ([`PlatformCore::restore_gateway`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGateway {
    /// Its current storage epoch (`None`: none known).
    pub epoch: Option<StoreEpoch>,
    /// The highest boot count accepted in that epoch.
    pub boot_count: u64,
    /// The highest seq it reported in that epoch.
    pub last_seq: Seq,
    /// Its periodic state as last reported.
    pub periodic: PeriodicState,
    /// The seq runs held in that epoch, each of one dataset.
    pub runs: Vec<(Dataset, SeqRange)>,
}

/// Why an operator command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// DES-MSG-PS-1: `intervalSec` must be 1..=86400.
    #[error("DES-MSG-PS-1: intervalSec {0} is not in 1..=86400")]
    Interval(u32),
    /// DES-MSG-RS-1: the resend range is empty or out of order.
    #[error("DES-MSG-RS-1: the resend range must be ordered")]
    Range,
}

/// An anomaly kept for the operator view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnomalyRecord {
    /// When the platform learnt of it.
    pub at: Time,
    /// Class.
    pub kind: AnomalyKind,
    /// Rule.
    pub rule: String,
    /// Detail.
    pub detail: String,
    /// Whether the gateway reported it (`anomaly` message) rather than the platform detecting it.
    pub from_gateway: bool,
}

/// What the operator API shows about one gateway (MON-2).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayView {
    /// Session open.
    pub online: bool,
    /// Negotiated version (0: never connected).
    pub version: u32,
    /// The gateway's current storage epoch (DES-ID-5; `None`: never connected).
    pub epoch: Option<StoreEpoch>,
    /// The highest boot count accepted in that epoch (DES-MSG-CONN-4).
    pub boot_count: u64,
    /// Periodic state as last reported by the gateway.
    pub periodic: PeriodicState,
    /// The last `commandSeq` assigned.
    pub last_command_seq: u64,
    /// Commands sent and not answered yet.
    pub pending_commands: Vec<Command>,
    /// Every seq received in the current epoch.
    pub received: RangeSet,
    /// Records received per dataset in the current epoch.
    pub received_per_dataset: BTreeMap<Dataset, u64>,
    /// Highest seq known to exist (received or reported).
    pub known_last_seq: Seq,
    /// Holes below `known_last_seq` not (yet) received.
    pub gaps: Vec<SeqRange>,
    /// Holes the gateway answered `NOT_FOUND` for.
    pub lost: Vec<SeqRange>,
    /// Recent anomalies.
    pub anomalies: Vec<AnomalyRecord>,
    /// Anomalies since the platform started.
    pub anomaly_count: u64,
    /// The last `monitor.status` and when it came.
    pub last_status: Option<(Time, MonitorStatus)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Origin {
    Operator,
    Gap(SeqRange),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Pending {
    command: Command,
    command_seq: Option<u64>,
    origin: Origin,
    /// Every message ID it was sent under.
    ids: Vec<MessageId>,
    /// When to send (again); `None` while the gateway is offline (sent at its next connect).
    send_at: Option<Time>,
}

#[derive(Debug, Clone, PartialEq)]
struct Session {
    online: bool,
    version: u32,
    /// The current storage epoch; `received`, `reported_last`, `gaps`, `lost` and
    /// `per_dataset` are of its sequence space (DES-MSG-CONN-4).
    epoch: Option<StoreEpoch>,
    /// The highest boot count accepted in `epoch`.
    boot_count: u64,
    /// `epoch` is retired: a `connect` in it was refused INVALID_STATE, so every later one is
    /// too (DES-MSG-CONN-4: a restored store that caught up must not be accepted).
    retired: bool,
    periodic: PeriodicSetting,
    last_command_seq: u64,
    pending: Vec<Pending>,
    received: RangeSet,
    per_dataset: BTreeMap<Dataset, u64>,
    reported_last: Seq,
    /// Holes and since when they are seen.
    gaps: Vec<(SeqRange, Time)>,
    lost: RangeSet,
    anomalies: VecDeque<AnomalyRecord>,
    anomaly_count: u64,
    last_status: Option<(Time, MonitorStatus)>,
    /// The `timestamp` of the `monitor.status` kept in `last_status`.
    last_status_at: Option<Time>,
}

impl Hash for Session {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.online.hash(h);
        self.version.hash(h);
        self.epoch.hash(h);
        self.boot_count.hash(h);
        self.retired.hash(h);
        self.periodic.hash(h);
        self.last_command_seq.hash(h);
        self.pending.hash(h);
        self.received.hash(h);
        self.reported_last.hash(h);
        self.gaps.hash(h);
        self.lost.hash(h);
        self.anomaly_count.hash(h);
    }
}

impl Session {
    fn new() -> Self {
        Self {
            online: false,
            version: 0,
            epoch: None,
            boot_count: 0,
            retired: false,
            periodic: PeriodicSetting::default(),
            last_command_seq: 0,
            pending: Vec::new(),
            received: RangeSet::new(),
            per_dataset: BTreeMap::new(),
            reported_last: 0,
            gaps: Vec::new(),
            lost: RangeSet::new(),
            anomalies: VecDeque::new(),
            anomaly_count: 0,
            last_status: None,
            last_status_at: None,
        }
    }

    /// Begins the sequence space of a new storage epoch (DES-MSG-CONN-4): nothing of it is
    /// received yet; holes requested for the previous epoch are no longer asked for.
    fn begin_epoch(&mut self, epoch: StoreEpoch) {
        self.epoch = Some(epoch);
        self.boot_count = 0;
        self.retired = false;
        self.received = RangeSet::new();
        self.per_dataset.clear();
        self.reported_last = 0;
        self.gaps.clear();
        self.lost = RangeSet::new();
        self.pending.retain(|p| p.origin == Origin::Operator);
    }

    fn known_last(&self) -> Seq {
        self.reported_last.max(self.received.max().unwrap_or(0))
    }

    fn current_gaps(&self) -> Vec<SeqRange> {
        let mut have = self.received.clone();
        for r in self.lost.ranges() {
            have.insert(*r);
        }
        match SeqRange::new(1, self.known_last()) {
            Some(all) => have.missing_in(all),
            None => Vec::new(),
        }
    }
}

/// How long the platform remembers the replies to a gateway's request, for answering a
/// duplicate of it (DES-ENV-8): twice the freshness window.
pub const REPLY_MEMORY_SEC: i64 = 2 * STALE_WINDOW_SEC;

/// The replies to one request, kept for duplicates (DES-ENV-8).
#[derive(Debug, Clone, PartialEq)]
struct Remembered {
    /// When the request was processed.
    at: Time,
    /// The request's type and timestamp: a duplicate (sent again, by the network or the
    /// gateway) has both unchanged; a message ID reused with others is not a duplicate.
    ty: MessageType,
    timestamp: Time,
    /// The reply envelopes, re-sent unchanged.
    replies: Vec<Envelope>,
}

/// Per gateway: request message ID → its replies.
type ReplyMemory = BTreeMap<MessageId, Remembered>;

/// The platform's protocol state machine. See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformCore {
    cfg: PlatformConfig,
    next_msg: u64,
    sessions: BTreeMap<GatewayId, Session>,
    memory: BTreeMap<GatewayId, ReplyMemory>,
    out: VecDeque<PlatformTransmit>,
    events: VecDeque<PlatformEvent>,
    /// Per gateway, the datasets registered for it; a gateway not in it: any (DES-MSG-DATA-1).
    registered: BTreeMap<GatewayId, BTreeSet<Dataset>>,
}

/// Hashes what influences future behaviour (for model checking); output envelopes by ID.
impl Hash for PlatformCore {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.next_msg.hash(h);
        self.sessions.hash(h);
        self.registered.hash(h);
        for (gw, m) in &self.memory {
            gw.hash(h);
            for (id, r) in m {
                id.hash(h);
                r.at.hash(h);
            }
        }
        for t in &self.out {
            t.envelope.message_id.hash(h);
        }
    }
}

impl PlatformCore {
    /// A platform with no sessions.
    pub fn new(cfg: PlatformConfig) -> Self {
        Self {
            cfg,
            next_msg: 1,
            sessions: BTreeMap::new(),
            memory: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            registered: BTreeMap::new(),
        }
    }

    /// Sets how long a hole waits before it is asked for ([`PlatformConfig::gap_grace_sec`],
    /// DES-MSG-RS-4), from now on, holes already open included (their wait counts from when
    /// they opened). The conformance suite gives each case against one long-running gateway
    /// the grace it needs; call [`Self::poll_timeout`] again afterwards.
    pub fn set_gap_grace_sec(&mut self, secs: i64) {
        self.cfg.gap_grace_sec = secs;
    }

    /// Registers the datasets `gw` may send (`None`: any, the default). A `data` of another
    /// dataset is answered UNKNOWN_DATASET and not stored (DES-MSG-DATA-1).
    pub fn set_registered_datasets(&mut self, gw: &GatewayId, datasets: Option<BTreeSet<Dataset>>) {
        match datasets {
            Some(d) => {
                self.registered.insert(gw.clone(), d);
            }
            None => {
                self.registered.remove(gw);
            }
        }
    }

    /// The next message to publish.
    pub fn poll_transmit(&mut self) -> Option<PlatformTransmit> {
        self.out.pop_front()
    }

    /// The next local effect.
    pub fn poll_event(&mut self) -> Option<PlatformEvent> {
        self.events.pop_front()
    }

    /// Gateways known to the platform.
    pub fn gateways(&self) -> impl Iterator<Item = &GatewayId> {
        self.sessions.keys()
    }

    /// The operator view of one gateway (MON-2).
    pub fn gateway(&self, gw: &GatewayId) -> Option<GatewayView> {
        let s = self.sessions.get(gw)?;
        Some(GatewayView {
            online: s.online,
            version: s.version,
            epoch: s.epoch.clone(),
            boot_count: s.boot_count,
            periodic: s.periodic.to_state(),
            last_command_seq: s.last_command_seq,
            pending_commands: s.pending.iter().map(|p| p.command.clone()).collect(),
            received: s.received.clone(),
            received_per_dataset: s.per_dataset.clone(),
            known_last_seq: s.known_last(),
            gaps: s.current_gaps(),
            lost: s.lost.ranges().to_vec(),
            anomalies: s.anomalies.iter().cloned().collect(),
            anomaly_count: s.anomaly_count,
            last_status: s.last_status.clone(),
        })
    }

    /// When [`Self::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        let grace = secs(self.cfg.gap_grace_sec);
        self.sessions
            .values()
            .filter(|s| s.online)
            .flat_map(|s| {
                let pend = s.pending.iter().filter_map(|p| p.send_at);
                let gaps = s
                    .gaps
                    .iter()
                    .filter(|(g, _)| !gap_requested(s, *g))
                    .map(move |(_, since)| *since + grace);
                pend.chain(gaps)
            })
            .min()
    }

    // ----- operator commands -----

    /// Queue `periodic.start` for `gw` (IF-PSTART-1); returns its `commandSeq`.
    pub fn command_start(
        &mut self,
        now: Time,
        gw: &GatewayId,
        datasets: Vec<Dataset>,
        interval_sec: u32,
        format: ProfileFormat,
    ) -> Result<u64, CommandError> {
        if !(1..=86_400).contains(&interval_sec) {
            return Err(CommandError::Interval(interval_sec));
        }
        let cmd = Command::Start {
            datasets,
            interval_sec,
            format,
        };
        Ok(self.queue(now, gw, cmd, Origin::Operator).unwrap_or(0))
    }

    /// Queue `periodic.stop` for `gw` (IF-PSTOP-1); returns its `commandSeq`.
    pub fn command_stop(&mut self, now: Time, gw: &GatewayId) -> u64 {
        self.queue(now, gw, Command::Stop, Origin::Operator)
            .unwrap_or(0)
    }

    /// Queue `resend.request` for `gw` (IF-RESEND-1).
    pub fn command_resend(
        &mut self,
        now: Time,
        gw: &GatewayId,
        dataset: Option<Dataset>,
        selector: ResendSelector,
    ) -> Result<(), CommandError> {
        match &selector {
            ResendSelector::Seq(r) if r.first >= 1 && r.first <= r.last => {}
            ResendSelector::Time { from, to } if from <= to => {}
            _ => return Err(CommandError::Range),
        }
        self.queue(
            now,
            gw,
            Command::Resend { dataset, selector },
            Origin::Operator,
        );
        Ok(())
    }

    fn queue(
        &mut self,
        now: Time,
        gw: &GatewayId,
        command: Command,
        origin: Origin,
    ) -> Option<u64> {
        let s = self.sessions.entry(gw.clone()).or_insert_with(Session::new);
        let command_seq = match command {
            Command::Start { .. } | Command::Stop => {
                s.last_command_seq = s.last_command_seq.saturating_add(1);
                Some(s.last_command_seq)
            }
            Command::Resend { .. } => None,
        };
        let send_at = s.online.then_some(now);
        s.pending.push(Pending {
            command,
            command_seq,
            origin,
            ids: Vec::new(),
            send_at,
        });
        self.flush_pending(now, gw);
        command_seq
    }

    /// Sends every pending command of `gw` that is due.
    fn flush_pending(&mut self, now: Time, gw: &GatewayId) {
        let retry = secs(self.cfg.command_retry_sec.max(1));
        let Some(s) = self.sessions.get(gw) else {
            return;
        };
        if !s.online {
            return;
        }
        let due: Vec<usize> = s
            .pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.send_at.is_some_and(|t| t <= now))
            .map(|(i, _)| i)
            .collect();
        for i in due {
            let id = self.next_id();
            let Some(s) = self.sessions.get_mut(gw) else {
                return;
            };
            let p = &mut s.pending[i];
            p.ids.push(id.clone());
            p.send_at = Some(now + retry);
            let body = match &p.command {
                Command::Start {
                    datasets,
                    interval_sec,
                    format,
                } => Body::PeriodicStart(PeriodicStart {
                    command_seq: p.command_seq.unwrap_or(0),
                    datasets: datasets.clone(),
                    interval_sec: *interval_sec,
                    format: *format,
                }),
                Command::Stop => Body::PeriodicStop(PeriodicStop {
                    command_seq: p.command_seq.unwrap_or(0),
                }),
                Command::Resend { dataset, selector } => Body::ResendRequest(ResendRequest {
                    dataset: dataset.clone(),
                    seq: match selector {
                        ResendSelector::Seq(r) => Some(*r),
                        ResendSelector::Time { .. } => None,
                    },
                    time: match selector {
                        ResendSelector::Seq(_) => None,
                        ResendSelector::Time { from, to } => Some(TimeRange {
                            from: *from,
                            to: *to,
                        }),
                    },
                }),
            };
            self.send(now, gw, id, None, body);
        }
    }

    // ----- inputs -----

    /// The broker reports that `gw`'s MQTT connection is gone (e.g. its will message).
    pub fn handle_link_lost(&mut self, _now: Time, gw: &GatewayId) {
        if let Some(s) = self.sessions.get_mut(gw)
            && s.online
        {
            s.online = false;
            for p in &mut s.pending {
                p.send_at = None;
            }
            self.events.push_back(PlatformEvent::GatewayDisconnected {
                gateway: gw.clone(),
            });
        }
    }

    /// Timers: command retries and gap requests.
    pub fn handle_timeout(&mut self, now: Time) {
        let gws: Vec<GatewayId> = self.sessions.keys().cloned().collect();
        for gw in gws {
            self.flush_pending(now, &gw);
            self.check_gaps(now, &gw);
        }
        let remembered: Vec<GatewayId> = self.memory.keys().cloned().collect();
        for gw in remembered {
            self.expire_memory(now, &gw);
        }
    }

    /// A message arrived on the platform's subscription.
    pub fn handle_inbound(&mut self, now: Time, inbound: PlatformInbound) {
        match inbound {
            PlatformInbound::Refused { topic, error, peek } => {
                let parsed = parse_topic(&topic).ok();
                self.record_anomaly(
                    now,
                    parsed.as_ref().map(|p| p.gateway.clone()),
                    error.anomaly_kind(),
                    error.rule().into(),
                    format!("{} refused: {error}", error.result_code().as_str()),
                    false,
                );
                if let (InboundError::Decode(e), Some(peek), Some(t)) = (&error, peek, parsed) {
                    self.answer_undecodable(now, &t.gateway, t.message_type, &peek, e);
                }
            }
            PlatformInbound::Opened {
                topic,
                envelope,
                sender,
                profile,
            } => self.handle_opened(now, &topic, envelope, sender, profile),
        }
    }

    /// DES-MSG-2: an up request that opened but failed to decode (TOO_LARGE, MALFORMED,
    /// UNSUPPORTED_VERSION) is answered with its reply type and the decode error's code when
    /// [`super::message::peek`] read its `type` — the topic's type — and `messageId`: `connect`
    /// → `connect.result` with the platform's defaults and `ackedThrough` 0, `disconnect` →
    /// `disconnect.result`, `data` → `data.ack` if the range could be read too. Other types
    /// have no reply (the anomaly is recorded). Not remembered for duplicates (DES-ENV-8 comes
    /// later in the order of checks).
    fn answer_undecodable(
        &mut self,
        now: Time,
        gw: &GatewayId,
        topic_type: Option<MessageType>,
        peek: &Peek,
        e: &DecodeError,
    ) {
        let code = e.result_code();
        if topic_type != Some(peek.message_type) || code == ResultCode::UnknownType {
            return;
        }
        let body = match (peek.message_type, peek.range) {
            (MessageType::Connect, _) => self.refused_connect_body(),
            (MessageType::Disconnect, _) => Body::DisconnectResult(Empty {}),
            (MessageType::Data, Some(range)) => Body::DataAck(DataAck { range }),
            _ => return,
        };
        self.reply(
            now,
            gw,
            &peek.message_id,
            Outcome::new(code, clip_text(format!("DES-MSG-2: {e}"))),
            body,
        );
    }

    /// Rebuilds a gateway's state from the platform's store after a restart (offline):
    /// its current epoch, the highest boot count accepted and the highest seq reported in
    /// it, its periodic state and the seq runs held in that epoch (DES-MSG-CONN-4,
    /// DES-MSG-DATA-2). Holes among them count as seen from `now`.
    pub fn restore_gateway(&mut self, now: Time, gw: &GatewayId, stored: StoredGateway) {
        let s = self.sessions.entry(gw.clone()).or_insert_with(Session::new);
        s.online = false;
        s.epoch = stored.epoch;
        s.boot_count = stored.boot_count;
        s.reported_last = stored.last_seq;
        s.last_command_seq = s.last_command_seq.max(stored.periodic.command_seq);
        s.periodic = setting_of(&stored.periodic);
        for (dataset, range) in stored.runs {
            for r in s.received.missing_in(range) {
                *s.per_dataset.entry(dataset.clone()).or_insert(0) += r.len();
            }
            s.received.insert(range);
        }
        for p in &mut s.pending {
            p.send_at = None;
        }
        self.check_gaps(now, gw);
    }

    // ----- internals -----

    fn next_id(&mut self) -> MessageId {
        let id = format!("p{:x}.{:x}", self.cfg.epoch, self.next_msg);
        self.next_msg += 1;
        // Invariant: "p" + at most 16 hex + "." + at most 16 hex = 34 characters of the
        // DES-ID-2 alphabet.
        MessageId::new(id).expect("platform message ID within DES-ID-2")
    }

    fn send(
        &mut self,
        now: Time,
        gw: &GatewayId,
        id: MessageId,
        reply: Option<(&MessageId, Outcome)>,
        body: Body,
    ) {
        let ty = body.message_type();
        let (in_reply_to, result) = match reply {
            Some((to, o)) => (Some(to.clone()), Some(o)),
            None => (None, None),
        };
        self.out.push_back(PlatformTransmit {
            gateway: gw.clone(),
            topic: topic_for(gw, ty),
            envelope: Envelope {
                version: PROTOCOL_VERSION,
                message_id: id,
                gateway_id: gw.clone(),
                timestamp: now,
                in_reply_to,
                result,
                body,
            },
        });
    }

    fn reply(&mut self, now: Time, gw: &GatewayId, to: &MessageId, o: Outcome, body: Body) {
        let id = self.next_id();
        self.send(now, gw, id, Some((to, o)), body);
    }

    fn record_anomaly(
        &mut self,
        now: Time,
        gw: Option<GatewayId>,
        kind: AnomalyKind,
        rule: String,
        detail: String,
        from_gateway: bool,
    ) {
        if let Some(g) = &gw
            && let Some(s) = self.sessions.get_mut(g)
        {
            s.anomaly_count += 1;
            s.anomalies.push_back(AnomalyRecord {
                at: now,
                kind,
                rule: rule.clone(),
                detail: detail.clone(),
                from_gateway,
            });
            while s.anomalies.len() > self.cfg.anomalies_kept.max(1) {
                s.anomalies.pop_front();
            }
        }
        self.events.push_back(PlatformEvent::Anomaly {
            gateway: gw,
            kind,
            rule,
            detail,
        });
    }

    fn handle_opened(
        &mut self,
        now: Time,
        topic: &str,
        env: Envelope,
        sender: GatewayId,
        profile: Option<ProfileVerdict>,
    ) {
        let ty = env.message_type();
        let parsed = match parse_topic(topic) {
            Ok(p) => p,
            Err(e) => {
                self.record_anomaly(
                    now,
                    Some(sender),
                    AnomalyKind::Malformed,
                    "DES-MQTT-3".into(),
                    e.to_string(),
                    false,
                );
                return;
            }
        };
        if parsed.direction != ty.direction() || parsed.message_type != Some(ty) {
            self.record_anomaly(
                now,
                Some(sender),
                AnomalyKind::Malformed,
                "DES-MQTT-4".into(),
                format!("{} on topic {topic}", ty.as_str()),
                false,
            );
            return;
        }
        if parsed.gateway != sender || env.gateway_id != sender {
            self.record_anomaly(
                now,
                Some(sender.clone()),
                AnomalyKind::Unauthorized,
                "DES-ENV-4".into(),
                format!(
                    "{} from {sender} names gateway {} on tenant {}",
                    ty.as_str(),
                    env.gateway_id,
                    parsed.gateway
                ),
                false,
            );
            // Answered UNAUTHORIZED where the request has a reply type (DES-ENV-4).
            let body = match &env.body {
                Body::Connect(_) => Some(self.refused_connect_body()),
                Body::Disconnect(_) => Some(Body::DisconnectResult(Empty {})),
                Body::Data(d) => Some(Body::DataAck(DataAck { range: d.range })),
                _ => None,
            };
            if let Some(body) = body {
                self.reply(
                    now,
                    &sender,
                    &env.message_id,
                    Outcome::new(ResultCode::Unauthorized, "DES-ENV-4: identity mismatch"),
                    body,
                );
            }
            return;
        }
        let gw = sender;
        // DES-ENV-8: a duplicate is answered from the memory before the freshness window, so
        // a request that was processed gets its reply again, not STALE.
        if self.answer_duplicate(now, &gw, &env) {
            return;
        }
        let before = self.out.len();
        self.dispatch(now, &gw, &env, profile);
        if remembers_replies(ty) {
            self.remember(now, &gw, &env, before);
        }
    }

    /// Precedence steps 12–14 for a message that passed the checks before them.
    fn dispatch(
        &mut self,
        now: Time,
        gw: &GatewayId,
        env: &Envelope,
        profile: Option<ProfileVerdict>,
    ) {
        let ty = env.message_type();
        let skew = (now - env.timestamp).num_seconds().abs();
        if skew > STALE_WINDOW_SEC {
            if let Body::Connect(_) = env.body {
                // Refused, not acted on (DES-ENV-7); the gateway retries with a fresh connect.
                self.record_anomaly(
                    now,
                    Some(gw.clone()),
                    AnomalyKind::Stale,
                    "DES-ENV-7".into(),
                    format!("connect {} is {skew} s off", env.message_id),
                    false,
                );
                let body = self.refused_connect_body();
                self.reply(
                    now,
                    gw,
                    &env.message_id,
                    Outcome::new(
                        ResultCode::Stale,
                        format!("DES-ENV-7: timestamp outside ±{STALE_WINDOW_SEC} s"),
                    ),
                    body,
                );
                return;
            }
            // Other up messages keep their first timestamp when sent again (DES-MSG-DATA-3):
            // noted, still acted on.
            self.log(
                gw,
                "DES-ENV-7",
                format!("{} {} is {skew} s off", ty.as_str(), env.message_id),
            );
        }
        let online = self.sessions.get(gw).is_some_and(|s| s.online);
        match &env.body {
            Body::Connect(c) => self.on_connect(now, gw, env, c),
            Body::Disconnect(_) => {
                // Outside a session too: OK, idempotent (DES-MSG-CONN-3).
                if let Some(s) = self.sessions.get_mut(gw)
                    && s.online
                {
                    s.online = false;
                    for p in &mut s.pending {
                        p.send_at = None;
                    }
                    self.events.push_back(PlatformEvent::GatewayDisconnected {
                        gateway: gw.clone(),
                    });
                }
                self.reply(
                    now,
                    gw,
                    &env.message_id,
                    Outcome::ok(),
                    Body::DisconnectResult(Empty {}),
                );
            }
            Body::Data(_) if !online => {
                let Body::Data(d) = &env.body else { return };
                self.reply(
                    now,
                    gw,
                    &env.message_id,
                    Outcome::new(ResultCode::Unauthorized, "DES-MSG-CONN-3: no open session"),
                    Body::DataAck(DataAck { range: d.range }),
                );
            }
            Body::MonitorStatus(_)
            | Body::Anomaly(_)
            | Body::PeriodicStartResult(_)
            | Body::PeriodicStopResult(_)
            | Body::ResendResult(_)
                if !online =>
            {
                self.log(
                    gw,
                    "DES-MSG-CONN-3",
                    format!(
                        "{} {} outside a session: not acted on",
                        ty.as_str(),
                        env.message_id
                    ),
                );
            }
            Body::PeriodicStartResult(state) | Body::PeriodicStopResult(state) => {
                self.on_periodic_result(now, gw, env, state);
            }
            Body::ResendResult(_) => self.on_resend_result(now, gw, env),
            Body::Data(d) => self.on_data(now, gw, env, d, profile),
            Body::MonitorStatus(m) => {
                if let Some(s) = self.sessions.get_mut(gw) {
                    s.reported_last = s.reported_last.max(m.last_seq);
                    // Kept if it is the latest by its timestamp (DES-MSG-MON-2).
                    if s.last_status_at.is_none_or(|t| t <= env.timestamp) {
                        s.last_status_at = Some(env.timestamp);
                        s.last_status = Some((now, m.clone()));
                    }
                }
                // A higher lastSeq may open a trailing gap (e.g. records held after a
                // given-up message, DES-MSG-DATA-5): track it now so its timer is armed.
                self.check_gaps(now, gw);
            }
            Body::Anomaly(a) => {
                self.record_anomaly(
                    now,
                    Some(gw.clone()),
                    a.kind,
                    a.rule.clone(),
                    a.detail.clone(),
                    true,
                );
            }
            // Down-direction bodies were refused by the topic check.
            _ => {}
        }
    }

    /// DES-ENV-8: if `env` repeats a request whose replies are remembered (same message ID,
    /// type and timestamp, processed less than [`REPLY_MEMORY_SEC`] ago), re-sends them
    /// unchanged and returns true. The same message ID with another type or timestamp is no
    /// duplicate but a reused ID (DES-ID-2): recorded as an anomaly and processed as new.
    fn answer_duplicate(&mut self, now: Time, gw: &GatewayId, env: &Envelope) -> bool {
        self.expire_memory(now, gw);
        let Some(m) = self
            .memory
            .get(gw)
            .and_then(|m| m.get(&env.message_id))
            .cloned()
        else {
            return false;
        };
        let ty = env.message_type();
        if m.ty != ty || m.timestamp != env.timestamp {
            self.record_anomaly(
                now,
                Some(gw.clone()),
                AnomalyKind::Malformed,
                "DES-ENV-8".into(),
                format!(
                    "message ID {} reused by {} with another type or timestamp: processed as new",
                    env.message_id,
                    ty.as_str()
                ),
                false,
            );
            if let Some(mem) = self.memory.get_mut(gw) {
                mem.remove(&env.message_id);
            }
            return false;
        }
        self.log(
            gw,
            "DES-ENV-8",
            format!(
                "duplicate {} {}: {} remembered repl{} sent again",
                ty.as_str(),
                env.message_id,
                m.replies.len(),
                if m.replies.len() == 1 { "y" } else { "ies" }
            ),
        );
        for e in m.replies {
            self.out.push_back(PlatformTransmit {
                gateway: gw.clone(),
                topic: topic_for(gw, e.message_type()),
                envelope: e,
            });
        }
        true
    }

    /// Remembers the replies to `env` queued since `before` (DES-ENV-8).
    fn remember(&mut self, now: Time, gw: &GatewayId, env: &Envelope, before: usize) {
        let replies: Vec<Envelope> = self
            .out
            .iter()
            .skip(before)
            .filter(|t| {
                t.gateway == *gw && t.envelope.in_reply_to.as_ref() == Some(&env.message_id)
            })
            .map(|t| t.envelope.clone())
            .collect();
        // A request answered with no reply is not remembered, except an `anomaly` recorded
        // (de-duplicated by message ID).
        let recorded_anomaly =
            matches!(env.body, Body::Anomaly(_)) && self.sessions.get(gw).is_some_and(|s| s.online);
        if replies.is_empty() && !recorded_anomaly {
            return;
        }
        // Nor a transient refusal of `data`: its retransmission, under the same messageId,
        // must be processed again (DES-ENV-8, DES-MSG-DATA-2/3).
        if replies.iter().any(|r| {
            matches!(r.body, Body::DataAck(_))
                && r.result
                    .as_ref()
                    .is_some_and(|o| matches!(o.code, ResultCode::Busy | ResultCode::Internal))
        }) {
            return;
        }
        // Exact: no entry younger than REPLY_MEMORY_SEC is evicted (DES-ENV-8).
        self.memory.entry(gw.clone()).or_default().insert(
            env.message_id.clone(),
            Remembered {
                at: now,
                ty: env.message_type(),
                timestamp: env.timestamp,
                replies,
            },
        );
    }

    /// Forgets replies older than [`REPLY_MEMORY_SEC`].
    fn expire_memory(&mut self, now: Time, gw: &GatewayId) {
        let horizon = secs(REPLY_MEMORY_SEC);
        if let Some(mem) = self.memory.get_mut(gw) {
            mem.retain(|_, r| now - r.at < horizon);
            if mem.is_empty() {
                self.memory.remove(gw);
            }
        }
    }

    fn log(&mut self, gw: &GatewayId, rule: &str, detail: String) {
        self.events.push_back(PlatformEvent::Logged {
            gateway: gw.clone(),
            rule: rule.into(),
            detail,
        });
    }

    fn max_version(&self) -> u32 {
        self.cfg
            .versions
            .iter()
            .copied()
            .max()
            .unwrap_or(PROTOCOL_VERSION)
    }

    fn connect_result_body(&self, gw: &GatewayId, version: u32) -> Body {
        let through = self
            .sessions
            .get(gw)
            .map_or(0, |s| s.received.contiguous_from_one());
        Body::ConnectResult(ConnectResult {
            version,
            monitor_interval_sec: self.cfg.monitor_interval_sec,
            ack_timeout_sec: self.cfg.ack_timeout_sec,
            acked_through: through,
        })
    }

    /// The body of a `connect.result` that opens no session: the platform's defaults and
    /// `ackedThrough` 0, which acknowledges nothing (DES-MSG-CONN-2, DES-MSG-2).
    fn refused_connect_body(&self) -> Body {
        Body::ConnectResult(ConnectResult {
            version: self.max_version(),
            monitor_interval_sec: self.cfg.monitor_interval_sec,
            ack_timeout_sec: self.cfg.ack_timeout_sec,
            acked_through: 0,
        })
    }

    fn on_connect(&mut self, now: Time, gw: &GatewayId, env: &Envelope, c: &Connect) {
        let common = c
            .versions
            .iter()
            .copied()
            .filter(|v| self.cfg.versions.contains(v))
            .max();
        let Some(version) = common else {
            let body = self.refused_connect_body();
            self.reply(
                now,
                gw,
                &env.message_id,
                Outcome::new(
                    ResultCode::UnsupportedVersion,
                    "DES-VER-4: no common protocol version",
                ),
                body,
            );
            return;
        };
        let s = self.sessions.entry(gw.clone()).or_insert_with(Session::new);
        let new_epoch = s.epoch.as_ref() != Some(&c.epoch);
        if !new_epoch && let Some(why) = epoch_refusal(s, c) {
            // DES-MSG-CONN-4: the same epoch going backwards is a store restored from a
            // backup; its message IDs and seqs would repeat earlier ones. The epoch is
            // retired: a later connect that caught up is refused too.
            s.retired = true;
            self.record_anomaly(
                now,
                Some(gw.clone()),
                AnomalyKind::Storage,
                DES_MSG_CONN_4.into(),
                format!(
                    "connect {} refused: {why}; operator remedy: `sgw new-epoch`",
                    env.message_id
                ),
                false,
            );
            self.reply(
                now,
                gw,
                &env.message_id,
                Outcome::new(
                    ResultCode::InvalidState,
                    format!("{DES_MSG_CONN_4}: {}: restored from a backup?", why.short()),
                ),
                self.refused_connect_body(),
            );
            return;
        }
        let Some(s) = self.sessions.get_mut(gw) else {
            return;
        };
        if new_epoch {
            s.begin_epoch(c.epoch.clone());
            // Message IDs of the old epoch may repeat in the new one (DES-MSG-CONN-4).
            self.memory.remove(gw);
        }
        s.online = true;
        s.version = version;
        s.boot_count = c.boot_count;
        s.reported_last = s.reported_last.max(c.last_seq);
        s.last_command_seq = s.last_command_seq.max(c.periodic.command_seq);
        if c.periodic.command_seq >= s.periodic.command_seq {
            s.periodic = setting_of(&c.periodic);
        }
        for p in &mut s.pending {
            p.send_at = Some(now);
        }
        self.events.push_back(PlatformEvent::GatewayConnected {
            gateway: gw.clone(),
            epoch: c.epoch.clone(),
            new_epoch,
            boot_count: c.boot_count,
            version,
        });
        let body = self.connect_result_body(gw, version);
        self.reply(now, gw, &env.message_id, Outcome::ok(), body);
        self.flush_pending(now, gw);
    }

    fn on_periodic_result(
        &mut self,
        now: Time,
        gw: &GatewayId,
        env: &Envelope,
        state: &PeriodicState,
    ) {
        // Every result is acknowledged, duplicates too (IF-PSTART-4).
        self.reply(now, gw, &env.message_id, Outcome::ok(), Body::Ack(Empty {}));
        let Some(s) = self.sessions.get_mut(gw) else {
            return;
        };
        if state.command_seq >= s.periodic.command_seq {
            s.periodic = setting_of(state);
        }
        s.last_command_seq = s.last_command_seq.max(state.command_seq);
        let (Some(to), Some(o)) = (&env.in_reply_to, &env.result) else {
            return;
        };
        let Some(pos) = s.pending.iter().position(|p| p.ids.contains(to)) else {
            return;
        };
        let p = s.pending.remove(pos);
        let code = match o.code {
            ResultCode::Superseded if p.command_seq == Some(state.command_seq) => ResultCode::Ok,
            c => c,
        };
        // Older start/stop commands can only be superseded now: stop retrying them.
        if code == ResultCode::Ok {
            let applied = state.command_seq;
            s.pending
                .retain(|q| q.command_seq.is_none_or(|n| n > applied));
        }
        self.events.push_back(PlatformEvent::CommandCompleted {
            gateway: gw.clone(),
            command: p.command,
            command_seq: p.command_seq,
            code,
        });
    }

    fn on_resend_result(&mut self, now: Time, gw: &GatewayId, env: &Envelope) {
        let Some(s) = self.sessions.get_mut(gw) else {
            return;
        };
        let (Some(to), Some(o)) = (&env.in_reply_to, &env.result) else {
            return;
        };
        let Some(pos) = s.pending.iter().position(|p| p.ids.contains(to)) else {
            return;
        };
        let p = s.pending.remove(pos);
        if let Origin::Gap(g) = p.origin {
            if o.code == ResultCode::NotFound {
                s.lost.insert(g);
            }
            // Re-arm: the hole is looked at again one grace period from now.
            s.gaps
                .retain(|(h, _)| super::flow::intersect(*h, g).is_none());
            s.gaps.push((g, now));
        }
        self.events.push_back(PlatformEvent::CommandCompleted {
            gateway: gw.clone(),
            command: p.command,
            command_seq: None,
            code: o.code,
        });
    }

    fn on_data(
        &mut self,
        now: Time,
        gw: &GatewayId,
        env: &Envelope,
        d: &Data,
        profile: Option<ProfileVerdict>,
    ) {
        let (dataset, range) = (d.dataset.clone(), d.range);
        let ack = Body::DataAck(DataAck { range });
        let Some(epoch) = self.sessions.get(gw).and_then(|s| s.epoch.clone()) else {
            return;
        };
        if d.epoch != epoch {
            // DES-MSG-CONN-4: its seqs are of another sequence space; not stored.
            self.record_anomaly(
                now,
                Some(gw.clone()),
                AnomalyKind::Storage,
                DES_MSG_CONN_4.into(),
                format!(
                    "data {} of epoch {} refused: the session's epoch is {epoch}",
                    env.message_id, d.epoch
                ),
                false,
            );
            self.reply(
                now,
                gw,
                &env.message_id,
                Outcome::new(
                    ResultCode::InvalidState,
                    format!(
                        "{DES_MSG_CONN_4}: data of epoch {}, the session's is {epoch}",
                        d.epoch
                    ),
                ),
                ack,
            );
            return;
        }
        if self
            .registered
            .get(gw)
            .is_some_and(|r| !r.contains(&dataset))
        {
            self.record_anomaly(
                now,
                Some(gw.clone()),
                AnomalyKind::Malformed,
                "DES-MSG-DATA-1".into(),
                format!(
                    "data {} of dataset {dataset}, not registered for the gateway",
                    env.message_id
                ),
                false,
            );
            self.reply(
                now,
                gw,
                &env.message_id,
                Outcome::new(
                    ResultCode::UnknownDataset,
                    format!("DES-MSG-DATA-1: dataset {dataset} is not registered for {gw}"),
                ),
                ack,
            );
            return;
        }
        if let Some(ProfileVerdict::Refused(code)) = profile {
            let reason = match code {
                ResultCode::Busy => {
                    "DES-MSG-DATA-2: the platform cannot store now; send it again".to_owned()
                }
                code => format!("DES-MSG-DATA-2: not stored ({})", code.as_str()),
            };
            self.reply(now, gw, &env.message_id, Outcome::new(code, reason), ack);
            return;
        }
        let refused = match profile {
            Some(ProfileVerdict::Verified) => None,
            Some(ProfileVerdict::Mismatch) => Some((
                AnomalyKind::Malformed,
                "DES-MSG-DATA-1",
                ResultCode::Malformed,
                "profile header does not match the message",
            )),
            Some(ProfileVerdict::Failed | ProfileVerdict::Refused(_)) | None => Some((
                AnomalyKind::Security,
                "SEC-JSON-SIG-2",
                ResultCode::SecurityFailed,
                "profile failed to open",
            )),
        };
        if let Some((kind, rule, code, why)) = refused {
            self.record_anomaly(
                now,
                Some(gw.clone()),
                kind,
                rule.into(),
                format!("data {} {why}", env.message_id),
                false,
            );
            let reason = match code {
                ResultCode::Malformed => format!("DES-MSG-DATA-1: {why}"),
                _ => format!("DES-PROF-4/7: {why}"),
            };
            self.reply(now, gw, &env.message_id, Outcome::new(code, reason), ack);
            return;
        }
        if let Some(s) = self.sessions.get_mut(gw) {
            let new = s.received.missing_in(range);
            s.received.insert(range);
            for r in new {
                *s.per_dataset.entry(dataset.clone()).or_insert(0) += r.len();
                self.events.push_back(PlatformEvent::StoreRecords {
                    gateway: gw.clone(),
                    epoch: epoch.clone(),
                    dataset: dataset.clone(),
                    range: r,
                });
            }
        }
        self.reply(now, gw, &env.message_id, Outcome::ok(), ack);
        self.check_gaps(now, gw);
    }

    /// Tracks holes; requests those older than the grace period (SM-RESEND).
    fn check_gaps(&mut self, now: Time, gw: &GatewayId) {
        let grace = secs(self.cfg.gap_grace_sec);
        let Some(s) = self.sessions.get_mut(gw) else {
            return;
        };
        let current = s.current_gaps();
        let old = std::mem::take(&mut s.gaps);
        s.gaps = current
            .into_iter()
            .map(|g| {
                let since = old
                    .iter()
                    .filter(|(h, _)| super::flow::intersect(*h, g).is_some())
                    .map(|(_, t)| *t)
                    .min()
                    .unwrap_or(now);
                (g, since)
            })
            .collect();
        if !s.online {
            return;
        }
        let due: Vec<SeqRange> = s
            .gaps
            .iter()
            .filter(|(g, since)| *since + grace <= now && !gap_requested(s, *g))
            .map(|(g, _)| *g)
            .collect();
        for g in due {
            self.queue(
                now,
                gw,
                Command::Resend {
                    dataset: None,
                    selector: ResendSelector::Seq(g),
                },
                Origin::Gap(g),
            );
        }
    }
}

/// `text` cut to at most [`MAX_TEXT_BYTES`] on a character boundary (DES-ENV-6).
fn clip_text(mut text: String) -> String {
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The rule of storage epochs (DES-ID-5): named in refusals and anomalies.
const DES_MSG_CONN_4: &str = "DES-MSG-CONN-4";

/// Why a `connect` in the gateway's current epoch is refused (DES-MSG-CONN-4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum EpochRefusal {
    /// DES-MSG-CONN-4: `bootCount` below the highest accepted in the epoch.
    #[error("bootCount went backwards ({boot} after {highest}) in epoch {epoch}")]
    BootCount {
        boot: u64,
        highest: u64,
        epoch: StoreEpoch,
    },
    /// DES-MSG-CONN-4: `lastSeq` below the highest seq held in the epoch.
    #[error("lastSeq went backwards ({last} below seq {held} held) in epoch {epoch}")]
    LastSeq {
        last: Seq,
        held: Seq,
        epoch: StoreEpoch,
    },
    /// DES-MSG-CONN-4: an earlier `connect` in the epoch was refused; the epoch is retired.
    #[error("epoch {epoch} is retired after a refused connect")]
    Retired { epoch: StoreEpoch },
}

impl EpochRefusal {
    /// The words of the `connect.result` reason (protocol.md DES-MSG-CONN-4).
    fn short(&self) -> &'static str {
        match self {
            EpochRefusal::BootCount { .. } => "bootCount went backwards",
            EpochRefusal::LastSeq { .. } => "lastSeq went backwards",
            EpochRefusal::Retired { .. } => "epoch retired after a refused connect",
        }
    }
}

/// Whether a `connect` in the gateway's current epoch is refused (DES-MSG-CONN-4): its
/// `bootCount` is below the highest accepted in the epoch, or its `lastSeq` below the highest
/// seq held in it. An equal `bootCount` is a connect of the same process, accepted.
fn epoch_refusal(s: &Session, c: &Connect) -> Option<EpochRefusal> {
    if s.retired {
        return Some(EpochRefusal::Retired {
            epoch: c.epoch.clone(),
        });
    }
    if c.boot_count < s.boot_count {
        return Some(EpochRefusal::BootCount {
            boot: c.boot_count,
            highest: s.boot_count,
            epoch: c.epoch.clone(),
        });
    }
    match s.received.max() {
        Some(held) if c.last_seq < held => Some(EpochRefusal::LastSeq {
            last: c.last_seq,
            held,
            epoch: c.epoch.clone(),
        }),
        _ => None,
    }
}

/// Whether this up message type goes into the reply memory (DES-ENV-8): the requests
/// answered with a reply, the start/stop results answered with `ack`, and `anomaly` (no
/// reply; remembered so that a duplicate is not recorded twice).
fn remembers_replies(ty: MessageType) -> bool {
    matches!(
        ty,
        MessageType::Connect
            | MessageType::Disconnect
            | MessageType::Data
            | MessageType::PeriodicStartResult
            | MessageType::PeriodicStopResult
            | MessageType::Anomaly
    )
}

fn gap_requested(s: &Session, g: SeqRange) -> bool {
    s.pending
        .iter()
        .any(|p| matches!(p.origin, Origin::Gap(h) if super::flow::intersect(h, g).is_some()))
}

fn setting_of(p: &PeriodicState) -> PeriodicSetting {
    PeriodicSetting {
        running: p.running,
        datasets: p.datasets.clone(),
        interval_sec: p.interval_sec,
        format: p.format,
        command_seq: p.command_seq,
    }
}
