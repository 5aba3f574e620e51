//! Field masking (SEC-MASK-1, SEC-MASK-2, DES-MASK).
//!
//! Masked CSV field text: `m1.<keyId>.<base64url-nopad(nonce || ciphertext || tag)>`.
//! Exact construction (the Python cross-check re-implements it from this text):
//! - `keyId`: 1..=16 ASCII `[A-Za-z0-9]`; utility key `K`: 32 bytes.
//! - `PRK = HMAC-SHA256(key = 32 zero bytes, K)`;
//!   `encKey = HMAC-SHA256(PRK, "sgw-mask-v1/enc" || 0x01)`,
//!   `macKey = HMAC-SHA256(PRK, "sgw-mask-v1/mac" || 0x01)`
//!   (HKDF-SHA256, RFC 5869, empty salt, one output block of 32 bytes each).
//! - `nonce = HMAC-SHA256(macKey, UTF8(column) || 0x00 || UTF8(plaintext))[0..12]`
//!   (deterministic: equal values in the same column mask equally, so joins still work).
//! - `ciphertext || tag(16) = AES-256-GCM(encKey, nonce, plaintext, AAD = UTF8(column))`.
//! - Unmasking looks up `keyId` (old keys stay for rotation), decrypts, then recomputes the
//!   nonce from the plaintext and refuses a mismatch; any failure of wrong key, wrong column
//!   or tampering is [`SecurityError::MaskAuthFailed`].
//! - Masking always uses the current key; [`MaskingKeys::rotate`] adds a new current key.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

use super::error::{Result, SecurityError};

const PREFIX: &str = "m1.";

#[derive(Clone)]
struct DerivedKey {
    enc: Vec<u8>,
    mac: Vec<u8>,
}

/// The utility's masking keys, by keyId, with one current key.
#[derive(Clone)]
pub struct MaskingKeys {
    current: String,
    keys: BTreeMap<String, DerivedKey>,
}

impl std::fmt::Debug for MaskingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskingKeys")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
    let pkey = PKey::hmac(key)?;
    let mut s = Signer::new(MessageDigest::sha256(), &pkey)?;
    for p in parts {
        s.update(p)?;
    }
    Ok(s.sign_to_vec()?)
}

fn valid_key_id(id: &str) -> bool {
    (1..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn derive(key: &[u8]) -> Result<DerivedKey> {
    if key.len() != 32 {
        return Err(SecurityError::MaskInvalidKey);
    }
    let prk = hmac(&[0u8; 32], &[key])?;
    Ok(DerivedKey {
        enc: hmac(&prk, &[b"sgw-mask-v1/enc", &[1]])?,
        mac: hmac(&prk, &[b"sgw-mask-v1/mac", &[1]])?,
    })
}

impl MaskingKeys {
    /// One key, current.
    pub fn new(key_id: &str, key: &[u8]) -> Result<Self> {
        if !valid_key_id(key_id) {
            return Err(SecurityError::MaskInvalidKey);
        }
        let mut keys = BTreeMap::new();
        keys.insert(key_id.to_string(), derive(key)?);
        Ok(MaskingKeys {
            current: key_id.to_string(),
            keys,
        })
    }

    /// Load every `<keyId>.key` (64 hex digits) of a bundle's `masking/` directory (DES-PROV);
    /// `current` names the key to mask with.
    pub fn load_dir(dir: &std::path::Path, current: &str) -> Result<Self> {
        let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let rd = std::fs::read_dir(dir)?;
        for entry in rd {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("key") {
                continue;
            }
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or(SecurityError::MaskInvalidKey)?
                .to_string();
            let text = std::fs::read_to_string(&path)?;
            let key = hex::decode(text.trim()).map_err(|_| SecurityError::MaskInvalidKey)?;
            found.insert(id, key);
        }
        let cur = found.get(current).ok_or(SecurityError::MaskUnknownKey)?;
        let mut keys = Self::new(current, cur)?;
        for (id, k) in &found {
            if id != current {
                keys.add_old(id, k)?;
            }
        }
        Ok(keys)
    }

    /// Keep an old key for unmasking only.
    pub fn add_old(&mut self, key_id: &str, key: &[u8]) -> Result<()> {
        if !valid_key_id(key_id) {
            return Err(SecurityError::MaskInvalidKey);
        }
        self.keys.insert(key_id.to_string(), derive(key)?);
        Ok(())
    }

    /// Rotate: add `key_id` and make it current; older keys stay for unmasking.
    pub fn rotate(&mut self, key_id: &str, key: &[u8]) -> Result<()> {
        self.add_old(key_id, key)?;
        self.current = key_id.to_string();
        Ok(())
    }

    /// The current keyId.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Mask one field value of `column` with the current key (SEC-MASK-1).
    pub fn mask(&self, column: &str, plaintext: &str) -> Result<String> {
        let k = self
            .keys
            .get(&self.current)
            .ok_or(SecurityError::MaskUnknownKey)?;
        let nonce = &hmac(&k.mac, &[column.as_bytes(), &[0], plaintext.as_bytes()])?[..12];
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &k.enc,
            Some(nonce),
            column.as_bytes(),
            plaintext.as_bytes(),
            &mut tag,
        )?;
        let mut blob = Vec::with_capacity(12 + ct.len() + 16);
        blob.extend_from_slice(nonce);
        blob.extend_from_slice(&ct);
        blob.extend_from_slice(&tag);
        Ok(format!("{PREFIX}{}.{}", self.current, B64.encode(blob)))
    }

    /// Whether a field text has the masked form (prefix and keyId shape only).
    pub fn is_masked(text: &str) -> bool {
        text.strip_prefix(PREFIX)
            .and_then(|r| r.split_once('.'))
            .is_some_and(|(id, _)| valid_key_id(id))
    }

    /// Unmask one field value of `column` (SEC-MASK-2).
    pub fn unmask(&self, column: &str, masked: &str) -> Result<String> {
        let rest = masked
            .strip_prefix(PREFIX)
            .ok_or(SecurityError::MaskFormat)?;
        let (id, b64) = rest.split_once('.').ok_or(SecurityError::MaskFormat)?;
        if !valid_key_id(id) {
            return Err(SecurityError::MaskFormat);
        }
        let blob = B64.decode(b64).map_err(|_| SecurityError::MaskFormat)?;
        if blob.len() < 28 {
            return Err(SecurityError::MaskFormat);
        }
        let k = self.keys.get(id).ok_or(SecurityError::MaskUnknownKey)?;
        let (nonce, rest) = blob.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        let pt = decrypt_aead(
            Cipher::aes_256_gcm(),
            &k.enc,
            Some(nonce),
            column.as_bytes(),
            ct,
            tag,
        )
        .map_err(|_| SecurityError::MaskAuthFailed)?;
        let again = hmac(&k.mac, &[column.as_bytes(), &[0], &pt])?;
        if !openssl::memcmp::eq(&again[..12], nonce) {
            return Err(SecurityError::MaskAuthFailed);
        }
        String::from_utf8(pt).map_err(|_| SecurityError::MaskFormat)
    }
}
