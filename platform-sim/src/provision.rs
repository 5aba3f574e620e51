//! The provisioning bundle a gateway is installed with (DES-PROV-*, SM-ID, SM-MUTUAL,
//! SEC-CERT-1, SEC-CERT-3, SEC-MASK-2, SM-DEFAULTPW).
//!
//! `platform-sim provision --gateway ID --out DIR` issues the gateway's certificates from the
//! simulator's [`Ca`] and writes (DES-PROV-1):
//!
//! ```text
//! DIR/gateway.toml                       gateway::config::Config, the gateway's own type
//! DIR/tls/ca.pem                         root (trust anchor for the broker and HTTPS endpoint)
//! DIR/tls/client.pem, client.key         MQTT/HTTPS client certificate, O = CN = gateway ID
//! DIR/data-protection/gateway.pem, .key  the gateway's signing/decryption certificate
//! DIR/data-protection/platform.pem       the platform's data-protection certificate
//! DIR/data-protection/root.pem           root (chain checks of data-protection certificates)
//! DIR/data-protection/crl.pem            the current CRL
//! ```
//!
//! Every private key (`*.key`) is written with mode 0600 (SEC-CERT-3). `gateway.toml` is
//! written with the gateway's [`Config`] type, so the two cannot drift.
//!
//! What the platform does **not** write, because it belongs to the utility:
//! - the masking key (事業体用秘密鍵, SEC-MASK-2: the platform never sees it). `gateway.toml`
//!   names where it goes (`[masking] keys_dir`, `active_key`); the gateway's operator creates
//!   it with `sgw masking-key new --bundle DIR`;
//! - the FTPS server certificate and key of the utility's LAN (`ftp/server.pem`, `.key`,
//!   DES-FTP-2).
//!
//! FTP passwords (DES-FTP-3, SM-DEFAULTPW): one random initial password per dataset's FTP
//! user; only its Argon2id hash goes into `gateway.toml`, the password itself is returned in
//! [`Bundle::ftp_passwords`] (the CLI prints it once) and stored nowhere.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use gateway::config::{
    BundlePath, Config, ConfigError, DataProtectionSection, DatasetConfig, Encoding, FtpDir,
    FtpSection, FtpUser, GatewaySection, HttpsBase, KeyId, MaskingSection, MqttUrl,
    PlatformSection, PortRange, Secs, SourceSystem, StorageSection, TlsSection,
};
use gateway::profile::Column;
use gateway::protocol::ids::{Dataset, GatewayId};

use crate::ca::{Ca, CaError, write_private, write_public};

/// The masking key ID a first provisioning names as `active_key` (DES-MASK-1: 1..=16
/// `[A-Za-z0-9]`). The key itself is made by the utility (`sgw masking-key new`).
pub const FIRST_MASKING_KEY_ID: &str = "k1";

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// SEC-CERT-1: issuing the gateway's certificates failed.
    #[error("SEC-CERT-1: {0}")]
    Ca(#[from] CaError),
    /// SEC-CERT-3: writing the bundle failed.
    #[error("SEC-CERT-3: writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// DES-PROV-2: the configuration could not be made, written or read.
    #[error("DES-PROV-2: gateway.toml: {0}")]
    Config(String),
}

impl From<ConfigError> for ProvisionError {
    fn from(e: ConfigError) -> Self {
        ProvisionError::Config(e.to_string())
    }
}

/// Where the gateway reaches the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// MQTT broker host name (must match the server certificate: `localhost` or `127.0.0.1`).
    pub mqtt_host: String,
    /// MQTT broker port (MQTT 3.1.1 over TLS, mutual authentication).
    pub mqtt_port: u16,
    /// Base URL of the HTTPS certificate endpoint, e.g. `https://localhost:8443`.
    pub https_url: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            mqtt_host: "localhost".into(),
            mqtt_port: 8883,
            https_url: "https://localhost:8443".into(),
        }
    }
}

/// Options of one provisioning.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// Platform endpoints written into `gateway.toml`.
    pub endpoints: Endpoints,
    /// Utility name (in `[gateway].name`).
    pub utility: String,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        ProvisionOptions {
            endpoints: Endpoints::default(),
            utility: "sample-water-utility".into(),
        }
    }
}

/// The datasets of the simulated legacy systems (`legacy_sim::dataset`, one definition for
/// both simulators): columns named by the CSV header text the legacy system writes
/// (DES-CSV-3), personal columns masked (SEC-MASK-1), UTF-8 (the legacy simulator's default
/// encoding), FTP user and directory named after the dataset. `hash` gives each FTP user's
/// `ftp_password_hash`.
pub fn default_datasets(
    mut hash: impl FnMut(&str) -> Result<gateway::config::PasswordHash, ProvisionError>,
) -> Result<Vec<DatasetConfig>, ProvisionError> {
    let bad = |e: String| ProvisionError::Config(e);
    legacy_sim::dataset::Dataset::ALL
        .into_iter()
        .map(|d| {
            Ok(DatasetConfig {
                name: Dataset::new(d.name()).map_err(|e| bad(e.to_string()))?,
                source_system: SourceSystem::new(d.source_system()).map_err(bad)?,
                ftp_user: FtpUser::new(d.name()).map_err(bad)?,
                ftp_dir: FtpDir::new(d.name()).map_err(bad)?,
                ftp_password_hash: hash(d.name())?,
                encoding: Encoding::Utf8,
                header_row: true,
                columns: d
                    .columns()
                    .iter()
                    .map(|c| Column {
                        name: c.label.to_owned(),
                        ty: c.ty,
                        unit: c.unit.map(str::to_owned),
                        masked: c.personal,
                    })
                    .collect(),
            })
        })
        .collect()
}

/// A written bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The configuration written, paths resolved against `dir`.
    pub config: Config,
    /// FTP user → initial password, only from [`provision`] (never stored: `gateway.toml`
    /// holds the hashes). Empty for a loaded bundle.
    pub ftp_passwords: BTreeMap<String, String>,
}

impl Bundle {
    /// Absolute path of a bundle-relative path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
    /// Loads a bundle written earlier (its `gateway.toml` through [`Config::load`]).
    pub fn load(dir: &Path) -> Result<Self, ProvisionError> {
        Ok(Bundle {
            dir: dir.to_owned(),
            config: Config::load(dir)?,
            ftp_passwords: BTreeMap::new(),
        })
    }
}

fn config_for(
    gw: &GatewayId,
    opts: &ProvisionOptions,
    datasets: Vec<DatasetConfig>,
) -> Result<Config, ProvisionError> {
    let e = &opts.endpoints;
    let bad = |e: String| ProvisionError::Config(e);
    let p = BundlePath::new;
    Ok(Config {
        gateway: GatewaySection {
            id: gw.clone(),
            name: format!("{} gateway {gw}", opts.utility),
            state_dir: p("state"),
        },
        platform: PlatformSection {
            mqtt_url: MqttUrl::new(&format!("mqtts://{}:{}", e.mqtt_host, e.mqtt_port))
                .map_err(bad)?,
            https_base: HttpsBase::new(&e.https_url).map_err(bad)?,
            connect_timeout_sec: Secs(30),
            keep_alive_sec: Secs(60),
            max_records_per_message: 1000,
        },
        tls: TlsSection {
            ca: p("tls/ca.pem"),
            client_cert: p("tls/client.pem"),
            client_key: p("tls/client.key"),
        },
        data_protection: DataProtectionSection {
            cert: p("data-protection/gateway.pem"),
            key: p("data-protection/gateway.key"),
            platform_cert: p("data-protection/platform.pem"),
            root_cert: p("data-protection/root.pem"),
            crl: p("data-protection/crl.pem"),
            crl_refresh_sec: Secs(3600),
        },
        masking: MaskingSection {
            keys_dir: p("masking"),
            active_key: KeyId::new(FIRST_MASKING_KEY_ID).map_err(bad)?,
        },
        ftp: FtpSection {
            listen: std::net::SocketAddr::from(([0, 0, 0, 0], 2121)),
            passive_ports: PortRange {
                first: 50000,
                last: 50100,
            },
            ftps_required: true,
            tls_cert: p("ftp/server.pem"),
            tls_key: p("ftp/server.key"),
            max_file_bytes: 100 * 1024 * 1024,
        },
        storage: StorageSection {
            quota_bytes: 10 * 1024 * 1024 * 1024,
            retention_days: 90,
            evacuation_interval_sec: Secs(3600),
            evacuation_dir: p("state/archive"),
        },
        datasets,
    })
}

/// Issues the gateway's certificates and writes its bundle into `out` (created if missing).
/// Writes no masking key and no FTPS certificate (module docs).
pub fn provision(
    ca: &mut Ca,
    gw: &GatewayId,
    out: &Path,
    opts: &ProvisionOptions,
) -> Result<Bundle, ProvisionError> {
    let mk = |p: &Path| {
        fs::create_dir_all(p).map_err(|source| ProvisionError::Io {
            path: p.to_owned(),
            source,
        })
    };
    mk(&out.join("tls"))?;
    mk(&out.join("data-protection"))?;
    let creds = ca.issue_gateway(gw)?;
    let root = ca.root_pem().to_owned();
    let crl = ca.crl_pem()?;
    let (platform_dp, _) = ca.platform_dp_paths();
    let platform_dp = fs::read_to_string(&platform_dp).map_err(|source| ProvisionError::Io {
        path: platform_dp.clone(),
        source,
    })?;
    write_public(&out.join("tls/ca.pem"), root.as_bytes())?;
    write_public(
        &out.join("tls/client.pem"),
        creds.client.cert_pem.as_bytes(),
    )?;
    write_private(&out.join("tls/client.key"), creds.client.key_pem.as_bytes())?;
    write_public(
        &out.join("data-protection/gateway.pem"),
        creds.data_protection.cert_pem.as_bytes(),
    )?;
    write_private(
        &out.join("data-protection/gateway.key"),
        creds.data_protection.key_pem.as_bytes(),
    )?;
    write_public(
        &out.join("data-protection/platform.pem"),
        platform_dp.as_bytes(),
    )?;
    write_public(&out.join("data-protection/root.pem"), root.as_bytes())?;
    write_public(&out.join("data-protection/crl.pem"), crl.as_bytes())?;

    let mut ftp_passwords = BTreeMap::new();
    let datasets = default_datasets(|user| {
        let mut raw = [0u8; 18];
        openssl::rand::rand_bytes(&mut raw).map_err(|e| ProvisionError::Config(e.to_string()))?;
        let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let hash = gateway::config::hash_password(&password)
            .map_err(|e| ProvisionError::Config(e.to_string()))?;
        ftp_passwords.insert(user.to_owned(), password);
        Ok(hash)
    })?;
    let mut config = config_for(gw, opts, datasets)?;
    write_public(&out.join("gateway.toml"), config.to_toml()?.as_bytes())?;
    config.resolve(out);
    Ok(Bundle {
        dir: out.to_owned(),
        config,
        ftp_passwords,
    })
}
