//! Certificate checks (SEC-CERT-2, SM-CERTEXP): each refusal has its own error variant and its
//! own test; sealing and verification refuse to use an invalid peer certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use chrono::Duration;
use gateway::security::cert::{validate_cert, validate_crl, validate_root};
use gateway::security::{DataSecurity, Identity, KeyStore, SecurityError};
use security_common::*;

fn check(
    cert: &openssl::x509::X509,
    crl: Option<&openssl::x509::X509Crl>,
) -> Result<(), SecurityError> {
    let p = pki();
    validate_cert(cert, &identity_of(&cn_of(cert)), &p.root, crl, now())
}

#[test]
fn a_certificate_issued_by_the_root_with_a_fresh_crl_is_accepted() {
    let p = pki();
    check(&p.platform.cert, Some(&fresh_crl(p))).unwrap();
    validate_root(&p.root, now()).unwrap();
}

#[test]
fn a_certificate_signed_by_another_key_under_the_roots_name_is_untrusted() {
    let p = pki();
    let key = rsa(2048);
    let cert = issue(&p.rogue_root_key, &p.root, "forged", &key, 50, -DAY, DAY);
    assert!(matches!(
        check(&cert, Some(&fresh_crl(p))),
        Err(SecurityError::CertUntrusted)
    ));
}

#[test]
fn a_certificate_from_another_issuer_is_refused() {
    let p = pki();
    let other_root = make_root(&p.rogue_root_key, "Other Root");
    let cert = issue(
        &p.rogue_root_key,
        &other_root,
        "other",
        &p.spare_key,
        51,
        -DAY,
        DAY,
    );
    assert!(matches!(
        check(&cert, Some(&fresh_crl(p))),
        Err(SecurityError::CertWrongIssuer)
    ));
}

#[test]
fn an_expired_certificate_is_refused() {
    let p = pki();
    let cert = issue(
        &p.root_key,
        &p.root,
        "old",
        &p.spare_key,
        52,
        -10 * DAY,
        -DAY,
    );
    assert!(matches!(
        check(&cert, Some(&fresh_crl(p))),
        Err(SecurityError::CertExpired)
    ));
}

#[test]
fn a_certificate_not_yet_valid_is_refused() {
    let p = pki();
    let cert = issue(
        &p.root_key,
        &p.root,
        "future",
        &p.spare_key,
        53,
        DAY,
        10 * DAY,
    );
    assert!(matches!(
        check(&cert, Some(&fresh_crl(p))),
        Err(SecurityError::CertNotYetValid)
    ));
}

#[test]
fn the_validity_period_is_judged_at_the_now_passed_in() {
    let p = pki();
    let crl = make_crl(&p.root_key, &p.root, &[], -3600, Some(800 * DAY));
    let platform = Identity::platform();
    validate_cert(&p.platform.cert, &platform, &p.root, Some(&crl), now()).unwrap();
    let later = now() + Duration::days(400);
    assert!(matches!(
        validate_cert(&p.platform.cert, &platform, &p.root, Some(&crl), later),
        Err(SecurityError::CertExpired)
    ));
}

#[test]
fn a_revoked_certificate_is_refused() {
    let p = pki();
    let crl = make_crl(&p.root_key, &p.root, &[11], -3600, Some(DAY));
    assert!(matches!(
        check(&p.platform.cert, Some(&crl)),
        Err(SecurityError::CertRevoked)
    ));
    // Control: another serial on the CRL does not affect it.
    check(&p.app.cert, Some(&crl)).unwrap();
}

#[test]
fn a_crl_not_signed_by_the_root_is_refused() {
    let p = pki();
    let crl = make_crl(&p.rogue_root_key, &p.root, &[], -3600, Some(DAY));
    assert!(matches!(
        validate_crl(&crl, &p.root, now()),
        Err(SecurityError::CrlBadSignature)
    ));
    assert!(matches!(
        check(&p.platform.cert, Some(&crl)),
        Err(SecurityError::CrlBadSignature)
    ));
}

#[test]
fn a_crl_past_its_next_update_is_stale() {
    let p = pki();
    let crl = make_crl(&p.root_key, &p.root, &[], -10 * DAY, Some(-DAY));
    assert!(matches!(
        check(&p.platform.cert, Some(&crl)),
        Err(SecurityError::CrlStale)
    ));
}

#[test]
fn having_no_crl_at_all_counts_as_stale() {
    // (The openssl crate cannot build a CRL without nextUpdate; that branch is the same code.)
    let p = pki();
    assert!(matches!(
        check(&p.platform.cert, None),
        Err(SecurityError::CrlStale)
    ));
}

#[test]
fn a_crl_issued_in_the_future_is_refused() {
    let p = pki();
    let crl = make_crl(&p.root_key, &p.root, &[], DAY, Some(10 * DAY));
    assert!(matches!(
        check(&p.platform.cert, Some(&crl)),
        Err(SecurityError::CrlNotYetValid)
    ));
}

#[test]
fn a_certificate_with_a_key_under_2048_bits_is_refused() {
    let p = pki();
    let small = rsa(1024);
    let cert = issue(&p.root_key, &p.root, "small", &small, 54, -DAY, DAY);
    assert!(matches!(
        check(&cert, Some(&fresh_crl(p))),
        Err(SecurityError::WeakKey(1024))
    ));
}

#[test]
fn sealing_to_or_opening_from_a_revoked_peer_is_refused() {
    let sealed = gateway_ds().seal_message("platform", b"{}", now()).unwrap();
    let platform = platform_ds_revoking(&[10]);
    assert!(matches!(
        platform.open_message("GW0001", &sealed, now()),
        Err(SecurityError::CertRevoked)
    ));
    assert!(matches!(
        platform.seal_message("GW0001", b"{}", now()),
        Err(SecurityError::CertRevoked)
    ));
}

#[test]
fn a_key_store_loads_from_a_provisioning_bundle_directory() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("gateway.key"),
        p.gateway.key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("gateway.pem"), p.gateway.cert.to_pem().unwrap()).unwrap();
    std::fs::write(d.join("root.pem"), p.root.to_pem().unwrap()).unwrap();
    std::fs::write(d.join("platform.pem"), p.platform.cert.to_pem().unwrap()).unwrap();
    std::fs::write(d.join("crl.pem"), fresh_crl(p).to_pem().unwrap()).unwrap();
    let ds = DataSecurity::new(KeyStore::load_dir(d, "gateway").unwrap());
    let sealed = ds.seal_message("platform", b"{\"a\":1}", now()).unwrap();
    assert_eq!(
        platform_ds()
            .open_message("GW0001", &sealed, now())
            .unwrap(),
        b"{\"a\":1}"
    );
    // A key that does not belong to the certificate is refused.
    std::fs::write(
        d.join("gateway.key"),
        p.spare_key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    assert!(matches!(
        KeyStore::load_dir(d, "gateway"),
        Err(SecurityError::KeyMaterial(_))
    ));
}

#[test]
fn the_key_store_debug_output_does_not_contain_the_private_key() {
    let ds = gateway_ds();
    let dbg = format!("{ds:?}");
    assert!(!dbg.contains("PRIVATE"));
    assert!(dbg.contains(&ds.keys().own().kid));
}

#[test]
fn a_forged_or_stale_crl_does_not_replace_the_current_one() {
    let p = pki();
    let mut ds = platform_ds();
    let forged = make_crl(&p.rogue_root_key, &p.root, &[10], -3600, Some(DAY));
    assert!(matches!(
        ds.update_crl(&forged.to_pem().unwrap(), now()),
        Err(SecurityError::CrlBadSignature)
    ));
    let stale = make_crl(&p.root_key, &p.root, &[10], -10 * DAY, Some(-DAY));
    assert!(matches!(
        ds.update_crl(&stale.to_der().unwrap(), now()),
        Err(SecurityError::CrlStale)
    ));
    // The gateway (serial 10) is still accepted under the previous CRL.
    ds.validate_peer("GW0001", now()).unwrap();
    // A genuine CRL revoking it is taken, in PEM or DER.
    let real = make_crl(&p.root_key, &p.root, &[10], -3600, Some(DAY));
    ds.update_crl(&real.to_der().unwrap(), now()).unwrap();
    assert!(matches!(
        ds.validate_peer("GW0001", now()),
        Err(SecurityError::CertRevoked)
    ));
}

#[test]
fn a_peer_certificate_is_only_added_when_it_validates() {
    let p = pki();
    let mut ds = gateway_ds();
    let expired = issue(
        &p.root_key,
        &p.root,
        "APP02",
        &p.spare_key,
        60,
        -10 * DAY,
        -DAY,
    );
    assert!(matches!(
        ds.update_peer(
            Identity::application("APP02"),
            &expired.to_pem().unwrap(),
            now()
        ),
        Err(SecurityError::CertExpired)
    ));
    assert!(matches!(
        ds.keys().peer("APP02"),
        Err(SecurityError::UnknownPeer(_))
    ));
    let good = issue(&p.root_key, &p.root, "APP02", &p.spare_key, 61, -DAY, DAY);
    ds.update_peer(
        Identity::application("APP02"),
        &good.to_pem().unwrap(),
        now(),
    )
    .unwrap();
    let kid = ds.keys().peer("APP02").unwrap().kid.clone();
    assert_eq!(ds.keys().peer_by_kid(&kid).unwrap().0, "APP02");
}
