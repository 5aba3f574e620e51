//! Every fault the platform injects, each against the real gateway (`gateway::runtime::app`)
//! over real mutual-TLS MQTT (conformance; IF-PSTART-2, SEC-CERT-2, SM-RESEND, DES-ENV-8,
//! DES-MSG-PS-4, DES-SEAL-5): tampered, unsigned, expired-certificate and revoked-certificate
//! commands are refused by the gateway and its anomaly is recorded by the platform; dropped,
//! duplicated, delayed and reordered messages; a stale CRL served over HTTPS; a gateway revoked
//! mid-session. What crossed the broker is read by a tap that opens every message; what the
//! gateway opened, refused and answered, from its access history (DES-AUDIT-1).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fixture::{Fixture, env, fast_config, fixture, fixture_https, serial};
use common::real::{RealGateway, Tap, start_cmd, wait_for};
use gateway::protocol::message::{Body, MessageType, ProfileFormat, ResultCode};
use legacy_sim::dataset::Dataset as Ds;
use platform_sim::ops::{FaultConfig, OperatorBackend, OperatorCommand};

/// The first start is sealed with `faults`: the gateway refuses it (not applied), reports an
/// anomaly that the platform stores, and the platform's retry (sealed properly) is applied.
async fn faulty_command_is_refused_reported_and_retried(id: &str, faults: FaultConfig, name: &str) {
    let _s = serial().await;
    let mut f = fixture_https(id, fast_config(), faults).await;
    let tap = Tap::start(&f);
    let g = RealGateway::connected(&f).await;
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    wait_for(&format!("the {name} command refused"), || {
        !g.refused().is_empty()
    })
    .await;
    let refused = g.refused();
    assert!(refused[0].ends_with("/down/periodic.start"), "{refused:?}");
    assert!(!g.view().await.running, "a {name} command was applied");
    assert!(g.received(MessageType::PeriodicStart).is_empty());
    // On the wire it was a periodic.start that does not open with the gateway's keys.
    let first = &tap.of(false, MessageType::PeriodicStart)[0];
    assert!(first.envelope.is_none(), "the {name} command opened");
    let store = f.store();
    wait_for("anomaly recorded", || {
        store
            .anomalies(&f.gw)
            .unwrap()
            .iter()
            .any(|a| a.0 == "gateway" && a.1 == "security" && a.2 == "IF-PSTART-2")
    })
    .await;
    let cmds = store.commands(&f.gw).unwrap();
    assert_eq!(cmds[0].2.as_deref(), Some(name));
    // The platform re-sends the unanswered command under a new ID, properly sealed.
    g.wait("retry applied", |v| v.running).await;
    let cmds = store.commands(&f.gw).unwrap();
    assert_eq!(cmds.last().unwrap().2, None);
    assert_ne!(cmds[0].0, cmds.last().unwrap().0);
    wait_for("the retry answered", || {
        !g.answers(MessageType::PeriodicStartResult).is_empty()
    })
    .await;
    assert_eq!(
        g.received(MessageType::PeriodicStart),
        [cmds.last().unwrap().0.clone()]
    );
    let answers = g.answers(MessageType::PeriodicStartResult);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        (answers[0].1.as_str(), answers[0].2.as_str()),
        (cmds.last().unwrap().0.as_str(), "OK")
    );
    let v = f.handle.view(&f.gw);
    assert!(
        v.anomalies
            .iter()
            .any(|a| a.source == "gateway" && a.rule == "IF-PSTART-2")
    );
    // The operator's anomaly list survives a restart of the platform (it is read from the
    // platform's store).
    f.restart_platform(fast_config());
    let v = f.handle.view(&f.gw);
    assert!(
        v.anomalies
            .iter()
            .any(|a| a.source == "gateway" && a.rule == "IF-PSTART-2"),
        "anomalies after a platform restart: {:?}",
        v.anomalies
    );
}

#[tokio::test]
async fn a_tampered_command_is_refused_by_the_gateway_and_its_anomaly_is_recorded() {
    let faults = FaultConfig {
        tamper_commands: 1,
        ..FaultConfig::default()
    };
    faulty_command_is_refused_reported_and_retried("TAMP1", faults, "tampered").await;
}

#[tokio::test]
async fn an_unsigned_command_is_refused_by_the_gateway_and_its_anomaly_is_recorded() {
    let faults = FaultConfig {
        unsigned_commands: 1,
        ..FaultConfig::default()
    };
    faulty_command_is_refused_reported_and_retried("UNSG1", faults, "unsigned").await;
}

#[tokio::test]
async fn a_command_signed_with_an_expired_certificate_is_refused_and_recorded() {
    let faults = FaultConfig {
        expired_cert_commands: 1,
        ..FaultConfig::default()
    };
    faulty_command_is_refused_reported_and_retried("EXPC1", faults, "expired-cert").await;
}

#[tokio::test]
async fn a_command_signed_with_a_revoked_certificate_is_refused_and_recorded() {
    let faults = FaultConfig {
        revoked_cert_commands: 1,
        ..FaultConfig::default()
    };
    faulty_command_is_refused_reported_and_retried("REVC1", faults, "revoked-cert").await;
}

fn platform_pem_fetches(f: &Fixture) -> usize {
    f.platform
        .https()
        .unwrap()
        .requests()
        .iter()
        .filter(|(_, p)| p.ends_with("/platform.pem"))
        .count()
}

#[tokio::test]
async fn after_a_rotation_data_sealed_to_the_old_certificate_opens_and_the_ack_teaches_the_new_one()
{
    let _s = serial().await;
    let f = fixture_https("ROT1", fast_config(), FaultConfig::default()).await;
    let mut g = RealGateway::connected(&f).await;
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    g.wait("running", |v| v.running).await;
    g.upload(Ds::Billing, 3, 1).await;
    g.wait("acknowledged", |v| v.unacked == 0).await;
    let fetched = platform_pem_fetches(&f);

    let detail = f.handle.rotate_platform_certificate().unwrap();
    assert!(detail.contains("rotated"), "{detail}");
    // Data the gateway seals to the old certificate still opens at the platform; its
    // `data.ack` is signed under the new certificate: unknown kid, platform.pem fetched once,
    // the ack opened again and applied; the first opening is not reported.
    let b = g.upload(Ds::Billing, 2, 2).await;
    g.wait("acknowledged, the ack signed with the new key", |v| {
        v.unacked == 0
    })
    .await;
    assert!(f.store().has_record(&f.gw, b.last).unwrap());
    assert_eq!(platform_pem_fetches(&f), fetched + 1);
    // Commands under the new certificate open at once; data goes to the new certificate.
    f.handle.command(&f.gw, OperatorCommand::Stop).unwrap();
    g.wait("the stop signed with the new key applied", |v| !v.running)
        .await;
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    g.wait("running again", |v| v.running).await;
    let c = g.upload(Ds::Billing, 2, 3).await;
    g.wait("acknowledged under the new certificate", |v| v.unacked == 0)
        .await;
    assert!(f.store().has_record(&f.gw, c.last).unwrap());
    assert_eq!(platform_pem_fetches(&f), fetched + 1);
    assert!(g.refused().is_empty(), "{:?}", g.refused());
}

#[tokio::test]
async fn commands_under_a_new_kid_arriving_together_wait_for_one_fetch_and_are_all_applied() {
    let _s = serial().await;
    let f = fixture_https("ROT2", fast_config(), FaultConfig::default()).await;
    let g = RealGateway::connected(&f).await;
    let fetched = platform_pem_fetches(&f);
    f.handle.rotate_platform_certificate().unwrap();
    // Back to back under the new certificate: the first unknown kid fetches platform.pem,
    // the second waits for that fetch (none of its own, DES-SEAL-6); both are opened again
    // and applied in order, and neither first opening is reported.
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    f.handle.command(&f.gw, OperatorCommand::Stop).unwrap();
    g.wait("start then stop, both under the new key, applied", |v| {
        !v.running && v.periodic.command_seq == 2
    })
    .await;
    assert_eq!(platform_pem_fetches(&f), fetched + 1);
    assert!(g.refused().is_empty(), "{:?}", g.refused());
}

#[tokio::test]
async fn a_gateway_first_heard_from_after_a_rotation_is_opened_under_the_previous_certificate() {
    let _s = serial().await;
    // Provisioned with the certificate before the rotation, and no certificate endpoint it
    // can reach: it seals its connect to the previous certificate (DES-CERT-3 keeps the
    // provisioned copy), which the platform must still open although it had never heard from
    // this gateway when it rotated (seen in the conformance suite: UnknownPeer, no session).
    let f = fixture("ROT3", fast_config(), FaultConfig::default());
    f.handle.rotate_platform_certificate().unwrap();
    let unreachable = format!(
        "https://localhost:{}",
        platform_sim::broker::free_loopback_port().unwrap()
    );
    let mut g = RealGateway::setup(&f.bundle, &unreachable);
    g.start().await;
    // The platform opens the connect and answers it (under its new certificate, which this
    // gateway cannot fetch: its own side of the session is not the point here).
    wait_for("the platform opens the connect", || {
        f.handle.view(&f.gw).connected
    })
    .await;
    g.shutdown().await;
}

#[tokio::test]
async fn dropped_commands_never_arrive_and_the_platform_retries_once_the_fault_is_lifted() {
    let _s = serial().await;
    let f = fixture_https("DROP1", fast_config(), FaultConfig::default()).await;
    let tap = Tap::start(&f);
    let g = RealGateway::connected(&f).await;
    f.handle
        .set_faults(FaultConfig {
            drop_percent: 100,
            ..FaultConfig::default()
        })
        .unwrap();
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(tap.of(false, MessageType::PeriodicStart).is_empty());
    assert!(g.received(MessageType::PeriodicStart).is_empty());
    assert!(!g.view().await.running);
    assert_eq!(
        f.store().commands(&f.gw).unwrap().len(),
        1,
        "sent (and dropped)"
    );
    f.handle.set_faults(FaultConfig::default()).unwrap();
    g.wait("retry lost", |v| v.running).await;
}

#[tokio::test]
async fn a_duplicated_command_is_applied_once_and_answered_with_the_same_reply() {
    let _s = serial().await;
    let f = fixture_https("DUP1", fast_config(), FaultConfig::default()).await;
    let tap = Tap::start(&f);
    let g = RealGateway::connected(&f).await;
    f.handle
        .set_faults(FaultConfig {
            duplicate_percent: 100,
            ..FaultConfig::default()
        })
        .unwrap();
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    wait_for("both copies opened and answered", || {
        g.received(MessageType::PeriodicStart).len() >= 2
            && g.answers(MessageType::PeriodicStartResult).len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let starts = tap.down(MessageType::PeriodicStart);
    assert!(starts.len() >= 2);
    assert_eq!(
        starts[0].message_id, starts[1].message_id,
        "one message, twice"
    );
    let received = g.received(MessageType::PeriodicStart);
    assert!(
        received
            .iter()
            .all(|id| *id == starts[0].message_id.as_str())
    );
    // Applied once: the copy is answered from the reply memory (DES-ENV-8) with the very
    // result of the first, which a second application could not have produced.
    let v = g.view().await;
    assert!(v.running);
    let Body::PeriodicStart(body) = &starts[0].body else {
        unreachable!()
    };
    assert_eq!(v.periodic.command_seq, body.command_seq);
    let results = g.answers(MessageType::PeriodicStartResult);
    assert!(
        results.len() >= 2 && results.iter().all(|r| *r == results[0]),
        "{results:?}"
    );
    let sent = tap.up(MessageType::PeriodicStartResult);
    assert!(
        sent.len() >= 2
            && sent
                .iter()
                .all(|e| e.message_id == sent[0].message_id && e.body == sent[0].body),
        "{sent:?}"
    );
}

#[tokio::test]
async fn delayed_messages_arrive_no_sooner_than_the_delay() {
    let _s = serial().await;
    let f = fixture_https("DLY1", fast_config(), FaultConfig::default()).await;
    let tap = Tap::start(&f);
    let g = RealGateway::connected(&f).await;
    f.handle
        .set_faults(FaultConfig {
            delay_ms: 800,
            ..FaultConfig::default()
        })
        .unwrap();
    let t0 = Instant::now();
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    wait_for("periodic.start on the wire", || {
        !tap.of(false, MessageType::PeriodicStart).is_empty()
    })
    .await;
    let took = tap.of(false, MessageType::PeriodicStart)[0].at - t0;
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(
        took < Duration::from_millis(2800),
        "{took:?} (retry, not delay)"
    );
    g.wait("applied", |v| v.running).await;
}

#[tokio::test]
async fn reordered_commands_leave_the_gateway_in_the_newer_state() {
    let _s = serial().await;
    let f = fixture_https("ORD1", fast_config(), FaultConfig::default()).await;
    let tap = Tap::start(&f);
    let g = RealGateway::connected(&f).await;
    f.handle
        .set_faults(FaultConfig {
            reorder: true,
            ..FaultConfig::default()
        })
        .unwrap();
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    f.handle.command(&f.gw, OperatorCommand::Stop).unwrap();
    wait_for("both opened by the gateway", || {
        !g.received(MessageType::PeriodicStart).is_empty()
            && !g.received(MessageType::PeriodicStop).is_empty()
    })
    .await;
    let order: Vec<String> = tap
        .all()
        .into_iter()
        .filter(|m| !m.up && (m.ty == "periodic.start" || m.ty == "periodic.stop"))
        .map(|m| m.ty)
        .collect();
    assert_eq!(order[..2], ["periodic.stop", "periodic.start"]);
    let opened: Vec<String> = g
        .audit()
        .into_iter()
        .filter(|l| {
            l["event"] == "mqtt.received"
                && (l["type"] == "periodic.start" || l["type"] == "periodic.stop")
        })
        .map(|l| l["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(opened[..2], ["periodic.stop", "periodic.start"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!g.view().await.running, "the older start won");
    // The overtaken start is not applied: answered SUPERSEDED (DES-MSG-PS-4).
    let starts = g.answers(MessageType::PeriodicStartResult);
    assert!(!starts.is_empty());
    assert!(
        starts
            .iter()
            .all(|(_, _, code)| code == ResultCode::Superseded.as_str()),
        "the overtaken start was applied: {starts:?}"
    );
}

/// GET /sgw/v1/crl.pem with the bundle's client certificate (curl, async: the HTTPS endpoint
/// runs on the test's runtime).
async fn curl_crl(port: u16, b: &platform_sim::provision::Bundle) -> (bool, String) {
    let p = |x: &Path| x.to_str().unwrap().to_owned();
    let o = tokio::process::Command::new("curl")
        .args(["--max-time", "5"])
        .args(["-sS", "--cacert", &p(&b.dir.join("tls/ca.pem"))])
        .args(["--cert", &p(&b.dir.join("tls/client.pem"))])
        .args(["--key", &p(&b.dir.join("tls/client.key"))])
        .arg(format!("https://localhost:{port}/sgw/v1/crl.pem"))
        .output()
        .await
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[tokio::test]
async fn a_gateway_revoked_mid_session_is_kicked_and_its_further_messages_are_refused() {
    let _s = serial().await;
    let f = fixture_https("REVK1", fast_config(), FaultConfig::default()).await;
    let port = f.platform.https().unwrap().addr().port();
    let mut g = RealGateway::started(&f, ProfileFormat::Json).await;
    let a = g.upload(Ds::Billing, 3, 7).await;
    g.wait("acknowledged", |v| v.unacked == 0).await;
    assert!(curl_crl(port, &f.bundle).await.0, "fetch before revocation");

    let r = f.handle.command(&f.gw, OperatorCommand::Revoke).unwrap();
    assert!(r.detail.contains("revoked"), "{}", r.detail);
    // Kicked: the session drops, and the broker's TLS front refuses every reconnect at the
    // handshake (the new CRL); the platform would refuse anything that got through.
    g.wait("kicked", |v| !v.connected).await;
    // The legacy system goes on uploading: stored by the gateway, never by the platform.
    let b = g.upload(Ds::Billing, 2, 8).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!g.view().await.connected, "a revoked gateway got a session");
    let store = f.store();
    assert!(!store.has_record(&f.gw, b.first).unwrap());
    assert!(store.has_record(&f.gw, a.last).unwrap());
    let v = f.handle.view(&f.gw);
    assert!(v.revoked && !v.connected);
    // The new CRL is served and enforced at the HTTPS handshake.
    let (ok, _) = curl_crl(port, &f.bundle).await;
    assert!(!ok, "revoked client certificate accepted over HTTPS");
    assert!(
        f.handle
            .command(&f.gw, start_cmd(ProfileFormat::Json))
            .is_err()
    );
}

#[tokio::test]
async fn the_stale_crl_fault_serves_the_crl_from_before_the_latest_revocation() {
    let _s = serial().await;
    let f = fixture_https("STALE1", fast_config(), FaultConfig::default()).await;
    let port = f.platform.https().unwrap().addr().port();
    // A second gateway's certificate to fetch with (the revoked one cannot, once enforced).
    let other = {
        let mut ca = platform_sim::ca::Ca::open(&env().ca_dir).unwrap();
        common::bundle(
            &mut ca,
            "STALE2",
            env().dir.path(),
            env().broker.addr().port(),
        )
    };
    let before = std::fs::read_to_string(env().ca_dir.join("crl.pem")).unwrap();
    f.handle
        .set_faults(FaultConfig {
            stale_crl: true,
            ..FaultConfig::default()
        })
        .unwrap();
    f.handle.command(&f.gw, OperatorCommand::Revoke).unwrap();
    let after = std::fs::read_to_string(env().ca_dir.join("crl.pem")).unwrap();
    assert_ne!(before, after, "revocation re-signed the CRL");
    let (ok, served) = curl_crl(port, &other).await;
    assert!(ok);
    assert_eq!(served.trim(), before.trim(), "stale CRL not served");
    // And the revoked gateway still passes the stale CRL at the handshake.
    assert!(curl_crl(port, &f.bundle).await.0);
    f.handle.set_faults(FaultConfig::default()).unwrap();
    let (ok, served) = curl_crl(port, &other).await;
    assert!(ok);
    assert_eq!(
        served.trim(),
        after.trim(),
        "current CRL not served after the fault"
    );
    assert!(!curl_crl(port, &f.bundle).await.0);
}

#[tokio::test]
async fn lost_data_is_neither_stored_nor_acknowledged_and_its_retransmission_is() {
    let _s = serial().await;
    let f = fixture_https("LOSE1", fast_config(), FaultConfig::default()).await;
    let tap = Tap::start(&f);
    let mut g = RealGateway::connected(&f).await;
    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Json))
        .unwrap();
    g.wait("running", |v| v.running).await;
    f.handle
        .set_faults(FaultConfig {
            lose_data: 1,
            ..FaultConfig::default()
        })
        .unwrap();
    let r = g.upload(Ds::Billing, 3, 1).await;
    wait_for("the data message on the wire", || {
        !tap.up(MessageType::Data).is_empty()
    })
    .await;
    // Lost: the platform neither stores it nor answers it (ackTimeoutSec is 2 s).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!f.store().has_record(&f.gw, r.first).unwrap());
    assert!(tap.down(MessageType::DataAck).is_empty());
    assert_eq!(g.view().await.unacked, 3);
    // The fault is spent: what comes next (the retransmission, or resend data if the
    // platform saw the gap in `monitor.status` first) is stored and acknowledged.
    g.wait("acknowledged after the loss", |v| v.unacked == 0)
        .await;
    assert!(f.store().has_record(&f.gw, r.first).unwrap());
    assert!(f.store().has_record(&f.gw, r.last).unwrap());
    let sent = tap.up(MessageType::Data);
    assert!(sent.len() >= 2, "{} data messages", sent.len());
    assert_eq!(f.handle.faults().lose_data, 0);
}
