//! The XML data profile through the one data-security facade (SEC-XML-SIG-1/2,
//! SEC-XML-ENC-1/2, SEC-CERT-2): the facade validates the peer certificate (root, period, CRL)
//! before it encrypts to it or verifies with it, and every XML refusal surfaces as a
//! `SecurityError` (wire code `SECURITY_FAILED`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use gateway::security::SecurityError;
use gateway::security::xml::{XmlCipher, XmlError};
use security_common::*;

const PROFILE: &str = concat!(
    r#"<sgw:DataProfile xmlns:sgw="urn:sgw:profile:v1">"#,
    r#"<sgw:Header Id="header"><sgw:Dataset>billing</sgw:Dataset></sgw:Header>"#,
    r#"<sgw:Body Id="body"><sgw:Record><sgw:F>山田 太郎</sgw:F><sgw:F>東京都千代田区1-1</sgw:F></sgw:Record></sgw:Body>"#,
    r#"</sgw:DataProfile>"#
);

#[test]
fn an_xml_profile_sealed_by_the_gateway_opens_at_the_platform_with_its_plaintext_body() {
    for cipher in [
        XmlCipher::Aes128Cbc,
        XmlCipher::Aes192Cbc,
        XmlCipher::Aes256Cbc,
    ] {
        let sealed = gateway_ds()
            .seal_xml_profile("platform", PROFILE, cipher, now())
            .unwrap();
        assert!(!sealed.contains("山田"), "the body must be encrypted");
        assert!(sealed.contains("<sgw:Dataset>billing</sgw:Dataset>"));
        let opened = platform_ds()
            .open_xml_profile("GW0001", &sealed, now())
            .unwrap();
        assert!(opened.contains("山田 太郎"));
        assert!(opened.contains("東京都千代田区1-1"));
    }
}

#[test]
fn an_xml_profile_from_another_signer_is_refused_as_a_security_failure() {
    // Signed by the application, but the platform expects the gateway.
    let sealed = app_ds()
        .seal_xml_profile("platform", PROFILE, XmlCipher::Aes128Cbc, now())
        .unwrap();
    let err = platform_ds()
        .open_xml_profile("GW0001", &sealed, now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            SecurityError::Xml(XmlError::Structure(_) | XmlError::SignatureInvalid)
        ),
        "{err:?}"
    );
    assert_eq!(err.wire_code(), "SECURITY_FAILED");
}

#[test]
fn an_xml_profile_from_a_revoked_gateway_is_refused_before_it_is_verified() {
    let sealed = gateway_ds()
        .seal_xml_profile("platform", PROFILE, XmlCipher::Aes128Cbc, now())
        .unwrap();
    // Serial 10 is the gateway's certificate.
    let platform = platform_ds_revoking(&[10]);
    assert!(matches!(
        platform.open_xml_profile("GW0001", &sealed, now()),
        Err(SecurityError::CertRevoked)
    ));
    assert!(matches!(
        platform.seal_xml_profile("GW0001", PROFILE, XmlCipher::Aes128Cbc, now()),
        Err(SecurityError::CertRevoked)
    ));
}

#[test]
fn sealing_an_xml_profile_to_an_unknown_peer_is_refused() {
    assert!(matches!(
        gateway_ds().seal_xml_profile("APP99", PROFILE, XmlCipher::Aes128Cbc, now()),
        Err(SecurityError::UnknownPeer(_))
    ));
}

#[test]
fn a_tampered_xml_profile_is_refused_through_the_facade() {
    let sealed = gateway_ds()
        .seal_xml_profile("platform", PROFILE, XmlCipher::Aes128Cbc, now())
        .unwrap();
    let tampered = sealed.replacen("billing", "bIlling", 1);
    assert_ne!(tampered, sealed);
    assert!(matches!(
        platform_ds().open_xml_profile("GW0001", &tampered, now()),
        Err(SecurityError::Xml(XmlError::DigestMismatch))
    ));
}
