//! The one error type of data security (SEC-*): every refusal has its own variant, named after
//! the rule it enforces, and every variant maps to the single wire code `SECURITY_FAILED`
//! (DES-SEAL: no padding/oracle distinction across the boundary).

use crate::protocol::message::ResultCode;

/// Why a data-security operation was refused or failed.
///
/// Variants are for logs, anomaly reports and tests. A remote party only ever sees
/// [`SecurityError::wire_code`], which is the same for all of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// SEC-JSON-SIG-2 / SEC-JSON-ENC-2: the token is not a well-formed compact serialization.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// DES-SEAL: a header parameter that is refused outright (`crit`, `zip`, `jku`, `x5u`, `jwk`, …).
    #[error("refused header parameter `{0}`")]
    ForbiddenHeader(String),
    /// SEC-JSON-SIG-1 / SEC-JSON-ENC-1: `alg` or `enc` is not one this profile accepts.
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// DES-SEAL / DES-PROF: `typ` or `cty` is not the one expected for this profile.
    #[error("unexpected content type `{0}`")]
    UnexpectedType(String),
    /// DES-SEAL: the header's `kid` names no certificate we know, or not the expected one.
    #[error("unknown or unexpected key id")]
    UnknownKid,
    /// SEC-JSON-SIG-2 / SEC-FILE-SIG-2: the signer is not the identity the caller expected.
    #[error("signer does not match the expected identity")]
    SignerMismatch,
    /// SEC-JSON-SIG-2 / SEC-FILE-SIG-2 / SEC-XML-SIG-2: the signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// SEC-JSON-ENC-2 / SEC-FILE-ENC-2: decryption failed (deliberately one opaque variant).
    #[error("decryption failed")]
    DecryptionFailed,
    /// SM-DATAENC: an RSA key shorter than 2048 bits, or not an RSA key.
    #[error("RSA key too small or not RSA ({0} bits)")]
    WeakKey(u32),
    /// SEC-CERT-2: the certificate is not signed by the trusted root.
    #[error("certificate does not chain to the trusted root")]
    CertUntrusted,
    /// SEC-CERT-2: the certificate's issuer name is not the root's subject.
    #[error("certificate issuer is not the trusted root")]
    CertWrongIssuer,
    /// SM-CERTEXP: the certificate's notBefore is after `now`.
    #[error("certificate not yet valid")]
    CertNotYetValid,
    /// SM-CERTEXP: the certificate's notAfter is before `now`.
    #[error("certificate expired")]
    CertExpired,
    /// SEC-CERT-2: the certificate's serial is on the current CRL.
    #[error("certificate revoked")]
    CertRevoked,
    /// DES-CERT-4 step 3: the certificate lacks the extended key usage of the peer's role (or
    /// lists another role's), or its subject CN is not the peer's name.
    #[error("certificate is not one of the expected peer role and name")]
    CertWrongRole,
    /// DES-CERT-3: the CRL is not newer than the one held (CRL number, then thisUpdate).
    #[error("CRL is not newer than the one held")]
    CrlRollback,
    /// DES-CERT-2: a peer certificate PEM must hold exactly one certificate (no chain).
    #[error("peer certificate PEM holds {0} certificates, not exactly one")]
    NotOneCertificate(usize),
    /// DES-CERT-2: a PEM holds a block of another type than the one expected (e.g. a private
    /// key in a certificate response).
    #[error("DES-CERT-2: PEM block {found:?} where only {expected:?} blocks are allowed")]
    PemBlock {
        /// The label found (`PRIVATE KEY`, …).
        found: String,
        /// The label allowed (`CERTIFICATE` or `X509 CRL`).
        expected: &'static str,
    },
    /// SEC-CERT-2: the CRL is not signed by the trusted root (or its issuer differs).
    #[error("CRL signature invalid")]
    CrlBadSignature,
    /// SEC-CERT-2: the CRL's thisUpdate is after `now`.
    #[error("CRL not yet valid")]
    CrlNotYetValid,
    /// SEC-CERT-2: the CRL's nextUpdate is before `now` (or missing): a fresh one must be fetched.
    #[error("CRL stale")]
    CrlStale,
    /// SEC-CERT-1: no certificate is known under this peer name.
    #[error("unknown peer `{0}`")]
    UnknownPeer(String),
    /// SEC-CERT-1 / SEC-CERT-3: a key, certificate or CRL could not be parsed or loaded.
    #[error("cannot load key material: {0}")]
    KeyMaterial(String),
    /// SEC-FILE-SIG-2 / SEC-FILE-ENC-2: an entry name is absolute, has `..` or a backslash (ZIP slip).
    #[error("unsafe ZIP entry name")]
    ZipUnsafeName,
    /// SEC-FILE-SIG-2 / SEC-FILE-ENC-2: size or compression ratio over the limits (ZIP bomb).
    #[error("ZIP entry exceeds size or ratio limits")]
    ZipBomb,
    /// SEC-FILE-SIG-2 / SEC-FILE-ENC-2: two entries share one name.
    #[error("duplicate ZIP entry")]
    ZipDuplicateEntry,
    /// SEC-FILE-SIG-2 / SEC-FILE-ENC-2: an entry outside the fixed layout.
    #[error("unexpected ZIP entry")]
    ZipUnexpectedEntry,
    /// SEC-FILE-SIG-2 / SEC-FILE-ENC-2: an entry of the fixed layout is missing.
    #[error("missing ZIP entry `{0}`")]
    ZipMissingEntry(&'static str),
    /// SEC-FILE-SIG-2 / SEC-FILE-ENC-2: the ZIP container itself is unreadable.
    #[error("malformed ZIP: {0}")]
    ZipMalformed(String),
    /// SEC-FILE-SIG-2 / SEC-FILE-ENC-2: manifest unreadable, wrong format/algorithm IDs, or
    /// disagreeing with the entries (size, SHA-256).
    #[error("manifest invalid: {0}")]
    ManifestInvalid(&'static str),
    /// SEC-MASK-2: the masked text is not `m1.<keyId>.<base64url>`.
    #[error("malformed masked field")]
    MaskFormat,
    /// SEC-MASK-2: the masked text names a keyId we do not hold.
    #[error("unknown masking key id")]
    MaskUnknownKey,
    /// DES-MASK: a keyId must be 1..=16 ASCII alphanumerics; a key must be 32 bytes.
    #[error("invalid masking key or key id")]
    MaskInvalidKey,
    /// SEC-MASK-2: authentication failed (wrong key, wrong column, or tampered).
    #[error("masked field does not authenticate")]
    MaskAuthFailed,
    /// SEC-FILE-*: I/O error while streaming (the source or destination, not the crypto).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// SM-DATAENC: the cryptographic library failed unexpectedly (not input-dependent).
    #[error("crypto library failure: {0}")]
    Crypto(String),
    /// SEC-XML-SIG-2 / SEC-XML-ENC-2: the XML data profile was refused (the inner error names
    /// the rule: parser hardening, algorithm, wrapping, digest, signature or decryption).
    #[error("XML profile refused: {0}")]
    Xml(#[from] super::xml::XmlError),
}

impl SecurityError {
    /// The one result code every security failure becomes on the wire (DES-SEAL, IF-PSTART-2).
    pub fn result_code(&self) -> ResultCode {
        ResultCode::SecurityFailed
    }

    /// The wire name of [`Self::result_code`]: always `SECURITY_FAILED`.
    pub fn wire_code(&self) -> &'static str {
        self.result_code().as_str()
    }

    /// Whether this is a certificate check of DES-CERT-4 failing (or no certificate held for
    /// the peer): what a fresh certificate or CRL may cure (DES-CERT-8), unlike a malformed
    /// token or a bad signature.
    pub fn fails_certificate_check(&self) -> bool {
        matches!(
            self,
            SecurityError::CertWrongIssuer
                | SecurityError::CertUntrusted
                | SecurityError::CertWrongRole
                | SecurityError::WeakKey(_)
                | SecurityError::CertNotYetValid
                | SecurityError::CertExpired
                | SecurityError::CrlStale
                | SecurityError::CrlBadSignature
                | SecurityError::CrlNotYetValid
                | SecurityError::CertRevoked
                | SecurityError::UnknownPeer(_)
        )
    }
}

impl From<openssl::error::ErrorStack> for SecurityError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        SecurityError::Crypto(e.to_string())
    }
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, SecurityError>;
