//! The simulated platform's certificate authority (SM-MUTUAL, SM-CERTEXP, SEC-CERT-1,
//! SEC-CERT-2, SEC-CERT-3, IF-CERT-1).
//!
//! One self-signed RSA-2048 root (CA, `keyCertSign` + `cRLSign`) issues every certificate of
//! the simulation:
//!
//! | kind | subject | use |
//! |---|---|---|
//! | platform TLS server | CN=localhost, SAN `localhost`, `127.0.0.1` | MQTT broker and HTTPS endpoint |
//! | platform data protection | CN=platform, EKU platform role | JOSE/XML sealing to and by the platform |
//! | application data protection | CN=`{appId}`, OU=application, EKU application role | data profiles for one application |
//! | gateway client | O=CN=`{gatewayId}` | MQTT/HTTPS mutual TLS; O is rumqttd's tenant |
//! | gateway data protection | O=CN=`{gatewayId}`, OU=data-protection, EKU gateway role | the gateway's signing/decryption key |
//!
//! Every data-protection certificate carries exactly one role as its extended key usage
//! ([`gateway::security::Role::eku_oid`], DES-CERT-4 step 3), so a peer can tell the platform's
//! certificate from a gateway's or an application's of the same root. CRLs carry an increasing
//! CRL number (DES-CERT-3 rollback rule) and are valid [`CRL_VALIDITY_DAYS`] days.
//!
//! Keys are generated with OpenSSL (`Rsa::generate(2048)`, rcgen's own backend cannot make RSA
//! keys) and imported into rcgen as PKCS#8 PEM. The CA state lives in a directory so the CLI can
//! revoke later, from another process:
//!
//! ```text
//! DIR/root.pem, root.key                       the root (key 0600)
//! DIR/platform-tls.pem, platform-tls.key       TLS server certificate
//! DIR/platform-dp.pem, platform-dp.key         platform data-protection certificate
//! DIR/apps/{appId}.pem, {appId}.key            application data-protection certificates
//! DIR/gateways/{gw}/client.pem, gateway-dp.pem gateway certificates (public halves only)
//! DIR/crl.pem, crl.der                         the current CRL (thisUpdate/nextUpdate, CRL number)
//! DIR/index.json                               issued serials, kinds, subjects, revocations
//! ```
//!
//! Several processes may use one directory (`run` beside `provision`/`revoke`); each write
//! replaces a file atomically (write + rename), but there is no lock: two processes issuing or
//! revoking at the very same moment can lose one index update. `run` re-reads the index every
//! two seconds ([`Ca::reload`]) before it writes anything.
//!
//! Gateway private keys are handed out once (see [`crate::provision`]) and never kept here.
//! Revoking a gateway or an application revokes every live certificate of that subject and
//! re-signs the CRL with the next CRL number.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use gateway::protocol::ids::GatewayId;
use gateway::security::Role;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Validity of the root certificate.
pub const ROOT_VALIDITY_DAYS: i64 = 3650;
/// Validity of every leaf certificate.
pub const LEAF_VALIDITY_DAYS: i64 = 365;
/// Time between a CRL's thisUpdate and nextUpdate, days (DES-CERT-3: the gateway refreshes
/// every `crl_refresh_sec` and before nextUpdate, so an endpoint outage shorter than this
/// changes nothing).
pub const CRL_VALIDITY_DAYS: i64 = 7;
/// Age after which a running simulator re-signs the CRL (with the next CRL number), so that a
/// CRL a gateway holds has at least `CRL_VALIDITY_DAYS - CRL_REISSUE_AFTER_DAYS` days left
/// when it was fetched: an endpoint outage shorter than that changes nothing (DES-CERT-3).
pub const CRL_REISSUE_AFTER_DAYS: i64 = 1;

/// The margin to pass to [`Ca::refresh_crl_if_due`] so that the CRL is re-signed once it is
/// [`CRL_REISSUE_AFTER_DAYS`] old.
pub fn crl_refresh_margin() -> Duration {
    Duration::days(CRL_VALIDITY_DAYS - CRL_REISSUE_AFTER_DAYS)
}
/// Back-dating of notBefore / thisUpdate against small clock differences between peers.
const CLOCK_SKEW_MINUTES: i64 = 5;

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// SEC-CERT-3: reading or writing the CA state directory failed.
    #[error("SEC-CERT-3: CA state I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// SM-MUTUAL: key generation or certificate/CRL signing failed.
    #[error("SM-MUTUAL: certificate generation failed: {0}")]
    Generate(String),
    /// SEC-CERT-2: the CA index is unreadable or inconsistent.
    #[error("SEC-CERT-2: CA index: {0}")]
    Index(String),
    /// SM-ID: an application ID is not 1..=64 characters of `[A-Za-z0-9._-]`, or is the
    /// reserved `platform` (the platform's key store name, DES-CERT-4).
    #[error(
        "SM-ID: application ID {0:?} must be 1..=64 characters of [A-Za-z0-9._-] and not `platform`"
    )]
    AppId(String),
    /// SEC-CERT-2: the subject to revoke has no certificate issued by this CA.
    #[error("SEC-CERT-2: no certificate was issued to {0:?}")]
    UnknownSubject(String),
    /// SEC-CERT-1: the directory already holds a CA (refusing to overwrite it).
    #[error("SEC-CERT-1: {0} already holds a CA")]
    Exists(PathBuf),
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Generate(e.to_string())
    }
}

impl From<openssl::error::ErrorStack> for CaError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        CaError::Generate(e.to_string())
    }
}

/// An application identifier (the subject CN of an application data-protection certificate).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(String);

impl AppId {
    /// Validates `s`: 1..=64 characters of `[A-Za-z0-9._-]`, not starting with `.`, and not
    /// `platform` (reserved: peers hold the platform's certificate under that name, so no
    /// application may be issued one with that CN).
    pub fn new(s: impl Into<String>) -> Result<Self, CaError> {
        let s = s.into();
        let ok = (1..=64).contains(&s.len())
            && !s.starts_with('.')
            && s != gateway::security::cert::PLATFORM_CN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s))
        } else {
            Err(CaError::AppId(s))
        }
    }
    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AppId {
    type Error = CaError;
    fn try_from(s: String) -> Result<Self, CaError> {
        Self::new(s)
    }
}

impl From<AppId> for String {
    fn from(a: AppId) -> String {
        a.0
    }
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertKind {
    /// The root CA.
    Root,
    /// The platform's TLS server certificate (broker and HTTPS).
    PlatformTls,
    /// The platform's data-protection certificate.
    PlatformDataProtection,
    /// An application's data-protection certificate.
    AppDataProtection,
    /// A gateway's TLS client certificate.
    GatewayClient,
    /// A gateway's data-protection certificate.
    GatewayDataProtection,
}

/// One issued certificate as recorded in `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedRecord {
    /// Serial number, lower-case hex of the DER integer content.
    pub serial: String,
    /// What it is for.
    pub kind: CertKind,
    /// The subject identifier (gateway ID, app ID, `platform`, `root`).
    pub subject: String,
    /// SHA-256 thumbprint (hex) of the certificate DER (the JOSE `kid`, DES-SEAL).
    pub kid: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The CA index file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaIndex {
    /// Number of the last CRL signed.
    pub crl_number: u64,
    /// thisUpdate of the current CRL.
    pub crl_this_update: Option<DateTime<Utc>>,
    /// nextUpdate of the current CRL.
    pub crl_next_update: Option<DateTime<Utc>>,
    /// Every certificate issued, oldest first.
    pub certs: Vec<IssuedRecord>,
}

/// A freshly issued certificate with its private key (PEM).
#[derive(Clone)]
pub struct IssuedCert {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The index record.
    pub record: IssuedRecord,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SEC-CERT-3: never print private keys.
        f.debug_struct("IssuedCert")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// The two certificates of a gateway.
#[derive(Debug, Clone)]
pub struct GatewayCredentials {
    /// TLS client certificate (O = CN = gateway ID).
    pub client: IssuedCert,
    /// Data-protection certificate.
    pub data_protection: IssuedCert,
}

/// An application certificate as listed by the HTTPS endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppCertInfo {
    /// The application.
    pub app_id: String,
    /// SHA-256 thumbprint (hex) of the certificate DER.
    pub kid: String,
    /// End of validity (RFC 3339).
    pub not_after: DateTime<Utc>,
}

/// A deliberately unacceptable platform data-protection certificate (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultyCert {
    /// Validity period over.
    Expired,
    /// Listed in the CRL.
    Revoked,
}

/// The CA: its issuer key, its directory and its index.
pub struct Ca {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    root_pem: String,
    index: CaIndex,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a public file (certificate, CRL, index), replacing it atomically.
/// An exclusive advisory lock (flock) on `{dir}/ca.lock`, held while one writer reloads,
/// changes and saves the CA state: `platform-sim run` and the `provision`/`revoke` commands may
/// write the same directory at once. Released when dropped.
struct WriteLock {
    _file: fs::File,
}

fn write_lock(dir: &Path) -> Result<WriteLock, CaError> {
    let p = dir.join("ca.lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io_err(&p))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_err(&p)(std::io::Error::from(e)))?;
    Ok(WriteLock { _file: f })
}

pub(crate) fn write_public(path: &Path, data: &[u8]) -> Result<(), CaError> {
    let tmp = path.with_extension("tmp~");
    fs::write(&tmp, data).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Writes a private key with owner-only permissions (SEC-CERT-3): the file is created 0600 and
/// its mode is forced to 0600 again in case it already existed.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), CaError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn mkdir(path: &Path) -> Result<(), CaError> {
    fs::create_dir_all(path).map_err(io_err(path))
}

fn to_time(t: DateTime<Utc>) -> Result<time::OffsetDateTime, CaError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map_err(|e| CaError::Generate(e.to_string()))
}

/// A new RSA-2048 key as an rcgen key pair plus its PKCS#8 PEM.
fn rsa_key() -> Result<(KeyPair, String), CaError> {
    let rsa = openssl::rsa::Rsa::generate(2048)?;
    let pkey = openssl::pkey::PKey::from_rsa(rsa)?;
    let pem = String::from_utf8(pkey.private_key_to_pem_pkcs8()?)
        .map_err(|e| CaError::Generate(e.to_string()))?;
    let kp = KeyPair::from_pem(&pem)?;
    Ok((kp, pem))
}

/// A random positive serial of 16 bytes (RFC 5280: at most 20 octets, positive, unique).
fn random_serial() -> Vec<u8> {
    let mut b: [u8; 16] = rand::random();
    b[0] = (b[0] & 0x7f) | 0x01;
    b.to_vec()
}

/// SHA-256 thumbprint of a certificate's DER, lower-case hex.
pub fn thumbprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The extended key usage extension (`id-ce-extKeyUsage`, 2.5.29.37, not critical) listing
/// only `role`'s OID (DES-CERT-4 step 3). rcgen's own `ExtendedKeyUsagePurpose::Other` takes
/// arcs as `u64`, too small for the UUID arc, so the OID's DER content comes from OpenSSL
/// (`OBJ_txt2obj`) and is wrapped as `SEQUENCE { OBJECT IDENTIFIER }`.
fn role_eku(role: Role) -> Result<CustomExtension, CaError> {
    let oid = openssl::asn1::Asn1Object::from_str(role.eku_oid())?;
    let content = oid.as_slice();
    let len = u8::try_from(content.len())
        .ok()
        .filter(|l| *l < 0x80 - 2)
        .ok_or_else(|| CaError::Generate("role OID too long".into()))?;
    let mut der = vec![0x30, len + 2, 0x06, len];
    der.extend_from_slice(content);
    Ok(CustomExtension::from_oid_content(&[2, 5, 29, 37], der))
}

fn dn(cn: &str, o: Option<&str>, ou: Option<&str>) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    if let Some(o) = o {
        d.push(DnType::OrganizationName, o);
    }
    if let Some(ou) = ou {
        d.push(DnType::OrganizationalUnitName, ou);
    }
    d.push(DnType::CommonName, cn);
    d
}

impl Ca {
    /// Creates a fresh CA in `dir` (created if missing): root, platform TLS server certificate,
    /// platform data-protection certificate and an empty CRL. Refuses a directory that already
    /// holds a CA.
    pub fn create(dir: &Path) -> Result<Self, CaError> {
        mkdir(dir)?;
        if dir.join("index.json").exists() {
            return Err(CaError::Exists(dir.to_owned()));
        }
        let now = Utc::now();
        let (root_key, root_key_pem) = rsa_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(
            "SGW Simulated Platform Root CA",
            Some("SGW Platform Simulator"),
            None,
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let serial = random_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = to_time(now - Duration::minutes(CLOCK_SKEW_MINUTES))?;
        params.not_after = to_time(now + Duration::days(ROOT_VALIDITY_DAYS))?;
        let root = params.self_signed(&root_key)?;
        let root_pem = root.pem();
        write_private(&dir.join("root.key"), root_key_pem.as_bytes())?;
        write_public(&dir.join("root.pem"), root_pem.as_bytes())?;
        let mut index = CaIndex::default();
        index.certs.push(IssuedRecord {
            serial: hex::encode(&serial),
            kind: CertKind::Root,
            subject: "root".into(),
            kid: thumbprint(root.der()),
            not_before: now - Duration::minutes(CLOCK_SKEW_MINUTES),
            not_after: now + Duration::days(ROOT_VALIDITY_DAYS),
            revoked_at: None,
        });
        let issuer = Issuer::new(params, root_key);
        let mut ca = Ca {
            dir: dir.to_owned(),
            issuer,
            root_pem,
            index,
        };
        let tls = ca.issue(CertKind::PlatformTls, "platform")?;
        write_public(&dir.join("platform-tls.pem"), tls.cert_pem.as_bytes())?;
        write_private(&dir.join("platform-tls.key"), tls.key_pem.as_bytes())?;
        let dp = ca.issue(CertKind::PlatformDataProtection, "platform")?;
        write_public(&dir.join("platform-dp.pem"), dp.cert_pem.as_bytes())?;
        write_private(&dir.join("platform-dp.key"), dp.key_pem.as_bytes())?;
        mkdir(&dir.join("apps"))?;
        mkdir(&dir.join("gateways"))?;
        ca.sign_crl()?;
        Ok(ca)
    }

    /// Opens the CA kept in `dir`.
    pub fn open(dir: &Path) -> Result<Self, CaError> {
        let read = |name: &str| {
            let p = dir.join(name);
            fs::read_to_string(&p).map_err(io_err(&p))
        };
        let root_pem = read("root.pem")?;
        let key = KeyPair::from_pem(&read("root.key")?)?;
        let issuer = Issuer::from_ca_cert_pem(&root_pem, key)?;
        let index = Self::read_index(dir)?;
        Ok(Ca {
            dir: dir.to_owned(),
            issuer,
            root_pem,
            index,
        })
    }

    /// Opens the CA in `dir`, creating it if the directory holds none.
    pub fn open_or_create(dir: &Path) -> Result<Self, CaError> {
        if dir.join("index.json").exists() {
            Self::open(dir)
        } else {
            Self::create(dir)
        }
    }

    fn read_index(dir: &Path) -> Result<CaIndex, CaError> {
        let p = dir.join("index.json");
        let text = fs::read_to_string(&p).map_err(io_err(&p))?;
        serde_json::from_str(&text).map_err(|e| CaError::Index(e.to_string()))
    }

    /// Changes the index under the directory's write lock, starting from what is on disk
    /// (another process may have written since this one read it), and saves it.
    fn locked_update(&mut self, f: impl FnOnce(&mut CaIndex)) -> Result<(), CaError> {
        let _lock = write_lock(&self.dir)?;
        if self.dir.join("index.json").exists() {
            self.index = Self::read_index(&self.dir)?;
        }
        f(&mut self.index);
        self.write_index()
    }

    fn write_index(&self) -> Result<(), CaError> {
        let text =
            serde_json::to_string_pretty(&self.index).map_err(|e| CaError::Index(e.to_string()))?;
        write_public(&self.dir.join("index.json"), text.as_bytes())
    }

    /// Re-reads the index (revocations done by another process, e.g. `platform-sim revoke`).
    /// Returns whether the CRL number changed.
    pub fn reload(&mut self) -> Result<bool, CaError> {
        let index = Self::read_index(&self.dir)?;
        let changed = index.crl_number != self.index.crl_number;
        self.index = index;
        Ok(changed)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The index (issued serials and revocations).
    pub fn index(&self) -> &CaIndex {
        &self.index
    }
    /// Root certificate PEM.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }
    /// Path of the root certificate PEM.
    pub fn root_path(&self) -> PathBuf {
        self.dir.join("root.pem")
    }
    /// Paths of the platform TLS server certificate and key (broker and HTTPS endpoint).
    pub fn tls_server_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.join("platform-tls.pem"),
            self.dir.join("platform-tls.key"),
        )
    }
    /// Paths of the platform data-protection certificate and key.
    pub fn platform_dp_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.join("platform-dp.pem"),
            self.dir.join("platform-dp.key"),
        )
    }
    /// The current CRL, PEM.
    pub fn crl_pem(&self) -> Result<String, CaError> {
        let p = self.dir.join("crl.pem");
        fs::read_to_string(&p).map_err(io_err(&p))
    }
    /// The current CRL, DER.
    pub fn crl_der(&self) -> Result<Vec<u8>, CaError> {
        let p = self.dir.join("crl.der");
        fs::read(&p).map_err(io_err(&p))
    }

    /// Issues a certificate of `kind` for `subject` and records it (the caller stores the files).
    fn issue(&mut self, kind: CertKind, subject: &str) -> Result<IssuedCert, CaError> {
        let now = Utc::now();
        let not_before = now - Duration::minutes(CLOCK_SKEW_MINUTES);
        let not_after = now + Duration::days(LEAF_VALIDITY_DAYS);
        self.issue_valid(kind, subject, not_before, not_after)
    }

    /// Rotates the platform's data-protection certificate (SM-CERTEXP, DES-SEAL-6): a new key
    /// and certificate (subject `platform`, platform role, full validity) replace
    /// `platform-dp.pem` / `platform-dp.key`. The previous certificate stays valid and
    /// unrevoked in the index; peers learn the new one from the certificate endpoint when they
    /// meet its `kid`.
    pub fn rotate_platform_dp(&mut self) -> Result<IssuedCert, CaError> {
        self.rotate_platform_dp_until(Utc::now() + Duration::days(LEAF_VALIDITY_DAYS))
    }

    /// As [`Ca::rotate_platform_dp`], with a certificate that ends at `not_after` (a platform
    /// certificate that expires while gateways hold it, SM-CERTEXP, DES-CERT-8).
    pub fn rotate_platform_dp_until(
        &mut self,
        not_after: DateTime<Utc>,
    ) -> Result<IssuedCert, CaError> {
        let not_before = Utc::now() - Duration::minutes(CLOCK_SKEW_MINUTES);
        let dp = self.issue_valid(
            CertKind::PlatformDataProtection,
            "platform",
            not_before,
            not_after,
        )?;
        write_public(&self.dir.join("platform-dp.pem"), dp.cert_pem.as_bytes())?;
        write_private(&self.dir.join("platform-dp.key"), dp.key_pem.as_bytes())?;
        Ok(dp)
    }

    /// Issues a platform data-protection certificate that peers must refuse, for fault
    /// injection (SEC-CERT-2, IF-PSTART-2): [`FaultyCert::Expired`] ended a day ago,
    /// [`FaultyCert::Revoked`] is valid but revoked at once (the CRL is re-signed). Neither
    /// replaces the real platform certificate; the index records them under the subjects
    /// `platform-expired` / `platform-revoked`.
    pub fn issue_faulty_platform_dp(&mut self, which: FaultyCert) -> Result<IssuedCert, CaError> {
        let now = Utc::now();
        match which {
            FaultyCert::Expired => self.issue_valid(
                CertKind::PlatformDataProtection,
                "platform-expired",
                now - Duration::days(2),
                now - Duration::days(1),
            ),
            FaultyCert::Revoked => {
                let c = self.issue_valid(
                    CertKind::PlatformDataProtection,
                    "platform-revoked",
                    now - Duration::minutes(CLOCK_SKEW_MINUTES),
                    now + Duration::days(LEAF_VALIDITY_DAYS),
                )?;
                self.revoke_subject(&[CertKind::PlatformDataProtection], "platform-revoked")?;
                Ok(c)
            }
        }
    }

    fn issue_valid(
        &mut self,
        kind: CertKind,
        subject: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<IssuedCert, CaError> {
        let (key, key_pem) = rsa_key()?;
        let mut params = match kind {
            CertKind::PlatformTls => {
                CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
            }
            _ => CertificateParams::default(),
        };
        let dp_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::DataEncipherment,
        ];
        match kind {
            CertKind::Root => {
                return Err(CaError::Generate("the root is made by Ca::create".into()));
            }
            CertKind::PlatformTls => {
                params.distinguished_name = dn("localhost", Some("SGW Platform Simulator"), None);
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            CertKind::PlatformDataProtection => {
                params.distinguished_name = dn(
                    "platform",
                    Some("SGW Platform Simulator"),
                    Some("data-protection"),
                );
                params.key_usages = dp_usages;
                params.custom_extensions = vec![role_eku(Role::Platform)?];
            }
            CertKind::AppDataProtection => {
                params.distinguished_name = dn(subject, None, Some("application"));
                params.key_usages = dp_usages;
                params.custom_extensions = vec![role_eku(Role::Application)?];
            }
            CertKind::GatewayClient => {
                // rumqttd takes the tenant from the subject O (alphanumeric): O = CN = gateway ID.
                params.distinguished_name = dn(subject, Some(subject), None);
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            CertKind::GatewayDataProtection => {
                params.distinguished_name = dn(subject, Some(subject), Some("data-protection"));
                params.key_usages = dp_usages;
                params.custom_extensions = vec![role_eku(Role::Gateway)?];
            }
        }
        let serial = random_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = to_time(not_before)?;
        params.not_after = to_time(not_after)?;
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.signed_by(&key, &self.issuer)?;
        let record = IssuedRecord {
            serial: hex::encode(&serial),
            kind,
            subject: subject.to_owned(),
            kid: thumbprint(cert.der()),
            not_before,
            not_after,
            revoked_at: None,
        };
        let r = record.clone();
        self.locked_update(|ix| ix.certs.push(r))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem,
            record,
        })
    }

    /// Issues a gateway's TLS client certificate and data-protection certificate. The
    /// certificates (public) are kept under `gateways/{gw}/`; the private keys are only returned.
    pub fn issue_gateway(&mut self, gw: &GatewayId) -> Result<GatewayCredentials, CaError> {
        let client = self.issue(CertKind::GatewayClient, gw.as_str())?;
        let data_protection = self.issue(CertKind::GatewayDataProtection, gw.as_str())?;
        let d = self.dir.join("gateways").join(gw.as_str());
        mkdir(&d)?;
        write_public(&d.join("client.pem"), client.cert_pem.as_bytes())?;
        write_public(
            &d.join("gateway-dp.pem"),
            data_protection.cert_pem.as_bytes(),
        )?;
        Ok(GatewayCredentials {
            client,
            data_protection,
        })
    }

    /// Issues (or re-issues) an application's data-protection certificate; certificate and key
    /// are kept under `apps/` (the simulator plays the application too).
    pub fn issue_app(&mut self, app: &AppId) -> Result<IssuedCert, CaError> {
        let c = self.issue(CertKind::AppDataProtection, app.as_str())?;
        let d = self.dir.join("apps");
        mkdir(&d)?;
        write_public(&d.join(format!("{app}.pem")), c.cert_pem.as_bytes())?;
        write_private(&d.join(format!("{app}.key")), c.key_pem.as_bytes())?;
        Ok(c)
    }

    /// The gateway's current data-protection certificate PEM, if it was provisioned.
    pub fn gateway_dp_cert_pem(&self, gw: &GatewayId) -> Option<String> {
        fs::read_to_string(
            self.dir
                .join("gateways")
                .join(gw.as_str())
                .join("gateway-dp.pem"),
        )
        .ok()
    }

    fn live(&self, kind: CertKind, subject: &str) -> Option<&IssuedRecord> {
        self.index
            .certs
            .iter()
            .rev()
            .find(|r| r.kind == kind && r.subject == subject)
            .filter(|r| r.revoked_at.is_none())
    }

    /// Applications whose latest certificate is not revoked, with `kid` and notAfter.
    pub fn apps(&self) -> Vec<AppCertInfo> {
        let mut ids: Vec<&str> = self
            .index
            .certs
            .iter()
            .filter(|r| r.kind == CertKind::AppDataProtection)
            .map(|r| r.subject.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| self.live(CertKind::AppDataProtection, id))
            .map(|r| AppCertInfo {
                app_id: r.subject.clone(),
                kid: r.kid.clone(),
                not_after: r.not_after,
            })
            .collect()
    }

    /// The application's current certificate PEM, `None` if unknown or revoked.
    pub fn app_cert_pem(&self, app: &AppId) -> Option<String> {
        self.live(CertKind::AppDataProtection, app.as_str())?;
        fs::read_to_string(self.dir.join("apps").join(format!("{app}.pem"))).ok()
    }

    /// Whether the certificate with this serial (hex) is revoked.
    pub fn is_serial_revoked(&self, serial_hex: &str) -> bool {
        let s = serial_hex.to_ascii_lowercase();
        self.index
            .certs
            .iter()
            .any(|r| r.serial == s && r.revoked_at.is_some())
    }

    /// Whether the gateway has been revoked: it has certificates and its latest client
    /// certificate is revoked. The platform refuses such a gateway's messages (SEC-CERT-2).
    pub fn is_gateway_revoked(&self, gw: &GatewayId) -> bool {
        self.index
            .certs
            .iter()
            .rev()
            .find(|r| r.kind == CertKind::GatewayClient && r.subject == gw.as_str())
            .is_some_and(|r| r.revoked_at.is_some())
    }

    fn revoke_subject(&mut self, kinds: &[CertKind], subject: &str) -> Result<usize, CaError> {
        let _lock = write_lock(&self.dir)?;
        self.index = Self::read_index(&self.dir)?;
        if !self
            .index
            .certs
            .iter()
            .any(|r| kinds.contains(&r.kind) && r.subject == subject)
        {
            return Err(CaError::UnknownSubject(subject.to_owned()));
        }
        let now = Utc::now();
        let mut n = 0;
        for r in &mut self.index.certs {
            if kinds.contains(&r.kind) && r.subject == subject && r.revoked_at.is_none() {
                r.revoked_at = Some(now);
                n += 1;
            }
        }
        self.sign_crl_locked()?;
        Ok(n)
    }

    /// Revokes the platform's live data-protection certificate(s) and re-signs the CRL (a
    /// compromised key, SEC-CERT-2). `platform-dp.pem` stays until
    /// [`Ca::rotate_platform_dp`] replaces it. Returns how many were revoked.
    pub fn revoke_platform_dp(&mut self) -> Result<usize, CaError> {
        self.revoke_subject(&[CertKind::PlatformDataProtection], "platform")
    }

    /// Revokes every live certificate of the gateway (client and data protection) and re-signs
    /// the CRL. Returns how many certificates were revoked.
    pub fn revoke_gateway(&mut self, gw: &GatewayId) -> Result<usize, CaError> {
        self.revoke_subject(
            &[CertKind::GatewayClient, CertKind::GatewayDataProtection],
            gw.as_str(),
        )
    }

    /// Revokes every live certificate of the application and re-signs the CRL.
    pub fn revoke_app(&mut self, app: &AppId) -> Result<usize, CaError> {
        self.revoke_subject(&[CertKind::AppDataProtection], app.as_str())
    }

    /// Re-signs the CRL if its nextUpdate is less than `margin` away (or unknown), so a
    /// long-running simulator never serves an expired CRL (SEC-CERT-2). Returns whether it did.
    pub fn refresh_crl_if_due(&mut self, margin: Duration) -> Result<bool, CaError> {
        let due = self
            .index
            .crl_next_update
            .is_none_or(|next| next - Utc::now() < margin);
        if due {
            self.sign_crl()?;
        }
        Ok(due)
    }

    /// Signs a new CRL (next CRL number, thisUpdate = now, nextUpdate = now +
    /// [`CRL_VALIDITY_DAYS`]) listing every revoked certificate, and stores it.
    pub fn sign_crl(&mut self) -> Result<(), CaError> {
        let _lock = write_lock(&self.dir)?;
        if self.dir.join("index.json").exists() {
            self.index = Self::read_index(&self.dir)?;
        }
        self.sign_crl_locked()
    }

    /// [`Self::sign_crl`] with the write lock held and the index fresh.
    fn sign_crl_locked(&mut self) -> Result<(), CaError> {
        let now = Utc::now();
        let this_update = now - Duration::minutes(CLOCK_SKEW_MINUTES);
        let next_update = now + Duration::days(CRL_VALIDITY_DAYS);
        let mut revoked = Vec::new();
        for r in &self.index.certs {
            if let Some(at) = r.revoked_at {
                let serial = hex::decode(&r.serial).map_err(|e| CaError::Index(e.to_string()))?;
                revoked.push(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: to_time(at)?,
                    reason_code: None,
                    invalidity_date: None,
                });
            }
        }
        let number = self.index.crl_number + 1;
        let params = CertificateRevocationListParams {
            this_update: to_time(this_update)?,
            next_update: to_time(next_update)?,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        write_public(&self.dir.join("crl.der"), crl.der().as_ref())?;
        write_public(&self.dir.join("crl.pem"), crl.pem()?.as_bytes())?;
        self.index.crl_number = number;
        self.index.crl_this_update = Some(this_update);
        self.index.crl_next_update = Some(next_update);
        self.write_index()
    }
}
