//! File protection as ZIP containers (SEC-FILE-SIG-1/2, SEC-FILE-ENC-1/2, DES-PROF files).
//!
//! Everything streams: input is read from an `io::Read` in 64 KiB chunks and the ZIP is written
//! to an `io::Write + io::Seek`; opening reads a `Read + Seek` ZIP and writes the file to an
//! `io::Write`. No file is ever held whole in memory.
//!
//! ## Signed ZIP (`sgw-file-sig-v1`), exactly three entries
//! 1. `payload/<name>` — the file, deflated. `<name>` is 1..=200 bytes of UTF-8 without `/`,
//!    `\`, control characters, not `.` or `..` and not starting with `.`.
//! 2. `META-INF/manifest.json` — stored, UTF-8 JSON:
//!    `{"format":"sgw-file-sig-v1","signatureAlgorithm":"RS256","signerKid":"<hex sha256 of signer cert DER>",`
//!    `"payload":{"name":"payload/<name>","size":<bytes>,"sha256":"<hex>"}}`.
//! 3. `META-INF/signature.sig` — stored, raw RSASSA-PKCS1-v1_5 / SHA-256 signature (表 4-10)
//!    over the exact bytes of `META-INF/manifest.json`. The manifest binds the file by its
//!    SHA-256 (and its name and size), so the signature covers the file (SEC-FILE-SIG-1) and
//!    the entry name cannot be swapped.
//!
//! Verifying: the layout is checked first (see hardening), then the signature over the manifest
//! with the EXPECTED signer's validated certificate, then `signerKid`, then the payload is read
//! once to check size and SHA-256 against the manifest, and only then a second pass writes it
//! to the output: the output only ever receives verified bytes.
//!
//! ## Encrypted ZIP (`sgw-file-enc-v1`), exactly three entries, all stored
//! 1. `payload.enc` — 16-byte random IV || AES-CBC ciphertext with PKCS#7 padding (表 4-6),
//!    under a fresh random session key of 128, 192 or 256 bits.
//! 2. `META-INF/session-key.bin` — the session key wrapped with RSA-OAEP-256 (SHA-256,
//!    MGF1-SHA-256, empty label) to the recipient certificate (表 4-7).
//! 3. `META-INF/manifest.json` —
//!    `{"format":"sgw-file-enc-v1","contentEncryption":"AES-128-CBC"|"AES-192-CBC"|"AES-256-CBC",`
//!    `"keyTransport":"RSA-OAEP-256","recipientKid":"<hex>","name":"<name>","size":<plaintext bytes>,`
//!    `"encryptedSize":<bytes of payload.enc>,"encryptedSha256":"<hex of payload.enc>"}`.
//!    The digest is over the ciphertext (a plaintext digest would leak guessable content).
//!
//! Decrypting checks layout, manifest, `recipientKid`, then size and SHA-256 of `payload.enc`
//! (transport integrity), then unwraps the key (on failure a random key is used, RFC 7516
//! §11.5 style, so the outcome is one [`SecurityError::DecryptionFailed`]) and streams the
//! decryption. AES-CBC here is unauthenticated by the specification (表 4-6): the output is
//! written before the final padding check, so on `Err` the caller must discard what was
//! written. For authenticity sign first, then encrypt the signed ZIP. Files are not an
//! interactive channel, so no padding oracle is exposed to a remote party.
//!
//! ## Hardening (both layouts), each with its own error
//! ZIP slip: any entry name that is absolute, contains `..`, a backslash, or a drive letter →
//! [`SecurityError::ZipUnsafeName`]. Duplicate names → [`SecurityError::ZipDuplicateEntry`].
//! A name outside the layout → [`SecurityError::ZipUnexpectedEntry`]; a missing one →
//! [`SecurityError::ZipMissingEntry`]. ZIP bombs ([`SecurityError::ZipBomb`]): declared or
//! actual uncompressed size over [`ZipLimits::max_payload`] / [`ZipLimits::max_meta`], or an
//! actual expansion ratio over [`ZipLimits::max_ratio`] (counted while inflating, so lying
//! headers do not help).

use std::collections::BTreeSet;
use std::io::{self, Read, Seek, Write};

use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::{HasPublic, PKeyRef, Private};
use openssl::sign::{Signer, Verifier};
use openssl::symm::{Cipher, Crypter, Mode};
use serde::{Deserialize, Serialize};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::error::{Result, SecurityError};
use super::jose::{KeyAlg, rsa_oaep_unwrap_or_random, rsa_oaep_wrap};

/// Entry of the manifest (both layouts).
pub const MANIFEST: &str = "META-INF/manifest.json";
/// Entry of the signature.
pub const SIGNATURE: &str = "META-INF/signature.sig";
/// Entry of the wrapped session key.
pub const SESSION_KEY: &str = "META-INF/session-key.bin";
/// Entry of the encrypted payload.
pub const PAYLOAD_ENC: &str = "payload.enc";
/// Folder of the signed payload.
pub const PAYLOAD_DIR: &str = "payload/";
/// Format ID of signed ZIPs.
pub const FORMAT_SIG: &str = "sgw-file-sig-v1";
/// Format ID of encrypted ZIPs.
pub const FORMAT_ENC: &str = "sgw-file-enc-v1";

const CHUNK: usize = 64 * 1024;

/// AES key size of file encryption (表 4-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AesCbc {
    /// AES-128-CBC (default).
    #[serde(rename = "AES-128-CBC")]
    Aes128,
    /// AES-192-CBC.
    #[serde(rename = "AES-192-CBC")]
    Aes192,
    /// AES-256-CBC.
    #[serde(rename = "AES-256-CBC")]
    Aes256,
}

impl AesCbc {
    fn cipher(self) -> Cipher {
        match self {
            AesCbc::Aes128 => Cipher::aes_128_cbc(),
            AesCbc::Aes192 => Cipher::aes_192_cbc(),
            AesCbc::Aes256 => Cipher::aes_256_cbc(),
        }
    }
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            AesCbc::Aes128 => 16,
            AesCbc::Aes192 => 24,
            AesCbc::Aes256 => 32,
        }
    }
}

/// Limits applied when opening a ZIP (anti ZIP bomb).
#[derive(Debug, Clone, Copy)]
pub struct ZipLimits {
    /// Maximum uncompressed size of the payload entry.
    pub max_payload: u64,
    /// Maximum uncompressed size of a META-INF entry.
    pub max_meta: u64,
    /// Maximum uncompressed/compressed ratio of any entry (checked on bytes actually read).
    pub max_ratio: u64,
    /// Maximum number of entries in the central directory.
    pub max_entries: usize,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_payload: 4 << 30,
            max_meta: 64 << 10,
            max_ratio: 200,
            max_entries: 16,
        }
    }
}

/// Manifest of a signed ZIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigManifest {
    /// `sgw-file-sig-v1`.
    pub format: String,
    /// `RS256` (RSASSA-PKCS1-v1_5 / SHA-256).
    pub signature_algorithm: String,
    /// Hex SHA-256 of the signer certificate DER.
    pub signer_kid: String,
    /// The signed file.
    pub payload: SigPayload,
}

/// The file entry of a [`SigManifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigPayload {
    /// Entry name `payload/<name>`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// Manifest of an encrypted ZIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncManifest {
    /// `sgw-file-enc-v1`.
    pub format: String,
    /// AES key size.
    pub content_encryption: AesCbc,
    /// `RSA-OAEP-256`.
    pub key_transport: String,
    /// Hex SHA-256 of the recipient certificate DER.
    pub recipient_kid: String,
    /// Original file name.
    pub name: String,
    /// Plaintext size.
    pub size: u64,
    /// Size of `payload.enc` (IV + ciphertext).
    pub encrypted_size: u64,
    /// Hex SHA-256 of `payload.enc`.
    pub encrypted_sha256: String,
}

/// What was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedFile {
    /// The file's name (without `payload/`).
    pub name: String,
    /// Bytes written to the output.
    pub size: u64,
}

/// Check a file name given by a caller or found in a manifest.
pub fn check_file_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 200
        || name.starts_with('.')
        || name.contains(['/', '\\', ':'])
        || name.chars().any(char::is_control);
    if bad {
        Err(SecurityError::ZipUnsafeName)
    } else {
        Ok(())
    }
}

/// Check an entry name for ZIP slip.
pub fn check_entry_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.as_bytes().get(1) == Some(&b':')
        || name.split('/').any(|seg| seg == ".." || seg == ".");
    if bad {
        Err(SecurityError::ZipUnsafeName)
    } else {
        Ok(())
    }
}

fn zerr(e: zip::result::ZipError) -> SecurityError {
    match e {
        zip::result::ZipError::Io(io) => SecurityError::Io(io),
        other => SecurityError::ZipMalformed(other.to_string()),
    }
}

fn sha256_hasher() -> Result<Hasher> {
    Ok(Hasher::new(MessageDigest::sha256())?)
}

/// Copy `r` to `w` in chunks, feeding `f` with every chunk; returns the byte count.
fn pump<R: Read + ?Sized, W: Write + ?Sized>(
    r: &mut R,
    w: &mut W,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        f(&buf[..n])?;
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Sign `input` as `name` into a signed ZIP written to `out` (SEC-FILE-SIG-1).
pub fn sign_file<R: Read, W: Write + Seek>(
    key: &PKeyRef<Private>,
    signer_kid: &str,
    name: &str,
    mut input: R,
    out: W,
) -> Result<W> {
    check_file_name(name)?;
    let entry = format!("{PAYLOAD_DIR}{name}");
    let mut zw = ZipWriter::new(out);
    let deflate = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .large_file(true);
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    zw.start_file(entry.as_str(), deflate).map_err(zerr)?;
    let mut h = sha256_hasher()?;
    let size = pump(&mut input, &mut zw, |c| Ok(h.update(c)?))?;
    let manifest = SigManifest {
        format: FORMAT_SIG.into(),
        signature_algorithm: "RS256".into(),
        signer_kid: signer_kid.into(),
        payload: SigPayload {
            name: entry,
            size,
            sha256: hex::encode(h.finish()?),
        },
    };
    let mbytes =
        serde_json::to_vec(&manifest).map_err(|_| SecurityError::ManifestInvalid("serialize"))?;
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    signer.update(&mbytes)?;
    let sig = signer.sign_to_vec()?;
    zw.start_file(MANIFEST, stored).map_err(zerr)?;
    zw.write_all(&mbytes)?;
    zw.start_file(SIGNATURE, stored).map_err(zerr)?;
    zw.write_all(&sig)?;
    zw.finish().map_err(zerr)
}

/// Check the layout: names safe, no duplicates, exactly `expected` (payload dir entries
/// matched by prefix when `payload_prefix`). Returns the payload entry name if any.
fn check_layout<R: Read + Seek>(
    za: &ZipArchive<R>,
    expected: &[&'static str],
    payload_prefix: bool,
    limits: &ZipLimits,
) -> Result<Option<String>> {
    if za.len() > limits.max_entries {
        return Err(SecurityError::ZipUnexpectedEntry);
    }
    let mut seen = BTreeSet::new();
    let mut payload = None;
    for raw in za.file_names_raw() {
        let name = std::str::from_utf8(raw).map_err(|_| SecurityError::ZipUnsafeName)?;
        check_entry_name(name)?;
        if !seen.insert(name.to_string()) {
            return Err(SecurityError::ZipDuplicateEntry);
        }
    }
    if za.has_duplicate_names() {
        return Err(SecurityError::ZipDuplicateEntry);
    }
    for name in &seen {
        if expected.contains(&name.as_str()) {
            continue;
        }
        if payload_prefix && payload.is_none() {
            if let Some(file) = name.strip_prefix(PAYLOAD_DIR) {
                check_file_name(file)?;
                payload = Some(name.clone());
                continue;
            }
        }
        return Err(SecurityError::ZipUnexpectedEntry);
    }
    for e in expected {
        if !seen.contains(*e) {
            return Err(SecurityError::ZipMissingEntry(e));
        }
    }
    if payload_prefix && payload.is_none() {
        return Err(SecurityError::ZipMissingEntry("payload/<name>"));
    }
    Ok(payload)
}

/// A reader that refuses to yield more than `max` bytes or more than `ratio` × the
/// compressed size.
struct Bounded<R> {
    inner: R,
    read: u64,
    max: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.max {
            return Err(io::Error::other(BombMarker));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct BombMarker;
impl std::fmt::Display for BombMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("zip bomb limit")
    }
}
impl std::error::Error for BombMarker {}

fn map_bomb(e: SecurityError) -> SecurityError {
    match e {
        SecurityError::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<BombMarker>().is_some()) =>
        {
            SecurityError::ZipBomb
        }
        other => other,
    }
}

/// Stream one entry through `f` (and into `w`), enforcing `max` and the ratio limit.
fn read_entry<R: Read + Seek, W: Write + ?Sized>(
    za: &mut ZipArchive<R>,
    name: &str,
    max: u64,
    limits: &ZipLimits,
    w: &mut W,
    f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let zf = za.by_name(name).map_err(zerr)?;
    let declared = zf.size();
    let compressed = zf.compressed_size();
    let ratio_cap = compressed.saturating_mul(limits.max_ratio).max(4096);
    if declared > max || declared > ratio_cap {
        return Err(SecurityError::ZipBomb);
    }
    let cap = max.min(ratio_cap);
    let mut b = Bounded {
        inner: zf,
        read: 0,
        max: cap,
    };
    pump(&mut b, w, f).map_err(map_bomb)
}

fn read_small<R: Read + Seek>(
    za: &mut ZipArchive<R>,
    name: &str,
    limits: &ZipLimits,
) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    read_entry(za, name, limits.max_meta, limits, &mut v, |_| Ok(()))?;
    Ok(v)
}

/// Verify a signed ZIP from `signer_key` (already validated by the caller) and stream the
/// file to `out` (SEC-FILE-SIG-2). `expected_kid` is the signer certificate's kid.
pub fn verify_file<T: HasPublic, R: Read + Seek, W: Write>(
    signer_key: &PKeyRef<T>,
    expected_kid: &str,
    zip_in: R,
    mut out: W,
    limits: &ZipLimits,
) -> Result<OpenedFile> {
    let mut za = ZipArchive::new(zip_in).map_err(zerr)?;
    let payload = check_layout(&za, &[MANIFEST, SIGNATURE], true, limits)?
        .ok_or(SecurityError::ZipMissingEntry("payload/<name>"))?;
    let mbytes = read_small(&mut za, MANIFEST, limits)?;
    let sig = read_small(&mut za, SIGNATURE, limits)?;
    let mut v = Verifier::new(MessageDigest::sha256(), signer_key)?;
    v.update(&mbytes)?;
    if !v.verify(&sig).unwrap_or(false) {
        return Err(SecurityError::BadSignature);
    }
    let m: SigManifest = serde_json::from_slice(&mbytes)
        .map_err(|_| SecurityError::ManifestInvalid("not a sgw-file-sig-v1 manifest"))?;
    if m.format != FORMAT_SIG || m.signature_algorithm != "RS256" {
        return Err(SecurityError::ManifestInvalid("format or algorithm"));
    }
    if m.signer_kid != expected_kid {
        return Err(SecurityError::SignerMismatch);
    }
    if m.payload.name != payload {
        return Err(SecurityError::ManifestInvalid("payload name"));
    }
    let max = limits.max_payload.min(m.payload.size);
    let mut h = sha256_hasher()?;
    let n = read_entry(&mut za, &payload, max, limits, &mut io::sink(), |c| {
        Ok(h.update(c)?)
    })?;
    if n != m.payload.size || hex::encode(h.finish()?) != m.payload.sha256 {
        return Err(SecurityError::ManifestInvalid("payload size or sha256"));
    }
    let n = read_entry(&mut za, &payload, max, limits, &mut out, |_| Ok(()))?;
    out.flush()?;
    Ok(OpenedFile {
        name: payload[PAYLOAD_DIR.len()..].to_string(),
        size: n,
    })
}

/// Encrypt `input` (named `name`) to `recipient_key` into an encrypted ZIP (SEC-FILE-ENC-1).
pub fn encrypt_file<T: HasPublic, R: Read, W: Write + Seek>(
    recipient_key: &PKeyRef<T>,
    recipient_kid: &str,
    aes: AesCbc,
    name: &str,
    mut input: R,
    out: W,
) -> Result<W> {
    check_file_name(name)?;
    super::cert::check_rsa_public(recipient_key)?;
    let mut key = vec![0u8; aes.key_len()];
    openssl::rand::rand_bytes(&mut key)?;
    let mut iv = [0u8; 16];
    openssl::rand::rand_bytes(&mut iv)?;
    let wrapped = rsa_oaep_wrap(recipient_key, KeyAlg::RsaOaep256, &key)?;
    let mut zw = ZipWriter::new(out);
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    zw.start_file(PAYLOAD_ENC, stored.large_file(true))
        .map_err(zerr)?;
    let mut h = sha256_hasher()?;
    h.update(&iv)?;
    zw.write_all(&iv)?;
    let mut enc_size = iv.len() as u64;
    let mut cr = Crypter::new(aes.cipher(), Mode::Encrypt, &key, Some(&iv))?;
    let mut obuf = vec![0u8; CHUNK + 32];
    let mut size = 0u64;
    let mut sink = io::sink();
    pump(&mut input, &mut sink, |c| {
        let n = cr.update(c, &mut obuf)?;
        h.update(&obuf[..n])?;
        zw.write_all(&obuf[..n])?;
        enc_size += n as u64;
        size += c.len() as u64;
        Ok(())
    })?;
    let n = cr.finalize(&mut obuf)?;
    h.update(&obuf[..n])?;
    zw.write_all(&obuf[..n])?;
    enc_size += n as u64;
    let manifest = EncManifest {
        format: FORMAT_ENC.into(),
        content_encryption: aes,
        key_transport: "RSA-OAEP-256".into(),
        recipient_kid: recipient_kid.into(),
        name: name.into(),
        size,
        encrypted_size: enc_size,
        encrypted_sha256: hex::encode(h.finish()?),
    };
    zw.start_file(SESSION_KEY, stored).map_err(zerr)?;
    zw.write_all(&wrapped)?;
    zw.start_file(MANIFEST, stored).map_err(zerr)?;
    let mbytes =
        serde_json::to_vec(&manifest).map_err(|_| SecurityError::ManifestInvalid("serialize"))?;
    zw.write_all(&mbytes)?;
    zw.finish().map_err(zerr)
}

/// Decrypt an encrypted ZIP with our key and stream the file to `out` (SEC-FILE-ENC-2).
/// On `Err`, discard whatever was written to `out` (see the module doc).
pub fn decrypt_file<R: Read + Seek, W: Write>(
    key: &PKeyRef<Private>,
    own_kid: &str,
    zip_in: R,
    mut out: W,
    limits: &ZipLimits,
) -> Result<OpenedFile> {
    let mut za = ZipArchive::new(zip_in).map_err(zerr)?;
    check_layout(&za, &[PAYLOAD_ENC, SESSION_KEY, MANIFEST], false, limits)?;
    let mbytes = read_small(&mut za, MANIFEST, limits)?;
    let m: EncManifest = serde_json::from_slice(&mbytes)
        .map_err(|_| SecurityError::ManifestInvalid("not a sgw-file-enc-v1 manifest"))?;
    if m.format != FORMAT_ENC || m.key_transport != "RSA-OAEP-256" {
        return Err(SecurityError::ManifestInvalid("format or algorithm"));
    }
    check_file_name(&m.name)?;
    if m.recipient_kid != own_kid {
        return Err(SecurityError::UnknownKid);
    }
    let wrapped = read_small(&mut za, SESSION_KEY, limits)?;
    // Ciphertext is at most plaintext + one block + IV.
    let max_enc = limits.max_payload.saturating_add(32);
    let mut h = sha256_hasher()?;
    let n = read_entry(
        &mut za,
        PAYLOAD_ENC,
        max_enc,
        limits,
        &mut io::sink(),
        |c| Ok(h.update(c)?),
    )?;
    if n != m.encrypted_size
        || hex::encode(h.finish()?) != m.encrypted_sha256
        || n < 32
        || n % 16 != 0
    {
        return Err(SecurityError::ManifestInvalid("payload.enc size or sha256"));
    }
    let aes = m.content_encryption;
    let skey = rsa_oaep_unwrap_or_random(key, KeyAlg::RsaOaep256, &wrapped, aes.key_len())?;
    let zf = za.by_name(PAYLOAD_ENC).map_err(zerr)?;
    let mut r = Bounded {
        inner: zf,
        read: 0,
        max: max_enc,
    };
    let mut iv = [0u8; 16];
    r.read_exact(&mut iv)?;
    let mut cr = Crypter::new(aes.cipher(), Mode::Decrypt, &skey, Some(&iv))?;
    let mut obuf = vec![0u8; CHUNK + 32];
    let mut size = 0u64;
    let mut sink = io::sink();
    pump(&mut r, &mut sink, |c| {
        let k = cr.update(c, &mut obuf)?;
        out.write_all(&obuf[..k])?;
        size += k as u64;
        if size > limits.max_payload {
            return Err(SecurityError::ZipBomb);
        }
        Ok(())
    })
    .map_err(map_bomb)?;
    let k = cr
        .finalize(&mut obuf)
        .map_err(|_| SecurityError::DecryptionFailed)?;
    out.write_all(&obuf[..k])?;
    size += k as u64;
    out.flush()?;
    if size != m.size {
        return Err(SecurityError::DecryptionFailed);
    }
    Ok(OpenedFile { name: m.name, size })
}
