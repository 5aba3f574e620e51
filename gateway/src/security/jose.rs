//! JSON data security (SEC-JSON-SIG-1/2, SEC-JSON-ENC-1/2, DES-SEAL, DES-PROF).
//!
//! - JWS compact, `RS256` only, signed with josekit. Before josekit sees a token, the protected
//!   header is checked against an allowlist ([`JwsPolicy`]): `alg` must be `RS256` (so `none`
//!   and `HS256` keyed with the RSA public key are refused before any key is used); `crit`,
//!   `zip`, `jku`, `x5u`, `jwk`, `x5c`, `b64` and every other parameter outside
//!   {`alg`,`typ`,`kid`,`x5t#S256`,`cty`} are refused; `typ` and `kid` must equal what the
//!   caller expects; a present `x5t#S256` must be the signer certificate's thumbprint; a header
//!   with a duplicate member name is malformed (so no two JSON parsers can read it differently).
//! - JWE compact, `enc` = `A128CBC-HS256` only; `alg` `RSA-OAEP-256` is sent,
//!   `RSA-OAEP-256` and `RSA-OAEP` (SHA-1) are accepted. Encryption uses josekit.
//!   Decryption is implemented here on openssl so that a failure is indistinguishable: if RSA
//!   unwrapping fails, or yields a key that is not 32 bytes, a random 32-byte CEK is used
//!   instead (RFC 7516 §11.5, RFC 3218 §2.3.2) and processing continues into the HMAC check,
//!   which then fails; so every tampered, mis-keyed or mis-addressed token reaches the same
//!   code path (RSA decrypt + HMAC-SHA-256 over the whole input + constant-time compare) and
//!   the same error [`SecurityError::DecryptionFailed`]. CBC decryption only runs after the
//!   tag has been verified, so there is no padding oracle. (josekit's own decrypter returns
//!   early on an unwrap failure with a distinct message, which is why it is not used.)
//!   Only checks on public data (header allowlist, algorithms, kid, lengths of IV, tag and
//!   encrypted key — OpenSSL refuses a wrong-length encrypted key before the RSA operation)
//!   exit earlier; they reveal nothing the sender does not already know.
//! - Nested: sign-then-encrypt, JWE(cty = "<profile>+jws") over JWS(typ = "<profile>") over the
//!   payload; see [`Profile`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::Signer;
use openssl::symm::{Cipher, decrypt};
use serde_json::{Map, Value};

use super::cert::check_rsa_public;
use super::error::{Result, SecurityError};

/// The only content encryption accepted and sent.
pub const ENC_A128CBC_HS256: &str = "A128CBC-HS256";
/// The only signature algorithm.
pub const ALG_RS256: &str = "RS256";

/// Header parameters refused outright, wherever they appear (DES-SEAL).
pub const FORBIDDEN_HEADERS: &[&str] = &["crit", "zip", "jku", "x5u", "jwk", "x5c", "b64"];

/// Which nested profile a sealed token belongs to: fixes JWS `typ` and JWE `cty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// MQTT message sealing (DES-SEAL): JWS typ `sgw-msg`, JWE cty `sgw-msg+jws`.
    Message,
    /// JSON data profile (DES-PROF): JWS typ `sgw-profile`, JWE cty `sgw-profile+jws`.
    JsonProfile,
}

impl Profile {
    /// The JWS `typ`.
    pub fn typ(self) -> &'static str {
        match self {
            Profile::Message => "sgw-msg",
            Profile::JsonProfile => "sgw-profile",
        }
    }
    /// The JWE `cty`.
    pub fn cty(self) -> &'static str {
        match self {
            Profile::Message => "sgw-msg+jws",
            Profile::JsonProfile => "sgw-profile+jws",
        }
    }
}

/// Key transport of a JWE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlg {
    /// `RSA-OAEP` (SHA-1, MGF1-SHA-1): accepted, sent only by tests/cross-checks.
    RsaOaep,
    /// `RSA-OAEP-256` (SHA-256, MGF1-SHA-256): sent and accepted.
    RsaOaep256,
}

impl KeyAlg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::RsaOaep => "RSA-OAEP",
            KeyAlg::RsaOaep256 => "RSA-OAEP-256",
        }
    }
    fn digest(self) -> MessageDigest {
        match self {
            KeyAlg::RsaOaep => MessageDigest::sha1(),
            KeyAlg::RsaOaep256 => MessageDigest::sha256(),
        }
    }
    fn from_name(s: &str) -> Option<Self> {
        match s {
            "RSA-OAEP" => Some(KeyAlg::RsaOaep),
            "RSA-OAEP-256" => Some(KeyAlg::RsaOaep256),
            _ => None,
        }
    }
}

/// What a JWS header must look like. `None` = not required (any value allowed if present).
#[derive(Debug, Clone, Copy, Default)]
pub struct JwsPolicy<'a> {
    /// Required `typ`.
    pub typ: Option<&'a str>,
    /// Required `kid`.
    pub kid: Option<&'a str>,
    /// Expected `x5t#S256` (base64url of SHA-256 of the certificate DER), checked if present.
    pub x5t_s256: Option<&'a str>,
}

/// What a JWE header must look like.
#[derive(Debug, Clone, Copy, Default)]
pub struct JwePolicy<'a> {
    /// Required `cty`.
    pub cty: Option<&'a str>,
    /// Required `kid` (the recipient's).
    pub kid: Option<&'a str>,
}

fn split_compact(token: &str, parts: usize) -> Result<Vec<&str>> {
    let v: Vec<&str> = token.split('.').collect();
    if v.len() != parts {
        return Err(SecurityError::Malformed("wrong number of parts"));
    }
    Ok(v)
}

fn b64d(s: &str) -> Result<Vec<u8>> {
    B64.decode(s)
        .map_err(|_| SecurityError::Malformed("invalid base64url"))
}

/// A JSON object whose top-level member names are unique (RFC 7515 §5.2 / RFC 7516 §5.2 let a
/// receiver reject duplicates; we do, so no two parsers can disagree on which value counts).
struct UniqueObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<UniqueObject, A::Error> {
                let mut m = Map::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    if m.contains_key(&k) {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                    m.insert(k, v);
                }
                Ok(UniqueObject(m))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_header(b64: &str) -> Result<Map<String, Value>> {
    let raw = b64d(b64)?;
    serde_json::from_slice::<UniqueObject>(&raw)
        .map(|o| o.0)
        .map_err(|_| SecurityError::Malformed("header is not a JSON object with unique members"))
}

fn str_param<'a>(h: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>> {
    match h.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SecurityError::Malformed("header parameter is not a string")),
    }
}

fn check_allowlist(h: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    for k in h.keys() {
        if FORBIDDEN_HEADERS.contains(&k.as_str()) || !allowed.contains(&k.as_str()) {
            return Err(SecurityError::ForbiddenHeader(k.clone()));
        }
    }
    Ok(())
}

fn check_expected(
    h: &Map<String, Value>,
    name: &'static str,
    want: Option<&str>,
    err: impl Fn(String) -> SecurityError,
) -> Result<()> {
    if let Some(want) = want {
        match str_param(h, name)? {
            Some(got) if got == want => {}
            Some(got) => return Err(err(got.to_string())),
            None => return Err(err(String::new())),
        }
    }
    Ok(())
}

/// Check a JWS protected header against `policy` and return it.
pub fn check_jws_header(token: &str, policy: &JwsPolicy<'_>) -> Result<Map<String, Value>> {
    let parts = split_compact(token, 3)?;
    let h = parse_header(parts[0])?;
    check_allowlist(&h, &["alg", "typ", "kid", "x5t#S256", "cty"])?;
    match str_param(&h, "alg")? {
        Some(ALG_RS256) => {}
        Some(other) => return Err(SecurityError::UnsupportedAlgorithm(other.to_string())),
        None => return Err(SecurityError::Malformed("missing alg")),
    }
    check_expected(&h, "typ", policy.typ, SecurityError::UnexpectedType)?;
    check_expected(&h, "kid", policy.kid, |_| SecurityError::UnknownKid)?;
    if let Some(x5t) = str_param(&h, "x5t#S256")? {
        if let Some(want) = policy.x5t_s256 {
            if x5t != want {
                return Err(SecurityError::SignerMismatch);
            }
        }
    }
    Ok(h)
}

/// A JWS RS256 signer built once from a private key, so that signing does not re-encode and
/// re-parse the key on every call (docs/PERFORMANCE.md). Cheap to clone (the key is shared).
#[derive(Clone)]
pub struct JwsSigner(josekit::jws::alg::rsassa::RsassaJwsSigner);

impl JwsSigner {
    /// Build from `key`, which must be RSA with at least 2048 bits.
    pub fn new(key: &PKeyRef<Private>) -> Result<Self> {
        check_rsa_public(key)?;
        let der = key.private_key_to_pkcs8()?;
        josekit::jws::RS256
            .signer_from_der(&der)
            .map(JwsSigner)
            .map_err(|e| SecurityError::Crypto(e.to_string()))
    }
}

/// A JWS RS256 verifier built once from a public key (see [`JwsSigner`]).
#[derive(Clone)]
pub struct JwsVerifier(josekit::jws::alg::rsassa::RsassaJwsVerifier);

impl JwsVerifier {
    /// Build from `key`, which must be RSA with at least 2048 bits.
    pub fn new<T: HasPublic>(key: &PKeyRef<T>) -> Result<Self> {
        check_rsa_public(key)?;
        let spki = key.public_key_to_der()?;
        josekit::jws::RS256
            .verifier_from_der(&spki)
            .map(JwsVerifier)
            .map_err(|e| SecurityError::Crypto(e.to_string()))
    }
}

/// A JWE key-transport encrypter for one recipient key and one [`KeyAlg`], built once (see
/// [`JwsSigner`]).
#[derive(Clone)]
pub struct JweEncrypter(josekit::jwe::alg::rsaes::RsaesJweEncrypter);

impl JweEncrypter {
    /// Build from `key`, which must be RSA with at least 2048 bits, for key transport `alg`.
    pub fn new<T: HasPublic>(key: &PKeyRef<T>, alg: KeyAlg) -> Result<Self> {
        check_rsa_public(key)?;
        let spki = key.public_key_to_der()?;
        let ka = match alg {
            KeyAlg::RsaOaep => josekit::jwe::RSA_OAEP,
            KeyAlg::RsaOaep256 => josekit::jwe::RSA_OAEP_256,
        };
        ka.encrypter_from_der(&spki)
            .map(JweEncrypter)
            .map_err(|e| SecurityError::Crypto(e.to_string()))
    }
}

/// Sign `payload` as JWS compact RS256 with `typ` and `kid` (and optional `x5t#S256`).
pub fn jws_sign(
    key: &PKeyRef<Private>,
    payload: &[u8],
    typ: Option<&str>,
    kid: Option<&str>,
    x5t_s256: Option<&[u8]>,
) -> Result<String> {
    jws_sign_with(&JwsSigner::new(key)?, payload, typ, kid, x5t_s256)
}

/// [`jws_sign`] with a signer built beforehand.
pub fn jws_sign_with(
    signer: &JwsSigner,
    payload: &[u8],
    typ: Option<&str>,
    kid: Option<&str>,
    x5t_s256: Option<&[u8]>,
) -> Result<String> {
    let mut header = josekit::jws::JwsHeader::new();
    if let Some(t) = typ {
        header.set_token_type(t);
    }
    if let Some(k) = kid {
        header.set_key_id(k);
    }
    if let Some(x) = x5t_s256 {
        header.set_x509_certificate_sha256_thumbprint(x);
    }
    josekit::jws::serialize_compact(payload, &header, &signer.0)
        .map_err(|e| SecurityError::Crypto(e.to_string()))
}

/// Verify a JWS compact token against `signer_key` under `policy`; return the payload.
pub fn jws_verify<T: HasPublic>(
    token: &str,
    signer_key: &PKeyRef<T>,
    policy: &JwsPolicy<'_>,
) -> Result<Vec<u8>> {
    check_jws_header(token, policy)?;
    verify_checked(token, &JwsVerifier::new(signer_key)?)
}

/// [`jws_verify`] with a verifier built beforehand: the same header checks, then the same
/// signature check.
pub fn jws_verify_with(
    token: &str,
    verifier: &JwsVerifier,
    policy: &JwsPolicy<'_>,
) -> Result<Vec<u8>> {
    check_jws_header(token, policy)?;
    verify_checked(token, verifier)
}

/// The signature check of a token whose header has passed [`check_jws_header`].
fn verify_checked(token: &str, verifier: &JwsVerifier) -> Result<Vec<u8>> {
    match josekit::jws::deserialize_compact(token, &verifier.0) {
        Ok((payload, _)) => Ok(payload),
        Err(_) => Err(SecurityError::BadSignature),
    }
}

/// Encrypt `plaintext` as JWE compact (`alg`, A128CBC-HS256) to `recipient_key`.
pub fn jwe_encrypt<T: HasPublic>(
    recipient_key: &PKeyRef<T>,
    alg: KeyAlg,
    plaintext: &[u8],
    cty: Option<&str>,
    kid: Option<&str>,
) -> Result<String> {
    jwe_encrypt_with(&JweEncrypter::new(recipient_key, alg)?, plaintext, cty, kid)
}

/// [`jwe_encrypt`] with an encrypter built beforehand (its [`KeyAlg`] is fixed at build).
pub fn jwe_encrypt_with(
    encrypter: &JweEncrypter,
    plaintext: &[u8],
    cty: Option<&str>,
    kid: Option<&str>,
) -> Result<String> {
    let mut header = josekit::jwe::JweHeader::new();
    header.set_content_encryption(ENC_A128CBC_HS256);
    if let Some(c) = cty {
        header.set_content_type(c);
    }
    if let Some(k) = kid {
        header.set_key_id(k);
    }
    josekit::jwe::serialize_compact(plaintext, &header, &encrypter.0)
        .map_err(|e| SecurityError::Crypto(e.to_string()))
}

/// Check a JWE protected header against `policy`; return it with its key transport.
pub fn check_jwe_header(
    token: &str,
    policy: &JwePolicy<'_>,
) -> Result<(Map<String, Value>, KeyAlg)> {
    let parts = split_compact(token, 5)?;
    let h = parse_header(parts[0])?;
    check_allowlist(&h, &["alg", "enc", "kid", "cty", "typ"])?;
    let alg = match str_param(&h, "alg")? {
        Some(a) => KeyAlg::from_name(a)
            .ok_or_else(|| SecurityError::UnsupportedAlgorithm(a.to_string()))?,
        None => return Err(SecurityError::Malformed("missing alg")),
    };
    match str_param(&h, "enc")? {
        Some(ENC_A128CBC_HS256) => {}
        Some(other) => return Err(SecurityError::UnsupportedAlgorithm(other.to_string())),
        None => return Err(SecurityError::Malformed("missing enc")),
    }
    check_expected(&h, "cty", policy.cty, SecurityError::UnexpectedType)?;
    check_expected(&h, "kid", policy.kid, |_| SecurityError::UnknownKid)?;
    Ok((h, alg))
}

fn rsa_oaep_unwrap(key: &PKeyRef<Private>, alg: KeyAlg, wrapped: &[u8]) -> Option<Vec<u8>> {
    let md = alg.digest();
    let mut ctx = PkeyCtx::new(key).ok()?;
    ctx.decrypt_init().ok()?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
    let md_ref = openssl::md::Md::from_nid(md.type_())?;
    ctx.set_rsa_oaep_md(md_ref).ok()?;
    ctx.set_rsa_mgf1_md(md_ref).ok()?;
    let mut out = Vec::new();
    ctx.decrypt_to_vec(wrapped, &mut out).ok()?;
    Some(out)
}

/// RSA-OAEP encryption of a short key with `alg`'s digest for both OAEP and MGF1 (used by JWE
/// and file encryption; available to other formats of this module).
pub fn rsa_oaep_wrap<T: HasPublic>(key: &PKeyRef<T>, alg: KeyAlg, cek: &[u8]) -> Result<Vec<u8>> {
    let md = openssl::md::Md::from_nid(alg.digest().type_())
        .ok_or_else(|| SecurityError::Crypto("digest".into()))?;
    let mut ctx = PkeyCtx::new(key)?;
    ctx.encrypt_init()?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
    ctx.set_rsa_oaep_md(md)?;
    ctx.set_rsa_mgf1_md(md)?;
    let mut out = Vec::new();
    ctx.encrypt_to_vec(cek, &mut out)?;
    Ok(out)
}

/// RSA-OAEP unwrap of a key of exactly `len` bytes; on any failure returns a random key of
/// `len` bytes instead (RFC 7516 §11.5), so callers continue on one code path and fail later
/// at their integrity check.
pub fn rsa_oaep_unwrap_or_random(
    key: &PKeyRef<Private>,
    alg: KeyAlg,
    wrapped: &[u8],
    len: usize,
) -> Result<Vec<u8>> {
    let mut random = vec![0u8; len];
    openssl::rand::rand_bytes(&mut random)?;
    Ok(match rsa_oaep_unwrap(key, alg, wrapped) {
        Some(k) if k.len() == len => k,
        _ => random,
    })
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
    let pkey = PKey::hmac(key)?;
    let mut s = Signer::new(MessageDigest::sha256(), &pkey)?;
    for p in parts {
        s.update(p)?;
    }
    Ok(s.sign_to_vec()?)
}

/// Decrypt a JWE compact token with our private key under `policy`; return the plaintext.
/// See the module doc for why every cryptographic failure is indistinguishable.
pub fn jwe_decrypt(token: &str, key: &PKeyRef<Private>, policy: &JwePolicy<'_>) -> Result<Vec<u8>> {
    let (_, alg) = check_jwe_header(token, policy)?;
    check_rsa_public(key)?;
    let parts = split_compact(token, 5)?;
    let wrapped = b64d(parts[1])?;
    let iv = b64d(parts[2])?;
    let ct = b64d(parts[3])?;
    let tag = b64d(parts[4])?;
    if iv.len() != 16 || tag.len() != 16 || ct.is_empty() || ct.len() % 16 != 0 {
        return Err(SecurityError::Malformed("JWE IV, tag or ciphertext length"));
    }
    let cek = rsa_oaep_unwrap_or_random(key, alg, &wrapped, 32)?;
    let (mac_key, enc_key) = cek.split_at(16);
    let aad = parts[0].as_bytes();
    let al = ((aad.len() as u64) * 8).to_be_bytes();
    let full = hmac_sha256(mac_key, &[aad, &iv, &ct, &al])?;
    if !openssl::memcmp::eq(&full[..16], &tag) {
        return Err(SecurityError::DecryptionFailed);
    }
    decrypt(Cipher::aes_128_cbc(), enc_key, Some(&iv), &ct)
        .map_err(|_| SecurityError::DecryptionFailed)
}

/// base64url(SHA-256(DER)) for `x5t#S256`.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    B64.encode(openssl::sha::sha256(cert_der))
}

/// Decode a base64url-nopad string (for tests and vectors).
pub fn b64url_decode(s: &str) -> Result<Vec<u8>> {
    b64d(s)
}

/// Encode base64url-nopad.
pub fn b64url_encode(b: &[u8]) -> String {
    B64.encode(b)
}

/// Public key of a PEM/DER cert or key, for callers holding raw keys.
pub fn public_key_from_pem(pem: &[u8]) -> Result<PKey<openssl::pkey::Public>> {
    PKey::public_key_from_pem(pem).map_err(|e| SecurityError::KeyMaterial(e.to_string()))
}
