//! The gateway's configuration: `gateway.toml` of the provisioning bundle as one Rust type
//! (DES-PROV-1, DES-PROV-2; realises SM-PORTS, SM-DEFAULTPW, SC-FTP-1, SEC-CERT-3, SEC-MASK-2).
//!
//! [`Config`] is the only schema of `gateway.toml`: the gateway reads it and
//! `platform-sim provision` writes it ([`Config::to_toml`]). Every table refuses unknown keys
//! (`deny_unknown_fields`), identifiers are the protocol's newtypes ([`GatewayId`],
//! [`Dataset`]) and the key ID of DES-MASK-3 ([`KeyId`]), paths are [`BundlePath`]s — written
//! relative to the bundle directory, resolved against it by [`Config::load`].
//!
//! Checking reports **every** problem, not the first, each as a [`Problem`]: the dotted key
//! (`datasets[1].columns[3].type`), what is wrong, and how to fix it.
//!
//! - [`Config::parse`] checks the structure (DES-PROV-2: unknown and missing keys, types,
//!   identifiers, `encoding`, `ftp_password_hash`, …). serde stops at the first error, so the
//!   parser records it, repairs the TOML tree at that key (removes an unknown key, puts a
//!   placeholder where a value is missing or wrong) and parses again, until it parses.
//! - [`Config::validate`] checks the rules between keys and against the files of the bundle:
//!   files present, private keys owner-only (SEC-CERT-3), certificates and keys that parse and
//!   match, certificates naming the gateway ID (DES-PROV-1), masking keys (DES-MASK-3),
//!   duplicate datasets, FTP users and directories, column counts and names, profile header
//!   size (DES-MSG-DATA-6), `max_records_per_message` in 1..=1000.
//! - [`check_bundle`] does both; `sgw check-config` prints its result.
//!
//! The masking key is the utility's (事業体用秘密鍵): the platform's tooling never makes it
//! (SEC-MASK-2). [`new_masking_key`] (`sgw masking-key new`) generates it on the gateway, into
//! the bundle's `[masking].keys_dir`. [`hash_password`] (`sgw hash-password`) makes the
//! Argon2id PHC strings of DES-FTP-3.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::profile::{Column, ProfileHeader};
use crate::protocol::gateway_side::GatewayConfig;
use crate::protocol::ids::{Dataset, GatewayId, SeqRange};
use crate::protocol::size::{MAX_PROFILE_HEADER_BYTES, profile_header_bytes};

/// The file name of the configuration inside a bundle (DES-PROV-1).
pub const CONFIG_FILE: &str = "gateway.toml";

/// Most records in one `data` message (DES-MSG-DATA-6).
pub const MAX_RECORDS_PER_MESSAGE: u32 = 1000;

/// Most columns of a dataset (DES-PROF-2).
pub const MAX_COLUMNS: usize = 256;

/// Argon2id parameters `sgw hash-password` uses, the minimum DES-FTP-3 accepts: memory in KiB.
pub const ARGON2_MIN_M_KIB: u32 = 19_456;
/// Argon2id minimum passes (DES-FTP-3).
pub const ARGON2_MIN_T: u32 = 2;
/// Argon2id minimum lanes (DES-FTP-3).
pub const ARGON2_MIN_P: u32 = 1;

// ---------------------------------------------------------------------------------------------
// Typed values
// ---------------------------------------------------------------------------------------------

/// A path from `gateway.toml`: as written (relative to the bundle directory, or absolute) and
/// as resolved by [`Config::load`] against the bundle directory. Serialises as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundlePath {
    written: PathBuf,
    resolved: PathBuf,
}

impl BundlePath {
    /// A path as written in `gateway.toml` (unresolved until [`Config::load`]).
    pub fn new(written: impl Into<PathBuf>) -> Self {
        let written = written.into();
        BundlePath {
            resolved: written.clone(),
            written,
        }
    }
    /// The path as written in `gateway.toml`.
    pub fn written(&self) -> &Path {
        &self.written
    }
    /// The path to use: joined to the bundle directory by [`Config::load`] (an absolute path
    /// stays as it is).
    pub fn path(&self) -> &Path {
        &self.resolved
    }
    fn resolve(&mut self, dir: &Path) {
        self.resolved = dir.join(&self.written);
    }
}

impl Serialize for BundlePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.written.to_string_lossy())
    }
}

impl<'de> Deserialize<'de> for BundlePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.contains('\0') {
            return Err(serde::de::Error::custom("a path must be non-empty text"));
        }
        Ok(BundlePath::new(s))
    }
}

/// A duration in whole seconds, as `gateway.toml` writes them (`*_sec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secs(pub u64);

impl Secs {
    /// As a [`Duration`].
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

/// Generates a string newtype validated on construction and on deserialisation.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr, $rule:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The rule a value must follow.
            pub const RULE: &'static str = $rule;
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, String> {
                let s = s.into();
                let check: fn(&str) -> bool = $check;
                if check(&s) {
                    Ok(Self(s))
                } else {
                    Err(format!("{s:?}: {}", Self::RULE))
                }
            }
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

checked_string!(
    /// A masking key ID (DES-MASK-1/3): 1..=16 ASCII letters or digits, the stem of
    /// `masking/<keyId>.key`.
    KeyId,
    |s| (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()),
    "DES-MASK-1: a masking keyId is 1..=16 ASCII letters or digits"
);

checked_string!(
    /// The FTP user of a dataset's legacy system (DES-FTP-3).
    FtpUser,
    |s| (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
    "DES-FTP-3: an FTP user is 1..=64 characters of [A-Za-z0-9._-]"
);

checked_string!(
    /// A dataset's FTP directory (DES-FTP-4): a single relative path segment.
    FtpDir,
    |s| !s.is_empty()
        && s.len() <= 255
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == '\\' || c.is_control()),
    "DES-PROV-2: ftp_dir is a single relative path segment (no `/`, `\\`, `.` or `..`)"
);

checked_string!(
    /// A legacy system's name (DES-PROF-2 `sourceSystem`).
    SourceSystem,
    |s| (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
    "DES-PROF-2: source_system must match ^[A-Za-z0-9._-]{1,64}$"
);

checked_string!(
    /// An Argon2id PHC string (DES-FTP-3): `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`, salt
    /// ≥ 16 bytes, hash 32 bytes, at least m = 19456, t = 2, p = 1.
    PasswordHash,
    |s| phc_problem(s).is_none(),
    "DES-FTP-3: ftp_password_hash must be an Argon2id PHC string \
     ($argon2id$v=19$m=…,t=…,p=…$salt$hash; salt >= 16 bytes, hash 32 bytes, \
     m >= 19456, t >= 2, p >= 1)"
);

/// What is wrong with a PHC string, or `None` if it is one DES-FTP-3 accepts.
pub fn phc_problem(s: &str) -> Option<String> {
    use argon2::password_hash::PasswordHash as Phc;
    let h = match Phc::new(s) {
        Ok(h) => h,
        Err(e) => return Some(format!("not a PHC string ({e})")),
    };
    if h.algorithm.as_str() != "argon2id" {
        return Some(format!("algorithm {} instead of argon2id", h.algorithm));
    }
    if h.version != Some(0x13) {
        return Some("version must be v=19".into());
    }
    let params = match argon2::Params::try_from(&h) {
        Ok(p) => p,
        Err(e) => return Some(format!("parameters: {e}")),
    };
    if params.m_cost() < ARGON2_MIN_M_KIB || params.t_cost() < ARGON2_MIN_T {
        return Some(format!(
            "parameters m={},t={},p={} below m=19456,t=2,p=1",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ));
    }
    let mut buf = [0u8; 64];
    match h
        .salt
        .map(|salt| salt.decode_b64(&mut buf).map(<[u8]>::len))
    {
        Some(Ok(n)) if n >= 16 => {}
        _ => return Some("salt must be at least 16 bytes".into()),
    }
    if h.hash.map(|o| o.len()) != Some(32) {
        return Some("hash must be 32 bytes".into());
    }
    None
}

/// The character encoding of a dataset's CSV (DES-CSV-2): ingest's own type, spelled
/// `"cp932"` or `"utf-8"` in `gateway.toml`.
pub use crate::ingest::TextEncoding as Encoding;

mod encoding_serde {
    use super::Encoding;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &Encoding, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(e.label())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Encoding, D::Error> {
        let s = String::deserialize(d)?;
        Encoding::from_label(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "DES-CSV-2: unknown encoding {s:?}, expected \"cp932\" or \"utf-8\""
            ))
        })
    }
}

/// `mqtts://HOST:PORT` (DES-MQTT-1: TLS only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    host: String,
    port: u16,
}

impl MqttUrl {
    /// Parses `mqtts://HOST:PORT`.
    pub fn new(s: &str) -> Result<Self, String> {
        let rule = "DES-MQTT-1: mqtt_url must be mqtts://HOST:PORT";
        let rest = s
            .strip_prefix("mqtts://")
            .ok_or_else(|| format!("{s:?}: {rule}"))?;
        let (host, port) = split_host_port(rest).ok_or_else(|| format!("{s:?}: {rule}"))?;
        let port = port.ok_or_else(|| format!("{s:?}: {rule} (the port is required)"))?;
        Ok(MqttUrl { host, port })
    }
    /// The broker's host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The broker's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for MqttUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mqtts://{}:{}", self.host, self.port)
    }
}

/// `https://HOST[:PORT]`, the base of the certificate endpoint (DES-CERT-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsBase {
    host: String,
    port: u16,
    text: String,
}

impl HttpsBase {
    /// Parses `https://HOST[:PORT]` (a trailing `/` is allowed; no other path).
    pub fn new(s: &str) -> Result<Self, String> {
        let rule = "DES-CERT-1: https_base must be https://HOST[:PORT]";
        let rest = s
            .strip_prefix("https://")
            .ok_or_else(|| format!("{s:?}: {rule}"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = split_host_port(rest).ok_or_else(|| format!("{s:?}: {rule}"))?;
        Ok(HttpsBase {
            host,
            port: port.unwrap_or(443),
            text: s.to_owned(),
        })
    }
    /// The server's host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The server's port (443 if not written).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `HOST[:PORT]` with a non-empty host of URL-safe characters (IPv6 in brackets) and a
/// non-zero port.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let end = v6.find(']')?;
        let host = &s[..end + 2];
        match &v6[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => {
            let n: u16 = p.parse().ok()?;
            if n == 0 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(n)
        }
    };
    Some((host.to_owned(), port))
}

macro_rules! string_serde {
    ($name:ident, $to:expr) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let to: fn(&$name) -> String = $to;
                s.serialize_str(&to(self))
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $name::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(MqttUrl, |u| u.to_string());
string_serde!(HttpsBase, |u| u.text.clone());
string_serde!(PortRange, |r| format!("{}-{}", r.first, r.last));

/// The passive data ports of the FTP server, `"FIRST-LAST"` (DES-FTP-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// Lowest port.
    pub first: u16,
    /// Highest port (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Parses `"FIRST-LAST"`, `1 <= FIRST <= LAST`.
    pub fn new(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?}: DES-FTP-1: passive_ports is \"FIRST-LAST\", 1 <= FIRST <= LAST");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(bad());
        }
        let (first, last): (u16, u16) =
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

// ---------------------------------------------------------------------------------------------
// The configuration
// ---------------------------------------------------------------------------------------------

/// `gateway.toml` (DES-PROV-2). Field order is the order [`Config::to_toml`] writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[gateway]`.
    pub gateway: GatewaySection,
    /// `[platform]`.
    pub platform: PlatformSection,
    /// `[tls]`.
    pub tls: TlsSection,
    /// `[data_protection]`.
    pub data_protection: DataProtectionSection,
    /// `[masking]`.
    pub masking: MaskingSection,
    /// `[ftp]`.
    pub ftp: FtpSection,
    /// `[storage]`.
    pub storage: StorageSection,
    /// `[[datasets]]`, one per kind of CSV (DES-ID-3).
    pub datasets: Vec<DatasetConfig>,
}

/// `[gateway]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// DES-ID-1; equals the client certificate's O and CN.
    pub id: GatewayId,
    /// Free text for operators (MON-2).
    pub name: String,
    /// Store, seq counter, boot count, epoch, reply memory, quarantine.
    pub state_dir: BundlePath,
}

/// `[platform]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSection {
    /// The broker (DES-MQTT-1).
    pub mqtt_url: MqttUrl,
    /// The certificate endpoint (DES-CERT-1).
    pub https_base: HttpsBase,
    /// Wait for `connect.result` (DES-MQTT-8, DES-MSG-CONN-3).
    pub connect_timeout_sec: Secs,
    /// MQTT keep-alive (DES-MQTT-5).
    pub keep_alive_sec: Secs,
    /// Records per data message, 1..=1000 (DES-MSG-DATA-6).
    pub max_records_per_message: u32,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Trust anchor of the broker's and HTTPS server's certificates.
    pub ca: BundlePath,
    /// Client certificate (O = CN = gateway ID).
    pub client_cert: BundlePath,
    /// Its private key, 0600.
    pub client_key: BundlePath,
}

/// `[data_protection]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataProtectionSection {
    /// The gateway's data-protection certificate (CN = gateway ID).
    pub cert: BundlePath,
    /// Its private key, 0600.
    pub key: BundlePath,
    /// The platform's data-protection certificate, exactly one.
    pub platform_cert: BundlePath,
    /// Root of the data-protection PKI.
    pub root_cert: BundlePath,
    /// CRL at provisioning time.
    pub crl: BundlePath,
    /// CRL refresh interval (DES-CERT-3), default 3600 s.
    #[serde(default = "default_hour")]
    pub crl_refresh_sec: Secs,
}

/// `[masking]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingSection {
    /// Directory of `<keyId>.key` files (DES-MASK-3).
    pub keys_dir: BundlePath,
    /// The key new values are masked with.
    pub active_key: KeyId,
}

/// `[ftp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpSection {
    /// Control connection address (DES-FTP-1).
    pub listen: SocketAddr,
    /// Passive data ports (DES-FTP-1).
    pub passive_ports: PortRange,
    /// Explicit FTPS before `USER` (DES-FTP-2), default true.
    #[serde(default = "default_true")]
    pub ftps_required: bool,
    /// FTPS server certificate, issued by the utility (DES-FTP-2).
    pub tls_cert: BundlePath,
    /// Its private key, 0600.
    pub tls_key: BundlePath,
    /// Largest accepted file (DES-FTP-6).
    pub max_file_bytes: u64,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Primary storage quota (DES-FTP-6, DES-MSG-MON-1).
    pub quota_bytes: u64,
    /// Acknowledged records older than this are evacuated (DES-EVAC-1); 0: all of them.
    pub retention_days: u32,
    /// Evacuation interval (DES-EVAC-1), default 3600 s.
    #[serde(default = "default_hour")]
    pub evacuation_interval_sec: Secs,
    /// Archives and their index (DES-EVAC-2/4).
    pub evacuation_dir: BundlePath,
}

/// `[[datasets]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// DES-ID-3.
    pub name: Dataset,
    /// The legacy system (profile `sourceSystem`, DES-PROF-2).
    pub source_system: SourceSystem,
    /// Its FTP user, unique across datasets (DES-FTP-3).
    pub ftp_user: FtpUser,
    /// Its directory, the user's `/` (DES-FTP-4).
    pub ftp_dir: FtpDir,
    /// Argon2id PHC string of its password (DES-FTP-3).
    pub ftp_password_hash: PasswordHash,
    /// CSV encoding (DES-CSV-2).
    #[serde(with = "encoding_serde")]
    pub encoding: Encoding,
    /// Whether the first record is the header (DES-CSV-3).
    pub header_row: bool,
    /// Columns in CSV order (DES-PROF-2, DES-CSV-4, DES-MASK-1).
    pub columns: Vec<Column>,
}

impl DatasetConfig {
    /// What ingest needs of this dataset (DES-CSV-2..5, DES-MASK-4).
    pub fn ingest_spec(&self) -> crate::ingest::DatasetSpec {
        crate::ingest::DatasetSpec {
            encoding: self.encoding,
            header_row: self.header_row,
            columns: self.columns.iter().map(Into::into).collect(),
        }
    }
}

fn default_hour() -> Secs {
    Secs(3600)
}
fn default_true() -> bool {
    true
}

/// One problem of a configuration: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `datasets[1].columns[3].type`; `gateway.toml` for the file itself.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}\n    fix: {}", self.key, self.problem, self.fix)
    }
}

fn problem(key: impl Into<String>, what: impl Into<String>, fix: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        problem: what.into(),
        fix: fix.into(),
    }
}

/// Why a configuration could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// DES-PROV-1: `gateway.toml` could not be read.
    #[error("DES-PROV-1: reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// DES-PROV-2: the configuration breaks rules; every problem found.
    #[error("DES-PROV-2: {} problem(s) in gateway.toml, first: {}", .0.len(), .0.first().map(|p| p.to_string()).unwrap_or_default())]
    Invalid(Vec<Problem>),
    /// DES-PROV-2: the configuration could not be written as TOML.
    #[error("DES-PROV-2: writing gateway.toml: {0}")]
    Write(String),
}

impl Config {
    /// Parses `gateway.toml` text and checks its structure (every problem, see the module
    /// docs). Paths stay unresolved.
    pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
        let parsed = parse_collecting(text);
        match parsed.config {
            Some(c) if parsed.problems.is_empty() => Ok(c),
            _ => Err(parsed.problems),
        }
    }

    /// Reads `dir/gateway.toml`, checks its structure and resolves its paths against `dir`.
    /// Rules between keys and files are checked by [`Config::validate`].
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let mut c = Config::parse(&text).map_err(ConfigError::Invalid)?;
        c.resolve(dir);
        Ok(c)
    }

    /// Resolves every path against the bundle directory `dir`.
    pub fn resolve(&mut self, dir: &Path) {
        for (_, p) in self.paths_mut() {
            p.resolve(dir);
        }
    }

    fn paths_mut(&mut self) -> Vec<(&'static str, &mut BundlePath)> {
        vec![
            ("gateway.state_dir", &mut self.gateway.state_dir),
            ("tls.ca", &mut self.tls.ca),
            ("tls.client_cert", &mut self.tls.client_cert),
            ("tls.client_key", &mut self.tls.client_key),
            ("data_protection.cert", &mut self.data_protection.cert),
            ("data_protection.key", &mut self.data_protection.key),
            (
                "data_protection.platform_cert",
                &mut self.data_protection.platform_cert,
            ),
            (
                "data_protection.root_cert",
                &mut self.data_protection.root_cert,
            ),
            ("data_protection.crl", &mut self.data_protection.crl),
            ("masking.keys_dir", &mut self.masking.keys_dir),
            ("ftp.tls_cert", &mut self.ftp.tls_cert),
            ("ftp.tls_key", &mut self.ftp.tls_key),
            ("storage.evacuation_dir", &mut self.storage.evacuation_dir),
        ]
    }

    /// `gateway.toml` text of this configuration (paths as written), laid out like the example
    /// of DES-PROV-2: a comment per table, columns as inline tables. Parsing it gives this
    /// configuration back.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        #[derive(Serialize)]
        struct Tables<'a> {
            gateway: &'a GatewaySection,
            platform: &'a PlatformSection,
            tls: &'a TlsSection,
            data_protection: &'a DataProtectionSection,
            masking: &'a MaskingSection,
            ftp: &'a FtpSection,
            storage: &'a StorageSection,
        }
        #[derive(Serialize)]
        struct DatasetKeys<'a> {
            name: &'a Dataset,
            source_system: &'a SourceSystem,
            ftp_user: &'a FtpUser,
            ftp_dir: &'a FtpDir,
            ftp_password_hash: &'a PasswordHash,
            #[serde(with = "encoding_serde")]
            encoding: Encoding,
            header_row: bool,
        }
        let err = |e: toml::ser::Error| ConfigError::Write(e.to_string());
        let tables = toml::to_string_pretty(&Tables {
            gateway: &self.gateway,
            platform: &self.platform,
            tls: &self.tls,
            data_protection: &self.data_protection,
            masking: &self.masking,
            ftp: &self.ftp,
            storage: &self.storage,
        })
        .map_err(err)?;
        let mut out = format!(
            "# gateway.toml — SGW provisioning settings (DES-PROV-2) of gateway {}.\n\
             # Paths are relative to this file's directory. Unknown keys are refused.\n\
             # Check with `sgw check-config --bundle DIR`.\n\n",
            self.gateway.id
        );
        for line in tables.lines() {
            let comment = match line {
                "[gateway]" => {
                    "# DES-ID-1 gateway ID (= the client certificate's O and CN); state directory."
                }
                "[platform]" => {
                    "# MQTT over TLS (DES-MQTT-1) and the HTTPS certificate endpoint (DES-CERT-1)."
                }
                "[tls]" => "# TLS trust anchor, client certificate and key (key file 0600).",
                "[data_protection]" => {
                    "# Data-protection certificates, key (0600) and CRL (DES-CERT-3/4)."
                }
                "[masking]" => {
                    "# The utility's masking keys (DES-MASK-3): <keys_dir>/<keyId>.key, 0600. The\n\
                     # platform never makes or sees them: create one on the gateway with\n\
                     # `sgw masking-key new --bundle DIR`."
                }
                "[ftp]" => {
                    "# FTP/FTPS for the legacy systems (DES-FTP-1/2). The FTPS certificate and key are\n\
                     # the utility's, for its LAN."
                }
                "[storage]" => "# Primary storage and evacuation (DES-EVAC-1..4).",
                _ => "",
            };
            if !comment.is_empty() {
                out.push_str(comment);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        }
        let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
        for d in &self.datasets {
            out.push_str("\n# One [[datasets]] table per kind of CSV (DES-ID-3, DES-FTP-3, DES-CSV-*).\n[[datasets]]\n");
            out.push_str(
                &toml::to_string(&DatasetKeys {
                    name: &d.name,
                    source_system: &d.source_system,
                    ftp_user: &d.ftp_user,
                    ftp_dir: &d.ftp_dir,
                    ftp_password_hash: &d.ftp_password_hash,
                    encoding: d.encoding,
                    header_row: d.header_row,
                })
                .map_err(err)?,
            );
            out.push_str("columns = [\n");
            for c in &d.columns {
                out.push_str(&format!(
                    "  {{ name = {}, type = \"{}\"",
                    quoted(&c.name),
                    c.ty.as_str()
                ));
                if let Some(u) = &c.unit {
                    out.push_str(&format!(", unit = {}", quoted(u)));
                }
                out.push_str(&format!(", masked = {} }},\n", c.masked));
            }
            out.push_str("]\n");
        }
        Ok(out)
    }

    /// The dataset named `name`.
    pub fn dataset(&self, name: &Dataset) -> Option<&DatasetConfig> {
        self.datasets.iter().find(|d| &d.name == name)
    }

    /// The protocol core's configuration (gateway ID, datasets, `max_records_per_message`,
    /// `connect_timeout_sec`); the rest keeps the protocol defaults.
    pub fn protocol_config(&self) -> GatewayConfig {
        let mut g = GatewayConfig::new(
            self.gateway.id.clone(),
            self.datasets.iter().map(|d| d.name.clone()).collect(),
        );
        g.max_records_per_message = u64::from(self.platform.max_records_per_message);
        g.connect_timeout_sec =
            i64::try_from(self.platform.connect_timeout_sec.0).unwrap_or(i64::MAX);
        g
    }

    /// The MQTT link's settings (DES-MQTT-1/5/8): broker from `mqtt_url`, keep-alive, TLS
    /// files; `backoff_seed` for the reconnect jitter (drawn from a CSPRNG by the caller).
    pub fn link_settings(&self, backoff_seed: u64) -> crate::runtime::mqtt::LinkSettings {
        crate::runtime::mqtt::LinkSettings {
            gateway: self.gateway.id.clone(),
            host: self.platform.mqtt_url.host().to_owned(),
            port: self.platform.mqtt_url.port(),
            keep_alive_sec: self.platform.keep_alive_sec.0,
            tls: crate::runtime::mqtt::TlsFiles {
                ca: self.tls.ca.path().to_owned(),
                cert: self.tls.client_cert.path().to_owned(),
                key: self.tls.client_key.path().to_owned(),
            },
            backoff_seed,
            broken: crate::broken::Broken::default(),
        }
    }

    /// The FTP server's settings (DES-FTP-1..4): `[ftp]` and one account per dataset.
    pub fn ftp_settings(&self) -> crate::runtime::ftp::FtpSettings {
        crate::runtime::ftp::FtpSettings {
            listen: self.ftp.listen,
            passive_ports: self.ftp.passive_ports.first..=self.ftp.passive_ports.last,
            tls: Some((
                self.ftp.tls_cert.path().to_owned(),
                self.ftp.tls_key.path().to_owned(),
            )),
            ftps_required: self.ftp.ftps_required,
            accounts: self
                .datasets
                .iter()
                .map(|d| crate::runtime::ftp::Account {
                    user: d.ftp_user.as_str().to_owned(),
                    password_phc: d.ftp_password_hash.as_str().to_owned(),
                    dataset: d.name.clone(),
                })
                .collect(),
        }
    }

    /// The profile header a dataset's data profiles carry, with a placeholder range and time
    /// (DES-PROF-2).
    pub fn profile_header(&self, d: &DatasetConfig) -> ProfileHeader {
        ProfileHeader {
            gateway_id: self.gateway.id.clone(),
            source_system: d.source_system.as_str().to_owned(),
            dataset: d.name.clone(),
            columns: d.columns.clone(),
            range: SeqRange { first: 1, last: 1 },
            created_at: chrono::DateTime::UNIX_EPOCH.fixed_offset(),
        }
    }

    /// Every rule between keys and against the bundle's files (module docs); empty when
    /// clean. Paths are used as resolved ([`Config::load`]).
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        self.validate_values(&mut out);
        self.validate_files(&mut out);
        self.validate_masking(&mut out);
        self.validate_datasets(&mut out);
        out
    }

    fn validate_values(&self, out: &mut Vec<Problem>) {
        let p = &self.platform;
        if !(1..=MAX_RECORDS_PER_MESSAGE).contains(&p.max_records_per_message) {
            out.push(problem(
                "platform.max_records_per_message",
                format!(
                    "{} is outside 1..=1000 (DES-MSG-DATA-6)",
                    p.max_records_per_message
                ),
                "set a value from 1 to 1000 (1000 is the usual one)",
            ));
        }
        for (key, v) in [
            ("platform.connect_timeout_sec", p.connect_timeout_sec),
            ("platform.keep_alive_sec", p.keep_alive_sec),
            (
                "data_protection.crl_refresh_sec",
                self.data_protection.crl_refresh_sec,
            ),
            (
                "storage.evacuation_interval_sec",
                self.storage.evacuation_interval_sec,
            ),
        ] {
            if v.0 == 0 {
                out.push(problem(
                    key,
                    "0 seconds is not an interval",
                    "give a positive number of seconds (see the example of DES-PROV-2)",
                ));
            }
        }
        if p.keep_alive_sec.0 > u64::from(u16::MAX) {
            out.push(problem(
                "platform.keep_alive_sec",
                format!(
                    "{} s does not fit MQTT's 16-bit keep-alive",
                    p.keep_alive_sec.0
                ),
                "use 60 (DES-MQTT-5)",
            ));
        }
        for (key, v) in [
            ("ftp.max_file_bytes", self.ftp.max_file_bytes),
            ("storage.quota_bytes", self.storage.quota_bytes),
        ] {
            if v == 0 {
                out.push(problem(key, "must be at least 1", "give a positive number"));
            }
        }
        if self.ftp.passive_ports.contains(self.ftp.listen.port()) {
            out.push(problem(
                "ftp.passive_ports",
                format!(
                    "the range includes the control port {} of ftp.listen",
                    self.ftp.listen.port()
                ),
                "choose passive ports that do not include the listen port (DES-FTP-1)",
            ));
        }
    }

    fn validate_files(&self, out: &mut Vec<Problem>) {
        let reprovision = "re-provision the gateway (`platform-sim provision`, DES-PROV-1) or \
                           correct the path";
        let ftp_fix = "the utility issues an FTPS server certificate for its LAN and puts \
                       certificate and key there (DES-FTP-2)";
        let fix_for = |key: &str| {
            if key.starts_with("ftp.") {
                ftp_fix
            } else {
                reprovision
            }
        };
        let certs: [(&str, &BundlePath, bool); 5] = [
            ("tls.ca", &self.tls.ca, false),
            ("tls.client_cert", &self.tls.client_cert, false),
            ("data_protection.cert", &self.data_protection.cert, false),
            (
                "data_protection.platform_cert",
                &self.data_protection.platform_cert,
                true,
            ),
            (
                "data_protection.root_cert",
                &self.data_protection.root_cert,
                false,
            ),
        ];
        let mut loaded = BTreeMap::new();
        for (key, bp, exactly_one) in certs {
            if let Some(text) = read_file(key, bp, false, fix_for(key), out) {
                if let Some(c) = parse_certs(key, bp, &text, exactly_one, fix_for(key), out) {
                    loaded.insert(key, c);
                }
            }
        }
        if let Some(text) = read_file("ftp.tls_cert", &self.ftp.tls_cert, false, ftp_fix, out)
            && let Some(c) = parse_certs(
                "ftp.tls_cert",
                &self.ftp.tls_cert,
                &text,
                false,
                ftp_fix,
                out,
            )
        {
            loaded.insert("ftp.tls_cert", c);
        }
        if let Some(text) = read_file(
            "data_protection.crl",
            &self.data_protection.crl,
            false,
            reprovision,
            out,
        ) && openssl::x509::X509Crl::from_pem(&text).is_err()
        {
            out.push(problem(
                "data_protection.crl",
                format!("{} is not a PEM CRL", bp_text(&self.data_protection.crl)),
                reprovision,
            ));
        }
        for (key, bp, cert_key) in [
            ("tls.client_key", &self.tls.client_key, "tls.client_cert"),
            (
                "data_protection.key",
                &self.data_protection.key,
                "data_protection.cert",
            ),
            ("ftp.tls_key", &self.ftp.tls_key, "ftp.tls_cert"),
        ] {
            let Some(text) = read_file(key, bp, true, fix_for(key), out) else {
                continue;
            };
            match openssl::pkey::PKey::private_key_from_pem(&text) {
                Err(_) => out.push(problem(
                    key,
                    format!("{} is not a PEM private key", bp_text(bp)),
                    fix_for(key),
                )),
                Ok(k) => {
                    if let Some(c) = loaded.get(cert_key)
                        && let Ok(public) = c.public_key()
                        && !public.public_eq(&k)
                    {
                        out.push(problem(
                            key,
                            format!(
                                "{} is not the key of the certificate {cert_key}",
                                bp_text(bp)
                            ),
                            fix_for(key),
                        ));
                    }
                }
            }
        }
        // DES-PROV-1: both gateway certificates name the gateway.
        for cert_key in ["tls.client_cert", "data_protection.cert"] {
            if let Some(c) = loaded.get(cert_key) {
                let cn = common_name(c);
                if cn.as_deref() != Some(self.gateway.id.as_str()) {
                    out.push(problem(
                        "gateway.id",
                        format!(
                            "{} is not the CN {} of the certificate {cert_key} (DES-PROV-1)",
                            self.gateway.id,
                            cn.map_or("(none)".to_owned(), |c| format!("{c:?}"))
                        ),
                        "use the bundle provisioned for this gateway, or correct gateway.id",
                    ));
                }
            }
        }
    }

    fn validate_masking(&self, out: &mut Vec<Problem>) {
        let dir = self.masking.keys_dir.path();
        let new_key = "on the gateway, run `sgw masking-key new --bundle DIR` (the utility makes its \
                       masking key, the platform never has it: SEC-MASK-2, DES-MASK-3)";
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                out.push(problem(
                    "masking.active_key",
                    format!(
                        "masking key {} is not loaded: directory {} cannot be read ({})",
                        self.masking.active_key,
                        bp_text(&self.masking.keys_dir),
                        io_text(&e)
                    ),
                    new_key,
                ));
                return;
            }
        };
        let mut ids = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("key") {
                continue;
            }
            let shown = format!(
                "{}/{}",
                self.masking.keys_dir.written().display(),
                entry.file_name().to_string_lossy()
            );
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let Ok(id) = KeyId::new(stem) else {
                out.push(problem(
                    "masking.keys_dir",
                    format!("{shown}: the file name is not <keyId>.key with a DES-MASK-1 keyId"),
                    "rename it to 1..=16 ASCII letters or digits plus .key, or remove it",
                ));
                continue;
            };
            let key = format!("masking.keys_dir[{stem}]");
            if let Ok(m) = fs::metadata(&path)
                && m.permissions().mode() & 0o077 != 0
            {
                out.push(problem(
                    &key,
                    format!(
                        "{shown} is readable by group or others (mode {:o}); private keys must \
                         be owner-only (SEC-CERT-3)",
                        m.permissions().mode() & 0o777
                    ),
                    format!("chmod 600 {}", path.display()),
                ));
            }
            match fs::read_to_string(&path) {
                Ok(t) if t.trim().len() == 64 && hex::decode(t.trim()).is_ok() => ids.push(id),
                Ok(_) => out.push(problem(
                    &key,
                    format!("{shown} does not hold 64 hex digits (DES-MASK-3)"),
                    "restore the key from the utility's backup; a new key needs a new keyId",
                )),
                Err(e) => out.push(problem(
                    &key,
                    format!("{shown}: {}", io_text(&e)),
                    "make it readable by the gateway's user",
                )),
            }
        }
        if !ids.contains(&self.masking.active_key) {
            out.push(problem(
                "masking.active_key",
                format!(
                    "masking key {} is not loaded: no valid {}/{}.key",
                    self.masking.active_key,
                    self.masking.keys_dir.written().display(),
                    self.masking.active_key
                ),
                new_key,
            ));
        }
    }

    fn validate_datasets(&self, out: &mut Vec<Problem>) {
        if self.datasets.is_empty() {
            out.push(problem(
                "datasets",
                "no dataset is configured",
                "add one [[datasets]] table per kind of CSV (DES-ID-3)",
            ));
        }
        for (i, d) in self.datasets.iter().enumerate() {
            let key = |k: &str| format!("datasets[{i}].{k}");
            for (field, same) in [
                (
                    "name",
                    self.datasets[..i].iter().position(|e| e.name == d.name),
                ),
                (
                    "ftp_user",
                    self.datasets[..i]
                        .iter()
                        .position(|e| e.ftp_user == d.ftp_user),
                ),
                (
                    "ftp_dir",
                    self.datasets[..i]
                        .iter()
                        .position(|e| e.ftp_dir == d.ftp_dir),
                ),
            ] {
                if let Some(j) = same {
                    out.push(problem(
                        key(field),
                        format!("the same {field} as datasets[{j}] (DES-PROV-2)"),
                        format!("give each dataset its own {field}"),
                    ));
                }
            }
            let n = d.columns.len();
            if n == 0 || n > MAX_COLUMNS {
                out.push(problem(
                    key("columns"),
                    format!("{n} columns; a dataset has 1..=256 (DES-PROF-2)"),
                    "list the CSV's columns in order, at most 256",
                ));
            }
            for (j, c) in d.columns.iter().enumerate() {
                let chars = c.name.chars().count();
                if !(1..=128).contains(&chars) {
                    out.push(problem(
                        format!("datasets[{i}].columns[{j}].name"),
                        format!(
                            "a column name of {chars} characters; 1..=128 allowed (DES-PROF-2)"
                        ),
                        "use the CSV header text, 1 to 128 characters",
                    ));
                }
                if let Some(k) = d.columns[..j].iter().position(|e| e.name == c.name) {
                    out.push(problem(
                        format!("datasets[{i}].columns[{j}].name"),
                        format!("the same name as columns[{k}]"),
                        "give every column of a dataset its own name",
                    ));
                }
                if let Some(u) = &c.unit
                    && !(1..=32).contains(&u.chars().count())
                {
                    out.push(problem(
                        format!("datasets[{i}].columns[{j}].unit"),
                        "a unit has 1..=32 characters (DES-PROF-2)",
                        "shorten the unit, or leave the key out",
                    ));
                }
            }
            let bytes = profile_header_bytes(&self.profile_header(d));
            if bytes > MAX_PROFILE_HEADER_BYTES {
                out.push(problem(
                    key("columns"),
                    format!(
                        "the profile header would be {bytes} bytes, over {MAX_PROFILE_HEADER_BYTES} \
                         (DES-MSG-DATA-6)"
                    ),
                    "use fewer or shorter column names and units, or split the dataset",
                ));
            }
        }
    }
}

fn bp_text(bp: &BundlePath) -> String {
    bp.written().display().to_string()
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Reads a file of the bundle; a missing or unreadable file (or, for a private key, one
/// readable by group or others) is a problem.
fn read_file(
    key: &str,
    bp: &BundlePath,
    private: bool,
    fix: &str,
    out: &mut Vec<Problem>,
) -> Option<Vec<u8>> {
    let meta = match fs::metadata(bp.path()) {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            out.push(problem(key, format!("{} is not a file", bp_text(bp)), fix));
            return None;
        }
        Err(e) => {
            out.push(problem(
                key,
                format!("{}: {}", bp_text(bp), io_text(&e)),
                fix,
            ));
            return None;
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if private && mode & 0o077 != 0 {
        out.push(problem(
            key,
            format!(
                "{} is readable by group or others (mode {mode:o}); private keys must be \
                 owner-only (SEC-CERT-3)",
                bp_text(bp)
            ),
            format!("chmod 600 {}", bp.path().display()),
        ));
    }
    match fs::read(bp.path()) {
        Ok(b) => Some(b),
        Err(e) => {
            out.push(problem(
                key,
                format!("{}: {}", bp_text(bp), io_text(&e)),
                "make it readable by the gateway's user",
            ));
            None
        }
    }
}

fn parse_certs(
    key: &str,
    bp: &BundlePath,
    text: &[u8],
    exactly_one: bool,
    fix: &str,
    out: &mut Vec<Problem>,
) -> Option<openssl::x509::X509> {
    if String::from_utf8_lossy(text).contains("PRIVATE KEY-----") {
        out.push(problem(
            key,
            format!(
                "{} holds a private key; a certificate file may not (DES-CERT-2)",
                bp_text(bp)
            ),
            "keep the key only in its 0600 key file and remove it from the certificate file",
        ));
    }
    match openssl::x509::X509::stack_from_pem(text) {
        Ok(v) if v.is_empty() => {
            out.push(problem(
                key,
                format!("{} holds no PEM certificate", bp_text(bp)),
                fix,
            ));
            None
        }
        Ok(v) if exactly_one && v.len() != 1 => {
            out.push(problem(
                key,
                format!(
                    "{} holds {} certificates, exactly one expected (DES-PROV-1)",
                    bp_text(bp),
                    v.len()
                ),
                fix,
            ));
            None
        }
        Ok(mut v) => Some(v.remove(0)),
        Err(_) => {
            out.push(problem(
                key,
                format!("{} is not PEM certificates", bp_text(bp)),
                fix,
            ));
            None
        }
    }
}

fn common_name(c: &openssl::x509::X509) -> Option<String> {
    c.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| String::from_utf8(e.data().as_slice().to_vec()).ok())
}

/// Loads `dir/gateway.toml` and returns every problem of its structure and its rules (empty
/// when the bundle is ready to run). What `sgw check-config` prints.
pub fn check_bundle(dir: &Path) -> Vec<Problem> {
    let path = dir.join(CONFIG_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return vec![problem(
                CONFIG_FILE,
                format!("{}: {}", path.display(), io_text(&e)),
                "point --bundle at the directory of a provisioning bundle (DES-PROV-1)",
            )];
        }
    };
    let parsed = parse_collecting(&text);
    let mut out = parsed.problems;
    if let Some(mut c) = parsed.config {
        c.resolve(dir);
        // Rules on keys that were repaired for parsing would report the placeholder.
        out.extend(c.validate().into_iter().filter(|p| {
            !parsed.patched.iter().any(|k| {
                p.key == *k
                    || p.key.starts_with(&format!("{k}."))
                    || p.key.starts_with(&format!("{k}["))
            })
        }));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Collecting every structural problem
// ---------------------------------------------------------------------------------------------

/// A valid configuration whose values stand in for missing or wrong ones while the rest of a
/// broken file is checked; chosen not to collide with real names.
const PLACEHOLDER: &str = r#"
[gateway]
id = "PLACEHOLDER"
name = "placeholder"
state_dir = "state"
[platform]
mqtt_url = "mqtts://placeholder:8883"
https_base = "https://placeholder:8443"
connect_timeout_sec = 30
keep_alive_sec = 60
max_records_per_message = 1000
[tls]
ca = "tls/ca.pem"
client_cert = "tls/client.pem"
client_key = "tls/client.key"
[data_protection]
cert = "data-protection/gateway.pem"
key = "data-protection/gateway.key"
platform_cert = "data-protection/platform.pem"
root_cert = "data-protection/root.pem"
crl = "data-protection/crl.pem"
crl_refresh_sec = 3600
[masking]
keys_dir = "masking"
active_key = "placeholder"
[ftp]
listen = "0.0.0.0:2121"
passive_ports = "50000-50100"
ftps_required = true
tls_cert = "ftp/server.pem"
tls_key = "ftp/server.key"
max_file_bytes = 1
[storage]
quota_bytes = 1
retention_days = 1
evacuation_interval_sec = 3600
evacuation_dir = "archive"
[[datasets]]
name = "zz-placeholder"
source_system = "placeholder"
ftp_user = "zz-placeholder"
ftp_dir = "zz-placeholder"
ftp_password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2d3LWV4YW1wbGUtc2FsdA$2iURLQ6CDDVD0z5O2LGTxEipgmDKsLWWv3w0NL4pJq8"
encoding = "utf-8"
header_row = false
columns = [{ name = "placeholder", type = "string", masked = false }]
"#;

struct Parsed {
    config: Option<Config>,
    problems: Vec<Problem>,
    /// Keys whose values are placeholders.
    patched: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn dotted(steps: &[Step]) -> String {
    let mut s = String::new();
    for st in steps {
        match st {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn get<'a>(mut v: &'a toml::Value, steps: &[Step], any_index: bool) -> Option<&'a toml::Value> {
    for st in steps {
        v = match st {
            Step::Key(k) => v.as_table()?.get(k)?,
            Step::Index(i) => v.as_array()?.get(if any_index { 0 } else { *i })?,
        };
    }
    Some(v)
}

fn get_mut<'a>(mut v: &'a mut toml::Value, steps: &[Step]) -> Option<&'a mut toml::Value> {
    for st in steps {
        v = match st {
            Step::Key(k) => v.as_table_mut()?.get_mut(k)?,
            Step::Index(i) => v.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(v)
}

/// The text between the first pair of backticks of a serde message.
fn quoted(msg: &str) -> Option<&str> {
    let a = msg.find('`')? + 1;
    let b = a + msg[a..].find('`')?;
    Some(&msg[a..b])
}

/// How to fix a wrong value at a key, by the key's last name.
fn value_fix(steps: &[Step]) -> String {
    let leaf = match steps.last() {
        Some(Step::Key(k)) => k.as_str(),
        _ => "",
    };
    let in_dataset =
        steps.len() == 3 && matches!(steps.first(), Some(Step::Key(k)) if k == "datasets");
    match leaf {
        "id" => {
            "use 1..=32 ASCII letters or digits, the CN of the client certificate (DES-ID-1)".into()
        }
        "name" if in_dataset => {
            "use 1..=32 of [a-z0-9_-], starting with a lower-case letter (DES-ID-3)".into()
        }
        "encoding" => "use \"cp932\" or \"utf-8\" (DES-CSV-2)".into(),
        "type" => {
            "use one of \"string\", \"integer\", \"decimal\", \"date\", \"datetime\" (DES-CSV-4)"
                .into()
        }
        "active_key" => {
            "use 1..=16 ASCII letters or digits, the name of a key file in keys_dir (DES-MASK-3)"
                .into()
        }
        "ftp_password_hash" => {
            "run `sgw hash-password` and paste the line it prints (DES-FTP-3)".into()
        }
        "ftp_dir" => "use one directory name, without `/` or `..` (DES-FTP-4)".into(),
        "ftp_user" => "use 1..=64 of [A-Za-z0-9._-] (DES-FTP-3)".into(),
        "source_system" => "use 1..=64 of [A-Za-z0-9._-] (DES-PROF-2)".into(),
        "mqtt_url" => "use mqtts://HOST:PORT (DES-MQTT-1)".into(),
        "https_base" => "use https://HOST[:PORT] (DES-CERT-1)".into(),
        "listen" => "use an address and port, e.g. \"0.0.0.0:2121\" (DES-FTP-1)".into(),
        "passive_ports" => "use \"FIRST-LAST\", e.g. \"50000-50100\" (DES-FTP-1)".into(),
        _ => "give a value of the type the commented example of DES-PROV-2 shows".into(),
    }
}

fn steps_of(path: &serde_path_to_error::Path) -> Vec<Step> {
    path.iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        })
        .collect()
}

fn parse_collecting(text: &str) -> Parsed {
    let mut parsed = Parsed {
        config: None,
        problems: Vec::new(),
        patched: Vec::new(),
    };
    let mut value = match toml::from_str::<toml::Table>(text) {
        Ok(t) => toml::Value::Table(t),
        Err(e) => {
            parsed.problems.push(problem(
                CONFIG_FILE,
                format!("not TOML 1.0: {}", e.to_string().trim_end()),
                "correct the syntax at the line shown",
            ));
            return parsed;
        }
    };
    // Invariant: a constant that parses (unit test `the_placeholder_is_a_valid_configuration`).
    let placeholder: toml::Value = toml::from_str::<toml::Table>(PLACEHOLDER)
        .map(toml::Value::Table)
        .unwrap_or(toml::Value::Boolean(false));
    // Each round repairs one key; a file has far fewer keys than this.
    for _ in 0..10_000 {
        let err = match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
            Ok(c) => {
                parsed.config = Some(c);
                return parsed;
            }
            Err(e) => e,
        };
        let mut steps = steps_of(err.path());
        let msg = err.inner().to_string().trim_end().to_owned();
        let (p, repair) = if msg.starts_with("unknown field") {
            let allowed = msg.split_once(", expected ").map_or("none", |(_, a)| a);
            (
                problem(
                    dotted(&steps),
                    "unknown key (gateway.toml is strict, DES-PROV-2)",
                    format!("remove it or correct its spelling; allowed here: {allowed}"),
                ),
                None,
            )
        } else if msg.starts_with("missing field")
            && let Some(field) = quoted(&msg)
        {
            steps.push(Step::Key(field.to_owned()));
            (
                problem(
                    dotted(&steps),
                    "missing (required, DES-PROV-2)",
                    "add it; the commented example of DES-PROV-2 shows every key",
                ),
                get(&placeholder, &steps, true).cloned(),
            )
        } else {
            (
                problem(dotted(&steps), msg.clone(), value_fix(&steps)),
                get(&placeholder, &steps, true).cloned(),
            )
        };
        let key = p.key.clone();
        parsed.problems.push(p);
        if parsed.patched.contains(&key) {
            return parsed;
        }
        let Some((last, parent)) = steps.split_last() else {
            return parsed;
        };
        let done = match (get_mut(&mut value, parent), last, repair) {
            (Some(toml::Value::Table(t)), Step::Key(k), None) => t.remove(k).is_some(),
            (Some(toml::Value::Table(t)), Step::Key(k), Some(v)) => {
                t.insert(k.clone(), v);
                true
            }
            (Some(toml::Value::Array(a)), Step::Index(i), Some(v)) if *i < a.len() => {
                a[*i] = v;
                true
            }
            _ => false,
        };
        if !done {
            return parsed;
        }
        parsed.patched.push(key);
    }
    parsed
}

// ---------------------------------------------------------------------------------------------
// Keys and passwords made on the utility's side
// ---------------------------------------------------------------------------------------------

/// Why a masking key could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaskingKeyError {
    /// DES-PROV-2: the bundle's configuration could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// DES-MASK-1: the key ID is not 1..=16 ASCII letters or digits.
    #[error("{0}")]
    KeyId(String),
    /// DES-MASK-3: a key with this ID exists; keys are never overwritten.
    #[error(
        "DES-MASK-3: {0} exists; a masking key is never overwritten (rotate with a new --key-id)"
    )]
    Exists(PathBuf),
    /// DES-MASK-3: writing the key failed.
    #[error("DES-MASK-3: writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// DES-MASK-3: the random generator failed.
    #[error("DES-MASK-3: random generator: {0}")]
    Random(String),
}

/// A masking key made by [`new_masking_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMaskingKey {
    /// Its keyId.
    pub key_id: KeyId,
    /// The file written (`<keys_dir>/<keyId>.key`, 0600).
    pub path: PathBuf,
    /// Whether it is the configuration's `active_key`.
    pub active: bool,
}

/// Generates the utility's masking key (32 bytes from the OS CSPRNG, 64 hex digits) on the
/// gateway into the bundle's `[masking].keys_dir` as `<keyId>.key`, mode 0600 (DES-MASK-3,
/// SEC-MASK-2); `key_id` defaults to `[masking].active_key`. Never overwrites a key.
pub fn new_masking_key(
    bundle: &Path,
    key_id: Option<&str>,
) -> Result<NewMaskingKey, MaskingKeyError> {
    let c = Config::load(bundle)?;
    let key_id = match key_id {
        Some(k) => KeyId::new(k).map_err(MaskingKeyError::KeyId)?,
        None => c.masking.active_key.clone(),
    };
    let dir = c.masking.keys_dir.path();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| MaskingKeyError::Io {
            path: dir.to_owned(),
            source,
        })?;
    let path = dir.join(format!("{key_id}.key"));
    let mut key = [0u8; 32];
    openssl::rand::rand_bytes(&mut key).map_err(|e| MaskingKeyError::Random(e.to_string()))?;
    let io = |source| MaskingKeyError::Io {
        path: path.clone(),
        source,
    };
    let mut f = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(MaskingKeyError::Exists(path));
        }
        Err(e) => return Err(io(e)),
    };
    // The umask may have narrowed the mode further, never widened it; make it exactly 0600.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    f.write_all(format!("{}\n", hex::encode(key)).as_bytes())
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(NewMaskingKey {
        active: key_id == c.masking.active_key,
        key_id,
        path,
    })
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// DES-FTP-3: an empty password is refused (SM-DEFAULTPW).
    #[error("DES-FTP-3: the password is empty")]
    Empty,
    /// DES-FTP-3: hashing failed.
    #[error("DES-FTP-3: {0}")]
    Hash(String),
}

/// The Argon2id PHC string of `password` (DES-FTP-3: v=19, m = 19456 KiB, t = 2, p = 1, a
/// 16-byte random salt, a 32-byte hash): what `sgw hash-password` prints.
pub fn hash_password(password: &str) -> Result<PasswordHash, PasswordError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let params = argon2::Params::new(ARGON2_MIN_M_KIB, ARGON2_MIN_T, ARGON2_MIN_P, Some(32))
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let phc = a
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))?
        .to_string();
    PasswordHash::new(phc).map_err(PasswordError::Hash)
}

/// Whether `password` matches the PHC string `hash`: the FTP server's own check
/// ([`crate::south::verify_password`], constant time inside the `argon2` crate).
pub fn verify_password(password: &str, hash: &PasswordHash) -> bool {
    crate::south::verify_password(hash.as_str(), password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_is_a_valid_configuration() {
        let c = Config::parse(PLACEHOLDER).unwrap();
        assert_eq!(c.gateway.id.as_str(), "PLACEHOLDER");
    }

    #[test]
    fn dotted_keys_name_array_elements_by_index() {
        let steps = [
            Step::Key("datasets".into()),
            Step::Index(1),
            Step::Key("columns".into()),
            Step::Index(3),
            Step::Key("type".into()),
        ];
        assert_eq!(dotted(&steps), "datasets[1].columns[3].type");
    }

    #[test]
    fn urls_and_port_ranges_parse_strictly() {
        let u = MqttUrl::new("mqtts://platform.example.jp:8883").unwrap();
        assert_eq!((u.host(), u.port()), ("platform.example.jp", 8883));
        for bad in [
            "mqtt://h:1883",
            "mqtts://h",
            "mqtts://:8883",
            "mqtts://h:0",
            "mqtts://h:8883/x",
            "mqtts://h:+1",
        ] {
            assert!(MqttUrl::new(bad).is_err(), "{bad}");
        }
        assert_eq!(HttpsBase::new("https://h").unwrap().port(), 443);
        assert_eq!(HttpsBase::new("https://[::1]:8443/").unwrap().port(), 8443);
        assert!(HttpsBase::new("http://h:80").is_err());
        assert!(HttpsBase::new("https://h/path").is_err());
        assert_eq!(
            PortRange::new("50000-50100").unwrap(),
            PortRange {
                first: 50000,
                last: 50100
            }
        );
        for bad in ["50100-50000", "0-10", "1-", "a-b", "1-70000", "-1-2"] {
            assert!(PortRange::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ftp_dirs_are_one_relative_segment() {
        assert!(FtpDir::new("billing").is_ok());
        assert!(FtpDir::new("料金").is_ok());
        for bad in ["", ".", "..", "a/b", "/abs", "a\\b", "a\nb"] {
            assert!(FtpDir::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn phc_strings_must_be_argon2id_with_the_minimum_parameters() {
        let ok = "$argon2id$v=19$m=19456,t=2,p=1$c2d3LWV4YW1wbGUtc2FsdA$2iURLQ6CDDVD0z5O2LGTxEipgmDKsLWWv3w0NL4pJq8";
        assert_eq!(phc_problem(ok), None);
        for (bad, why) in [
            (ok.replace("argon2id", "argon2i"), "algorithm"),
            (ok.replace("v=19", "v=16"), "version"),
            (ok.replace("m=19456", "m=4096"), "below"),
            (ok.replace("t=2", "t=1"), "below"),
            // 12-byte salt.
            (
                ok.replace("c2d3LWV4YW1wbGUtc2FsdA", "c2d3LWV4YW1wbGUt"),
                "salt",
            ),
            // 16-byte hash.
            (
                ok.replace(
                    "2iURLQ6CDDVD0z5O2LGTxEipgmDKsLWWv3w0NL4pJq8",
                    "2iURLQ6CDDVD0z5O2LGTxA",
                ),
                "hash",
            ),
            ("plaintext-password".to_owned(), "PHC"),
        ] {
            let p = phc_problem(&bad).unwrap_or_default();
            assert!(p.contains(why), "{bad}: {p}");
        }
    }
}
