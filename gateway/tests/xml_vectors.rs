//! Runs the XML test vectors (vectors/data/xml-c14n.json, xml-dsig.json, xml-enc.json;
//! Wycheproof shape, expected results produced by lxml / xmlsec1 / python-xmlsec / signxml,
//! see vectors/README.md "XML vectors") against the gateway's implementation
//! (SEC-XML-SIG-1/2, SEC-XML-ENC-1/2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gateway::security::xml::c14n::canonicalize;
use gateway::security::xml::tree::{Element, parse, scope_of};
use gateway::security::xml::{
    SignedReference, XmlError, decrypt_document, open_profile, verify_signature,
};
use openssl::pkey::PKey;
use openssl::x509::X509;
use serde_json::Value;

fn load(name: &str) -> Value {
    // Through the vectors crate like every other vector file (typed shape check), then as JSON.
    vectors::load(name).unwrap();
    let path = vectors::data_dir().join(name);
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let n: usize = v["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["tests"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        v["numberOfTests"].as_u64().unwrap() as usize,
        n,
        "{name}: numberOfTests"
    );
    for result in ["valid", "invalid"] {
        assert!(
            tests(&v).any(|(_, t)| t["result"] == result),
            "{name} has no {result} test"
        );
    }
    v
}

fn tests(v: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    v["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["tests"].as_array().unwrap().iter().map(move |t| (g, t)))
}

fn variant(e: &XmlError) -> &'static str {
    match e {
        XmlError::Malformed(_) => "Malformed",
        XmlError::DtdRefused => "DtdRefused",
        XmlError::EntityRefused(_) => "EntityRefused",
        XmlError::ProcessingInstructionRefused => "ProcessingInstructionRefused",
        XmlError::LimitExceeded(_) => "LimitExceeded",
        XmlError::AlgorithmRefused(_) => "AlgorithmRefused",
        XmlError::KeyRefused(_) => "KeyRefused",
        XmlError::Structure(_) => "Structure",
        XmlError::DigestMismatch => "DigestMismatch",
        XmlError::SignatureInvalid => "SignatureInvalid",
        XmlError::Decryption => "Decryption",
        _ => "other",
    }
}

fn id(t: &Value) -> String {
    format!(
        "tcId {} ({})",
        t["tcId"],
        t["comment"].as_str().unwrap_or("")
    )
}

fn canon(xml: &str) -> String {
    let d = parse(xml).unwrap();
    canonicalize(&d.root, &[], &[], None)
}

fn check_invalid<T: std::fmt::Debug>(t: &Value, r: Result<T, XmlError>) {
    let e = r.err().unwrap_or_else(|| panic!("{}: accepted", id(t)));
    assert_eq!(
        variant(&e),
        t["error"].as_str().unwrap(),
        "{}: {e:?}",
        id(t)
    );
}

#[test]
fn xml_c14n_vectors_match_lxml_outputs_and_policy_refusals() {
    let v = load("xml-c14n.json");
    let mut valid = 0;
    for (_, t) in tests(&v) {
        let xml = t["xml"].as_str().unwrap();
        if t["result"] == "invalid" {
            check_invalid(t, parse(xml));
            continue;
        }
        let doc = parse(xml).unwrap_or_else(|e| panic!("{}: {e}", id(t)));
        let all = doc.root.find_all(&|_: &Element| true);
        let (anc, el) = &all[t["elementIndex"].as_u64().unwrap() as usize];
        let prefixes: Vec<String> = t["inclusivePrefixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let out = canonicalize(el, &scope_of(anc), &prefixes, None);
        assert_eq!(out, t["expected"].as_str().unwrap(), "{}", id(t));
        valid += 1;
    }
    assert!(valid >= 20);
}

#[test]
fn xml_dsig_vectors_verify_or_are_refused_with_the_expected_error() {
    let v = load("xml-dsig.json");
    for (g, t) in tests(&v) {
        let cert = X509::from_pem(g["signerCertificatePem"].as_str().unwrap().as_bytes()).unwrap();
        let r = verify_signature(t["xml"].as_str().unwrap(), &cert);
        if t["result"] == "valid" {
            let ok = r.unwrap_or_else(|e| panic!("{}: {e:?}", id(t)));
            let uri = t["reference"].as_str().unwrap();
            let expected_ref = match uri.strip_prefix('#') {
                Some(i) => SignedReference::Element(i.to_string()),
                None => SignedReference::Document,
            };
            assert_eq!(ok.reference, expected_ref, "{}", id(t));
            assert_eq!(
                ok.signed_c14n,
                t["signedC14n"].as_str().unwrap(),
                "{}",
                id(t)
            );
        } else {
            check_invalid(t, r);
        }
    }
}

#[test]
fn xml_enc_vectors_decrypt_or_are_refused_with_the_expected_error() {
    let v = load("xml-enc.json");
    for (g, t) in tests(&v) {
        let key =
            PKey::private_key_from_pem(g["recipientPrivateKeyPem"].as_str().unwrap().as_bytes())
                .unwrap();
        let xml = t["xml"].as_str().unwrap();
        let r = match g["type"].as_str().unwrap() {
            "XmlEncDecrypt" => decrypt_document(xml, &key),
            "XmlProfileOpen" => {
                let cert =
                    X509::from_pem(g["signerCertificatePem"].as_str().unwrap().as_bytes()).unwrap();
                open_profile(xml, &key, &cert)
            }
            other => panic!("unknown group type {other}"),
        };
        if t["result"] == "valid" {
            let out = r.unwrap_or_else(|e| panic!("{}: {e:?}", id(t)));
            assert_eq!(
                canon(&out),
                t["plaintextC14n"].as_str().unwrap(),
                "{}",
                id(t)
            );
        } else {
            check_invalid(t, r);
        }
    }
}
