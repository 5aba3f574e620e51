//! Unit tests of the two flow state machines, one flow at a time, positive and negative
//! (IF-*, DES-MSG-*, SC-START-1, SC-STOP-1, ST-PROVIDE-1, MON-1).

use chrono::DateTime;

use super::flow::InboundError;
use super::flow::{Time, secs};
use super::gateway_side::{
    ANOMALY_QUEUE_LEN, EvacuateError, GatewayConfig, GatewayCore, GatewayEvent, GatewaySnapshot,
    Inbound, IngestError, MAX_DATA_IN_FLIGHT, Transmit,
};
use super::ids::{Dataset, GatewayId, MessageId, SeqRange, StoreEpoch};
use super::message::{
    AnomalyKind, Body, ConnectResult, DataAck, DataKind, DecodeError, Empty, Envelope, MessageType,
    Outcome, PROTOCOL_VERSION, Peek, PeriodicStart, PeriodicStop, ProfileFormat, ResendRequest,
    ResultCode, TimeRange,
};
use super::platform_side::{
    Command, PlatformConfig, PlatformCore, PlatformEvent, PlatformInbound, ProfileVerdict,
    ResendSelector,
};
use super::topic::topic_for;

fn t0() -> Time {
    DateTime::parse_from_rfc3339("2026-11-22T09:00:00+09:00").unwrap()
}
fn at(s: i64) -> Time {
    t0() + secs(s)
}
fn gw() -> GatewayId {
    GatewayId::new("GW0001").unwrap()
}
fn ds(s: &str) -> Dataset {
    Dataset::new(s).unwrap()
}
fn mid(s: &str) -> MessageId {
    MessageId::new(s).unwrap()
}
fn epoch() -> StoreEpoch {
    StoreEpoch::from_bytes([0x5a; 16])
}
fn r(first: u64, last: u64) -> SeqRange {
    SeqRange::new(first, last).unwrap()
}

fn cfg() -> GatewayConfig {
    GatewayConfig {
        max_records_per_message: 3,
        ..GatewayConfig::new(gw(), vec![ds("billing"), ds("ledger")])
    }
}

fn drain(g: &mut GatewayCore) -> Vec<Transmit> {
    std::iter::from_fn(|| g.poll_transmit()).collect()
}
fn events(g: &mut GatewayCore) -> Vec<GatewayEvent> {
    std::iter::from_fn(|| g.poll_event()).collect()
}
fn envelopes(ts: &[Transmit]) -> Vec<&Envelope> {
    ts.iter()
        .filter_map(|t| match t {
            Transmit::Message { envelope, .. } => Some(envelope),
            Transmit::Data(_) => None,
        })
        .collect()
}
fn data_of(ts: &[Transmit]) -> Vec<(Dataset, SeqRange, DataKind, MessageId)> {
    ts.iter()
        .filter_map(|t| match t {
            Transmit::Data(d) => Some((d.dataset.clone(), d.range, d.kind, d.message_id.clone())),
            Transmit::Message { .. } => None,
        })
        .collect()
}

/// A message from the platform to `gw()`.
fn down(now: Time, id: &str, body: Body, reply: Option<(&MessageId, Outcome)>) -> Inbound {
    let envelope = Envelope {
        version: PROTOCOL_VERSION,
        message_id: mid(id),
        gateway_id: gw(),
        timestamp: now,
        in_reply_to: reply.as_ref().map(|(m, _)| (*m).clone()),
        result: reply.map(|(_, o)| o),
        body,
    };
    Inbound::Opened {
        topic: topic_for(&gw(), envelope.message_type()),
        envelope,
    }
}

fn start_body(seq: u64, interval: u32) -> Body {
    Body::PeriodicStart(PeriodicStart {
        command_seq: seq,
        datasets: vec![],
        interval_sec: interval,
        format: ProfileFormat::Json,
    })
}

/// A gateway whose session is open (monitor every 60 s, ack timeout 30 s).
fn connected() -> GatewayCore {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    let out = drain(&mut g);
    let connect = envelopes(&out)[0].message_id.clone();
    g.handle_inbound(
        t0(),
        down(
            t0(),
            "p.c1",
            Body::ConnectResult(ConnectResult {
                version: 1,
                monitor_interval_sec: 60,
                ack_timeout_sec: 30,
                acked_through: 0,
            }),
            Some((&connect, Outcome::ok())),
        ),
    );
    drain(&mut g);
    events(&mut g);
    g
}

/// A connected gateway with periodic sending started (interval 10 s, command 1).
fn started() -> GatewayCore {
    let mut g = connected();
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 10), None));
    drain(&mut g);
    events(&mut g);
    g
}

fn result_code(e: &Envelope) -> ResultCode {
    e.result.as_ref().unwrap().code
}

// ---------------------------------------------------------------- gateway: session

/// The `connect` among `out`, if any.
fn connect_id(out: &[Transmit]) -> Option<MessageId> {
    out.iter()
        .find(|t| t.message_type() == MessageType::Connect)
        .map(|t| t.message_id().clone())
}

/// Answers `connect` with `code` and the given intervals.
fn answer_connect(
    g: &mut GatewayCore,
    now: Time,
    connect: &MessageId,
    code: ResultCode,
    monitor: u32,
    ack: u32,
) {
    let cr = Body::ConnectResult(ConnectResult {
        version: 1,
        monitor_interval_sec: monitor,
        ack_timeout_sec: ack,
        acked_through: 0,
    });
    let o = if code == ResultCode::Ok {
        Outcome::ok()
    } else {
        Outcome::new(code, "refused")
    };
    g.handle_inbound(now, down(now, "p.c", cr, Some((connect, o))));
}

fn refusal(g: &mut GatewayCore) -> Option<(ResultCode, bool, &'static str, Time)> {
    events(g).into_iter().find_map(|e| match e {
        GatewayEvent::ConnectRefused {
            code,
            lasting,
            rule,
            retry_at,
            ..
        } => Some((code, lasting, rule, retry_at)),
        _ => None,
    })
}

/// Lets `connect` attempts time out `n` times; returns the delays d_1..d_n (ms) between each
/// timeout and the next `connect`.
fn fail_connects_by_timeout(g: &mut GatewayCore, n: usize) -> Vec<i64> {
    let mut delays = Vec::new();
    for _ in 0..n {
        let timeout = g.poll_timeout().unwrap();
        g.handle_timeout(timeout);
        assert!(drain(g).is_empty(), "nothing at the timeout itself");
        let retry = g.poll_timeout().unwrap();
        delays.push((retry - timeout).num_milliseconds());
        g.handle_timeout(retry - chrono::Duration::milliseconds(1));
        assert!(drain(g).is_empty(), "nothing before the back-off ends");
        g.handle_timeout(retry);
        let out = drain(g);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message_type(), MessageType::Connect);
    }
    delays
}

#[test]
fn nothing_but_connect_is_sent_before_connect_result() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    let out = drain(&mut g);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message_type(), MessageType::Connect);
    g.handle_timeout(at(10));
    assert!(
        drain(&mut g).is_empty(),
        "no status or data before the session"
    );
    assert_eq!(g.poll_timeout(), Some(at(30)), "connect_timeout_sec");
}

#[test]
fn an_unanswered_connect_is_sent_again_after_the_timeout_plus_a_doubling_jittered_back_off() {
    // DES-MQTT-8: connect n waits 30 s, then d_n = min(300, 2^(n-1)) s × [0.5, 1.0).
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    let first = connect_id(&drain(&mut g)).unwrap();
    let delays = fail_connects_by_timeout(&mut g, 11);
    for (i, d) in delays.iter().enumerate() {
        let base = (1i64 << i).min(300) * 1000;
        assert!(base / 2 <= *d && *d < base, "d_{} = {d} ms", i + 1);
    }
    // Every retry is a new connect (new messageId); the jitter is seeded, so repeatable ...
    let mut same = GatewayCore::new(cfg(), epoch(), t0());
    same.handle_connected(t0());
    assert_eq!(connect_id(&drain(&mut same)), Some(first));
    assert_eq!(fail_connects_by_timeout(&mut same, 11), delays);
    // ... and another seed gives other delays.
    let mut other = GatewayCore::new(
        GatewayConfig {
            backoff_seed: 99,
            ..cfg()
        },
        epoch(),
        t0(),
    );
    other.handle_connected(t0());
    drain(&mut other);
    assert_ne!(fail_connects_by_timeout(&mut other, 11), delays);
}

#[test]
fn the_connect_back_off_resets_only_after_a_session_of_60_s() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    drain(&mut g);
    fail_connects_by_timeout(&mut g, 5);
    // A session of 59 s keeps the count: the next failure waits d_6 (16..32 s).
    // (the transport drops and comes back, so the next connect goes out at once)
    let now = g.poll_timeout().unwrap() - secs(1);
    g.handle_disconnected(now);
    g.handle_connected(now);
    let c = connect_id(&drain(&mut g)).unwrap();
    answer_connect(&mut g, now, &c, ResultCode::Ok, 60, 30);
    assert!(g.is_connected());
    g.handle_disconnected(now + secs(59));
    g.handle_connected(now + secs(60));
    drain(&mut g);
    let d = fail_connects_by_timeout(&mut g, 1)[0];
    assert!((16_000..32_000).contains(&d), "d_6 expected, got {d} ms");
    // A session of 60 s resets it: the next failure waits d_1 (0.5..1 s).
    let now = g.poll_timeout().unwrap() - secs(1);
    g.handle_connected(now);
    let c = connect_id(&drain(&mut g)).unwrap();
    answer_connect(&mut g, now, &c, ResultCode::Ok, 60, 30);
    g.handle_disconnected(now + secs(60));
    g.handle_connected(now + secs(61));
    drain(&mut g);
    let d = fail_connects_by_timeout(&mut g, 1)[0];
    assert!((500..1000).contains(&d), "d_1 expected, got {d} ms");
}

#[test]
fn command_before_session_is_open_is_ignored() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    drain(&mut g);
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 10), None));
    assert!(drain(&mut g).is_empty());
    assert!(!g.periodic().running);
}

#[test]
fn connect_result_for_an_earlier_connect_does_not_open_the_session() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    drain(&mut g);
    answer_connect(&mut g, t0(), &mid("GW0001.0.99"), ResultCode::Ok, 60, 30);
    assert!(!g.is_connected());
}

#[test]
fn lasting_connect_refusals_are_retried_every_300_s_on_the_same_transport() {
    // DES-MSG-CONN-3: UNAUTHORIZED, UNSUPPORTED_VERSION, INVALID_STATE, MALFORMED, TOO_LARGE
    // (and any other non-retryable code) are lasting.
    for code in [
        ResultCode::Unauthorized,
        ResultCode::UnsupportedVersion,
        ResultCode::InvalidState,
        ResultCode::Malformed,
        ResultCode::TooLarge,
        ResultCode::UnknownType,
    ] {
        let mut g = GatewayCore::new(cfg(), epoch(), t0());
        g.handle_connected(t0());
        let c = connect_id(&drain(&mut g)).unwrap();
        answer_connect(&mut g, at(1), &c, code, 60, 30);
        assert!(!g.is_connected());
        let rule = if code == ResultCode::InvalidState {
            "DES-MSG-CONN-4"
        } else {
            "DES-MSG-CONN-3"
        };
        assert_eq!(
            refusal(&mut g),
            Some((code, true, rule, at(301))),
            "{code:?}"
        );
        assert_eq!(g.poll_timeout(), Some(at(301)));
        g.handle_timeout(at(300));
        assert!(drain(&mut g).is_empty(), "{code:?}: not before 300 s");
        g.handle_timeout(at(301));
        let again = connect_id(&drain(&mut g)).unwrap();
        assert_ne!(again, c, "a new connect");
        // and again 300 s after the next lasting refusal, without jitter
        answer_connect(&mut g, at(302), &again, code, 60, 30);
        assert_eq!(g.poll_timeout(), Some(at(602)));
    }
}

#[test]
fn an_ok_connect_result_naming_a_version_the_gateway_does_not_speak_is_a_lasting_refusal() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    let c = connect_id(&drain(&mut g)).unwrap();
    let cr = Body::ConnectResult(ConnectResult {
        version: 7,
        monitor_interval_sec: 60,
        ack_timeout_sec: 30,
        acked_through: 0,
    });
    g.handle_inbound(t0(), down(t0(), "p.c", cr, Some((&c, Outcome::ok()))));
    assert!(!g.is_connected());
    assert_eq!(
        refusal(&mut g),
        Some((
            ResultCode::UnsupportedVersion,
            true,
            "DES-MSG-CONN-3",
            at(300)
        ))
    );
}

#[test]
fn retryable_connect_refusals_are_sent_again_after_the_back_off() {
    for code in [ResultCode::Busy, ResultCode::Internal, ResultCode::Stale] {
        let mut g = GatewayCore::new(cfg(), epoch(), t0());
        g.handle_connected(t0());
        let c = connect_id(&drain(&mut g)).unwrap();
        answer_connect(&mut g, at(1), &c, code, 60, 30);
        assert!(!g.is_connected());
        let (got, lasting, _, retry_at) = refusal(&mut g).unwrap();
        assert_eq!((got, lasting), (code, false));
        // d_1: 0.5 to 1 s after the refusal arrived.
        let d = (retry_at - at(1)).num_milliseconds();
        assert!((500..1000).contains(&d), "{code:?}: {d} ms");
        assert_eq!(g.poll_timeout(), Some(retry_at));
        g.handle_timeout(retry_at);
        let again = connect_id(&drain(&mut g)).unwrap();
        assert_ne!(again, c);
        // A second refusal waits d_2 (1 to 2 s).
        answer_connect(&mut g, at(10), &again, code, 60, 30);
        let (_, _, _, retry_at) = refusal(&mut g).unwrap();
        let d = (retry_at - at(10)).num_milliseconds();
        assert!((1000..2000).contains(&d), "{code:?}: {d} ms");
    }
}

#[test]
fn zero_intervals_in_connect_result_mean_60_s_monitoring_and_a_30_s_ack_timeout() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    let c = connect_id(&drain(&mut g)).unwrap();
    answer_connect(&mut g, t0(), &c, ResultCode::Ok, 0, 0);
    assert!(g.is_connected());
    drain(&mut g);
    // DES-MSG-PS-5 waits ackTimeoutSec for the result's ack: 30 s.
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 100), None));
    let result = drain(&mut g);
    assert_eq!(result.len(), 1);
    g.handle_timeout(at(29));
    assert!(
        drain(&mut g).is_empty(),
        "no status, no result re-send before 30 s"
    );
    g.handle_timeout(at(30));
    let again = drain(&mut g);
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].message_id(),
        result[0].message_id(),
        "result re-sent at 30 s"
    );
    g.handle_timeout(at(59));
    assert!(drain(&mut g).is_empty());
    g.handle_timeout(at(60));
    let out = drain(&mut g);
    assert!(
        out.iter()
            .any(|t| t.message_type() == MessageType::MonitorStatus),
        "status at 60 s"
    );
}

// ---------------------------------------------------------------- gateway: order of checks

/// A refused down message whose peek read `ty` and `id` (DES-MSG-2).
fn undecodable(ty: MessageType, id: &str, error: DecodeError) -> Inbound {
    Inbound::Refused {
        topic: topic_for(&gw(), ty),
        error: InboundError::Decode(error),
        peek: Some(Peek {
            message_type: ty,
            message_id: mid(id),
            range: None,
        }),
    }
}

#[test]
fn an_undecodable_command_that_can_be_peeked_is_answered_with_its_reply_type_and_code() {
    let mut g = started();
    let cases = [
        (
            MessageType::PeriodicStart,
            DecodeError::UnsupportedVersion(2),
            ResultCode::UnsupportedVersion,
        ),
        (
            MessageType::PeriodicStop,
            DecodeError::TooLarge(300_000),
            ResultCode::TooLarge,
        ),
        (
            MessageType::ResendRequest,
            DecodeError::Envelope("x".into()),
            ResultCode::Malformed,
        ),
    ];
    for (i, (ty, error, code)) in cases.into_iter().enumerate() {
        let id = format!("p.bad{i}");
        g.handle_inbound(at(1), undecodable(ty, &id, error));
        let out = drain(&mut g);
        let e = envelopes(&out);
        assert_eq!(e.len(), 2, "{ty:?}: an anomaly and the reply");
        assert!(e.iter().any(|e| e.message_type() == MessageType::Anomaly));
        let reply = e
            .iter()
            .find(|e| e.message_type() != MessageType::Anomaly)
            .unwrap();
        assert_eq!(reply.in_reply_to, Some(mid(&id)));
        assert_eq!(result_code(reply), code);
        // The neutral body: the unchanged state, or {0,0,0}.
        match &reply.body {
            Body::PeriodicStartResult(st) | Body::PeriodicStopResult(st) => {
                assert_eq!(*st, g.periodic().to_state());
                assert!(st.running, "nothing acted on");
            }
            Body::ResendResult(r) => {
                assert_eq!((r.records, r.messages, r.archived), (0, 0, 0));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_undecodable_message_is_not_answered_unless_peekable_in_session_and_a_command() {
    let bad = || DecodeError::Envelope("x".into());
    let mut g = connected();
    // Not peekable.
    g.handle_inbound(
        t0(),
        Inbound::Refused {
            topic: topic_for(&gw(), MessageType::PeriodicStart),
            error: InboundError::Decode(bad()),
            peek: None,
        },
    );
    // UNKNOWN_TYPE is never a reply code.
    g.handle_inbound(
        t0(),
        undecodable(
            MessageType::PeriodicStart,
            "p.u",
            DecodeError::UnknownType("x".into()),
        ),
    );
    // A failed opening is never answered, whatever the peek says.
    g.handle_inbound(
        t0(),
        Inbound::Refused {
            topic: topic_for(&gw(), MessageType::PeriodicStart),
            error: InboundError::Security,
            peek: Some(Peek {
                message_type: MessageType::PeriodicStart,
                message_id: mid("p.s"),
                range: None,
            }),
        },
    );
    // Replies are never answered.
    g.handle_inbound(t0(), undecodable(MessageType::DataAck, "p.a", bad()));
    // Another tenant's topic (step 3).
    g.handle_inbound(
        t0(),
        Inbound::Refused {
            topic: topic_for(
                &GatewayId::new("GW0002").unwrap(),
                MessageType::PeriodicStart,
            ),
            error: InboundError::Decode(bad()),
            peek: Some(Peek {
                message_type: MessageType::PeriodicStart,
                message_id: mid("p.t"),
                range: None,
            }),
        },
    );
    let out = drain(&mut g);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|t| t.message_type() == MessageType::Anomaly));
    // Not in session: nothing is sent (the anomaly is queued).
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    drain(&mut g);
    g.handle_inbound(t0(), undecodable(MessageType::PeriodicStart, "p.n", bad()));
    assert!(drain(&mut g).is_empty());
    assert_eq!(g.anomaly_count(), 1);
}

#[test]
fn a_command_on_another_tenants_topic_is_a_malformed_anomaly_without_a_reply() {
    let mut g = connected();
    let Inbound::Opened { envelope, .. } = down(t0(), "p.s1", start_body(1, 10), None) else {
        unreachable!()
    };
    let topic = topic_for(
        &GatewayId::new("GW0002").unwrap(),
        MessageType::PeriodicStart,
    );
    g.handle_inbound(t0(), Inbound::Opened { topic, envelope });
    let out = drain(&mut g);
    assert_eq!(out.len(), 1, "no UNAUTHORIZED reply (DES-MSG-3 step 3)");
    let Body::Anomaly(a) = &envelopes(&out)[0].body else {
        panic!()
    };
    assert_eq!(
        (a.kind, a.rule.as_str()),
        (AnomalyKind::Malformed, "DES-MQTT-3")
    );
}

#[test]
fn an_applied_command_retransmitted_after_the_freshness_window_gets_its_ok_again_not_stale() {
    let mut g = connected();
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 10), None));
    let first = drain(&mut g);
    assert_eq!(result_code(envelopes(&first)[0]), ResultCode::Ok);
    events(&mut g);
    // The same message 400 s later: in the reply memory, so not STALE (DES-MSG-3 step 12
    // before 13), and no anomaly.
    g.handle_inbound(at(400), down(t0(), "p.s1", start_body(1, 10), None));
    assert_eq!(drain(&mut g), first);
    assert_eq!(g.anomaly_count(), 0);
    // After 600 s it is forgotten, and refused STALE (never applied twice).
    g.handle_inbound(at(601), down(t0(), "p.s1", start_body(1, 10), None));
    let late = drain(&mut g);
    let res = envelopes(&late)
        .into_iter()
        .find(|e| e.message_type() == MessageType::PeriodicStartResult)
        .unwrap();
    assert_eq!(result_code(res), ResultCode::Stale);
    assert!(
        !events(&mut g)
            .iter()
            .any(|e| matches!(e, GatewayEvent::StartStoring { .. }))
    );
}

#[test]
fn a_message_id_reused_with_another_type_or_timestamp_is_processed_as_new() {
    let mut g = connected();
    g.handle_inbound(t0(), down(t0(), "p.x", start_body(1, 10), None));
    drain(&mut g);
    // Same ID, another timestamp: not a retransmission (DES-ENV-8), applied.
    g.handle_inbound(at(5), down(at(5), "p.x", start_body(2, 20), None));
    let out = drain(&mut g);
    assert_eq!(result_code(envelopes(&out)[0]), ResultCode::Ok);
    assert_eq!(g.periodic().command_seq, 2);
    // Same ID, another type: applied too.
    let stop = Body::PeriodicStop(PeriodicStop { command_seq: 3 });
    g.handle_inbound(at(6), down(at(5), "p.x", stop.clone(), None));
    let stopped = drain(&mut g);
    assert_eq!(result_code(envelopes(&stopped)[0]), ResultCode::Ok);
    assert!(!g.periodic().running);
    // And that one's retransmission is a duplicate again.
    g.handle_inbound(at(7), down(at(5), "p.x", stop, None));
    assert_eq!(drain(&mut g), stopped);
}

#[test]
fn the_reply_memory_survives_a_restart_and_answers_a_duplicate_with_the_original_reply() {
    let mut g = connected();
    g.handle_inbound(at(10), down(at(10), "p.s1", start_body(1, 10), None));
    let first = drain(&mut g);
    let json = serde_json::to_string(&g.snapshot()).unwrap();
    let snap: GatewaySnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(snap.reply_memory.len(), 1);
    let mut g = GatewayCore::restore(cfg(), snap.clone(), at(100));
    g.handle_connected(at(100));
    let c = connect_id(&drain(&mut g)).unwrap();
    answer_connect(&mut g, at(100), &c, ResultCode::Ok, 60, 30);
    drain(&mut g);
    events(&mut g);
    // The platform retransmits the start (it never saw the result).
    g.handle_inbound(at(101), down(at(10), "p.s1", start_body(1, 10), None));
    let again = drain(&mut g);
    assert_eq!(again, first, "the stored reply, original messageId, OK");
    assert!(
        !events(&mut g)
            .iter()
            .any(|e| matches!(e, GatewayEvent::StartStoring { .. }))
    );
    // Entries older than 600 s are not restored.
    let g = GatewayCore::restore(cfg(), snap, at(611));
    assert!(g.snapshot().reply_memory.is_empty());
}

// ---------------------------------------------------------------- gateway: anomalies

fn security_refusal() -> Inbound {
    Inbound::Refused {
        topic: topic_for(&gw(), MessageType::PeriodicStart),
        error: InboundError::Security,
        peek: None,
    }
}

/// A start whose timestamp is 400 s old: a `stale` anomaly (in session).
fn stale_start(now: Time, n: u64) -> Inbound {
    down(
        now - secs(400),
        &format!("p.stale{n}"),
        start_body(n, 10),
        None,
    )
}

/// A start for another gateway ID: an `unauthorized` anomaly, also before the session.
fn foreign_start(n: u64) -> Inbound {
    let Inbound::Opened {
        topic,
        mut envelope,
    } = down(t0(), &format!("p.f{n}"), start_body(n, 10), None)
    else {
        unreachable!()
    };
    envelope.gateway_id = GatewayId::new("GW0002").unwrap();
    Inbound::Opened { topic, envelope }
}

fn anomaly_kinds(out: &[Transmit]) -> Vec<AnomalyKind> {
    envelopes(out)
        .into_iter()
        .filter_map(|e| match &e.body {
            Body::Anomaly(a) => Some(a.kind),
            _ => None,
        })
        .collect()
}

#[test]
fn an_anomaly_detail_over_the_text_limit_is_cut_at_a_character_boundary() {
    let max = crate::protocol::message::MAX_TEXT_BYTES;
    let mut g = connected();
    // ASCII: cut at exactly the limit. 3-byte characters: at the last boundary below it.
    for (detail, kept) in [("x".repeat(max + 10), max), ("あ".repeat(max), max / 3 * 3)] {
        g.handle_anomaly(at(1), AnomalyKind::Storage, "ST-STORE-1", detail.clone());
        let out = drain(&mut g);
        let Body::Anomaly(a) = &envelopes(&out)[0].body else {
            panic!("an anomaly")
        };
        assert_eq!(a.detail.len(), kept);
        assert!(detail.starts_with(&a.detail));
    }
}

#[test]
fn at_most_ten_anomalies_of_a_kind_are_sent_per_60_s_window_and_the_rest_are_counted() {
    let mut g = connected();
    for _ in 0..15 {
        g.handle_inbound(at(1), security_refusal());
    }
    // Another kind has its own window.
    for n in 1..=3 {
        g.handle_inbound(at(2), stale_start(at(2), n));
    }
    let out = drain(&mut g);
    let kinds = anomaly_kinds(&out);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == AnomalyKind::Security)
            .count(),
        10
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == AnomalyKind::Stale).count(),
        3
    );
    assert_eq!((g.anomaly_count(), g.anomalies_dropped()), (18, 5));
    // Every anomaly is still an event (audit log).
    let logged = events(&mut g)
        .iter()
        .filter(|e| matches!(e, GatewayEvent::Anomaly { .. }))
        .count();
    assert_eq!(logged, 18);
    // Still the window that began at 1 s: dropped.
    g.handle_inbound(at(60), security_refusal());
    assert!(anomaly_kinds(&drain(&mut g)).is_empty());
    // A new window begins with the first anomaly after it ended.
    g.handle_inbound(at(61), security_refusal());
    assert_eq!(anomaly_kinds(&drain(&mut g)), vec![AnomalyKind::Security]);
    assert_eq!(g.anomalies_dropped(), 6);
    // monitor.status reports both counters.
    g.handle_timeout(at(61));
    let out = drain(&mut g);
    let m = envelopes(&out)
        .into_iter()
        .find_map(|e| match &e.body {
            Body::MonitorStatus(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((m.anomalies, m.anomalies_dropped), (20, 6));
}

#[test]
fn anomalies_while_offline_are_queued_up_to_100_and_sent_after_the_first_status() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    // 100 + 3 while offline: the 3 oldest are dropped. Kinds alternate so the rate limit
    // (10 per kind) decides what is sent after the connect.
    for i in 0..103 {
        if i % 2 == 0 {
            g.handle_inbound(t0(), security_refusal());
        } else {
            g.handle_inbound(t0(), foreign_start(i));
        }
    }
    assert_eq!(g.anomalies_dropped(), 3);
    g.handle_connected(at(1));
    let out = drain(&mut g);
    assert_eq!(out.len(), 1, "nothing but connect before the session");
    let c = connect_id(&out).unwrap();
    answer_connect(&mut g, at(2), &c, ResultCode::Ok, 60, 30);
    let out = drain(&mut g);
    assert_eq!(
        out[0].message_type(),
        MessageType::MonitorStatus,
        "status first"
    );
    let kinds = anomaly_kinds(&out);
    assert_eq!(kinds.len(), 20, "10 per kind");
    assert_eq!(out.len(), 21);
    // The oldest queued were dropped: the first sent is the 4th detected (index 3).
    assert_eq!(kinds[0], AnomalyKind::Unauthorized);
    assert_eq!(g.anomalies_dropped(), 3 + 80);
    assert_eq!(g.anomaly_count(), 103);
}

#[test]
fn anomalies_the_adapter_could_not_seal_are_kept_and_sent_when_sealing_works_again() {
    // DES-CERT-8: connected, but the held platform certificate no longer seals.
    let mut g = connected();
    g.handle_inbound(at(1), security_refusal());
    let out = drain(&mut g);
    assert_eq!(anomaly_kinds(&out), vec![AnomalyKind::Security]);
    let first: Vec<Envelope> = envelopes(&out).into_iter().cloned().collect();
    for e in &first {
        g.handle_unsealable(e.clone());
    }
    // A status that could not be sealed is not kept.
    g.handle_timeout(at(61));
    let statuses: Vec<Envelope> = envelopes(&drain(&mut g)).into_iter().cloned().collect();
    assert!(!statuses.is_empty());
    for e in statuses {
        assert_eq!(e.message_type(), MessageType::MonitorStatus);
        g.handle_unsealable(e);
    }
    assert!(drain(&mut g).is_empty(), "nothing sent while unsealable");
    g.handle_sealing_restored(at(62));
    let out = drain(&mut g);
    let again = envelopes(&out);
    assert_eq!(again.len(), 1, "the anomaly once, no status: {again:?}");
    assert_eq!(
        again[0].message_id, first[0].message_id,
        "as made at detection"
    );
    assert_eq!(g.anomalies_dropped(), 0);
}

#[test]
fn unsealable_anomalies_are_bounded_like_the_offline_queue() {
    let mut g = connected();
    // One per 61 s, so that the rate limit lets each out of the core.
    for i in 0..(ANOMALY_QUEUE_LEN as i64 + 2) {
        g.handle_anomaly(
            at(1 + i * 61),
            AnomalyKind::Storage,
            "ST-STORE-1",
            format!("a{i}"),
        );
        for e in envelopes(&drain(&mut g))
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
        {
            g.handle_unsealable(e);
        }
    }
    assert_eq!(g.anomalies_dropped(), 2, "the 2 oldest over the bound");
    g.handle_sealing_restored(at(1 + 103 * 61));
    assert_eq!(
        anomaly_kinds(&drain(&mut g)).len(),
        10,
        "the rate limit applies"
    );
    assert_eq!(g.anomalies_dropped(), 2 + 90);
}

// ---------------------------------------------------------------- gateway: start / stop

#[test]
fn start_is_applied_and_answered_ok_with_the_running_state() {
    let mut g = connected();
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 10), None));
    let out = drain(&mut g);
    let e = envelopes(&out);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].message_type(), MessageType::PeriodicStartResult);
    assert_eq!(result_code(e[0]), ResultCode::Ok);
    assert_eq!(e[0].in_reply_to, Some(mid("p.s1")));
    let Body::PeriodicStartResult(s) = &e[0].body else {
        panic!()
    };
    assert!(s.running && s.command_seq == 1 && s.interval_sec == 10);
    assert!(
        events(&mut g)
            .iter()
            .any(|e| matches!(e, GatewayEvent::StartStoring { command_seq: 1, .. }))
    );
}

#[test]
fn stop_with_lower_command_seq_than_applied_start_is_superseded() {
    let mut g = connected();
    g.handle_inbound(t0(), down(t0(), "p.s5", start_body(5, 10), None));
    drain(&mut g);
    events(&mut g);
    let stop = Body::PeriodicStop(PeriodicStop { command_seq: 4 });
    g.handle_inbound(t0(), down(t0(), "p.t4", stop, None));
    let out = drain(&mut g);
    let e = envelopes(&out);
    assert_eq!(result_code(e[0]), ResultCode::Superseded);
    let Body::PeriodicStopResult(s) = &e[0].body else {
        panic!()
    };
    assert_eq!(
        s.command_seq, 5,
        "the result carries the applied commandSeq"
    );
    assert!(g.periodic().running);
    assert!(
        !events(&mut g)
            .iter()
            .any(|e| matches!(e, GatewayEvent::StopStoring { .. }))
    );
}

#[test]
fn stop_with_higher_command_seq_stops_storing() {
    let mut g = started();
    let stop = Body::PeriodicStop(PeriodicStop { command_seq: 2 });
    g.handle_inbound(t0(), down(t0(), "p.t2", stop, None));
    let out = drain(&mut g);
    assert_eq!(result_code(envelopes(&out)[0]), ResultCode::Ok);
    assert!(!g.periodic().running);
    assert_eq!(
        g.handle_ingest(t0(), &ds("billing"), &[100; 1]),
        Err(IngestError::NotStarted)
    );
}

#[test]
fn start_naming_an_unknown_dataset_is_refused_and_not_applied() {
    let mut g = connected();
    let body = Body::PeriodicStart(PeriodicStart {
        command_seq: 1,
        datasets: vec![ds("water")],
        interval_sec: 10,
        format: ProfileFormat::Json,
    });
    g.handle_inbound(t0(), down(t0(), "p.s1", body, None));
    let out = drain(&mut g);
    assert_eq!(result_code(envelopes(&out)[0]), ResultCode::UnknownDataset);
    assert!(!g.periodic().running);
    assert_eq!(g.periodic().command_seq, 0);
}

#[test]
fn duplicate_start_message_id_is_answered_from_the_reply_cache_and_applied_once() {
    let mut g = connected();
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 10), None));
    let first = drain(&mut g);
    events(&mut g);
    g.handle_inbound(at(5), down(t0(), "p.s1", start_body(1, 10), None));
    let second = drain(&mut g);
    assert_eq!(first, second, "the stored reply, same message ID");
    assert!(
        !events(&mut g)
            .iter()
            .any(|e| matches!(e, GatewayEvent::StartStoring { .. }))
    );
}

#[test]
fn command_with_timestamp_outside_300_s_is_stale_reported_and_not_applied() {
    let mut g = connected();
    g.handle_inbound(at(400), down(at(99), "p.s1", start_body(1, 10), None));
    let out = drain(&mut g);
    let e = envelopes(&out);
    assert!(e.iter().any(|e| e.message_type() == MessageType::Anomaly));
    let res = e
        .iter()
        .find(|e| e.message_type() == MessageType::PeriodicStartResult)
        .unwrap();
    assert_eq!(result_code(res), ResultCode::Stale);
    assert!(!g.periodic().running);
    assert_eq!(g.anomaly_count(), 1);
}

#[test]
fn command_for_another_gateway_is_unauthorized_reported_and_not_applied() {
    let mut g = connected();
    let Inbound::Opened {
        topic,
        mut envelope,
    } = down(t0(), "p.s1", start_body(1, 10), None)
    else {
        unreachable!()
    };
    envelope.gateway_id = GatewayId::new("GW0002").unwrap();
    g.handle_inbound(t0(), Inbound::Opened { topic, envelope });
    let out = drain(&mut g);
    let e = envelopes(&out);
    assert!(e.iter().any(|e| e.message_type() == MessageType::Anomaly));
    let res = e
        .iter()
        .find(|e| e.message_type() == MessageType::PeriodicStartResult)
        .unwrap();
    assert_eq!(result_code(res), ResultCode::Unauthorized);
    assert!(!g.periodic().running);
}

#[test]
fn command_on_another_tenants_topic_is_not_applied() {
    let mut g = connected();
    let Inbound::Opened { envelope, .. } = down(t0(), "p.s1", start_body(1, 10), None) else {
        unreachable!()
    };
    let topic = topic_for(
        &GatewayId::new("GW0002").unwrap(),
        MessageType::PeriodicStart,
    );
    g.handle_inbound(t0(), Inbound::Opened { topic, envelope });
    assert!(!g.periodic().running);
    assert_eq!(g.anomaly_count(), 1);
}

#[test]
fn refused_message_is_reported_as_an_anomaly_and_not_acted_on() {
    let mut g = connected();
    let topic = topic_for(&gw(), MessageType::PeriodicStart);
    g.handle_inbound(
        t0(),
        Inbound::Refused {
            topic,
            error: InboundError::Security,
            peek: None,
        },
    );
    let out = drain(&mut g);
    let e = envelopes(&out);
    assert_eq!(e.len(), 1);
    let Body::Anomaly(a) = &e[0].body else {
        panic!()
    };
    assert_eq!(a.rule, "IF-PSTART-2");
    assert!(!g.periodic().running);
}

// ---------------------------------------------------------------- gateway: data

#[test]
fn ingest_is_refused_unless_periodic_storing_is_started_for_the_dataset() {
    let mut g = connected();
    assert_eq!(
        g.handle_ingest(t0(), &ds("billing"), &[100; 2]),
        Err(IngestError::NotStarted)
    );
    let body = Body::PeriodicStart(PeriodicStart {
        command_seq: 1,
        datasets: vec![ds("ledger")],
        interval_sec: 10,
        format: ProfileFormat::Json,
    });
    g.handle_inbound(t0(), down(t0(), "p.s1", body, None));
    assert_eq!(
        g.handle_ingest(t0(), &ds("billing"), &[100; 2]),
        Err(IngestError::NotCovered(ds("billing")))
    );
    assert_eq!(
        g.handle_ingest(t0(), &ds("water"), &[100; 2]),
        Err(IngestError::UnknownDataset(ds("water")))
    );
    assert_eq!(
        g.handle_ingest(t0(), &ds("ledger"), &[100; 0]),
        Err(IngestError::Empty)
    );
    assert_eq!(g.handle_ingest(t0(), &ds("ledger"), &[100; 2]), Ok(r(1, 2)));
}

#[test]
fn records_storage_committed_are_indexed_in_seq_order_even_if_storing_stopped_since() {
    // The store assigns seqs inside its commit (DES-FTP-6); the core indexes the commit.
    let mut g = connected();
    assert_eq!(
        g.handle_stored(&ds("billing"), r(2, 3), &[100; 2], at(1)),
        Err(IngestError::OutOfOrder {
            expected: 1,
            got: r(2, 3)
        }),
        "a commit that skips seqs is refused"
    );
    assert_eq!(
        g.handle_stored(&ds("billing"), r(1, 3), &[100; 2], at(1)),
        Err(IngestError::OutOfOrder {
            expected: 1,
            got: r(1, 3)
        }),
        "one seq per record"
    );
    assert_eq!(
        g.handle_stored(&ds("water"), r(1, 1), &[100], at(1)),
        Err(IngestError::UnknownDataset(ds("water")))
    );
    // Not started (a stop overtook the upload): the durable rows are indexed all the same.
    assert_eq!(
        g.handle_stored(&ds("billing"), r(1, 2), &[100; 2], at(1)),
        Ok(())
    );
    assert_eq!(g.last_seq(), 2);
    assert_eq!(g.unacked_records(), 2);
    assert_eq!(g.batches()[0].ingested_at, at(1), "the store's ingest time");
    // After a start they are sent like any other.
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 10), None));
    drain(&mut g);
    g.handle_timeout(at(10));
    let sent = data_of(&drain(&mut g));
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0.clone(), sent[0].1), (ds("billing"), r(1, 2)));
}

#[test]
fn periodic_data_is_sent_every_interval_in_capped_single_dataset_ranges() {
    let mut g = started();
    assert_eq!(
        g.handle_ingest(t0(), &ds("billing"), &[100; 4]),
        Ok(r(1, 4))
    );
    assert_eq!(g.handle_ingest(t0(), &ds("ledger"), &[100; 1]), Ok(r(5, 5)));
    g.handle_timeout(at(9));
    assert!(
        data_of(&drain(&mut g)).is_empty(),
        "not before the interval"
    );
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    let got: Vec<_> = d.iter().map(|(ds, r, k, _)| (ds.clone(), *r, *k)).collect();
    assert_eq!(
        got,
        vec![
            (ds("billing"), r(1, 3), DataKind::Periodic),
            (ds("billing"), r(4, 4), DataKind::Periodic),
            (ds("ledger"), r(5, 5), DataKind::Periodic),
        ]
    );
    g.handle_timeout(at(20));
    assert!(
        data_of(&drain(&mut g)).is_empty(),
        "records in flight are not sent twice per interval"
    );
}

fn ack(g: &mut GatewayCore, now: Time, to: &MessageId, range: SeqRange, code: ResultCode) {
    let o = if code == ResultCode::Ok {
        Outcome::ok()
    } else {
        Outcome::new(code, "x")
    };
    let id = format!("p.a{}", to.as_str().replace('.', "-"));
    g.handle_inbound(
        now,
        down(now, &id, Body::DataAck(DataAck { range }), Some((to, o))),
    );
}

#[test]
fn data_ack_marks_records_acknowledged_and_stops_retransmission() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    events(&mut g);
    ack(&mut g, at(11), &d[0].3, r(1, 2), ResultCode::Ok);
    assert!(events(&mut g).contains(&GatewayEvent::RecordsAcked {
        dataset: ds("billing"),
        range: r(1, 2)
    }));
    assert_eq!(g.unacked_records(), 0);
    g.handle_timeout(at(60));
    assert!(data_of(&drain(&mut g)).is_empty());
}

#[test]
fn the_oldest_unacknowledged_age_follows_the_oldest_unacked_ingest_and_is_0_when_all_are_acked() {
    let mut g = started();
    assert_eq!(g.oldest_unacked_sec(at(5)), 0, "nothing stored");
    g.handle_ingest(at(1), &ds("billing"), &[100; 2]).unwrap();
    g.handle_ingest(at(7), &ds("ledger"), &[100; 1]).unwrap();
    assert_eq!(g.oldest_unacked_sec(at(31)), 30);
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    // The first ingest acknowledged: the age is the second one's.
    let first = d.iter().find(|x| x.1 == r(1, 2)).unwrap().3.clone();
    ack(&mut g, at(11), &first, r(1, 2), ResultCode::Ok);
    assert_eq!(g.oldest_unacked_sec(at(31)), 24);
    let second = d.iter().find(|x| x.1 == r(3, 3)).unwrap().3.clone();
    ack(&mut g, at(12), &second, r(3, 3), ResultCode::Ok);
    assert_eq!(g.oldest_unacked_sec(at(31)), 0);
}

#[test]
fn data_ack_with_a_different_range_or_a_failure_code_acknowledges_nothing() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    ack(&mut g, at(11), &d[0].3, r(1, 1), ResultCode::Ok);
    ack(&mut g, at(11), &d[0].3, r(1, 2), ResultCode::Busy);
    ack(&mut g, at(11), &d[0].3, r(1, 2), ResultCode::SecurityFailed);
    assert_eq!(g.unacked_records(), 2);
}

#[test]
fn a_data_ack_naming_another_range_is_reported_as_a_malformed_anomaly() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    ack(&mut g, at(11), &d[0].3, r(1, 1), ResultCode::Ok);
    let out = drain(&mut g);
    let anomalies: Vec<_> = envelopes(&out)
        .into_iter()
        .filter_map(|e| match &e.body {
            Body::Anomaly(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(anomalies.len(), 1);
    assert_eq!(anomalies[0].kind, AnomalyKind::Malformed);
    assert_eq!(anomalies[0].rule, "DES-MSG-DATA-2");
    // Still in flight: sent again, same message, when the ack timeout fires.
    g.handle_timeout(at(40));
    let again = data_of(&drain(&mut g));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].3, d[0].3);
}

#[test]
fn data_refused_as_malformed_is_given_up_and_its_records_held_not_rebuilt() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    ack(&mut g, at(11), &d[0].3, r(1, 2), ResultCode::Malformed);
    let out = drain(&mut g);
    assert!(envelopes(&out).iter().any(|e| matches!(
        &e.body,
        Body::Anomaly(a) if a.kind == AnomalyKind::Malformed && a.rule == "DES-MSG-DATA-5"
            && a.detail.contains("MALFORMED") && a.detail.contains("1..=2")
    )));
    assert_eq!(g.unacked_records(), 2, "still stored and unacknowledged");
    assert_eq!(g.held_records(), 2);
    assert!(g.snapshot().batches.iter().all(|b| b.held), "persisted");
    // No endless rebuild: periodic sending never picks held records again.
    for t in (20..=600).step_by(10) {
        g.handle_timeout(at(t));
        assert!(
            data_of(&drain(&mut g)).is_empty(),
            "held records sent at {t}"
        );
    }
}

#[test]
fn no_new_periodic_data_message_starts_while_eight_are_unacknowledged() {
    let mut g = started();
    // 30 records, 3 per message: 10 messages' worth.
    g.handle_ingest(t0(), &ds("billing"), &[100; 30]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    assert_eq!(d.len(), MAX_DATA_IN_FLIGHT);
    ack(&mut g, at(11), &d[0].3, d[0].1, ResultCode::Ok);
    g.handle_timeout(at(20));
    let more = data_of(&drain(&mut g));
    assert_eq!(more.len(), 1, "one slot free");
    assert_eq!(more[0].1, r(25, 27));
}

#[test]
fn unacked_data_is_sent_again_as_the_same_message_with_the_timeout_doubling_up_to_eight_times() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let first: Vec<_> = std::iter::from_fn(|| g.poll_transmit())
        .filter_map(|t| match t {
            Transmit::Data(d) => Some(d),
            Transmit::Message { .. } => None,
        })
        .collect();
    assert_eq!(first.len(), 1);
    assert!(!first[0].retransmission);
    // ackTimeoutSec 30: sent again at +30, +60, +120, +240, then every +240 (8×).
    let mut sent_at = vec![];
    for t in 11..=1000 {
        g.handle_timeout(at(t));
        for x in std::iter::from_fn(|| g.poll_transmit()) {
            if let Transmit::Data(d) = x {
                assert!(d.retransmission, "no new message while one is in flight");
                assert_eq!(d.message_id, first[0].message_id, "same message ID");
                assert_eq!(d.timestamp, first[0].timestamp, "same envelope timestamp");
                assert_eq!((d.range, d.format), (first[0].range, first[0].format));
                sent_at.push(t);
            }
        }
    }
    assert_eq!(sent_at, vec![40, 100, 220, 460, 700, 940]);
    ack(
        &mut g,
        at(1001),
        &first[0].message_id,
        r(1, 2),
        ResultCode::Ok,
    );
    assert_eq!(g.unacked_records(), 0);
}

#[test]
fn a_stop_ends_new_periodic_messages_but_data_already_sent_is_still_retransmitted() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let first = data_of(&drain(&mut g));
    let stop = Body::PeriodicStop(PeriodicStop { command_seq: 2 });
    g.handle_inbound(at(11), down(at(11), "p.t2", stop, None));
    drain(&mut g);
    g.handle_timeout(at(40));
    let again = data_of(&drain(&mut g));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].3, first[0].3, "the same message, sent again");
    ack(&mut g, at(41), &first[0].3, r(1, 2), ResultCode::Ok);
    assert_eq!(g.unacked_records(), 0);
    g.handle_timeout(at(1000));
    assert!(
        data_of(&drain(&mut g)).is_empty(),
        "nothing new while stopped"
    );
}

#[test]
fn a_periodic_result_without_ack_is_sent_again_five_times_then_reported() {
    let mut g = connected();
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 100), None));
    let out = drain(&mut g);
    let result = envelopes(&out)[0].clone();
    assert_eq!(result.message_type(), MessageType::PeriodicStartResult);
    let mut again = vec![];
    for t in 1..=200 {
        g.handle_timeout(at(t));
        for e in envelopes(&drain(&mut g)) {
            match &e.body {
                Body::PeriodicStartResult(_) => {
                    assert_eq!(e, &result, "the same result message");
                    again.push(t);
                }
                Body::Anomaly(a) => {
                    assert_eq!(a.rule, "DES-MSG-PS-5");
                    again.push(-t);
                }
                _ => {}
            }
        }
    }
    assert_eq!(again, vec![30, 60, 90, 120, 150, -180]);
    assert!(g.periodic().running, "the state is kept");
}

#[test]
fn an_acknowledged_periodic_result_is_not_sent_again() {
    let mut g = connected();
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 100), None));
    let out = drain(&mut g);
    let result = envelopes(&out)[0].message_id.clone();
    g.handle_inbound(
        at(1),
        down(
            at(1),
            "p.k1",
            Body::Ack(Empty {}),
            Some((&result, Outcome::ok())),
        ),
    );
    g.handle_timeout(at(31));
    assert!(
        !envelopes(&drain(&mut g))
            .iter()
            .any(|e| e.message_type() == MessageType::PeriodicStartResult)
    );
}

// ---------------------------------------------------------------- gateway: resend

fn resend(g: &mut GatewayCore, now: Time, id: &str, req: ResendRequest) -> Vec<Transmit> {
    g.handle_inbound(now, down(now, id, Body::ResendRequest(req), None));
    drain(g)
}

#[test]
fn resend_by_seq_range_returns_exactly_the_requested_records() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 5]).unwrap(); // 1..=5
    g.handle_ingest(t0(), &ds("ledger"), &[100; 2]).unwrap(); // 6..=7
    let out = resend(
        &mut g,
        at(1),
        "p.r1",
        ResendRequest {
            dataset: None,
            seq: Some(r(2, 6)),
            time: None,
        },
    );
    let e = envelopes(&out);
    assert_eq!(e[0].message_type(), MessageType::ResendResult);
    assert_eq!(result_code(e[0]), ResultCode::Ok);
    let Body::ResendResult(rr) = &e[0].body else {
        panic!()
    };
    let d = data_of(&out);
    assert_eq!(rr.records, 5);
    assert_eq!(rr.messages as usize, d.len());
    let got: Vec<_> = d.iter().map(|(ds, r, k, _)| (ds.clone(), *r, *k)).collect();
    // Batches are message units (cap 3: billing 1..=3, 4..=5): cut at their edges.
    assert_eq!(
        got,
        vec![
            (ds("billing"), r(2, 3), DataKind::Resend),
            (ds("billing"), r(4, 5), DataKind::Resend),
            (ds("ledger"), r(6, 6), DataKind::Resend),
        ]
    );
    let Transmit::Data(req) = &out[1] else {
        panic!()
    };
    assert_eq!(req.request, Some(mid("p.r1")));
}

#[test]
fn records_a_resend_still_has_to_send_are_pinned_against_evacuation_until_acknowledged() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap(); // 1..=2
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    ack(&mut g, at(11), &d[0].3, r(1, 2), ResultCode::Ok);
    assert!(
        g.pinned_ranges().is_empty(),
        "acknowledged, nothing to send"
    );
    let out = resend(
        &mut g,
        at(12),
        "p.r1",
        ResendRequest {
            dataset: None,
            seq: Some(r(1, 2)),
            time: None,
        },
    );
    let sent = data_of(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(g.pinned_ranges(), vec![r(1, 2)]);
    assert_eq!(
        g.handle_evacuated(r(2, 2)),
        Err(EvacuateError::Pinned(r(2, 2)))
    );
    ack(&mut g, at(13), &sent[0].3, r(1, 2), ResultCode::Ok);
    assert!(g.pinned_ranges().is_empty());
    assert_eq!(g.handle_evacuated(r(1, 2)), Ok(2));
}

#[test]
fn resend_beyond_last_seq_is_partial_and_of_nothing_is_not_found() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    let out = resend(
        &mut g,
        at(1),
        "p.r1",
        ResendRequest {
            dataset: None,
            seq: Some(r(2, 9)),
            time: None,
        },
    );
    assert_eq!(result_code(envelopes(&out)[0]), ResultCode::Partial);
    let d = data_of(&out);
    assert_eq!(d.len(), 1);
    // One resend at a time (DES-MSG-RS-2): finish this one first.
    ack(&mut g, at(1), &d[0].3, d[0].1, ResultCode::Ok);
    drain(&mut g);
    let out = resend(
        &mut g,
        at(1),
        "p.r2",
        ResendRequest {
            dataset: None,
            seq: Some(r(5, 9)),
            time: None,
        },
    );
    assert_eq!(result_code(envelopes(&out)[0]), ResultCode::NotFound);
    assert!(data_of(&out).is_empty());
    let out = resend(
        &mut g,
        at(1),
        "p.r3",
        ResendRequest {
            dataset: Some(ds("ledger")),
            seq: Some(r(1, 2)),
            time: None,
        },
    );
    assert_eq!(result_code(envelopes(&out)[0]), ResultCode::NotFound);
}

#[test]
fn resend_by_time_range_selects_by_ingest_time() {
    let mut g = started();
    g.handle_ingest(at(0), &ds("billing"), &[100; 1]).unwrap();
    g.handle_ingest(at(5), &ds("billing"), &[100; 1]).unwrap();
    g.handle_ingest(at(9), &ds("billing"), &[100; 1]).unwrap();
    let out = resend(
        &mut g,
        at(9),
        "p.r1",
        ResendRequest {
            dataset: None,
            seq: None,
            time: Some(TimeRange {
                from: at(4),
                to: at(9),
            }),
        },
    );
    let got: Vec<_> = data_of(&out).iter().map(|d| d.1).collect();
    assert_eq!(got, vec![r(2, 3)]);
}

// ---------------------------------------------------------------- gateway: restart, status

#[test]
fn restart_continues_sequence_numbers_and_increments_boot_count() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 3]).unwrap();
    let snap = g.snapshot();
    let mut g2 = GatewayCore::restore(cfg(), snap, at(50));
    assert_eq!(g2.boot_count(), g.boot_count() + 1);
    assert!(g2.periodic().running, "periodic state resumes");
    assert_eq!(
        g2.handle_ingest(at(50), &ds("billing"), &[100; 1]),
        Ok(r(4, 4))
    );
    assert_eq!(g2.unacked_records(), 4);
    // A snapshot whose counter lags its index never makes the core reuse numbers.
    let mut lagging = g2.snapshot();
    lagging.next_seq = 2;
    let mut g3 = GatewayCore::restore(cfg(), lagging, at(60));
    assert_eq!(
        g3.handle_ingest(at(60), &ds("billing"), &[100; 1]),
        Ok(r(5, 5))
    );
}

#[test]
fn snapshot_round_trips_through_json() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 4]).unwrap();
    let snap = g.snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    let back: GatewaySnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
}

#[test]
fn connect_result_acked_through_marks_records_acknowledged() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 4]).unwrap();
    let mut g = GatewayCore::restore(cfg(), g.snapshot(), at(1));
    g.handle_connected(at(1));
    let out = drain(&mut g);
    let Body::Connect(c) = &envelopes(&out)[0].body else {
        panic!()
    };
    assert_eq!(c.last_seq, 4);
    let cr = Body::ConnectResult(ConnectResult {
        version: 1,
        monitor_interval_sec: 60,
        ack_timeout_sec: 30,
        acked_through: 2,
    });
    g.handle_inbound(
        at(1),
        down(at(1), "p.c", cr, Some((out[0].message_id(), Outcome::ok()))),
    );
    assert_eq!(g.unacked_records(), 2);
}

#[test]
fn monitor_status_is_sent_right_after_the_session_opens_and_then_every_monitor_interval() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    let out = drain(&mut g);
    let connect = envelopes(&out)[0].message_id.clone();
    let cr = Body::ConnectResult(ConnectResult {
        version: 1,
        monitor_interval_sec: 60,
        ack_timeout_sec: 30,
        acked_through: 0,
    });
    g.handle_inbound(
        t0(),
        down(t0(), "p.c1", cr, Some((&connect, Outcome::ok()))),
    );
    let out = drain(&mut g);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message_type(), MessageType::MonitorStatus);
    g.handle_timeout(at(59));
    assert!(drain(&mut g).is_empty());
    g.handle_timeout(at(60));
    let out = drain(&mut g);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message_type(), MessageType::MonitorStatus);
    assert_eq!(g.poll_timeout(), Some(at(120)));
}

#[test]
fn shutdown_sends_disconnect_and_nothing_after() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 1]).unwrap();
    g.handle_shutdown(at(1));
    let out = drain(&mut g);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message_type(), MessageType::Disconnect);
    // A command arriving while disconnecting is answered INVALID_STATE, not applied.
    let stop = Body::PeriodicStop(PeriodicStop { command_seq: 2 });
    g.handle_inbound(at(1), down(at(1), "p.t2", stop, None));
    let answered = drain(&mut g);
    assert_eq!(answered.len(), 1);
    assert_eq!(
        result_code(envelopes(&answered)[0]),
        ResultCode::InvalidState
    );
    assert!(g.periodic().running);
    g.handle_inbound(
        at(2),
        down(
            at(2),
            "p.d",
            Body::DisconnectResult(Empty {}),
            Some((out[0].message_id(), Outcome::ok())),
        ),
    );
    assert!(events(&mut g).contains(&GatewayEvent::Closed));
    g.handle_timeout(at(100));
    assert!(drain(&mut g).is_empty());
    assert_eq!(g.poll_timeout(), None);
}

#[test]
fn a_resend_request_while_earlier_resend_data_is_unacknowledged_is_answered_busy() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    let req = ResendRequest {
        dataset: None,
        seq: Some(r(1, 2)),
        time: None,
    };
    let first = resend(&mut g, at(1), "p.r1", req.clone());
    assert_eq!(result_code(envelopes(&first)[0]), ResultCode::Ok);
    let d = data_of(&first);
    assert_eq!(d.len(), 1);
    let busy = resend(&mut g, at(2), "p.r2", req.clone());
    assert_eq!(result_code(envelopes(&busy)[0]), ResultCode::Busy);
    assert!(data_of(&busy).is_empty());
    ack(&mut g, at(3), &d[0].3, r(1, 2), ResultCode::Ok);
    drain(&mut g);
    let later = resend(&mut g, at(4), "p.r3", req);
    assert_eq!(result_code(envelopes(&later)[0]), ResultCode::Ok);
}

// ---------------------------------------------------------------- platform

fn pcore() -> PlatformCore {
    PlatformCore::new(PlatformConfig {
        gap_grace_sec: 20,
        ..PlatformConfig::default()
    })
}

fn up(t: &Transmit) -> PlatformInbound {
    let (topic, envelope) = match t.clone() {
        Transmit::Message { topic, envelope } => (topic, envelope),
        Transmit::Data(d) => (d.topic.clone(), d.into_envelope("sealed".into())),
    };
    PlatformInbound::Opened {
        topic,
        envelope,
        sender: gw(),
        profile: Some(ProfileVerdict::Verified),
    }
}

fn pdrain(p: &mut PlatformCore) -> Vec<Envelope> {
    std::iter::from_fn(|| p.poll_transmit())
        .map(|t| t.envelope)
        .collect()
}

/// Delivers everything both ways until both are quiet.
fn pump(g: &mut GatewayCore, p: &mut PlatformCore, now: Time) {
    for _ in 0..50 {
        let gout = drain(g);
        let pout = pdrain(p);
        if gout.is_empty() && pout.is_empty() {
            return;
        }
        for t in &gout {
            p.handle_inbound(now, up(t));
        }
        for e in pout {
            let topic = topic_for(&gw(), e.message_type());
            g.handle_inbound(now, Inbound::Opened { topic, envelope: e });
        }
    }
    panic!("no quiescence");
}

fn connect_both() -> (GatewayCore, PlatformCore) {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    let mut p = pcore();
    g.handle_connected(t0());
    pump(&mut g, &mut p, t0());
    assert!(g.is_connected());
    assert!(p.gateway(&gw()).unwrap().online);
    (g, p)
}

#[test]
fn platform_refuses_connect_whose_gateway_id_differs_from_the_sender() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    let mut p = pcore();
    g.handle_connected(t0());
    let out = drain(&mut g);
    let PlatformInbound::Opened {
        topic,
        envelope,
        profile,
        ..
    } = up(&out[0])
    else {
        unreachable!()
    };
    let other = GatewayId::new("GW0002").unwrap();
    p.handle_inbound(
        t0(),
        PlatformInbound::Opened {
            topic,
            envelope,
            sender: other.clone(),
            profile,
        },
    );
    let replies = pdrain(&mut p);
    assert_eq!(replies.len(), 1);
    assert_eq!(result_code(&replies[0]), ResultCode::Unauthorized);
    assert!(p.gateway(&gw()).is_none_or(|v| !v.online));
    assert!(p.gateway(&other).is_none_or(|v| !v.online));
}

#[test]
fn platform_refuses_connect_without_a_common_version() {
    let mut g = GatewayCore::new(
        GatewayConfig {
            versions: vec![7],
            ..cfg()
        },
        epoch(),
        t0(),
    );
    let mut p = pcore();
    g.handle_connected(t0());
    pump(&mut g, &mut p, t0());
    assert!(!g.is_connected());
    assert!(events(&mut g).iter().any(|e| matches!(
        e,
        GatewayEvent::ConnectRefused {
            code: ResultCode::UnsupportedVersion,
            ..
        }
    )));
}

#[test]
fn records_flow_from_ingest_to_acknowledged_end_to_end() {
    let (mut g, mut p) = connect_both();
    p.command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
        .unwrap();
    pump(&mut g, &mut p, t0());
    assert!(g.periodic().running);
    assert!(p.gateway(&gw()).unwrap().periodic.running);
    g.handle_ingest(at(1), &ds("billing"), &[100; 4]).unwrap();
    g.handle_timeout(at(10));
    pump(&mut g, &mut p, at(10));
    assert_eq!(g.unacked_records(), 0);
    let v = p.gateway(&gw()).unwrap();
    assert_eq!(v.received_per_dataset.get(&ds("billing")), Some(&4));
    assert!(v.gaps.is_empty());
    assert!(v.pending_commands.is_empty());
}

#[test]
fn platform_answers_data_signed_by_another_gateway_unauthorized_and_does_not_store() {
    let (mut g, mut p) = connect_both();
    p.command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
        .unwrap();
    pump(&mut g, &mut p, t0());
    g.handle_ingest(at(1), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let out = drain(&mut g);
    let PlatformInbound::Opened {
        topic, envelope, ..
    } = up(&out[0])
    else {
        unreachable!()
    };
    p.handle_inbound(
        at(10),
        PlatformInbound::Opened {
            topic,
            envelope,
            sender: GatewayId::new("GW0002").unwrap(),
            profile: Some(ProfileVerdict::Verified),
        },
    );
    let replies = pdrain(&mut p);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].message_type(), MessageType::DataAck);
    assert_eq!(result_code(&replies[0]), ResultCode::Unauthorized);
    assert!(p.gateway(&gw()).unwrap().received.is_empty());
}

#[test]
fn platform_answers_a_connect_older_than_the_freshness_window_stale_and_opens_no_session() {
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    let mut p = pcore();
    g.handle_connected(t0());
    let out = drain(&mut g);
    p.handle_inbound(at(301), up(&out[0]));
    let replies = pdrain(&mut p);
    assert_eq!(replies.len(), 1);
    assert_eq!(result_code(&replies[0]), ResultCode::Stale);
    assert!(p.gateway(&gw()).is_none_or(|v| !v.online));
    // The gateway keeps trying: a fresh connect after the retry delay is accepted.
    let topic = topic_for(&gw(), MessageType::ConnectResult);
    g.handle_inbound(
        at(301),
        Inbound::Opened {
            topic,
            envelope: replies[0].clone(),
        },
    );
    assert!(!g.is_connected());
    g.handle_timeout(at(400));
    let again = drain(&mut g);
    assert_eq!(again[0].message_type(), MessageType::Connect);
    p.handle_inbound(at(400), up(&again[0]));
    assert_eq!(result_code(&pdrain(&mut p)[0]), ResultCode::Ok);
}

#[test]
fn platform_answers_data_whose_profile_header_differs_from_the_message_malformed_and_does_not_store()
 {
    let (mut g, mut p) = connect_both();
    p.command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
        .unwrap();
    pump(&mut g, &mut p, t0());
    g.handle_ingest(at(1), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let out = drain(&mut g);
    let PlatformInbound::Opened {
        topic,
        envelope,
        sender,
        ..
    } = up(&out[0])
    else {
        unreachable!()
    };
    p.handle_inbound(
        at(10),
        PlatformInbound::Opened {
            topic,
            envelope,
            sender,
            profile: Some(ProfileVerdict::Mismatch),
        },
    );
    let replies = pdrain(&mut p);
    assert_eq!(replies.len(), 1);
    assert_eq!(result_code(&replies[0]), ResultCode::Malformed);
    assert!(
        replies[0]
            .result
            .as_ref()
            .and_then(|o| o.reason.as_deref())
            .is_some_and(|r| r.starts_with("DES-MSG-DATA-1"))
    );
    let v = p.gateway(&gw()).unwrap();
    assert!(v.received.is_empty());
    assert_eq!(v.anomaly_count, 1);
    assert!(
        !std::iter::from_fn(|| p.poll_event())
            .any(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
    );
}

#[test]
fn platform_answers_data_of_a_dataset_not_registered_for_the_gateway_unknown_dataset() {
    let (mut g, mut p) = connect_both();
    p.set_registered_datasets(&gw(), Some([ds("ledger")].into_iter().collect()));
    p.command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
        .unwrap();
    pump(&mut g, &mut p, t0());
    g.handle_ingest(at(1), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let out = drain(&mut g);
    let PlatformInbound::Opened {
        topic,
        envelope,
        sender,
        ..
    } = up(&out[0])
    else {
        unreachable!()
    };
    // Even a verified profile: the registry is checked first.
    p.handle_inbound(
        at(10),
        PlatformInbound::Opened {
            topic,
            envelope,
            sender,
            profile: Some(ProfileVerdict::Verified),
        },
    );
    let replies = pdrain(&mut p);
    assert_eq!(replies.len(), 1);
    assert_eq!(result_code(&replies[0]), ResultCode::UnknownDataset);
    let v = p.gateway(&gw()).unwrap();
    assert!(v.received.is_empty());
    assert_eq!(v.anomaly_count, 1);
    assert!(
        !std::iter::from_fn(|| p.poll_event())
            .any(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
    );
}

#[test]
fn platform_answers_data_whose_profile_failed_verification_security_failed_and_does_not_store() {
    let (mut g, mut p) = connect_both();
    p.command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
        .unwrap();
    pump(&mut g, &mut p, t0());
    g.handle_ingest(at(1), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let out = drain(&mut g);
    let PlatformInbound::Opened {
        topic,
        envelope,
        sender,
        ..
    } = up(&out[0])
    else {
        unreachable!()
    };
    p.handle_inbound(
        at(10),
        PlatformInbound::Opened {
            topic,
            envelope,
            sender,
            profile: Some(ProfileVerdict::Failed),
        },
    );
    let replies = pdrain(&mut p);
    assert_eq!(result_code(&replies[0]), ResultCode::SecurityFailed);
    let v = p.gateway(&gw()).unwrap();
    assert!(v.received.is_empty());
    assert_eq!(v.anomaly_count, 1);
    assert!(
        !std::iter::from_fn(|| p.poll_event())
            .any(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
    );
}

#[test]
fn platform_retries_an_unanswered_command_with_the_same_command_seq() {
    let (mut g, mut p) = connect_both();
    let seq = p
        .command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
        .unwrap();
    let lost = pdrain(&mut p);
    assert_eq!(lost.len(), 1);
    p.handle_timeout(at(29));
    assert!(pdrain(&mut p).is_empty());
    p.handle_timeout(at(30));
    let again = pdrain(&mut p);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].message_id, lost[0].message_id);
    let (Body::PeriodicStart(a), Body::PeriodicStart(b)) = (&lost[0].body, &again[0].body) else {
        panic!()
    };
    assert_eq!((a.command_seq, b.command_seq), (seq, seq));
    // Both copies arrive: the second is SUPERSEDED by the first, which the platform reads as
    // "already applied".
    for e in lost.into_iter().chain(again) {
        let topic = topic_for(&gw(), e.message_type());
        g.handle_inbound(at(30), Inbound::Opened { topic, envelope: e });
    }
    pump(&mut g, &mut p, at(30));
    let done: Vec<_> = std::iter::from_fn(|| p.poll_event())
        .filter_map(|e| match e {
            PlatformEvent::CommandCompleted { code, .. } => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(done, vec![ResultCode::Ok]);
    assert!(p.gateway(&gw()).unwrap().pending_commands.is_empty());
}

#[test]
fn platform_requests_a_gap_after_the_grace_period() {
    let (mut g, mut p) = connect_both();
    p.command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
        .unwrap();
    pump(&mut g, &mut p, t0());
    g.handle_ingest(at(1), &ds("billing"), &[100; 2]).unwrap();
    g.handle_ingest(at(1), &ds("ledger"), &[100; 1]).unwrap();
    g.handle_timeout(at(10));
    let out: Vec<Transmit> = drain(&mut g)
        .into_iter()
        .filter(|t| matches!(t, Transmit::Data(_)))
        .collect();
    // Lose the billing message (seqs 1-2); deliver the ledger one (seq 3).
    assert_eq!(out.len(), 2);
    p.handle_inbound(at(10), up(&out[1]));
    pump(&mut g, &mut p, at(10));
    assert_eq!(p.gateway(&gw()).unwrap().gaps, vec![r(1, 2)]);
    p.handle_timeout(at(29));
    assert!(pdrain(&mut p).is_empty());
    p.handle_timeout(at(30));
    let req = pdrain(&mut p);
    assert_eq!(req.len(), 1);
    let Body::ResendRequest(rr) = &req[0].body else {
        panic!()
    };
    assert_eq!(rr.seq, Some(r(1, 2)));
    assert!(matches!(
        p.gateway(&gw()).unwrap().pending_commands[0],
        Command::Resend {
            selector: ResendSelector::Seq(_),
            ..
        }
    ));
    let topic = topic_for(&gw(), MessageType::ResendRequest);
    g.handle_inbound(
        at(30),
        Inbound::Opened {
            topic,
            envelope: req[0].clone(),
        },
    );
    pump(&mut g, &mut p, at(30));
    assert!(p.gateway(&gw()).unwrap().gaps.is_empty());
    assert_eq!(g.unacked_records(), 0);
}

#[test]
fn platform_queues_commands_for_an_offline_gateway_and_sends_them_at_connect() {
    let mut p = pcore();
    p.command_stop(t0(), &gw());
    assert!(pdrain(&mut p).is_empty());
    let mut g = GatewayCore::new(cfg(), epoch(), t0());
    g.handle_connected(t0());
    pump(&mut g, &mut p, t0());
    assert_eq!(g.periodic().command_seq, 1);
    assert!(p.gateway(&gw()).unwrap().pending_commands.is_empty());
}

#[test]
fn platform_refuses_data_outside_a_session() {
    let (mut g, mut p) = connect_both();
    p.command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
        .unwrap();
    pump(&mut g, &mut p, t0());
    g.handle_ingest(at(1), &ds("billing"), &[100; 1]).unwrap();
    g.handle_timeout(at(10));
    let out = drain(&mut g);
    p.handle_link_lost(at(10), &gw());
    p.handle_inbound(at(10), up(&out[0]));
    assert_eq!(result_code(&pdrain(&mut p)[0]), ResultCode::Unauthorized);
    assert!(p.gateway(&gw()).unwrap().received.is_empty());
}

#[test]
fn platform_rejects_operator_commands_with_invalid_parameters() {
    let mut p = pcore();
    assert!(
        p.command_start(t0(), &gw(), vec![], 0, ProfileFormat::Json)
            .is_err()
    );
    assert!(
        p.command_resend(
            t0(),
            &gw(),
            None,
            ResendSelector::Time {
                from: at(5),
                to: at(1)
            }
        )
        .is_err()
    );
}

#[test]
fn huge_timer_and_sequence_values_never_panic() {
    let mut g = GatewayCore::new(
        GatewayConfig {
            connect_timeout_sec: i64::MAX,
            ..cfg()
        },
        epoch(),
        t0(),
    );
    g.handle_connected(t0());
    let out = drain(&mut g);
    let cr = Body::ConnectResult(ConnectResult {
        version: 1,
        monitor_interval_sec: u32::MAX,
        ack_timeout_sec: u32::MAX,
        acked_through: u64::MAX,
    });
    g.handle_inbound(
        t0(),
        down(t0(), "p.c", cr, Some((out[0].message_id(), Outcome::ok()))),
    );
    assert!(g.is_connected());
    drain(&mut g);
    let req = ResendRequest {
        dataset: None,
        seq: Some(r(1, u64::MAX)),
        time: None,
    };
    let out = resend(&mut g, t0(), "p.r", req);
    assert_eq!(result_code(envelopes(&out)[0]), ResultCode::NotFound);
    g.handle_timeout(at(1_000_000_000));
}

mod data;
