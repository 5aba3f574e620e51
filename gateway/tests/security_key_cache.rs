//! The josekit signer, verifier and encrypter are built once per key and kept (PeerCert,
//! KeyStore); the peer certificate must still be validated at `now` on every call, and a
//! replaced certificate must not keep using the old key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use chrono::Duration;
use gateway::security::SecurityError;
use gateway::security::jose::{self, JwePolicy};
use security_common::*;

#[test]
fn a_peer_revoked_after_its_keys_were_cached_is_refused_on_the_next_seal_and_open() {
    let p = pki();
    let gw = gateway_ds();
    let mut pf = platform_ds();
    // Use the cached verifier (open) and encrypter (seal) of GW0001 once.
    let sealed = gw.seal_message("platform", b"{}", now()).unwrap();
    assert_eq!(pf.open_message("GW0001", &sealed, now()).unwrap(), b"{}");
    pf.seal_message("GW0001", b"{}", now()).unwrap();
    let before_revocation = pf.clone();
    // Revoke the gateway (serial 10).
    let crl = make_crl(&p.root_key, &p.root, &[10], -3600, Some(DAY));
    pf.update_crl(&crl.to_der().unwrap(), now()).unwrap();
    assert!(matches!(
        pf.open_message("GW0001", &sealed, now()),
        Err(SecurityError::CertRevoked)
    ));
    assert!(matches!(
        pf.seal_message("GW0001", b"{}", now()),
        Err(SecurityError::CertRevoked)
    ));
    // A clone taken before the new CRL shares the cached keys but keeps its own CRL.
    before_revocation
        .open_message("GW0001", &sealed, now())
        .unwrap();
}

#[test]
fn a_peer_certificate_that_expires_after_its_keys_were_cached_is_refused_at_a_later_now() {
    let gw = gateway_ds();
    let pf = platform_ds();
    let sealed = gw.seal_message("platform", b"{}", now()).unwrap();
    pf.open_message("GW0001", &sealed, now()).unwrap();
    let later = now() + Duration::days(400);
    assert!(matches!(
        gw.seal_message("platform", b"{}", later),
        Err(SecurityError::CertExpired)
    ));
    assert!(matches!(
        pf.open_message("GW0001", &sealed, later),
        Err(SecurityError::CertExpired)
    ));
}

#[test]
fn a_replaced_peer_certificate_is_used_from_the_next_seal_on() {
    let p = pki();
    let mut gw = gateway_ds();
    let to_old = gw.seal_message("APP01", b"{}", now()).unwrap();
    jose::jwe_decrypt(&to_old, &p.app.key, &JwePolicy::default()).unwrap();
    let new_cert = issue(&p.root_key, &p.root, "APP01", &p.spare_key, 70, -DAY, DAY);
    gw.update_peer(
        gateway::security::Identity::application("APP01"),
        &new_cert.to_pem().unwrap(),
        now(),
    )
    .unwrap();
    let to_new = gw.seal_message("APP01", b"{}", now()).unwrap();
    jose::jwe_decrypt(&to_new, &p.spare_key, &JwePolicy::default()).unwrap();
    assert!(matches!(
        jose::jwe_decrypt(&to_new, &p.app.key, &JwePolicy::default()),
        Err(SecurityError::DecryptionFailed)
    ));
}

#[test]
fn the_cached_thumbprint_equals_the_one_computed_from_the_certificate() {
    let p = pki();
    let gw = gateway_ds();
    let peer = gw.keys().peer("platform").unwrap();
    assert_eq!(
        peer.x5t_s256(),
        jose::x5t_s256(&p.platform.cert.to_der().unwrap())
    );
    assert_eq!(
        peer.sha256(),
        &openssl::sha::sha256(&p.platform.cert.to_der().unwrap())
    );
}
