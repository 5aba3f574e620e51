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
//! Rules:
//! - `connect` is accepted only if envelope `gatewayId` == topic tenant == authenticated
//!   sender (DES-ENV-4) and its timestamp is within ±300 s of `now` (else `STALE`, DES-ENV-7); the session version is the highest common one, none →
//!   `UNSUPPORTED_VERSION` (DES-VER-4). `connect.result` carries `ackedThrough`, the
//!   highest seq received contiguously from 1.
//! - Commands are numbered with `commandSeq`, strictly increasing per gateway and never below
//!   what the gateway reports as applied (DES-MSG-PS-4). A command not answered within
//!   [`PlatformConfig::command_retry_sec`] — or outstanding when the gateway reconnects — is
//!   sent again under a new message ID with the same `commandSeq`; a `SUPERSEDED` answer whose
//!   state carries the command's own `commandSeq` means it was already applied.
//! - Start/stop results are answered with `ack` (IF-PSTART-4). `data` is answered with
//!   `data.ack` for the same range: `OK` once stored (duplicates too, whether sent again under
//!   the same or a new message ID: records are kept by seq, DES-MSG-DATA-3), `SECURITY_FAILED`
//!   if the profile failed to open (DES-PROF-4/7), `MALFORMED` if its header does not match
//!   the message (DES-MSG-DATA-1) — neither stored, anomaly recorded — and `UNAUTHORIZED`
//!   outside a session (DES-MSG-CONN-3).
//! - Received seqs are tracked per gateway; a hole below the highest known seq (received or
//!   reported in `connect`/`monitor.status`) that persists for [`PlatformConfig::gap_grace_sec`]
//!   is requested with `resend.request` by seq range; a `NOT_FOUND` answer marks it lost.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};

use super::flow::{InboundError, RangeSet, STALE_WINDOW_SEC, Time, secs};
use super::gateway_side::PeriodicSetting;
use super::ids::{Dataset, GatewayId, MessageId, Seq, SeqRange};
use super::message::{
    AnomalyKind, Body, ConnectResult, DataAck, DataKind, Empty, Envelope, MessageType,
    MonitorStatus, Outcome, PROTOCOL_VERSION, PeriodicStart, PeriodicState, PeriodicStop,
    ProfileFormat, ResendRequest, ResultCode, TimeRange,
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
    /// Most requests per gateway whose replies are remembered (DES-ENV-8); beyond it the
    /// oldest are forgotten early (a forgotten duplicate is processed again, which every
    /// platform request tolerates: records are kept by seq, connect and disconnect are
    /// idempotent).
    pub reply_memory_max: usize,
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
            reply_memory_max: 10_000,
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
    /// Newly received records: the adapter stores the opened profile's records of `range`.
    StoreRecords {
        /// From.
        gateway: GatewayId,
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
    /// Boot count reported at the last connect.
    pub boot_count: u64,
    /// Periodic state as last reported by the gateway.
    pub periodic: PeriodicState,
    /// The last `commandSeq` assigned.
    pub last_command_seq: u64,
    /// Commands sent and not answered yet.
    pub pending_commands: Vec<Command>,
    /// Every seq received.
    pub received: RangeSet,
    /// Records received per dataset.
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
    boot_count: u64,
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
}

impl Hash for Session {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.online.hash(h);
        self.version.hash(h);
        self.boot_count.hash(h);
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
            boot_count: 0,
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
        }
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

/// Per gateway: request message ID → its replies, oldest first by processing time.
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
}

/// Hashes what influences future behaviour (for model checking); output envelopes by ID.
impl Hash for PlatformCore {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.next_msg.hash(h);
        self.sessions.hash(h);
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
            PlatformInbound::Refused { topic, error, .. } => {
                let gw = parse_topic(&topic).ok().map(|p| p.gateway);
                self.record_anomaly(
                    now,
                    gw,
                    error.anomaly_kind(),
                    error.rule().into(),
                    format!("{} refused: {error}", error.result_code().as_str()),
                    false,
                );
            }
            PlatformInbound::Opened {
                topic,
                envelope,
                sender,
                profile,
            } => self.handle_opened(now, &topic, envelope, sender, profile),
        }
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
                Body::Connect(_) => Some(self.connect_result_body(&sender, self.max_version())),
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
                let body = self.connect_result_body(gw, self.max_version());
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
            Body::PeriodicStartResult(state) | Body::PeriodicStopResult(state) => {
                self.on_periodic_result(now, gw, env, state);
            }
            Body::ResendResult(_) => self.on_resend_result(now, gw, env),
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
            Body::MonitorStatus(_) | Body::Anomaly(_) if !online => {
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
            Body::Data(d) => {
                self.on_data(now, gw, env, d.dataset.clone(), d.range, d.kind, profile)
            }
            Body::MonitorStatus(m) => {
                if let Some(s) = self.sessions.get_mut(gw) {
                    s.reported_last = s.reported_last.max(m.last_seq);
                    s.last_status = Some((now, m.clone()));
                }
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
        if replies.is_empty() {
            return;
        }
        let max = self.cfg.reply_memory_max.max(1);
        let mem = self.memory.entry(gw.clone()).or_default();
        mem.insert(
            env.message_id.clone(),
            Remembered {
                at: now,
                ty: env.message_type(),
                timestamp: env.timestamp,
                replies,
            },
        );
        while mem.len() > max {
            let Some(oldest) = mem
                .iter()
                .min_by_key(|(_, r)| r.at)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            mem.remove(&oldest);
        }
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

    fn on_connect(
        &mut self,
        now: Time,
        gw: &GatewayId,
        env: &Envelope,
        c: &super::message::Connect,
    ) {
        let common = c
            .versions
            .iter()
            .copied()
            .filter(|v| self.cfg.versions.contains(v))
            .max();
        let Some(version) = common else {
            let body = self.connect_result_body(gw, self.max_version());
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
        if c.boot_count < s.boot_count {
            // A delayed connect of an earlier process: answer, change nothing.
            let body = self.connect_result_body(gw, version);
            self.reply(now, gw, &env.message_id, Outcome::ok(), body);
            return;
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

    #[allow(clippy::too_many_arguments)]
    fn on_data(
        &mut self,
        now: Time,
        gw: &GatewayId,
        env: &Envelope,
        dataset: Dataset,
        range: SeqRange,
        _kind: DataKind,
        profile: Option<ProfileVerdict>,
    ) {
        let ack = Body::DataAck(DataAck { range });
        let refused = match profile {
            Some(ProfileVerdict::Verified) => None,
            Some(ProfileVerdict::Mismatch) => Some((
                AnomalyKind::Malformed,
                "DES-MSG-DATA-1",
                ResultCode::Malformed,
                "profile header does not match the message",
            )),
            Some(ProfileVerdict::Failed) | None => Some((
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

/// Whether replies to this up message type are remembered for duplicates (DES-ENV-8): the
/// requests answered with a reply, and the start/stop results answered with `ack`.
fn remembers_replies(ty: MessageType) -> bool {
    matches!(
        ty,
        MessageType::Connect
            | MessageType::Disconnect
            | MessageType::Data
            | MessageType::PeriodicStartResult
            | MessageType::PeriodicStopResult
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
