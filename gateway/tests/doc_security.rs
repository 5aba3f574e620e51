//! Ties `docs/protocol.md` to the data-security code (DES-SEAL-2..4, DES-PROF-6..8, DES-FILE-3/4,
//! DES-MASK-2): the algorithm table of DES-PROF-8 is parsed and every identifier it calls
//! accepted is accepted by the code and every one it calls refused is refused with the
//! algorithm error; the header allowlists and refusals of DES-SEAL-2..4 are checked against
//! `jose`; the ZIP limits of DES-FILE-4 against `ZipLimits::default()`; the manifest members of
//! DES-FILE-3 against real ZIPs; the XML parser limits of DES-PROF-5 against `Limits::default()`;
//! and the masking example of DES-MASK-2 (made by
//! `scripts/crosscheck/mask.py`, not by this code) must unmask and re-mask exactly, and
//! mask.py must still produce it.
//!
//! XML documents here are built by hand with the openssl crate (wrapping, AES, RSA signatures)
//! and a hand-written canonical form, so acceptance is not judged by the code against itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use std::collections::BTreeSet;
use std::io::{Cursor, Read};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use gateway::security::jose::{
    JwePolicy, JwsPolicy, b64url_decode, b64url_encode, check_jwe_header, check_jws_header,
};
use gateway::security::xml::ns;
use gateway::security::xml::{XmlError, decrypt_document, protect_profile, verify_signature};
use gateway::security::{AesCbc, MaskingKeys, SecurityError, ZipLimits};
use openssl::encrypt::Encrypter;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::sign::Signer;
use openssl::symm::Cipher;
use security_common::*;
use serde_json::{Value, json};

fn protocol_md() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::read_to_string(root.join("docs/protocol.md")).unwrap()
}

/// The text of the bullet that defines `id` (from its bold definition to the next bullet).
fn rule(doc: &str, id: &str) -> String {
    let start = doc
        .find(&format!("- **{id}**"))
        .unwrap_or_else(|| panic!("{id} not defined"));
    let rest = &doc[start + 2..];
    let end = ["\n- **", "\n## "]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    rest[..end].to_string()
}

/// Backticked tokens of `text`, in order.
fn ticks(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Backticked tokens of the part of `text` between `from` and the next `to` (line breaks and
/// indentation count as one space).
fn ticks_between(text: &str, from: &str, to: &str) -> Vec<String> {
    let text = &text.split_whitespace().collect::<Vec<_>>().join(" ");
    let i = text
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not found"))
        + from.len();
    let j = text[i..].find(to).unwrap() + i;
    ticks(&text[i..j])
}

struct Row {
    place: String,
    sent: Vec<String>,
    accepted: Vec<String>,
    refused: Vec<String>,
}

/// The rows of the DES-PROF-8 table.
fn algorithm_rows() -> Vec<Row> {
    let doc = protocol_md();
    let text = rule(&doc, "DES-PROF-8");
    let rows: Vec<Row> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| where"))
        .map(|l| {
            let cols: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cols.len(), 4, "{l}");
            Row {
                place: cols[0].to_string(),
                sent: ticks(cols[1]),
                accepted: ticks(cols[2]),
                refused: ticks(cols[3]),
            }
        })
        .collect();
    assert!(rows.len() >= 11, "{} rows", rows.len());
    rows
}

// ---------------------------------------------------------------------------------------------
// JOSE

fn token(header: &Value, parts: usize) -> String {
    let mut t = b64url_encode(header.to_string().as_bytes());
    for _ in 1..parts {
        t.push('.');
        t.push_str(&b64url_encode(b"x"));
    }
    t
}

fn jwe_header_result(header: Value) -> Result<(), SecurityError> {
    check_jwe_header(&token(&header, 5), &JwePolicy::default()).map(|_| ())
}

fn jws_header_result(header: Value) -> Result<(), SecurityError> {
    check_jws_header(&token(&header, 3), &JwsPolicy::default()).map(|_| ())
}

fn assert_jose(row: &Row, check: impl Fn(&str) -> Result<(), SecurityError>) {
    for id in &row.accepted {
        check(id).unwrap_or_else(|e| panic!("{}: {id} refused: {e}", row.place));
    }
    for id in &row.refused {
        match check(id) {
            Err(SecurityError::UnsupportedAlgorithm(got)) => assert_eq!(&got, id),
            other => panic!("{}: {id} not refused as an algorithm: {other:?}", row.place),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XML Encryption, built by hand

const PLAIN_BODY: &str =
    "<sgw:Body xmlns:sgw=\"urn:sgw:profile:v1\" Id=\"body\"><sgw:F>秘密 1201</sgw:F></sgw:Body>";

fn oaep_wrap(key: &PKey<Private>, md: MessageDigest, mgf: MessageDigest, cek: &[u8]) -> Vec<u8> {
    let mut e = Encrypter::new(key).unwrap();
    e.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    e.set_rsa_oaep_md(md).unwrap();
    e.set_rsa_mgf1_md(mgf).unwrap();
    let mut out = vec![0u8; e.encrypt_len(cek).unwrap()];
    let n = e.encrypt(cek, &mut out).unwrap();
    out.truncate(n);
    out
}

fn pkcs1_wrap(key: &PKey<Private>, cek: &[u8]) -> Vec<u8> {
    let mut e = Encrypter::new(key).unwrap();
    e.set_rsa_padding(Padding::PKCS1).unwrap();
    let mut out = vec![0u8; e.encrypt_len(cek).unwrap()];
    let n = e.encrypt(cek, &mut out).unwrap();
    out.truncate(n);
    out
}

/// How one test document's key transport and content encryption are written and done.
struct EncCase<'a> {
    transport: &'a str,
    digest: Option<&'a str>,
    mgf: Option<&'a str>,
    data: &'a str,
}

fn digest_of(uri: Option<&str>) -> MessageDigest {
    match uri {
        Some(ns::SHA256) => MessageDigest::sha256(),
        _ => MessageDigest::sha1(),
    }
}

fn mgf_of(uri: Option<&str>) -> MessageDigest {
    match uri {
        Some(ns::MGF1_SHA256) => MessageDigest::sha256(),
        _ => MessageDigest::sha1(),
    }
}

/// An encrypted profile body for the gateway's key, made with openssl directly.
fn encrypted_document(c: &EncCase<'_>) -> String {
    let key = &pki().gateway.key;
    let (cipher, klen) = match c.data {
        ns::AES192_CBC => (Cipher::aes_192_cbc(), 24),
        ns::AES256_CBC => (Cipher::aes_256_cbc(), 32),
        "http://www.w3.org/2001/04/xmlenc#tripledes-cbc" => (Cipher::des_ede3_cbc(), 24),
        _ => (Cipher::aes_128_cbc(), 16),
    };
    let mut cek = vec![0u8; klen];
    openssl::rand::rand_bytes(&mut cek).unwrap();
    let iv_len = cipher.iv_len().unwrap();
    let mut iv = vec![0u8; iv_len];
    openssl::rand::rand_bytes(&mut iv).unwrap();
    let mut data = iv.clone();
    data.extend(openssl::symm::encrypt(cipher, &cek, Some(&iv), PLAIN_BODY.as_bytes()).unwrap());
    let wrapped = if c.transport == ns::RSA_OAEP_MGF1P || c.transport == ns::RSA_OAEP11 {
        oaep_wrap(key, digest_of(c.digest), mgf_of(c.mgf), &cek)
    } else {
        pkcs1_wrap(key, &cek)
    };
    let dm = c
        .digest
        .map(|d| format!("<ds:DigestMethod Algorithm=\"{d}\"/>"))
        .unwrap_or_default();
    let mgf = c
        .mgf
        .map(|m| {
            format!(
                "<xenc11:MGF xmlns:xenc11=\"{}\" Algorithm=\"{m}\"/>",
                ns::XENC11
            )
        })
        .unwrap_or_default();
    format!(
        "<sgw:DataProfile xmlns:sgw=\"urn:sgw:profile:v1\">\
<xenc:EncryptedData xmlns:xenc=\"{xenc}\" Id=\"body\" Type=\"{ty}\">\
<xenc:EncryptionMethod Algorithm=\"{data_alg}\"/>\
<ds:KeyInfo xmlns:ds=\"{ds}\"><xenc:EncryptedKey>\
<xenc:EncryptionMethod Algorithm=\"{kt}\">{dm}{mgf}</xenc:EncryptionMethod>\
<xenc:CipherData><xenc:CipherValue>{wk}</xenc:CipherValue></xenc:CipherData>\
</xenc:EncryptedKey></ds:KeyInfo>\
<xenc:CipherData><xenc:CipherValue>{ct}</xenc:CipherValue></xenc:CipherData>\
</xenc:EncryptedData></sgw:DataProfile>",
        xenc = ns::XENC,
        ty = ns::TYPE_ELEMENT,
        data_alg = c.data,
        ds = ns::DS,
        kt = c.transport,
        wk = B64.encode(wrapped),
        ct = B64.encode(data),
    )
}

fn decrypt(c: &EncCase<'_>) -> Result<String, XmlError> {
    decrypt_document(&encrypted_document(c), &pki().gateway.key)
}

fn assert_xml_accepted(place: &str, id: &str, r: Result<String, XmlError>, needle: &str) {
    let out = r.unwrap_or_else(|e| panic!("{place}: {id} refused: {e:?}"));
    assert!(out.contains(needle), "{place}: {id}: {out}");
}

fn assert_xml_refused<T: std::fmt::Debug>(place: &str, id: &str, r: Result<T, XmlError>) {
    match r {
        Err(XmlError::AlgorithmRefused(got)) => {
            assert!(got.contains(id), "{place}: refused {got}, expected {id}")
        }
        other => panic!("{place}: {id} not refused as an algorithm: {other:?}"),
    }
}

const DECRYPTED: &str = "<sgw:F>秘密 1201</sgw:F>";

fn check_key_transport(row: &Row) {
    for id in &row.accepted {
        let r = decrypt(&EncCase {
            transport: id,
            digest: None,
            mgf: None,
            data: ns::AES128_CBC,
        });
        assert_xml_accepted(&row.place, id, r, DECRYPTED);
    }
    for id in &row.refused {
        let r = decrypt(&EncCase {
            transport: id,
            digest: None,
            mgf: None,
            data: ns::AES128_CBC,
        });
        assert_xml_refused(&row.place, id, r);
    }
}

fn check_oaep_digest(row: &Row) {
    for id in &row.accepted {
        // Under xmlenc11 rsa-oaep every accepted digest works; sha1 also under rsa-oaep-mgf1p.
        let mut transports = vec![ns::RSA_OAEP11];
        if id == ns::SHA1 {
            transports.push(ns::RSA_OAEP_MGF1P);
        }
        for t in transports {
            let r = decrypt(&EncCase {
                transport: t,
                digest: Some(id),
                mgf: None,
                data: ns::AES128_CBC,
            });
            assert_xml_accepted(&row.place, id, r, DECRYPTED);
        }
    }
    for id in &row.refused {
        for t in [ns::RSA_OAEP11, ns::RSA_OAEP_MGF1P] {
            let r = decrypt(&EncCase {
                transport: t,
                digest: Some(id),
                mgf: None,
                data: ns::AES128_CBC,
            });
            assert_xml_refused(&row.place, id, r);
        }
    }
    // "with xmlenc11 rsa-oaep only": SHA-256 is refused under rsa-oaep-mgf1p.
    let r = decrypt(&EncCase {
        transport: ns::RSA_OAEP_MGF1P,
        digest: Some(ns::SHA256),
        mgf: None,
        data: ns::AES128_CBC,
    });
    assert_xml_refused(&row.place, ns::SHA256, r);
}

fn check_oaep_mgf(row: &Row) {
    for id in &row.accepted {
        for digest in [ns::SHA1, ns::SHA256] {
            let r = decrypt(&EncCase {
                transport: ns::RSA_OAEP11,
                digest: Some(digest),
                mgf: Some(id),
                data: ns::AES128_CBC,
            });
            assert_xml_accepted(&row.place, id, r, DECRYPTED);
        }
    }
    for id in &row.refused {
        let r = decrypt(&EncCase {
            transport: ns::RSA_OAEP11,
            digest: Some(ns::SHA256),
            mgf: Some(id),
            data: ns::AES128_CBC,
        });
        assert_xml_refused(&row.place, id, r);
    }
}

fn check_data_encryption(row: &Row) {
    for (ids, accept) in [(&row.accepted, true), (&row.refused, false)] {
        for id in ids {
            let r = decrypt(&EncCase {
                transport: ns::RSA_OAEP11,
                digest: Some(ns::SHA256),
                mgf: Some(ns::MGF1_SHA256),
                data: id,
            });
            if accept {
                assert_xml_accepted(&row.place, id, r, DECRYPTED);
            } else {
                assert_xml_refused(&row.place, id, r);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XML Signature, built by hand

/// The signed document before signing, and its exclusive canonical form (written by hand: no
/// namespace other than the default one, no whitespace, no attributes to sort).
const SIGNED_ROOT_OPEN: &str = "<r xmlns=\"urn:example:doc\"><a>水 1</a>";
const SIGNED_ROOT_C14N: &str = "<r xmlns=\"urn:example:doc\"><a>水 1</a></r>";

struct SigCase<'a> {
    c14n: &'a str,
    method: &'a str,
    transforms: Vec<&'a str>,
    digest: &'a str,
}

impl Default for SigCase<'_> {
    fn default() -> Self {
        SigCase {
            c14n: ns::EXC_C14N,
            method: ns::RSA_SHA256,
            transforms: vec![ns::ENVELOPED, ns::EXC_C14N],
            digest: ns::SHA256,
        }
    }
}

fn signed_document(c: &SigCase<'_>) -> String {
    let p = pki();
    let digest = hash(MessageDigest::sha256(), SIGNED_ROOT_C14N.as_bytes()).unwrap();
    let transforms: String = c
        .transforms
        .iter()
        .map(|t| format!("<ds:Transform Algorithm=\"{t}\"></ds:Transform>"))
        .collect();
    // Exclusive c14n of SignedInfo: the ds declaration on the apex, empty elements as pairs.
    let signed_info = format!(
        "<ds:SignedInfo xmlns:ds=\"{ds}\">\
<ds:CanonicalizationMethod Algorithm=\"{c14n}\"></ds:CanonicalizationMethod>\
<ds:SignatureMethod Algorithm=\"{sm}\"></ds:SignatureMethod>\
<ds:Reference URI=\"\"><ds:Transforms>{transforms}</ds:Transforms>\
<ds:DigestMethod Algorithm=\"{dm}\"></ds:DigestMethod>\
<ds:DigestValue>{dv}</ds:DigestValue></ds:Reference></ds:SignedInfo>",
        ds = ns::DS,
        c14n = c.c14n,
        sm = c.method,
        dm = c.digest,
        dv = B64.encode(digest),
    );
    let mut signer = Signer::new(MessageDigest::sha256(), &p.gateway.key).unwrap();
    signer.update(signed_info.as_bytes()).unwrap();
    let value = B64.encode(signer.sign_to_vec().unwrap());
    format!(
        "{SIGNED_ROOT_OPEN}<ds:Signature xmlns:ds=\"{ds}\">{signed_info}\
<ds:SignatureValue>{value}</ds:SignatureValue></ds:Signature></r>",
        ds = ns::DS
    )
}

fn verify(c: &SigCase<'_>) -> Result<String, XmlError> {
    verify_signature(&signed_document(c), &pki().gateway.cert).map(|v| v.signed_c14n)
}

fn check_signature_row(row: &Row, make: impl Fn(&str) -> Vec<SigCase<'_>>) {
    for id in &row.accepted {
        for c in make(id) {
            assert_xml_accepted(&row.place, id, verify(&c), "水 1");
        }
    }
    for id in &row.refused {
        for c in make(id) {
            assert_xml_refused(&row.place, id, verify(&c));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn every_algorithm_the_protocol_document_accepts_is_accepted_and_every_one_it_refuses_is_refused() {
    let mut places = BTreeSet::new();
    for row in algorithm_rows() {
        assert!(!row.accepted.is_empty(), "{}: nothing accepted", row.place);
        assert!(!row.refused.is_empty(), "{}: nothing refused", row.place);
        for s in &row.sent {
            assert!(
                row.accepted.contains(s),
                "{}: sends unaccepted {s}",
                row.place
            );
        }
        let p = row.place.as_str();
        if p.starts_with("JWE `alg`") {
            assert_jose(&row, |id| {
                jwe_header_result(json!({"alg": id, "enc": "A128CBC-HS256"}))
            });
        } else if p.starts_with("JWE `enc`") {
            assert_jose(&row, |id| {
                jwe_header_result(json!({"alg": "RSA-OAEP-256", "enc": id}))
            });
        } else if p.starts_with("JWS `alg`") {
            assert_jose(&row, |id| jws_header_result(json!({"alg": id})));
        } else if p.starts_with("XML key transport") {
            check_key_transport(&row);
        } else if p.starts_with("XML OAEP digest") {
            check_oaep_digest(&row);
        } else if p.starts_with("XML OAEP mask generation") {
            check_oaep_mgf(&row);
        } else if p.starts_with("XML data encryption") {
            check_data_encryption(&row);
        } else if p.starts_with("XML signature method") {
            check_signature_row(&row, |id| {
                vec![SigCase {
                    method: id,
                    ..SigCase::default()
                }]
            });
        } else if p.starts_with("XML canonicalization") {
            check_signature_row(&row, |id| {
                vec![
                    SigCase {
                        c14n: id,
                        ..SigCase::default()
                    },
                    SigCase {
                        transforms: vec![ns::ENVELOPED, id],
                        ..SigCase::default()
                    },
                ]
            });
        } else if p.starts_with("XML other transforms") {
            check_signature_row(&row, |id| {
                vec![SigCase {
                    transforms: vec![id, ns::EXC_C14N],
                    ..SigCase::default()
                }]
            });
        } else if p.starts_with("XML digest") {
            check_signature_row(&row, |id| {
                vec![SigCase {
                    digest: id,
                    ..SigCase::default()
                }]
            });
        } else {
            panic!("no check for the row {p:?}: add one");
        }
        places.insert(row.place);
    }
    assert_eq!(places.len(), 11, "{places:?}");
}

#[test]
fn a_hand_made_signature_that_breaks_the_digest_is_caught_so_the_acceptance_checks_can_fail() {
    // The accepted cases above mean something only if a wrong document is not accepted too.
    let doc = signed_document(&SigCase::default()).replace("水 1", "水 2");
    assert!(matches!(
        verify_signature(&doc, &pki().gateway.cert),
        Err(XmlError::DigestMismatch)
    ));
    let other = EncCase {
        transport: ns::RSA_OAEP11,
        digest: Some(ns::SHA256),
        mgf: Some(ns::MGF1_SHA256),
        data: ns::AES128_CBC,
    };
    assert!(matches!(
        decrypt_document(&encrypted_document(&other), &pki().platform.key),
        Err(XmlError::Decryption)
    ));
}

#[test]
fn the_xml_profile_sends_the_identifiers_the_table_says_are_sent() {
    let p = pki();
    let plain = format!(
        "<sgw:DataProfile xmlns:sgw=\"urn:sgw:profile:v1\"><sgw:Header Id=\"header\">\
<sgw:ProfileId>sgw-profile-v1</sgw:ProfileId></sgw:Header>{}</sgw:DataProfile>",
        PLAIN_BODY.replace(" xmlns:sgw=\"urn:sgw:profile:v1\"", "")
    );
    let sealed = protect_profile(
        &plain,
        &p.gateway.key,
        &p.gateway.cert,
        &p.platform.cert,
        Default::default(),
    )
    .unwrap();
    let algorithms: BTreeSet<String> = sealed
        .split("Algorithm=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect();
    let mut sent = BTreeSet::new();
    for row in algorithm_rows()
        .into_iter()
        .filter(|r| r.place.starts_with("XML"))
    {
        sent.extend(row.sent);
    }
    assert_eq!(algorithms, sent);
}

#[test]
fn sealed_headers_carry_exactly_the_members_and_values_the_document_says_are_sent() {
    let doc = protocol_md();
    let jws_sent = ticks_between(
        &rule(&doc, "DES-SEAL-2"),
        "writes exactly the members",
        ". `kid`",
    );
    let jwe_sent = ticks_between(
        &rule(&doc, "DES-SEAL-3"),
        "writes exactly",
        ". The receiver",
    );
    let header = |part: &str| -> serde_json::Map<String, Value> {
        serde_json::from_slice(&b64url_decode(part).unwrap()).unwrap()
    };
    let (gw, platform_key) = (gateway_ds(), &pki().platform.key);
    let mut jws_headers = Vec::new();
    let mut jwe_headers = Vec::new();
    for token in [
        gw.seal_message("platform", b"{}", now()).unwrap(),
        gw.seal_json_profile("platform", b"{}", now()).unwrap(),
    ] {
        jwe_headers.push(header(token.split('.').next().unwrap()));
        let inner =
            gateway::security::jose::jwe_decrypt(&token, platform_key, &JwePolicy::default())
                .unwrap();
        let inner = String::from_utf8(inner).unwrap();
        jws_headers.push(header(inner.split('.').next().unwrap()));
    }
    for (sent, headers) in [(&jws_sent, &jws_headers), (&jwe_sent, &jwe_headers)] {
        let mut names = BTreeSet::new();
        let mut values = BTreeSet::new();
        for h in headers.iter() {
            for (k, v) in h {
                names.insert(k.clone());
                values.insert(v.as_str().unwrap().to_string());
            }
        }
        // Every member written is named by the document ...
        for n in &names {
            assert!(sent.contains(n), "member {n} is sent but not in {sent:?}");
        }
        // ... and every name or value the document lists is really written.
        for t in sent.iter() {
            assert!(
                names.contains(t) || values.contains(t),
                "{t} is in the document but not sent: {headers:?}"
            );
        }
    }
    assert!(
        jws_sent.len() >= 7 && jwe_sent.len() >= 8,
        "{jws_sent:?} {jwe_sent:?}"
    );
}

#[test]
fn header_members_the_document_allows_pass_and_those_it_refuses_are_refused() {
    let doc = protocol_md();
    let jws_allowed = ticks_between(&rule(&doc, "DES-SEAL-2"), "accepts only the members", " (");
    let jwe_allowed = ticks_between(&rule(&doc, "DES-SEAL-3"), "accepts only the members", " (");
    assert_eq!(jws_allowed.len(), 5, "{jws_allowed:?}");
    assert_eq!(jwe_allowed.len(), 5, "{jwe_allowed:?}");
    let seal4 = rule(&doc, "DES-SEAL-4");
    let mut refused = ticks_between(&seal4, "alike:", "(`jose::FORBIDDEN_HEADERS`)");
    refused.extend(ticks_between(&seal4, "(e.g.", ")"));
    assert!(refused.len() >= 10, "{refused:?}");
    assert_eq!(
        gateway::security::jose::FORBIDDEN_HEADERS.len() + 3,
        refused.len(),
        "the document's list and jose::FORBIDDEN_HEADERS differ: {refused:?}"
    );

    let jws_base = || json!({"alg": "RS256"});
    let jwe_base = || json!({"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256"});
    let with = |mut v: Value, k: &str| {
        if v.get(k).is_none() {
            v[k] = json!("x");
        }
        v
    };
    for m in &jws_allowed {
        jws_header_result(with(jws_base(), m)).unwrap_or_else(|e| panic!("JWS {m}: {e}"));
    }
    for m in &jwe_allowed {
        jwe_header_result(with(jwe_base(), m)).unwrap_or_else(|e| panic!("JWE {m}: {e}"));
    }
    for m in &refused {
        for r in [
            jws_header_result(with(jws_base(), m)),
            jwe_header_result(with(jwe_base(), m)),
        ] {
            assert!(
                matches!(&r, Err(SecurityError::ForbiddenHeader(got)) if got == m),
                "{m}: {r:?}"
            );
        }
    }
    // A member named twice (DES-SEAL-4) is refused although each value alone is fine.
    let dup = format!(
        "{}.{}.{}",
        b64url_encode(br#"{"alg":"RS256","alg":"RS256"}"#),
        b64url_encode(b"x"),
        b64url_encode(b"x")
    );
    assert!(check_jws_header(&dup, &JwsPolicy::default()).is_err());
}

/// The masking example of DES-MASK-2: (key, keyId, column, value, masked).
struct MaskExample {
    key: Vec<u8>,
    key_id: String,
    column: String,
    value: String,
    masked: String,
}

fn masking_example() -> MaskExample {
    let doc = protocol_md();
    let start = doc.find("<!-- example:masking:begin -->").unwrap();
    let end = doc.find("<!-- example:masking:end -->").unwrap();
    let block = &doc[start..end];
    let field = |name: &str| -> String {
        block
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(name).filter(|r| r.starts_with(' ')))
            .unwrap_or_else(|| panic!("{name} missing in the masking example"))
            .trim()
            .to_string()
    };
    MaskExample {
        key: hex::decode(field("key")).unwrap(),
        key_id: field("keyId"),
        column: field("column"),
        value: field("value"),
        masked: field("masked"),
    }
}

#[test]
fn the_masking_example_of_the_document_unmasks_with_its_key_and_masks_to_the_same_text() {
    let ex = masking_example();
    assert!(
        ex.masked.starts_with(&format!("m1.{}.", ex.key_id)),
        "{}",
        ex.masked
    );
    let keys = MaskingKeys::new(&ex.key_id, &ex.key).unwrap();
    assert_eq!(keys.unmask(&ex.column, &ex.masked).unwrap(), ex.value);
    assert_eq!(keys.mask(&ex.column, &ex.value).unwrap(), ex.masked);
    // The example is bound to its column (AAD) and key: another column or key is refused.
    assert!(keys.unmask("氏名", &ex.masked).is_err());
    let other = MaskingKeys::new(&ex.key_id, &[0x55; 32]).unwrap();
    assert!(other.unmask(&ex.column, &ex.masked).is_err());
}

#[test]
fn the_masking_example_of_the_document_is_what_the_independent_python_implementation_makes() {
    let ex = masking_example();
    let ops = json!([
        {"op": "mask", "keyId": ex.key_id, "keyHex": hex::encode(&ex.key),
         "column": ex.column, "value": ex.value},
        {"op": "unmask", "keys": {ex.key_id.as_str(): hex::encode(&ex.key)},
         "column": ex.column, "masked": ex.masked},
    ]);
    let (ok, out, err) = python("mask.py", &[], Some(ops.to_string().as_bytes()));
    assert!(ok, "{err}");
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out[0]["ok"], json!(ex.masked), "{out}");
    assert_eq!(out[1]["ok"], json!(ex.value), "{out}");
}

fn bold_number_before(text: &str, unit: &str) -> u64 {
    let i = text
        .find(&format!("** {unit}"))
        .or_else(|| text.find(&format!("**{unit}")))
        .unwrap_or_else(|| panic!("no bold number before {unit:?}"));
    let open = text[..i].rfind("**").unwrap();
    text[open + 2..i]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_zip_limits_in_the_document_are_the_code_defaults() {
    let doc = protocol_md();
    let text = rule(&doc, "DES-FILE-4");
    let d = ZipLimits::default();
    assert_eq!(bold_number_before(&text, "entries") as usize, d.max_entries);
    // "**4 GiB**", "**64 KiB**", "**200 : 1**"
    let bold: Vec<&str> = text.split("**").skip(1).step_by(2).collect();
    assert!(bold.contains(&"4 GiB"), "{bold:?}");
    assert_eq!(d.max_payload, 4 << 30);
    assert!(bold.contains(&"64 KiB"), "{bold:?}");
    assert_eq!(d.max_meta, 64 << 10);
    assert!(
        bold.contains(&format!("{} : 1", d.max_ratio).as_str()),
        "{bold:?}"
    );
}

fn zip_entry(zip: &[u8], name: &str) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let mut v = Vec::new();
    z.by_name(name).unwrap().read_to_end(&mut v).unwrap();
    v
}

fn member_names(v: &Value, out: &mut BTreeSet<String>) {
    if let Value::Object(m) = v {
        for (k, v) in m {
            out.insert(k.clone());
            member_names(v, out);
        }
    }
}

#[test]
fn the_manifest_members_in_the_document_are_the_ones_the_code_writes() {
    let doc = protocol_md();
    let text = rule(&doc, "DES-FILE-3");
    let blocks: Vec<&str> = text
        .split("```text\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .collect();
    assert_eq!(blocks.len(), 2);
    let names_in = |b: &str| -> BTreeSet<String> {
        b.split('"')
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[1].starts_with(':'))
            .map(|w| w[0].to_string())
            .collect()
    };
    let gw = gateway_ds();
    let signed = gw
        .sign_file("a.csv", &b"x,y\n"[..], Cursor::new(Vec::new()))
        .unwrap()
        .into_inner();
    let enc = gw
        .encrypt_file(
            "platform",
            AesCbc::Aes128,
            "a.csv",
            &b"x,y\n"[..],
            Cursor::new(Vec::new()),
            now(),
        )
        .unwrap()
        .into_inner();
    for (block, zip) in [(blocks[0], &signed), (blocks[1], &enc)] {
        let manifest: Value =
            serde_json::from_slice(&zip_entry(zip, gateway::security::file::MANIFEST)).unwrap();
        let mut got = BTreeSet::new();
        member_names(&manifest, &mut got);
        assert_eq!(names_in(block), got, "{block}");
        for fixed in ["format", "signatureAlgorithm", "keyTransport"] {
            if let Some(v) = manifest.get(fixed) {
                let v = v.as_str().unwrap();
                assert!(block.contains(&format!("\"{v}\"")), "{fixed}={v}: {block}");
            }
        }
    }
}

/// `1000000` as `1 000 000` (the document's digit grouping).
fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_xml_parser_limits_in_the_document_are_the_code_defaults() {
    let doc = protocol_md();
    let text = rule(&doc, "DES-PROF-5")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let l = gateway::security::xml::tree::Limits::default();
    assert_eq!(l.max_bytes % (1 << 20), 0);
    for want in [
        format!("at most {} MiB of input", l.max_bytes >> 20),
        format!("nesting depth {}", l.max_depth),
        format!("{} attributes per element", l.max_attributes),
        format!("{} elements", grouped(l.max_elements)),
    ] {
        assert!(text.contains(&want), "DES-PROF-5 does not say {want:?}");
    }
}
