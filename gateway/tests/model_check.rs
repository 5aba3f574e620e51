//! Exhaustive model checking (stateright 0.31, BFS) of the real [`GatewayCore`] and
//! [`PlatformCore`] talking over a lossy, duplicating, reordering network, with tampered and
//! forged messages and a gateway restart (IF-PSTART-2, IF-PSEND-3, IF-RESEND-1, ST-STORE-1,
//! ST-PROVIDE-1, SC-START-1, SC-STOP-1, DES-ID-4, DES-MSG-PS-4, SM-RESEND).
//!
//! The model state is both cores (the code itself, not a re-implementation), the multiset of
//! messages in flight, the remaining fault budget and a *ghost*: what an omniscient observer
//! knows independently of the cores (every range ever ingested, the highest sequence number
//! handed out, and which start/stop is the latest authentic one delivered). Actions: deliver,
//! drop, duplicate or tamper with any message in flight (so any order is possible), inject a
//! forged command for another gateway, ingest a batch, fire the next timer (time jumps to the
//! earliest deadline of either core), restart the gateway from its snapshot, and the operator's
//! stop and resend commands. The platform has a start queued from the beginning.
//!
//! Properties (all checked on every reachable state):
//! - *only authentic commands change periodic state*: the gateway's running flag and applied
//!   commandSeq equal the ghost's (tampered → `Refused`, forged → wrong gateway ID);
//! - *stored records are kept until acknowledged, and only acknowledged once received*;
//! - *sequence numbers strictly increase and are never reused* (also across the restart);
//! - *periodic data only while started* (ghost's view of the latest authentic command);
//! - *data carries one dataset's stored records*; *resend returns exactly the requested records*;
//! - liveness, *a reliable continuation acknowledges every stored record*: from every
//!   reachable state, delivering every message and firing timers in order (no more faults;
//!   the operator starts periodic sending again if it is stopped) reaches a state where every
//!   ingested record is acknowledged at the gateway. An `eventually` property would not do:
//!   with loss on every path it is false, which is why the check is "can still succeed".
//!
//! Bounds: five scenarios ([`Bounds::scenarios`]), each explored exhaustively; the default
//! run (~300 000 states) takes about 20 s in a debug build; `SGW_MODEL_BIG=1` raises every
//! bound by one step. Each direction of the network is a FIFO queue whose oldest message can
//! be delivered, lost, duplicated (the copy arrives last) or tampered with; any other message
//! can overtake it only by spending the reordering budget, so reordering is bounded rather
//! than free — the classic reduction that keeps the space finite and small. State counts are
//! in `docs/model-checking.md`. `SGW_MODEL_ONLY=<name part>`, `SGW_MODEL_TICKS=n` and
//! `SGW_MODEL_LIMIT=n` help when exploring.
//!
//! Each property can fail: the `checker_finds_*` tests run the same model with a
//! [`Mutation`] (a deliberately broken adapter or store wrapped around the unchanged cores)
//! and assert that the checker reports a counterexample for the property concerned.
//!
//! Fingerprints: stateright deduplicates by a 64-bit hash. The cores hash envelopes by message
//! ID, which within one sender names one envelope, so the hash is as discriminating as the
//! state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use chrono::DateTime;
use gateway::protocol::flow::{InboundError, RangeSet, Time};
use gateway::protocol::gateway_side::{
    GatewayConfig, GatewayCore, GatewaySnapshot, Inbound, Transmit,
};
use gateway::protocol::message::{
    Body, DataKind, Envelope, MessageType, PROTOCOL_VERSION, PeriodicStop, ProfileFormat,
    ResultCode,
};
use gateway::protocol::platform_side::{
    PlatformConfig, PlatformCore, PlatformInbound, ProfileVerdict, ResendSelector,
};
use gateway::protocol::topic::topic_for;
use gateway::protocol::{Dataset, GatewayId, MessageId, SeqRange, StoreEpoch};
use stateright::{Checker, HasDiscoveries, Model, Property};

const GW: &str = "GW0001";
const DATASETS: [(&str, u64); 2] = [("billing", 2), ("ledger", 1)];

fn epoch() -> StoreEpoch {
    StoreEpoch::from_bytes([0x5a; 16])
}
fn t0() -> Time {
    DateTime::parse_from_rfc3339("2026-11-22T09:00:00+09:00").unwrap()
}
fn at(s: i64) -> Time {
    t0() + chrono::Duration::seconds(s)
}
fn gw() -> GatewayId {
    GatewayId::new(GW).unwrap()
}
fn ds(i: usize) -> Dataset {
    Dataset::new(DATASETS[i].0).unwrap()
}
fn gcfg() -> GatewayConfig {
    GatewayConfig {
        max_records_per_message: 2,
        ..GatewayConfig::new(gw(), vec![ds(0), ds(1)])
    }
}
fn pcfg() -> PlatformConfig {
    PlatformConfig {
        monitor_interval_sec: 120,
        ack_timeout_sec: 20,
        command_retry_sec: 30,
        gap_grace_sec: 40,
        ..PlatformConfig::default()
    }
}
/// The stand-in for a sealed profile: what the platform's verification recomputes.
fn profile(dataset: &Dataset, range: SeqRange) -> String {
    format!("{GW}|{dataset}|{}-{}", range.first, range.last)
}

/// A deliberately broken piece around the cores, to show each property can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mutation {
    /// Nothing broken.
    None,
    /// The adapter hands a message that failed verification to the core as opened.
    ActOnUnverified,
    /// The store did not persist before acknowledging uploads: a restart comes back with the
    /// snapshot taken at the previous boot.
    RestartFromBootSnapshot,
    /// The adapter builds resend data one record too long.
    ResendOneTooMany,
    /// The adapter never hands `data.ack` to the core.
    DropDataAcks,
    /// The store persists the periodic setting as running whatever it was.
    PersistRunning,
    /// The adapter labels every data message with the first provisioned dataset.
    WrongDataset,
}

/// Fault and input budget.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bounds {
    ingests: u8,
    restarts: u8,
    drops: u8,
    dups: u8,
    tampers: u8,
    forges: u8,
    ticks: u8,
    stops: u8,
    resends: u8,
    /// Deliveries of a message other than the oldest one of its direction.
    reorders: u8,
    max_in_flight: usize,
}

impl Bounds {
    const NONE: Bounds = Bounds {
        ingests: 0,
        restarts: 0,
        drops: 0,
        dups: 0,
        tampers: 0,
        forges: 0,
        ticks: 0,
        stops: 0,
        resends: 0,
        reorders: 0,
        max_in_flight: 3,
    };

    /// The default run: four scenarios, each exhaustive within its bounds. Splitting the
    /// faults over scenarios keeps each state space small enough for a debug build while
    /// every fault meets every flow it matters to.
    fn scenarios(big: bool) -> Vec<(&'static str, Bounds)> {
        let extra = u8::from(big);
        vec![
            (
                "lossy, duplicating network",
                Bounds {
                    ingests: 2,
                    drops: 1,
                    dups: 1,
                    reorders: extra,
                    ticks: 2 + extra,
                    ..Self::NONE
                },
            ),
            (
                "reordering, lossy network",
                Bounds {
                    ingests: 2,
                    drops: 1,
                    reorders: 1 + extra,
                    ticks: 2 + extra,
                    ..Self::NONE
                },
            ),
            (
                "restart with loss",
                Bounds {
                    ingests: 2,
                    restarts: 1,
                    drops: 1,
                    dups: extra,
                    ticks: 2 + extra,
                    ..Self::NONE
                },
            ),
            (
                "tampered and forged commands, stop",
                Bounds {
                    ingests: 1,
                    tampers: 1,
                    forges: 1,
                    stops: 1,
                    dups: extra,
                    ticks: 2 + extra,
                    ..Self::NONE
                },
            ),
            (
                "resend with loss",
                Bounds {
                    ingests: 2,
                    resends: 1,
                    drops: 1,
                    stops: extra,
                    ticks: 2 + extra,
                    ..Self::NONE
                },
            ),
        ]
    }
}

/// A message in flight.
#[derive(Clone, Debug, PartialEq)]
struct Pkt {
    up: bool,
    topic: String,
    env: Envelope,
}

impl Hash for Pkt {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.up.hash(h);
        self.topic.hash(h);
        self.env.message_id.hash(h);
        self.env.gateway_id.hash(h);
    }
}

/// What an omniscient observer knows, independently of the cores.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct Ghost {
    ingested: Vec<(Dataset, SeqRange)>,
    max_seq: u64,
    running: bool,
    applied: u64,
    violations: BTreeSet<&'static str>,
    resend_results_seen: BTreeSet<MessageId>,
    boot_snapshot: Option<GatewaySnapshot>,
    restarted: bool,
    /// Every resend request the platform sent: its ID and seq range.
    resend_requests: Vec<(MessageId, SeqRange)>,
    /// First transmissions of periodic data (ID, first, last seq): a retransmission must
    /// repeat one.
    periodic_sent: BTreeSet<(MessageId, u64, u64)>,
}

impl State {
    fn push(&mut self, p: Pkt) {
        let q = usize::from(!p.up);
        self.net[q].push(p);
    }
}

impl Ghost {
    fn requested(&self, id: &MessageId) -> Option<SeqRange> {
        self.resend_requests
            .iter()
            .find(|(q, _)| q == id)
            .map(|(_, r)| *r)
    }
}

#[derive(Clone, Debug, PartialEq, Hash)]
struct State {
    now: i64,
    gw: GatewayCore,
    pf: PlatformCore,
    /// Messages in flight: `net[0]` up (to the platform), `net[1]` down, oldest first.
    net: [Vec<Pkt>; 2],
    left: Bounds,
    ghost: Ghost,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    /// Deliver the oldest message of queue 0 (up) or 1 (down).
    Deliver(usize),
    /// Deliver a younger message of a queue (spends the reordering budget).
    Overtake(usize, usize),
    /// Lose the oldest message of a queue.
    Drop(usize),
    /// Duplicate the oldest message of a queue; the copy arrives last.
    Duplicate(usize),
    /// Tamper with the oldest message of a queue: its opening fails.
    Tamper(usize),
    Forge,
    Ingest(usize),
    Tick,
    Restart,
    OperatorStop,
    OperatorResend,
}

const P_AUTHENTIC: &str = "only authentic commands change periodic state";
const P_STORED: &str =
    "stored records are kept until acknowledged, and only acknowledged once received";
const P_SEQ: &str = "sequence numbers strictly increase and are never reused";
const P_PERIODIC: &str = "periodic data only while started";
const P_DATA: &str = "data carries one dataset's stored records";
const P_RESEND: &str = "resend returns exactly the requested records";
const P_LIVE: &str = "a reliable continuation acknowledges every stored record";

const RESEND_RANGE: SeqRange = SeqRange { first: 1, last: 2 };

struct Sys {
    bounds: Bounds,
    mutation: Mutation,
}

impl Sys {
    fn init(&self) -> State {
        let mut gwc = GatewayCore::new(gcfg(), epoch(), t0());
        let mut pf = PlatformCore::new(pcfg());
        pf.command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
            .unwrap();
        gwc.handle_connected(t0());
        let ghost = Ghost {
            boot_snapshot: Some(gwc.snapshot()),
            ..Ghost::default()
        };
        let mut s = State {
            now: 0,
            gw: gwc,
            pf,
            net: [Vec::new(), Vec::new()],
            left: self.bounds.clone(),
            ghost,
        };
        self.collect(&mut s);
        s
    }

    /// Moves every output of both cores into the network, checking what the gateway sends.
    fn collect(&self, s: &mut State) {
        let mut resend_results = Vec::new();
        let mut resend_data: Vec<(MessageId, SeqRange)> = Vec::new();
        while let Some(t) = s.gw.poll_transmit() {
            match t {
                Transmit::Message { topic, envelope } => {
                    if let (Body::ResendResult(rr), Some(to)) =
                        (&envelope.body, &envelope.in_reply_to)
                        && !s.ghost.resend_results_seen.contains(&envelope.message_id)
                    {
                        s.ghost
                            .resend_results_seen
                            .insert(envelope.message_id.clone());
                        let busy = envelope
                            .result
                            .as_ref()
                            .is_some_and(|o| o.code == ResultCode::Busy);
                        resend_results.push((to.clone(), rr.records, rr.messages, busy));
                    }
                    s.push(Pkt {
                        up: true,
                        topic,
                        env: envelope,
                    });
                }
                Transmit::Data(mut d) => {
                    if self.mutation == Mutation::ResendOneTooMany && d.kind == DataKind::Resend {
                        d.range.last += 1;
                    }
                    if self.mutation == Mutation::WrongDataset {
                        d.dataset = ds(0);
                    }
                    // New periodic messages only while started; retransmissions of
                    // messages sent while started continue after a stop (§6.5).
                    if d.kind == DataKind::Periodic {
                        let key = (d.message_id.clone(), d.range.first, d.range.last);
                        if d.retransmission {
                            if !s.ghost.periodic_sent.contains(&key) {
                                s.ghost.violations.insert(P_PERIODIC);
                            }
                        } else if s.ghost.running {
                            s.ghost.periodic_sent.insert(key);
                        } else {
                            s.ghost.violations.insert(P_PERIODIC);
                        }
                    }
                    let stored = s
                        .ghost
                        .ingested
                        .iter()
                        .filter(|(x, _)| *x == d.dataset)
                        .fold(RangeSet::new(), |mut acc, (_, r)| {
                            acc.insert(*r);
                            acc
                        });
                    if !stored.contains_range(d.range) {
                        s.ghost.violations.insert(P_DATA);
                    }
                    if d.kind == DataKind::Resend {
                        // Retransmissions too: never outside the requested range.
                        let asked = d.request.as_ref().and_then(|q| s.ghost.requested(q));
                        match (asked, &d.request) {
                            (Some(a), Some(q))
                                if a.first <= d.range.first && d.range.last <= a.last =>
                            {
                                resend_data.push((q.clone(), d.range));
                            }
                            _ => {
                                s.ghost.violations.insert(P_RESEND);
                            }
                        }
                    }
                    let p = profile(&d.dataset, d.range);
                    let topic = d.topic.clone();
                    s.push(Pkt {
                        up: true,
                        topic,
                        env: d.into_envelope(p),
                    });
                }
            }
        }
        // Exactly the requested records, each once, in as many messages as announced.
        for (req, records, messages, busy) in resend_results {
            let Some(asked) = s.ghost.requested(&req) else {
                s.ghost.violations.insert(P_RESEND);
                continue;
            };
            if busy {
                // BUSY (one resend at a time, DES-MSG-RS-2): nothing announced, nothing sent.
                if records != 0 || messages != 0 || resend_data.iter().any(|(q, _)| *q == req) {
                    s.ghost.violations.insert(P_RESEND);
                }
                continue;
            }
            let mut expected = RangeSet::new();
            for (_, r) in &s.ghost.ingested {
                if let Some(x) = SeqRange::new(r.first.max(asked.first), r.last.min(asked.last)) {
                    expected.insert(x);
                }
            }
            let mut got = RangeSet::new();
            let mut sum = 0;
            let mut n = 0;
            for (_, r) in resend_data.iter().filter(|(q, _)| *q == req) {
                got.insert(*r);
                sum += r.len();
                n += 1;
            }
            if got != expected || sum != got.count() || records != sum || messages != n {
                s.ghost.violations.insert(P_RESEND);
            }
        }
        while s.gw.poll_event().is_some() {}
        while let Some(t) = s.pf.poll_transmit() {
            if let Body::ResendRequest(r) = &t.envelope.body
                && let Some(seq) = r.seq
            {
                s.ghost
                    .resend_requests
                    .push((t.envelope.message_id.clone(), seq));
            }
            s.push(Pkt {
                up: false,
                topic: t.topic,
                env: t.envelope,
            });
        }
        while s.pf.poll_event().is_some() {}
    }

    fn deliver(&self, s: &mut State, p: Pkt, tampered: bool) {
        let now = at(s.now);
        if p.up {
            let profile_ok = match &p.env.body {
                Body::Data(d) => Some(if !tampered && d.profile == profile(&d.dataset, d.range) {
                    ProfileVerdict::Verified
                } else {
                    ProfileVerdict::Failed
                }),
                _ => None,
            };
            let inbound = if tampered && profile_ok.is_none() {
                PlatformInbound::Refused {
                    topic: p.topic,
                    error: InboundError::Security,
                    peek: None,
                }
            } else {
                PlatformInbound::Opened {
                    topic: p.topic,
                    envelope: p.env,
                    sender: gw(),
                    profile: profile_ok,
                }
            };
            s.pf.handle_inbound(now, inbound);
        } else {
            if self.mutation == Mutation::DropDataAcks
                && p.env.message_type() == MessageType::DataAck
            {
                return;
            }
            let opened = !tampered || self.mutation == Mutation::ActOnUnverified;
            let authentic = !tampered
                && p.env.gateway_id == gw()
                && p.topic.starts_with(&format!("/tenants/{GW}/"));
            if authentic && s.gw.is_connected() {
                let seq = match &p.env.body {
                    Body::PeriodicStart(c) => Some((c.command_seq, true)),
                    Body::PeriodicStop(c) => Some((c.command_seq, false)),
                    _ => None,
                };
                if let Some((seq, start)) = seq
                    && seq > s.ghost.applied
                {
                    s.ghost.applied = seq;
                    s.ghost.running = start;
                }
            }
            let inbound = if opened {
                Inbound::Opened {
                    topic: p.topic,
                    envelope: p.env,
                }
            } else {
                Inbound::Refused {
                    topic: p.topic,
                    error: InboundError::Security,
                    peek: None,
                }
            };
            s.gw.handle_inbound(now, inbound);
        }
    }

    fn tick(&self, s: &mut State) -> bool {
        let next = [s.gw.poll_timeout(), s.pf.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            return false;
        };
        // Whole seconds, rounded up: the DES-MQTT-8 back-off has millisecond deadlines.
        let secs = ((next - t0()).num_milliseconds() + 999).div_euclid(1000);
        s.now = s.now.max(secs);
        let now = at(s.now);
        s.gw.handle_timeout(now);
        s.pf.handle_timeout(now);
        true
    }

    fn step(&self, s: &mut State, action: Action) {
        let now = at(s.now);
        match action {
            Action::Deliver(q) => {
                let p = s.net[q].remove(0);
                self.deliver(s, p, false);
            }
            Action::Overtake(q, i) => {
                s.left.reorders -= 1;
                let p = s.net[q].remove(i);
                self.deliver(s, p, false);
            }
            Action::Drop(q) => {
                s.net[q].remove(0);
                s.left.drops -= 1;
            }
            Action::Duplicate(q) => {
                let p = s.net[q][0].clone();
                s.push(p);
                s.left.dups -= 1;
            }
            Action::Tamper(q) => {
                let p = s.net[q].remove(0);
                s.left.tampers -= 1;
                self.deliver(s, p, true);
            }
            Action::Forge => {
                s.left.forges -= 1;
                // A stop signed by the platform but addressed to another gateway, replayed
                // onto this gateway's topic (a confused deputy).
                let env = Envelope {
                    version: PROTOCOL_VERSION,
                    message_id: MessageId::new("forged.1").unwrap(),
                    gateway_id: GatewayId::new("GW0002").unwrap(),
                    timestamp: now,
                    in_reply_to: None,
                    result: None,
                    body: Body::PeriodicStop(PeriodicStop { command_seq: 99 }),
                };
                s.push(Pkt {
                    up: false,
                    topic: topic_for(&gw(), MessageType::PeriodicStop),
                    env,
                });
            }
            Action::Ingest(i) => {
                let d = ds(i);
                let covered = s.ghost.running;
                match s.gw.handle_ingest(now, &d, DATASETS[i].1) {
                    Ok(r) => {
                        s.left.ingests -= 1;
                        if !covered {
                            s.ghost.violations.insert(P_PERIODIC);
                        }
                        if r.first <= s.ghost.max_seq || r.len() != DATASETS[i].1 {
                            s.ghost.violations.insert(P_SEQ);
                        }
                        s.ghost.max_seq = s.ghost.max_seq.max(r.last);
                        s.ghost.ingested.push((d, r));
                    }
                    Err(_) => {
                        if covered {
                            s.ghost.violations.insert(P_PERIODIC);
                        }
                    }
                }
            }
            Action::Tick => {
                s.left.ticks -= 1;
                self.tick(s);
            }
            Action::Restart => {
                s.left.restarts -= 1;
                let snap = match (&self.mutation, &s.ghost.boot_snapshot) {
                    (Mutation::RestartFromBootSnapshot, Some(b)) => b.clone(),
                    _ => s.gw.snapshot(),
                };
                let mut snap = snap;
                if self.mutation == Mutation::PersistRunning {
                    snap.periodic.running = true;
                    snap.periodic.interval_sec = snap.periodic.interval_sec.max(10);
                }
                s.gw = GatewayCore::restore(gcfg(), snap, now);
                s.ghost.boot_snapshot = Some(s.gw.snapshot());
                s.ghost.restarted = true;
                s.gw.handle_connected(now);
            }
            Action::OperatorStop => {
                s.left.stops -= 1;
                s.pf.command_stop(now, &gw());
            }
            Action::OperatorResend => {
                s.left.resends -= 1;
                s.pf.command_resend(now, &gw(), None, ResendSelector::Seq(RESEND_RANGE))
                    .unwrap();
            }
        }
        self.collect(s);
    }

    /// Every ingested record is acknowledged at the gateway.
    fn all_acked(s: &State) -> bool {
        let mut acked = RangeSet::new();
        for b in s.gw.batches().iter().filter(|b| b.acked) {
            acked.insert(b.range);
        }
        s.ghost
            .ingested
            .iter()
            .all(|(_, r)| acked.contains_range(*r))
    }

    /// The liveness check: no more faults, everything delivered, timers fired in order.
    fn reliable_continuation_acks_all(&self, s: &State) -> bool {
        if Self::all_acked(s) {
            return true;
        }
        let mut s = s.clone();
        for _ in 0..400 {
            if Self::all_acked(&s) {
                return true;
            }
            if let Some(q) = (0..2).find(|q| !s.net[*q].is_empty()) {
                let p = s.net[q].remove(0);
                self.deliver(&mut s, p, false);
                self.collect(&mut s);
                continue;
            }
            let view = s.pf.gateway(&gw());
            let start_pending = view.as_ref().is_some_and(|v| {
                v.pending_commands
                    .iter()
                    .any(|c| matches!(c, gateway::protocol::platform_side::Command::Start { .. }))
            });
            if !s.gw.periodic().running && !start_pending {
                s.pf.command_start(at(s.now), &gw(), vec![], 10, ProfileFormat::Json)
                    .unwrap();
                self.collect(&mut s);
                continue;
            }
            if !self.tick(&mut s) {
                return false;
            }
            self.collect(&mut s);
        }
        false
    }
}

impl Model for Sys {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.init()]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        // Each direction is a FIFO queue: faults act on its oldest message; any other message
        // can overtake it only by spending the reordering budget (duplicates re-enter at the
        // back, so they arrive late as well).
        for q in 0..2 {
            if s.net[q].is_empty() {
                continue;
            }
            actions.push(Action::Deliver(q));
            if s.left.drops > 0 {
                actions.push(Action::Drop(q));
            }
            if s.left.dups > 0 {
                actions.push(Action::Duplicate(q));
            }
            if s.left.tampers > 0 {
                actions.push(Action::Tamper(q));
            }
            if s.left.reorders > 0 {
                for i in 1..s.net[q].len() {
                    actions.push(Action::Overtake(q, i));
                }
            }
        }
        if s.net[0].len() + s.net[1].len() >= s.left.max_in_flight {
            return;
        }
        if s.left.forges > 0 && s.gw.is_connected() {
            actions.push(Action::Forge);
        }
        if s.left.ingests > 0 && s.gw.periodic().running {
            actions.push(Action::Ingest(0));
            actions.push(Action::Ingest(1));
        }
        if s.left.ticks > 0 && (s.gw.poll_timeout().is_some() || s.pf.poll_timeout().is_some()) {
            actions.push(Action::Tick);
        }
        if s.left.restarts > 0 {
            actions.push(Action::Restart);
        }
        if s.left.stops > 0 && s.gw.is_connected() {
            actions.push(Action::OperatorStop);
        }
        if s.left.resends > 0 && !s.ghost.ingested.is_empty() {
            actions.push(Action::OperatorResend);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        self.step(&mut s, action);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(P_AUTHENTIC, |_, s: &State| {
                s.gw.periodic().running == s.ghost.running
                    && s.gw.periodic().command_seq == s.ghost.applied
            }),
            Property::always(P_STORED, |_, s: &State| {
                let mut stored = RangeSet::new();
                for b in s.gw.batches() {
                    stored.insert(b.range);
                }
                let kept = s.ghost.ingested.iter().all(|(d, r)| {
                    s.gw.batches()
                        .iter()
                        .filter(|b| b.dataset == *d)
                        .fold(RangeSet::new(), |mut a, b| {
                            a.insert(b.range);
                            a
                        })
                        .contains_range(*r)
                });
                let received = s.pf.gateway(&gw()).map(|v| v.received).unwrap_or_default();
                let honest =
                    s.gw.batches()
                        .iter()
                        .filter(|b| b.acked)
                        .all(|b| received.contains_range(b.range));
                kept && honest
            }),
            Property::always(P_SEQ, |_, s: &State| {
                !s.ghost.violations.contains(P_SEQ) && s.gw.last_seq() >= s.ghost.max_seq
            }),
            Property::always(P_PERIODIC, |_, s: &State| {
                !s.ghost.violations.contains(P_PERIODIC)
            }),
            Property::always(P_DATA, |_, s: &State| !s.ghost.violations.contains(P_DATA)),
            Property::always(P_RESEND, |_, s: &State| {
                !s.ghost.violations.contains(P_RESEND)
            }),
            Property::always(P_LIVE, |m: &Sys, s: &State| {
                m.reliable_continuation_acks_all(s)
            }),
            // Vacuity guard: records get acknowledged at all within the bounds.
            Property::sometimes("every ingested record acknowledged", |_, s: &State| {
                !s.ghost.ingested.is_empty() && Sys::all_acked(s)
            }),
        ]
    }
}

fn big() -> bool {
    std::env::var("SGW_MODEL_BIG").is_ok_and(|v| v == "1")
}

/// Fewer states than this means the model lost its reach (a bound or guard went wrong).
const MIN_STATES: usize = 250_000;

#[test]
fn gateway_and_platform_keep_every_safety_and_liveness_property_over_a_lossy_network() {
    let limit = std::env::var("SGW_MODEL_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let only = std::env::var("SGW_MODEL_ONLY").ok();
    let mut total = 0;
    for (name, mut bounds) in Bounds::scenarios(big()) {
        if let Some(t) = std::env::var("SGW_MODEL_TICKS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            bounds.ticks = t;
        }
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let started = std::time::Instant::now();
        let checker = Sys {
            bounds: bounds.clone(),
            mutation: Mutation::None,
        }
        .checker()
        .target_state_count(limit)
        .spawn_bfs()
        .join();
        let unique = checker.unique_state_count();
        println!(
            "model check [{name}]: {unique} unique states ({} visited), max depth {}, {:.1} s, {bounds:?}",
            checker.state_count(),
            checker.max_depth(),
            started.elapsed().as_secs_f64()
        );
        checker.assert_properties();
        total += unique;
    }
    println!("model check: {total} unique states in all");
    if only.is_none() {
        assert!(total >= MIN_STATES, "only {total} states explored");
    }
}

fn find(mutation: Mutation, property: &'static str, scenario: &str) {
    let bounds = Bounds::scenarios(false)
        .into_iter()
        .find(|(n, _)| n.contains(scenario))
        .unwrap()
        .1;
    find_within(mutation, property, bounds);
}

fn find_within(mutation: Mutation, property: &'static str, bounds: Bounds) {
    let checker = Sys { bounds, mutation }
        .checker()
        .finish_when(HasDiscoveries::AnyOf([property].into_iter().collect()))
        .spawn_bfs()
        .join();
    let path = checker.discovery(property);
    assert!(
        path.is_some(),
        "{mutation:?}: no counterexample for {property:?} in {} states",
        checker.unique_state_count()
    );
    println!(
        "{mutation:?}: counterexample for {property:?}: {:?}",
        path.unwrap().into_actions()
    );
}

#[test]
fn checker_finds_a_gateway_acting_on_an_unverified_command() {
    find(Mutation::ActOnUnverified, P_AUTHENTIC, "tampered");
}

#[test]
fn checker_finds_sequence_numbers_reused_after_a_restart() {
    find(Mutation::RestartFromBootSnapshot, P_SEQ, "restart");
}

#[test]
fn checker_finds_records_lost_by_a_store_that_did_not_persist() {
    find(Mutation::RestartFromBootSnapshot, P_STORED, "restart");
}

#[test]
fn checker_finds_a_resend_with_one_record_too_many() {
    find(Mutation::ResendOneTooMany, P_RESEND, "resend");
}

#[test]
fn checker_finds_records_never_acknowledged_when_acks_are_lost_locally() {
    find(Mutation::DropDataAcks, P_LIVE, "lossy");
}

#[test]
fn checker_finds_periodic_data_sent_after_a_stop() {
    let bounds = Bounds {
        ingests: 1,
        stops: 1,
        restarts: 1,
        ticks: 3,
        ..Bounds::NONE
    };
    find_within(Mutation::PersistRunning, P_PERIODIC, bounds);
}

#[test]
fn checker_finds_data_labelled_with_the_wrong_dataset() {
    find(Mutation::WrongDataset, P_DATA, "lossy");
}
