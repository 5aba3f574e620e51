//! Runs every data-security vector file of `vectors/data/` (except the XML engineer's `xml-*`
//! files, run by their own harness) against our implementation and checks each case's
//! `result`: `valid` must be accepted with the expected output, `invalid` must be refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use gateway::security::jose::{self, JwePolicy, JwsPolicy};
use gateway::security::{
    DataSecurity, Identity, KeyStore, MaskingKeys, Profile, Role, SecurityError,
};
use openssl::pkey::PKey;
use openssl::x509::{X509, X509Crl};
use vectors::{Expected, TestCase, TestGroup};

fn b64u(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn p<'a>(g: &'a TestGroup, k: &str) -> &'a str {
    g.param(k).unwrap_or_else(|| panic!("group parameter {k}"))
}

fn i<'a>(t: &'a TestCase, k: &str) -> &'a str {
    t.input(k)
        .unwrap_or_else(|| panic!("tcId {} input {k}", t.tc_id))
}

fn now(g: &TestGroup) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(p(g, "now"))
        .unwrap()
        .with_timezone(&Utc)
}

/// Our result for one case: Ok(output) or Err(error).
fn run(kind: &str, g: &TestGroup, t: &TestCase) -> Result<Vec<u8>, SecurityError> {
    match kind {
        "JwsVerify" => {
            let key = PKey::public_key_from_pem(p(g, "publicKeyPem").as_bytes()).unwrap();
            let policy = JwsPolicy {
                typ: g.param("typ"),
                kid: g.param("kid"),
                x5t_s256: None,
            };
            jose::jws_verify(i(t, "token"), &key, &policy)
        }
        "JweDecrypt" => {
            let key = PKey::private_key_from_pem(p(g, "privateKeyPem").as_bytes()).unwrap();
            jose::jwe_decrypt(i(t, "token"), &key, &JwePolicy::default())
        }
        "SealOpen" => {
            let ds = facade(
                g,
                "recipientKeyPem",
                "recipientCertPem",
                &[
                    ("senderCertPem", Role::Gateway),
                    ("otherCertPem", Role::Application),
                ],
            );
            let profile = match p(g, "profile") {
                "message" => Profile::Message,
                "jsonProfile" => Profile::JsonProfile,
                other => panic!("profile {other}"),
            };
            ds.open(profile, &cn(p(g, "senderCertPem")), i(t, "token"), now(g))
        }
        "FileVerify" => {
            let ds = facade(
                g,
                "ownKeyPem",
                "ownCertPem",
                &[
                    ("signerCertPem", Role::Gateway),
                    ("otherCertPem", Role::Application),
                ],
            );
            let zip = STANDARD.decode(i(t, "zipB64")).unwrap();
            let mut out = Vec::new();
            let signer = cn(p(g, "signerCertPem"));
            ds.verify_file(&signer, Cursor::new(zip), &mut out, now(g))
                .map(|_| out)
        }
        "FileDecrypt" => {
            let ds = facade(g, "ownKeyPem", "ownCertPem", &[]);
            let zip = STANDARD.decode(i(t, "zipB64")).unwrap();
            let mut out = Vec::new();
            ds.decrypt_file(Cursor::new(zip), &mut out).map(|_| out)
        }
        "Unmask" | "Mask" => {
            let keys = g.params["keys"].as_object().unwrap();
            let current = p(g, "currentKeyId");
            let key = |id: &str| hex::decode(keys[id].as_str().unwrap()).unwrap();
            let mut mk = MaskingKeys::new(current, &key(current))?;
            for id in keys.keys().filter(|k| *k != current) {
                mk.add_old(id, &key(id))?;
            }
            if kind == "Mask" {
                mk.mask(i(t, "column"), i(t, "value"))
                    .map(String::into_bytes)
            } else {
                mk.unmask(i(t, "column"), i(t, "masked"))
                    .map(String::into_bytes)
            }
        }
        "CertValidate" => {
            let root = X509::from_pem(p(g, "rootPem").as_bytes()).unwrap();
            let cert = X509::from_pem(i(t, "certPem").as_bytes()).unwrap();
            let crl = t
                .input("crlPem")
                .map(|c| X509Crl::from_pem(c.as_bytes()).unwrap());
            let name = i(t, "expectName");
            let who = match i(t, "expectRole") {
                "platform" if name == "platform" => Identity::platform(),
                "gateway" => Identity::gateway(name),
                "application" => Identity::application(name),
                other => panic!("tcId {} expectRole {other} / {name}", t.tc_id),
            };
            gateway::security::cert::validate_cert(&cert, &who, &root, crl.as_ref(), now(g))
                .map(|_| Vec::new())
        }
        other => panic!("unknown group type {other}"),
    }
}

/// The subject CN of a certificate PEM: the key store name of that peer (DES-CERT-4).
fn cn(pem: &str) -> String {
    X509::from_pem(pem.as_bytes())
        .unwrap()
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap()
}

/// A facade with own key/cert, root and CRL of the group, and each present peer certificate
/// under its CN with the role given.
fn facade(g: &TestGroup, key: &str, cert: &str, peers: &[(&str, Role)]) -> DataSecurity {
    let mut ks = KeyStore::from_pem(
        p(g, key).as_bytes(),
        p(g, cert).as_bytes(),
        p(g, "rootPem").as_bytes(),
    )
    .unwrap();
    ks.set_crl_pem(p(g, "crlPem").as_bytes()).unwrap();
    for (param, role) in peers {
        if let Some(pem) = g.param(param) {
            let name = cn(pem);
            let who = match role {
                Role::Platform => Identity::platform(),
                Role::Gateway => Identity::gateway(&name),
                Role::Application => Identity::application(&name),
            };
            ks.add_peer_pem(who, pem.as_bytes()).unwrap();
        }
    }
    DataSecurity::new(ks)
}

/// The expected output of a valid case.
fn expected(kind: &str, t: &TestCase) -> Vec<u8> {
    match kind {
        "JwsVerify" | "SealOpen" => b64u(i(t, "payloadB64")),
        "JweDecrypt" => b64u(i(t, "plaintextB64")),
        "FileVerify" | "FileDecrypt" => STANDARD.decode(i(t, "payloadB64")).unwrap(),
        "Mask" => i(t, "masked").as_bytes().to_vec(),
        "Unmask" => i(t, "value").as_bytes().to_vec(),
        "CertValidate" => Vec::new(),
        other => panic!("unknown group type {other}"),
    }
}

/// Which error variants a flag's bug class must produce (flags not listed constrain nothing).
fn allowed_errors(flag: &str) -> Option<&'static [&'static str]> {
    Some(match flag {
        "AlgNone" | "HmacKeyConfusion" | "UnsupportedEnc" => &["UnsupportedAlgorithm"],
        "UnsupportedAlg" => &["UnsupportedAlgorithm", "ManifestInvalid"],
        "ForbiddenHeader" => &["ForbiddenHeader"],
        "ModifiedPayload" => &["BadSignature", "ManifestInvalid"],
        "ModifiedSignature" | "ModifiedManifest" | "WrongSigner" => &["BadSignature"],
        "Truncated" => &["Malformed", "BadSignature"],
        "WrongKey" => &["BadSignature", "DecryptionFailed", "MaskAuthFailed"],
        "WeakKey" => &["WeakKey"],
        "WrongRole" => &["CertWrongRole"],
        "DuplicateHeader" => &["Malformed"],
        "UnexpectedType" | "WrongProfile" => &["UnexpectedType"],
        "WrongKid" | "UnknownSigner" | "WrongRecipient" => &["UnknownKid"],
        "ModifiedCiphertext" => &["DecryptionFailed", "ManifestInvalid"],
        "SignerMismatch" => &["SignerMismatch"],
        "CertExpired" | "Expired" => &["CertExpired"],
        "CertRevoked" | "Revoked" => &["CertRevoked"],
        "Untrusted" => &["CertUntrusted"],
        "WrongIssuer" => &["CertWrongIssuer"],
        "NotYetValid" => &["CertNotYetValid"],
        "CrlForged" => &["CrlBadSignature"],
        "CrlStale" => &["CrlStale"],
        "CrlNotYetValid" => &["CrlNotYetValid"],
        "ZipSlip" => &["ZipUnsafeName"],
        "ZipBomb" => &["ZipBomb"],
        "DuplicateEntry" => &["ZipDuplicateEntry"],
        "UnexpectedEntry" => &["ZipUnexpectedEntry"],
        "MissingEntry" => &["ZipMissingEntry"],
        "WrongColumn" | "Modified" => &["MaskAuthFailed"],
        "UnknownKeyId" => &["MaskUnknownKey"],
        "Malformed" => &["MaskFormat"],
        _ => return None,
    })
}

fn variant(e: &SecurityError) -> String {
    let d = format!("{e:?}");
    d.split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn every_data_security_vector_gives_its_expected_result() {
    let mut failures = Vec::new();
    let mut counted = 0;
    let names: Vec<String> = vectors::list()
        .unwrap()
        .into_iter()
        .filter(|n| !n.starts_with("xml-"))
        .collect();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let file = vectors::load(&name).unwrap();
        for (g, t) in file.cases() {
            counted += 1;
            let r = run(&g.kind, g, t);
            let ok = match (t.result, &r) {
                (Expected::Valid, Ok(out)) => *out == expected(&g.kind, t),
                (Expected::Valid, Err(_)) => false,
                (Expected::Invalid, Ok(_)) => false,
                (Expected::Invalid, Err(e)) => t
                    .flags
                    .iter()
                    .filter_map(|f| allowed_errors(f))
                    .all(|allowed| allowed.contains(&variant(e).as_str())),
                (Expected::Acceptable, _) => true,
            };
            if !ok {
                failures.push(format!(
                    "{name} tcId {} ({}): expected {:?}, got {:?}",
                    t.tc_id,
                    t.comment,
                    t.result,
                    r.map(|o| o.len())
                ));
            }
        }
    }
    assert!(counted >= 160, "{counted}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
