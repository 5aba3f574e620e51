//! Negative tests of the XML security layer (SEC-XML-SIG-2, SEC-XML-ENC-2, DES-PROF): DTDs and
//! entities, signature wrapping, layout violations, refused algorithms and transforms,
//! tampering, weak keys, and indistinguishable decryption failures. Each refusal has its own
//! test; each manipulated input is first shown to differ from the valid one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod xml_common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use gateway::security::xml::{
    SignedReference, XmlCipher, XmlError, decrypt_document, encrypt_element_by_id, open_profile,
    protect_profile, sign_document, sign_element_by_id, verify_signature,
};
use openssl::encrypt::Encrypter;
use openssl::hash::MessageDigest;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use xml_common::{Party, Rng, billing_profile, party, shared};

struct Fixture {
    gw: &'static Party,
    platform: &'static Party,
    plain: String,
    protected: String,
}

fn fixture() -> Fixture {
    let gw = shared(0);
    let platform = shared(1);
    let plain = billing_profile(&mut Rng(42), 3);
    let protected = protect_profile(
        &plain,
        &gw.key,
        &gw.cert,
        &platform.cert,
        XmlCipher::default(),
    )
    .unwrap();
    assert!(open_profile(&protected, &platform.key, &gw.cert).is_ok());
    Fixture {
        gw,
        platform,
        plain,
        protected,
    }
}

/// Replaces exactly one occurrence (panics if `from` is absent) so that a manipulation can
/// never silently be a no-op.
fn edit(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "{from:?} not found");
    let out = s.replacen(from, to, 1);
    assert_ne!(out, s);
    out
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s.find(start).unwrap();
    let j = s[i..].find(end).unwrap() + i + end.len();
    &s[i..j]
}

fn open(f: &Fixture, doc: &str) -> Result<String, XmlError> {
    open_profile(doc, &f.platform.key, &f.gw.cert)
}

// ---- DTDs, entities, PIs, limits -----------------------------------------------------------

#[test]
fn a_billion_laughs_dtd_is_refused_by_every_entry_point() {
    let f = fixture();
    let bomb = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>{}",
        f.plain.replacen("GW0001", "&lol2;", 1)
    );
    assert!(matches!(open(&f, &bomb), Err(XmlError::DtdRefused)));
    assert!(matches!(
        verify_signature(&bomb, &f.gw.cert),
        Err(XmlError::DtdRefused)
    ));
    assert!(matches!(
        decrypt_document(&bomb, &f.platform.key),
        Err(XmlError::DtdRefused)
    ));
    assert!(matches!(
        protect_profile(
            &bomb,
            &f.gw.key,
            &f.gw.cert,
            &f.platform.cert,
            XmlCipher::default()
        ),
        Err(XmlError::DtdRefused)
    ));
}

#[test]
fn an_external_entity_declaration_is_refused() {
    let f = fixture();
    let xxe = format!(
        "<!DOCTYPE p [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
        f.protected.replacen("GW0001", "&xxe;", 1)
    );
    assert!(matches!(open(&f, &xxe), Err(XmlError::DtdRefused)));
    let public_dtd = format!(
        "<!DOCTYPE p SYSTEM \"http://example.invalid/p.dtd\">{}",
        f.protected
    );
    assert!(matches!(open(&f, &public_dtd), Err(XmlError::DtdRefused)));
}

#[test]
fn an_entity_reference_without_a_dtd_is_refused() {
    let f = fixture();
    let doc = edit(&f.protected, "GW0001", "&xxe;");
    assert!(matches!(open(&f, &doc), Err(XmlError::EntityRefused(_))));
}

#[test]
fn a_processing_instruction_is_refused() {
    let f = fixture();
    let doc = format!(
        "<?xml-stylesheet type=\"text/xsl\" href=\"x.xsl\"?>{}",
        f.protected
    );
    assert!(matches!(
        open(&f, &doc),
        Err(XmlError::ProcessingInstructionRefused)
    ));
    let inside = edit(&f.protected, "<sgw:GatewayId>", "<?evil?><sgw:GatewayId>");
    assert!(matches!(
        open(&f, &inside),
        Err(XmlError::ProcessingInstructionRefused)
    ));
}

#[test]
fn an_oversized_document_is_refused() {
    let f = fixture();
    let big = edit(&f.protected, "GW0001", &"A".repeat(17 * 1024 * 1024));
    assert!(matches!(open(&f, &big), Err(XmlError::LimitExceeded(_))));
}

// ---- Signature wrapping and layout ---------------------------------------------------------

#[test]
fn a_second_element_carrying_the_signed_id_is_refused() {
    let f = fixture();
    let signed = sign_element_by_id(&f.plain, "header", &f.gw.key, &f.gw.cert).unwrap();
    assert!(verify_signature(&signed, &f.gw.cert).is_ok());
    for attr in ["Id", "ID", "id", "xml:id"] {
        let wrapped = edit(
            &signed,
            "<sgw:Body Id=\"body\">",
            &format!("<sgw:Body Id=\"body\"><sgw:Header {attr}=\"header\">evil</sgw:Header>"),
        );
        assert!(
            matches!(
                verify_signature(&wrapped, &f.gw.cert),
                Err(XmlError::Structure(_))
            ),
            "duplicate {attr} accepted"
        );
    }
}

#[test]
fn a_moved_signed_element_yields_only_the_signed_content_never_the_impostor() {
    let f = fixture();
    let signed = sign_element_by_id(&f.plain, "header", &f.gw.key, &f.gw.cert).unwrap();
    let header = between(&signed, "<sgw:Header", "</sgw:Header>").to_string();
    let evil = header
        .replace(" Id=\"header\"", "")
        .replace("GW0001", "GW6666");
    // Classic wrapping: the impostor takes the original place, the signed original hides
    // in a wrapper element.
    let wrapped = edit(&signed, &header, &evil).replacen(
        "</sgw:DataProfile>",
        &format!("<sgw:Wrapper>{header}</sgw:Wrapper></sgw:DataProfile>"),
        1,
    );
    let v = verify_signature(&wrapped, &f.gw.cert).unwrap();
    assert_eq!(v.reference, SignedReference::Element("header".into()));
    assert!(v.signed_c14n.contains("GW0001"));
    assert!(!v.signed_c14n.contains("GW6666"));
    // The profile layer refuses the document outright.
    let enc = encrypt_element_by_id(&wrapped, "body", &f.platform.cert, XmlCipher::default());
    if let Ok(enc) = enc {
        assert!(open(&f, &enc).is_err());
    }
}

#[test]
fn signed_profile_content_moved_or_duplicated_is_refused() {
    let f = fixture();
    let header = between(&f.protected, "<sgw:Header", "</sgw:Header>").to_string();
    let dup = edit(
        &f.protected,
        "<ds:Signature",
        &format!("{header}<ds:Signature"),
    );
    assert!(open(&f, &dup).is_err());
    let moved = edit(&f.protected, &header, "").replacen(
        "</xenc:EncryptedData>",
        &format!("</xenc:EncryptedData>{header}"),
        1,
    );
    assert!(open(&f, &moved).is_err());
    let ed = between(&f.protected, "<xenc:EncryptedData", "</xenc:EncryptedData>").to_string();
    let dup_ed = edit(&f.protected, "<ds:Signature", &format!("{ed}<ds:Signature"));
    assert!(open(&f, &dup_ed).is_err());
}

#[test]
fn extra_elements_added_after_signing_are_refused() {
    let f = fixture();
    let after = edit(
        &f.protected,
        "</sgw:DataProfile>",
        "<sgw:Extra/></sgw:DataProfile>",
    );
    assert!(open(&f, &after).is_err());
    let before = edit(&f.protected, "<ds:Signature", "<sgw:Extra/><ds:Signature");
    assert!(matches!(open(&f, &before), Err(XmlError::DigestMismatch)));
    let inside = edit(
        &f.protected,
        "<ds:SignatureValue>",
        "<ds:Object/><ds:SignatureValue>",
    );
    assert!(matches!(open(&f, &inside), Err(XmlError::Structure(_))));
    let obj = edit(
        &f.protected,
        "</ds:Signature>",
        "<ds:Object>x</ds:Object></ds:Signature>",
    );
    assert!(matches!(open(&f, &obj), Err(XmlError::Structure(_))));
}

#[test]
fn a_signature_that_is_not_the_last_child_of_the_root_is_refused() {
    let f = fixture();
    let sig = between(&f.protected, "<ds:Signature", "</ds:Signature>").to_string();
    let without = edit(&f.protected, &sig, "");
    // Still a cryptographically valid enveloped signature wherever it sits...
    for placed in [
        edit(&without, "<sgw:Header", &format!("{sig}<sgw:Header")),
        edit(&without, "</sgw:Header>", &format!("{sig}</sgw:Header>")),
    ] {
        assert!(verify_signature(&placed, &f.gw.cert).is_ok());
        // ...but not where the layout says.
        assert!(
            matches!(open(&f, &placed), Err(XmlError::Structure(_))),
            "{placed}"
        );
    }
}

#[test]
fn multiple_signatures_are_refused() {
    let f = fixture();
    let sig = between(&f.protected, "<ds:Signature", "</ds:Signature>").to_string();
    let twice = edit(
        &f.protected,
        "</sgw:DataProfile>",
        &format!("{sig}</sgw:DataProfile>"),
    );
    assert!(matches!(
        verify_signature(&twice, &f.gw.cert),
        Err(XmlError::Structure(_))
    ));
    assert!(matches!(open(&f, &twice), Err(XmlError::Structure(_))));
}

#[test]
fn multiple_references_are_refused() {
    let f = fixture();
    let reference = between(&f.protected, "<ds:Reference", "</ds:Reference>").to_string();
    let two = edit(
        &f.protected,
        "</ds:SignedInfo>",
        &format!("{reference}</ds:SignedInfo>"),
    );
    assert!(matches!(
        verify_signature(&two, &f.gw.cert),
        Err(XmlError::Structure(_))
    ));
}

#[test]
fn a_reference_to_anything_but_the_whole_document_is_refused_for_profiles() {
    let f = fixture();
    let enc = encrypt_element_by_id(
        &f.plain.replace(">\n<", "><"),
        "body",
        &f.platform.cert,
        XmlCipher::default(),
    )
    .unwrap();
    let by_id = sign_element_by_id(&enc, "header", &f.gw.key, &f.gw.cert).unwrap();
    assert!(verify_signature(&by_id, &f.gw.cert).is_ok());
    assert!(matches!(open(&f, &by_id), Err(XmlError::Structure(_))));
    for uri in [
        "#xpointer(/)",
        "http://example.invalid/doc.xml",
        "#",
        "#xpointer(id('body'))",
    ] {
        let doc = edit(&f.protected, "URI=\"\"", &format!("URI=\"{uri}\""));
        assert!(
            matches!(open(&f, &doc), Err(XmlError::Structure(_))),
            "{uri}"
        );
    }
    // A syntactically fine URI changes SignedInfo, so the signature no longer verifies.
    let doc = edit(&f.protected, "URI=\"\"", "URI=\"#header\"");
    assert!(matches!(open(&f, &doc), Err(XmlError::SignatureInvalid)));
}

#[test]
fn transforms_other_than_enveloped_and_exclusive_c14n_are_refused() {
    let f = fixture();
    let env = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
    let exc_t = "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>";
    let cases = [
        edit(
            &f.protected,
            env,
            "http://www.w3.org/TR/1999/REC-xslt-19991116",
        ),
        edit(
            &f.protected,
            env,
            "http://www.w3.org/TR/1999/REC-xpath-19991116",
        ),
        edit(
            &f.protected,
            env,
            "http://www.w3.org/2002/06/xmldsig-filter2",
        ),
        edit(
            &f.protected,
            env,
            "http://www.w3.org/2000/09/xmldsig#base64",
        ),
        edit(
            &f.protected,
            exc_t,
            "<ds:Transform Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>",
        ),
        edit(&f.protected, exc_t, ""),
        edit(&f.protected, exc_t, &format!("{exc_t}{exc_t}")),
    ];
    for doc in cases {
        assert!(
            matches!(
                verify_signature(&doc, &f.gw.cert),
                Err(XmlError::AlgorithmRefused(_))
            ),
            "{}",
            between(&doc, "<ds:Transforms>", "</ds:Transforms>")
        );
    }
}

// ---- Algorithms ----------------------------------------------------------------------------

#[test]
fn signature_digest_and_c14n_algorithms_outside_the_profile_are_refused() {
    let f = fixture();
    let rsa256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    for alg in [
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    ] {
        let doc = edit(&f.protected, rsa256, alg);
        assert!(
            matches!(open(&f, &doc), Err(XmlError::AlgorithmRefused(_))),
            "{alg}"
        );
    }
    let doc = edit(
        &f.protected,
        "<ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue>",
        "<ds:DigestMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#sha1\"/><ds:DigestValue>",
    );
    assert!(matches!(open(&f, &doc), Err(XmlError::AlgorithmRefused(_))));
    let doc = edit(
        &f.protected,
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#WithComments\"/>",
    );
    assert!(matches!(open(&f, &doc), Err(XmlError::AlgorithmRefused(_))));
    let hmac_len = edit(
        &f.protected,
        &format!("<ds:SignatureMethod Algorithm=\"{rsa256}\"/>"),
        &format!(
            "<ds:SignatureMethod Algorithm=\"{rsa256}\"><ds:HMACOutputLength>8</ds:HMACOutputLength></ds:SignatureMethod>"
        ),
    );
    assert!(matches!(open(&f, &hmac_len), Err(XmlError::Structure(_))));
}

#[test]
fn rsa_1_5_key_transport_and_other_ciphers_are_refused() {
    let f = fixture();
    let enc =
        encrypt_element_by_id(&f.plain, "body", &f.platform.cert, XmlCipher::default()).unwrap();
    let rsa15 = edit(
        &enc,
        "http://www.w3.org/2009/xmlenc11#rsa-oaep",
        "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
    );
    assert!(matches!(
        decrypt_document(&rsa15, &f.platform.key),
        Err(XmlError::AlgorithmRefused(_))
    ));
    for data_alg in [
        "http://www.w3.org/2009/xmlenc11#aes128-gcm",
        "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
    ] {
        let doc = edit(
            &enc,
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
            data_alg,
        );
        assert!(matches!(
            decrypt_document(&doc, &f.platform.key),
            Err(XmlError::AlgorithmRefused(_))
        ));
    }
    for (from, to) in [
        (
            "http://www.w3.org/2001/04/xmlenc#sha256",
            "http://www.w3.org/2001/04/xmlenc#sha512",
        ),
        (
            "http://www.w3.org/2009/xmlenc11#mgf1sha256",
            "http://www.w3.org/2009/xmlenc11#mgf1sha512",
        ),
    ] {
        let doc = edit(&enc, from, to);
        assert!(matches!(
            decrypt_document(&doc, &f.platform.key),
            Err(XmlError::AlgorithmRefused(_))
        ));
    }
    let cref = edit(
        &enc,
        "<xenc:CipherData><xenc:CipherValue>",
        "<xenc:CipherData><xenc:CipherReference URI=\"http://example.invalid/\"/><xenc:CipherValue>",
    );
    assert!(matches!(
        decrypt_document(&cref, &f.platform.key),
        Err(XmlError::Structure(_))
    ));
}

// ---- Tampering -----------------------------------------------------------------------------

#[test]
fn tampered_ciphertext_signature_value_and_digest_value_are_detected() {
    let f = fixture();
    let ed = between(&f.protected, "<xenc:EncryptedData", "</xenc:EncryptedData>");
    let cv = between(
        &ed[ed.find("</xenc:EncryptedKey>").unwrap()..],
        "<xenc:CipherValue>",
        "</xenc:CipherValue>",
    );
    let flipped = flip_b64(cv);
    let doc = edit(&f.protected, cv, &flipped);
    assert!(matches!(open(&f, &doc), Err(XmlError::DigestMismatch)));

    let sv = between(&f.protected, "<ds:SignatureValue>", "</ds:SignatureValue>");
    let doc = edit(&f.protected, sv, &flip_b64(sv));
    assert!(matches!(open(&f, &doc), Err(XmlError::SignatureInvalid)));

    let dv = between(&f.protected, "<ds:DigestValue>", "</ds:DigestValue>");
    let doc = edit(&f.protected, dv, &flip_b64(dv));
    assert!(matches!(open(&f, &doc), Err(XmlError::SignatureInvalid)));
}

/// Changes the 10th base64 character of an element's content to another base64 character.
fn flip_b64(el: &str) -> String {
    let start = el.find('>').unwrap() + 1;
    let mut b = el.as_bytes().to_vec();
    let i = start + 10;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[test]
fn an_embedded_certificate_other_than_the_expected_signer_is_refused() {
    let f = fixture();
    let other = shared(3);
    let cert = between(
        &f.protected,
        "<ds:X509Certificate>",
        "</ds:X509Certificate>",
    );
    let swapped = edit(
        &f.protected,
        cert,
        &format!(
            "<ds:X509Certificate>{}</ds:X509Certificate>",
            B64.encode(other.cert.to_der().unwrap())
        ),
    );
    assert!(matches!(open(&f, &swapped), Err(XmlError::Structure(_))));
    // And the key of an embedded certificate is never used: a document signed by mallory
    // embedding mallory's certificate is refused, and so it is without KeyInfo.
    let by_mallory = protect_profile(
        &f.plain,
        &other.key,
        &other.cert,
        &f.platform.cert,
        XmlCipher::default(),
    )
    .unwrap();
    assert!(open(&f, &by_mallory).is_err());
    let ki = between(&by_mallory, "<ds:KeyInfo>", "</ds:KeyInfo>").to_string();
    let bare = edit(&by_mallory, &ki, "");
    assert!(matches!(
        verify_signature(&bare, &f.gw.cert),
        Err(XmlError::SignatureInvalid)
    ));
    assert!(verify_signature(&bare, &other.cert).is_ok());
}

// ---- Keys ----------------------------------------------------------------------------------

#[test]
fn rsa_keys_shorter_than_2048_bits_are_refused_everywhere() {
    let f = fixture();
    let weak = party("weak", 1024);
    let r = protect_profile(
        &f.plain,
        &weak.key,
        &weak.cert,
        &f.platform.cert,
        XmlCipher::default(),
    );
    assert!(matches!(r, Err(XmlError::KeyRefused(_))));
    let r = protect_profile(
        &f.plain,
        &f.gw.key,
        &f.gw.cert,
        &weak.cert,
        XmlCipher::default(),
    );
    assert!(matches!(r, Err(XmlError::KeyRefused(_))));
    assert!(matches!(
        open_profile(&f.protected, &weak.key, &f.gw.cert),
        Err(XmlError::KeyRefused(_))
    ));
    assert!(matches!(
        open_profile(&f.protected, &f.platform.key, &weak.cert),
        Err(XmlError::KeyRefused(_))
    ));
    assert!(matches!(
        sign_document(&f.plain, &weak.key, &weak.cert),
        Err(XmlError::KeyRefused(_))
    ));
    // A valid 1024-bit signature (made with openssl outside our API) is refused too.
    let r = verify_signature(&f.protected, &weak.cert);
    assert!(matches!(r, Err(XmlError::KeyRefused(_))));
}

#[test]
fn a_signer_certificate_that_does_not_match_the_signing_key_is_refused() {
    let f = fixture();
    let r = protect_profile(
        &f.plain,
        &f.gw.key,
        &f.platform.cert,
        &f.platform.cert,
        XmlCipher::default(),
    );
    assert!(matches!(r, Err(XmlError::KeyRefused(_))));
}

// ---- Decryption failures -------------------------------------------------------------------

fn wrap(cert: &openssl::x509::X509, key: &[u8]) -> Vec<u8> {
    let pk = cert.public_key().unwrap();
    let mut e = Encrypter::new(&pk).unwrap();
    e.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    e.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
    e.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
    let mut out = vec![0u8; e.encrypt_len(key).unwrap()];
    let n = e.encrypt(key, &mut out).unwrap();
    out.truncate(n);
    out
}

/// AES-128-CBC without padding over `padded` (the caller supplies the padding).
fn cbc_raw(key: &[u8], iv: &[u8], padded: &[u8]) -> Vec<u8> {
    let mut c = Crypter::new(Cipher::aes_128_cbc(), Mode::Encrypt, key, Some(iv)).unwrap();
    c.pad(false);
    let mut out = vec![0u8; padded.len() + 16];
    let mut n = c.update(padded, &mut out).unwrap();
    n += c.finalize(&mut out[n..]).unwrap();
    out.truncate(n);
    let mut r = iv.to_vec();
    r.extend_from_slice(&out);
    r
}

fn encrypted_doc(wrapped: &[u8], data: &[u8]) -> String {
    format!(
        "<r xmlns=\"urn:x\"><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Id=\"body\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\"><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#rsa-oaep\"><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><xenc11:MGF xmlns:xenc11=\"http://www.w3.org/2009/xmlenc11#\" Algorithm=\"http://www.w3.org/2009/xmlenc11#mgf1sha256\"/></xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></r>",
        B64.encode(wrapped),
        B64.encode(data)
    )
}

#[test]
fn the_xml_encryption_padding_rule_accepts_arbitrary_pad_bytes() {
    let f = fixture();
    let key = [7u8; 16];
    let iv = [9u8; 16];
    let mut padded = b"<b>\xe6\xb0\xb4\xe9\x81\x93</b>".to_vec(); // <b>水道</b>
    let n = 16 - padded.len() % 16;
    padded.extend((0..n - 1).map(|i| 0xA0 + i as u8));
    padded.push(n as u8);
    let doc = encrypted_doc(&wrap(&f.platform.cert, &key), &cbc_raw(&key, &iv, &padded));
    assert_eq!(
        decrypt_document(&doc, &f.platform.key).unwrap(),
        "<r xmlns=\"urn:x\"><b>水道</b></r>"
    );
}

#[test]
fn every_decryption_failure_is_one_indistinguishable_error() {
    let f = fixture();
    let other = shared(2);
    let key = [7u8; 16];
    let iv = [9u8; 16];
    let body = b"<b>0123456789abcdef0123456789</b>".to_vec();
    let pad = |mut v: Vec<u8>, last: u8| {
        let n = 16 - v.len() % 16;
        v.extend(std::iter::repeat_n(last, n));
        v
    };
    let good = encrypted_doc(
        &wrap(&f.platform.cert, &key),
        &cbc_raw(&key, &iv, &pad(body.clone(), (16 - body.len() % 16) as u8)),
    );
    assert!(decrypt_document(&good, &f.platform.key).is_ok());
    let mut random_wrapped = vec![0u8; 256];
    openssl::rand::rand_bytes(&mut random_wrapped).unwrap();
    let cases = [
        (
            "pad byte 0",
            encrypted_doc(
                &wrap(&f.platform.cert, &key),
                &cbc_raw(&key, &iv, &pad(body.clone(), 0)),
            ),
        ),
        (
            "pad byte 17",
            encrypted_doc(
                &wrap(&f.platform.cert, &key),
                &cbc_raw(&key, &iv, &pad(body.clone(), 17)),
            ),
        ),
        (
            "random OAEP block",
            encrypted_doc(&random_wrapped, &cbc_raw(&key, &iv, &pad(body.clone(), 3))),
        ),
        (
            "wrapped for another key",
            encrypted_doc(
                &wrap(&other.cert, &key),
                &cbc_raw(&key, &iv, &pad(body.clone(), 3)),
            ),
        ),
        (
            "wrong session key length",
            encrypted_doc(
                &wrap(&f.platform.cert, &[7u8; 32]),
                &cbc_raw(&key, &iv, &pad(body.clone(), 3)),
            ),
        ),
        (
            "plaintext is not XML",
            encrypted_doc(
                &wrap(&f.platform.cert, &key),
                &cbc_raw(&key, &iv, &pad(b"not xml at all".to_vec(), 2)),
            ),
        ),
        (
            "plaintext is not UTF-8",
            encrypted_doc(
                &wrap(&f.platform.cert, &key),
                &cbc_raw(&key, &iv, &pad(b"<b>\xff</b>".to_vec(), 8)),
            ),
        ),
        (
            "ciphertext not a block multiple",
            encrypted_doc(
                &wrap(&f.platform.cert, &key),
                &cbc_raw(&key, &iv, &pad(body.clone(), 3))[..40],
            ),
        ),
        ("IV only", encrypted_doc(&wrap(&f.platform.cert, &key), &iv)),
    ];
    let mut messages = Vec::new();
    for (what, doc) in &cases {
        let e = decrypt_document(doc, &f.platform.key).unwrap_err();
        assert!(matches!(e, XmlError::Decryption), "{what}: {e:?}");
        messages.push(e.to_string());
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "decryption errors are distinguishable: {messages:?}"
    );
    // Through the profile API a wrong recipient key gives the same error after verification.
    let r = open_profile(&f.protected, &other.key, &f.gw.cert);
    assert!(matches!(r, Err(XmlError::Decryption)));
}
