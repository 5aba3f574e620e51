//! The provisioning bundle a gateway is installed with (DES-PROV-*, SM-ID, SM-MUTUAL,
//! SEC-CERT-1, SEC-CERT-3, SEC-MASK-*).
//!
//! `platform-sim provision --gateway ID --out DIR` issues the gateway's certificates from the
//! simulator's [`Ca`] and writes:
//!
//! ```text
//! DIR/gateway.toml                       ids, endpoints, datasets, masking rules, periods
//! DIR/tls/ca.pem                         root (trust anchor for the broker and HTTPS endpoint)
//! DIR/tls/client.pem, client.key         MQTT/HTTPS client certificate, O = CN = gateway ID
//! DIR/data-protection/gateway.pem, .key  the gateway's signing/decryption certificate
//! DIR/data-protection/platform.pem       the platform's data-protection certificate
//! DIR/data-protection/root.pem           root (chain checks of data-protection certificates)
//! DIR/data-protection/crl.pem            the current CRL
//! DIR/masking/{keyId}.key                32 random bytes, hex (the utility masking key)
//! ```
//!
//! Every private key (`*.key`) is written with mode 0600 (SEC-CERT-3). [`GatewayConfig`] is the
//! serde shape of `gateway.toml`; paths inside it are relative to the bundle directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use gateway::protocol::ids::GatewayId;
use serde::{Deserialize, Serialize};

use crate::ca::{Ca, CaError, write_private, write_public};

/// The masking key ID written by a first provisioning (DES-MASK: 1..=16 `[A-Za-z0-9]`).
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
    /// DES-PROV: the configuration could not be serialised.
    #[error("DES-PROV: gateway.toml: {0}")]
    Toml(String),
}

/// Where the gateway reaches the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// `gateway.toml`, the gateway's provisioned configuration (DES-PROV-*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayConfig {
    /// Identifiers.
    pub gateway: GatewaySection,
    /// Platform endpoints.
    pub platform: Endpoints,
    /// MQTT session parameters (DES-MQTT-*).
    pub mqtt: MqttSection,
    /// TLS material (relative paths).
    pub tls: TlsSection,
    /// Data-protection material (relative paths).
    pub data_protection: DataProtectionSection,
    /// Periods and timeouts.
    pub periods: Periods,
    /// Masking keys.
    pub masking: MaskingSection,
    /// The datasets the gateway stores and sends.
    pub datasets: Vec<DatasetSection>,
}

/// `[gateway]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewaySection {
    /// Gateway ID: client certificate O and CN, MQTT client ID and tenant (DES-ID-1).
    pub id: String,
    /// Utility (water operator) the gateway belongs to.
    pub utility: String,
}

/// `[mqtt]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttSection {
    /// MQTT client ID (= gateway ID).
    pub client_id: String,
    /// Keep-alive, seconds.
    pub keep_alive_sec: u32,
    /// QoS of every publish and subscription.
    pub qos: u8,
    /// Clean session flag.
    pub clean_session: bool,
    /// Largest MQTT payload, bytes.
    pub max_payload_bytes: u32,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSection {
    /// Trust anchor.
    pub ca: String,
    /// Client certificate.
    pub cert: String,
    /// Client private key (0600).
    pub key: String,
}

/// `[data_protection]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataProtectionSection {
    /// The gateway's data-protection certificate.
    pub cert: String,
    /// Its private key (0600).
    pub key: String,
    /// The platform's data-protection certificate.
    pub platform_cert: String,
    /// Root certificate.
    pub root: String,
    /// CRL as provisioned (refreshed from the HTTPS endpoint at least every nextUpdate).
    pub crl: String,
}

/// `[periods]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Periods {
    /// Default periodic sending interval, seconds (the platform's `periodic.start` may override).
    pub periodic_interval_sec: u32,
    /// Interval of `monitor.status`, seconds.
    pub monitor_interval_sec: u32,
    /// Time to wait for `data.ack` before resending, seconds.
    pub ack_timeout_sec: u32,
    /// Longest interval between CRL refreshes, seconds (never later than nextUpdate).
    pub crl_refresh_sec: u32,
    /// Accepted clock difference on received messages, seconds (STALE outside).
    pub max_clock_skew_sec: u32,
    /// How long stored records are kept for resend, days.
    pub retention_days: u32,
}

/// `[masking]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskingSection {
    /// Key used for new masking.
    pub active_key_id: String,
    /// keyId → relative path of the key file (old keys kept for unmasking).
    pub keys: BTreeMap<String, String>,
}

/// `[[datasets]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSection {
    /// Dataset name (DES-ID-3).
    pub name: String,
    /// Legacy business system it comes from.
    pub source_system: String,
    /// Columns masked before anything leaves the gateway (SEC-MASK-*).
    pub masked_columns: Vec<String>,
}

/// Options of one provisioning.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// Platform endpoints written into `gateway.toml`.
    pub endpoints: Endpoints,
    /// Utility name.
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

/// The default datasets and their masking rules. Billing masks the personal columns `name`
/// and `address` (the legacy simulator's personal columns); `customer_no` stays clear so
/// records can be joined with meter readings (deterministic masking would keep joins working
/// too, should a utility decide to mask it).
pub fn default_datasets() -> Vec<DatasetSection> {
    vec![
        DatasetSection {
            name: "pipe_ledger".into(),
            source_system: "pipe-ledger".into(),
            masked_columns: vec![],
        },
        DatasetSection {
            name: "billing".into(),
            source_system: "billing".into(),
            masked_columns: vec!["name".into(), "address".into()],
        },
        DatasetSection {
            name: "meter_reading".into(),
            source_system: "billing".into(),
            masked_columns: vec![],
        },
    ]
}

/// Paths of a written bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The configuration written.
    pub config: GatewayConfig,
}

impl Bundle {
    /// Absolute path of a bundle-relative path from the configuration.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
    /// Loads a bundle written earlier.
    pub fn load(dir: &Path) -> Result<Self, ProvisionError> {
        let p = dir.join("gateway.toml");
        let text = fs::read_to_string(&p).map_err(|source| ProvisionError::Io {
            path: p.clone(),
            source,
        })?;
        let config = toml::from_str(&text).map_err(|e| ProvisionError::Toml(e.to_string()))?;
        Ok(Bundle {
            dir: dir.to_owned(),
            config,
        })
    }
}

/// Issues the gateway's certificates and writes its bundle into `out` (created if missing).
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
    mk(&out.join("masking"))?;
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
    let key: [u8; 32] = rand::random();
    let key_rel = format!("masking/{FIRST_MASKING_KEY_ID}.key");
    write_private(
        &out.join(&key_rel),
        format!("{}\n", hex::encode(key)).as_bytes(),
    )?;

    let config = GatewayConfig {
        gateway: GatewaySection {
            id: gw.to_string(),
            utility: opts.utility.clone(),
        },
        platform: opts.endpoints.clone(),
        mqtt: MqttSection {
            client_id: gw.to_string(),
            keep_alive_sec: 60,
            qos: 1,
            clean_session: true,
            max_payload_bytes: 1024 * 1024,
        },
        tls: TlsSection {
            ca: "tls/ca.pem".into(),
            cert: "tls/client.pem".into(),
            key: "tls/client.key".into(),
        },
        data_protection: DataProtectionSection {
            cert: "data-protection/gateway.pem".into(),
            key: "data-protection/gateway.key".into(),
            platform_cert: "data-protection/platform.pem".into(),
            root: "data-protection/root.pem".into(),
            crl: "data-protection/crl.pem".into(),
        },
        periods: Periods {
            periodic_interval_sec: 60,
            monitor_interval_sec: 300,
            ack_timeout_sec: 30,
            crl_refresh_sec: 3600,
            max_clock_skew_sec: 300,
            retention_days: 30,
        },
        masking: MaskingSection {
            active_key_id: FIRST_MASKING_KEY_ID.into(),
            keys: BTreeMap::from([(FIRST_MASKING_KEY_ID.to_owned(), key_rel)]),
        },
        datasets: default_datasets(),
    };
    let text = toml::to_string_pretty(&config).map_err(|e| ProvisionError::Toml(e.to_string()))?;
    let text = format!(
        "# SGW provisioning bundle for gateway {gw}, written by platform-sim (DES-PROV).\n\
         # Paths are relative to this file's directory.\n\n{text}"
    );
    write_public(&out.join("gateway.toml"), text.as_bytes())?;
    Ok(Bundle {
        dir: out.to_owned(),
        config,
    })
}
