//! Storage epochs and DES-MSG-2 replies of the platform runtime against a scripted gateway
//! over real mutual-TLS MQTT (DES-ID-5, DES-MSG-CONN-4, DES-MSG-2, DES-MSG-DATA-2/3): a
//! gateway restored from a backup (same epoch, lower boot count) is refused INVALID_STATE —
//! also by a platform restarted on the same SQLite store — and is accepted after a new epoch,
//! whose records are stored next to the old epoch's instead of being taken for duplicates.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::fixture::{Fixture, env, fast_config, fixture, serial};
use common::scripted::ScriptedGateway;
use gateway::protocol::gateway_side::GatewayEvent;
use gateway::protocol::ids::StoreEpoch;
use gateway::protocol::message::{Body, Envelope, MessageType, ProfileFormat, ResultCode};
use legacy_sim::dataset::Dataset as Ds;
use platform_sim::ops::{FaultConfig, OperatorBackend, OperatorCommand};

const T: Duration = Duration::from_secs(10);

fn start(f: &Fixture) {
    f.handle
        .command(
            &f.gw,
            OperatorCommand::Start {
                datasets: vec![],
                interval_sec: 1,
                format: ProfileFormat::Json,
            },
        )
        .unwrap();
}

/// The `connect.result`s the gateway received after the first `skip`.
fn connect_results(g: &ScriptedGateway, skip: usize) -> Vec<Envelope> {
    g.received_of(MessageType::ConnectResult)
        .into_iter()
        .skip(skip)
        .cloned()
        .collect()
}

/// scripted: restarts the gateway from an old snapshot (a restored backup) and then from one
/// with a new epoch put in by hand, which the real gateway does only from its own store.
#[tokio::test]
async fn a_gateway_restored_from_a_backup_is_refused_until_it_takes_a_new_epoch() {
    let _s = serial().await;
    let mut f = fixture("EPOCH1", fast_config(), FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await, "no session");
    let epoch = g.core.epoch().clone();
    // The backup: taken at boot 1, before any record.
    let backup = g.core.snapshot();
    start(&f);
    assert!(g.run_until(T, |g| g.core.periodic().running).await);
    let old = g.ingest(Ds::Billing, 5, 31);
    assert!(g.run_until(T, |g| g.all_acked()).await, "not acknowledged");
    let old_rows: Vec<Vec<String>> = (old.first..=old.last)
        .map(|s| g.rows[&s].1.clone())
        .collect();

    // Two ordinary restarts: boot 3.
    for boot in [2, 3] {
        let seen = g.received_of(MessageType::ConnectResult).len();
        let snap = g.core.snapshot();
        g.restart_from(snap);
        assert_eq!(g.core.boot_count(), boot);
        assert!(
            g.run_until(T, |g| g.connected() && connect_results(g, seen).len() == 1)
                .await,
            "restart to boot {boot} not accepted"
        );
    }
    assert_eq!(f.handle.view(&f.gw).epoch.as_ref(), Some(&epoch));

    // Restored from the backup: same epoch, boot 2 < 3.
    let seen = g.received_of(MessageType::ConnectResult).len();
    g.restart_from(backup.clone());
    assert_eq!(g.core.boot_count(), 2);
    assert!(
        g.run_until(T, |g| !connect_results(g, seen).is_empty())
            .await,
        "no connect.result"
    );
    let refused = &connect_results(&g, seen)[0];
    let o = refused.result.as_ref().unwrap();
    assert_eq!(o.code, ResultCode::InvalidState);
    assert_eq!(
        o.reason.as_deref(),
        Some("DES-MSG-CONN-4: bootCount went backwards: restored from a backup?")
    );
    let Body::ConnectResult(cr) = &refused.body else {
        unreachable!()
    };
    assert_eq!(cr.acked_through, 0);
    g.run_for(Duration::from_millis(300)).await;
    assert!(!g.connected(), "a refused gateway has no session");
    assert!(g.events.iter().any(|e| matches!(
        e,
        GatewayEvent::ConnectRefused {
            code: ResultCode::InvalidState,
            ..
        }
    )));
    assert!(
        f.store()
            .anomalies(&f.gw)
            .unwrap()
            .iter()
            .any(|(src, kind, rule, _)| src == "platform"
                && kind == "storage"
                && rule == "DES-MSG-CONN-4"),
        "the refusal is recorded for the operator"
    );
    let row = f.store().sessions().unwrap();
    let row = row.iter().find(|r| r.gateway == f.gw).unwrap();
    assert_eq!(
        (row.epoch.as_str(), row.boot_count),
        (epoch.as_str(), 3),
        "a refused connect does not lower what is stored"
    );

    // A platform restarted on its store still refuses it.
    f.restart_platform(fast_config());
    let seen = g.received_of(MessageType::ConnectResult).len();
    g.restart_from(backup.clone());
    assert!(
        g.run_until(T, |g| !connect_results(g, seen).is_empty())
            .await,
        "no connect.result from the restarted platform"
    );
    assert_eq!(
        connect_results(&g, seen)[0].result.as_ref().unwrap().code,
        ResultCode::InvalidState
    );

    // The operator remedy: a new epoch (boot count and records kept).
    let mut renewed = g.core.snapshot();
    let new_epoch = StoreEpoch::from_bytes([0x7e; 16]);
    renewed.epoch = new_epoch.clone();
    let seen = g.received_of(MessageType::ConnectResult).len();
    g.restart_from(renewed);
    assert!(
        g.run_until(T, |g| g.connected()).await,
        "the new epoch was not accepted"
    );
    let ok = &connect_results(&g, seen)[0];
    assert_eq!(ok.result.as_ref().unwrap().code, ResultCode::Ok);
    let Body::ConnectResult(cr) = &ok.body else {
        unreachable!()
    };
    assert_eq!(cr.acked_through, 0, "nothing of the new epoch is held");
    assert_eq!(f.handle.view(&f.gw).epoch.as_ref(), Some(&new_epoch));

    // The restored store numbers from 1 again: new records, kept next to the old epoch's.
    start(&f);
    assert!(g.run_until(T, |g| g.core.periodic().running).await);
    let new = g.ingest(Ds::Billing, 3, 32);
    assert_eq!(new.first, old.first, "the backup reuses the seqs");
    assert!(g.run_until(T, |g| g.all_acked()).await, "not acknowledged");
    let store = f.store();
    let kept: Vec<Vec<String>> = store
        .records_in(&f.gw, epoch.as_str())
        .unwrap()
        .into_iter()
        .map(|r| r.fields)
        .collect();
    assert_eq!(kept, old_rows, "the old epoch's records are kept");
    let fresh = store.records_in(&f.gw, new_epoch.as_str()).unwrap();
    assert_eq!(
        fresh.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (new.first..=new.last).collect::<Vec<_>>()
    );
    for r in &fresh {
        assert_eq!(r.fields, g.rows[&r.seq].1, "seq {} of the new epoch", r.seq);
    }
    assert_ne!(fresh[0].fields, old_rows[0], "not taken for a duplicate");
}

/// scripted: publishes a sealed `data` envelope without its profile, which the real gateway
/// never sends.
#[tokio::test]
async fn undecodable_data_with_a_readable_range_is_answered_through_the_runtime_and_not_stored() {
    let _s = serial().await;
    let f = fixture("EPOCH2", fast_config(), FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await, "no session");
    // A data message without its profile, sealed properly: it opens, does not decode; the
    // runtime peeks type, messageId and range (DES-MSG-2).
    let bad = format!(
        r#"{{"version":1,"messageId":"EPOCH2.9.1","gatewayId":"EPOCH2","type":"data","timestamp":"{}","body":{{"kind":"periodic","dataset":"billing","epoch":"{}","range":{{"first":1,"last":4}},"format":"json"}}}}"#,
        common::scripted::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        g.core.epoch()
    );
    let token = g
        .sec
        .seal_message("platform", bad.as_bytes(), chrono::Utc::now())
        .unwrap();
    g.publish_raw(MessageType::Data, token.into_bytes()).await;
    let reply = |g: &ScriptedGateway| {
        g.received_of(MessageType::DataAck)
            .into_iter()
            .find(|e| {
                e.in_reply_to
                    .as_ref()
                    .is_some_and(|i| i.as_str() == "EPOCH2.9.1")
            })
            .cloned()
    };
    assert!(
        g.run_until(T, |g| reply(g).is_some()).await,
        "no DES-MSG-2 reply"
    );
    let r = reply(&g).unwrap();
    assert_eq!(r.result.as_ref().unwrap().code, ResultCode::Malformed);
    let Body::DataAck(a) = &r.body else {
        unreachable!()
    };
    assert_eq!((a.range.first, a.range.last), (1, 4));
    assert!(
        f.store().records(&f.gw).unwrap().is_empty(),
        "nothing stored"
    );
}
