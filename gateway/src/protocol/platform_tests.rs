//! Flow tests of the platform core alone, with hand-built up messages (protocol revision 1.1):
//! the DES-ENV-8 reply memory and its place before the freshness window, the error
//! precedence of the platform (session, DES-MSG-CONN-3), and DES-MSG-2 replies.

use chrono::DateTime;

use super::flow::{Time, secs};
use super::ids::{Dataset, GatewayId, MessageId, Seq, SeqRange};
use super::message::{
    AnomalyKind, Body, Connect, Data, DataKind, Disconnect, Envelope, MessageType, Outcome,
    PROTOCOL_VERSION, PeriodicState, ProfileFormat, ResultCode, Software,
};
use super::platform_side::{
    PlatformConfig, PlatformCore, PlatformEvent, PlatformInbound, ProfileVerdict, REPLY_MEMORY_SEC,
};
use super::topic::topic_for;

fn t0() -> Time {
    DateTime::parse_from_rfc3339("2026-12-02T09:00:00+09:00").unwrap()
}
fn at(s: i64) -> Time {
    t0() + secs(s)
}
fn gw() -> GatewayId {
    GatewayId::new("GW0001").unwrap()
}
fn mid(s: &str) -> MessageId {
    MessageId::new(s).unwrap()
}
fn r(first: Seq, last: Seq) -> SeqRange {
    SeqRange::new(first, last).unwrap()
}

fn pcore() -> PlatformCore {
    PlatformCore::new(PlatformConfig::default())
}

/// An up message of `gw()` with `id`, created at `ts`, as opened by the adapter.
fn up(ts: Time, id: &str, body: Body) -> PlatformInbound {
    let ty = body.message_type();
    let (in_reply_to, result) = if ty.is_reply() {
        (Some(mid("p0.1")), Some(Outcome::ok()))
    } else {
        (None, None)
    };
    PlatformInbound::Opened {
        topic: topic_for(&gw(), ty),
        envelope: Envelope {
            version: PROTOCOL_VERSION,
            message_id: mid(id),
            gateway_id: gw(),
            timestamp: ts,
            in_reply_to,
            result,
            body,
        },
        sender: gw(),
        profile: (ty == MessageType::Data).then_some(ProfileVerdict::Verified),
    }
}

fn connect(boot_count: u64, last_seq: Seq) -> Body {
    Body::Connect(Connect {
        versions: vec![PROTOCOL_VERSION],
        software: Software {
            vendor: "test".into(),
            product: "test".into(),
            version: "0".into(),
        },
        formats: vec![ProfileFormat::Json],
        boot_count,
        last_seq,
        periodic: PeriodicState::default(),
    })
}

fn data(range: SeqRange) -> Body {
    Body::Data(Data {
        kind: DataKind::Periodic,
        request: None,
        dataset: Dataset::new("billing").unwrap(),
        range,
        format: ProfileFormat::Json,
        profile: "sealed".into(),
    })
}

fn out(p: &mut PlatformCore) -> Vec<Envelope> {
    std::iter::from_fn(|| p.poll_transmit())
        .map(|t| t.envelope)
        .collect()
}
fn events(p: &mut PlatformCore) -> Vec<PlatformEvent> {
    std::iter::from_fn(|| p.poll_event()).collect()
}
fn code(e: &Envelope) -> ResultCode {
    e.result.as_ref().unwrap().code
}

/// A platform with `gw()` connected (boot 1) and its output drained.
fn connected() -> PlatformCore {
    let mut p = pcore();
    p.handle_inbound(t0(), up(t0(), "GW0001.1.1", connect(1, 0)));
    let o = out(&mut p);
    assert_eq!(code(&o[0]), ResultCode::Ok);
    events(&mut p);
    p
}

// ---------------------------------------------------------------- DES-ENV-8

#[test]
fn a_duplicate_connect_is_answered_with_the_identical_stored_reply_and_changes_nothing() {
    let mut p = pcore();
    // A command queued while offline goes out at the connect, once.
    p.command_stop(t0(), &gw());
    let first = up(t0(), "GW0001.1.1", connect(1, 0));
    p.handle_inbound(t0(), first.clone());
    let o1 = out(&mut p);
    let replies1: Vec<&Envelope> = o1.iter().filter(|e| e.in_reply_to.is_some()).collect();
    assert_eq!(replies1.len(), 1);
    assert_eq!(o1.len(), 2, "connect.result and the queued stop: {o1:?}");
    assert!(
        events(&mut p)
            .iter()
            .any(|e| matches!(e, PlatformEvent::GatewayConnected { .. }))
    );

    p.handle_inbound(at(5), first);
    let o2 = out(&mut p);
    assert_eq!(
        o2.len(),
        1,
        "only the stored reply, no command sent again: {o2:?}"
    );
    assert_eq!(&o2[0], replies1[0], "same envelope, same message ID");
    let ev = events(&mut p);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, PlatformEvent::GatewayConnected { .. })),
        "a duplicate opens no session again: {ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, PlatformEvent::Logged { rule, .. } if rule == "DES-ENV-8"))
    );
}

#[test]
fn a_duplicate_connect_after_the_freshness_window_gets_its_ok_again_not_stale() {
    let mut p = pcore();
    let first = up(t0(), "GW0001.1.1", connect(1, 0));
    p.handle_inbound(t0(), first.clone());
    let o1 = out(&mut p);
    assert_eq!(code(&o1[0]), ResultCode::Ok);
    // 400 s later (outside ±300 s, inside the 600 s memory) the same connect arrives again.
    p.handle_inbound(at(400), first);
    let o2 = out(&mut p);
    assert_eq!(o2, o1, "the stored OK, not STALE");
    assert!(
        !events(&mut p)
            .iter()
            .any(|e| matches!(e, PlatformEvent::Anomaly { .. })),
        "no stale anomaly"
    );
}

#[test]
fn a_duplicate_data_message_gets_the_stored_ack_and_is_not_stored_again() {
    let mut p = connected();
    let d = up(at(1), "GW0001.1.2", data(r(1, 5)));
    p.handle_inbound(at(1), d.clone());
    let o1 = out(&mut p);
    assert_eq!(o1.len(), 1);
    assert_eq!(code(&o1[0]), ResultCode::Ok);
    assert_eq!(
        events(&mut p)
            .iter()
            .filter(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
            .count(),
        1
    );
    p.handle_inbound(at(40), d);
    assert_eq!(out(&mut p), o1);
    assert!(
        !events(&mut p)
            .iter()
            .any(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
    );
}

#[test]
fn a_duplicate_start_result_gets_the_stored_ack() {
    let mut p = connected();
    let res = up(
        at(1),
        "GW0001.1.2",
        Body::PeriodicStartResult(PeriodicState {
            running: true,
            datasets: vec![],
            interval_sec: 10,
            format: ProfileFormat::Json,
            command_seq: 1,
        }),
    );
    p.handle_inbound(at(1), res.clone());
    let o1 = out(&mut p);
    assert_eq!(o1.len(), 1);
    assert_eq!(o1[0].message_type(), MessageType::Ack);
    p.handle_inbound(at(31), res);
    assert_eq!(out(&mut p), o1, "the same ack envelope");
}

#[test]
fn a_request_repeated_after_the_memory_expired_is_processed_again() {
    let mut p = connected();
    let d = up(at(1), "GW0001.1.2", data(r(1, 5)));
    p.handle_inbound(at(1), d.clone());
    let o1 = out(&mut p);
    events(&mut p);
    p.handle_inbound(at(1 + REPLY_MEMORY_SEC), d);
    let o2 = out(&mut p);
    assert_eq!(o2.len(), 1);
    assert_eq!(code(&o2[0]), ResultCode::Ok, "stored by seq: OK again");
    assert_ne!(o2[0].message_id, o1[0].message_id, "a new reply");
}

#[test]
fn a_message_id_reused_with_another_timestamp_is_no_duplicate_but_processed_and_reported() {
    let mut p = connected();
    p.handle_inbound(at(1), up(at(1), "GW0001.1.2", data(r(1, 5))));
    let o1 = out(&mut p);
    events(&mut p);
    // Same ID, other timestamp and range: e.g. a gateway restored from a backup.
    p.handle_inbound(at(20), up(at(20), "GW0001.1.2", data(r(6, 8))));
    let o2 = out(&mut p);
    assert_eq!(o2.len(), 1);
    assert_ne!(o2[0], o1[0]);
    let Body::DataAck(a) = &o2[0].body else {
        panic!("{o2:?}")
    };
    assert_eq!(a.range, r(6, 8));
    let ev = events(&mut p);
    assert!(ev.iter().any(|e| matches!(
        e,
        PlatformEvent::Anomaly { rule, kind: AnomalyKind::Malformed, .. } if rule == "DES-ENV-8"
    )));
    assert!(
        ev.iter()
            .any(|e| matches!(e, PlatformEvent::StoreRecords { range, .. } if *range == r(6, 8)))
    );
}

// ---------------------------------------------------------------- precedence

#[test]
fn a_disconnect_outside_a_session_is_answered_ok() {
    let mut p = pcore();
    p.handle_inbound(
        t0(),
        up(
            t0(),
            "GW0001.1.1",
            Body::Disconnect(Disconnect {
                reason: "shutdown".into(),
            }),
        ),
    );
    let o = out(&mut p);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].message_type(), MessageType::DisconnectResult);
    assert_eq!(code(&o[0]), ResultCode::Ok);
    assert!(
        !events(&mut p)
            .iter()
            .any(|e| matches!(e, PlatformEvent::GatewayDisconnected { .. })),
        "no session was open"
    );
}

#[test]
fn stale_data_in_a_session_is_noted_and_still_stored() {
    let mut p = connected();
    // Sent again with its first timestamp, 400 s old now (DES-MSG-DATA-3).
    p.handle_inbound(at(400), up(at(0), "GW0001.1.2", data(r(1, 2))));
    let o = out(&mut p);
    assert_eq!(code(&o[0]), ResultCode::Ok);
    let ev = events(&mut p);
    assert!(
        ev.iter()
            .any(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, PlatformEvent::Logged { rule, .. } if rule == "DES-ENV-7"))
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, PlatformEvent::Anomaly { .. }))
    );
}
