//! Enveloped XML Signature (SEC-XML-SIG-1, SEC-XML-SIG-2; 表 4-8).
//!
//! Sent and accepted, nothing else: SignatureMethod rsa-sha256 (RSASSA-PKCS1-v1_5, SHA-256,
//! RSA ≥ 2048 bits), CanonicalizationMethod exc-c14n without comments, exactly one Reference
//! with `URI=""` (whole document) or `URI="#id"` (the single element whose `Id` is `id`),
//! Transforms exactly `[enveloped-signature, exc-c14n]` or `[exc-c14n]` (an
//! InclusiveNamespaces PrefixList is honoured), DigestMethod sha256. The signature is appended
//! as the last child of the document element, with KeyInfo/X509Data/X509Certificate.
//!
//! Verification uses only the caller-given certificate's public key: the embedded
//! certificate is never used to verify; KeyInfo may hold only X509Data/X509Certificate, and an
//! embedded certificate must equal the caller's (so no byte of the document goes unchecked). Refused: more than one Signature in the document,
//! more than one Reference, ds:Object, XPath/XSLT/base64/inclusive-c14n transforms,
//! XPointer URIs, an `Id` value carried by more than one element (also `ID`/`id`), non-
//! whitespace text inside the signature's structure. The caller receives the exact canonical
//! octets that were digested ([`VerifiedSignature::signed_c14n`]): what is used is exactly
//! what was signed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{PKey, Private};
use openssl::sign::{Signer, Verifier};
use openssl::x509::X509;

use super::c14n::canonicalize;
use super::ns::{DS, ENVELOPED, EXC_C14N, RSA_SHA256, SHA256};
use super::tree::{self, Document, Element, Node, NsBinding, scope_of};
use super::{XmlError, check_rsa_key};

/// What a verified signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedReference {
    /// `URI=""`: the whole document minus the signature.
    Document,
    /// `URI="#id"`: the single element carrying `Id="id"`.
    Element(String),
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// What the Reference pointed at.
    pub reference: SignedReference,
    /// The exclusive-c14n octets that were digested (the signed content, self-contained).
    pub signed_c14n: String,
}

/// Signs the whole document (`URI=""`, enveloped) and returns it with the signature appended
/// as the last child of the document element (SEC-XML-SIG-1).
///
/// Refuses a document that already holds a `ds:Signature`, a key that is not RSA ≥ 2048 and
/// a certificate whose public key is not the signing key's.
pub fn sign_document(xml: &str, key: &PKey<Private>, cert: &X509) -> Result<String, XmlError> {
    let mut doc = tree::parse(xml)?;
    sign_tree(&mut doc, None, key, cert)?;
    Ok(tree::serialize(&doc))
}

/// Signs the element carrying `Id="id"` (`URI="#id"`); the signature is appended as the last
/// child of the document element (SEC-XML-SIG-1).
pub fn sign_element_by_id(
    xml: &str,
    id: &str,
    key: &PKey<Private>,
    cert: &X509,
) -> Result<String, XmlError> {
    let mut doc = tree::parse(xml)?;
    sign_tree(&mut doc, Some(id), key, cert)?;
    Ok(tree::serialize(&doc))
}

/// Verifies the document's single signature with `cert` (SEC-XML-SIG-2).
pub fn verify_signature(xml: &str, cert: &X509) -> Result<VerifiedSignature, XmlError> {
    let doc = tree::parse(xml)?;
    verify_tree(&doc, cert)
}

fn is_id_attr(name: &str) -> bool {
    matches!(name, "Id" | "ID" | "id")
}

/// Finds the single element carrying `id` in an `Id`/`ID`/`id`/`xml:id` attribute; refuses
/// duplicates.
pub(crate) fn find_by_id<'a>(
    root: &'a Element,
    id: &str,
) -> Result<(Vec<&'a Element>, &'a Element), XmlError> {
    // `xml:id` counts too: libxml2 (hence xmlsec) always treats it as an ID.
    let mut hits = root.find_all(&|e: &Element| {
        e.attrs.iter().any(|a| {
            a.value == id
                && match a.ns.as_deref() {
                    None => is_id_attr(&a.local),
                    Some(ns) => ns == tree::XML_NS && a.local == "id",
                }
        })
    });
    match hits.len() {
        0 => Err(XmlError::Structure(format!("no element with Id {id:?}"))),
        1 => Ok(hits.remove(0)),
        _ => Err(XmlError::Structure(format!(
            "Id {id:?} is carried by more than one element"
        ))),
    }
}

pub(crate) fn sign_tree(
    doc: &mut Document,
    id: Option<&str>,
    key: &PKey<Private>,
    cert: &X509,
) -> Result<(), XmlError> {
    check_rsa_key(key)?;
    let cert_key = cert.public_key()?;
    if !cert_key.public_eq(key) {
        return Err(XmlError::KeyRefused(
            "signer certificate does not match the key",
        ));
    }
    if !doc
        .root
        .find_all(&|e: &Element| e.is(DS, "Signature"))
        .is_empty()
    {
        return Err(XmlError::Structure("document is already signed".into()));
    }
    let (uri, c14n) = match id {
        None => (String::new(), canonicalize(&doc.root, &[], &[], None)),
        Some(id) => {
            if id.is_empty() || id.contains(['(', ')', '#', ' ']) {
                return Err(XmlError::Structure("bad Id".into()));
            }
            let (anc, el) = find_by_id(&doc.root, id)?;
            (
                format!("#{id}"),
                canonicalize(el, &scope_of(&anc), &[], None),
            )
        }
    };
    let digest = hash(MessageDigest::sha256(), c14n.as_bytes())?;
    let mut uri_attr = String::new();
    tree::escape_attr(&uri, &mut uri_attr);
    let signed_info = format!(
        "<ds:SignedInfo xmlns:ds=\"{DS}\">\
<ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/>\
<ds:SignatureMethod Algorithm=\"{RSA_SHA256}\"/>\
<ds:Reference URI=\"{uri_attr}\"><ds:Transforms>\
<ds:Transform Algorithm=\"{ENVELOPED}\"/><ds:Transform Algorithm=\"{EXC_C14N}\"/>\
</ds:Transforms><ds:DigestMethod Algorithm=\"{SHA256}\"/>\
<ds:DigestValue>{}</ds:DigestValue></ds:Reference></ds:SignedInfo>",
        B64.encode(digest)
    );
    let si = tree::parse_fragment(&signed_info, &[])?;
    let si_c14n = canonicalize(&si, &[], &[], None);
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    signer.update(si_c14n.as_bytes())?;
    let sig = signer.sign_to_vec()?;
    let cert_b64 = B64.encode(cert.to_der()?);
    // Re-parse the whole signature so that SignedInfo carries no redundant declaration.
    let signed_info_inner = signed_info.replacen(&format!(" xmlns:ds=\"{DS}\""), "", 1);
    let signature = format!(
        "<ds:Signature xmlns:ds=\"{DS}\">{signed_info_inner}\
<ds:SignatureValue>{}</ds:SignatureValue>\
<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate>\
</ds:X509Data></ds:KeyInfo></ds:Signature>",
        B64.encode(sig)
    );
    let root_scope = scope_of(&[&doc.root]);
    let sig_el = tree::parse_fragment(&signature, &root_scope)?;
    doc.root.children.push(Node::Element(sig_el));
    Ok(())
}

/// Element children of `el`, refusing non-whitespace text between them.
pub(crate) fn strict_children(el: &Element) -> Result<Vec<&Element>, XmlError> {
    if !el.only_whitespace_text() {
        return Err(XmlError::Structure(format!(
            "unexpected text in {}",
            el.local
        )));
    }
    Ok(el.child_elements().collect())
}

/// Refuses attributes other than `allowed` (unprefixed names).
pub(crate) fn only_attrs(el: &Element, allowed: &[&str]) -> Result<(), XmlError> {
    for a in &el.attrs {
        if a.ns.is_some() || !allowed.contains(&a.local.as_str()) {
            return Err(XmlError::Structure(format!(
                "unexpected attribute {} on {}",
                a.local, el.local
            )));
        }
    }
    Ok(())
}

fn expect<'a>(el: Option<&&'a Element>, ns: &str, local: &str) -> Result<&'a Element, XmlError> {
    match el {
        Some(e) if e.is(ns, local) => Ok(e),
        _ => Err(XmlError::Structure(format!("expected {local}"))),
    }
}

/// Decodes base64 content that may be wrapped with whitespace.
pub(crate) fn b64_text(el: &Element) -> Result<Vec<u8>, XmlError> {
    if el.child_elements().next().is_some() {
        return Err(XmlError::Structure(format!("elements inside {}", el.local)));
    }
    let t: String = el
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    B64.decode(t)
        .map_err(|_| XmlError::Structure(format!("bad base64 in {}", el.local)))
}

fn algorithm(el: &Element) -> Result<&str, XmlError> {
    el.attr("Algorithm")
        .ok_or_else(|| XmlError::Structure(format!("{} without Algorithm", el.local)))
}

/// Parses an exc-c14n method element: Algorithm must be exc-c14n; optional
/// InclusiveNamespaces child with PrefixList.
fn exc_c14n_prefixes(el: &Element) -> Result<Vec<String>, XmlError> {
    only_attrs(el, &["Algorithm"])?;
    let alg = algorithm(el)?;
    if alg != EXC_C14N {
        return Err(XmlError::AlgorithmRefused(alg.to_string()));
    }
    let kids = strict_children(el)?;
    match kids.as_slice() {
        [] => Ok(Vec::new()),
        [inc] if inc.is(EXC_C14N, "InclusiveNamespaces") && inc.children.is_empty() => {
            only_attrs(inc, &["PrefixList"])?;
            Ok(inc
                .attr("PrefixList")
                .unwrap_or("")
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect())
        }
        _ => Err(XmlError::Structure(
            "unexpected content in a c14n method".into(),
        )),
    }
}

/// A parsed, policy-checked Signature element.
pub(crate) struct ParsedSignature<'a> {
    pub signature: &'a Element,
    pub key_info: Option<&'a Element>,
    pub signed_info: &'a Element,
    pub si_prefixes: Vec<String>,
    pub uri: String,
    pub enveloped: bool,
    pub ref_prefixes: Vec<String>,
    pub digest: Vec<u8>,
    pub value: Vec<u8>,
}

pub(crate) fn parse_signature(sig: &Element) -> Result<ParsedSignature<'_>, XmlError> {
    only_attrs(sig, &["Id"])?;
    let kids = strict_children(sig)?;
    let signed_info = expect(kids.first(), DS, "SignedInfo")?;
    let sig_value = expect(kids.get(1), DS, "SignatureValue")?;
    only_attrs(sig_value, &["Id"])?;
    let key_info = match kids.len() {
        2 => None,
        3 if kids[2].is(DS, "KeyInfo") => Some(kids[2]),
        _ => {
            return Err(XmlError::Structure(
                "Signature holds elements other than SignedInfo, SignatureValue, KeyInfo".into(),
            ));
        }
    };
    only_attrs(signed_info, &["Id"])?;
    let si = strict_children(signed_info)?;
    let cm = expect(si.first(), DS, "CanonicalizationMethod")?;
    let si_prefixes = exc_c14n_prefixes(cm)?;
    let sm = expect(si.get(1), DS, "SignatureMethod")?;
    only_attrs(sm, &["Algorithm"])?;
    let sm_alg = algorithm(sm)?;
    if sm_alg != RSA_SHA256 {
        return Err(XmlError::AlgorithmRefused(sm_alg.to_string()));
    }
    if !sm.children.is_empty() {
        return Err(XmlError::Structure("content in SignatureMethod".into()));
    }
    if si.len() != 3 {
        return Err(XmlError::Structure(
            "SignedInfo must hold exactly one Reference".into(),
        ));
    }
    let reference = expect(si.get(2), DS, "Reference")?;
    only_attrs(reference, &["URI", "Id", "Type"])?;
    let uri = reference
        .attr("URI")
        .ok_or_else(|| XmlError::Structure("Reference without URI".into()))?
        .to_string();
    if !(uri.is_empty()
        || (uri.len() > 1 && uri.starts_with('#') && !uri.contains(['(', ')', ' '])))
    {
        return Err(XmlError::Structure(format!(
            "Reference URI {uri:?} refused"
        )));
    }
    let rk = strict_children(reference)?;
    let (transforms, rest) = match rk.first() {
        Some(t) if t.is(DS, "Transforms") => (Some(*t), &rk[1..]),
        _ => (None, &rk[..]),
    };
    let mut enveloped = false;
    let mut ref_prefixes = None;
    if let Some(t) = transforms {
        only_attrs(t, &[])?;
        let ts = strict_children(t)?;
        for (i, tr) in ts.iter().enumerate() {
            if !tr.is(DS, "Transform") {
                return Err(XmlError::Structure(
                    "unexpected element in Transforms".into(),
                ));
            }
            let alg = algorithm(tr)?;
            if alg == ENVELOPED && i == 0 && ts.len() == 2 {
                only_attrs(tr, &["Algorithm"])?;
                if !tr.children.is_empty() {
                    return Err(XmlError::Structure("content in a Transform".into()));
                }
                enveloped = true;
            } else if alg == EXC_C14N && i + 1 == ts.len() {
                ref_prefixes = Some(exc_c14n_prefixes(tr)?);
            } else {
                return Err(XmlError::AlgorithmRefused(format!("transform {alg}")));
            }
        }
    }
    let ref_prefixes = ref_prefixes.ok_or_else(|| {
        XmlError::AlgorithmRefused("Reference without an exc-c14n transform".into())
    })?;
    let dm = expect(rest.first(), DS, "DigestMethod")?;
    only_attrs(dm, &["Algorithm"])?;
    let dm_alg = algorithm(dm)?;
    if dm_alg != SHA256 {
        return Err(XmlError::AlgorithmRefused(dm_alg.to_string()));
    }
    if !dm.children.is_empty() {
        return Err(XmlError::Structure("content in DigestMethod".into()));
    }
    let dv = expect(rest.get(1), DS, "DigestValue")?;
    if rest.len() != 2 {
        return Err(XmlError::Structure(
            "unexpected element in Reference".into(),
        ));
    }
    let digest = b64_text(dv)?;
    let value = b64_text(sig_value)?;
    Ok(ParsedSignature {
        signature: sig,
        key_info,
        signed_info,
        si_prefixes,
        uri,
        enveloped,
        ref_prefixes,
        digest,
        value,
    })
}

/// Checks KeyInfo: only `X509Data/X509Certificate` is accepted, and when certificates are
/// embedded one of them must be the caller's certificate (the embedded one is never used to
/// verify, but an embedded certificate that differs means the document is not what we expect).
/// Returns the number of embedded certificates.
fn check_key_info(ki: &Element, cert_der: &[u8]) -> Result<usize, XmlError> {
    only_attrs(ki, &["Id"])?;
    let mut certs = 0usize;
    let mut matches = 0usize;
    for data in strict_children(ki)? {
        if !data.is(DS, "X509Data") {
            return Err(XmlError::Structure(format!(
                "KeyInfo child {} refused",
                data.local
            )));
        }
        only_attrs(data, &[])?;
        for c in strict_children(data)? {
            if !c.is(DS, "X509Certificate") {
                return Err(XmlError::Structure(format!(
                    "X509Data child {} refused",
                    c.local
                )));
            }
            only_attrs(c, &[])?;
            certs += 1;
            if b64_text(c)? == cert_der {
                matches += 1;
            }
        }
    }
    if certs > 0 && matches == 0 {
        return Err(XmlError::Structure(
            "the embedded certificate is not the expected signer certificate".into(),
        ));
    }
    Ok(certs)
}

/// Verifies and returns, besides the result, how many certificates KeyInfo embedded.
pub(crate) fn verify_tree(doc: &Document, cert: &X509) -> Result<VerifiedSignature, XmlError> {
    verify_tree_counting(doc, cert).map(|(v, _)| v)
}

pub(crate) fn verify_tree_counting(
    doc: &Document,
    cert: &X509,
) -> Result<(VerifiedSignature, usize), XmlError> {
    let public = cert.public_key()?;
    check_rsa_key(&public)?;
    let sigs = doc.root.find_all(&|e: &Element| e.is(DS, "Signature"));
    let (sig_anc, sig) = match sigs.as_slice() {
        [one] => (one.0.clone(), one.1),
        [] => return Err(XmlError::Structure("no Signature".into())),
        _ => return Err(XmlError::Structure("more than one Signature".into())),
    };
    let p = parse_signature(sig)?;
    let embedded = match p.key_info {
        Some(ki) => check_key_info(ki, &cert.to_der()?)?,
        None => 0,
    };

    // 1. SignatureValue over the canonical SignedInfo, with the caller's key only.
    let mut si_anc = sig_anc.clone();
    si_anc.push(sig);
    let si_c14n = canonicalize(p.signed_info, &scope_of(&si_anc), &p.si_prefixes, None);
    let mut verifier = Verifier::new(MessageDigest::sha256(), &public)?;
    verifier.update(si_c14n.as_bytes())?;
    if !verifier.verify(&p.value).unwrap_or(false) {
        return Err(XmlError::SignatureInvalid);
    }

    // 2. The reference.
    let (reference, anc, target): (SignedReference, Vec<&Element>, &Element) = if p.uri.is_empty() {
        (SignedReference::Document, Vec::new(), &doc.root)
    } else {
        let id = &p.uri[1..];
        let (anc, el) = find_by_id(&doc.root, id)?;
        (SignedReference::Element(id.to_string()), anc, el)
    };
    let inside =
        std::ptr::eq(target, p.signature) || sig_anc.iter().any(|a| std::ptr::eq(*a, target));
    if std::ptr::eq(target, p.signature) || (inside && !p.enveloped) {
        return Err(XmlError::Structure(
            "the Reference covers the Signature itself".into(),
        ));
    }
    let inherited: Vec<NsBinding> = scope_of(&anc);
    let exclude = if p.enveloped { Some(p.signature) } else { None };
    let c14n = canonicalize(target, &inherited, &p.ref_prefixes, exclude);
    let digest = hash(MessageDigest::sha256(), c14n.as_bytes())?;
    if p.digest.len() != digest.len() || !openssl::memcmp::eq(&p.digest, &digest) {
        return Err(XmlError::DigestMismatch);
    }
    Ok((
        VerifiedSignature {
            reference,
            signed_c14n: c14n,
        },
        embedded,
    ))
}
