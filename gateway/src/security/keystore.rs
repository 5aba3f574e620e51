//! Key material of data security (SEC-CERT-1, SEC-CERT-3): own data-protection private key
//! and certificate, the trusted root, the current CRL, and peer certificates by name and by
//! `kid` (lowercase hex SHA-256 of the certificate DER, DES-SEAL).
//!
//! Every peer is held under an [`Identity`] (role and subject CN, DES-CERT-4 step 3); its key
//! store name is the CN (`platform`, a gateway ID, an application ID). A certificate is added
//! only if it has that role and CN ([`SecurityError::CertWrongRole`]), a name keeps the role
//! it was first added with, and a peer PEM must hold exactly one certificate
//! ([`SecurityError::NotOneCertificate`], DES-CERT-2).
//!
//! Loaded from the provisioning bundle (DES-PROV, `DIR/data-protection/`: `gateway.key`,
//! `gateway.pem`, `root.pem`, `crl.pem`, `platform.pem`) or built in memory. Private keys are
//! never printed: [`KeyStore`]'s `Debug` shows only kids and names.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use openssl::pkey::{PKey, Private, Public};
use openssl::x509::{X509, X509Crl};

use super::cert::{Identity, check_role, check_rsa_public};
use super::error::{Result, SecurityError};
use super::jose::{JweEncrypter, JwsSigner, JwsVerifier, KeyAlg};

/// One certificate we know, with its kid.
///
/// It also holds, built on first use and then kept, the josekit objects of its public key (so
/// sealing and opening do not re-encode and re-parse the key on every call) and its
/// `x5t#S256`. These are derived from the certificate only; whether the certificate may be
/// used is still decided on every call, at `now` (root, period, CRL: [`super::cert`]).
#[derive(Clone)]
pub struct PeerCert {
    /// The certificate.
    pub cert: X509,
    /// Lowercase hex SHA-256 of its DER.
    pub kid: String,
    identity: Option<Identity>,
    cache: Arc<PeerCache>,
}

/// What [`PeerCert`] derives from its certificate. Shared by clones; a replaced certificate
/// gets a new one.
struct PeerCache {
    /// base64url SHA-256 of the DER (`x5t#S256`).
    x5t_s256: String,
    /// The same digest, raw.
    sha256: [u8; 32],
    verifier: OnceLock<JwsVerifier>,
    encrypter_oaep: OnceLock<JweEncrypter>,
    encrypter_oaep256: OnceLock<JweEncrypter>,
}

/// The value of `cell`, built by `build` the first time. A failed build is not kept (the
/// next call tries again and fails the same way); two threads racing may both build, and one
/// result is kept.
fn get_or_build<T>(cell: &OnceLock<T>, build: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(v) = cell.get() {
        return Ok(v);
    }
    let v = build()?;
    Ok(cell.get_or_init(|| v))
}

impl PeerCert {
    fn new(cert: X509, identity: Option<Identity>) -> Result<Self> {
        let der = cert.to_der()?;
        let sha256 = openssl::sha::sha256(&der);
        Ok(PeerCert {
            kid: hex::encode(sha256),
            identity,
            cache: Arc::new(PeerCache {
                x5t_s256: super::jose::b64url_encode(&sha256),
                sha256,
                verifier: OnceLock::new(),
                encrypter_oaep: OnceLock::new(),
                encrypter_oaep256: OnceLock::new(),
            }),
            cert,
        })
    }

    /// Whose certificate this is (role and subject CN), checked on every use (DES-CERT-4);
    /// `None` for the own certificate, which is not pinned.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// `x5t#S256` of the certificate: base64url of the SHA-256 of its DER.
    pub fn x5t_s256(&self) -> &str {
        &self.cache.x5t_s256
    }

    /// SHA-256 of the certificate's DER (the raw `x5t#S256`).
    pub fn sha256(&self) -> &[u8; 32] {
        &self.cache.sha256
    }

    /// A JWS RS256 verifier for the certificate's key, built on first use. Does not validate
    /// the certificate: callers do that first, at `now`, on every use.
    pub fn jws_verifier(&self) -> Result<&JwsVerifier> {
        get_or_build(&self.cache.verifier, || {
            let key: PKey<Public> = self.cert.public_key()?;
            JwsVerifier::new(&key)
        })
    }

    /// A JWE encrypter with key transport `alg` to the certificate's key, built on first use.
    /// Does not validate the certificate (see [`Self::jws_verifier`]).
    pub fn jwe_encrypter(&self, alg: KeyAlg) -> Result<&JweEncrypter> {
        let cell = match alg {
            KeyAlg::RsaOaep => &self.cache.encrypter_oaep,
            KeyAlg::RsaOaep256 => &self.cache.encrypter_oaep256,
        };
        get_or_build(cell, || {
            let key: PKey<Public> = self.cert.public_key()?;
            JweEncrypter::new(&key, alg)
        })
    }
}

/// Keys and certificates of one party (a gateway, or a simulated platform/application).
#[derive(Clone)]
pub struct KeyStore {
    own_key: PKey<Private>,
    /// JWS signer of `own_key`, built on first use (the own key never changes).
    own_signer: Arc<OnceLock<JwsSigner>>,
    own: PeerCert,
    root: X509,
    crl: Option<std::sync::Arc<X509Crl>>,
    peers: BTreeMap<String, PeerCert>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("own_kid", &self.own.kid)
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .field("crl", &self.crl.is_some())
            .finish_non_exhaustive()
    }
}

fn km<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> SecurityError {
    move |e| SecurityError::KeyMaterial(format!("{what}: {e}"))
}

/// SEC-CERT-3: a private key file should be readable by its owner only; warn (without any key
/// material in the message) when it is not.
fn warn_if_key_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "private key file is accessible by group/others (SEC-CERT-3: expected 0600)"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

impl KeyStore {
    /// Build from parsed parts. The private key must be RSA >= 2048 bits and match `own_cert`.
    pub fn new(own_key: PKey<Private>, own_cert: X509, root: X509) -> Result<Self> {
        check_rsa_public(&own_key)?;
        let cert_key = own_cert.public_key()?;
        if !own_key.public_eq(&cert_key) {
            return Err(SecurityError::KeyMaterial(
                "private key does not match own certificate".into(),
            ));
        }
        let own = PeerCert::new(own_cert, None)?;
        Ok(KeyStore {
            own_key,
            own_signer: Arc::new(OnceLock::new()),
            own,
            root,
            crl: None,
            peers: BTreeMap::new(),
        })
    }

    /// Replaces the trust anchor (the `foreign-root-installed` broken variant only: a gateway
    /// never changes its provisioned root, DES-CERT-3).
    #[cfg(feature = "broken-variants")]
    pub fn broken_set_root(&mut self, root: X509) {
        self.root = root;
    }

    /// Build from PEM texts (PKCS#8 or PKCS#1 private key).
    pub fn from_pem(own_key_pem: &[u8], own_cert_pem: &[u8], root_pem: &[u8]) -> Result<Self> {
        let key = PKey::private_key_from_pem(own_key_pem).map_err(km("private key"))?;
        let cert = X509::from_pem(own_cert_pem).map_err(km("own certificate"))?;
        let root = X509::from_pem(root_pem).map_err(km("root certificate"))?;
        Self::new(key, cert, root)
    }

    /// Load a provisioning bundle's `data-protection/` directory (DES-PROV). `own_name` is the
    /// file stem of the own key and certificate (`gateway` on a gateway). `platform.pem` is
    /// added as peer `platform` when present, `crl.pem` as the CRL when present.
    pub fn load_dir(dir: &Path, own_name: &str) -> Result<Self> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| SecurityError::KeyMaterial(format!("{name}: {e}")))
        };
        warn_if_key_readable_by_others(&dir.join(format!("{own_name}.key")));
        let mut ks = Self::from_pem(
            &read(&format!("{own_name}.key"))?,
            &read(&format!("{own_name}.pem"))?,
            &read("root.pem")?,
        )?;
        if dir.join("platform.pem").exists() {
            ks.add_peer_pem(Identity::platform(), &read("platform.pem")?)?;
        }
        if dir.join("crl.pem").exists() {
            ks.set_crl_pem(&read("crl.pem")?)?;
        }
        Ok(ks)
    }

    /// Replace the current CRL (PEM). Its signature and dates are checked at use, with `now`.
    pub fn set_crl_pem(&mut self, pem: &[u8]) -> Result<()> {
        self.crl = Some(std::sync::Arc::new(
            X509Crl::from_pem(pem).map_err(km("CRL"))?,
        ));
        Ok(())
    }

    /// Replace the current CRL (DER).
    pub fn set_crl_der(&mut self, der: &[u8]) -> Result<()> {
        self.crl = Some(std::sync::Arc::new(
            X509Crl::from_der(der).map_err(km("CRL"))?,
        ));
        Ok(())
    }

    /// Replace the current CRL.
    pub fn set_crl(&mut self, crl: X509Crl) {
        self.crl = Some(std::sync::Arc::new(crl));
    }

    /// Forgets the current CRL (the `crl-dropped-on-fetch-failure` broken variant only: a
    /// gateway keeps what it holds when a fetch fails, DES-CERT-3).
    #[cfg(feature = "broken-variants")]
    pub fn broken_clear_crl(&mut self) {
        self.crl = None;
    }

    /// Add or replace the certificate of peer `who` under the name `who.cn()` (`platform`, an
    /// application ID, a gateway ID on the platform side). Refused, with nothing changed, if
    /// the certificate does not have `who`'s role and CN, or if the name is already held with
    /// another role ([`SecurityError::CertWrongRole`], DES-CERT-4 step 3). The time-dependent
    /// checks (period, CRL) are made at use, with `now`.
    pub fn add_peer(&mut self, who: Identity, cert: X509) -> Result<()> {
        check_role(&cert, &who)?;
        if let Some(held) = self.peers.get(who.cn())
            && held.identity.as_ref().map(Identity::role) != Some(who.role())
        {
            return Err(SecurityError::CertWrongRole);
        }
        let name = who.cn().to_owned();
        self.peers.insert(name, PeerCert::new(cert, Some(who))?);
        Ok(())
    }

    /// [`Self::add_peer`] from a PEM that holds exactly one certificate.
    pub fn add_peer_pem(&mut self, who: Identity, pem: &[u8]) -> Result<()> {
        self.add_peer(who, single_cert_pem(pem)?)
    }

    /// Own private key (never log it).
    pub fn own_key(&self) -> &PKey<Private> {
        &self.own_key
    }

    /// A JWS RS256 signer of the own key, built on first use and then kept.
    pub fn own_signer(&self) -> Result<&JwsSigner> {
        get_or_build(&self.own_signer, || JwsSigner::new(&self.own_key))
    }

    /// Own certificate and kid.
    pub fn own(&self) -> &PeerCert {
        &self.own
    }

    /// The trusted root.
    pub fn root(&self) -> &X509 {
        &self.root
    }

    /// The current CRL, if any.
    pub fn crl(&self) -> Option<&X509Crl> {
        self.crl.as_deref()
    }

    /// A peer by name.
    pub fn peer(&self, name: &str) -> Result<&PeerCert> {
        self.peers
            .get(name)
            .ok_or_else(|| SecurityError::UnknownPeer(name.to_string()))
    }

    /// A peer by kid, with its name.
    pub fn peer_by_kid(&self, kid: &str) -> Option<(&str, &PeerCert)> {
        self.peers
            .iter()
            .find(|(_, p)| p.kid == kid)
            .map(|(n, p)| (n.as_str(), p))
    }

    /// Names of all peers.
    pub fn peer_names(&self) -> impl Iterator<Item = &str> {
        self.peers.keys().map(String::as_str)
    }
}

/// Checks that every PEM block of `pem` is labelled `expected` (RFC 7468; DES-CERT-2: a
/// certificate or CRL response with another block, e.g. a private key, is refused). Text outside
/// the blocks is allowed.
pub fn only_pem_blocks(pem: &[u8], expected: &'static str) -> Result<()> {
    for line in String::from_utf8_lossy(pem).lines() {
        if let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
            && label != expected
        {
            return Err(SecurityError::PemBlock {
                found: label.to_owned(),
                expected,
            });
        }
    }
    Ok(())
}

/// The one certificate of a peer PEM (DES-CERT-2: `platform.pem` and every peer certificate is
/// exactly one certificate, no chain, and nothing else): [`SecurityError::NotOneCertificate`]
/// for none or more, [`SecurityError::PemBlock`] for a block of another type.
pub fn single_cert_pem(pem: &[u8]) -> Result<X509> {
    only_pem_blocks(pem, "CERTIFICATE")?;
    let mut certs = X509::stack_from_pem(pem).map_err(km("peer certificate"))?;
    match certs.len() {
        1 => Ok(certs.remove(0)),
        n => Err(SecurityError::NotOneCertificate(n)),
    }
}

/// `KeyStore` is shared between threads and cloned per connection; the caches must not change
/// that.
const _: fn() = || {
    fn assert_shareable<T: Clone + Send + Sync>() {}
    assert_shareable::<KeyStore>();
    assert_shareable::<PeerCert>();
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn self_signed() -> (String, String) {
        let (key, cert) = crate::security::test_util::self_signed("platform");
        let cert = String::from_utf8(cert.to_pem().unwrap()).unwrap();
        let key = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        (cert, key)
    }

    /// DES-CERT-2: one certificate and nothing else; explanatory text outside blocks is fine.
    #[test]
    fn a_certificate_pem_with_another_block_is_refused() {
        let (cert, key) = self_signed();
        assert!(single_cert_pem(cert.as_bytes()).is_ok());
        assert!(single_cert_pem(format!("the platform's certificate\n{cert}").as_bytes()).is_ok());
        for mixed in [format!("{cert}{key}"), format!("{key}{cert}")] {
            match single_cert_pem(mixed.as_bytes()) {
                Err(SecurityError::PemBlock { found, expected }) => {
                    assert_eq!((found.as_str(), expected), ("PRIVATE KEY", "CERTIFICATE"));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            single_cert_pem(format!("{cert}{cert}").as_bytes()),
            Err(SecurityError::NotOneCertificate(2))
        ));
        assert!(only_pem_blocks(b"-----BEGIN X509 CRL-----\n", "X509 CRL").is_ok());
        assert!(only_pem_blocks(cert.as_bytes(), "X509 CRL").is_err());
    }
}
