//! XML data profile protection, encrypt-then-sign (DES-PROF in DESIGN.md; SEC-XML-ENC-1/2,
//! SEC-XML-SIG-1/2).
//!
//! Plain layout (whitespace-only text between the root's children is allowed):
//! `<sgw:DataProfile xmlns:sgw="urn:sgw:profile:v1"><sgw:Header Id="header">…</sgw:Header>
//! <sgw:Body Id="body">…</sgw:Body></sgw:DataProfile>`.
//! Protected layout: the Body is replaced by `xenc:EncryptedData Id="body"` (see [`super::enc`])
//! and an enveloped `ds:Signature` with `Reference URI=""` (see [`super::dsig`]) is the last
//! child of the root. [`open_profile`] verifies the signature first, then requires exactly that
//! layout (root without attributes; children exactly Header Id="header", EncryptedData
//! Id="body", Signature; no other Signature, EncryptedData or `Id="body"|"header"` anywhere;
//! KeyInfo embeds exactly the expected signer certificate), then decrypts, and requires the
//! plaintext to be `sgw:Body Id="body"` without protection elements inside. Both functions
//! return UTF-8 XML without an XML declaration; comments of the input are not kept.

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::XmlError;
use super::dsig::{SignedReference, find_by_id, sign_tree, verify_tree_counting};
use super::enc::{XmlCipher, decrypt_element, encrypt_tree};
use super::ns::{DS, SGW, XENC};
use super::tree::{self, Element, Node, scope_of};

fn structure(msg: &str) -> XmlError {
    XmlError::Structure(msg.to_string())
}

/// The root's element children, refusing non-whitespace text and attributes on the root.
fn root_children(root: &Element) -> Result<Vec<&Element>, XmlError> {
    if !root.is(SGW, "DataProfile") {
        return Err(structure("root is not sgw:DataProfile"));
    }
    if !root.attrs.is_empty() {
        return Err(structure("attributes on sgw:DataProfile"));
    }
    if !root.only_whitespace_text() {
        return Err(structure("text directly inside sgw:DataProfile"));
    }
    Ok(root.child_elements().collect())
}

fn check_header(h: &Element) -> Result<(), XmlError> {
    if !h.is(SGW, "Header") || h.attr("Id") != Some("header") || h.attrs.len() != 1 {
        return Err(structure("first child must be sgw:Header Id=\"header\""));
    }
    Ok(())
}

fn check_body(b: &Element) -> Result<(), XmlError> {
    if !b.is(SGW, "Body") || b.attr("Id") != Some("body") || b.attrs.len() != 1 {
        return Err(structure("second child must be sgw:Body Id=\"body\""));
    }
    Ok(())
}

/// Ids `header`/`body` must each appear exactly once; no Signature or EncryptedData except
/// where the layout puts them.
fn check_unique(root: &Element) -> Result<(), XmlError> {
    find_by_id(root, "header")?;
    find_by_id(root, "body")?;
    Ok(())
}

/// Protects a plain data profile: encrypts `sgw:Body` for `recipient_cert`, then signs the
/// whole document with `signer_key` (SEC-XML-ENC-1, SEC-XML-SIG-1, DES-PROF).
pub fn protect_profile(
    doc: &str,
    signer_key: &PKey<Private>,
    signer_cert: &X509,
    recipient_cert: &X509,
    cipher: XmlCipher,
) -> Result<String, XmlError> {
    let mut d = tree::parse(doc)?;
    {
        let kids = root_children(&d.root)?;
        let [h, b] = kids.as_slice() else {
            return Err(structure("sgw:DataProfile must hold Header and Body only"));
        };
        check_header(h)?;
        check_body(b)?;
        check_unique(&d.root)?;
        let foreign = d
            .root
            .find_all(&|e: &Element| e.is(DS, "Signature") || e.is(XENC, "EncryptedData"));
        if !foreign.is_empty() {
            return Err(structure(
                "plain profile already holds Signature or EncryptedData",
            ));
        }
    }
    encrypt_tree(&mut d, "body", recipient_cert, cipher)?;
    sign_tree(&mut d, None, signer_key, signer_cert)?;
    Ok(tree::serialize(&d))
}

/// Opens a protected data profile: verifies the signature with `signer_cert` first, checks
/// the layout, then decrypts with `recipient_key` and returns the plain profile
/// (SEC-XML-SIG-2, SEC-XML-ENC-2, DES-PROF).
pub fn open_profile(
    doc: &str,
    recipient_key: &PKey<Private>,
    signer_cert: &X509,
) -> Result<String, XmlError> {
    let mut d = tree::parse(doc)?;
    // 1. Authenticate before touching any ciphertext (no padding oracle).
    let (verified, embedded_certs) = verify_tree_counting(&d, signer_cert)?;
    if embedded_certs != 1 {
        return Err(structure(
            "KeyInfo must embed exactly the signer certificate",
        ));
    }
    if verified.reference != SignedReference::Document {
        return Err(structure(
            "the profile signature must cover the whole document",
        ));
    }
    // 2. Exactly the layout.
    let plain_body = {
        let kids = root_children(&d.root)?;
        let [h, ed, sig] = kids.as_slice() else {
            return Err(structure(
                "sgw:DataProfile must hold Header, EncryptedData, Signature",
            ));
        };
        check_header(h)?;
        if !ed.is(XENC, "EncryptedData") || ed.attr("Id") != Some("body") {
            return Err(structure(
                "second child must be xenc:EncryptedData Id=\"body\"",
            ));
        }
        if !sig.is(DS, "Signature") {
            return Err(structure("ds:Signature must be the last child of the root"));
        }
        check_unique(&d.root)?;
        let extra = d
            .root
            .find_all(&|e: &Element| e.is(DS, "Signature") || e.is(XENC, "EncryptedData"));
        if extra.len() != 2 {
            return Err(structure("Signature or EncryptedData outside the layout"));
        }
        // 3. Decrypt and check what came out.
        let body = decrypt_element(ed, &scope_of(&[&d.root]), recipient_key)?;
        check_body(&body)?;
        if !body
            .find_all(&|e: &Element| {
                e.is(DS, "Signature")
                    || e.is(XENC, "EncryptedData")
                    || e.attrs
                        .iter()
                        .any(|a| a.ns.is_none() && a.local == "Id" && a.value == "header")
            })
            .is_empty()
        {
            return Err(structure("decrypted Body holds protection elements or Ids"));
        }
        body
    };
    // 4. Rebuild: Header, Body; drop the signature.
    let mut body = Some(plain_body);
    let mut children = Vec::with_capacity(d.root.children.len());
    for c in std::mem::take(&mut d.root.children) {
        match c {
            Node::Element(e) if e.is(DS, "Signature") => {}
            Node::Element(e) if e.is(XENC, "EncryptedData") => {
                if let Some(b) = body.take() {
                    children.push(Node::Element(b));
                }
            }
            other => children.push(other),
        }
    }
    d.root.children = children;
    Ok(tree::serialize(&d))
}
