//! Model-based property test (proptest + proptest-state-machine) of [`GatewayCore`] against a
//! small reference model (IF-PSTART-2, IF-PSEND-3, IF-RESEND-1, ST-PROVIDE-1, SC-START-1,
//! SC-STOP-1, DES-ID-4, DES-MSG-PS-4, DES-ENV-2, DES-ENV-4).
//!
//! Random sequences of inputs — transport up/down, commands that are authentic, refused
//! (failed verification), malformed, for another gateway, on another tenant's topic or stale,
//! with commandSeq below/equal/above the applied one, duplicated deliveries of the last
//! command, ingests, acknowledgements (right, wrong range, failure code, lost), resend
//! requests by seq range with and without dataset, time passing, and restarts through
//! `snapshot`/`restore` — are applied to the core and to the reference model; after every
//! step the test checks:
//!
//! - an unverified or unauthorised command is never acted on: the core's periodic setting
//!   equals the model's, which changes only for authentic, fresh, connected commands with a
//!   higher commandSeq;
//! - every stored record is either acknowledged or still stored, and acknowledged only if
//!   the (test's) platform acknowledged it;
//! - sequence numbers strictly increase and are never reused across restarts;
//! - a resend returns exactly the requested records;
//! - periodic data flows only between an accepted start and its stop, and nothing but
//!   `connect` is sent before the session is open.
//!
//! How the model differs from the code it checks: the model has no message IDs, no
//! envelopes, no in-flight table, no reply cache and no timers. It knows only whether the
//! session is open, the periodic setting (running + applied commandSeq), the next sequence
//! number and the ingested ranges with their datasets. What the core sends is judged against
//! that: the model does not predict *when* data is sent or how it is cut into messages, only
//! that it is allowed (started), well-formed (one dataset's stored records, at most the cap)
//! and, for a resend, exactly the selected records. Acknowledgements are tracked by the test
//! harness (the ranges it acked), not by the model.
//!
//! The property can fail: `proptest_finds_*` tests run the same harness with a deliberately
//! broken adapter or store (a [`Mutation`]) and assert that proptest finds a failing case.
//! Cases: 512 by default, `PROPTEST_CASES` to change, `SGW_MODEL_BIG=1` for 2000.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::DateTime;
use gateway::protocol::flow::{InboundError, RangeSet, Time};
use gateway::protocol::gateway_side::{
    GatewayConfig, GatewayCore, GatewaySnapshot, Inbound, Transmit,
};
use gateway::protocol::message::{
    Body, ConnectResult, DataAck, DataKind, DecodeError, Envelope, MessageType, Outcome,
    PROTOCOL_VERSION, Peek, PeriodicStart, PeriodicStop, ProfileFormat, ResendRequest, ResultCode,
};
use gateway::protocol::topic::topic_for;
use gateway::protocol::{Dataset, GatewayId, MessageId, SeqRange, StoreEpoch};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const CAP: u64 = 3;
const DATASETS: [&str; 2] = ["billing", "ledger"];

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
    GatewayId::new("GW0001").unwrap()
}
fn ds(i: usize) -> Dataset {
    Dataset::new(DATASETS[i]).unwrap()
}
fn cfg() -> GatewayConfig {
    GatewayConfig {
        max_records_per_message: CAP,
        ..GatewayConfig::new(gw(), vec![ds(0), ds(1)])
    }
}

/// How a command reaches the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// Opened and verified, for this gateway, fresh.
    Authentic,
    /// Failed decryption or signature verification.
    Unverified,
    /// Opened but not a valid envelope.
    Malformed,
    /// Envelope names another gateway.
    OtherGateway,
    /// Arrived on another tenant's topic.
    OtherTenant,
    /// Timestamp 400 s in the past.
    Stale,
}

#[derive(Clone, Debug)]
enum Step {
    Connect,
    Disconnect,
    /// start (true) or stop, commandSeq = applied + delta (at least 1).
    Command {
        start: bool,
        delta: i8,
        delivery: Delivery,
    },
    DuplicateLastCommand,
    Ingest {
        dataset: usize,
        rows: u64,
    },
    Wait(i64),
    /// Acknowledge the outstanding data message number `pick` (modulo their number).
    Ack {
        pick: usize,
        code_ok: bool,
        wrong_range: bool,
    },
    Resend {
        first: u64,
        len: u64,
        dataset: Option<usize>,
    },
    Restart,
}

/// The reference model.
#[derive(Clone, Debug, Default)]
struct Model {
    now: i64,
    connected: bool,
    running: bool,
    applied: u64,
    next_seq: u64,
    /// (dataset, range, ingest time)
    records: Vec<(usize, SeqRange, i64)>,
    /// (start?, commandSeq, delivery, timestamp) of the last command.
    last_command: Option<(bool, u64, Delivery, i64)>,
}

impl Model {
    fn command_applies(&self, seq: u64, delivery: Delivery, ts: i64) -> bool {
        self.connected
            && matches!(delivery, Delivery::Authentic)
            && (self.now - ts).abs() <= 300
            && seq > self.applied
    }
    fn seq_for(&self, delta: i8) -> u64 {
        (i64::try_from(self.applied).unwrap() + i64::from(delta)).max(1) as u64
    }
    fn selected(&self, first: u64, len: u64, dataset: Option<usize>) -> RangeSet {
        let want = SeqRange::new(first, first + len - 1).unwrap();
        let mut s = RangeSet::new();
        for (d, r, _) in &self.records {
            if dataset.is_some_and(|x| x != *d) {
                continue;
            }
            if let Some(x) = SeqRange::new(r.first.max(want.first), r.last.min(want.last)) {
                s.insert(x);
            }
        }
        s
    }
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![
        4 => Just(Delivery::Authentic),
        1 => Just(Delivery::Unverified),
        1 => Just(Delivery::Malformed),
        1 => Just(Delivery::OtherGateway),
        1 => Just(Delivery::OtherTenant),
        1 => Just(Delivery::Stale),
    ]
}

impl ReferenceStateMachine for Model {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model {
            next_seq: 1,
            ..Model::default()
        })
        .boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Step> {
        prop_oneof![
            2 => Just(Step::Connect),
            1 => Just(Step::Disconnect),
            4 => (any::<bool>(), -2i8..=2, delivery())
                .prop_map(|(start, delta, delivery)| Step::Command { start, delta, delivery }),
            1 => Just(Step::DuplicateLastCommand),
            4 => (0usize..2, 1u64..=5).prop_map(|(dataset, rows)| Step::Ingest { dataset, rows }),
            3 => (1i64..=40).prop_map(Step::Wait),
            3 => (0usize..8, prop::bool::weighted(0.8), prop::bool::weighted(0.1))
                .prop_map(|(pick, code_ok, wrong_range)| Step::Ack { pick, code_ok, wrong_range }),
            1 => (1u64..=12, 1u64..=8, prop::option::of(0usize..2))
                .prop_map(|(first, len, dataset)| Step::Resend { first, len, dataset }),
            1 => Just(Step::Restart),
        ]
        .boxed()
    }

    fn apply(mut m: Model, step: &Step) -> Model {
        match step {
            Step::Connect => m.connected = true,
            Step::Disconnect | Step::Restart => m.connected = false,
            Step::Command {
                start,
                delta,
                delivery,
            } => {
                let seq = m.seq_for(*delta);
                let ts = if *delivery == Delivery::Stale {
                    m.now - 400
                } else {
                    m.now
                };
                if m.command_applies(seq, *delivery, ts) {
                    m.running = *start;
                    m.applied = seq;
                }
                m.last_command = Some((*start, seq, *delivery, ts));
            }
            Step::DuplicateLastCommand => {
                if let Some((start, seq, delivery, ts)) = m.last_command
                    && m.command_applies(seq, delivery, ts)
                {
                    m.running = start;
                    m.applied = seq;
                }
            }
            Step::Ingest { dataset, rows } => {
                if m.running {
                    let r = SeqRange::new(m.next_seq, m.next_seq + rows - 1).unwrap();
                    m.records.push((*dataset, r, m.now));
                    m.next_seq += rows;
                }
            }
            Step::Wait(s) => m.now += s,
            Step::Ack { .. } | Step::Resend { .. } => {}
        }
        m
    }
}

/// A deliberately broken adapter or store, to show the property can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutation {
    None,
    /// The adapter hands unverified commands to the core as opened.
    ActOnUnverified,
    /// The store did not persist: a restart comes back from the previous boot's snapshot.
    RestoreBootSnapshot,
}

/// The system under test: the core plus the harness playing the platform.
struct Sut {
    core: GatewayCore,
    mutation: Mutation,
    connect_id: Option<MessageId>,
    /// Data messages sent and not acknowledged by the harness: (ID, range).
    outstanding: Vec<(MessageId, SeqRange)>,
    /// What the harness acknowledged.
    acked: RangeSet,
    /// IDs of data messages of kind resend ever sent (a BUSY answer needs one outstanding).
    resend_ids: Vec<MessageId>,
    last_command: Option<Inbound>,
    boot_snapshot: GatewaySnapshot,
    n: u64,
}

impl Sut {
    fn new(mutation: Mutation) -> Self {
        let core = GatewayCore::new(cfg(), epoch(), t0());
        let boot_snapshot = core.snapshot();
        Self {
            core,
            mutation,
            connect_id: None,
            outstanding: Vec::new(),
            acked: RangeSet::new(),
            resend_ids: Vec::new(),
            last_command: None,
            boot_snapshot,
            n: 0,
        }
    }

    fn id(&mut self) -> MessageId {
        self.n += 1;
        MessageId::new(format!("p.{}", self.n)).unwrap()
    }

    fn down(&mut self, now: Time, body: Body, reply: Option<(MessageId, Outcome)>) -> Envelope {
        let id = self.id();
        Envelope {
            version: PROTOCOL_VERSION,
            message_id: id,
            gateway_id: gw(),
            timestamp: now,
            in_reply_to: reply.as_ref().map(|(m, _)| m.clone()),
            result: reply.map(|(_, o)| o),
            body,
        }
    }

    fn deliver(&mut self, now: Time, env: Envelope) {
        let topic = topic_for(&gw(), env.message_type());
        self.core.handle_inbound(
            now,
            Inbound::Opened {
                topic,
                envelope: env,
            },
        );
    }

    /// Drains what the core sends and checks it against the model (after the step).
    fn drain(&mut self, m: &Model, resend: Option<(MessageId, RangeSet)>) -> Result<(), String> {
        let mut resend_got = RangeSet::new();
        let mut resend_sum = 0;
        let mut resend_result = None;
        while let Some(t) = self.core.poll_transmit() {
            if !m.connected && t.message_type() != MessageType::Connect {
                return Err(format!(
                    "{:?} sent before the session is open",
                    t.message_type()
                ));
            }
            match t {
                Transmit::Message { envelope, .. } => match &envelope.body {
                    Body::Connect(_) => self.connect_id = Some(envelope.message_id.clone()),
                    Body::ResendResult(rr) => resend_result = Some((rr.clone(), envelope.result)),
                    _ => {}
                },
                Transmit::Data(d) => {
                    let stored = m
                        .records
                        .iter()
                        .filter(|(x, _, _)| ds(*x) == d.dataset)
                        .fold(RangeSet::new(), |mut a, (_, r, _)| {
                            a.insert(*r);
                            a
                        });
                    if !stored.contains_range(d.range) || d.range.len() > CAP {
                        return Err(format!(
                            "data {:?} is not one dataset's stored records",
                            d.range
                        ));
                    }
                    match d.kind {
                        // A stop ends new periodic messages; retransmissions of earlier
                        // ones continue (§6.5).
                        DataKind::Periodic if !m.running && !d.retransmission => {
                            return Err("new periodic data while stopped".into());
                        }
                        DataKind::Resend => {
                            let Some((req, _)) = &resend else {
                                // A retransmission of earlier resend data (same message ID).
                                if !self.outstanding.iter().any(|(id, _)| *id == d.message_id) {
                                    self.outstanding.push((d.message_id.clone(), d.range));
                                }
                                continue;
                            };
                            self.resend_ids.push(d.message_id.clone());
                            if d.request.as_ref() != Some(req) {
                                return Err("resend data names another request".into());
                            }
                            resend_got.insert(d.range);
                            resend_sum += d.range.len();
                        }
                        DataKind::Periodic => {}
                    }
                    // Retransmissions reuse the message ID (DES-MSG-DATA-3).
                    if !self.outstanding.iter().any(|(id, _)| *id == d.message_id) {
                        self.outstanding.push((d.message_id.clone(), d.range));
                    }
                }
            }
        }
        while self.core.poll_event().is_some() {}
        if let Some((_, want)) = resend
            && m.connected
        {
            let (rr, outcome) = resend_result.ok_or("no resend.result")?;
            let code = outcome.map(|o| o.code);
            let resend_running = self
                .outstanding
                .iter()
                .any(|(id, _)| self.resend_ids.contains(id));
            if code == Some(ResultCode::Busy) {
                // One resend at a time (DES-MSG-RS-2): only while earlier resend data is
                // unacknowledged, and then nothing is announced or sent.
                if !resend_running || rr.records != 0 || resend_sum != 0 {
                    return Err(format!(
                        "BUSY answered with {} records, resend running: {resend_running}",
                        rr.records
                    ));
                }
            } else if want.is_empty() {
                if code != Some(ResultCode::NotFound) || rr.records != 0 {
                    return Err(format!("empty selection answered {code:?}"));
                }
            } else if resend_got != want || resend_sum != want.count() || rr.records != want.count()
            {
                return Err(format!(
                    "resend returned {resend_got:?} ({resend_sum} records), wanted {want:?}"
                ));
            }
        }
        Ok(())
    }

    fn step(&mut self, m: &Model, step: Step) -> Result<(), String> {
        let now = at(m.now);
        let mut resend = None;
        match step {
            Step::Connect => {
                if !self.core.is_connected() {
                    self.core.handle_connected(now);
                    self.drain(
                        &Model {
                            connected: false,
                            ..m.clone()
                        },
                        None,
                    )?;
                    let to = self.connect_id.clone().ok_or("no connect sent")?;
                    let body = Body::ConnectResult(ConnectResult {
                        version: 1,
                        monitor_interval_sec: 60,
                        ack_timeout_sec: 20,
                        acked_through: 0,
                    });
                    let env = self.down(now, body, Some((to, Outcome::ok())));
                    self.deliver(now, env);
                    self.outstanding.clear();
                }
            }
            Step::Disconnect => {
                self.core.handle_disconnected(now);
                self.outstanding.clear();
            }
            Step::Restart => {
                let snap = match self.mutation {
                    Mutation::RestoreBootSnapshot => self.boot_snapshot.clone(),
                    _ => self.core.snapshot(),
                };
                self.core = GatewayCore::restore(cfg(), snap, now);
                self.boot_snapshot = self.core.snapshot();
                self.outstanding.clear();
            }
            Step::Command {
                start, delivery, ..
            } => {
                // The model is already past this step: it recorded the commandSeq and time.
                let (_, seq, _, ts) = m.last_command.unwrap();
                let body = if start {
                    Body::PeriodicStart(PeriodicStart {
                        command_seq: seq,
                        datasets: vec![],
                        interval_sec: 10,
                        format: ProfileFormat::Json,
                    })
                } else {
                    Body::PeriodicStop(PeriodicStop { command_seq: seq })
                };
                let mut env = self.down(at(ts), body, None);
                let mut topic = topic_for(&gw(), env.message_type());
                match delivery {
                    Delivery::OtherGateway => env.gateway_id = GatewayId::new("GW0002").unwrap(),
                    Delivery::OtherTenant => {
                        topic = topic_for(&GatewayId::new("GW0002").unwrap(), env.message_type());
                    }
                    _ => {}
                }
                let inbound = match delivery {
                    Delivery::Unverified if self.mutation != Mutation::ActOnUnverified => {
                        Inbound::Refused {
                            topic,
                            error: InboundError::Security,
                            peek: None,
                        }
                    }
                    // Undecodable but peekable: answered with the neutral body, never acted
                    // on (DES-MSG-2).
                    Delivery::Malformed => Inbound::Refused {
                        topic,
                        error: InboundError::Decode(DecodeError::Envelope("truncated".into())),
                        peek: Some(Peek {
                            message_type: env.message_type(),
                            message_id: env.message_id.clone(),
                            range: None,
                        }),
                    },
                    _ => Inbound::Opened {
                        topic,
                        envelope: env.clone(),
                    },
                };
                self.core.handle_inbound(now, inbound.clone());
                // Kept as delivered, for duplication.
                self.last_command = Some(inbound);
            }
            Step::DuplicateLastCommand => {
                if let Some(inb) = self.last_command.clone() {
                    self.core.handle_inbound(now, inb);
                }
            }
            Step::Ingest { dataset, rows } => {
                let r = self.core.handle_ingest(now, &ds(dataset), rows);
                match (r, m.records.last()) {
                    (Ok(got), Some((d, want, _))) if *d == dataset && got == *want => {}
                    (Err(_), _) if !m.running => {}
                    (r, _) => return Err(format!("ingest answered {r:?}, model {m:?}")),
                }
            }
            Step::Wait(_) => self.core.handle_timeout(now),
            Step::Ack {
                pick,
                code_ok,
                wrong_range,
            } => {
                if self.core.is_connected() && !self.outstanding.is_empty() {
                    let i = pick % self.outstanding.len();
                    let (to, range) = self.outstanding[i].clone();
                    let acked_range = if wrong_range {
                        SeqRange::new(range.first, range.last + 1).unwrap()
                    } else {
                        range
                    };
                    let o = if code_ok {
                        Outcome::ok()
                    } else {
                        Outcome::new(ResultCode::SecurityFailed, "profile")
                    };
                    let env = self.down(
                        now,
                        Body::DataAck(DataAck { range: acked_range }),
                        Some((to, o)),
                    );
                    if code_ok && !wrong_range {
                        self.acked.insert(range);
                        self.outstanding.remove(i);
                    }
                    self.deliver(now, env);
                }
            }
            Step::Resend {
                first,
                len,
                dataset,
            } => {
                let body = Body::ResendRequest(ResendRequest {
                    dataset: dataset.map(ds),
                    seq: SeqRange::new(first, first + len - 1),
                    time: None,
                });
                let env = self.down(now, body, None);
                resend = Some((env.message_id.clone(), m.selected(first, len, dataset)));
                self.deliver(now, env);
            }
        }
        self.drain(m, resend)?;
        self.check(m)
    }

    fn check(&self, m: &Model) -> Result<(), String> {
        let p = self.core.periodic();
        if p.running != m.running || p.command_seq != m.applied {
            return Err(format!(
                "periodic setting {p:?} but the model says running={} applied={}",
                m.running, m.applied
            ));
        }
        if self.core.last_seq() + 1 != m.next_seq {
            return Err(format!(
                "last seq {} vs model next {}",
                self.core.last_seq(),
                m.next_seq
            ));
        }
        for (d, r, _) in &m.records {
            let kept = self
                .core
                .batches()
                .iter()
                .filter(|b| b.dataset == ds(*d))
                .fold(RangeSet::new(), |mut a, b| {
                    a.insert(b.range);
                    a
                });
            if !kept.contains_range(*r) {
                return Err(format!("records {r:?} of {} lost", DATASETS[*d]));
            }
        }
        for b in self.core.batches().iter().filter(|b| b.acked) {
            if !self.acked.contains_range(b.range) {
                return Err(format!("{:?} marked acked, never acknowledged", b.range));
            }
        }
        Ok(())
    }
}

struct GatewayUnderTest;

impl StateMachineTest for GatewayUnderTest {
    type SystemUnderTest = Sut;
    type Reference = Model;

    fn init_test(_: &Model) -> Sut {
        Sut::new(Mutation::None)
    }

    fn apply(mut sut: Sut, m: &Model, step: Step) -> Sut {
        if let Err(e) = sut.step(m, step) {
            panic!("{e}");
        }
        sut
    }
}

fn cases() -> u32 {
    if std::env::var("SGW_MODEL_BIG").is_ok_and(|v| v == "1") {
        return 2000;
    }
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: cases(),
        failure_persistence: None,
        .. Config::default()
    })]
    #[test]
    fn gateway_core_keeps_its_invariants_against_the_reference_model(sequential 1..80 => GatewayUnderTest);
}

/// Runs the same harness with `mutation`; Ok if proptest found a failing case.
fn finds(mutation: Mutation) -> Result<(), String> {
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&Model::sequential_strategy(1..80), |(init, steps, _)| {
        let mut sut = Sut::new(mutation);
        let mut m = init;
        for step in steps {
            m = <Model as ReferenceStateMachine>::apply(m, &step);
            sut.step(&m, step).map_err(TestCaseError::fail)?;
        }
        Ok(())
    });
    match result {
        Err(e) => {
            println!("{mutation:?}: {e}");
            Ok(())
        }
        Ok(()) => Err(format!("{mutation:?} was not caught")),
    }
}

#[test]
fn proptest_finds_a_gateway_acting_on_unverified_commands() {
    finds(Mutation::ActOnUnverified).unwrap();
}

#[test]
fn proptest_finds_records_lost_by_a_restart_from_a_stale_snapshot() {
    finds(Mutation::RestoreBootSnapshot).unwrap();
}
