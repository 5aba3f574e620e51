//! The real gateway runtime (`gateway::runtime::app`, what `sgw run` starts: MQTT link over
//! mutual TLS, the driver task owning `GatewayCore`, the SQLite store, the FTPS server, the
//! certificate refresh) against the platform simulator (IF-CONN-1, IF-PSTART-1..4,
//! IF-PSEND-1..3, IF-DISC-1, ST-STORE-1, MON-1, SEC-CERT-1, DES-CERT-3/5): legacy CSV uploaded
//! over FTPS goes out as JSON and XML profiles and every record is checked field by field in the
//! platform's SQLite store; the local metrics tell the same facts; a clean shutdown disconnects
//! and the acknowledgements survive it. The certificate refresh (`runtime::certfetch`) against
//! the platform's HTTPS endpoint installs a newer CRL, refuses a rollback, and a revoked gateway
//! is refused at the handshake.
//!
//! A kill without shutdown and the restart from the stored snapshot (seqs continue, nothing
//! lost or sent twice) is `gateway/tests/sgw_crash.rs`; a clean restart that goes on with new
//! seqs, `sgw_run.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::fixture::{env, fast_config, fixture_https, serial};
use common::real::{RealGateway, Tap, start_cmd, wait_for};
use gateway::protocol::message::{Body, MessageType, ProfileFormat, ResultCode};
use gateway::security::{DataSecurity, KeyStore, MaskingKeys};
use legacy_sim::dataset::Dataset as Ds;
use platform_sim::ops::{FaultConfig, OperatorBackend};
use platform_sim::provision::Bundle;

/// The bundle's data security (the masking key made on the gateway's side, as `sgw
/// masking-key new` would).
fn security(b: &Bundle) -> DataSecurity {
    let keys = KeyStore::load_dir(&b.dir.join("data-protection"), "gateway").unwrap();
    let m = &b.config.masking;
    if !m
        .keys_dir
        .path()
        .join(format!("{}.key", m.active_key))
        .exists()
    {
        gateway::config::new_masking_key(&b.dir, None).unwrap();
    }
    let masking = MaskingKeys::load_dir(m.keys_dir.path(), m.active_key.as_str()).unwrap();
    DataSecurity::new(keys).with_masking(masking)
}

#[tokio::test]
async fn the_real_runtime_sends_json_and_xml_data_that_the_platform_stores_disconnects_and_keeps_the_acknowledgements()
 {
    let _s = serial().await;
    let f = fixture_https("RTGW1", fast_config(), FaultConfig::default()).await;
    let tap = Tap::start(&f);
    let mut g = RealGateway::started(&f, ProfileFormat::Json).await;
    let a = g.upload(Ds::Billing, 30, 11).await;
    g.wait("json data acknowledged", |v| v.unacked == 0).await;
    // Field by field; masked columns reached the platform masked.
    g.assert_stored(&f, a.first, a.last);

    f.handle
        .command(&f.gw, start_cmd(ProfileFormat::Xml))
        .unwrap();
    g.wait("xml start applied", |v| {
        v.periodic.format == ProfileFormat::Xml
    })
    .await;
    let b = g.upload(Ds::PipeLedger, 12, 12).await;
    g.wait("xml data acknowledged", |v| v.unacked == 0).await;
    g.assert_stored(&f, b.first, b.last);
    let xml: Vec<ProfileFormat> = tap
        .up(MessageType::Data)
        .into_iter()
        .filter_map(|e| match e.body {
            Body::Data(d) if d.range.first >= b.first => Some(d.format),
            _ => None,
        })
        .collect();
    assert!(
        !xml.is_empty() && xml.iter().all(|f| *f == ProfileFormat::Xml),
        "{xml:?}"
    );
    // The local metrics tell the same facts (MON-1).
    let text = g.running().metrics.render();
    assert!(text.contains("sgw_connected 1"), "{text}");
    assert!(text.contains(&format!("sgw_last_seq {}", b.last)), "{text}");
    assert!(text.contains("sgw_unacked_records 0"), "{text}");

    // Clean shutdown: disconnect → disconnect.result, the platform closes the session.
    g.shutdown().await;
    let disc = tap.up(MessageType::Disconnect);
    assert_eq!(disc.len(), 1);
    let result = tap.down(MessageType::DisconnectResult);
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].in_reply_to.as_ref(), Some(&disc[0].message_id));
    assert_eq!(result[0].result.as_ref().unwrap().code, ResultCode::Ok);
    wait_for("session closed", || !f.handle.view(&f.gw).connected).await;

    // Started again: the acknowledgements were stored with the records, nothing goes out again.
    let sent = tap.of(true, MessageType::Data).len();
    g.start().await;
    g.wait("session again, nothing unacknowledged", |v| {
        v.connected && v.running && v.last_seq == b.last && v.unacked == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        tap.of(true, MessageType::Data).len(),
        sent,
        "data sent again"
    );
    assert_eq!(f.store().records(&f.gw).unwrap().len() as u64, b.last);
}

/// The CRL number of the CRL `sec` holds.
fn held_crl_number(sec: &DataSecurity) -> String {
    let crl = sec.keys().crl().expect("a CRL is held");
    gateway::security::cert::crl_number(crl)
        .unwrap()
        .unwrap()
        .to_dec_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_certificate_refresh_installs_a_newer_crl_refuses_a_rollback_and_a_revoked_gateway_is_refused_at_the_handshake()
 {
    use gateway::runtime::certfetch::CertFetcher;
    use platform_sim::ca::Ca;
    use platform_sim::https::Published;
    let _s = serial().await;
    let f = fixture_https("RTGW3", fast_config(), FaultConfig::default()).await;
    let https = f.platform.https().unwrap();
    let b = &f.bundle;
    let tls = b.config.link_settings(0).tls;
    let fetcher =
        CertFetcher::new(&format!("https://localhost:{}", https.addr().port()), tls).unwrap();
    let cell = arc_swap::ArcSwap::from_pointee(security(b));
    let now = chrono::Utc::now;

    // First round: the platform certificate passes DES-CERT-4 with its role; nothing refused,
    // and nothing installed — it is the one provisioned.
    let r = fetcher.refresh(&cell, now()).await;
    assert!(!r.platform_installed, "{r:?}");
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let before = held_crl_number(&cell.load());

    // The CA signs a newer CRL: installed.
    let old_published = Published::from_ca(&Ca::open(&env().ca_dir).unwrap()).unwrap();
    let mut ca = Ca::open(&env().ca_dir).unwrap();
    ca.sign_crl().unwrap();
    https.publish(Published::from_ca(&ca).unwrap()).unwrap();
    let r = fetcher.refresh(&cell, now()).await;
    assert!(r.crl_installed, "{r:?}");
    let after = held_crl_number(&cell.load());
    assert_ne!(before, after, "the held CRL is the newer one");

    // The endpoint serves the older CRL again (a stale cache, an attacker): refused, kept.
    https.publish(old_published).unwrap();
    let r = fetcher.refresh(&cell, now()).await;
    assert!(!r.crl_installed);
    assert!(
        r.findings
            .iter()
            .any(|x| x.what == "crl" && x.rule == "DES-CERT-3"),
        "rollback not refused: {:?}",
        r.findings
    );
    assert_eq!(held_crl_number(&cell.load()), after);

    // The gateway is revoked: the endpoint refuses it at the TLS handshake (DES-CERT-5).
    let mut ca = Ca::open(&env().ca_dir).unwrap();
    ca.revoke_gateway(&f.gw).unwrap();
    https.publish(Published::from_ca(&ca).unwrap()).unwrap();
    match fetcher.get("/sgw/v1/certs/platform.pem", None).await {
        Err(gateway::runtime::certfetch::FetchError::Connect(_)) => {}
        other => panic!("a revoked gateway fetched: {other:?}"),
    }
}
