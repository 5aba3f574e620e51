//! The platform runtime over real mutual-TLS MQTT against the real gateway
//! (`gateway::runtime::app`, legacy CSV uploaded over FTPS) and, for what a correct gateway
//! never sends, a scripted one (IF-CONN-1, IF-PSTART-1..4, IF-PSEND-1..3, IF-PSTOP-1,
//! IF-RESEND-1, MON-1, SM-RESEND; DES-MSG-*, DES-PROF-*, DES-ENV-1): every record the gateway
//! sends is checked field by field in the platform's SQLite store, independently of the
//! platform's own view; what crossed the broker is read by a tap that opens every message.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::fixture::{Fixture, env, fast_config, fixture, fixture_https, serial};
use common::real::{RealGateway, Tap, start_cmd, wait_for};
use common::scripted::ScriptedGateway;
use gateway::protocol::message::{Body, DataKind, MessageType, ProfileFormat, ResultCode};
use legacy_sim::dataset::Dataset as Ds;
use platform_sim::ops::{FaultConfig, OperatorBackend, OperatorCommand};

const T: Duration = Duration::from_secs(10);

/// The records of `range` in the store equal the scripted gateway's rows, each once.
fn assert_stored(f: &Fixture, g: &ScriptedGateway, first: u64, last: u64) {
    let rows = f.store().records(&f.gw).unwrap();
    for seq in first..=last {
        let stored: Vec<_> = rows.iter().filter(|r| r.seq == seq).collect();
        assert_eq!(stored.len(), 1, "seq {seq} stored {} times", stored.len());
        let (ds, fields) = &g.rows[&seq];
        assert_eq!(stored[0].dataset, ds.name());
        assert_eq!(&stored[0].fields, fields, "seq {seq}");
    }
}

/// The data messages the gateway sent (as tapped) whose range starts at `first`.
fn data_from(tap: &Tap, first: u64) -> Vec<gateway::protocol::message::Data> {
    tap.up(MessageType::Data)
        .into_iter()
        .filter_map(|e| match e.body {
            Body::Data(d) if d.range.first == first => Some(d),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn connect_start_json_and_xml_data_and_stop_run_end_to_end_and_every_record_is_stored() {
    let _s = serial().await;
    let f = fixture_https("FLOW1", fast_config(), FaultConfig::default()).await;
    let tap = Tap::start(&f);
    let mut g = RealGateway::connected(&f).await;
    // connect → connect.result OK.
    let cr = tap.down(MessageType::ConnectResult);
    assert_eq!(cr.len(), 1);
    assert_eq!(cr[0].result.as_ref().unwrap().code, ResultCode::Ok);
    // The gateway's access history names what it opened (DES-AUDIT-1).
    wait_for("connect.result in the access history", || {
        !g.received(MessageType::ConnectResult).is_empty()
    })
    .await;
    assert_eq!(
        g.received(MessageType::ConnectResult),
        [cr[0].message_id.to_string()]
    );

    // Operator start → periodic.start reaches the gateway, start.result, ack.
    let r = f
        .handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    let start_id = r.message_id.expect("sent at once");
    g.wait("periodic running", |v| v.running).await;
    wait_for("periodic.start in the access history", || {
        !g.received(MessageType::PeriodicStart).is_empty()
    })
    .await;
    assert_eq!(g.received(MessageType::PeriodicStart), [start_id.as_str()]);
    let acked_result = || {
        let results = g.answers(MessageType::PeriodicStartResult);
        let acks = g.received(MessageType::Ack);
        let acks_to: Vec<String> = tap
            .down(MessageType::Ack)
            .into_iter()
            .filter(|a| acks.contains(&a.message_id.to_string()))
            .filter_map(|a| a.in_reply_to.map(|i| i.to_string()))
            .collect();
        results.len() == 1
            && results[0].1 == start_id
            && results[0].2 == "OK"
            && acks_to.contains(&results[0].0)
    };
    wait_for("start result acknowledged", acked_result).await;

    // JSON profiles: billing rows, personal columns masked by the gateway.
    let a = g.upload(Ds::Billing, 25, 1).await;
    g.wait("json data acknowledged", |v| v.unacked == 0).await;
    g.assert_stored(&f, a.first, a.last);
    let billing = &f.store().records(&f.gw).unwrap()[0];
    let name_col = Ds::Billing
        .columns()
        .iter()
        .position(|c| c.name == "name")
        .unwrap();
    assert!(
        billing.fields[name_col].starts_with("m1."),
        "{:?}",
        billing.fields
    );
    let sent = data_from(&tap, a.first);
    assert!(!sent.is_empty() && sent.iter().all(|d| d.format == ProfileFormat::Json));
    assert!(f.handle.view(&f.gw).periodic.running);

    // XML profiles after a start with format xml.
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Xml))
        .unwrap();
    g.wait("xml start applied", |v| {
        v.periodic.format == ProfileFormat::Xml
    })
    .await;
    let b = g.upload(Ds::MeterReading, 12, 2).await;
    g.wait("xml data acknowledged", |v| v.unacked == 0).await;
    g.assert_stored(&f, b.first, b.last);
    let sent = data_from(&tap, b.first);
    assert!(!sent.is_empty() && sent.iter().all(|d| d.format == ProfileFormat::Xml));

    // Stop.
    f.handle.command(&f.gw, OperatorCommand::Stop).unwrap();
    g.wait("stopped", |v| !v.running).await;
    wait_for("the platform sees the stop result", || {
        !f.handle.view(&f.gw).periodic.running
    })
    .await;
    // Monitoring statuses were stored, commands recorded.
    wait_for("a status stored", || {
        f.store().status_count(&f.gw).unwrap() > 0
    })
    .await;
    let cmds = f.store().commands(&f.gw).unwrap();
    let types: Vec<&str> = cmds.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(types, ["periodic.start", "periodic.start", "periodic.stop"]);
    let v = f.handle.view(&f.gw);
    assert_eq!(v.records.get("billing"), Some(&25));
    assert_eq!(v.records.get("meter_reading"), Some(&12));
    assert!(v.gaps.is_empty());
}

/// scripted: drops its own data message (an uplink lost on the way; the platform's faults act
/// on downlinks only, and the real gateway never leaves out a message).
#[tokio::test]
async fn a_lost_data_message_is_detected_as_a_gap_and_filled_by_a_resend_request() {
    let _s = serial().await;
    let mut cfg = fast_config();
    // No retransmission by the gateway within the test: only the resend request can fill it.
    cfg.ack_timeout_sec = 120;
    let f = fixture("GAP1", cfg, FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await);
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    assert!(g.run_until(T, |g| g.core.periodic().running).await);

    g.drop_next_data = 1;
    let lost = g.ingest(Ds::Billing, 5, 3);
    assert!(g.run_until(T, |g| g.drop_next_data == 0).await);
    let later = g.ingest(Ds::Billing, 4, 4);
    // The platform sees seqs after a hole, waits the grace period, asks for the hole.
    assert!(
        g.run_until(T, |g| !g.received_of(MessageType::ResendRequest).is_empty())
            .await,
        "no resend request"
    );
    let rq = g.received_of(MessageType::ResendRequest)[0].clone();
    let Body::ResendRequest(body) = &rq.body else {
        unreachable!()
    };
    assert_eq!(body.seq.unwrap(), lost);
    assert!(
        g.run_until(T, |g| g.all_acked()).await,
        "not all acknowledged"
    );
    assert!(
        g.run_until(T, |_| f.handle.view(&f.gw).gaps.is_empty())
            .await,
        "gap still open"
    );
    assert_stored(&f, &g, lost.first, later.last);
    // The hole came in a data message of kind resend, answering the request.
    let rows = f.store().records(&f.gw).unwrap();
    let via = &rows
        .iter()
        .find(|r| r.seq == lost.first)
        .unwrap()
        .message_id;
    assert!(!via.starts_with("dropped:"));
    let resend_data = g
        .sent
        .iter()
        .find(|(t, id, _)| *t == MessageType::Data && id == via)
        .expect("stored from a data message the gateway sent");
    assert_eq!(resend_data.2, Some(lost));
    assert!(
        g.sent
            .iter()
            .any(|(t, _, _)| *t == MessageType::ResendResult),
        "no resend.result"
    );
}

#[tokio::test]
async fn withheld_acknowledgements_make_the_gateway_resend_and_the_platform_stores_once() {
    let _s = serial().await;
    let mut cfg = fast_config();
    cfg.ack_timeout_sec = 1;
    let f = fixture_https("WHA1", cfg, FaultConfig::default()).await;
    let tap = Tap::start(&f);
    let mut g = RealGateway::started(&f, ProfileFormat::Json).await;
    f.handle
        .set_faults(FaultConfig {
            withhold_acks: true,
            ..FaultConfig::default()
        })
        .unwrap();
    let r = g.upload(Ds::PipeLedger, 6, 5).await;
    // The data goes out again and again: the same message, the very sealed bytes
    // (DES-MSG-DATA-3; after T, then 2T, 4T, …).
    let sent = || {
        tap.of(true, MessageType::Data)
            .into_iter()
            .filter(|m| {
                m.envelope
                    .as_ref()
                    .is_some_and(|e| matches!(&e.body, Body::Data(d) if d.range == r))
            })
            .collect::<Vec<_>>()
    };
    wait_for("a retransmission", || sent().len() >= 2).await;
    assert!(g.view().await.unacked > 0);
    assert!(
        f.store().has_record(&f.gw, r.first).unwrap(),
        "stored before any ack"
    );
    f.handle.set_faults(FaultConfig::default()).unwrap();
    g.wait("acknowledged", |v| v.unacked == 0).await;
    // Acknowledged only once a third transmission came after the fault was lifted.
    let s = sent();
    assert!(s.len() >= 3, "{} transmissions", s.len());
    assert!(
        s.iter().all(|m| m.payload == s[0].payload),
        "not the same message"
    );
    g.assert_stored(&f, r.first, r.last);
    assert_eq!(f.store().records(&f.gw).unwrap().len(), 6);
    assert_eq!(f.handle.view(&f.gw).records.get("pipe_ledger"), Some(&6));
}

/// scripted: publishes a tampered and a non-JWE uplink, which the real gateway never does.
#[tokio::test]
async fn uplinks_that_fail_to_open_are_recorded_as_anomalies_and_not_acted_on() {
    let _s = serial().await;
    let f = fixture("BADUP1", fast_config(), FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await);
    // A disconnect sealed properly but tampered, and one that is not a JWE at all: neither may
    // close the session.
    let env_json = br#"{"version":1,"messageId":"x.1","gatewayId":"BADUP1","type":"disconnect","timestamp":"2026-11-22T10:00:00+09:00","body":{"reason":"x"}}"#;
    let sealed = g
        .sec
        .seal_message("platform", env_json, chrono::Utc::now())
        .unwrap();
    let tampered = platform_sim::platform::faults::tamper_token(&sealed);
    g.publish_raw(MessageType::Disconnect, tampered.into_bytes())
        .await;
    g.publish_raw(MessageType::Disconnect, b"not a jwe".to_vec())
        .await;
    let store = f.store();
    assert!(
        g.run_until(T, |_| store
            .anomalies(&f.gw)
            .unwrap()
            .iter()
            .filter(|a| a.0 == "platform" && a.1 == "security" && a.2 == "IF-PSTART-2")
            .count()
            == 2)
            .await,
        "{:?}",
        store.anomalies(&f.gw).unwrap()
    );
    g.run_for(Duration::from_millis(300)).await;
    assert!(
        f.handle.view(&f.gw).connected,
        "a refused message was acted on"
    );
    assert!(g.received_of(MessageType::DisconnectResult).is_empty());
}

/// scripted: sends a profile whose header names another range than its message, which the
/// real gateway never does.
#[tokio::test]
async fn data_whose_profile_header_differs_from_the_message_is_refused_and_not_stored() {
    let _s = serial().await;
    let f = fixture("MISM1", fast_config(), FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await);
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Xml))
        .unwrap();
    assert!(g.run_until(T, |g| g.core.periodic().running).await);
    g.mismatch_next_profile = 1;
    let r = g.ingest(Ds::Billing, 4, 9);
    let refused = |g: &ScriptedGateway| {
        g.received_of(MessageType::DataAck)
            .iter()
            .any(|a| a.result.as_ref().unwrap().code == ResultCode::Malformed)
    };
    assert!(
        g.run_until(T, refused).await,
        "mismatching profile not answered MALFORMED (DES-MSG-DATA-1)"
    );
    assert!(!f.store().has_record(&f.gw, r.first).unwrap());
    assert!(
        f.store()
            .anomalies(&f.gw)
            .unwrap()
            .iter()
            .any(|a| a.0 == "platform" && a.1 == "malformed"),
        "no anomaly"
    );
    // Given up, its records are held (DES-MSG-DATA-5): the platform sees the gap through
    // monitor.status lastSeq and asks for them; the resend data is stored.
    assert!(g.run_until(T, |g| g.all_acked()).await);
    assert!(!g.received_of(MessageType::ResendRequest).is_empty());
    assert_stored(&f, &g, r.first, r.last);
}

/// scripted: publishes undecodable `connect` and `disconnect` envelopes, which the real
/// gateway never does.
#[tokio::test]
async fn an_undecodable_connect_is_answered_malformed_and_changes_nothing() {
    let _s = serial().await;
    let f = fixture("UNDEC1", fast_config(), FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await);
    let ts = chrono::Utc::now()
        .fixed_offset()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    for (id, ty, body) in [
        ("raw.1", "connect", r#"{"versions":"x"}"#),
        ("raw.2", "disconnect", r#"{"reason":"x","extra":1}"#),
    ] {
        let json = format!(
            r#"{{"version":1,"messageId":"{id}","gatewayId":"UNDEC1","type":"{ty}","timestamp":"{ts}","body":{body}}}"#
        );
        let sealed = g
            .sec
            .seal_message("platform", json.as_bytes(), chrono::Utc::now())
            .unwrap();
        let t = if ty == "connect" {
            MessageType::Connect
        } else {
            MessageType::Disconnect
        };
        g.publish_raw(t, sealed.into_bytes()).await;
    }
    let answered = |g: &ScriptedGateway, id: &str| {
        g.received.iter().any(|e| {
            e.in_reply_to.as_ref().is_some_and(|r| r.as_str() == id)
                && e.result.as_ref().unwrap().code == ResultCode::Malformed
        })
    };
    assert!(
        g.run_until(T, |g| answered(g, "raw.1") && answered(g, "raw.2"))
            .await,
        "{:?}",
        g.received
    );
    assert!(
        f.handle.view(&f.gw).connected,
        "the malformed disconnect was acted on"
    );
    assert!(
        f.store()
            .anomalies(&f.gw)
            .unwrap()
            .iter()
            .filter(|a| a.2 == "DES-ENV-1")
            .count()
            >= 2
    );
}

#[tokio::test]
async fn an_operator_resend_by_seq_and_by_time_brings_the_records_again_without_storing_twice() {
    let _s = serial().await;
    let f = fixture_https("RSND1", fast_config(), FaultConfig::default()).await;
    let tap = Tap::start(&f);
    let mut g = RealGateway::started(&f, ProfileFormat::Json).await;
    let r = g.upload(Ds::MeterReading, 8, 10).await;
    g.wait("acknowledged", |v| v.unacked == 0).await;
    let before = f.store().records(&f.gw).unwrap();

    let data_sent = || tap.of(true, MessageType::Data).len();
    // Every data message answered: the resend is over (one resend at a time, DES-MSG-RS-2).
    let answered = || tap.of(false, MessageType::DataAck).len() >= data_sent();
    // The data of the resend requested by `id`, and the gateway's resend.result to it.
    let resent = |id: &str| {
        let data: Vec<_> = tap
            .up(MessageType::Data)
            .into_iter()
            .filter_map(|e| match e.body {
                Body::Data(d)
                    if d.kind == DataKind::Resend
                        && d.request.as_ref().is_some_and(|q| q.as_str() == id) =>
                {
                    Some(d.range)
                }
                _ => None,
            })
            .collect();
        let result = g
            .answers(MessageType::ResendResult)
            .iter()
            .any(|(_, to, code)| to == id && code == "OK");
        (data, result)
    };
    let n0 = data_sent();
    let rc = f
        .handle
        .command(
            &f.gw,
            OperatorCommand::Resend {
                dataset: None,
                seq: Some(gateway::protocol::ids::SeqRange {
                    first: r.first + 2,
                    last: r.first + 4,
                }),
                time: None,
            },
        )
        .unwrap();
    let id = rc.message_id.expect("sent at once");
    wait_for("resend data answered", || {
        data_sent() > n0 && answered() && resent(&id).1
    })
    .await;
    g.wait("settled", |v| v.unacked == 0).await;
    let rr = tap.down(MessageType::ResendRequest);
    assert_eq!(rr.len(), 1);
    let Body::ResendRequest(b) = &rr[0].body else {
        unreachable!()
    };
    assert_eq!(b.seq.unwrap().first, r.first + 2);
    assert_eq!(g.received(MessageType::ResendRequest), [id.as_str()]);
    let (ranges, _) = resent(&id);
    assert_eq!(
        ranges,
        [gateway::protocol::ids::SeqRange {
            first: r.first + 2,
            last: r.first + 4
        }]
    );

    let from = chrono::Utc::now().fixed_offset() - chrono::Duration::minutes(5);
    let to = chrono::Utc::now().fixed_offset() + chrono::Duration::minutes(1);
    let n1 = data_sent();
    let rc = f
        .handle
        .command(
            &f.gw,
            OperatorCommand::Resend {
                dataset: Some(gateway::protocol::ids::Dataset::new("meter_reading").unwrap()),
                seq: None,
                time: Some(gateway::protocol::message::TimeRange { from, to }),
            },
        )
        .unwrap();
    let id = rc.message_id.expect("sent at once");
    wait_for("time resend answered", || {
        data_sent() > n1 && answered() && resent(&id).1
    })
    .await;
    assert_eq!(resent(&id).0, [r], "every record of the time range again");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nothing stored twice, nothing changed.
    assert_eq!(f.store().records(&f.gw).unwrap(), before);
    assert_eq!(f.handle.view(&f.gw).records.get("meter_reading"), Some(&8));
    // Both requests are recorded as commands.
    let cmds = f.store().commands(&f.gw).unwrap();
    assert_eq!(cmds.iter().filter(|c| c.1 == "resend.request").count(), 2);
}
