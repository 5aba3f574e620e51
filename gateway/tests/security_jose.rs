//! JWS/JWE and nested sealing (SEC-JSON-SIG-1/2, SEC-JSON-ENC-1/2, DES-SEAL, DES-PROF): round
//! trips between parties and one negative test per hardening rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use gateway::security::jose::{self, JwePolicy, JwsPolicy};
use gateway::security::{KeyAlg, Profile, SecurityError};
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::sign::Signer;
use openssl::symm::{Cipher, encrypt};
use security_common::*;

const ENVELOPE: &[u8] = br#"{"version":"1","type":"connect","id":"m-1"}"#;

/// Our own RS256 JWS with an arbitrary header (built here with openssl, not with the module).
fn raw_jws(header: &serde_json::Value, payload: &[u8], key: &PKeyRef<Private>) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload));
    let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
    s.update(input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(s.sign_to_vec().unwrap()))
}

/// A JWE (RSA-OAEP-256 / A128CBC-HS256 arithmetic) with an arbitrary header, built here.
fn raw_jwe<T: HasPublic>(header: &serde_json::Value, pt: &[u8], to: &PKeyRef<T>) -> String {
    let mut cek = [0u8; 32];
    openssl::rand::rand_bytes(&mut cek).unwrap();
    let mut ctx = openssl::pkey_ctx::PkeyCtx::new(to).unwrap();
    ctx.encrypt_init().unwrap();
    ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)
        .unwrap();
    ctx.set_rsa_oaep_md(openssl::md::Md::sha256()).unwrap();
    ctx.set_rsa_mgf1_md(openssl::md::Md::sha256()).unwrap();
    let mut ek = Vec::new();
    ctx.encrypt_to_vec(&cek, &mut ek).unwrap();
    let iv = [5u8; 16];
    let ct = encrypt(Cipher::aes_128_cbc(), &cek[16..], Some(&iv), pt).unwrap();
    let h = B64.encode(header.to_string());
    let al = ((h.len() as u64) * 8).to_be_bytes();
    let mk = PKey::hmac(&cek[..16]).unwrap();
    let mut s = Signer::new(MessageDigest::sha256(), &mk).unwrap();
    for p in [h.as_bytes(), &iv, &ct, &al] {
        s.update(p).unwrap();
    }
    let tag = &s.sign_to_vec().unwrap()[..16];
    format!(
        "{h}.{}.{}.{}.{}",
        B64.encode(ek),
        B64.encode(iv),
        B64.encode(ct),
        B64.encode(tag)
    )
}

fn gw_kid() -> String {
    gateway_ds().keys().own().kid.clone()
}
fn pf_kid() -> String {
    platform_ds().keys().own().kid.clone()
}

/// A message whose inner JWS has `header`, sealed properly to the platform.
fn seal_inner_to_platform(inner: &str) -> String {
    let p = pki();
    let pk = p.platform.cert.public_key().unwrap();
    jose::jwe_encrypt(
        &pk,
        KeyAlg::RsaOaep256,
        inner.as_bytes(),
        Some("sgw-msg+jws"),
        Some(&pf_kid()),
    )
    .unwrap()
}

fn open_at_platform(token: &str) -> Result<Vec<u8>, SecurityError> {
    platform_ds().open_message("GW0001", token, now())
}

fn good_jws_header() -> serde_json::Value {
    serde_json::json!({"alg":"RS256","typ":"sgw-msg","kid": gw_kid()})
}

#[test]
fn a_message_sealed_by_the_gateway_opens_at_the_platform_and_back() {
    let sealed = gateway_ds()
        .seal_message("platform", ENVELOPE, now())
        .unwrap();
    assert_eq!(sealed.split('.').count(), 5);
    assert_eq!(open_at_platform(&sealed).unwrap(), ENVELOPE);
    let reply = platform_ds()
        .seal_message("GW0001", b"{\"r\":1}", now())
        .unwrap();
    assert_eq!(
        gateway_ds()
            .open_message("platform", &reply, now())
            .unwrap(),
        b"{\"r\":1}"
    );
}

#[test]
fn the_sealed_message_headers_follow_the_design() {
    let sealed = gateway_ds()
        .seal_message("platform", ENVELOPE, now())
        .unwrap();
    let (h, alg) = jose::check_jwe_header(&sealed, &JwePolicy::default()).unwrap();
    assert_eq!(alg, KeyAlg::RsaOaep256);
    assert_eq!(h["enc"], "A128CBC-HS256");
    assert_eq!(h["cty"], "sgw-msg+jws");
    assert_eq!(h["kid"], pf_kid());
}

#[test]
fn a_json_profile_round_trips_and_is_not_accepted_as_a_message() {
    let profile = br#"{"header":{"profileId":"sgw-profile-v1"},"records":[["1","\u6c34"]]}"#;
    let sealed = gateway_ds()
        .seal_json_profile("platform", profile, now())
        .unwrap();
    assert_eq!(
        platform_ds()
            .open_json_profile("GW0001", &sealed, now())
            .unwrap(),
        profile
    );
    assert!(matches!(
        open_at_platform(&sealed),
        Err(SecurityError::UnexpectedType(_))
    ));
}

#[test]
fn a_token_with_rsa_oaep_sha1_key_transport_is_accepted() {
    let sealed = gateway_ds()
        .seal(
            Profile::Message,
            KeyAlg::RsaOaep,
            "platform",
            ENVELOPE,
            now(),
        )
        .unwrap();
    let (_, alg) = jose::check_jwe_header(&sealed, &JwePolicy::default()).unwrap();
    assert_eq!(alg, KeyAlg::RsaOaep);
    assert_eq!(open_at_platform(&sealed).unwrap(), ENVELOPE);
}

#[test]
fn an_inner_jws_built_independently_with_a_good_header_is_accepted() {
    // Control for the negative tests below: the hand-made construction itself is valid.
    let p = pki();
    let inner = raw_jws(&good_jws_header(), ENVELOPE, &p.gateway.key);
    assert_eq!(
        open_at_platform(&seal_inner_to_platform(&inner)).unwrap(),
        ENVELOPE
    );
    let outer = raw_jwe(
        &serde_json::json!({"alg":"RSA-OAEP-256","enc":"A128CBC-HS256","cty":"sgw-msg+jws","kid":pf_kid()}),
        inner.as_bytes(),
        &p.platform.cert.public_key().unwrap(),
    );
    assert_eq!(open_at_platform(&outer).unwrap(), ENVELOPE);
}

#[test]
fn alg_none_is_refused() {
    let h = serde_json::json!({"alg":"none","typ":"sgw-msg","kid":gw_kid()});
    let inner = format!("{}.{}.", B64.encode(h.to_string()), B64.encode(ENVELOPE));
    let r = open_at_platform(&seal_inner_to_platform(&inner));
    assert!(matches!(r, Err(SecurityError::UnsupportedAlgorithm(a)) if a == "none"));
}

#[test]
fn hs256_keyed_with_the_signers_public_key_is_refused() {
    let p = pki();
    let h = serde_json::json!({"alg":"HS256","typ":"sgw-msg","kid":gw_kid()});
    let input = format!("{}.{}", B64.encode(h.to_string()), B64.encode(ENVELOPE));
    for pubkey in [
        p.gateway
            .cert
            .public_key()
            .unwrap()
            .public_key_to_pem()
            .unwrap(),
        p.gateway
            .cert
            .public_key()
            .unwrap()
            .public_key_to_der()
            .unwrap(),
    ] {
        let mk = PKey::hmac(&pubkey).unwrap();
        let mut s = Signer::new(MessageDigest::sha256(), &mk).unwrap();
        s.update(input.as_bytes()).unwrap();
        let inner = format!("{input}.{}", B64.encode(s.sign_to_vec().unwrap()));
        let r = open_at_platform(&seal_inner_to_platform(&inner));
        assert!(matches!(r, Err(SecurityError::UnsupportedAlgorithm(a)) if a == "HS256"));
    }
}

#[test]
fn an_unexpected_jws_alg_is_refused() {
    let p = pki();
    let h = serde_json::json!({"alg":"PS256","typ":"sgw-msg","kid":gw_kid()});
    let inner = raw_jws(&h, ENVELOPE, &p.gateway.key);
    let r = open_at_platform(&seal_inner_to_platform(&inner));
    assert!(matches!(r, Err(SecurityError::UnsupportedAlgorithm(a)) if a == "PS256"));
}

#[test]
fn an_unexpected_jwe_enc_or_alg_is_refused() {
    let p = pki();
    let pk = p.platform.cert.public_key().unwrap();
    let inner = raw_jws(&good_jws_header(), ENVELOPE, &p.gateway.key);
    for (alg, enc, bad) in [
        ("RSA-OAEP-256", "A256GCM", "A256GCM"),
        ("RSA-OAEP-256", "A256CBC-HS512", "A256CBC-HS512"),
        ("RSA1_5", "A128CBC-HS256", "RSA1_5"),
        ("dir", "A128CBC-HS256", "dir"),
    ] {
        let h = serde_json::json!({"alg":alg,"enc":enc,"cty":"sgw-msg+jws","kid":pf_kid()});
        let r = open_at_platform(&raw_jwe(&h, inner.as_bytes(), &pk));
        assert!(
            matches!(&r, Err(SecurityError::UnsupportedAlgorithm(a)) if a == bad),
            "{alg}/{enc}: {r:?}"
        );
    }
}

#[test]
fn an_unknown_crit_header_is_refused_in_the_jws_and_in_the_jwe() {
    let p = pki();
    let mut h = good_jws_header();
    h["crit"] = serde_json::json!(["exp"]);
    h["exp"] = serde_json::json!(1);
    let inner = raw_jws(&h, ENVELOPE, &p.gateway.key);
    assert!(matches!(
        open_at_platform(&seal_inner_to_platform(&inner)),
        Err(SecurityError::ForbiddenHeader(_))
    ));
    let good_inner = raw_jws(&good_jws_header(), ENVELOPE, &p.gateway.key);
    let jh = serde_json::json!({"alg":"RSA-OAEP-256","enc":"A128CBC-HS256","cty":"sgw-msg+jws","kid":pf_kid(),"crit":["x"],"x":1});
    let r = open_at_platform(&raw_jwe(
        &jh,
        good_inner.as_bytes(),
        &p.platform.cert.public_key().unwrap(),
    ));
    assert!(matches!(r, Err(SecurityError::ForbiddenHeader(_))));
}

#[test]
fn a_zip_header_is_refused() {
    let p = pki();
    let inner = raw_jws(&good_jws_header(), ENVELOPE, &p.gateway.key);
    let jh = serde_json::json!({"alg":"RSA-OAEP-256","enc":"A128CBC-HS256","cty":"sgw-msg+jws","kid":pf_kid(),"zip":"DEF"});
    let r = open_at_platform(&raw_jwe(
        &jh,
        inner.as_bytes(),
        &p.platform.cert.public_key().unwrap(),
    ));
    assert!(matches!(r, Err(SecurityError::ForbiddenHeader(n)) if n == "zip"));
}

#[test]
fn jku_x5u_and_jwk_headers_are_refused() {
    let p = pki();
    for (name, value) in [
        ("jku", serde_json::json!("https://evil.example/jwks")),
        ("x5u", serde_json::json!("https://evil.example/cert.pem")),
        (
            "jwk",
            serde_json::json!({"kty":"RSA","n":"AQAB","e":"AQAB"}),
        ),
    ] {
        let mut h = good_jws_header();
        h[name] = value;
        let inner = raw_jws(&h, ENVELOPE, &p.gateway.key);
        let r = open_at_platform(&seal_inner_to_platform(&inner));
        assert!(
            matches!(&r, Err(SecurityError::ForbiddenHeader(n)) if n == name),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn a_jwe_addressed_to_another_kid_is_refused() {
    // Sealed by the gateway to the application, delivered to the platform.
    let sealed = gateway_ds().seal_message("APP01", ENVELOPE, now()).unwrap();
    assert!(matches!(
        open_at_platform(&sealed),
        Err(SecurityError::UnknownKid)
    ));
}

#[test]
fn a_jws_with_an_unknown_kid_is_refused() {
    let p = pki();
    let mut h = good_jws_header();
    h["kid"] = serde_json::json!("00".repeat(32));
    let inner = raw_jws(&h, ENVELOPE, &p.gateway.key);
    assert!(matches!(
        open_at_platform(&seal_inner_to_platform(&inner)),
        Err(SecurityError::UnknownKid)
    ));
}

#[test]
fn a_message_signed_by_a_known_party_other_than_the_expected_sender_is_refused() {
    // The application is a known peer of the platform, but the platform expects GW0001.
    let sealed = app_ds().seal_message("platform", ENVELOPE, now()).unwrap();
    assert!(matches!(
        open_at_platform(&sealed),
        Err(SecurityError::SignerMismatch)
    ));
    // Control: expecting the application opens it.
    assert_eq!(
        platform_ds().open_message("APP01", &sealed, now()).unwrap(),
        ENVELOPE
    );
}

#[test]
fn a_jws_claiming_the_gateway_kid_but_signed_with_another_key_is_refused() {
    let p = pki();
    let inner = raw_jws(&good_jws_header(), ENVELOPE, &p.spare_key);
    assert!(matches!(
        open_at_platform(&seal_inner_to_platform(&inner)),
        Err(SecurityError::BadSignature)
    ));
}

#[test]
fn a_tampered_inner_payload_is_refused() {
    let p = pki();
    let inner = raw_jws(&good_jws_header(), ENVELOPE, &p.gateway.key);
    let parts: Vec<&str> = inner.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(br#"{"version":"1","type":"disconnect"}"#),
        parts[2]
    );
    assert!(matches!(
        open_at_platform(&seal_inner_to_platform(&forged)),
        Err(SecurityError::BadSignature)
    ));
}

#[test]
fn truncated_tokens_are_refused() {
    let sealed = gateway_ds()
        .seal_message("platform", ENVELOPE, now())
        .unwrap();
    let four = sealed.rsplit_once('.').unwrap().0.to_string();
    assert!(matches!(
        open_at_platform(&four),
        Err(SecurityError::Malformed(_))
    ));
    let short_tag = &sealed[..sealed.len() - 3];
    assert!(matches!(
        open_at_platform(short_tag),
        Err(SecurityError::Malformed(_))
    ));
    assert!(matches!(
        open_at_platform(""),
        Err(SecurityError::Malformed(_))
    ));
    let p = pki();
    let inner = raw_jws(&good_jws_header(), ENVELOPE, &p.gateway.key);
    let no_sig = &inner[..inner.rfind('.').unwrap() + 1];
    assert!(matches!(
        open_at_platform(&seal_inner_to_platform(no_sig)),
        Err(SecurityError::BadSignature)
    ));
}

fn flip(token: &str, part: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut raw = B64.decode(&parts[part]).unwrap();
    raw[0] ^= 0x01;
    parts[part] = B64.encode(raw);
    parts.join(".")
}

#[test]
fn every_decryption_failure_is_the_same_error() {
    let sealed = gateway_ds()
        .seal_message("platform", ENVELOPE, now())
        .unwrap();
    let mut seen = Vec::new();
    for part in [1, 2, 3, 4] {
        let r = open_at_platform(&flip(&sealed, part));
        match r {
            Err(e @ SecurityError::DecryptionFailed) => seen.push(e.to_string()),
            other => panic!("part {part}: {other:?}"),
        }
    }
    // A token encrypted to a different key with the platform's kid: unwrap fails.
    let p = pki();
    let inner = raw_jws(&good_jws_header(), ENVELOPE, &p.gateway.key);
    let wrong = jose::jwe_encrypt(
        &p.spare_key,
        KeyAlg::RsaOaep256,
        inner.as_bytes(),
        Some("sgw-msg+jws"),
        Some(&pf_kid()),
    )
    .unwrap();
    match open_at_platform(&wrong) {
        Err(e @ SecurityError::DecryptionFailed) => seen.push(e.to_string()),
        other => panic!("wrong key: {other:?}"),
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "one message for all: {seen:?}");
}

#[test]
fn a_tampered_protected_header_fails_authentication() {
    let sealed = gateway_ds()
        .seal_message("platform", ENVELOPE, now())
        .unwrap();
    let mut parts: Vec<String> = sealed.split('.').map(String::from).collect();
    let mut h: serde_json::Value = serde_json::from_slice(&B64.decode(&parts[0]).unwrap()).unwrap();
    h["cty"] = serde_json::json!("sgw-msg+jws");
    h["typ"] = serde_json::json!("x");
    parts[0] = B64.encode(h.to_string());
    assert!(matches!(
        open_at_platform(&parts.join(".")),
        Err(SecurityError::DecryptionFailed)
    ));
}

#[test]
fn rsa_keys_under_2048_bits_are_refused_everywhere() {
    let small = rsa(1024);
    let r = jose::jws_sign(&small, b"x", None, None, None);
    assert!(matches!(r, Err(SecurityError::WeakKey(1024))));
    let p = pki();
    let token = raw_jws(&serde_json::json!({"alg":"RS256"}), b"x", &small);
    assert!(matches!(
        jose::jws_verify(&token, &small, &JwsPolicy::default()),
        Err(SecurityError::WeakKey(1024))
    ));
    assert!(matches!(
        jose::jwe_encrypt(&small, KeyAlg::RsaOaep256, b"x", None, None),
        Err(SecurityError::WeakKey(1024))
    ));
    let cert = issue(&p.root_key, &p.root, "small", &small, 77, -DAY, DAY);
    let ks = gateway::security::KeyStore::new(small.clone(), cert, p.root.clone());
    assert!(matches!(ks, Err(SecurityError::WeakKey(1024))));
}

#[test]
fn every_refusal_maps_to_the_single_wire_code() {
    let sealed = gateway_ds()
        .seal_message("platform", ENVELOPE, now())
        .unwrap();
    for e in [
        open_at_platform(&flip(&sealed, 3)).unwrap_err(),
        open_at_platform("a.b").unwrap_err(),
        gateway_ds()
            .seal_message("nobody", ENVELOPE, now())
            .unwrap_err(),
    ] {
        assert_eq!(e.wire_code(), "SECURITY_FAILED");
        assert_eq!(
            e.result_code(),
            gateway::protocol::message::ResultCode::SecurityFailed
        );
    }
}

/// A raw JWS whose header is given as text (to express duplicate members).
fn raw_jws_text(header: &str, payload: &[u8], key: &PKeyRef<Private>) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
    s.update(input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(s.sign_to_vec().unwrap()))
}

#[test]
fn a_header_with_a_duplicate_member_is_refused() {
    let p = pki();
    let kid = gw_kid();
    let header = format!(r#"{{"alg":"none","typ":"sgw-msg","kid":"{kid}","alg":"RS256"}}"#);
    let inner = raw_jws_text(&header, ENVELOPE, &p.gateway.key);
    let r = open_at_platform(&seal_inner_to_platform(&inner));
    assert!(matches!(r, Err(SecurityError::Malformed(_))), "{r:?}");
    // Control: the same header without the duplicate is accepted.
    let header = format!(r#"{{"typ":"sgw-msg","kid":"{kid}","alg":"RS256"}}"#);
    let inner = raw_jws_text(&header, ENVELOPE, &p.gateway.key);
    assert_eq!(
        open_at_platform(&seal_inner_to_platform(&inner)).unwrap(),
        ENVELOPE
    );
}

#[test]
fn an_x5t_thumbprint_of_another_certificate_is_refused() {
    let p = pki();
    let mut h = good_jws_header();
    h["x5t#S256"] = serde_json::json!(jose::x5t_s256(&p.app.cert.to_der().unwrap()));
    let inner = raw_jws(&h, ENVELOPE, &p.gateway.key);
    assert!(matches!(
        open_at_platform(&seal_inner_to_platform(&inner)),
        Err(SecurityError::SignerMismatch)
    ));
    h["x5t#S256"] = serde_json::json!(jose::x5t_s256(&p.gateway.cert.to_der().unwrap()));
    let inner = raw_jws(&h, ENVELOPE, &p.gateway.key);
    assert_eq!(
        open_at_platform(&seal_inner_to_platform(&inner)).unwrap(),
        ENVELOPE
    );
}
