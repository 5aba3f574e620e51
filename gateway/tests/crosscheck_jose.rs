//! Cross-check of JOSE sealing against Python jwcrypto (SEC-JSON-SIG-1/2, SEC-JSON-ENC-1/2,
//! DES-SEAL, DES-PROF): jwcrypto opens what we seal (both accepted key transports, message and
//! JSON profile), we open what jwcrypto seals, and jwcrypto refuses a token we tampered with
//! (so the checker itself can fail).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use gateway::security::{KeyAlg, Profile};
use security_common::*;

const PAYLOAD: &str = r#"{"version":"1","type":"data","body":{"records":[["1","配水池","12.5"]]}}"#;

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Message => "message",
        _ => "profile",
    }
}

#[test]
fn jwcrypto_opens_what_we_seal_for_both_key_transports_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    write_pems(dir.path());
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    for profile in [Profile::Message, Profile::JsonProfile] {
        for alg in [KeyAlg::RsaOaep256, KeyAlg::RsaOaep] {
            let token = gateway_ds()
                .seal(profile, alg, "platform", PAYLOAD.as_bytes(), now())
                .unwrap();
            std::fs::write(d("token"), &token).unwrap();
            let (ok, out, err) = python(
                "jose.py",
                &[
                    "open",
                    "--token",
                    &d("token"),
                    "--recipient-key",
                    &d("platform.key"),
                    "--recipient-cert",
                    &d("platform.pem"),
                    "--sender-cert",
                    &d("gateway.pem"),
                    "--profile",
                    profile_name(profile),
                ],
                None,
            );
            assert!(ok, "{profile:?}/{alg:?}: {err}");
            assert_eq!(out, PAYLOAD.as_bytes(), "{profile:?}/{alg:?}");
        }
    }
}

#[test]
fn jwcrypto_refuses_a_token_we_sealed_and_then_tampered_with() {
    let dir = tempfile::tempdir().unwrap();
    write_pems(dir.path());
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let token = gateway_ds()
        .seal_message("platform", PAYLOAD.as_bytes(), now())
        .unwrap();
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let c = parts[3].pop().unwrap();
    parts[3].push(if c == 'A' { 'B' } else { 'A' });
    std::fs::write(d("token"), parts.join(".")).unwrap();
    let (ok, _, _) = python(
        "jose.py",
        &[
            "open",
            "--token",
            &d("token"),
            "--recipient-key",
            &d("platform.key"),
            "--recipient-cert",
            &d("platform.pem"),
            "--sender-cert",
            &d("gateway.pem"),
            "--profile",
            "message",
        ],
        None,
    );
    assert!(!ok, "the checker must refuse a tampered token");
}

#[test]
fn we_open_what_jwcrypto_seals_for_both_key_transports_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    write_pems(dir.path());
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(d("payload"), PAYLOAD).unwrap();
    for profile in [Profile::Message, Profile::JsonProfile] {
        for alg in ["RSA-OAEP-256", "RSA-OAEP"] {
            // jwcrypto plays the platform sealing to the gateway.
            let (ok, out, err) = python(
                "jose.py",
                &[
                    "seal",
                    "--payload",
                    &d("payload"),
                    "--recipient-cert",
                    &d("gateway.pem"),
                    "--sender-key",
                    &d("platform.key"),
                    "--sender-cert",
                    &d("platform.pem"),
                    "--profile",
                    profile_name(profile),
                    "--alg",
                    alg,
                ],
                None,
            );
            assert!(ok, "{err}");
            let token = String::from_utf8(out).unwrap();
            let opened = gateway_ds()
                .open(profile, "platform", token.trim(), now())
                .unwrap();
            assert_eq!(opened, PAYLOAD.as_bytes(), "{profile:?}/{alg}");
            // And it is refused if attributed to another sender.
            assert!(
                gateway_ds()
                    .open(profile, "APP01", token.trim(), now())
                    .is_err()
            );
        }
    }
}
