//! XML data security (GW §4.1, 表 4-2, 4-3, 4-8): XML Signature and XML Encryption of data
//! profiles, requirements SEC-XML-SIG-1, SEC-XML-SIG-2, SEC-XML-ENC-1, SEC-XML-ENC-2.
//!
//! - [`tree`]: hardened parser (no DTD, no external or custom entities, no PIs, limits) with
//!   namespace resolution;
//! - [`c14n`]: Exclusive XML Canonicalization 1.0 without comments;
//! - [`dsig`]: enveloped XML Signature, rsa-sha256 / exc-c14n / sha256, `URI=""` or `URI="#id"`,
//!   verified only with a caller-given certificate;
//! - [`enc`]: XML Encryption of one element (`Type=…#Element`), AES-128/192/256-CBC, session
//!   key wrapped with RSA-OAEP (sent: xmlenc11 `rsa-oaep` + SHA-256 + MGF1-SHA-256; accepted
//!   also `rsa-oaep-mgf1p` and xmlenc11 `rsa-oaep` with SHA-1);
//! - [`profile`]: the DESIGN.md (DES-PROF) XML profile protection, encrypt-then-sign:
//!   [`protect_profile`] and [`open_profile`].
//!
//! Certificate path validation (SEC-CERT-2) is the caller's job: every certificate passed in
//! here is taken as already validated. RSA keys shorter than 2048 bits are refused.

pub mod c14n;
pub mod dsig;
pub mod enc;
pub mod profile;
pub mod tree;

pub use dsig::{
    SignedReference, VerifiedSignature, sign_document, sign_element_by_id, verify_signature,
};
pub use enc::{XmlCipher, decrypt_document, encrypt_element_by_id};
pub use profile::{open_profile, protect_profile};

use openssl::pkey::{HasPublic, PKeyRef};

/// Errors of the XML security layer. Any decryption failure is the single variant
/// [`XmlError::Decryption`] so that callers cannot build a padding or OAEP oracle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// SEC-XML-SIG-2/ENC-2: the input is not well-formed namespace-aware XML 1.0 (UTF-8).
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// SEC-XML hardening: a document type declaration (DTD) is present; DTDs are refused.
    #[error("DTD refused")]
    DtdRefused,
    /// SEC-XML hardening: a reference to an entity other than the predefined five.
    #[error("entity reference refused: {0}")]
    EntityRefused(String),
    /// SEC-XML hardening: a processing instruction other than the leading XML declaration.
    #[error("processing instruction refused")]
    ProcessingInstructionRefused,
    /// SEC-XML hardening: a parser limit (size, depth, attributes, elements) was exceeded.
    #[error("XML limit exceeded: {0}")]
    LimitExceeded(&'static str),
    /// SEC-XML-SIG-1/ENC-1 (表 4-2, 4-3, 4-8): an algorithm or transform outside the profile.
    #[error("algorithm refused: {0}")]
    AlgorithmRefused(String),
    /// SEC-XML-ENC-1 / SIG-1 (表 4-3, 4-8): a key is not RSA or shorter than 2048 bits.
    #[error("key refused: {0}")]
    KeyRefused(&'static str),
    /// SEC-XML-SIG-2 / DES-PROF: the document structure differs from the expected layout
    /// (signature wrapping, duplicate Ids, missing or extra elements).
    #[error("structure refused: {0}")]
    Structure(String),
    /// SEC-XML-SIG-2: the signed content does not match its DigestValue.
    #[error("digest mismatch")]
    DigestMismatch,
    /// SEC-XML-SIG-2: the SignatureValue does not verify with the caller's certificate.
    #[error("signature invalid")]
    SignatureInvalid,
    /// SEC-XML-ENC-2: decryption failed (key transport, padding, key size or plaintext);
    /// deliberately one indistinguishable variant.
    #[error("decryption failed")]
    Decryption,
    /// SEC-XML-SIG-1/ENC-1: the crypto library failed while protecting (not on input data).
    #[error("crypto failure: {0}")]
    Crypto(String),
}

impl From<openssl::error::ErrorStack> for XmlError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        XmlError::Crypto(e.to_string())
    }
}

/// Refuses non-RSA keys and RSA keys shorter than 2048 bits (表 4-3, 4-8: RSA 2048).
pub(crate) fn check_rsa_key<T: HasPublic>(key: &PKeyRef<T>) -> Result<(), XmlError> {
    let rsa = key
        .rsa()
        .map_err(|_| XmlError::KeyRefused("not an RSA key"))?;
    if rsa.size() < 256 {
        return Err(XmlError::KeyRefused("RSA key shorter than 2048 bits"));
    }
    Ok(())
}

/// Namespace and algorithm identifiers used by this module.
pub mod ns {
    /// XML Signature namespace.
    pub const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
    /// XML Encryption namespace.
    pub const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
    /// XML Encryption 1.1 namespace.
    pub const XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
    /// Exclusive c14n without comments.
    pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
    /// Enveloped-signature transform.
    pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    /// SHA-256 digest.
    pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
    /// SHA-1 digest (accepted only inside RSA-OAEP).
    pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
    /// RSA-OAEP with MGF1-SHA-1 (XML Encryption 1.0).
    pub const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
    /// RSA-OAEP (XML Encryption 1.1), DigestMethod and MGF selectable.
    pub const RSA_OAEP11: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
    /// MGF1 with SHA-1.
    pub const MGF1_SHA1: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha1";
    /// MGF1 with SHA-256.
    pub const MGF1_SHA256: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha256";
    /// AES-128-CBC.
    pub const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
    /// AES-192-CBC.
    pub const AES192_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes192-cbc";
    /// AES-256-CBC.
    pub const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
    /// `Type` of an encrypted element.
    pub const TYPE_ELEMENT: &str = "http://www.w3.org/2001/04/xmlenc#Element";
    /// Data profile namespace (DES-PROF).
    pub const SGW: &str = "urn:sgw:profile:v1";
}
