//! Flow tests of the platform core alone, with hand-built up messages (protocol revision 1.1):
//! the DES-ENV-8 reply memory and its place before the freshness window, the error
//! precedence of the platform (DES-MSG-3: session, DES-MSG-CONN-3), DES-MSG-2 replies to
//! what does not decode, and storage epochs (DES-ID-5, DES-MSG-CONN-4).

use chrono::DateTime;

use super::flow::{InboundError, Time, secs};
use super::ids::{Dataset, GatewayId, MessageId, Seq, SeqRange, StoreEpoch};
use super::message::{
    Anomaly, AnomalyKind, Body, Connect, Data, DataKind, Disconnect, Envelope, MessageType,
    Outcome, PROTOCOL_VERSION, PeriodicState, ProfileFormat, ResultCode, Software, peek,
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

/// Storage epoch number `n` (DES-ID-5).
fn ep(n: u8) -> StoreEpoch {
    StoreEpoch::from_bytes([n; 16])
}

fn connect(boot_count: u64, last_seq: Seq) -> Body {
    connect_in(ep(1), boot_count, last_seq)
}

fn connect_in(epoch: StoreEpoch, boot_count: u64, last_seq: Seq) -> Body {
    Body::Connect(Connect {
        versions: vec![PROTOCOL_VERSION],
        software: Software {
            vendor: "test".into(),
            product: "test".into(),
            version: "0".into(),
        },
        formats: vec![ProfileFormat::Json],
        epoch,
        boot_count,
        last_seq,
        periodic: PeriodicState::default(),
    })
}

fn data(range: SeqRange) -> Body {
    data_in(ep(1), range)
}

fn data_in(epoch: StoreEpoch, range: SeqRange) -> Body {
    Body::Data(Data {
        kind: DataKind::Periodic,
        request: None,
        dataset: Dataset::new("billing").unwrap(),
        epoch,
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
/// The seq ranges of the `resend.request`s the platform has sent since the last drain.
fn asked(p: &mut PlatformCore) -> Vec<SeqRange> {
    out(p)
        .into_iter()
        .filter_map(|e| match e.body {
            Body::ResendRequest(rq) => rq.seq,
            _ => None,
        })
        .collect()
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
fn a_data_message_answered_busy_is_processed_again_when_retransmitted() {
    let mut p = connected();
    let PlatformInbound::Opened {
        topic,
        envelope,
        sender,
        ..
    } = up(at(1), "GW0001.1.2", data(r(1, 5)))
    else {
        unreachable!()
    };
    let busy = PlatformInbound::Opened {
        topic: topic.clone(),
        envelope: envelope.clone(),
        sender: sender.clone(),
        profile: Some(ProfileVerdict::Refused(ResultCode::Busy)),
    };
    p.handle_inbound(at(1), busy);
    let o = out(&mut p);
    assert_eq!(o.len(), 1);
    assert_eq!(code(&o[0]), ResultCode::Busy);
    assert!(
        !events(&mut p)
            .iter()
            .any(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
    );
    // The same bytes again (DES-MSG-DATA-3), now storable: processed, not answered from memory.
    let again = PlatformInbound::Opened {
        topic,
        envelope,
        sender,
        profile: Some(ProfileVerdict::Verified),
    };
    p.handle_inbound(at(3), again);
    let o = out(&mut p);
    assert_eq!(o.len(), 1);
    assert_eq!(code(&o[0]), ResultCode::Ok);
    assert_eq!(
        events(&mut p)
            .iter()
            .filter(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
            .count(),
        1
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
    // Known, but its session ended with the link.
    let mut p = connected();
    p.handle_link_lost(t0(), &gw());
    events(&mut p);
    p.handle_inbound(
        t0(),
        up(
            t0(),
            "GW0001.1.2",
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

#[test]
fn a_duplicate_anomaly_report_is_recorded_once() {
    let mut p = connected();
    let a = up(
        at(1),
        "GW0001.1.2",
        Body::Anomaly(Anomaly {
            kind: AnomalyKind::Security,
            rule: "IF-PSTART-2".into(),
            detail: "tampered".into(),
            topic: None,
        }),
    );
    p.handle_inbound(at(1), a.clone());
    p.handle_inbound(at(2), a);
    assert!(out(&mut p).is_empty(), "an anomaly has no reply");
    assert_eq!(p.gateway(&gw()).unwrap().anomaly_count, 1);
}

#[test]
fn a_start_result_outside_a_session_is_neither_applied_nor_acknowledged() {
    let mut p = connected();
    p.handle_link_lost(at(1), &gw());
    p.handle_inbound(
        at(2),
        up(
            at(2),
            "GW0001.1.2",
            Body::PeriodicStartResult(PeriodicState {
                running: true,
                datasets: vec![],
                interval_sec: 10,
                format: ProfileFormat::Json,
                command_seq: 1,
            }),
        ),
    );
    assert!(out(&mut p).is_empty(), "no ack outside a session");
    assert!(!p.gateway(&gw()).unwrap().periodic.running);
}

// ---------------------------------------------------------------- DES-MSG-2

/// The adapter's view of a payload that opened but did not decode.
fn refused(ty: MessageType, bytes: &[u8]) -> PlatformInbound {
    let error = match Envelope::decode(bytes) {
        Err(e) => InboundError::Decode(e),
        Ok(_) => panic!("decodes: {}", String::from_utf8_lossy(bytes)),
    };
    PlatformInbound::Refused {
        topic: topic_for(&gw(), ty),
        error,
        peek: peek(bytes),
    }
}

/// A valid connect envelope of `gw()` as JSON, to be broken by the caller.
fn connect_json(id: &str) -> serde_json::Value {
    let Body::Connect(_) = connect(1, 0) else {
        unreachable!()
    };
    let env = Envelope {
        version: PROTOCOL_VERSION,
        message_id: mid(id),
        gateway_id: gw(),
        timestamp: t0(),
        in_reply_to: None,
        result: None,
        body: connect(1, 0),
    };
    serde_json::from_slice(&env.encode()).unwrap()
}

#[test]
fn an_undecodable_connect_with_a_readable_id_is_answered_with_the_decode_code_and_defaults() {
    let mut unknown_field = connect_json("GW0001.1.1");
    unknown_field["body"]["colour"] = "red".into();
    let mut v2 = connect_json("GW0001.1.2");
    v2["version"] = 2.into();
    let mut huge = connect_json("GW0001.1.3");
    huge["body"]["software"]["vendor"] = "x".repeat(300 * 1024).into();
    for (json, id, want) in [
        (unknown_field, "GW0001.1.1", ResultCode::Malformed),
        (v2, "GW0001.1.2", ResultCode::UnsupportedVersion),
        (huge, "GW0001.1.3", ResultCode::TooLarge),
    ] {
        let mut p = pcore();
        let bytes = serde_json::to_vec(&json).unwrap();
        p.handle_inbound(t0(), refused(MessageType::Connect, &bytes));
        let o = out(&mut p);
        assert_eq!(o.len(), 1, "{want:?}: {o:?}");
        assert_eq!(o[0].message_type(), MessageType::ConnectResult);
        assert_eq!(o[0].in_reply_to, Some(mid(id)));
        assert_eq!(code(&o[0]), want);
        assert!(
            o[0].result.as_ref().unwrap().reason.as_ref().unwrap().len()
                <= super::message::MAX_TEXT_BYTES
        );
        let Body::ConnectResult(c) = &o[0].body else {
            unreachable!()
        };
        let d = PlatformConfig::default();
        assert_eq!(
            (
                c.version,
                c.monitor_interval_sec,
                c.ack_timeout_sec,
                c.acked_through
            ),
            (
                PROTOCOL_VERSION,
                d.monitor_interval_sec,
                d.ack_timeout_sec,
                0
            )
        );
        assert!(p.gateway(&gw()).is_none_or(|v| !v.online), "no session");
        assert!(
            events(&mut p)
                .iter()
                .any(|e| matches!(e, PlatformEvent::Anomaly { .. }))
        );
    }
}

#[test]
fn undecodable_data_is_answered_only_with_a_readable_range_and_disconnect_always() {
    let mut p = connected();
    let bad_data = |id: &str, range: &str| {
        format!(
            r#"{{"version":1,"messageId":"{id}","gatewayId":"GW0001","type":"data","timestamp":"2026-12-02T09:00:00+09:00","body":{{"range":{range},"colour":1}}}}"#
        )
    };
    p.handle_inbound(
        t0(),
        refused(
            MessageType::Data,
            bad_data("GW0001.1.5", r#"{"first":3,"last":4}"#).as_bytes(),
        ),
    );
    let o = out(&mut p);
    assert_eq!(o.len(), 1);
    assert_eq!(
        o[0].body,
        Body::DataAck(super::message::DataAck { range: r(3, 4) })
    );
    assert_eq!(code(&o[0]), ResultCode::Malformed);
    assert!(
        !events(&mut p)
            .iter()
            .any(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
    );
    // No valid range: nothing to acknowledge, no reply.
    p.handle_inbound(
        t0(),
        refused(
            MessageType::Data,
            bad_data("GW0001.1.6", r#"{"first":0,"last":4}"#).as_bytes(),
        ),
    );
    assert!(out(&mut p).is_empty());
    // disconnect → disconnect.result with the code.
    let bad_disc = br#"{"version":1,"messageId":"GW0001.1.7","gatewayId":"GW0001","type":"disconnect","timestamp":"2026-12-02T09:00:00+09:00","body":{}}"#;
    p.handle_inbound(t0(), refused(MessageType::Disconnect, bad_disc));
    let o = out(&mut p);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].message_type(), MessageType::DisconnectResult);
    assert_eq!(code(&o[0]), ResultCode::Malformed);
}

#[test]
fn undecodable_monitor_status_results_and_unopened_or_mislabelled_payloads_get_no_reply() {
    let mut p = connected();
    let body = |ty: &str, id: &str| {
        format!(
            r#"{{"version":1,"messageId":"{id}","gatewayId":"GW0001","type":"{ty}","timestamp":"2026-12-02T09:00:00+09:00","body":{{"x":1}}}}"#
        )
    };
    for (ty, wire) in [
        (MessageType::MonitorStatus, "monitor.status"),
        (MessageType::Anomaly, "anomaly"),
    ] {
        p.handle_inbound(t0(), refused(ty, body(wire, "GW0001.1.8").as_bytes()));
        assert!(out(&mut p).is_empty(), "{wire}");
    }
    // A peeked connect on the data topic: the type is not the topic's, no reply.
    p.handle_inbound(
        t0(),
        refused(MessageType::Data, body("connect", "GW0001.1.9").as_bytes()),
    );
    assert!(out(&mut p).is_empty());
    // Opening failed: never answered, even if something could be peeked.
    let bytes = body("connect", "GW0001.1.10");
    p.handle_inbound(
        t0(),
        PlatformInbound::Refused {
            topic: topic_for(&gw(), MessageType::Connect),
            error: InboundError::Security,
            peek: peek(bytes.as_bytes()),
        },
    );
    assert!(out(&mut p).is_empty());
}

// ---------------------------------------------------------------- DES-MSG-CONN-4

/// A platform that accepted `gw()` in epoch 1 at boot 5 and stored seqs 1..=5, then lost the
/// link.
fn held_five() -> PlatformCore {
    let mut p = pcore();
    p.handle_inbound(t0(), up(t0(), "GW0001.5.1", connect_in(ep(1), 5, 0)));
    p.handle_inbound(at(1), up(at(1), "GW0001.5.2", data_in(ep(1), r(1, 5))));
    let o = out(&mut p);
    assert_eq!(code(&o[1]), ResultCode::Ok);
    p.handle_link_lost(at(2), &gw());
    events(&mut p);
    p
}

fn assert_refused_epoch(p: &mut PlatformCore, reason: &str) {
    let o = out(p);
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(code(&o[0]), ResultCode::InvalidState);
    assert_eq!(
        o[0].result.as_ref().unwrap().reason.as_deref(),
        Some(reason),
        "the reason names DES-MSG-CONN-4"
    );
    let Body::ConnectResult(c) = &o[0].body else {
        panic!("{o:?}")
    };
    assert_eq!(c.acked_through, 0, "a refusal acknowledges nothing");
    let v = p.gateway(&gw()).unwrap();
    assert!(!v.online, "no session");
    assert_eq!(v.boot_count, 5, "nothing changed");
    assert_eq!(v.epoch, Some(ep(1)));
    let ev = events(p);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, PlatformEvent::GatewayConnected { .. }))
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        PlatformEvent::Anomaly { rule, kind: AnomalyKind::Storage, .. } if rule == "DES-MSG-CONN-4"
    )));
}

#[test]
fn a_connect_whose_boot_count_went_backwards_in_its_epoch_is_refused_invalid_state() {
    let mut p = held_five();
    // Restored from a backup taken at boot 3: boots as 4, message IDs of boot 4 again.
    p.handle_inbound(at(100), up(at(100), "GW0001.4.1", connect_in(ep(1), 4, 5)));
    assert_refused_epoch(
        &mut p,
        "DES-MSG-CONN-4: bootCount went backwards: restored from a backup?",
    );
}

#[test]
fn a_connect_whose_last_seq_went_backwards_in_its_epoch_is_refused_invalid_state() {
    let mut p = held_five();
    // A later boot, but its store lost seqs 4..5 the platform holds.
    p.handle_inbound(at(100), up(at(100), "GW0001.6.1", connect_in(ep(1), 6, 3)));
    assert_refused_epoch(
        &mut p,
        "DES-MSG-CONN-4: lastSeq went backwards: restored from a backup?",
    );
}

#[test]
fn an_epoch_with_a_refused_connect_is_retired_so_a_restored_store_that_caught_up_is_refused_too() {
    // A store restored from a backup keeps ingesting while its connect is refused; once its
    // lastSeq reaches the held seqs again it would be accepted and its new records under old
    // seqs acknowledged-and-discarded (DES-MSG-CONN-4). The refusal retires the epoch.
    let mut p = held_five();
    p.handle_inbound(at(100), up(at(100), "GW0001.6.1", connect_in(ep(1), 6, 3)));
    assert_refused_epoch(
        &mut p,
        "DES-MSG-CONN-4: lastSeq went backwards: restored from a backup?",
    );
    p.handle_inbound(at(400), up(at(400), "GW0001.6.2", connect_in(ep(1), 6, 5)));
    assert_refused_epoch(
        &mut p,
        "DES-MSG-CONN-4: epoch retired after a refused connect: restored from a backup?",
    );
    // `sgw new-epoch`: accepted.
    p.handle_inbound(at(500), up(at(500), "GW0001.7.1", connect_in(ep(2), 7, 5)));
    let o = out(&mut p);
    assert_eq!(code(&o[0]), ResultCode::Ok);
}

#[test]
fn an_equal_boot_count_in_the_same_epoch_is_accepted() {
    let mut p = held_five();
    p.handle_inbound(at(100), up(at(100), "GW0001.5.9", connect_in(ep(1), 5, 5)));
    let o = out(&mut p);
    assert_eq!(code(&o[0]), ResultCode::Ok);
    let Body::ConnectResult(c) = &o[0].body else {
        unreachable!()
    };
    assert_eq!(c.acked_through, 5);
    assert!(p.gateway(&gw()).unwrap().online);
}

#[test]
fn a_new_epoch_is_accepted_with_a_new_empty_sequence_space() {
    let mut p = held_five();
    // After `sgw new-epoch`: boot count 4 (lower), lastSeq 5 kept, epoch 2.
    p.handle_inbound(at(100), up(at(100), "GW0001.4.1", connect_in(ep(2), 4, 5)));
    let o = out(&mut p);
    assert_eq!(code(&o[0]), ResultCode::Ok);
    let Body::ConnectResult(c) = &o[0].body else {
        unreachable!()
    };
    assert_eq!(c.acked_through, 0, "nothing of epoch 2 is held");
    assert!(events(&mut p).iter().any(|e| matches!(
        e,
        PlatformEvent::GatewayConnected { epoch, new_epoch: true, boot_count: 4, .. } if *epoch == ep(2)
    )));
    let v = p.gateway(&gw()).unwrap();
    assert_eq!(v.epoch, Some(ep(2)));
    assert!(v.received.is_empty());
    assert_eq!(v.known_last_seq, 5);
    // Seqs 1..2 of epoch 2 are new records, although seqs 1..2 of epoch 1 are held.
    p.handle_inbound(at(101), up(at(101), "GW0001.4.2", data_in(ep(2), r(1, 2))));
    assert_eq!(code(&out(&mut p)[0]), ResultCode::Ok);
    let stored: Vec<_> = events(&mut p)
        .into_iter()
        .filter_map(|e| match e {
            PlatformEvent::StoreRecords { epoch, range, .. } => Some((epoch, range)),
            _ => None,
        })
        .collect();
    assert_eq!(stored, vec![(ep(2), r(1, 2))]);
    // The rest of the new space is asked for after the grace period.
    p.handle_timeout(at(101 + PlatformConfig::default().gap_grace_sec));
    assert_eq!(asked(&mut p), vec![r(3, 5)]);
    // Epoch 2's own rules now apply: its boot count may not go below 4.
    p.handle_link_lost(at(200), &gw());
    p.handle_inbound(at(200), up(at(200), "GW0001.3.1", connect_in(ep(2), 3, 5)));
    assert_eq!(code(&out(&mut p)[0]), ResultCode::InvalidState);
}

#[test]
fn data_of_another_epoch_than_the_sessions_is_refused_invalid_state_and_not_stored() {
    let mut p = held_five();
    p.handle_inbound(at(100), up(at(100), "GW0001.6.1", connect_in(ep(2), 6, 5)));
    out(&mut p);
    events(&mut p);
    p.handle_inbound(at(101), up(at(101), "GW0001.6.2", data_in(ep(1), r(6, 7))));
    let o = out(&mut p);
    assert_eq!(o.len(), 1);
    assert_eq!(code(&o[0]), ResultCode::InvalidState);
    assert_eq!(
        o[0].body,
        Body::DataAck(super::message::DataAck { range: r(6, 7) })
    );
    let ev = events(&mut p);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, PlatformEvent::StoreRecords { .. }))
    );
    assert!(p.gateway(&gw()).unwrap().received.is_empty());
}

#[test]
fn a_restarted_platform_restored_from_its_store_keeps_the_epoch_rules() {
    let mut p = pcore();
    p.restore_gateway(
        t0(),
        &gw(),
        super::platform_side::StoredGateway {
            epoch: Some(ep(1)),
            boot_count: 5,
            last_seq: 7,
            periodic: PeriodicState::default(),
            runs: vec![(Dataset::new("billing").unwrap(), r(1, 5))],
        },
    );
    let v = p.gateway(&gw()).unwrap();
    assert!(!v.online);
    assert_eq!(
        (v.epoch, v.boot_count, v.known_last_seq),
        (Some(ep(1)), 5, 7)
    );
    let restored = p.clone();
    p.handle_inbound(at(1), up(at(1), "GW0001.4.1", connect_in(ep(1), 4, 7)));
    assert_eq!(code(&out(&mut p)[0]), ResultCode::InvalidState);
    // The refusal retired the epoch (DES-MSG-CONN-4): a later boot is refused too.
    p.handle_inbound(at(2), up(at(2), "GW0001.6.1", connect_in(ep(1), 6, 7)));
    assert_eq!(code(&out(&mut p)[0]), ResultCode::InvalidState);
    // Without a refusal, the restored platform accepts a later boot with its acked prefix.
    let mut p = restored;
    p.handle_inbound(at(2), up(at(2), "GW0001.6.1", connect_in(ep(1), 6, 7)));
    let o = out(&mut p);
    let Body::ConnectResult(c) = &o[0].body else {
        unreachable!()
    };
    assert_eq!((code(&o[0]), c.acked_through), (ResultCode::Ok, 5));
}

#[test]
fn a_connect_reusing_a_remembered_message_id_after_a_restore_is_not_answered_from_memory() {
    // A gateway restored within 600 s repeats message IDs of its earlier boot: its connect
    // has the ID of an answered one but another timestamp, so it reaches the epoch rules.
    let mut p = pcore();
    p.handle_inbound(t0(), up(t0(), "GW0001.4.1", connect_in(ep(1), 4, 0)));
    p.handle_inbound(at(1), up(at(1), "GW0001.5.1", connect_in(ep(1), 5, 0)));
    out(&mut p);
    events(&mut p);
    p.handle_inbound(at(60), up(at(60), "GW0001.4.1", connect_in(ep(1), 4, 0)));
    let o = out(&mut p);
    assert_eq!(o.len(), 1);
    assert_eq!(code(&o[0]), ResultCode::InvalidState);
}

#[test]
fn a_new_epoch_clears_the_reply_memory_of_the_gateway() {
    let mut p = held_five();
    // The restored store repeats a message ID, type and timestamp of the old epoch.
    p.handle_inbound(at(100), up(at(100), "GW0001.6.1", connect_in(ep(2), 6, 0)));
    assert_eq!(code(&out(&mut p)[0]), ResultCode::Ok);
    events(&mut p);
    p.handle_inbound(at(101), up(at(1), "GW0001.5.2", data_in(ep(2), r(1, 5))));
    let o = out(&mut p);
    assert_eq!(code(&o[0]), ResultCode::Ok);
    assert!(
        events(&mut p).iter().any(
            |e| matches!(e, PlatformEvent::StoreRecords { epoch, range, .. } if *epoch == ep(2) && *range == r(1, 5))
        ),
        "processed in the new epoch, not answered from the old one's memory"
    );
}

// ---------------------------------------------------------------- DES-MSG-RS-4

#[test]
fn a_hole_is_asked_for_once_the_gap_grace_set_at_run_time_has_passed() {
    let mut p = connected();
    p.set_gap_grace_sec(5);
    // Seqs 3..=4 stored at 1 s: 1..=2 is a hole from then on.
    p.handle_inbound(at(1), up(at(1), "GW0001.1.2", data(r(3, 4))));
    assert_eq!(code(&out(&mut p)[0]), ResultCode::Ok);
    assert_eq!(
        p.poll_timeout(),
        Some(at(6)),
        "asked for 5 s after it opened"
    );
    p.handle_timeout(at(5));
    assert!(out(&mut p).is_empty(), "not before the grace has passed");
    // A shorter grace applies to the hole already open, counted from when it opened.
    p.set_gap_grace_sec(2);
    assert_eq!(p.poll_timeout(), Some(at(3)));
    p.handle_timeout(at(5));
    assert_eq!(asked(&mut p), vec![r(1, 2)]);
}
