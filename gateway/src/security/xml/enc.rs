//! XML Encryption of one element (SEC-XML-ENC-1, SEC-XML-ENC-2; 表 4-2, 4-3).
//!
//! Encrypt: the target element (found by its `Id`) is serialized with exclusive c14n (so the
//! plaintext is self-contained: it declares every namespace it uses), encrypted with a fresh
//! random AES-128/192/256 key and a random IV in CBC mode (IV prefixed to the ciphertext,
//! PKCS#7 padding — a special case of the XML Encryption padding rule), and replaced by an
//! `xenc:EncryptedData Type="…#Element"` carrying the same `Id`. The session key is wrapped for
//! the recipient certificate's RSA key (≥ 2048 bits) with xmlenc11 `rsa-oaep`, DigestMethod
//! sha256 and MGF `mgf1sha256`, in `ds:KeyInfo/xenc:EncryptedKey`.
//!
//! Decrypt accepts key transport `rsa-oaep-mgf1p` (SHA-1, optional DigestMethod sha1) and
//! xmlenc11 `rsa-oaep` with DigestMethod sha1 or sha256 and MGF mgf1sha1 or mgf1sha256
//! (defaults sha1); refused: `rsa-1_5` and anything else, OAEPparams, CipherReference,
//! Type other than Element, more than one EncryptedKey. The XML Encryption padding rule is
//! applied on decryption: the last byte gives the pad length (1..=16), the other pad bytes are
//! arbitrary. Every failure from key unwrapping to parsing the plaintext is the one
//! [`XmlError::Decryption`]; a failed OAEP unwrap continues with a random key so that the
//! error and its timing do not say which step failed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::encrypt::{Decrypter, Encrypter};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use openssl::x509::X509;

use super::c14n::canonicalize;
use super::dsig::{b64_text, find_by_id, only_attrs, strict_children};
use super::ns::{
    AES128_CBC, AES192_CBC, AES256_CBC, DS, MGF1_SHA1, MGF1_SHA256, RSA_OAEP_MGF1P, RSA_OAEP11,
    SHA1, SHA256, TYPE_ELEMENT, XENC, XENC11,
};
use super::tree::{self, Document, Element, Node, NsBinding, scope_of};
use super::{XmlError, check_rsa_key};

/// Block cipher for the element content (表 4-2). Default AES-128-CBC (DES-PROF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum XmlCipher {
    /// `http://www.w3.org/2001/04/xmlenc#aes128-cbc`.
    #[default]
    Aes128Cbc,
    /// `http://www.w3.org/2001/04/xmlenc#aes192-cbc`.
    Aes192Cbc,
    /// `http://www.w3.org/2001/04/xmlenc#aes256-cbc`.
    Aes256Cbc,
}

impl XmlCipher {
    /// The XML Encryption algorithm URI.
    pub fn uri(self) -> &'static str {
        match self {
            XmlCipher::Aes128Cbc => AES128_CBC,
            XmlCipher::Aes192Cbc => AES192_CBC,
            XmlCipher::Aes256Cbc => AES256_CBC,
        }
    }

    /// Parses an algorithm URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            AES128_CBC => Some(XmlCipher::Aes128Cbc),
            AES192_CBC => Some(XmlCipher::Aes192Cbc),
            AES256_CBC => Some(XmlCipher::Aes256Cbc),
            _ => None,
        }
    }

    fn openssl(self) -> Cipher {
        match self {
            XmlCipher::Aes128Cbc => Cipher::aes_128_cbc(),
            XmlCipher::Aes192Cbc => Cipher::aes_192_cbc(),
            XmlCipher::Aes256Cbc => Cipher::aes_256_cbc(),
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            XmlCipher::Aes128Cbc => 16,
            XmlCipher::Aes192Cbc => 24,
            XmlCipher::Aes256Cbc => 32,
        }
    }
}

/// Encrypts the element carrying `Id="id"` for `recipient` and returns the document
/// (SEC-XML-ENC-1).
pub fn encrypt_element_by_id(
    xml: &str,
    id: &str,
    recipient: &X509,
    cipher: XmlCipher,
) -> Result<String, XmlError> {
    let mut doc = tree::parse(xml)?;
    encrypt_tree(&mut doc, id, recipient, cipher)?;
    Ok(tree::serialize(&doc))
}

/// Decrypts every `xenc:EncryptedData` (Type Element) of the document with `key` and returns
/// the document with the plaintext elements put back (SEC-XML-ENC-2).
pub fn decrypt_document(xml: &str, key: &PKey<Private>) -> Result<String, XmlError> {
    let mut doc = tree::parse(xml)?;
    decrypt_tree(&mut doc, key)?;
    Ok(tree::serialize(&doc))
}

fn replace_by_ptr(el: &mut Element, target: *const Element, new: &mut Option<Element>) -> bool {
    for c in el.children.iter_mut() {
        if let Node::Element(e) = c {
            if std::ptr::eq(e, target) {
                if let Some(n) = new.take() {
                    *e = n;
                }
                return true;
            }
            if replace_by_ptr(e, target, new) {
                return true;
            }
        }
    }
    false
}

pub(crate) fn encrypt_tree(
    doc: &mut Document,
    id: &str,
    recipient: &X509,
    cipher: XmlCipher,
) -> Result<(), XmlError> {
    let public = recipient.public_key()?;
    check_rsa_key(&public)?;
    let (anc, target) = find_by_id(&doc.root, id)?;
    if anc.is_empty() {
        return Err(XmlError::Structure(
            "cannot encrypt the document element".into(),
        ));
    }
    let plaintext = canonicalize(target, &scope_of(&anc), &[], None);
    let target_ptr: *const Element = target;

    let mut key = vec![0u8; cipher.key_len()];
    openssl::rand::rand_bytes(&mut key)?;
    let mut iv = [0u8; 16];
    openssl::rand::rand_bytes(&mut iv)?;
    let ct = openssl::symm::encrypt(cipher.openssl(), &key, Some(&iv), plaintext.as_bytes())?;
    let mut data = iv.to_vec();
    data.extend_from_slice(&ct);

    let mut enc = Encrypter::new(&public)?;
    enc.set_rsa_padding(Padding::PKCS1_OAEP)?;
    enc.set_rsa_oaep_md(MessageDigest::sha256())?;
    enc.set_rsa_mgf1_md(MessageDigest::sha256())?;
    let mut wrapped = vec![0u8; enc.encrypt_len(&key)?];
    let n = enc.encrypt(&key, &mut wrapped)?;
    wrapped.truncate(n);

    let mut id_attr = String::new();
    tree::escape_attr(id, &mut id_attr);
    let xml = format!(
        "<xenc:EncryptedData xmlns:xenc=\"{XENC}\" Id=\"{id_attr}\" Type=\"{TYPE_ELEMENT}\">\
<xenc:EncryptionMethod Algorithm=\"{}\"/>\
<ds:KeyInfo xmlns:ds=\"{DS}\"><xenc:EncryptedKey>\
<xenc:EncryptionMethod Algorithm=\"{RSA_OAEP11}\">\
<ds:DigestMethod Algorithm=\"{SHA256}\"/>\
<xenc11:MGF xmlns:xenc11=\"{XENC11}\" Algorithm=\"{MGF1_SHA256}\"/>\
</xenc:EncryptionMethod>\
<xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>\
</xenc:EncryptedKey></ds:KeyInfo>\
<xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>\
</xenc:EncryptedData>",
        cipher.uri(),
        B64.encode(&wrapped),
        B64.encode(&data)
    );
    let parent_scope = scope_of(&anc);
    let ed = tree::parse_fragment(&xml, &parent_scope)?;
    let mut new = Some(ed);
    if !replace_by_ptr(&mut doc.root, target_ptr, &mut new) {
        return Err(XmlError::Structure("target vanished".into()));
    }
    Ok(())
}

/// Key transport parameters accepted on input.
struct Oaep {
    md: MessageDigest,
    mgf: MessageDigest,
}

/// A parsed, policy-checked EncryptedData.
pub(crate) struct ParsedEncryptedData {
    cipher: XmlCipher,
    oaep: Oaep,
    wrapped_key: Vec<u8>,
    data: Vec<u8>,
}

fn alg(el: &Element) -> Result<&str, XmlError> {
    el.attr("Algorithm")
        .ok_or_else(|| XmlError::Structure(format!("{} without Algorithm", el.local)))
}

fn cipher_value(cd: &Element) -> Result<Vec<u8>, XmlError> {
    if !cd.is(XENC, "CipherData") {
        return Err(XmlError::Structure("expected CipherData".into()));
    }
    only_attrs(cd, &[])?;
    match strict_children(cd)?.as_slice() {
        [cv] if cv.is(XENC, "CipherValue") => {
            only_attrs(cv, &[])?;
            b64_text(cv)
        }
        _ => Err(XmlError::Structure(
            "CipherData must hold exactly one CipherValue".into(),
        )),
    }
}

fn parse_oaep(em: &Element) -> Result<Oaep, XmlError> {
    only_attrs(em, &["Algorithm"])?;
    let a = alg(em)?;
    let v11 = match a {
        RSA_OAEP_MGF1P => false,
        RSA_OAEP11 => true,
        other => return Err(XmlError::AlgorithmRefused(other.to_string())),
    };
    let mut md = MessageDigest::sha1();
    let mut mgf = MessageDigest::sha1();
    let mut seen_dm = false;
    let mut seen_mgf = false;
    for c in strict_children(em)? {
        if c.is(DS, "DigestMethod") && !seen_dm && c.children.is_empty() {
            only_attrs(c, &["Algorithm"])?;
            seen_dm = true;
            md = match alg(c)? {
                SHA1 => MessageDigest::sha1(),
                SHA256 if v11 => MessageDigest::sha256(),
                other => return Err(XmlError::AlgorithmRefused(other.to_string())),
            };
        } else if v11 && c.is(XENC11, "MGF") && !seen_mgf && c.children.is_empty() {
            only_attrs(c, &["Algorithm"])?;
            seen_mgf = true;
            mgf = match alg(c)? {
                MGF1_SHA1 => MessageDigest::sha1(),
                MGF1_SHA256 => MessageDigest::sha256(),
                other => return Err(XmlError::AlgorithmRefused(other.to_string())),
            };
        } else {
            return Err(XmlError::Structure(format!(
                "unexpected {} in key transport EncryptionMethod",
                c.local
            )));
        }
    }
    Ok(Oaep { md, mgf })
}

/// Checks an EncryptedData element against the accepted profile (before any decryption).
pub(crate) fn parse_encrypted_data(ed: &Element) -> Result<ParsedEncryptedData, XmlError> {
    if !ed.is(XENC, "EncryptedData") {
        return Err(XmlError::Structure("expected EncryptedData".into()));
    }
    only_attrs(ed, &["Id", "Type", "MimeType"])?;
    if ed.attr("Type") != Some(TYPE_ELEMENT) {
        return Err(XmlError::Structure(
            "EncryptedData Type must be Element".into(),
        ));
    }
    let kids = strict_children(ed)?;
    let [em, ki, cd] = kids.as_slice() else {
        return Err(XmlError::Structure(
            "EncryptedData must hold EncryptionMethod, KeyInfo, CipherData".into(),
        ));
    };
    if !em.is(XENC, "EncryptionMethod") || !em.children.is_empty() {
        return Err(XmlError::Structure("bad data EncryptionMethod".into()));
    }
    only_attrs(em, &["Algorithm"])?;
    let a = alg(em)?;
    let cipher = XmlCipher::from_uri(a).ok_or_else(|| XmlError::AlgorithmRefused(a.to_string()))?;
    if !ki.is(DS, "KeyInfo") {
        return Err(XmlError::Structure("expected ds:KeyInfo".into()));
    }
    only_attrs(ki, &["Id"])?;
    let ki_kids = strict_children(ki)?;
    let [ek] = ki_kids.as_slice() else {
        return Err(XmlError::Structure(
            "KeyInfo must hold exactly one EncryptedKey".into(),
        ));
    };
    if !ek.is(XENC, "EncryptedKey") {
        return Err(XmlError::Structure("expected EncryptedKey".into()));
    }
    only_attrs(ek, &["Id", "Recipient"])?;
    let ekk = strict_children(ek)?;
    let ekm = ekk
        .first()
        .filter(|e| e.is(XENC, "EncryptionMethod"))
        .ok_or_else(|| XmlError::Structure("EncryptedKey without EncryptionMethod".into()))?;
    let oaep = parse_oaep(ekm)?;
    let (ekcd, rest) = match ekk.get(1) {
        Some(k) if k.is(DS, "KeyInfo") => (ekk.get(2), &ekk[3.min(ekk.len())..]),
        _ => (ekk.get(1), &ekk[2.min(ekk.len())..]),
    };
    let ekcd = ekcd.ok_or_else(|| XmlError::Structure("EncryptedKey without CipherData".into()))?;
    let wrapped_key = cipher_value(ekcd)?;
    if !rest.is_empty() {
        return Err(XmlError::Structure(
            "unexpected content in EncryptedKey".into(),
        ));
    }
    let data = cipher_value(cd)?;
    Ok(ParsedEncryptedData {
        cipher,
        oaep,
        wrapped_key,
        data,
    })
}

/// Unwraps the session key and decrypts; every failure is [`XmlError::Decryption`].
pub(crate) fn decrypt_bytes(
    p: &ParsedEncryptedData,
    key: &PKey<Private>,
) -> Result<Vec<u8>, XmlError> {
    let klen = p.cipher.key_len();
    let unwrapped = (|| -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut d = Decrypter::new(key)?;
        d.set_rsa_padding(Padding::PKCS1_OAEP)?;
        d.set_rsa_oaep_md(p.oaep.md)?;
        d.set_rsa_mgf1_md(p.oaep.mgf)?;
        let mut out = vec![0u8; d.decrypt_len(&p.wrapped_key)?];
        let n = d.decrypt(&p.wrapped_key, &mut out)?;
        out.truncate(n);
        Ok(out)
    })();
    let session = match unwrapped {
        Ok(k) if k.len() == klen => k,
        _ => {
            // Continue with a random key: the failure surfaces later as the same error.
            let mut k = vec![0u8; klen];
            openssl::rand::rand_bytes(&mut k).map_err(|_| XmlError::Decryption)?;
            k
        }
    };
    if p.data.len() < 32 || p.data.len() % 16 != 0 {
        return Err(XmlError::Decryption);
    }
    let (iv, ct) = p.data.split_at(16);
    let cipher = p.cipher.openssl();
    let mut c = Crypter::new(cipher, Mode::Decrypt, &session, Some(iv))
        .map_err(|_| XmlError::Decryption)?;
    c.pad(false);
    let mut out = vec![0u8; ct.len() + 16];
    let mut n = c.update(ct, &mut out).map_err(|_| XmlError::Decryption)?;
    n += c
        .finalize(&mut out[n..])
        .map_err(|_| XmlError::Decryption)?;
    out.truncate(n);
    let pad = usize::from(*out.last().ok_or(XmlError::Decryption)?);
    if pad == 0 || pad > 16 || pad > out.len() {
        return Err(XmlError::Decryption);
    }
    out.truncate(out.len() - pad);
    Ok(out)
}

/// Decrypts one EncryptedData into the element it replaced (parsed in `scope`).
pub(crate) fn decrypt_element(
    ed: &Element,
    scope: &[NsBinding],
    key: &PKey<Private>,
) -> Result<Element, XmlError> {
    check_rsa_key(key)?;
    let p = parse_encrypted_data(ed)?;
    let plain = decrypt_bytes(&p, key)?;
    let text = String::from_utf8(plain).map_err(|_| XmlError::Decryption)?;
    let mut el = tree::parse_fragment(&text, scope).map_err(|_| XmlError::Decryption)?;
    // The plaintext is self-contained (c14n); drop declarations the context already makes.
    el.ns_decls.retain(|(p, u)| {
        let inherited = scope
            .iter()
            .rev()
            .find(|(q, _)| q == p)
            .map_or("", |(_, v)| v.as_str());
        inherited != u
    });
    Ok(el)
}

pub(crate) fn decrypt_tree(doc: &mut Document, key: &PKey<Private>) -> Result<(), XmlError> {
    loop {
        let found = doc
            .root
            .find_all(&|e: &Element| e.is(XENC, "EncryptedData"));
        let Some((anc, ed)) = found.first() else {
            return Ok(());
        };
        if anc.is_empty() {
            return Err(XmlError::Structure(
                "the document element is EncryptedData".into(),
            ));
        }
        let plain = decrypt_element(ed, &scope_of(anc), key)?;
        let ptr: *const Element = *ed;
        let mut new = Some(plain);
        if !replace_by_ptr(&mut doc.root, ptr, &mut new) {
            return Err(XmlError::Structure("EncryptedData vanished".into()));
        }
    }
}
