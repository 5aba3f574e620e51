//! Flow tests of the gateway core's data path in revision 1.1: message size bounds
//! (DES-MSG-DATA-6), giving up and holding (DES-MSG-DATA-5), resend flow control
//! (DES-MSG-RS-3), evacuation (ST-EVAC-1) and resend result codes (DES-MSG-RS-2).

use proptest::prelude::*;

use super::*;
use crate::protocol::gateway_side::{
    DataRequest, EvacuateError, ExternalStatus, MAX_DATA_TRANSMISSIONS,
};
use crate::protocol::size::{MAX_MESSAGE_RECORD_BYTES, MAX_RECORD_BYTES};

fn cfg_cap(cap: u64) -> GatewayConfig {
    GatewayConfig {
        max_records_per_message: cap,
        ..GatewayConfig::new(gw(), vec![ds("billing"), ds("ledger")])
    }
}

/// Connected with `cfg`, periodic sending started every 10 s (ack timeout 30 s).
fn started_with(cfg: GatewayConfig) -> GatewayCore {
    let mut g = GatewayCore::new(cfg, epoch(), t0());
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
                monitor_interval_sec: 100_000,
                ack_timeout_sec: 30,
                acked_through: 0,
            }),
            Some((&connect, Outcome::ok())),
        ),
    );
    g.handle_inbound(t0(), down(t0(), "p.s1", start_body(1, 10), None));
    drain(&mut g);
    events(&mut g);
    g
}

fn requests(ts: &[Transmit]) -> Vec<DataRequest> {
    ts.iter()
        .filter_map(|t| match t {
            Transmit::Data(d) => Some(d.clone()),
            Transmit::Message { .. } => None,
        })
        .collect()
}

fn anomalies(ts: &[Transmit]) -> Vec<crate::protocol::message::Anomaly> {
    envelopes(ts)
        .into_iter()
        .filter_map(|e| match &e.body {
            Body::Anomaly(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn seq_req(dataset: Option<&str>, first: u64, last: u64) -> ResendRequest {
    ResendRequest {
        dataset: dataset.map(ds),
        seq: Some(r(first, last)),
        time: None,
    }
}

fn resend_result(out: &[Transmit]) -> (ResultCode, u64, u32) {
    let e = envelopes(out)
        .into_iter()
        .find(|e| e.message_type() == MessageType::ResendResult)
        .expect("a resend.result");
    let Body::ResendResult(rr) = &e.body else {
        unreachable!()
    };
    (result_code(e), rr.records, rr.messages)
}

// ---------------------------------------------------------------- DES-MSG-DATA-6 sizes

#[test]
fn ingest_refuses_a_batch_with_a_record_over_the_limit_naming_its_index() {
    let mut g = started_with(cfg_cap(1000));
    assert_eq!(
        g.handle_ingest(t0(), &ds("billing"), &[10, MAX_RECORD_BYTES + 1, 5]),
        Err(IngestError::RecordTooLarge {
            index: 1,
            bytes: MAX_RECORD_BYTES + 1
        })
    );
    assert_eq!(g.last_seq(), 0, "nothing of the batch is stored");
    assert!(g.batches().is_empty());
    assert_eq!(
        g.handle_ingest(t0(), &ds("billing"), &[MAX_RECORD_BYTES, 5]),
        Ok(r(1, 2)),
        "a record of exactly the limit is accepted"
    );
}

#[test]
fn ingest_cuts_batches_at_the_byte_budget_and_the_count_cap() {
    let mut g = started_with(cfg_cap(3));
    g.handle_ingest(
        t0(),
        &ds("billing"),
        &[60_000, 60_000, 50_000, 64_688, 1, 1, 1],
    )
    .unwrap();
    let got: Vec<_> = g.batches().iter().map(|b| (b.range, b.bytes)).collect();
    assert_eq!(
        got,
        vec![
            (r(1, 1), 60_000),
            (r(2, 3), 110_000),
            (r(4, 6), 64_690),
            (r(7, 7), 1),
        ]
    );
    // 64 688 + 50 000 = 114 688 is exactly the budget: one batch.
    let mut g = started_with(cfg_cap(3));
    g.handle_ingest(t0(), &ds("billing"), &[50_000, 64_688])
        .unwrap();
    assert_eq!(g.batches().len(), 1);
    assert_eq!(g.batches()[0].bytes, MAX_MESSAGE_RECORD_BYTES);
}

#[test]
fn periodic_and_resend_messages_of_several_ingests_never_exceed_the_byte_budget() {
    let mut g = started_with(cfg_cap(1000));
    // Three ingests of one dataset, contiguous seqs: by count they would fit one message.
    g.handle_ingest(t0(), &ds("billing"), &[50_000, 50_000])
        .unwrap();
    g.handle_ingest(at(1), &ds("billing"), &[50_000]).unwrap();
    g.handle_ingest(at(2), &ds("billing"), &[10, 10]).unwrap();
    g.handle_timeout(at(10));
    let got: Vec<_> = data_of(&drain(&mut g)).iter().map(|d| d.1).collect();
    assert_eq!(got, vec![r(1, 2), r(3, 5)]);
    let out = resend(&mut g, at(11), "p.r1", seq_req(None, 1, 5));
    let got: Vec<_> = data_of(&out).iter().map(|d| d.1).collect();
    assert_eq!(got, vec![r(1, 2), r(3, 5)]);
}

#[test]
fn a_piece_of_a_cut_batch_keeps_its_batch_bytes_as_an_upper_bound() {
    let mut g = started_with(cfg_cap(1000));
    g.handle_ingest(t0(), &ds("billing"), &[40_000, 40_000, 30_000])
        .unwrap();
    g.handle_ingest(at(1), &ds("billing"), &[20_000]).unwrap();
    // ackedThrough-style cut: acknowledge 1..=1 only.
    let mut g2 = GatewayCore::restore(cfg_cap(1000), g.snapshot(), at(2));
    g2.handle_connected(at(2));
    let out = drain(&mut g2);
    let cr = Body::ConnectResult(ConnectResult {
        version: 1,
        monitor_interval_sec: 100_000,
        ack_timeout_sec: 30,
        acked_through: 1,
    });
    g2.handle_inbound(
        at(2),
        down(at(2), "p.c", cr, Some((out[0].message_id(), Outcome::ok()))),
    );
    let bytes: Vec<_> = g2.batches().iter().map(|b| (b.range, b.bytes)).collect();
    assert_eq!(
        bytes,
        vec![(r(1, 1), 110_000), (r(2, 3), 110_000), (r(4, 4), 20_000)]
    );
    // 2..=3 (bound 110 000) and 4 (20 000) do not fit one message by their bounds.
    g2.handle_timeout(at(2));
    let got: Vec<_> = data_of(&drain(&mut g2)).iter().map(|d| d.1).collect();
    assert_eq!(got, vec![r(2, 3), r(4, 4)]);
}

/// One step of the random walk of the property below.
#[derive(Clone, Debug)]
enum Op {
    Ingest(usize, Vec<u32>),
    AckSome(usize),
    Resend(u64, u64),
    Wait(i64),
    Reconnect(u64),
}

fn width() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => 1u32..=2_000,
        2 => 20_000u32..=MAX_RECORD_BYTES,
        1 => Just(MAX_RECORD_BYTES),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2, prop::collection::vec(width(), 1..12)).prop_map(|(d, w)| Op::Ingest(d, w)),
        3 => (0usize..8).prop_map(Op::AckSome),
        2 => (1u64..40, 0u64..20).prop_map(|(f, n)| Op::Resend(f, n)),
        3 => (1i64..=40).prop_map(Op::Wait),
        1 => (0u64..30).prop_map(Op::Reconnect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// DES-MSG-DATA-6: whatever the record widths, ingest order, acknowledgements, cuts
    /// (ackedThrough), reconnects and resends, no planned data message holds records whose wire
    /// sizes sum to more than the budget or more records than the cap.
    #[test]
    fn no_planned_data_message_exceeds_the_byte_budget_or_the_count_cap(
        cap in 1u64..=6,
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let names = ["billing", "ledger"];
        let mut widths: Vec<u64> = vec![0]; // widths[seq]
        let mut g = started_with(cfg_cap(cap));
        let mut now = 0i64;
        let mut inflight: Vec<(MessageId, SeqRange)> = Vec::new();
        let mut n = 0;
        for op in ops {
            n += 1;
            match op {
                Op::Ingest(d, w) => {
                    let range = g.handle_ingest(at(now), &ds(names[d]), &w).unwrap();
                    prop_assert_eq!(range.first as usize, widths.len());
                    widths.extend(w.iter().map(|x| u64::from(*x)));
                }
                Op::AckSome(i) if !inflight.is_empty() => {
                    let (id, range) = inflight.remove(i % inflight.len());
                    ack(&mut g, at(now), &id, range, ResultCode::Ok);
                }
                Op::AckSome(_) => {}
                Op::Resend(first, len) => {
                    let req = seq_req(None, first, first + len);
                    g.handle_inbound(at(now), down(at(now), &format!("p.r{n}"), Body::ResendRequest(req), None));
                }
                Op::Wait(s) => {
                    now += s;
                    g.handle_timeout(at(now));
                }
                Op::Reconnect(through) => {
                    g.handle_disconnected(at(now));
                    inflight.clear();
                    g.handle_connected(at(now));
                    let out = drain(&mut g);
                    let cr = Body::ConnectResult(ConnectResult {
                        version: 1,
                        monitor_interval_sec: 100_000,
                        ack_timeout_sec: 30,
                        acked_through: through,
                    });
                    g.handle_inbound(at(now), down(at(now), &format!("p.c{n}"), cr, Some((out[0].message_id(), Outcome::ok()))));
                }
            }
            for d in requests(&drain(&mut g)) {
                let sum: u64 = (d.range.first..=d.range.last).map(|s| widths[s as usize]).sum();
                prop_assert!(sum <= MAX_MESSAGE_RECORD_BYTES, "{:?} carries {} bytes", d.range, sum);
                prop_assert!(d.range.len() <= cap, "{:?} over the cap {}", d.range, cap);
                if !d.retransmission {
                    inflight.push((d.message_id.clone(), d.range));
                }
            }
            prop_assert!(g.data_in_flight() <= MAX_DATA_IN_FLIGHT);
            events(&mut g);
        }
    }
}

// ---------------------------------------------------------------- DES-MSG-DATA-5 give up, held

#[test]
fn data_without_ack_is_sent_nine_times_then_given_up_and_its_records_held() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    let mut sent = Vec::new();
    let mut given_up = Vec::new();
    for t in 10..=5000 {
        g.handle_timeout(at(t));
        let out = drain(&mut g);
        if !requests(&out).is_empty() {
            sent.push(t);
        }
        for a in anomalies(&out)
            .into_iter()
            .filter(|a| a.rule != "DES-MSG-PS-5")
        {
            assert_eq!(a.rule, "DES-MSG-DATA-5");
            assert_eq!(a.kind, AnomalyKind::Malformed);
            assert!(a.detail.contains("1..=2"), "{}", a.detail);
            given_up.push(t);
        }
    }
    // First at 10, then waits 30, 60, 120, 240 and 240 × 4: nine transmissions.
    assert_eq!(sent, vec![10, 40, 100, 220, 460, 700, 940, 1180, 1420]);
    assert_eq!(sent.len() as u32, MAX_DATA_TRANSMISSIONS);
    assert_eq!(
        given_up,
        vec![1660],
        "given up when the ninth timeout fires"
    );
    assert_eq!(g.held_records(), 2);
    assert_eq!(g.unacked_records(), 2);
    assert_eq!(g.data_in_flight(), 0);
    // Counted in monitor.status.storage.held (monitor interval 60 s).
    g.handle_timeout(at(5040));
    let status = envelopes(&drain(&mut g))
        .into_iter()
        .find_map(|e| match &e.body {
            Body::MonitorStatus(m) => Some(m.storage.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((status.held, status.unacked), (2, 2));
}

#[test]
fn data_acks_that_cannot_succeed_give_up_and_busy_or_internal_keep_the_message_in_flight() {
    for (code, gives_up, kind) in [
        (ResultCode::Malformed, true, AnomalyKind::Malformed),
        (ResultCode::SecurityFailed, true, AnomalyKind::Security),
        (ResultCode::UnknownDataset, true, AnomalyKind::Malformed),
        (ResultCode::InvalidState, true, AnomalyKind::Malformed),
        (ResultCode::TooLarge, true, AnomalyKind::Malformed),
        (ResultCode::Busy, false, AnomalyKind::Malformed),
        (ResultCode::Internal, false, AnomalyKind::Malformed),
    ] {
        let mut g = started();
        g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
        g.handle_timeout(at(10));
        let d = data_of(&drain(&mut g));
        ack(&mut g, at(11), &d[0].3, r(1, 2), code);
        let out = drain(&mut g);
        let a = anomalies(&out);
        if gives_up {
            assert_eq!(a.len(), 1, "{code:?}");
            assert_eq!((a[0].kind, a[0].rule.as_str()), (kind, "DES-MSG-DATA-5"));
            assert!(a[0].detail.contains(code.as_str()), "{}", a[0].detail);
            assert_eq!(g.held_records(), 2, "{code:?}");
            assert_eq!(g.data_in_flight(), 0, "{code:?}");
        } else {
            assert!(a.is_empty(), "{code:?}");
            assert_eq!(g.held_records(), 0, "{code:?}");
            g.handle_timeout(at(40));
            let again = data_of(&drain(&mut g));
            assert_eq!(again.len(), 1, "{code:?}: retransmitted");
            assert_eq!(again[0].3, d[0].3);
        }
    }
}

#[test]
fn the_adapter_failing_to_build_a_data_message_gives_it_up_like_a_refusal() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    g.handle_ingest(t0(), &ds("ledger"), &[100; 1]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    assert_eq!(d.len(), 2);
    g.handle_data_failed(at(10), &d[0].3, "sealed envelope of 300000 bytes");
    let out = drain(&mut g);
    let a = anomalies(&out);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].rule, "DES-MSG-DATA-5");
    assert!(a[0].detail.contains("sealed envelope of 300000 bytes"));
    assert_eq!(g.held_records(), 2);
    assert_eq!(g.data_in_flight(), 1, "the other message is untouched");
    // Not sent again, neither as a retransmission nor as a new periodic message.
    for t in (20..=400).step_by(10) {
        g.handle_timeout(at(t));
        assert!(
            data_of(&drain(&mut g)).iter().all(|x| x.3 == d[1].3),
            "only the ledger message is retransmitted"
        );
    }
    // An unknown or settled message ID changes nothing.
    g.handle_data_failed(at(500), &d[0].3, "again");
    assert!(drain(&mut g).is_empty());
    assert!(events(&mut g).iter().any(|e| matches!(
        e,
        GatewayEvent::Ignored {
            rule: "DES-MSG-DATA-5",
            ..
        }
    )));
}

#[test]
fn held_records_survive_a_restart_and_are_sent_only_on_a_resend_whose_ok_ack_clears_them() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 3]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    ack(&mut g, at(11), &d[0].3, r(1, 3), ResultCode::SecurityFailed);
    drain(&mut g);
    assert_eq!(g.held_records(), 3);
    // Restart: held is persisted; periodic sending after the reconnect skips them.
    let snap = g.snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    assert!(json.contains("\"held\":true"), "{json}");
    let mut g = GatewayCore::restore(cfg(), serde_json::from_str(&json).unwrap(), at(20));
    assert_eq!(g.held_records(), 3);
    g.handle_connected(at(20));
    let out = drain(&mut g);
    let cr = Body::ConnectResult(ConnectResult {
        version: 1,
        monitor_interval_sec: 100_000,
        ack_timeout_sec: 30,
        acked_through: 0,
    });
    g.handle_inbound(
        at(20),
        down(
            at(20),
            "p.c2",
            cr,
            Some((out[0].message_id(), Outcome::ok())),
        ),
    );
    assert!(data_of(&drain(&mut g)).is_empty());
    g.handle_timeout(at(30));
    assert!(data_of(&drain(&mut g)).is_empty(), "held: not periodic");
    // A resend covering 2..=3: sent; its OK ack clears held for them only.
    let out = resend(&mut g, at(31), "p.r1", seq_req(None, 2, 3));
    assert_eq!(resend_result(&out), (ResultCode::Ok, 2, 1));
    let d = data_of(&out);
    assert_eq!(d[0].1, r(2, 3));
    ack(&mut g, at(32), &d[0].3, r(2, 3), ResultCode::Ok);
    assert_eq!(g.held_records(), 1);
    assert_eq!(g.unacked_records(), 1);
    let held: Vec<_> = g
        .batches()
        .iter()
        .filter(|b| b.held)
        .map(|b| b.range)
        .collect();
    assert_eq!(held, vec![r(1, 1)]);
}

#[test]
fn a_given_up_resend_message_holds_its_unacknowledged_records_only() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 3]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    ack(&mut g, at(11), &d[0].3, r(1, 3), ResultCode::Ok);
    g.handle_ingest(at(12), &ds("billing"), &[100; 2]).unwrap();
    drain(&mut g);
    // Resend 2..=5 (acknowledged 2..=3, unacknowledged 4..=5), refused as TOO_LARGE.
    let out = resend(&mut g, at(13), "p.r1", seq_req(None, 2, 5));
    for (_, range, _, id) in data_of(&out) {
        ack(&mut g, at(14), &id, range, ResultCode::TooLarge);
    }
    assert_eq!(g.held_records(), 2);
    assert!(g.batches().iter().all(|b| !(b.acked && b.held)));
    assert!(!g.resend_running(), "given up counts as finished");
}

// ---------------------------------------------------------------- DES-MSG-RS-3 flow control

#[test]
fn resend_messages_beyond_the_in_flight_window_are_queued_and_released_as_acks_free_it() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 30]).unwrap(); // 10 batches of 3
    let out = resend(&mut g, at(1), "p.r1", seq_req(None, 1, 30));
    assert_eq!(resend_result(&out), (ResultCode::Ok, 30, 10));
    let first = data_of(&out);
    assert_eq!(first.len(), MAX_DATA_IN_FLIGHT, "only the window's worth");
    // Running while messages are queued: another request is BUSY.
    let busy = resend(&mut g, at(2), "p.r2", seq_req(None, 1, 3));
    assert_eq!(resend_result(&busy), (ResultCode::Busy, 0, 0));
    assert!(data_of(&busy).is_empty());
    // Each ack releases one queued message, same request.
    ack(&mut g, at(3), &first[0].3, first[0].1, ResultCode::Ok);
    let more = requests(&drain(&mut g));
    assert_eq!(more.len(), 1);
    assert_eq!((more[0].range, more[0].kind), (r(25, 27), DataKind::Resend));
    assert_eq!(more[0].request, Some(mid("p.r1")));
    // A give-up frees a slot too.
    ack(
        &mut g,
        at(4),
        &first[1].3,
        first[1].1,
        ResultCode::Malformed,
    );
    let last = requests(&drain(&mut g));
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].range, r(28, 30));
    // Still running until every message is acknowledged or given up.
    assert!(g.resend_running());
    for (_, range, _, id) in first.iter().skip(2) {
        ack(&mut g, at(5), id, *range, ResultCode::Ok);
    }
    ack(
        &mut g,
        at(5),
        &more[0].message_id,
        r(25, 27),
        ResultCode::Ok,
    );
    assert!(g.resend_running());
    ack(
        &mut g,
        at(5),
        &last[0].message_id,
        r(28, 30),
        ResultCode::Ok,
    );
    drain(&mut g);
    assert!(!g.resend_running());
    let later = resend(&mut g, at(6), "p.r3", seq_req(None, 1, 3));
    assert_eq!(resend_result(&later).0, ResultCode::Ok);
}

#[test]
fn periodic_messages_in_flight_count_towards_the_window_of_resend_data() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 27]).unwrap(); // 9 batches
    g.handle_timeout(at(10));
    let periodic = data_of(&drain(&mut g));
    assert_eq!(periodic.len(), MAX_DATA_IN_FLIGHT);
    let out = resend(&mut g, at(11), "p.r1", seq_req(None, 1, 3));
    assert_eq!(resend_result(&out), (ResultCode::Ok, 3, 1));
    assert!(data_of(&out).is_empty(), "the window is full");
    // Running although nothing of it is sent yet: another request is BUSY.
    let busy = resend(&mut g, at(11), "p.r2", seq_req(None, 4, 6));
    assert_eq!(resend_result(&busy), (ResultCode::Busy, 0, 0));
    ack(
        &mut g,
        at(12),
        &periodic[0].3,
        periodic[0].1,
        ResultCode::Ok,
    );
    let released = requests(&drain(&mut g));
    assert_eq!(released.len(), 1);
    assert_eq!(
        (released[0].kind, released[0].range),
        (DataKind::Resend, r(1, 3))
    );
    // Queued resend data goes before new periodic data; the resend of records acknowledged
    // meanwhile stays in flight until its own ack (the platform asked for them).
    g.handle_timeout(at(20));
    assert!(data_of(&drain(&mut g)).is_empty(), "window full again");
    assert!(g.resend_running());
    g.handle_timeout(at(42)); // released at 12, ack timeout 30
    let again = requests(&drain(&mut g));
    assert!(
        again
            .iter()
            .any(|d| d.retransmission && d.kind == DataKind::Resend && d.range == r(1, 3)),
        "{again:?}"
    );
    ack(
        &mut g,
        at(43),
        &released[0].message_id,
        r(1, 3),
        ResultCode::Ok,
    );
    assert!(!g.resend_running());
}

#[test]
fn a_reconnect_abandons_a_running_resend() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 30]).unwrap();
    resend(&mut g, at(1), "p.r1", seq_req(None, 1, 30));
    assert!(g.resend_running());
    g.handle_disconnected(at(2));
    assert!(!g.resend_running());
    g.handle_connected(at(3));
    let out = drain(&mut g);
    let cr = Body::ConnectResult(ConnectResult {
        version: 1,
        monitor_interval_sec: 100_000,
        ack_timeout_sec: 30,
        acked_through: 0,
    });
    g.handle_inbound(
        at(3),
        down(
            at(3),
            "p.c2",
            cr,
            Some((out[0].message_id(), Outcome::ok())),
        ),
    );
    let out = drain(&mut g);
    assert!(
        requests(&out).iter().all(|d| d.kind == DataKind::Periodic),
        "no queued resend data after the reconnect"
    );
    let again = resend(&mut g, at(4), "p.r2", seq_req(None, 1, 3));
    assert_eq!(resend_result(&again).0, ResultCode::Ok);
}

// ---------------------------------------------------------------- ST-EVAC-1 archive

#[test]
fn evacuation_marks_acknowledged_records_archived_and_refuses_unacknowledged_or_held_ones() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 6]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    ack(&mut g, at(11), &d[0].3, r(1, 3), ResultCode::Ok);
    ack(&mut g, at(11), &d[1].3, r(4, 6), ResultCode::SecurityFailed);
    drain(&mut g);
    let before = g.snapshot();
    assert_eq!(
        g.handle_evacuated(r(2, 5)),
        Err(EvacuateError::Held(r(4, 5)))
    );
    assert_eq!(g.snapshot(), before, "nothing changed");
    g.handle_ingest(at(12), &ds("billing"), &[100; 1]).unwrap();
    let before = g.snapshot();
    assert_eq!(
        g.handle_evacuated(r(7, 7)),
        Err(EvacuateError::Unacknowledged(r(7, 7)))
    );
    assert_eq!(g.snapshot(), before);
    assert_eq!(g.handle_evacuated(r(2, 3)), Ok(2));
    assert_eq!(g.handle_evacuated(r(2, 3)), Ok(0), "idempotent");
    let flags: Vec<_> = g
        .batches()
        .iter()
        .map(|b| (b.range, b.acked, b.archived))
        .collect();
    assert_eq!(
        flags,
        vec![
            (r(1, 1), true, false),
            (r(2, 3), true, true),
            (r(4, 6), false, false),
            (r(7, 7), false, false),
        ]
    );
    assert_eq!(g.last_seq(), 7, "archived batches stay in the index");
    assert_eq!(
        g.stored_records(),
        5,
        "archived records are not in primary storage"
    );
    g.set_external_status(ExternalStatus::default());
    g.handle_timeout(at(100_000));
    let out = drain(&mut g);
    let status = envelopes(&out)
        .into_iter()
        .find_map(|e| match &e.body {
            Body::MonitorStatus(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(status.storage.records, 5);
}

#[test]
fn resend_of_archived_records_asks_the_adapter_to_read_the_archive() {
    let mut g = started_with(cfg_cap(1000));
    g.handle_ingest(t0(), &ds("billing"), &[100; 3]).unwrap();
    g.handle_ingest(at(1), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    for (_, range, _, id) in data_of(&drain(&mut g)) {
        ack(&mut g, at(11), &id, range, ResultCode::Ok);
    }
    g.handle_evacuated(r(1, 3)).unwrap();
    let out = resend(&mut g, at(12), "p.r1", seq_req(None, 2, 5));
    assert_eq!(resend_result(&out), (ResultCode::Ok, 4, 2));
    let archived = envelopes(&out).iter().find_map(|e| match &e.body {
        Body::ResendResult(rr) => Some(rr.archived),
        _ => None,
    });
    assert_eq!(archived, Some(2), "resend.result.archived");
    let got: Vec<_> = requests(&out)
        .iter()
        .map(|d| (d.range, d.archived))
        .collect();
    // Archived and live records never share a message.
    assert_eq!(got, vec![(r(2, 3), true), (r(4, 5), false)]);
}

#[test]
fn an_unreadable_archive_makes_its_records_no_longer_held_and_is_reported() {
    let mut g = started_with(cfg_cap(1000));
    g.handle_ingest(t0(), &ds("billing"), &[100; 3]).unwrap(); // 1..=3
    g.handle_ingest(at(1), &ds("billing"), &[100; 2]).unwrap(); // 4..=5
    g.handle_timeout(at(10));
    for (_, range, _, id) in data_of(&drain(&mut g)) {
        ack(&mut g, at(11), &id, range, ResultCode::Ok);
    }
    g.handle_evacuated(r(1, 3)).unwrap();
    let req = seq_req(None, 2, 5);
    assert_eq!(g.archived_selection(&req), vec![(ds("billing"), r(2, 3))]);
    // The adapter found the archive of 1..=3 damaged: only its archived records go; the live
    // ones (4..=5) are never touched by a lost archive.
    assert_eq!(g.handle_archive_lost(at(12), r(1, 5), "sha256".into()), 3);
    assert_eq!(g.handle_archive_lost(at(12), r(1, 5), "again".into()), 0);
    assert_eq!(g.last_seq(), 5, "lastSeq unchanged");
    let out = drain(&mut g);
    let a = anomalies(&out);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (a[0].kind, a[0].rule.as_str()),
        (AnomalyKind::Storage, "DES-EVAC-5")
    );
    assert!(g.archived_selection(&req).is_empty());
    let out = resend(&mut g, at(13), "p.r0", seq_req(None, 1, 3));
    assert_eq!(resend_result(&out), (ResultCode::NotFound, 0, 0));
    let out = resend(&mut g, at(13), "p.r1", req);
    assert_eq!(resend_result(&out), (ResultCode::Partial, 2, 1));
    let got: Vec<_> = requests(&out)
        .iter()
        .map(|d| (d.range, d.archived))
        .collect();
    assert_eq!(got, vec![(r(4, 5), false)]);
}

/// A core that ingested one file of records of `sizes` as one batch, sent it at 10 s and had
/// it acknowledged at 11 s.
fn one_acknowledged_batch(sizes: &[u32]) -> GatewayCore {
    let mut g = started_with(cfg_cap(1000));
    g.handle_ingest(t0(), &ds("billing"), sizes).unwrap();
    assert_eq!(g.batches().len(), 1);
    g.handle_timeout(at(10));
    for (_, range, _, id) in data_of(&drain(&mut g)) {
        ack(&mut g, at(11), &id, range, ResultCode::Ok);
    }
    g
}

#[test]
fn an_archive_lost_in_part_keeps_the_rest_of_its_batch_archived() {
    let mut g = one_acknowledged_batch(&[100; 5]); // 1..=5
    g.handle_evacuated(r(1, 5)).unwrap();
    // The batch's records lie in two archives; the one of 2..=3 is damaged.
    assert_eq!(g.handle_archive_lost(at(12), r(2, 3), "sha256".into()), 2);
    let req = seq_req(None, 1, 5);
    assert_eq!(
        g.archived_selection(&req),
        vec![(ds("billing"), r(1, 1)), (ds("billing"), r(4, 5))]
    );
    let out = resend(&mut g, at(13), "p.r1", req);
    assert_eq!(
        resend_result(&out),
        (ResultCode::Partial, 3, 2),
        "3 records in 2 messages"
    );
}

#[test]
fn a_batch_split_by_flags_is_merged_again_once_its_pieces_agree() {
    let mut g = one_acknowledged_batch(&[400; 4]); // 1..=4
    g.handle_evacuated(r(1, 2)).unwrap();
    let split: Vec<_> = g.batches().iter().map(|b| (b.range, b.archived)).collect();
    assert_eq!(split, vec![(r(1, 2), true), (r(3, 4), false)]);
    g.handle_evacuated(r(3, 4)).unwrap();
    let merged: Vec<_> = g
        .batches()
        .iter()
        .map(|b| (b.range, b.archived, b.bytes))
        .collect();
    // Each piece kept the batch's 1 600 bytes (an upper bound, `Batch::bytes`).
    assert_eq!(
        merged,
        vec![(r(1, 4), true, 3200)],
        "one message unit again"
    );
}

// ---------------------------------------------------------------- DES-MSG-RS-2 result codes

#[test]
fn a_filtered_resend_is_ok_when_every_record_of_its_dataset_is_provided() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap(); // 1..=2
    g.handle_ingest(t0(), &ds("ledger"), &[100; 2]).unwrap(); // 3..=4
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap(); // 5..=6
    let out = resend(&mut g, at(1), "p.r1", seq_req(Some("billing"), 1, 6));
    assert_eq!(resend_result(&out), (ResultCode::Ok, 4, 2));
    let got: Vec<_> = data_of(&out).iter().map(|d| (d.0.clone(), d.1)).collect();
    assert_eq!(
        got,
        vec![(ds("billing"), r(1, 2)), (ds("billing"), r(5, 6))]
    );
}

#[test]
fn a_resend_is_partial_when_a_seq_of_its_range_is_no_longer_in_the_index_even_filtered() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 3]).unwrap(); // 1..=3
    g.handle_ingest(at(1), &ds("ledger"), &[100; 1]).unwrap(); // 4
    g.handle_ingest(at(2), &ds("billing"), &[100; 2]).unwrap(); // 5..=6
    // The index lost 4 (e.g. restored from an older index): its dataset is unknown.
    let mut snap = g.snapshot();
    snap.batches.retain(|b| b.range != r(4, 4));
    let mut g = GatewayCore::restore(cfg(), snap, at(3));
    g.handle_connected(at(3));
    let out = drain(&mut g);
    let cr = Body::ConnectResult(ConnectResult {
        version: 1,
        monitor_interval_sec: 100_000,
        ack_timeout_sec: 30,
        acked_through: 0,
    });
    g.handle_inbound(
        at(3),
        down(
            at(3),
            "p.c2",
            cr,
            Some((out[0].message_id(), Outcome::ok())),
        ),
    );
    drain(&mut g);
    let out = resend(&mut g, at(4), "p.r1", seq_req(Some("billing"), 2, 6));
    assert_eq!(resend_result(&out), (ResultCode::Partial, 4, 2));
}

#[test]
fn resend_codes_for_ranges_beyond_last_seq_and_time_ranges() {
    let mut g = started();
    g.handle_ingest(at(0), &ds("billing"), &[100; 2]).unwrap();
    let out = resend(&mut g, at(1), "p.r1", seq_req(Some("billing"), 2, 9));
    assert_eq!(resend_result(&out), (ResultCode::Partial, 1, 1));
    for (_, range, _, id) in data_of(&out) {
        ack(&mut g, at(1), &id, range, ResultCode::Ok);
    }
    drain(&mut g);
    let out = resend(&mut g, at(2), "p.r2", seq_req(Some("ledger"), 1, 2));
    assert_eq!(resend_result(&out), (ResultCode::NotFound, 0, 0));
    let out = resend(&mut g, at(2), "p.r3", seq_req(None, 3, 9));
    assert_eq!(resend_result(&out), (ResultCode::NotFound, 0, 0));
    let time = |from, to| ResendRequest {
        dataset: None,
        seq: None,
        time: Some(TimeRange {
            from: at(from),
            to: at(to),
        }),
    };
    let out = resend(&mut g, at(3), "p.r4", time(-5, 100));
    assert_eq!(resend_result(&out), (ResultCode::Ok, 2, 1));
    for (_, range, _, id) in data_of(&out) {
        ack(&mut g, at(3), &id, range, ResultCode::Ok);
    }
    drain(&mut g);
    let out = resend(&mut g, at(4), "p.r5", time(50, 100));
    assert_eq!(resend_result(&out), (ResultCode::NotFound, 0, 0));
}

#[test]
fn a_late_ok_ack_for_a_given_up_message_still_acknowledges_its_records() {
    let mut g = started();
    g.handle_ingest(t0(), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    // A tampered copy is refused, the original was stored: its OK arrives after the refusal.
    ack(&mut g, at(11), &d[0].3, r(1, 2), ResultCode::SecurityFailed);
    assert_eq!(g.held_records(), 2);
    // Not for another range, not a failure code.
    ack(&mut g, at(12), &d[0].3, r(1, 1), ResultCode::Ok);
    ack(&mut g, at(12), &d[0].3, r(1, 2), ResultCode::Busy);
    assert_eq!(g.held_records(), 2);
    ack(&mut g, at(12), &d[0].3, r(1, 2), ResultCode::Ok);
    assert_eq!((g.held_records(), g.unacked_records()), (0, 0));
}

#[test]
fn the_last_64_given_up_messages_are_remembered_for_a_late_ok() {
    // 65 messages given up one after the other, one record each: the oldest is forgotten,
    // the 64 after it are still acknowledged by a late OK.
    let mut g = started();
    let mut ids = Vec::new();
    for i in 0..65i64 {
        g.handle_ingest(at(i * 10 + 1), &ds("billing"), &[100; 1])
            .unwrap();
        g.handle_timeout(at(i * 10 + 10));
        let d = data_of(&drain(&mut g));
        assert_eq!(d.len(), 1, "message {i}");
        ack(
            &mut g,
            at(i * 10 + 11),
            &d[0].3,
            d[0].1,
            ResultCode::SecurityFailed,
        );
        ids.push((d[0].3.clone(), d[0].1));
    }
    assert_eq!(g.held_records(), 65);
    let (oldest, kept) = (&ids[0], &ids[1]);
    ack(&mut g, at(700), &oldest.0, oldest.1, ResultCode::Ok);
    assert_eq!(g.held_records(), 65, "the 65th-last is forgotten");
    ack(&mut g, at(701), &kept.0, kept.1, ResultCode::Ok);
    assert_eq!(g.held_records(), 64, "the 64th-last is remembered");
}

#[test]
fn the_platform_requests_held_records_it_learns_of_from_monitor_status() {
    // Records held after a give-up are never sent periodically again: the platform learns
    // of them only through lastSeq and must arm its gap timer on the status itself.
    let (mut g, mut p) = connect_both();
    p.command_start(t0(), &gw(), vec![], 10, ProfileFormat::Json)
        .unwrap();
    pump(&mut g, &mut p, t0());
    g.handle_ingest(at(1), &ds("billing"), &[100; 2]).unwrap();
    g.handle_timeout(at(10));
    let d = data_of(&drain(&mut g));
    ack(&mut g, at(11), &d[0].3, r(1, 2), ResultCode::Malformed);
    assert_eq!(g.held_records(), 2);
    pump(&mut g, &mut p, at(11));
    // The next monitor.status (every 60 s) reports lastSeq 2.
    g.handle_timeout(at(60));
    pump(&mut g, &mut p, at(60));
    assert_eq!(p.gateway(&gw()).unwrap().gaps, vec![r(1, 2)]);
    assert_eq!(
        p.poll_timeout(),
        Some(at(80)),
        "gap timer armed (grace 20 s)"
    );
    p.handle_timeout(at(80));
    pump(&mut g, &mut p, at(80));
    assert_eq!((g.held_records(), g.unacked_records()), (0, 0));
    assert!(p.gateway(&gw()).unwrap().gaps.is_empty());
}
