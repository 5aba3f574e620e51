//! Every fault the platform injects, each against a scripted gateway over real mutual-TLS MQTT
//! (conformance; IF-PSTART-2, SEC-CERT-2, SM-RESEND, DES-ENV-8, DES-MSG-PS-4, DES-SEAL-5):
//! tampered, unsigned, expired-certificate and revoked-certificate commands are refused by the
//! gateway and its anomaly is recorded by the platform; dropped, duplicated, delayed and
//! reordered messages; a stale CRL served over HTTPS; a gateway revoked mid-session.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::scripted::{ScriptedGateway, env, fast_config, fixture, fixture_https, serial};
use gateway::protocol::gateway_side::GatewayEvent;
use gateway::protocol::message::{MessageType, ProfileFormat};
use legacy_sim::dataset::Dataset as Ds;
use platform_sim::ops::{FaultConfig, OperatorBackend, OperatorCommand};

const T: Duration = Duration::from_secs(10);

fn start_cmd() -> OperatorCommand {
    OperatorCommand::Start {
        datasets: vec![],
        interval_sec: 1,
        format: ProfileFormat::Json,
    }
}

/// The first start is sealed with `faults`: the gateway refuses it (not applied), reports an
/// anomaly that the platform stores, and the platform's retry (sealed properly) is applied.
async fn faulty_command_is_refused_reported_and_retried(id: &str, faults: FaultConfig, name: &str) {
    let _s = serial().await;
    let f = fixture(id, fast_config(), faults);
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await, "no session");
    f.handle.command(&f.gw, start_cmd()).unwrap();
    assert!(
        g.run_until(T, |g| !g.refused.is_empty()).await,
        "the {name} command was not refused"
    );
    assert!(
        g.refused[0].ends_with("/down/periodic.start"),
        "{:?}",
        g.refused
    );
    assert!(!g.core.periodic().running, "a {name} command was applied");
    assert!(g.received_of(MessageType::PeriodicStart).is_empty());
    let store = f.store();
    assert!(
        g.run_until(T, |_| store
            .anomalies(&f.gw)
            .unwrap()
            .iter()
            .any(|a| a.0 == "gateway"
                && a.1 == "security"
                && a.2 == "IF-PSTART-2"))
            .await,
        "anomaly not recorded: {:?}",
        store.anomalies(&f.gw).unwrap()
    );
    let cmds = store.commands(&f.gw).unwrap();
    assert_eq!(cmds[0].2.as_deref(), Some(name));
    // The platform re-sends the unanswered command under a new ID, properly sealed.
    assert!(
        g.run_until(T, |g| g.core.periodic().running).await,
        "retry not applied"
    );
    let cmds = store.commands(&f.gw).unwrap();
    assert_eq!(cmds.last().unwrap().2, None);
    assert_ne!(cmds[0].0, cmds.last().unwrap().0);
    let v = f.handle.view(&f.gw);
    assert!(
        v.anomalies
            .iter()
            .any(|a| a.source == "gateway" && a.rule == "IF-PSTART-2")
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

#[tokio::test]
async fn dropped_commands_never_arrive_and_the_platform_retries_once_the_fault_is_lifted() {
    let _s = serial().await;
    let f = fixture("DROP1", fast_config(), FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await);
    f.handle
        .set_faults(FaultConfig {
            drop_percent: 100,
            ..FaultConfig::default()
        })
        .unwrap();
    f.handle.command(&f.gw, start_cmd()).unwrap();
    g.run_for(Duration::from_millis(1500)).await;
    assert!(g.received_of(MessageType::PeriodicStart).is_empty());
    assert_eq!(
        f.store().commands(&f.gw).unwrap().len(),
        1,
        "sent (and dropped)"
    );
    f.handle.set_faults(FaultConfig::default()).unwrap();
    assert!(
        g.run_until(T, |g| g.core.periodic().running).await,
        "retry lost"
    );
}

#[tokio::test]
async fn a_duplicated_command_is_applied_once_and_answered_with_the_same_reply() {
    let _s = serial().await;
    let f = fixture("DUP1", fast_config(), FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await);
    f.handle
        .set_faults(FaultConfig {
            duplicate_percent: 100,
            ..FaultConfig::default()
        })
        .unwrap();
    f.handle.command(&f.gw, start_cmd()).unwrap();
    assert!(
        g.run_until(T, |g| g.received_of(MessageType::PeriodicStart).len() >= 2)
            .await
    );
    g.run_for(Duration::from_millis(500)).await;
    let starts = g.received_of(MessageType::PeriodicStart);
    assert_eq!(
        starts[0].message_id, starts[1].message_id,
        "one message, twice"
    );
    let applied = g
        .events
        .iter()
        .filter(|e| matches!(e, GatewayEvent::StartStoring { .. }))
        .count();
    assert_eq!(applied, 1);
    let results: Vec<&String> = g
        .sent
        .iter()
        .filter(|(t, _, _)| *t == MessageType::PeriodicStartResult)
        .map(|(_, id, _)| id)
        .collect();
    assert!(
        results.len() >= 2 && results.iter().all(|r| *r == results[0]),
        "{results:?}"
    );
}

#[tokio::test]
async fn delayed_messages_arrive_no_sooner_than_the_delay() {
    let _s = serial().await;
    let f = fixture("DLY1", fast_config(), FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await);
    f.handle
        .set_faults(FaultConfig {
            delay_ms: 800,
            ..FaultConfig::default()
        })
        .unwrap();
    let t0 = Instant::now();
    f.handle.command(&f.gw, start_cmd()).unwrap();
    assert!(
        g.run_until(T, |g| !g.received_of(MessageType::PeriodicStart).is_empty())
            .await
    );
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(
        took < Duration::from_millis(2800),
        "{took:?} (retry, not delay)"
    );
}

#[tokio::test]
async fn reordered_commands_leave_the_gateway_in_the_newer_state() {
    let _s = serial().await;
    let f = fixture("ORD1", fast_config(), FaultConfig::default());
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await);
    f.handle
        .set_faults(FaultConfig {
            reorder: true,
            ..FaultConfig::default()
        })
        .unwrap();
    f.handle.command(&f.gw, start_cmd()).unwrap();
    f.handle.command(&f.gw, OperatorCommand::Stop).unwrap();
    let both = |g: &ScriptedGateway| {
        !g.received_of(MessageType::PeriodicStart).is_empty()
            && !g.received_of(MessageType::PeriodicStop).is_empty()
    };
    assert!(g.run_until(T, both).await);
    let order: Vec<MessageType> = g
        .received
        .iter()
        .map(|e| e.message_type())
        .filter(|t| matches!(t, MessageType::PeriodicStart | MessageType::PeriodicStop))
        .collect();
    assert_eq!(
        order[..2],
        [MessageType::PeriodicStop, MessageType::PeriodicStart]
    );
    g.run_for(Duration::from_millis(500)).await;
    assert!(!g.core.periodic().running, "the older start won");
    assert!(
        !g.events
            .iter()
            .any(|e| matches!(e, GatewayEvent::StartStoring { .. })),
        "the overtaken start was applied"
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
    let mut g = ScriptedGateway::new(&f.bundle, env().broker.addr().port());
    assert!(g.run_until(T, |g| g.connected()).await);
    f.handle.command(&f.gw, start_cmd()).unwrap();
    assert!(g.run_until(T, |g| g.core.periodic().running).await);
    let a = g.ingest(Ds::Billing, 3, 7);
    assert!(g.run_until(T, |g| g.all_acked()).await);
    assert!(curl_crl(port, &f.bundle).await.0, "fetch before revocation");

    let r = f.handle.command(&f.gw, OperatorCommand::Revoke).unwrap();
    assert!(r.detail.contains("revoked"), "{}", r.detail);
    // Kicked: the session drops; rumqttd has no CRL, so MQTT reconnects, but the platform
    // refuses its connect and everything after it.
    assert!(g.run_until(T, |g| !g.connected()).await, "not kicked");
    let b = g.ingest(Ds::Billing, 2, 8);
    g.run_for(Duration::from_secs(3)).await;
    assert!(!g.connected(), "a revoked gateway got a session");
    let store = f.store();
    assert!(!store.has_record(&f.gw, b.first).unwrap());
    assert!(store.has_record(&f.gw, a.last).unwrap());
    assert!(
        store
            .anomalies(&f.gw)
            .unwrap()
            .iter()
            .any(|x| x.0 == "platform" && x.2 == "SEC-CERT-2"),
        "refusal not recorded"
    );
    let v = f.handle.view(&f.gw);
    assert!(v.revoked && !v.connected);
    // The new CRL is served and enforced at the HTTPS handshake.
    let (ok, _) = curl_crl(port, &f.bundle).await;
    assert!(!ok, "revoked client certificate accepted over HTTPS");
    assert!(f.handle.command(&f.gw, start_cmd()).is_err());
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
