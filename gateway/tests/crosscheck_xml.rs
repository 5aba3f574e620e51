//! Cross-checks of XML Signature and XML Encryption against independent implementations
//! (SEC-XML-SIG-1/2, SEC-XML-ENC-1/2): Debian `xmlsec1` CLI, Python `xmlsec` (libxmlsec1 1.3)
//! and `signxml`. Both directions: they verify/decrypt what we produce, we verify/decrypt
//! what they produce. Any disagreement fails.
//!
//! Debian's xmlsec1 1.2.37 CLI does not know `http://www.w3.org/2009/xmlenc11#rsa-oaep`, the
//! key transport we send (DESIGN.md). Our output is therefore decrypted (a) completely by
//! python-xmlsec (libxmlsec1 1.3) and (b) by the xmlsec1 CLI after Python `cryptography` has
//! unwrapped the session key (OAEP parameters as the document states) and the EncryptedKey
//! has been replaced by a KeyName: the CLI then does the AES-CBC, padding and element
//! replacement itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod xml_common;

use std::path::Path;
use std::process::Command;

use gateway::security::xml::c14n::canonicalize;
use gateway::security::xml::tree::parse;
use gateway::security::xml::{
    SignedReference, XmlCipher, XmlError, decrypt_document, encrypt_element_by_id, open_profile,
    protect_profile, sign_document, sign_element_by_id, verify_signature,
};
use xml_common::{Rng, billing_profile, python, run, shared, write_pems};

fn canon(xml: &str) -> String {
    let d = parse(xml).unwrap_or_else(|e| panic!("unparseable {e}: {xml}"));
    canonicalize(&d.root, &[], &[], None)
}

fn xmlsec1(args: &[&str], files: &[&Path]) -> (bool, String, String) {
    let mut cmd = Command::new("xmlsec1");
    cmd.args(args).args(files);
    let (ok, out, err) = run(&mut cmd, None);
    (ok, String::from_utf8(out).unwrap(), err)
}

fn py(args: &[&str]) -> (bool, String, String) {
    let (ok, out, err) = python("xml_tool.py", args, None);
    (ok, String::from_utf8(out).unwrap(), err)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn profile() -> String {
    billing_profile(&mut Rng(0x1234_5678_9abc_def1), 5)
}

#[test]
fn xmlsec1_python_xmlsec_and_signxml_verify_our_whole_document_signature() {
    let dir = tempfile::tempdir().unwrap();
    let a = shared(0);
    let other = shared(2);
    let (_, cert) = write_pems(dir.path(), "a", a);
    let (_, other_cert) = write_pems(dir.path(), "o", other);
    let signed = sign_document(&profile(), &a.key, &a.cert).unwrap();
    let f = dir.path().join("signed.xml");
    std::fs::write(&f, &signed).unwrap();

    let (ok, _, err) = xmlsec1(&["--verify", "--pubkey-cert-pem", s(&cert)], &[&f]);
    assert!(ok, "xmlsec1 refused our signature: {err}");
    let (ok, _, err) = py(&["verify-xmlsec", s(&cert), s(&f)]);
    assert!(ok, "python-xmlsec refused our signature: {err}");
    let (ok, signed_xml, err) = py(&["verify-signxml", s(&cert), s(&f)]);
    assert!(ok, "signxml refused our signature: {err}");
    assert_eq!(
        canon(&signed_xml),
        canon(&profile()),
        "signxml saw other signed content"
    );

    // The same tools must refuse it under another key and after tampering.
    let (ok, _, _) = xmlsec1(&["--verify", "--pubkey-cert-pem", s(&other_cert)], &[&f]);
    assert!(
        !ok,
        "xmlsec1 accepted our signature with the wrong certificate"
    );
    let tampered = signed.replacen("GW0001", "GW0002", 1);
    assert_ne!(tampered, signed);
    std::fs::write(&f, &tampered).unwrap();
    let (ok, _, _) = xmlsec1(&["--verify", "--pubkey-cert-pem", s(&cert)], &[&f]);
    assert!(!ok, "xmlsec1 accepted a tampered document");
    let (ok, _, _) = py(&["verify-signxml", s(&cert), s(&f)]);
    assert!(!ok, "signxml accepted a tampered document");
}

#[test]
fn xmlsec1_and_python_xmlsec_verify_our_id_reference_signature() {
    let dir = tempfile::tempdir().unwrap();
    let a = shared(0);
    let (_, cert) = write_pems(dir.path(), "a", a);
    let signed = sign_element_by_id(&profile(), "header", &a.key, &a.cert).unwrap();
    assert!(signed.contains("URI=\"#header\""));
    let f = dir.path().join("signed.xml");
    std::fs::write(&f, &signed).unwrap();
    let (ok, _, err) = xmlsec1(
        &[
            "--verify",
            "--pubkey-cert-pem",
            s(&cert),
            "--id-attr:Id",
            "Header",
        ],
        &[&f],
    );
    assert!(ok, "xmlsec1 refused our Id signature: {err}");
    let (ok, _, err) = py(&["verify-xmlsec", s(&cert), s(&f), "header"]);
    assert!(ok, "python-xmlsec refused our Id signature: {err}");
    // Changing the Body (not covered) is fine for them and for us; changing the Header is not.
    let body_changed = signed.replacen("m3", "m4", 1);
    std::fs::write(&f, &body_changed).unwrap();
    let (ok, _, err) = py(&["verify-xmlsec", s(&cert), s(&f), "header"]);
    assert!(ok, "python-xmlsec: {err}");
    assert!(verify_signature(&body_changed, &a.cert).is_ok());
    let header_changed = signed.replacen("billing", "billinG", 1);
    std::fs::write(&f, &header_changed).unwrap();
    let (ok, _, _) = py(&["verify-xmlsec", s(&cert), s(&f), "header"]);
    assert!(!ok);
    assert!(matches!(
        verify_signature(&header_changed, &a.cert),
        Err(XmlError::DigestMismatch)
    ));
}

#[test]
fn python_xmlsec_decrypts_our_encryption_for_aes_128_192_256() {
    let dir = tempfile::tempdir().unwrap();
    let b = shared(1);
    let (key, _) = write_pems(dir.path(), "b", b);
    let plain = profile();
    for cipher in [
        XmlCipher::Aes128Cbc,
        XmlCipher::Aes192Cbc,
        XmlCipher::Aes256Cbc,
    ] {
        let enc = encrypt_element_by_id(&plain, "body", &b.cert, cipher).unwrap();
        assert!(enc.contains(cipher.uri()));
        assert!(!enc.contains("customerName"), "plaintext leaked");
        let f = dir.path().join("enc.xml");
        std::fs::write(&f, &enc).unwrap();
        let (ok, out, err) = py(&["decrypt-xmlsec", s(&key), s(&f)]);
        assert!(ok, "python-xmlsec could not decrypt our {cipher:?}: {err}");
        assert_eq!(canon(&out), canon(&plain), "{cipher:?}");
    }
    // ...and refuses with the wrong key.
    let other = shared(2);
    let (okey, _) = write_pems(dir.path(), "o", other);
    let (ok, _, _) = py(&["decrypt-xmlsec", s(&okey), s(&dir.path().join("enc.xml"))]);
    assert!(!ok, "python-xmlsec decrypted with the wrong key");
}

#[test]
fn we_verify_signatures_made_by_xmlsec1_python_xmlsec_and_signxml() {
    let dir = tempfile::tempdir().unwrap();
    let a = shared(0);
    let other = shared(2);
    let (key, cert) = write_pems(dir.path(), "a", a);
    let plain = profile();
    let pf = dir.path().join("plain.xml");
    std::fs::write(&pf, &plain).unwrap();

    let mut produced = Vec::new();
    let (ok, out, err) = py(&["sign-xmlsec", s(&key), s(&cert), s(&pf)]);
    assert!(ok, "{err}");
    produced.push(("python-xmlsec URI=\"\"", out, SignedReference::Document));
    let (ok, out, err) = py(&["sign-xmlsec", s(&key), s(&cert), s(&pf), "body"]);
    assert!(ok, "{err}");
    produced.push((
        "python-xmlsec URI=#body",
        out,
        SignedReference::Element("body".into()),
    ));
    let (ok, out, err) = py(&["sign-signxml", s(&key), s(&cert), s(&pf)]);
    assert!(ok, "{err}");
    produced.push(("signxml", out, SignedReference::Document));
    // xmlsec1 CLI from a template.
    let tmpl = plain.replace(
        "</sgw:DataProfile>",
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\n<ds:SignedInfo>\n<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\n<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\n<ds:Reference URI=\"\"><ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/><ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue/></ds:Reference>\n</ds:SignedInfo>\n<ds:SignatureValue/>\n<ds:KeyInfo><ds:X509Data/></ds:KeyInfo>\n</ds:Signature></sgw:DataProfile>",
    );
    let tf = dir.path().join("tmpl.xml");
    std::fs::write(&tf, &tmpl).unwrap();
    let kc = format!("{},{}", s(&key), s(&cert));
    let (ok, out, err) = xmlsec1(&["--sign", "--privkey-pem", &kc], &[&tf]);
    assert!(ok, "{err}");
    produced.push(("xmlsec1", out, SignedReference::Document));

    for (who, xml, reference) in produced {
        let v = verify_signature(&xml, &a.cert)
            .unwrap_or_else(|e| panic!("we refused a signature by {who}: {e}\n{xml}"));
        assert_eq!(v.reference, reference, "{who}");
        assert!(
            matches!(
                verify_signature(&xml, &other.cert),
                Err(XmlError::SignatureInvalid | XmlError::Structure(_))
            ),
            "{who}: accepted under the wrong certificate"
        );
        let tampered = xml.replacen("JPY", "USD", 1);
        assert!(
            matches!(
                verify_signature(&tampered, &a.cert),
                Err(XmlError::DigestMismatch)
            ),
            "{who}: tampering not detected"
        );
    }
}

#[test]
fn we_decrypt_what_xmlsec1_and_python_xmlsec_encrypt_for_every_accepted_key_transport() {
    let dir = tempfile::tempdir().unwrap();
    let b = shared(1);
    let (_key, cert) = write_pems(dir.path(), "b", b);
    let plain = profile();
    let pf = dir.path().join("plain.xml");
    std::fs::write(&pf, &plain).unwrap();
    for (aes, bits) in [("aes128", "128"), ("aes192", "192"), ("aes256", "256")] {
        for oaep in ["mgf1p", "oaep11-sha1", "oaep11-sha256"] {
            let (ok, out, err) = py(&["encrypt-xmlsec", s(&cert), s(&pf), "body", aes, oaep]);
            assert!(ok, "{err}");
            let dec = decrypt_document(&out, &b.key)
                .unwrap_or_else(|e| panic!("we could not decrypt python-xmlsec {aes}/{oaep}: {e}"));
            assert_eq!(canon(&dec), canon(&plain), "{aes}/{oaep}");
        }
        // xmlsec1 CLI, rsa-oaep-mgf1p (the transport xmlsec1 1.2 knows).
        let tmpl = format!(
            "<xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\" Id=\"body\"><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#{aes}-cbc\"/><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"
        );
        let tf = dir.path().join("tmpl.xml");
        std::fs::write(&tf, &tmpl).unwrap();
        let sk = format!("aes-{bits}");
        let (ok, out, err) = xmlsec1(
            &[
                "--encrypt",
                "--pubkey-cert-pem",
                s(&cert),
                "--session-key",
                &sk,
                "--id-attr:Id",
                "Body",
                "--node-id",
                "body",
                "--xml-data",
                s(&pf),
            ],
            &[&tf],
        );
        assert!(ok, "xmlsec1 encrypt: {err}");
        let dec = decrypt_document(&out, &b.key)
            .unwrap_or_else(|e| panic!("we could not decrypt xmlsec1 {aes}: {e}"));
        assert_eq!(canon(&dec), canon(&plain), "xmlsec1 {aes}");
        // The other party's key must fail, with the one indistinguishable error.
        let other = shared(2);
        assert!(matches!(
            decrypt_document(&out, &other.key),
            Err(XmlError::Decryption)
        ));
    }
}

#[test]
fn protect_profile_output_is_verified_by_xmlsec1_and_signxml_and_decrypted_by_python_xmlsec() {
    let dir = tempfile::tempdir().unwrap();
    let a = shared(0);
    let b = shared(1);
    let (_, acert) = write_pems(dir.path(), "a", a);
    let (bkey, _) = write_pems(dir.path(), "b", b);
    let plain = profile();
    for cipher in [
        XmlCipher::Aes128Cbc,
        XmlCipher::Aes192Cbc,
        XmlCipher::Aes256Cbc,
    ] {
        let protected = protect_profile(&plain, &a.key, &a.cert, &b.cert, cipher).unwrap();
        let f = dir.path().join("protected.xml");
        std::fs::write(&f, &protected).unwrap();
        let (ok, _, err) = xmlsec1(&["--verify", "--pubkey-cert-pem", s(&acert)], &[&f]);
        assert!(ok, "xmlsec1 refused the profile signature: {err}");
        let (ok, _, err) = py(&["verify-signxml", s(&acert), s(&f)]);
        assert!(ok, "signxml refused the profile signature: {err}");
        let (ok, out, err) = py(&["decrypt-xmlsec", s(&bkey), s(&f)]);
        assert!(ok, "python-xmlsec could not decrypt the profile: {err}");
        // Their decrypted document still holds our signature; strip it for comparison.
        let d = parse(&out).unwrap();
        let mut root = d.root.clone();
        root.children.retain(|n| match n {
            gateway::security::xml::tree::Node::Element(e) => e.local != "Signature",
            gateway::security::xml::tree::Node::Text(_) => true,
        });
        assert_eq!(
            canonicalize(&root, &[], &[], None),
            canon(&plain),
            "{cipher:?}"
        );
        assert_eq!(
            canon(&open_profile(&protected, &b.key, &a.cert).unwrap()),
            canon(&plain)
        );
    }
}

#[test]
fn open_profile_accepts_a_profile_protected_by_python_xmlsec() {
    let dir = tempfile::tempdir().unwrap();
    let a = shared(0);
    let b = shared(1);
    let (akey, acert) = write_pems(dir.path(), "a", a);
    let (_, bcert) = write_pems(dir.path(), "b", b);
    // Compact plain layout (no whitespace between the root's children).
    let plain = profile()
        .replace(">\n<sgw:Body", "><sgw:Body")
        .replace("</sgw:Body>\n", "</sgw:Body>");
    let pf = dir.path().join("plain.xml");
    std::fs::write(&pf, &plain).unwrap();
    let (ok, enc, err) = py(&[
        "encrypt-xmlsec",
        s(&bcert),
        s(&pf),
        "body",
        "aes256",
        "oaep11-sha256",
    ]);
    assert!(ok, "{err}");
    let ef = dir.path().join("enc.xml");
    std::fs::write(&ef, &enc).unwrap();
    let (ok, signed, err) = py(&["sign-xmlsec", s(&akey), s(&acert), s(&ef)]);
    assert!(ok, "{err}");
    let opened = open_profile(&signed, &b.key, &a.cert)
        .unwrap_or_else(|e| panic!("open_profile refused python-xmlsec output: {e}\n{signed}"));
    assert_eq!(canon(&opened), canon(&plain));
}

#[test]
fn signatures_python_xmlsec_accepts_but_our_policy_refuses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = shared(0);
    let (key, cert) = write_pems(dir.path(), "a", a);
    let pf = dir.path().join("plain.xml");
    std::fs::write(&pf, profile()).unwrap();
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("rsa-sha1", "sha256", &[";enveloped,exc"], "algorithm"),
        ("rsa-sha256", "sha1", &[";enveloped,exc"], "algorithm"),
        ("rsa-sha256", "sha256", &[";enveloped,incl"], "algorithm"),
        ("rsa-sha256", "sha256", &[";xpath,exc"], "algorithm"),
        ("rsa-sha256", "sha256", &[";enveloped"], "algorithm"),
        (
            "rsa-sha256",
            "sha256",
            &[";enveloped,exc", "#header;exc"],
            "structure",
        ),
    ];
    for (sigalg, digalg, refs, kind) in cases {
        let mut args = vec![
            "sign-xmlsec-custom",
            s(&key),
            s(&cert),
            s(&pf),
            sigalg,
            digalg,
        ];
        args.extend_from_slice(refs);
        let (ok, out, err) = py(&args);
        assert!(ok, "{err}");
        let f = dir.path().join("c.xml");
        std::fs::write(&f, &out).unwrap();
        let (ok, _, err) = py(&["verify-xmlsec", s(&cert), s(&f), "ids"]);
        assert!(
            ok,
            "python-xmlsec refuses its own {sigalg}/{digalg}/{refs:?}: {err}"
        );
        let r = verify_signature(&out, &a.cert);
        let refused = match *kind {
            "algorithm" => matches!(r, Err(XmlError::AlgorithmRefused(_))),
            _ => matches!(r, Err(XmlError::Structure(_))),
        };
        assert!(refused, "{sigalg}/{digalg}/{refs:?}: {r:?}");
    }
}

#[test]
fn rsa_1_5_key_transport_made_by_python_xmlsec_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = shared(1);
    let (key, cert) = write_pems(dir.path(), "b", b);
    let pf = dir.path().join("plain.xml");
    std::fs::write(&pf, profile()).unwrap();
    let (ok, out, err) = py(&[
        "encrypt-xmlsec",
        s(&cert),
        s(&pf),
        "body",
        "aes128",
        "rsa15",
    ]);
    assert!(ok, "{err}");
    let f = dir.path().join("e.xml");
    std::fs::write(&f, &out).unwrap();
    let (ok, _, err) = py(&["decrypt-xmlsec", s(&key), s(&f)]);
    assert!(ok, "python-xmlsec cannot decrypt its own rsa-1_5: {err}");
    assert!(matches!(
        decrypt_document(&out, &b.key),
        Err(XmlError::AlgorithmRefused(_))
    ));
}

#[test]
fn inclusive_namespaces_prefix_lists_signed_by_python_xmlsec_verify_with_us() {
    // libxml2 (through xmlsec) is the reference here, including the `#default` token that
    // lxml's tostring() does not pass on.
    let dir = tempfile::tempdir().unwrap();
    let a = shared(0);
    let (key, cert) = write_pems(dir.path(), "a", a);
    let mut docs: Vec<(String, &str)> = [
        ("<r xmlns=\"urn:d\" xmlns:p=\"urn:p\"><a:s xmlns:a=\"urn:a\" Id=\"t\"><b/><p:c/></a:s></r>", "#t;exc=#default+p"),
        ("<r xmlns=\"urn:d\" xmlns:p=\"urn:p\"><a:s xmlns:a=\"urn:a\" Id=\"t\"><b/></a:s></r>", "#t;exc=#default"),
        ("<r xmlns=\"urn:d\"><s xmlns=\"\" Id=\"t\"><p:x xmlns:p=\"urn:p\"/></s></r>", "#t;exc=#default"),
        ("<r xmlns:p=\"urn:p\" xmlns:q=\"urn:q\"><s Id=\"t\"><q:u/></s></r>", "#t;exc=p+q"),
        ("<r xmlns=\"urn:1\"><a:s xmlns:a=\"urn:a\" Id=\"t\"><a:t xmlns=\"urn:2\"><u/></a:t></a:s></r>", "#t;exc=#default"),
        ("<a:r xmlns:a=\"urn:a\" xmlns=\"urn:2\" Id=\"t\"><a:s/><s/></a:r>", "#t;enveloped,exc=#default+a"),
    ]
    .iter()
    .map(|(d, r)| (d.to_string(), *r))
    .collect();
    let mut rng = Rng(77);
    for _ in 0..8 {
        let d = xml_common::random_doc(&mut rng);
        let i = d.find('>').unwrap();
        let d = format!("{} Id=\"t\"{}", &d[..i], &d[i..]);
        docs.push((d, "#t;enveloped,exc=#default+a+b+ds"));
    }
    for (doc, refspec) in docs {
        let f = dir.path().join("d.xml");
        std::fs::write(&f, &doc).unwrap();
        let (ok, signed, err) = py(&[
            "sign-xmlsec-custom",
            s(&key),
            s(&cert),
            s(&f),
            "rsa-sha256",
            "sha256",
            refspec,
        ]);
        assert!(ok, "{err}");
        assert!(signed.contains("PrefixList"));
        let v = verify_signature(&signed, &a.cert)
            .unwrap_or_else(|e| panic!("{e:?} for {refspec} on\n{signed}"));
        assert_eq!(v.reference, SignedReference::Element("t".into()));
    }
}

/// Has `cryptography` unwrap the session key of `file`, then lets the xmlsec1 CLI decrypt.
fn xmlsec1_decrypt_with_unwrapped_key(dir: &Path, key: &Path, file: &Path) -> String {
    let sk = dir.join("session.bin");
    let (ok, keyname_doc, err) = py(&["unwrap-key", s(key), s(file), s(&sk)]);
    assert!(ok, "cryptography could not unwrap our session key: {err}");
    let f2 = dir.join("keyname.xml");
    std::fs::write(&f2, &keyname_doc).unwrap();
    let (ok, out, err) = xmlsec1(&["--decrypt", "--aeskey:session", s(&sk)], &[&f2]);
    assert!(ok, "xmlsec1 could not decrypt our ciphertext: {err}");
    out
}

#[test]
fn xmlsec1_decrypts_our_aes_128_192_256_content_after_an_independent_key_unwrap() {
    let dir = tempfile::tempdir().unwrap();
    let b = shared(1);
    let (key, _) = write_pems(dir.path(), "b", b);
    let plain = profile();
    for cipher in [
        XmlCipher::Aes128Cbc,
        XmlCipher::Aes192Cbc,
        XmlCipher::Aes256Cbc,
    ] {
        let enc = encrypt_element_by_id(&plain, "body", &b.cert, cipher).unwrap();
        let f = dir.path().join("enc.xml");
        std::fs::write(&f, &enc).unwrap();
        let out = xmlsec1_decrypt_with_unwrapped_key(dir.path(), &key, &f);
        assert_eq!(canon(&out), canon(&plain), "{cipher:?}");
        assert_eq!(
            std::fs::metadata(dir.path().join("session.bin"))
                .unwrap()
                .len() as usize,
            match cipher {
                XmlCipher::Aes128Cbc => 16,
                XmlCipher::Aes192Cbc => 24,
                _ => 32,
            }
        );
    }
}

#[test]
fn protect_profile_output_is_verified_and_decrypted_by_the_xmlsec1_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (shared(0), shared(1));
    let (_, acert) = write_pems(dir.path(), "a", a);
    let (bkey, _) = write_pems(dir.path(), "b", b);
    let plain = profile();
    let protected =
        protect_profile(&plain, &a.key, &a.cert, &b.cert, XmlCipher::Aes256Cbc).unwrap();
    let f = dir.path().join("protected.xml");
    std::fs::write(&f, &protected).unwrap();
    let (ok, _, err) = xmlsec1(&["--verify", "--pubkey-cert-pem", s(&acert)], &[&f]);
    assert!(ok, "xmlsec1 refused the profile signature: {err}");
    let out = xmlsec1_decrypt_with_unwrapped_key(dir.path(), &bkey, &f);
    let d = parse(&out).unwrap();
    let mut root = d.root.clone();
    root.children.retain(|n| match n {
        gateway::security::xml::tree::Node::Element(e) => e.local != "Signature",
        gateway::security::xml::tree::Node::Text(_) => true,
    });
    assert_eq!(canonicalize(&root, &[], &[], None), canon(&plain));
}

#[test]
fn signatures_over_random_namespace_heavy_documents_agree_with_python_xmlsec_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let a = shared(0);
    let (key, cert) = write_pems(dir.path(), "a", a);
    let mut rng = Rng(0xabcd_ef01_2345_6789);
    let docs: Vec<String> = (0..60).map(|_| xml_common::random_doc(&mut rng)).collect();

    // Ours → python-xmlsec.
    let mut ours = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let f = dir.path().join(format!("ours{i}.xml"));
        std::fs::write(&f, sign_document(d, &a.key, &a.cert).unwrap()).unwrap();
        ours.push(f);
    }
    let mut args = vec!["verify-xmlsec-many".to_string(), s(&cert).to_string()];
    args.extend(ours.iter().map(|p| s(p).to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, failures, err) = py(&argv);
    assert!(ok, "{err}");
    assert!(
        failures.is_empty(),
        "python-xmlsec refused our signatures:\n{failures}"
    );

    // python-xmlsec → ours.
    let mut theirs = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let f = dir.path().join(format!("theirs{i}.xml"));
        std::fs::write(&f, d).unwrap();
        theirs.push(f);
    }
    let mut args = vec![
        "sign-xmlsec-many".to_string(),
        s(&key).to_string(),
        s(&cert).to_string(),
    ];
    args.extend(theirs.iter().map(|p| s(p).to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = py(&argv);
    assert!(ok, "{err}");
    for (f, d) in theirs.iter().zip(&docs) {
        let signed = std::fs::read_to_string(f).unwrap();
        let v = verify_signature(&signed, &a.cert)
            .unwrap_or_else(|e| panic!("we refused python-xmlsec's signature ({e:?}):\n{signed}"));
        assert_eq!(v.signed_c14n, canon(d));
    }
}
